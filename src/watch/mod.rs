//! Watch folders: new photos that land in a watched folder export themselves, once.
//!
//! A watch is a local folder, a Dropbox folder and an export profile (`store::WatchSpec`,
//! persisted). inotify (through `notify`, one watch per folder: `tree`) reports what happens in
//! the folder; a file becomes a *candidate* on any event and is handed to the queue only when
//! its writer is done: after a close-after-write or a rename into the folder, once its size,
//! mtime and ctime have stayed the same for the settle time (`watch.settle_ms`), and only if no
//! process has it open for writing any more (`writers`). A slow copy keeps resetting that
//! clock, so it is enqueued once, after it finishes; a writer that stalls mid-file, however
//! long, keeps its file back until it closes it.
//!
//! What a watch takes is what lies in the folder itself: no symbolic link is followed, file or
//! folder, whether it was there when the watch began or appeared later, and nothing in hidden
//! folders is taken. Files are looked at with `prepare::stat_beneath` and their jobs open them
//! under `prepare::Access::Beneath` (the source-file rule, in `prepare::source`).
//!
//! "Once" comes from the uploaded-index (`store`): a file's identity on disk and its content
//! when it went up. A restart, a rename within the folder or a touch that leaves the content
//! alone uploads nothing; an edited photo goes up again under the watch's conflict policy.
//! On start and when a watch is added, the folder is scanned, so photos copied while the
//! daemon was stopped are found.
//!
//! Trouble is a state of the watch, never of the daemon: a folder that is gone (deleted,
//! unmounted removable media), refused (permissions) or beyond the inotify limit is reported
//! (`WatchState` + reason, over D-Bus) and looked at again every two seconds (`events::RECOVERY`) until it can be
//! watched; then it is scanned. Nothing polls while every watch is healthy.
//!
//! Watch jobs carry their origin, and the queue runs them after files handed over by a caller.
//!
//! The parts: this module keeps the registry of watches (`Watcher`: add, ensure, remove,
//! list, each watch's state); `health` says what a watch's trouble is; `events` is the loop
//! that routes inotify events, job ends, mount changes and deadlines; `scan` finds what is
//! already in a folder; `handover` queues settled files and follows their jobs to the end.

mod events;
mod handover;
mod health;
mod intake;
mod mounts;
pub mod rules;
mod scan;
mod settle;
pub mod store;
mod tree;
mod writers;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};

use crate::export::ExportOptions;
use crate::queue::{Filter, JobId, Origin, Queue, QueueError};
pub use health::WatchState;
pub use rules::Rules;
use settle::Settle;
pub use store::{FileId, Outcome, Store, Uploaded, WatchSpec};

/// A watch as `ListWatches` shows it.
#[derive(Debug, Clone)]
pub struct WatchInfo {
    pub spec: WatchSpec,
    pub state: WatchState,
    /// Files in its uploaded-index.
    pub recorded: usize,
}

/// A watch's state changed.
#[derive(Debug, Clone)]
pub struct WatchChange {
    pub id: u64,
    pub state: WatchState,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Invalid(String),
    #[error("no watch with id {0}")]
    NotFound(u64),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What `AddWatch` asks for.
#[derive(Debug, Clone)]
pub struct NewWatch {
    pub local_dir: PathBuf,
    pub remote_folder: String,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub options: ExportOptions,
    /// The export profile by name, read again when its jobs are made.
    pub profile: Option<String>,
    /// The caller's explicit options (over the profile's).
    pub overrides: crate::export::ExportOverrides,
    /// No folder was given and the profile has one: the watch follows the profile's.
    pub folder_from_profile: bool,
}

/// What watches with a profile are resolved against when their jobs are made: the config's
/// export defaults and profiles, as the daemon read them at its start.
#[derive(Debug, Clone, Default)]
pub struct ProfileSettings {
    pub defaults: ExportOptions,
    pub profiles: crate::profile::Profiles,
}

struct Live {
    spec: WatchSpec,
    rules: Rules,
    state: WatchState,
    /// The device the folder was on when it was watched: another one after a mount change
    /// means the medium went (the mount point itself may stay, empty).
    root_dev: Option<u64>,
}

impl Live {
    /// A watch known but not watched yet: `attach` sets it up and scans it.
    fn new(spec: WatchSpec) -> Live {
        Live {
            rules: Rules::new(&spec.include, &spec.exclude),
            spec,
            state: WatchState::Missing("not watched yet".into()),
            root_dev: None,
        }
    }
}

struct State {
    watches: BTreeMap<u64, Live>,
    /// Files seen recently, not yet handed over.
    settle: Settle,
    /// Files handed over whose jobs are not final yet.
    in_flight: HashMap<Origin, JobId>,
    /// Files that settled again while their job was in flight (edited after the job read
    /// them, or while it commits): looked at again when that job ends, so the edit goes too.
    deferred: HashMap<Origin, PathBuf>,
}

pub struct Watcher {
    queue: Queue,
    store: Store,
    state: std::sync::Mutex<State>,
    /// The folders watched through inotify (its watcher None while inotify cannot be set up;
    /// then every watch is in Error). Never locked while `state` is wanted.
    folders: Arc<std::sync::Mutex<tree::Folders>>,
    events_tx: mpsc::UnboundedSender<notify::Result<notify::Event>>,
    events_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<notify::Result<notify::Event>>>>,
    /// New candidates or watches: the loop recomputes its deadlines.
    wake: Notify,
    changes: broadcast::Sender<WatchChange>,
    /// Set once at start (`set_profiles`).
    profiles: std::sync::Mutex<Arc<ProfileSettings>>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watcher {
    /// Loads the watches; `run` then watches and scans them. Registers the uploaded-index
    /// entry the queue writes with a watch job's Done, so call it before the engine runs.
    pub fn open(
        queue: Queue,
        settle: Duration,
        writer_idle: Duration,
    ) -> Result<Arc<Watcher>, QueueError> {
        let store = Store::open(&queue)?;
        let recorder = store.clone();
        queue.set_done_recorder(Box::new(move |job| recorder.done_entry(job)));
        // A file opened for writing and not closed is looked at again after `writer_idle`
        // without events (`watch.writer_idle_ms`); it goes only once no process has it open
        // for writing.
        let mut state = State {
            watches: BTreeMap::new(),
            settle: Settle::new(settle, writer_idle),
            in_flight: HashMap::new(),
            deferred: HashMap::new(),
        };
        for spec in store.watches()? {
            state.watches.insert(spec.id, Live::new(spec));
        }
        for job in queue.list(Filter::Active)? {
            if let Some(origin) = job.origin {
                state.in_flight.insert(origin, job.id);
            }
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Watcher {
            queue,
            store,
            state: std::sync::Mutex::new(state),
            folders: Arc::new(std::sync::Mutex::new(tree::Folders::default())),
            events_tx,
            events_rx: std::sync::Mutex::new(Some(events_rx)),
            wake: Notify::new(),
            changes: broadcast::channel(64).0,
            profiles: std::sync::Mutex::new(Arc::default()),
        }))
    }

    /// The config's export defaults and profiles, which watches with a profile are made
    /// with (ARCHITECTURE.md, "How a photo travels": the profile is read when jobs are made).
    pub fn set_profiles(&self, settings: ProfileSettings) {
        *lock(&self.profiles) = Arc::new(settings);
    }

    fn profile_settings(&self) -> Arc<ProfileSettings> {
        lock(&self.profiles).clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WatchChange> {
        self.changes.subscribe()
    }

    pub fn list(&self) -> Vec<WatchInfo> {
        let state = self.state();
        state
            .watches
            .values()
            .map(|live| WatchInfo {
                spec: live.spec.clone(),
                state: live.state.clone(),
                recorded: self.store.uploaded_count(live.spec.id),
            })
            .collect()
    }

    /// Adds a watch: persisted, watched and scanned (what is already in the folder is
    /// exported too). Returns its id.
    pub async fn add(self: &Arc<Self>, new: NewWatch) -> Result<u64, WatchError> {
        self.add_checked(new, true).await
    }

    /// Adds a watch declared in the config unless one for the same folders exists. Its folder
    /// may be missing (a card not inserted): the watch then waits for it.
    pub async fn ensure(self: &Arc<Self>, new: NewWatch) -> Result<(), WatchError> {
        if !self.is_watched(&new) {
            self.add_checked(new, false).await?;
        }
        Ok(())
    }

    async fn add_checked(
        self: &Arc<Self>,
        new: NewWatch,
        require_present: bool,
    ) -> Result<u64, WatchError> {
        if !new.local_dir.is_absolute() {
            return Err(WatchError::Invalid(format!(
                "{}: the folder to watch must be an absolute path",
                new.local_dir.display()
            )));
        }
        for pattern in new.include.iter().chain(&new.exclude) {
            rules::check_pattern(pattern).map_err(WatchError::Invalid)?;
        }
        let dir = new.local_dir.clone();
        let is_dir =
            tokio::task::spawn_blocking(move || std::fs::metadata(&dir).map(|m| m.is_dir()))
                .await
                .map_err(|e| WatchError::Invalid(e.to_string()))?;
        match is_dir {
            Ok(true) => {}
            _ if !require_present => {}
            Ok(false) => {
                return Err(WatchError::Invalid(format!(
                    "{}: not a folder",
                    new.local_dir.display()
                )));
            }
            Err(e) => {
                return Err(WatchError::Invalid(format!(
                    "{}: {e}",
                    new.local_dir.display()
                )));
            }
        }
        if self.is_watched(&new) {
            return Err(WatchError::Invalid(format!(
                "{} is already watched for {}",
                new.local_dir.display(),
                new.remote_folder
            )));
        }
        let spec = self
            .store
            .add(WatchSpec {
                id: 0,
                local_dir: new.local_dir,
                remote_folder: new.remote_folder,
                recursive: new.recursive,
                include: new.include,
                exclude: new.exclude,
                options: new.options,
                created_ms: crate::queue::now_ms(),
                profile: new.profile,
                overrides: new.overrides,
                folder_from_profile: new.folder_from_profile,
            })
            .await?;
        let id = spec.id;
        self.state().watches.insert(id, Live::new(spec));
        self.attach(id).await;
        Ok(id)
    }

    /// Whether a watch for the same folders exists already. A watch whose folder is its
    /// profile's is the same watch whatever that folder is now (the profile may have been
    /// edited since it was added).
    fn is_watched(&self, new: &NewWatch) -> bool {
        self.state().watches.values().any(|l| {
            l.spec.local_dir == new.local_dir
                && (l.spec.remote_folder == new.remote_folder
                    || (l.spec.folder_from_profile
                        && new.folder_from_profile
                        && l.spec.profile == new.profile))
        })
    }

    /// Stops and forgets a watch (its uploaded-index too). Jobs it already queued go on.
    pub async fn remove(&self, id: u64) -> Result<(), WatchError> {
        if self.state().watches.remove(&id).is_none() {
            return Err(WatchError::NotFound(id));
        }
        self.folders().release(id);
        {
            let mut state = self.state();
            state.settle.forget_watch(id);
            state.deferred.retain(|origin, _| origin.watch != id);
        }
        self.store.remove(id).await?;
        Ok(())
    }

    fn folders(&self) -> std::sync::MutexGuard<'_, tree::Folders> {
        lock(&self.folders)
    }

    /// Sets up inotify if it is not yet.
    fn ensure_inotify(&self) -> Result<(), notify::Error> {
        let mut folders = self.folders();
        if folders.watcher.is_none() {
            let tx = self.events_tx.clone();
            folders.watcher = Some(notify::recommended_watcher(move |event| {
                let _ = tx.send(event);
            })?);
        }
        Ok(())
    }

    fn set_state(&self, id: u64, next: WatchState) {
        let changed = {
            let mut state = self.state();
            match state.watches.get_mut(&id) {
                Some(live) if live.state != next => {
                    match &next {
                        WatchState::Active => {
                            tracing::info!(watch = id, "watching {}", live.spec.local_dir.display())
                        }
                        trouble => tracing::warn!(watch = id, "{}", trouble.reason()),
                    }
                    live.state = next.clone();
                    true
                }
                _ => false,
            }
        };
        if changed {
            let _ = self.changes.send(WatchChange { id, state: next });
        }
    }
}

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
//! (`WatchState` + reason, over D-Bus) and looked at again every [`RECOVERY`] until it can be
//! watched; then it is scanned. Nothing polls while every watch is healthy.
//!
//! Watch jobs carry their origin, and the queue runs them after files handed over by a caller.

pub mod rules;
pub mod store;
mod tree;
mod writers;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::export::ExportOptions;
use crate::prepare::{self, Access, SourceError, SourceFile, Stamp};
use crate::queue::{Filter, JobId, JobState, NewJob, Origin, Queue, QueueError};
pub use rules::Rules;
pub use store::{FileId, Outcome, Store, Uploaded, WatchSpec};

/// How often a watch in trouble is looked at again.
const RECOVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    Active,
    /// The folder is not there (deleted, renamed, or its medium unmounted).
    Missing(String),
    /// The folder cannot be watched (permissions, inotify limits).
    Error(String),
}

impl WatchState {
    pub fn name(&self) -> &'static str {
        match self {
            WatchState::Active => "active",
            WatchState::Missing(_) => "missing",
            WatchState::Error(_) => "error",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            WatchState::Active => "",
            WatchState::Missing(reason) | WatchState::Error(reason) => reason,
        }
    }
}

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
}

struct Live {
    spec: WatchSpec,
    rules: Rules,
    state: WatchState,
    /// The device the folder was on when it was watched: another one after a mount change
    /// means the medium went (the mount point itself may stay, empty).
    root_dev: Option<u64>,
}

/// A file seen recently, not yet handed over (keyed by watch and path).
struct Candidate {
    /// Opened for writing (created or modified) and not yet closed or renamed in.
    writing: bool,
    last_event: Instant,
    /// The file at the last look; it is ready when a look finds it unchanged.
    stamp: Option<Stamp>,
}

#[derive(Default)]
struct State {
    watches: BTreeMap<u64, Live>,
    /// By watch and path: one folder may be watched for several Dropbox folders.
    candidates: HashMap<(u64, PathBuf), Candidate>,
    /// Files handed over whose jobs are not final yet.
    in_flight: HashMap<Origin, JobId>,
    /// Files that settled again while their job was in flight (edited after the job read
    /// them, or while it commits): looked at again when that job ends, so the edit goes too.
    deferred: HashMap<Origin, PathBuf>,
}

pub struct Watcher {
    queue: Queue,
    store: Store,
    settle: Duration,
    /// A file opened for writing and not closed is looked at again after this long without
    /// events (`watch.writer_idle_ms`); it goes only once no process has it open for writing.
    writer_idle: Duration,
    state: std::sync::Mutex<State>,
    /// The folders watched through inotify (its watcher None while inotify cannot be set up;
    /// then every watch is in Error). Never locked while `state` is wanted.
    folders: Arc<std::sync::Mutex<tree::Folders>>,
    events_tx: mpsc::UnboundedSender<notify::Result<notify::Event>>,
    events_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<notify::Result<notify::Event>>>>,
    /// New candidates or watches: the loop recomputes its deadlines.
    wake: Notify,
    changes: broadcast::Sender<WatchChange>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Dropbox path for `path` found by a watch: its place under the local folder, mirrored
/// under the remote folder, with the name the export gives it (a resized PNG becomes `.jpg`).
fn remote_path(spec: &WatchSpec, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(&spec.local_dir).ok()?;
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let name = parts.pop()?;
    parts.push(prepare::remote_name(&name, &spec.options.prepare));
    let folder = spec.remote_folder.trim_end_matches('/');
    Some(format!("{folder}/{}", parts.join("/")))
}

/// Why a folder cannot be watched, in words a user can act on.
fn watch_trouble(dir: &Path, e: &notify::Error) -> WatchState {
    use notify::ErrorKind;
    match &e.kind {
        ErrorKind::MaxFilesWatch => WatchState::Error(format!(
            "{}: the inotify watch limit is reached; raise fs.inotify.max_user_watches (sysctl) \
             or watch fewer folders",
            dir.display()
        )),
        ErrorKind::PathNotFound => {
            WatchState::Missing(format!("{}: the folder is not there", dir.display()))
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            WatchState::Missing(format!("{}: the folder is not there", dir.display()))
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            WatchState::Error(format!(
                "{}: permission denied; dbxportd must be able to read the folder",
                dir.display()
            ))
        }
        _ => WatchState::Error(format!("{}: cannot watch the folder: {e}", dir.display())),
    }
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
        let mut state = State::default();
        for spec in store.watches()? {
            let rules = Rules::new(&spec.include, &spec.exclude);
            state.watches.insert(
                spec.id,
                Live {
                    spec,
                    rules,
                    state: WatchState::Missing("not watched yet".into()),
                    root_dev: None,
                },
            );
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
            settle,
            writer_idle,
            state: std::sync::Mutex::new(state),
            folders: Arc::new(std::sync::Mutex::new(tree::Folders::default())),
            events_tx,
            events_rx: std::sync::Mutex::new(Some(events_rx)),
            wake: Notify::new(),
            changes: broadcast::channel(64).0,
        }))
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
        let known = self.state().watches.values().any(|l| {
            l.spec.local_dir == new.local_dir && l.spec.remote_folder == new.remote_folder
        });
        if !known {
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
        if self
            .state()
            .watches
            .values()
            .any(|l| l.spec.local_dir == new.local_dir && l.spec.remote_folder == new.remote_folder)
        {
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
            })
            .await?;
        let id = spec.id;
        let rules = Rules::new(&spec.include, &spec.exclude);
        self.state().watches.insert(
            id,
            Live {
                spec,
                rules,
                state: WatchState::Missing("not watched yet".into()),
                root_dev: None,
            },
        );
        self.attach(id).await;
        Ok(id)
    }

    /// Stops and forgets a watch (its uploaded-index too). Jobs it already queued go on.
    pub async fn remove(&self, id: u64) -> Result<(), WatchError> {
        if self.state().watches.remove(&id).is_none() {
            return Err(WatchError::NotFound(id));
        }
        self.folders().release(id);
        {
            let mut state = self.state();
            state.candidates.retain(|(watch, _), _| *watch != id);
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

    /// Starts watching a watch's folder (and, if recursive, its subfolders) and scans it; on
    /// trouble, records why.
    async fn attach(&self, id: u64) {
        let Some((dir, recursive, rules)) = self
            .state()
            .watches
            .get(&id)
            .map(|l| (l.spec.local_dir.clone(), l.spec.recursive, l.rules.clone()))
        else {
            return;
        };
        if let Err(e) = self.ensure_inotify() {
            self.set_state(id, watch_trouble(&dir, &e));
            return;
        }
        let folders = self.folders.clone();
        let scan_dir = dir.clone();
        let found = tokio::task::spawn_blocking(move || {
            tree::scan(&scan_dir, &scan_dir, recursive, &rules, &mut |folder| {
                lock(&folders).add(id, folder)
            })
        })
        .await;
        match found {
            Ok(Ok(files)) => {
                let root_dev = std::fs::metadata(&dir).ok().map(|m| m.dev());
                if let Some(live) = self.state().watches.get_mut(&id) {
                    live.root_dev = root_dev;
                }
                self.set_state(id, WatchState::Active);
                let now = Instant::now();
                let mut state = self.state();
                for (path, stamp) in files {
                    state.candidates.entry((id, path)).or_insert(Candidate {
                        writing: false,
                        last_event: now,
                        stamp: Some(stamp),
                    });
                }
            }
            Ok(Err(e)) => {
                self.folders().release(id);
                let state = match e {
                    tree::ScanError::Watch(e) => watch_trouble(&dir, &e),
                    tree::ScanError::Read(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        WatchState::Missing(format!("{}: the folder is not there", dir.display()))
                    }
                    tree::ScanError::Read(e) => {
                        WatchState::Error(format!("{}: cannot read the folder: {e}", dir.display()))
                    }
                };
                self.set_state(id, state);
            }
            Err(e) => {
                self.folders().release(id);
                self.set_state(id, WatchState::Error(format!("scan failed: {e}")));
            }
        }
        self.wake.notify_one();
    }

    /// Watches, settles and hands over files until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut events) = self
            .events_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut jobs = self.queue.subscribe();
        let mut mounts = mount_changes();
        let ids: Vec<u64> = self.state().watches.keys().copied().collect();
        for id in ids {
            self.attach(id).await;
        }
        loop {
            let (due, troubled) = {
                let state = self.state();
                let due = state
                    .candidates
                    .values()
                    .map(|c| {
                        c.last_event
                            + if c.writing {
                                self.writer_idle
                            } else {
                                self.settle
                            }
                    })
                    .min();
                let troubled = state
                    .watches
                    .values()
                    .any(|l| l.state != WatchState::Active);
                (due, troubled)
            };
            let wake = self.wake.notified();
            let settle = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let recovery = async {
                if troubled {
                    tokio::time::sleep(RECOVERY).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(event)) => self.on_event(event).await,
                    Some(Err(e)) => self.on_watch_error(e),
                    None => return,
                },
                job = jobs.recv() => match job {
                    Ok(event) => self.on_job(event.job).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync_in_flight(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = settle => self.settle_due().await,
                _ = recovery => self.recover().await,
                _ = mounts.changed() => self.check_roots(),
                _ = wake => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// The active watches an event at `path` is for: those watching the folder it is in
    /// (so never one reached through a link, a hidden folder or a skipped subfolder).
    fn watches_of(&self, state: &State, path: &Path) -> Vec<(u64, PathBuf)> {
        let Some(parent) = path.parent() else {
            return Vec::new();
        };
        let folders = self.folders();
        let Some(ids) = folders.of(parent) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| state.watches.get(id))
            .filter(|l| l.state == WatchState::Active)
            .map(|l| (l.spec.id, l.spec.local_dir.clone()))
            .collect()
    }

    async fn on_event(&self, event: notify::Event) {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
        let now = Instant::now();
        let mut lost_roots = Vec::new();
        let mut new_dirs = Vec::new();
        let mut closed: Vec<(u64, PathBuf, PathBuf)> = Vec::new();
        let gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        {
            let mut state = self.state();
            // The watched folder itself deleted, moved away or unmounted: its inotify watch is
            // gone even if a folder of that name is back already, so it is set up again.
            let root_gone = matches!(
                event.kind,
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            );
            for path in &event.paths {
                for live in state.watches.values() {
                    if live.state == WatchState::Active
                        && path == &live.spec.local_dir
                        && (root_gone || !path.is_dir())
                    {
                        lost_roots.push(live.spec.id);
                    }
                }
            }
            // A rename within the folder reports both paths: the file is at the second.
            let paths: Vec<&PathBuf> = match event.kind {
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                    event.paths.get(1).into_iter().collect()
                }
                _ => event.paths.iter().collect(),
            };
            if gone {
                // A subfolder deleted or moved out takes its inotify watches with it.
                let mut folders = self.folders();
                for path in &paths {
                    folders.forget_below(path);
                }
            }
            let targets: Vec<(u64, PathBuf, &PathBuf)> = paths
                .into_iter()
                .flat_map(|p| {
                    self.watches_of(&state, p)
                        .into_iter()
                        .map(move |(w, root)| (w, root, p))
                })
                .collect();
            for (watch, root, path) in targets {
                let live = &state.watches[&watch];
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if matches!(
                    event.kind,
                    EventKind::Create(CreateKind::Folder)
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                ) && tree::is_folder_beneath(&root, path)
                {
                    // A folder created or moved in: whatever it already holds is new too,
                    // unless it is hidden. A link to a folder is not a folder here.
                    if live.spec.recursive && !rules::never(&name) {
                        new_dirs.push((watch, root.clone(), path.clone()));
                    }
                    continue;
                }
                if !live.rules.takes(&name) {
                    continue;
                }
                let writing = match event.kind {
                    EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        state.candidates.remove(&(watch, path.clone()));
                        continue;
                    }
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                    | EventKind::Modify(ModifyKind::Name(_)) => false,
                    EventKind::Create(_) | EventKind::Modify(_) => true,
                    // Opening or reading changes nothing.
                    _ => continue,
                };
                let candidate =
                    state
                        .candidates
                        .entry((watch, path.clone()))
                        .or_insert(Candidate {
                            writing,
                            last_event: now,
                            stamp: None,
                        });
                candidate.writing = writing;
                candidate.last_event = now;
                candidate.stamp = None;
                if !writing {
                    // Closed or renamed in: the look now starts the settle time.
                    closed.push((watch, root, path.clone()));
                }
            }
        }
        if !closed.is_empty() {
            let paths: Vec<(PathBuf, PathBuf)> = closed
                .iter()
                .map(|(_, r, p)| (r.clone(), p.clone()))
                .collect();
            let stamps = tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .map(|(root, path)| prepare::stat_beneath(root, path).ok())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut state = self.state();
            for ((watch, _, path), stamp) in closed.into_iter().zip(stamps) {
                if let Some(candidate) = state.candidates.get_mut(&(watch, path))
                    && !candidate.writing
                {
                    candidate.stamp = stamp;
                }
            }
        }
        for id in lost_roots {
            self.lose(id);
        }
        for (watch, root, dir) in new_dirs {
            let rules = self.state().watches.get(&watch).map(|l| l.rules.clone());
            let Some(rules) = rules else {
                continue;
            };
            let folders = self.folders.clone();
            let scan_dir = dir.clone();
            let found = tokio::task::spawn_blocking(move || {
                tree::scan(&root, &scan_dir, true, &rules, &mut |folder| {
                    lock(&folders).add(watch, folder)
                })
            })
            .await;
            match found {
                Ok(Ok(files)) => {
                    let mut state = self.state();
                    for (path, stamp) in files {
                        state.candidates.entry((watch, path)).or_insert(Candidate {
                            writing: false,
                            last_event: now,
                            stamp: Some(stamp),
                        });
                    }
                }
                Ok(Err(e)) => tracing::warn!(
                    watch,
                    "{}: this new subfolder is not watched ({e:?}); the rest of the watch goes on",
                    dir.display()
                ),
                Err(_) => {}
            }
        }
    }

    /// The watched folder is gone: stop watching it until it is back.
    fn lose(&self, id: u64) {
        let dir = self
            .state()
            .watches
            .get(&id)
            .map(|l| l.spec.local_dir.clone());
        let Some(dir) = dir else {
            return;
        };
        self.folders().release(id);
        self.state().candidates.retain(|(watch, _), _| *watch != id);
        self.set_state(
            id,
            WatchState::Missing(format!(
                "{}: the folder was removed or its disk unmounted; watching again when it is back",
                dir.display()
            )),
        );
    }

    fn on_watch_error(&self, e: notify::Error) {
        tracing::warn!("inotify: {e}");
        // An error naming a watched folder itself makes that watch troubled; it is set up
        // again by `recover`. One naming a subfolder costs only that subfolder (logged above).
        let ids: Vec<(u64, PathBuf)> = {
            let state = self.state();
            state
                .watches
                .values()
                .filter(|l| e.paths.contains(&l.spec.local_dir))
                .map(|l| (l.spec.id, l.spec.local_dir.clone()))
                .collect()
        };
        for (id, path) in ids {
            self.set_state(id, watch_trouble(&path, &e));
        }
    }

    /// After a mount change: a watched folder whose medium went is lost (inotify says nothing
    /// when a file system is unmounted under a watch).
    fn check_roots(&self) {
        let lost: Vec<u64> = self
            .state()
            .watches
            .values()
            .filter(|l| l.state == WatchState::Active)
            .filter(|l| {
                std::fs::metadata(&l.spec.local_dir)
                    .map(|m| !m.is_dir() || Some(m.dev()) != l.root_dev)
                    .unwrap_or(true)
            })
            .map(|l| l.spec.id)
            .collect();
        for id in lost {
            self.lose(id);
        }
    }

    /// Looks again at watches in trouble.
    async fn recover(&self) {
        let troubled: Vec<u64> = self
            .state()
            .watches
            .values()
            .filter(|l| l.state != WatchState::Active)
            .map(|l| l.spec.id)
            .collect();
        for id in troubled {
            self.attach(id).await;
        }
    }

    /// Looks at candidates whose settle time has passed; hands over those that stayed the same
    /// since the last look (made when the writer closed the file, or by the scan) and that no
    /// process has open for writing.
    async fn settle_due(&self) {
        let now = Instant::now();
        let due: Vec<(u64, PathBuf, PathBuf)> = {
            let state = self.state();
            state
                .candidates
                .iter()
                .filter(|(_, c)| {
                    now >= c.last_event
                        + if c.writing {
                            self.writer_idle
                        } else {
                            self.settle
                        }
                })
                .filter_map(|((watch, path), _)| {
                    let root = state.watches.get(watch)?.spec.local_dir.clone();
                    Some((*watch, root, path.clone()))
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let looks: Vec<(PathBuf, PathBuf)> =
            due.iter().map(|(_, r, p)| (r.clone(), p.clone())).collect();
        let looked = tokio::task::spawn_blocking(move || {
            looks
                .iter()
                .map(|(root, path)| prepare::stat_beneath(root, path))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut settled: Vec<(u64, PathBuf, PathBuf, Stamp)> = Vec::new();
        {
            let mut state = self.state();
            for ((watch, root, path), look) in due.into_iter().zip(looked) {
                let key = (watch, path);
                let stamp = match look {
                    Ok(stamp) => stamp,
                    Err(e) => {
                        if matches!(e, SourceError::Symlink(_)) {
                            tracing::warn!(watch, "not exported: {e}");
                        }
                        state.candidates.remove(&key);
                        continue;
                    }
                };
                let Some(candidate) = state.candidates.get_mut(&key) else {
                    continue;
                };
                if candidate.stamp == Some(stamp) {
                    state.candidates.remove(&key);
                    let (watch, path) = key;
                    settled.push((watch, root, path, stamp));
                } else {
                    // Changed since the last look (or never looked at): another settle period.
                    candidate.stamp = Some(stamp);
                    candidate.writing = false;
                    candidate.last_event = now;
                }
            }
        }
        if settled.is_empty() {
            return;
        }
        let asks: Vec<(PathBuf, PathBuf, u64, u64)> = settled
            .iter()
            .map(|(_, root, path, stamp)| (root.clone(), path.clone(), stamp.dev, stamp.ino))
            .collect();
        let written = tokio::task::spawn_blocking(move || {
            let asks: Vec<(&Path, &Path, u64, u64)> = asks
                .iter()
                .map(|(r, p, dev, ino)| (r.as_path(), p.as_path(), *dev, *ino))
                .collect();
            writers::being_written(&asks)
        })
        .await
        .unwrap_or_default();
        let mut ready: BTreeMap<u64, Vec<(PathBuf, Stamp)>> = BTreeMap::new();
        {
            let mut state = self.state();
            for ((watch, _, path, stamp), written) in settled
                .into_iter()
                .zip(written.into_iter().chain(std::iter::repeat(true)))
            {
                if written {
                    // Quiet, but some program still has it open for writing (a stalled copy
                    // or download): it waits for the close, whose event brings it back.
                    tracing::info!(
                        watch,
                        "{}: still open for writing by another program; waiting until it is \
                         closed",
                        path.display()
                    );
                    state.candidates.entry((watch, path)).or_insert(Candidate {
                        writing: true,
                        last_event: now,
                        stamp: None,
                    });
                } else {
                    ready.entry(watch).or_default().push((path, stamp));
                }
            }
        }
        for (watch, files) in ready {
            if let Err(e) = self.hand_over(watch, files).await {
                tracing::warn!(watch, "could not queue found files: {e}");
            }
        }
    }

    /// Queues the settled files of one watch that the index does not know as uploaded.
    async fn hand_over(&self, watch: u64, files: Vec<(PathBuf, Stamp)>) -> Result<(), QueueError> {
        let Some(spec) = self.state().watches.get(&watch).map(|l| l.spec.clone()) else {
            return Ok(());
        };
        let store = self.store.clone();
        let in_flight: Vec<Origin> = {
            let mut state = self.state();
            let busy: Vec<(Origin, PathBuf)> = files
                .iter()
                .map(|(path, stamp)| {
                    let origin = Origin {
                        watch,
                        dev: stamp.dev,
                        ino: stamp.ino,
                    };
                    (origin, path.clone())
                })
                .filter(|(o, _)| state.in_flight.contains_key(o))
                .collect();
            let origins = busy.iter().map(|(o, _)| *o).collect();
            state.deferred.extend(busy);
            origins
        };
        let spec_for_check = spec.clone();
        let new_jobs = tokio::task::spawn_blocking(move || {
            let mut jobs = Vec::new();
            let access = Access::Beneath {
                root: spec_for_check.local_dir.clone(),
            };
            for (path, stamp) in files {
                let file = FileId {
                    dev: stamp.dev,
                    ino: stamp.ino,
                };
                let origin = Origin {
                    watch,
                    dev: file.dev,
                    ino: file.ino,
                };
                if in_flight.contains(&origin) {
                    continue;
                }
                let source = SourceFile {
                    path: path.clone(),
                    access: access.clone(),
                    expect: Some(stamp),
                };
                let known = store.uploaded(watch, file)?;
                if let Some(known) = known.clone()
                    && known.size == stamp.size
                {
                    // ctime too: an edit in place can put size and mtime back, not ctime.
                    let same = if known.mtime_ms == stamp.mtime_ms
                        && known.ctime_ns.is_none_or(|c| c == stamp.ctime_ns)
                    {
                        true
                    } else if let Some(hash) = &known.hash {
                        // Touched: the same bytes need no upload; a failed file is tried again.
                        prepare::hash_whole(&source).is_ok_and(|(_, h)| &h == hash)
                    } else {
                        false
                    };
                    if same {
                        if known.path != path
                            || known.mtime_ms != stamp.mtime_ms
                            || known.ctime_ns != Some(stamp.ctime_ns)
                        {
                            store.record(
                                watch,
                                file,
                                &Uploaded {
                                    path: path.clone(),
                                    mtime_ms: stamp.mtime_ms,
                                    ctime_ns: Some(stamp.ctime_ns),
                                    ..known
                                },
                            )?;
                        }
                        continue;
                    }
                }
                let Some(mut remote_path) = remote_path(&spec_for_check, &path) else {
                    continue;
                };
                // A file that only grew since it went up (it was taken while a writer we could
                // not see still had it) is that photo finished: it replaces the upload.
                let mut replaces_rev = None;
                if let Some(Uploaded {
                    outcome: Outcome::Done,
                    size,
                    hash: Some(hash),
                    remote_path: Some(earlier),
                    rev: Some(rev),
                    ..
                }) = known
                    && stamp.size > size
                    && prepare::hash_first(&source, size).is_ok_and(|(_, h)| h == hash)
                {
                    tracing::info!(
                        watch,
                        "{}: grew since it went up half-written; replacing {earlier}",
                        path.display()
                    );
                    remote_path = earlier;
                    replaces_rev = Some(rev);
                }
                jobs.push(NewJob {
                    source: path,
                    remote_path,
                    stamp,
                    access: access.clone(),
                    replaces_rev,
                    options: spec_for_check.options.clone(),
                    origin: Some(origin),
                });
            }
            Ok::<_, QueueError>(jobs)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))??;
        if new_jobs.is_empty() {
            return Ok(());
        }
        let folder = spec.remote_folder.clone();
        tracing::info!(
            watch,
            "{} new file(s) in {} for {folder}",
            new_jobs.len(),
            spec.local_dir.display()
        );
        let (_, jobs) = self.queue.enqueue(&folder, new_jobs).await?;
        let mut state = self.state();
        for job in jobs {
            if let Some(origin) = job.origin {
                state.in_flight.insert(origin, job.id);
            }
        }
        Ok(())
    }

    /// A watch job ended. A Done was recorded in the index by the queue, with the Done itself;
    /// a failure or cancellation is recorded here, so the file is not handed over again until
    /// it changes (`dbxportctl retry` sends it again).
    async fn on_job(&self, job: crate::queue::Job) {
        let Some(origin) = job.origin else {
            return;
        };
        let outcome = match &job.state {
            JobState::Done { .. } => Outcome::Done,
            JobState::Failed { .. } => Outcome::Failed,
            JobState::Cancelled => Outcome::Cancelled,
            _ => return,
        };
        self.state().in_flight.remove(&origin);
        self.look_again(&[origin]);
        if outcome == Outcome::Done || !self.state().watches.contains_key(&origin.watch) {
            return;
        }
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.record(
                origin.watch,
                FileId {
                    dev: origin.dev,
                    ino: origin.ino,
                },
                &Uploaded {
                    path: job.source.clone(),
                    size: job.source_size,
                    mtime_ms: job.source_mtime_ms,
                    ctime_ns: (job.source_ino != 0).then_some(job.source_ctime_ns),
                    hash: None,
                    remote_path: None,
                    rev: None,
                    outcome,
                },
            )
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::warn!("could not record an uploaded file: {e}");
        }
    }

    /// Missed some job events: rebuild what is in flight from the queue.
    fn resync_in_flight(&self) {
        let Ok(active) = self.queue.list(Filter::Active) else {
            return;
        };
        let ended: Vec<Origin> = {
            let mut state = self.state();
            state.in_flight = active
                .into_iter()
                .filter_map(|j| j.origin.map(|o| (o, j.id)))
                .collect();
            let in_flight = &state.in_flight;
            state
                .deferred
                .keys()
                .filter(|o| !in_flight.contains_key(o))
                .copied()
                .collect()
        };
        self.look_again(&ended);
    }

    /// Files deferred while their jobs ran become candidates again (the index then decides
    /// whether what is there now still needs to go).
    fn look_again(&self, ended: &[Origin]) {
        let mut state = self.state();
        let now = Instant::now();
        let mut any = false;
        for origin in ended {
            if let Some(path) = state.deferred.remove(origin) {
                state
                    .candidates
                    .entry((origin.watch, path))
                    .or_insert(Candidate {
                        writing: false,
                        last_event: now,
                        stamp: None,
                    });
                any = true;
            }
        }
        drop(state);
        if any {
            self.wake.notify_one();
        }
    }
}

/// Mount and unmount events, from `/proc/self/mountinfo` (the kernel marks it readable with
/// priority on every change): no polling. If it cannot be opened, `changed` never resolves.
struct MountChanges {
    fd: Option<tokio::io::unix::AsyncFd<std::fs::File>>,
}

fn mount_changes() -> MountChanges {
    let fd = std::fs::File::open("/proc/self/mountinfo")
        .ok()
        .and_then(|file| {
            // SAFETY: the File owns its descriptor, and the AsyncFd owns the File until dropped.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    file,
                    tokio::io::Interest::PRIORITY,
                )
            }
            .ok()
        });
    MountChanges { fd }
}

impl MountChanges {
    async fn changed(&mut self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        match fd.ready(tokio::io::Interest::PRIORITY).await {
            Ok(mut guard) => {
                // Reading the table again from the start re-arms the notification.
                use std::io::{Read, Seek};
                let mut file = fd.get_ref();
                let _ = file.seek(std::io::SeekFrom::Start(0));
                let _ = std::io::copy(&mut file.take(1 << 20), &mut std::io::sink());
                guard.clear_ready();
            }
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(recursive: bool) -> WatchSpec {
        WatchSpec {
            id: 1,
            local_dir: "/home/u/Camera".into(),
            remote_folder: "/Camera".into(),
            recursive,
            include: vec![],
            exclude: vec![],
            options: ExportOptions::default(),
            created_ms: 0,
        }
    }

    /// One test, not two: tests run in parallel in one mount namespace, so a test that waits
    /// for quiet would see another's mount.
    #[tokio::test]
    async fn mount_changes_are_noticed_quiet_otherwise_and_rearm() {
        let dir = tempfile::tempdir().unwrap();
        let mut mounts = mount_changes();
        assert!(mounts.fd.is_some(), "/proc/self/mountinfo can be watched");
        // Not ready while nothing changes (else the loop would spin): a wait must time out.
        let quiet = tokio::time::timeout(Duration::from_millis(300), mounts.changed()).await;
        assert!(quiet.is_err());
        let mount = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .is_ok_and(|s| s.success())
        };
        let target = dir.path().to_str().unwrap();
        if !mount(&["mount", "-t", "tmpfs", "none", target]) {
            eprintln!("skipped: mounting needs privileges this test run does not have");
            return;
        }
        let seen = tokio::time::timeout(Duration::from_secs(5), mounts.changed()).await;
        assert!(mount(&["umount", target]));
        assert!(seen.is_ok(), "the mount was not noticed");
        // The unmount is a second change, noticed too.
        let seen = tokio::time::timeout(Duration::from_secs(5), mounts.changed()).await;
        assert!(seen.is_ok(), "the unmount was not noticed");
        let quiet = tokio::time::timeout(Duration::from_millis(300), mounts.changed()).await;
        assert!(quiet.is_err(), "still ready after being read");
    }

    #[test]
    fn trouble_is_told_in_words_a_user_can_act_on() {
        let dir = Path::new("/media/card/DCIM");
        let limit = watch_trouble(dir, &notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert_eq!(limit.name(), "error");
        assert!(limit.reason().contains("fs.inotify.max_user_watches"));
        let gone = watch_trouble(dir, &notify::Error::path_not_found());
        assert_eq!(gone.name(), "missing");
        assert!(gone.reason().contains("/media/card/DCIM"));
        let denied = watch_trouble(
            dir,
            &notify::Error::io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        );
        assert_eq!(denied.name(), "error");
        assert!(denied.reason().contains("permission denied"));
    }

    #[test]
    fn remote_paths_mirror_subfolders() {
        let s = spec(true);
        assert_eq!(
            remote_path(&s, Path::new("/home/u/Camera/2026/05/IMG_1.JPG")).as_deref(),
            Some("/Camera/2026/05/IMG_1.JPG")
        );
        assert_eq!(
            remote_path(&s, Path::new("/home/u/Camera/a.jpg")).as_deref(),
            Some("/Camera/a.jpg")
        );
        assert_eq!(remote_path(&s, Path::new("/elsewhere/a.jpg")), None);
    }
}

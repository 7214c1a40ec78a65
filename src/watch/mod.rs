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

mod intake;
mod mounts;
pub mod rules;
mod settle;
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
use crate::prepare::{self, SourceError, Stamp};
use crate::queue::{Filter, JobId, JobState, Origin, Queue, QueueError};
use mounts::mount_changes;
pub use rules::Rules;
use settle::{Settle, Touch, Verdict};
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
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
                    state.settle.found((id, path), stamp, now);
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
                let due = state.settle.next_due();
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
                let touch = match event.kind {
                    EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Touch::Gone,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                    | EventKind::Modify(ModifyKind::Name(_)) => Touch::Closed,
                    EventKind::Create(_) | EventKind::Modify(_) => Touch::Writing,
                    // Opening or reading changes nothing.
                    _ => continue,
                };
                if state.settle.touched((watch, path.clone()), touch, now) {
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
                state.settle.looked(&(watch, path), stamp);
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
                        state.settle.found((watch, path), stamp, now);
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
        self.state().settle.forget_watch(id);
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
                .settle
                .due(now)
                .into_iter()
                .filter_map(|(watch, path)| {
                    let root = state.watches.get(&watch)?.spec.local_dir.clone();
                    Some((watch, root, path))
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
                if let Err(SourceError::Symlink(_)) = &look
                    && let Err(e) = &look
                {
                    tracing::warn!(watch, "not exported: {e}");
                }
                if let Verdict::Settled(stamp) = state.settle.judge(&key, look.ok(), now) {
                    let (watch, path) = key;
                    settled.push((watch, root, path, stamp));
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
                    state.settle.still_written((watch, path), now);
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
            intake::jobs_for(&store, &spec_for_check, files, &in_flight)
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
                state.settle.again((origin.watch, path), now);
                any = true;
            }
        }
        drop(state);
        if any {
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

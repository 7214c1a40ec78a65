//! The watch loop: one task that routes inotify events to the watches whose folders they are
//! in, and wakes for job ends, mount changes, settle deadlines and — only while a watch is in
//! trouble — recovery. It waits on these; nothing ticks while every watch is healthy.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::health::{WatchState, watch_trouble};
use super::mounts::mount_changes;
use super::settle::Touch;
use super::{State, Watcher, rules, tree};
use crate::prepare;

/// How often a watch in trouble is looked at again.
const RECOVERY: Duration = Duration::from_secs(2);

impl Watcher {
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
        self.scan_new_folders(new_dirs, now).await;
    }

    /// The watched folder is gone: stop watching it until it is back.
    pub(super) fn lose(&self, id: u64) {
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
}

//! Catch-up scanning: inotify tells only what happens from now on, so what a folder already
//! holds — when its watch starts, when it comes back, when a subfolder is created or moved in —
//! is found by listing it. Each folder joins the watch's inotify watches before it is listed,
//! so nothing falls between the listing and the events.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tokio::time::Instant;

use super::health::{WatchState, watch_trouble};
use super::{Rules, Watcher, lock, tree};

impl Watcher {
    /// Starts watching a watch's folder (and, if recursive, its subfolders) and scans it; on
    /// trouble, records why.
    pub(super) async fn attach(&self, id: u64) {
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
        match self
            .scan(id, dir.clone(), dir.clone(), recursive, rules)
            .await
        {
            Ok(Ok(files)) => {
                let root_dev = std::fs::metadata(&dir).ok().map(|m| m.dev());
                if let Some(live) = self.state().watches.get_mut(&id) {
                    live.root_dev = root_dev;
                }
                self.set_state(id, WatchState::Active);
                self.found(id, files, Instant::now());
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

    /// Folders created or moved into recursive watches: whatever they already hold becomes a
    /// candidate, seen at `now`. A subfolder that cannot be watched costs only itself.
    pub(super) async fn scan_new_folders(
        &self,
        new_dirs: Vec<(u64, PathBuf, PathBuf)>,
        now: Instant,
    ) {
        for (watch, root, dir) in new_dirs {
            let rules = self.state().watches.get(&watch).map(|l| l.rules.clone());
            let Some(rules) = rules else {
                continue;
            };
            match self.scan(watch, root, dir.clone(), true, rules).await {
                Ok(Ok(files)) => self.found(watch, files, now),
                Ok(Err(e)) => tracing::warn!(
                    watch,
                    "{}: this new subfolder is not watched ({e:?}); the rest of the watch goes on",
                    dir.display()
                ),
                Err(_) => {}
            }
        }
    }

    /// Lists `dir` (the watch's folder `root`, or a folder in it) off the runtime, adding each
    /// folder it enters to the watch's inotify watches first.
    async fn scan(
        &self,
        id: u64,
        root: PathBuf,
        dir: PathBuf,
        recursive: bool,
        rules: Rules,
    ) -> Result<Result<Vec<tree::Found>, tree::ScanError>, tokio::task::JoinError> {
        let folders = self.folders.clone();
        tokio::task::spawn_blocking(move || {
            tree::scan(&root, &dir, recursive, &rules, &mut |folder| {
                lock(&folders).add(id, folder)
            })
        })
        .await
    }

    /// Files a scan found become candidates, seen at `now`.
    fn found(&self, id: u64, files: Vec<tree::Found>, now: Instant) {
        let mut state = self.state();
        for (path, stamp) in files {
            state.settle.found((id, path), stamp, now);
        }
    }
}

//! The folders a watch covers: which ones get an inotify watch, and the scan that finds the
//! files already in them.
//!
//! Each folder has its own non-recursive inotify watch, set up here rather than by `notify`'s
//! recursive mode, because a watch must decide folder by folder:
//! - never through a symbolic link: a link to a folder (`DIR/sshdir -> ~/.ssh`) is not a
//!   subfolder, whether it was there when the watch began or appeared later;
//! - never into a hidden folder (`.thumbnails/`, `.git/`): nothing in it is taken, so it is not
//!   watched either, which also spares inotify watches;
//! - a subfolder that cannot be read or watched (a root-owned `lost+found`) is skipped with a
//!   warning naming it, and the rest of the watch goes on; only the watched folder itself
//!   decides the watch's state.
//!
//! A folder is watched before it is listed, so a file created in between is not missed.
//! Several watches may cover one folder (one folder exported to two Dropbox folders); its
//! inotify watch goes when the last of them does.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::rules::{self, Rules};
use crate::prepare::{SourceError, Stamp, stat_beneath};

/// A file found by a scan, as it was then.
pub(super) type Found = (PathBuf, Stamp);

/// The inotify watches, one per folder, and the watches (by id) that want each.
#[derive(Default)]
pub(super) struct Folders {
    pub watcher: Option<notify::RecommendedWatcher>,
    wanted: HashMap<PathBuf, BTreeSet<u64>>,
}

impl Folders {
    /// Watches `dir` for watch `id` (the inotify watch is shared).
    pub fn add(&mut self, id: u64, dir: &Path) -> Result<(), notify::Error> {
        use notify::Watcher as _;
        if let Some(ids) = self.wanted.get_mut(dir) {
            ids.insert(id);
            return Ok(());
        }
        let watcher = self
            .watcher
            .as_mut()
            .ok_or_else(|| notify::Error::generic("inotify is not set up"))?;
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
        self.wanted.insert(dir.to_path_buf(), BTreeSet::from([id]));
        Ok(())
    }

    /// Watch `id` no longer wants anything (removed, or its folder is gone).
    pub fn release(&mut self, id: u64) {
        self.release_where(|wanted_id, _| wanted_id == id);
    }

    /// `dir` and everything below it went away (deleted, or moved out).
    pub fn forget_below(&mut self, dir: &Path) {
        self.release_where(|_, path| path.starts_with(dir));
    }

    fn release_where(&mut self, gone: impl Fn(u64, &Path) -> bool) {
        use notify::Watcher as _;
        let mut unwatch = Vec::new();
        for (path, ids) in &mut self.wanted {
            ids.retain(|id| !gone(*id, path));
            if ids.is_empty() {
                unwatch.push(path.clone());
            }
        }
        for path in unwatch {
            self.wanted.remove(&path);
            if let Some(watcher) = self.watcher.as_mut() {
                // Already gone with its folder, often; that is fine.
                let _ = watcher.unwatch(&path);
            }
        }
    }

    /// The watches that want events from `dir`.
    pub fn of(&self, dir: &Path) -> Option<&BTreeSet<u64>> {
        self.wanted.get(dir)
    }
}

/// Whether `path` is a real folder beneath `root`: reached without a link, not a link itself.
pub(super) fn is_folder_beneath(root: &Path, path: &Path) -> bool {
    path == root || matches!(stat_beneath(root, path), Err(SourceError::Directory(_)))
}

/// Why the folder at the top of a scan could not be scanned.
#[derive(Debug)]
pub(super) enum ScanError {
    Watch(notify::Error),
    Read(std::io::Error),
}

/// The files under `dir` (the watched folder `root`, or a folder in it) that `rules` take,
/// descending into subfolders if `recursive`. Every folder is passed to `enter` (which sets up
/// its inotify watch) before it is listed. Subfolders that cannot be entered or read are
/// skipped with a warning. Blocking.
pub(super) fn scan(
    root: &Path,
    dir: &Path,
    recursive: bool,
    rules: &Rules,
    enter: &mut dyn FnMut(&Path) -> Result<(), notify::Error>,
) -> Result<Vec<Found>, ScanError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let top = current == dir;
        if let Err(e) = enter(&current) {
            if top {
                return Err(ScanError::Watch(e));
            }
            tracing::warn!(
                "{}: this subfolder is not watched ({e}); the rest of the watch goes on. Make \
                 it readable to dbxportd, or exclude it",
                current.display()
            );
            continue;
        }
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if top => return Err(ScanError::Read(e)),
            Err(e) => {
                tracing::warn!(
                    "{}: this subfolder cannot be read ({e}); the rest of the watch goes on",
                    current.display()
                );
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // The entry's own type: a link is a link here, never what it points at.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if recursive && !rules::never(&name) && is_folder_beneath(root, &path) {
                    pending.push(path);
                }
            } else if kind.is_file()
                && rules.takes(&name)
                && let Ok(stamp) = stat_beneath(root, &path)
            {
                found.push((path, stamp));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, found: &[Found]) -> Vec<String> {
        let mut names: Vec<String> = found
            .iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_scan_takes_photos_and_skips_hidden_folders_links_and_unreadable_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Camera");
        let private = dir.path().join("private");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::write(private.join("key.jpg"), b"secret").unwrap();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".thumbnails")).unwrap();
        std::fs::create_dir_all(root.join("locked")).unwrap();
        for f in [
            "a.jpg",
            "b.txt",
            "sub/c.JPG",
            "sub/deeper/d.mov",
            ".thumbnails/e.jpg",
            "f.jpg.part",
            "locked/g.jpg",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(&private, root.join("linked")).unwrap();
        std::os::unix::fs::symlink(private.join("key.jpg"), root.join("IMG_0001.jpg")).unwrap();
        let rules = Rules::new(&[], &[]);
        let mut entered = Vec::new();
        let locked = root.join("locked");
        let found = scan(&root, &root, true, &rules, &mut |d| {
            entered.push(d.to_path_buf());
            // What a folder dbxportd may not read does (root runs the tests, so it is played).
            if d == locked {
                return Err(notify::Error::io(std::io::Error::from(
                    std::io::ErrorKind::PermissionDenied,
                )));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            names(&root, &found),
            ["a.jpg", "sub/c.JPG", "sub/deeper/d.mov"]
        );
        entered.sort();
        assert_eq!(
            entered,
            [
                root.clone(),
                root.join("locked"),
                root.join("sub"),
                root.join("sub/deeper")
            ]
        );
        let flat = scan(&root, &root, false, &rules, &mut |_| Ok(())).unwrap();
        assert_eq!(names(&root, &flat), ["a.jpg"]);
        // The top folder's own trouble is the caller's to report.
        assert!(matches!(
            scan(&root, &root, true, &rules, &mut |_| Err(
                notify::Error::generic("no")
            )),
            Err(ScanError::Watch(_))
        ));
    }

    #[test]
    fn linked_folders_are_not_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/.cache/b")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
        assert!(is_folder_beneath(root, &root.join("a")));
        assert!(is_folder_beneath(root, root));
        assert!(!is_folder_beneath(root, &root.join("link")));
        assert!(!is_folder_beneath(root, &root.join("link/.cache")));
    }
}

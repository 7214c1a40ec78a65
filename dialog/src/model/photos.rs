//! The photos the dialog was given: each checked as `Upload` would check it, before any call,
//! so a file the daemon would refuse is named in the window and the rest can still be sent
//! (`Upload` refuses a call as a whole when one path is bad: the README, "D-Bus API").

use std::path::{Path, PathBuf};

/// A file that will be handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub path: PathBuf,
    pub size: u64,
}

impl Photo {
    /// The file name, as the list shows it.
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// A file that cannot be handed over, and why (the product's own wording, naming the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: PathBuf,
    pub reason: String,
}

/// The photo list: what goes, and what was refused.
#[derive(Debug, Clone, Default)]
pub struct Photos {
    items: Vec<Photo>,
    refused: Vec<Refused>,
}

impl Photos {
    /// The files given on the command line or picked in the file chooser, checked with the
    /// product's own check (`dbxport::prepare::check_source`: absolute, present, a regular
    /// file). A stat per file: quick enough for hundreds at start-up.
    pub fn from_paths(paths: impl IntoIterator<Item = PathBuf>) -> Photos {
        let mut photos = Photos::default();
        photos.add(paths);
        photos
    }

    /// Adds files; one already in the list is not added twice. Returns how many were added.
    pub fn add(&mut self, paths: impl IntoIterator<Item = PathBuf>) -> usize {
        let mut added = 0;
        for path in paths {
            let path = std::path::absolute(&path).unwrap_or(path);
            if self.items.iter().any(|p| p.path == path) {
                continue;
            }
            self.refused.retain(|r| r.path != path);
            match dbxport::prepare::check_source(&path) {
                Ok(stamp) => {
                    self.items.push(Photo {
                        path,
                        size: stamp.size,
                    });
                    added += 1;
                }
                Err(e) => self.refused.push(Refused {
                    path,
                    reason: e.to_string(),
                }),
            }
        }
        added
    }

    /// Removes the entry at `index` (as listed); returns it.
    pub fn remove(&mut self, index: usize) -> Option<Photo> {
        (index < self.items.len()).then(|| self.items.remove(index))
    }

    /// Forgets a refused entry (the user has seen it).
    pub fn dismiss_refused(&mut self, index: usize) {
        if index < self.refused.len() {
            self.refused.remove(index);
        }
    }

    pub fn items(&self) -> &[Photo] {
        &self.items
    }

    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    pub fn count(&self) -> usize {
        self.items.len()
    }

    pub fn total_size(&self) -> u64 {
        self.items.iter().map(|p| p.size).sum()
    }

    /// "3 photos, 12.4 MB".
    pub fn summary(&self) -> String {
        crate::i18n::tr_n(
            "{n} photo, {size}",
            "{n} photos, {size}",
            self.count() as u64,
        )
        .replace("{n}", &self.count().to_string())
        .replace("{size}", &super::human_size(self.total_size()))
    }
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sizes_removes_and_names_what_cannot_go() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jpg");
        let b = dir.path().join("b.jpg");
        std::fs::write(&a, vec![0u8; 1000]).unwrap();
        std::fs::write(&b, vec![0u8; 500]).unwrap();
        let missing = dir.path().join("gone.jpg");
        let mut photos = Photos::from_paths([a.clone(), missing.clone(), dir.path().into()]);
        assert_eq!(photos.count(), 1);
        assert_eq!(photos.total_size(), 1000);
        // Each refused file is named with its reason; the others still go.
        assert_eq!(photos.refused().len(), 2);
        assert_eq!(photos.refused()[0].path, missing);
        assert!(photos.refused()[0].reason.contains("gone.jpg"));
        assert!(photos.refused()[0].reason.contains("no such file"));
        assert!(photos.refused()[1].reason.contains("is a directory"));
        // Adding: no duplicates.
        assert_eq!(photos.add([b.clone(), a.clone()]), 1);
        assert_eq!(photos.count(), 2);
        assert_eq!(photos.total_size(), 1500);
        assert_eq!(photos.summary(), "2 photos, 1.5 kB");
        assert_eq!(photos.remove(0).unwrap().path, a);
        assert_eq!(photos.items()[0].name(), "b.jpg");
        assert_eq!(photos.remove(5), None);
        assert_eq!(photos.summary(), "1 photo, 500 B");
    }
}

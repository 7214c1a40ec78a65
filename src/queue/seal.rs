//! Telling a damaged queue database from an intact one, and keeping what sled would drop.
//!
//! sled checks its log as it opens it and, where a record is damaged, cuts the log there and
//! goes on: the daemon would start with part of the queue gone and nobody told. So a clean stop
//! writes a *seal* beside the database — how many job and batch records it holds and the
//! highest ids — and the next start compares. Job and batch records are only ever added or
//! rewritten, never removed, so an intact database holds at least what its seal says; fewer
//! means damage. After a crash there is no seal (it is removed once a start has checked it) and
//! sled's ordinary recovery of a torn tail is trusted.
//!
//! Before sled opens the database at all, its files are copied to `<db>.previous`, so whatever
//! sled cuts off can still be had back by hand.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a cleanly stopped database held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub jobs: u64,
    pub batches: u64,
    pub last_job: u64,
    pub last_batch: u64,
}

impl Seal {
    pub fn of(jobs: &sled::Tree, batches: &sled::Tree) -> sled::Result<Seal> {
        let last = |tree: &sled::Tree| -> sled::Result<u64> {
            Ok(tree
                .last()?
                .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
                .map_or(0, u64::from_be_bytes))
        };
        Ok(Seal {
            jobs: jobs.len() as u64,
            batches: batches.len() as u64,
            last_job: last(jobs)?,
            last_batch: last(batches)?,
        })
    }

    /// True if `self` (found now) holds less than `sealed` (left at the last clean stop).
    pub fn lost_from(&self, sealed: &Seal) -> bool {
        self.jobs < sealed.jobs
            || self.batches < sealed.batches
            || self.last_job < sealed.last_job
            || self.last_batch < sealed.last_batch
    }
}

impl fmt::Display for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} jobs and {} batches (last job {}, last batch {})",
            self.jobs, self.batches, self.last_job, self.last_batch
        )
    }
}

fn seal_path(db: &Path) -> PathBuf {
    db.with_extension("seal")
}

/// The copy taken before each open.
pub fn backup_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    db.with_file_name(name)
}

/// The seal of the last clean stop, if there is a readable one.
pub fn read(db: &Path) -> Option<Seal> {
    serde_json::from_slice(&std::fs::read(seal_path(db)).ok()?).ok()
}

pub fn remove(db: &Path) {
    let _ = std::fs::remove_file(seal_path(db));
}

/// Writes the seal atomically (a torn seal would read as none, which is safe).
pub fn write(db: &Path, seal: &Seal) -> std::io::Result<()> {
    let path = seal_path(db);
    let tmp = path.with_extension("seal.part");
    std::fs::write(&tmp, serde_json::to_vec(seal).expect("a seal serializes"))?;
    std::fs::rename(&tmp, &path)
}

/// Replaces `to` with a copy of the files of `from` (sled keeps a flat folder; nested folders
/// are copied too, to be safe).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let fresh = to.with_extension("part");
    let _ = std::fs::remove_dir_all(&fresh);
    copy_tree(from, &fresh)?;
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&fresh, to)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            // copy_file_range underneath: a reflink or an in-kernel copy where the file system can.
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_records_or_lower_ids_than_sealed_is_damage() {
        let sealed = Seal {
            jobs: 5,
            batches: 1,
            last_job: 7,
            last_batch: 2,
        };
        assert!(!sealed.lost_from(&sealed));
        let more = Seal {
            jobs: 6,
            last_job: 9,
            ..sealed
        };
        assert!(!more.lost_from(&sealed), "later writes only add");
        for lost in [
            Seal { jobs: 4, ..sealed },
            Seal {
                last_job: 6,
                ..sealed
            },
            Seal {
                batches: 0,
                ..sealed
            },
        ] {
            assert!(lost.lost_from(&sealed), "{lost}");
        }
    }

    #[test]
    fn paths_sit_beside_the_database() {
        let db = Path::new("/s/dbxport/queue.sled");
        assert_eq!(backup_path(db), Path::new("/s/dbxport/queue.sled.previous"));
        assert_eq!(seal_path(db), Path::new("/s/dbxport/queue.seal"));
    }
}

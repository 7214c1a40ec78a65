//! Jobs that write the same Dropbox file, and the order they run in.
//!
//! Dropbox compares paths without letter case (`path_lower`), so `cam1/IMG_0001.JPG` and
//! `cam2/IMG_0001.JPG` sent to one folder, or `a.jpg` and `A.JPG`, are one Dropbox file. Run
//! at once, two such jobs race: under `overwrite` one photo silently replaces the other and
//! both say "uploaded"; under the renaming policies their commits, and the search for a lost
//! commit's file, see each other's half-done work. So among the unfinished jobs of the whole
//! queue, those with one path run one at a time, in the order they were handed over: the last
//! one handed over is the last one written (under `overwrite` it wins, as asked), and under
//! `rename` and `skip-identical` Dropbox gives the later one a name of its own, or finds it
//! already there.
//!
//! A caller who hands over two files for one path in the same `Upload` under `overwrite` is
//! refused instead (see [`collisions`]): one photo replacing another from the same batch is
//! never what was meant.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::{JobId, NewJob};
use crate::dropbox::path::path_key;
use crate::export::Conflict;

/// A Dropbox path as the index keeps it: its lowercased form, hashed, so that each unfinished
/// job costs 16 bytes here rather than a string of its own. Two paths whose hashes collide
/// (one in 2^64) only run one after the other, which is always safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PathKey(u64);

impl PathKey {
    pub(super) fn of(remote_path: &str) -> PathKey {
        let mut hasher = std::hash::DefaultHasher::new();
        path_key(remote_path).hash(&mut hasher);
        PathKey(hasher.finish())
    }
}

/// The unfinished jobs by Dropbox path, in id order.
#[derive(Default)]
pub(super) struct SamePath {
    by_key: BTreeSet<(PathKey, JobId)>,
}

impl SamePath {
    pub(super) fn insert(&mut self, path: PathKey, id: JobId) {
        self.by_key.insert((path, id));
    }

    pub(super) fn remove(&mut self, path: PathKey, id: JobId) {
        self.by_key.remove(&(path, id));
    }

    fn ids(&self, path: PathKey) -> impl DoubleEndedIterator<Item = JobId> + '_ {
        self.by_key
            .range((path, JobId::MIN)..=(path, JobId::MAX))
            .map(|(_, id)| *id)
    }

    /// Whether job `id` must wait for another job writing the same path: one handed over
    /// before it, or one already being worked on (a failed job queued again by Retry is older
    /// than a newer job that may already be sending; neither interrupts the other).
    pub(super) fn blocked(&self, path: PathKey, id: JobId, claimed: &HashSet<JobId>) -> bool {
        self.ids(path)
            .any(|other| other != id && (other < id || claimed.contains(&other)))
    }

    /// The latest unfinished job writing `path`, if any.
    pub(super) fn last(&self, path: PathKey) -> Option<JobId> {
        self.ids(path).next_back()
    }
}

/// Pairs of new jobs (indices into `jobs`) that would replace each other: two files for one
/// Dropbox path, the later under `overwrite`. Each later job is paired with the first job of
/// its path.
pub fn collisions(jobs: &[NewJob]) -> Vec<(usize, usize)> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut pairs = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match first.entry(path_key(&job.remote_path)) {
            std::collections::hash_map::Entry::Occupied(earlier) => {
                if job.options.conflict == Conflict::Overwrite {
                    pairs.push((*earlier.get(), i));
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(source: &str, remote: &str, conflict: Conflict) -> NewJob {
        NewJob {
            source: source.into(),
            remote_path: remote.into(),
            stamp: crate::prepare::Stamp {
                size: 1,
                ..Default::default()
            },
            access: Default::default(),
            replaces_rev: None,
            options: crate::export::ExportOptions {
                conflict,
                ..Default::default()
            },
            origin: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn later_jobs_for_a_path_wait_for_earlier_and_claimed_ones() {
        let mut same = SamePath::default();
        let none = HashSet::new();
        let key = PathKey::of;
        same.insert(key("/C/IMG_0001.JPG"), 5);
        same.insert(key("/c/img_0001.jpg"), 9);
        same.insert(key("/C/other.jpg"), 7);
        assert!(!same.blocked(key("/C/IMG_0001.JPG"), 5, &none));
        assert!(same.blocked(key("/c/img_0001.jpg"), 9, &none));
        assert!(!same.blocked(key("/C/other.jpg"), 7, &none));
        assert_eq!(same.last(key("/C/img_0001.JPG")), Some(9));
        // A retried older job waits for the newer one already under way.
        assert!(same.blocked(key("/C/IMG_0001.JPG"), 5, &HashSet::from([9])));
        same.remove(key("/C/IMG_0001.JPG"), 5);
        assert!(!same.blocked(key("/c/img_0001.jpg"), 9, &none));
        same.remove(key("/c/img_0001.jpg"), 9);
        same.remove(key("/C/other.jpg"), 7);
        assert!(same.by_key.is_empty());
    }

    #[test]
    fn only_overwrite_collisions_are_reported() {
        let jobs = [
            new_job("/cam1/IMG_0001.JPG", "/C/IMG_0001.JPG", Conflict::Overwrite),
            new_job("/cam2/IMG_0001.JPG", "/C/IMG_0001.JPG", Conflict::Overwrite),
            new_job("/x/a.jpg", "/C/a.jpg", Conflict::Overwrite),
            new_job("/x/A.JPG", "/C/A.JPG", Conflict::Overwrite),
            new_job("/y/b.jpg", "/C/b.jpg", Conflict::Rename),
            new_job("/z/b.jpg", "/C/b.jpg", Conflict::Rename),
        ];
        assert_eq!(collisions(&jobs), vec![(0, 1), (2, 3)]);
    }
}

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

use std::collections::{HashMap, HashSet};

use super::{JobId, NewJob};
use crate::dropbox::path::path_key;
use crate::export::Conflict;

/// The unfinished jobs by Dropbox path (lowercased), in id order.
#[derive(Default)]
pub(super) struct SamePath {
    by_key: HashMap<String, Vec<JobId>>,
}

impl SamePath {
    pub(super) fn insert(&mut self, remote_path: &str, id: JobId) {
        let ids = self.by_key.entry(path_key(remote_path)).or_default();
        if let Err(at) = ids.binary_search(&id) {
            ids.insert(at, id);
        }
    }

    pub(super) fn remove(&mut self, remote_path: &str, id: JobId) {
        let key = path_key(remote_path);
        if let Some(ids) = self.by_key.get_mut(&key) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Whether job `id` must wait for another job writing the same path: one handed over
    /// before it, or one already being worked on (a failed job queued again by Retry is older
    /// than a newer job that may already be sending; neither interrupts the other).
    pub(super) fn blocked(&self, remote_path: &str, id: JobId, claimed: &HashSet<JobId>) -> bool {
        self.by_key.get(&path_key(remote_path)).is_some_and(|ids| {
            ids.iter()
                .any(|&other| other != id && (other < id || claimed.contains(&other)))
        })
    }

    /// The latest unfinished job writing `remote_path`, if any.
    pub(super) fn last(&self, remote_path: &str) -> Option<JobId> {
        self.by_key
            .get(&path_key(remote_path))
            .and_then(|ids| ids.last().copied())
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
        }
    }

    #[test]
    fn later_jobs_for_a_path_wait_for_earlier_and_claimed_ones() {
        let mut same = SamePath::default();
        let none = HashSet::new();
        same.insert("/C/IMG_0001.JPG", 5);
        same.insert("/c/img_0001.jpg", 9);
        same.insert("/C/other.jpg", 7);
        assert!(!same.blocked("/C/IMG_0001.JPG", 5, &none));
        assert!(same.blocked("/c/img_0001.jpg", 9, &none));
        assert!(!same.blocked("/C/other.jpg", 7, &none));
        assert_eq!(same.last("/C/img_0001.JPG"), Some(9));
        // A retried older job waits for the newer one already under way.
        assert!(same.blocked("/C/IMG_0001.JPG", 5, &HashSet::from([9])));
        same.remove("/C/IMG_0001.JPG", 5);
        assert!(!same.blocked("/c/img_0001.jpg", 9, &none));
        same.remove("/c/img_0001.jpg", 9);
        same.remove("/C/other.jpg", 7);
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

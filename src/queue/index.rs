//! The queue's in-memory view of its unfinished jobs, so that scheduling and status never scan
//! the database, and the one place that counts each batch's unfinished jobs: a batch is over
//! when its count reaches zero.
//!
//! It holds only what choosing the next job needs (an [`Entry`]: about 60 bytes a job with
//! the map's own cost); a job's record is read from sled when it is asked for. The memory a
//! queue of 20,000 files takes is then sled's, not a second copy of every job here
//! (BENCHMARKS.md, "Memory at scale").
//!
//! Jobs join through [`Index::join`] (accepted, restored at a start, a new state, queued
//! again by Retry) and leave through [`Index::leave`] (final); the counts follow those two and
//! nothing else, so they cannot drift from the jobs held. Only `Queue::apply`, `enqueue` and
//! `restore` call them (ARCHITECTURE.md, "A job's life").

use std::collections::{BTreeMap, HashMap, HashSet};

use super::same_path::{PathKey, SamePath};
use super::{BatchId, Job, JobId, JobState};

/// What scheduling needs of an unfinished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) batch: BatchId,
    /// Waiting until then (ms since the epoch); 0 when it may run now.
    pub(super) waiting_until: u64,
    /// Found by a watched folder: runs after callers' jobs, and policies may hold it.
    pub(super) watch: bool,
    pub(super) path: PathKey,
}

impl Entry {
    fn of(job: &Job) -> Entry {
        Entry {
            batch: job.batch,
            waiting_until: match job.state {
                JobState::Waiting { retry_at_ms, .. } => retry_at_ms,
                _ => 0,
            },
            watch: job.origin.is_some(),
            path: PathKey::of(&job.remote_path),
        }
    }
}

#[derive(Default)]
pub(super) struct Index {
    /// Unfinished jobs, in id (arrival) order.
    active: BTreeMap<JobId, Entry>,
    /// Jobs the engine is working on.
    pub(super) claimed: HashSet<JobId>,
    /// Unfinished jobs per batch.
    unfinished: HashMap<BatchId, usize>,
    /// Unfinished jobs by Dropbox path: those writing one file run one at a time.
    pub(super) same_path: SamePath,
    /// Bytes sent within a request, for status only: sled holds the confirmed offset.
    progress: HashMap<JobId, u64>,
}

impl Index {
    /// An unfinished job joins, or, already held, takes its new state.
    pub(super) fn join(&mut self, job: &Job) {
        let entry = Entry::of(job);
        match self.active.insert(job.id, entry) {
            None => {
                *self.unfinished.entry(job.batch).or_default() += 1;
                self.same_path.insert(entry.path, job.id);
            }
            // The record now says how far it got.
            Some(_) => {
                self.progress.remove(&job.id);
            }
        }
    }

    /// A job leaves (it became final). Returns its batch if that was the batch's last
    /// unfinished job.
    pub(super) fn leave(&mut self, id: JobId) -> Option<BatchId> {
        let entry = self.active.remove(&id)?;
        self.same_path.remove(entry.path, id);
        self.claimed.remove(&id);
        self.progress.remove(&id);
        let left = self.unfinished.get_mut(&entry.batch)?;
        *left = left.saturating_sub(1);
        if *left > 0 {
            return None;
        }
        self.unfinished.remove(&entry.batch);
        Some(entry.batch)
    }

    /// Whether the unfinished job `id` may be claimed, its wait aside: not claimed already,
    /// not a watch job while `auto_held`, not behind an earlier job writing its path.
    pub(super) fn claimable(&self, id: JobId, entry: &Entry, auto_held: bool) -> bool {
        !(self.claimed.contains(&id)
            || (auto_held && entry.watch)
            || self.same_path.blocked(entry.path, id, &self.claimed))
    }

    pub(super) fn contains(&self, id: JobId) -> bool {
        self.active.contains_key(&id)
    }

    /// Unfinished jobs in id order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (JobId, &Entry)> {
        self.active.iter().map(|(id, entry)| (*id, entry))
    }

    pub(super) fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether `batch` has a job that is not final yet.
    pub(super) fn has_unfinished(&self, batch: BatchId) -> bool {
        self.unfinished.contains_key(&batch)
    }

    pub(super) fn note_progress(&mut self, id: JobId, bytes_sent: u64) {
        if self.active.contains_key(&id) {
            self.progress.insert(id, bytes_sent);
        }
    }

    /// `job` as read from sled, with the progress of a request under way.
    pub(super) fn current(&self, mut job: Job) -> Job {
        if let Some(sent) = self.progress.get(&job.id) {
            job.bytes_sent = *sent;
        }
        job
    }

    #[cfg(test)]
    fn unfinished(&self, batch: BatchId) -> usize {
        self.unfinished.get(&batch).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::JobState;

    fn job(id: JobId, batch: BatchId) -> Job {
        Job {
            id,
            batch,
            source: format!("/p/{id}.jpg").into(),
            remote_path: format!("/P/{id}.jpg"),
            source_size: 1,
            source_mtime_ms: None,
            source_dev: 0,
            source_ino: 0,
            source_ctime_ns: 0,
            access: Default::default(),
            replaces_rev: None,
            created_ms: 0,
            state: JobState::Queued,
            attempts: 0,
            bytes_sent: 0,
            options: Default::default(),
            warnings: Vec::new(),
            origin: None,
        }
    }

    enum Step {
        Join(JobId, BatchId),
        Leave(JobId),
    }
    use Step::*;

    /// A step, each batch's count after it, and what `leave` said (the batch that ended).
    type Row = (Step, &'static [(BatchId, usize)], Option<BatchId>);

    #[test]
    fn counts_follow_jobs_joining_and_leaving() {
        let table: &[Row] = &[
            (Join(2, 1), &[(1, 1)], None),
            (Join(3, 1), &[(1, 2)], None),
            (Join(5, 4), &[(1, 2), (4, 1)], None),
            // A job already held that joins again (a state change) counts once.
            (Join(3, 1), &[(1, 2), (4, 1)], None),
            (Leave(2), &[(1, 1), (4, 1)], None),
            // A job that is not held leaves nothing and ends nothing.
            (Leave(2), &[(1, 1), (4, 1)], None),
            (Leave(99), &[(1, 1), (4, 1)], None),
            (Leave(3), &[(1, 0), (4, 1)], Some(1)),
            // Retry: a final job comes back, and its batch is open again.
            (Join(2, 1), &[(1, 1), (4, 1)], None),
            (Leave(2), &[(1, 0), (4, 1)], Some(1)),
            (Leave(5), &[(1, 0), (4, 0)], Some(4)),
        ];
        let mut index = Index::default();
        for (n, (step, counts, ended)) in table.iter().enumerate() {
            let said = match step {
                Join(id, batch) => {
                    index.join(&job(*id, *batch));
                    None
                }
                Leave(id) => index.leave(*id),
            };
            assert_eq!(said, *ended, "step {n}");
            for (batch, count) in *counts {
                assert_eq!(index.unfinished(*batch), *count, "step {n}, batch {batch}");
                assert_eq!(index.has_unfinished(*batch), *count > 0, "step {n}");
            }
        }
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn a_job_that_leaves_is_no_longer_claimed_or_blocking_its_path() {
        let mut index = Index::default();
        index.join(&job(2, 1));
        let mut twin = job(3, 1);
        twin.remote_path = "/p/2.JPG".into();
        index.join(&twin);
        index.claimed.insert(2);
        index.note_progress(2, 5);
        let path = PathKey::of("/P/2.jpg");
        assert!(index.same_path.blocked(path, 3, &index.claimed));
        index.leave(2);
        assert!(!index.claimed.contains(&2));
        assert!(!index.same_path.blocked(path, 3, &index.claimed));
        assert_eq!(
            index.current(job(2, 1)).bytes_sent,
            0,
            "no progress left behind"
        );
    }
}

//! What a start makes of the jobs a stop or a crash left behind: the one place that repairs
//! them (ARCHITECTURE.md, "A job's life", "At a start"). Each repair is a checked move written
//! through the queue's one transition (`Queue::apply`), like every other state change.
//!
//! | found at a start | becomes | why |
//! | --- | --- | --- |
//! | a job whose batch record is missing | removed | written by an `Upload` that never returned (the batch record goes last: `Queue::enqueue`); its caller never heard of it |
//! | `Queued` | `Queued` | |
//! | `Preparing` | `Queued` | nothing was sent; the prepared copy may be cut short, so it is made again |
//! | `Uploading{session, offset}` | as it was | resumes from the confirmed offset (invariant 3); the engine checks the source and the prepared copy first |
//! | `Committing` | as it was | the engine resolves it by looking at the remote file before anything is sent again (invariant 2) |
//! | `Waiting{retry_at}` | as it was | a backoff or Retry-After outlives the restart (invariant 6) |
//! | `Done`, `Failed`, `Cancelled` | as it was, not held in memory | final; Retry brings Failed and Cancelled back |

use std::collections::HashMap;

use super::index::Index;
use super::store::{decode, key};
use super::{BatchId, Job, JobState, Queue, Result};

/// What a job found at a start is to become.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AtStart {
    /// Final: it stays in sled and is not held in memory.
    Finished,
    /// Held as it is.
    Keep,
    /// Held, after this move.
    Become(JobState),
}

/// The table above, for one state.
pub(super) fn at_start(state: &JobState) -> AtStart {
    match state {
        JobState::Done { .. } | JobState::Failed { .. } | JobState::Cancelled => AtStart::Finished,
        JobState::Preparing => AtStart::Become(JobState::Queued),
        JobState::Queued
        | JobState::Uploading { .. }
        | JobState::Committing { .. }
        | JobState::Waiting { .. } => AtStart::Keep,
    }
}

impl Queue {
    /// Reads every job record, drops those of an `Upload` that never returned, holds the
    /// unfinished ones in memory and repairs them as the table above says, then flushes.
    /// Blocking: `Queue::open` runs it before the queue is handed out.
    pub(super) fn restore(&self) -> Result<()> {
        let mut index = Index::default();
        let mut batch_exists: HashMap<BatchId, bool> = HashMap::new();
        for entry in self.inner.jobs.iter() {
            let (k, value) = entry?;
            let job: Job = decode(&value)?;
            let exists = match batch_exists.get(&job.batch) {
                Some(exists) => *exists,
                None => {
                    let exists = self.inner.batches.contains_key(key(job.batch))?;
                    batch_exists.insert(job.batch, exists);
                    exists
                }
            };
            if !exists {
                tracing::info!(
                    job = job.id,
                    batch = job.batch,
                    "removing a job of an Upload that did not return (cut off by a stop or a crash)"
                );
                self.inner.jobs.remove(k)?;
                continue;
            }
            match at_start(&job.state) {
                AtStart::Finished => {}
                AtStart::Keep => index.join(&job),
                AtStart::Become(next) => {
                    self.apply(&mut index, job, next)?;
                }
            }
        }
        self.inner.db.flush()?;
        *self.index() = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::new_job;
    use crate::queue::{FailureKind, Filter};

    fn uploading() -> JobState {
        JobState::Uploading {
            session_id: Some("s".into()),
            offset: 8,
            concurrent: false,
            landed: Vec::new(),
        }
    }
    fn committing() -> JobState {
        JobState::Committing {
            content_hash: "h".into(),
            session_id: Some("s".into()),
            before: None,
        }
    }
    fn waiting() -> JobState {
        JobState::Waiting {
            retry_at_ms: u64::MAX / 2,
            reason: "offline".into(),
            resume: Box::new(uploading()),
        }
    }
    fn done() -> JobState {
        JobState::Done {
            content_hash: "h".into(),
            remote_path: "/P/x.jpg".into(),
            rev: "r".into(),
            skipped: false,
        }
    }
    fn failed() -> JobState {
        JobState::Failed {
            kind: FailureKind::Source,
            message: "gone".into(),
        }
    }

    /// Each persisted state, what it is after a restart, and whether the job is held as
    /// unfinished.
    fn table() -> Vec<(JobState, JobState, bool)> {
        vec![
            (JobState::Queued, JobState::Queued, true),
            (JobState::Preparing, JobState::Queued, true),
            (uploading(), uploading(), true),
            (committing(), committing(), true),
            (waiting(), waiting(), true),
            (done(), done(), false),
            (failed(), failed(), false),
            (JobState::Cancelled, JobState::Cancelled, false),
        ]
    }

    #[test]
    fn each_state_at_start() {
        for (persisted, after, held) in table() {
            let expected = match (held, persisted == after) {
                (false, _) => AtStart::Finished,
                (true, true) => AtStart::Keep,
                (true, false) => AtStart::Become(after.clone()),
            };
            assert_eq!(at_start(&persisted), expected, "{persisted:?}");
        }
    }

    /// The table, through a real database: each job written in its state as a stopped daemon
    /// left it, then the queue opened again.
    #[tokio::test]
    async fn a_restart_restores_each_state_as_the_table_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let table = table();
        let (batch, ids) = {
            let queue = Queue::open(&path).unwrap();
            let names: Vec<_> = (0..table.len()).map(|i| new_job(&format!("{i}"))).collect();
            let (batch, jobs) = queue.enqueue("/P", names).await.unwrap();
            // As a crash leaves them: each record in its state, written as it is.
            for (job, (persisted, _, _)) in jobs.iter().zip(&table) {
                let mut job = job.clone();
                job.state = persisted.clone();
                queue
                    .inner
                    .jobs
                    .insert(key(job.id), super::super::store::encode(&job))
                    .unwrap();
            }
            queue.flush().await.unwrap();
            (batch, jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        };
        let queue = Queue::open(&path).unwrap();
        let held: Vec<_> = queue.list(Filter::Active).unwrap();
        for (id, (persisted, after, is_held)) in ids.iter().zip(&table) {
            let job = queue.get(*id).unwrap().unwrap();
            assert_eq!(&job.state, after, "{persisted:?}");
            assert_eq!(
                held.iter().any(|j| j.id == *id),
                *is_held,
                "{persisted:?} held"
            );
        }
        // The counts match the jobs held: the batch is over when the last of them ends.
        let mut ended = queue.subscribe_batches();
        for job in &held {
            queue.transition(job.id, JobState::Cancelled).await.unwrap();
        }
        assert_eq!(ended.try_recv().unwrap(), batch);
        assert!(ended.try_recv().is_err(), "the batch ends once");
    }

    /// A database as the previous daemon wrote it (every field of a record, defaults
    /// included; the batch record before its jobs): its queued jobs survive the upgrade.
    #[tokio::test]
    async fn records_of_the_previous_format_are_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let db = sled::open(&path).unwrap();
            let batches = db.open_tree("batches").unwrap();
            let jobs = db.open_tree("jobs").unwrap();
            batches
                .insert(
                    key(1),
                    br#"{"id":1,"remote_folder":"/Many","created_ms":5,"jobs":[2,3],"summary":null}"#
                        .as_slice(),
                )
                .unwrap();
            for (id, state) in [
                (2, r#"{"state":"queued"}"#),
                (3, r#"{"state":"preparing"}"#),
            ] {
                let record = format!(
                    r#"{{"id":{id},"batch":1,"source":"/var/tmp/many/IMG_{id}.jpg","remote_path":"/Many/IMG_{id}.jpg","source_size":2048,"source_mtime_ms":1764694000000,"source_dev":2049,"source_ino":1234567,"source_ctime_ns":1764694000000000000,"access":{{"kind":"given"}},"created_ms":5,"state":{state},"attempts":0,"bytes_sent":0,"options":{{"prepare":{{"mode":"Original","strip_location":false}},"conflict":"skip-identical","share_link":false}},"warnings":[]}}"#
                );
                jobs.insert(key(id), record.as_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        let queue = Queue::open(&path).unwrap();
        let held = queue.list(Filter::Active).unwrap();
        assert_eq!(held.iter().map(|j| j.id).collect::<Vec<_>>(), vec![2, 3]);
        for job in &held {
            assert_eq!(job.state, JobState::Queued);
            assert_eq!(job.remote_path, format!("/Many/IMG_{}.jpg", job.id));
            assert_eq!(job.source_stamp().map(|s| s.ino), Some(1234567));
        }
        let (batch, _) = queue.enqueue("/P", vec![new_job("a")]).await.unwrap();
        assert_eq!(batch, 4, "ids go on after the previous daemon's");
    }

    #[tokio::test]
    async fn jobs_of_an_upload_that_never_returned_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let (kept, cut) = {
            let queue = Queue::open(&path).unwrap();
            let (_, kept) = queue.enqueue("/P", vec![new_job("a")]).await.unwrap();
            let (cut_batch, cut) = queue
                .enqueue("/P", vec![new_job("b"), new_job("c")])
                .await
                .unwrap();
            // What a crash between the jobs and their batch record leaves.
            queue.inner.batches.remove(key(cut_batch)).unwrap();
            queue.flush().await.unwrap();
            (kept, cut)
        };
        let queue = Queue::open(&path).unwrap();
        assert!(queue.get(kept[0].id).unwrap().is_some());
        for job in &cut {
            assert!(queue.get(job.id).unwrap().is_none(), "job {}", job.id);
        }
        assert_eq!(queue.active_len(), 1);
        assert_eq!(queue.list(Filter::All).unwrap().len(), 1);
    }
}

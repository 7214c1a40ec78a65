//! Every change of a job's state: the engine's moves, Cancel, Retry, and the repairs at a start
//! (`restore`) all go through [`Queue::apply`], which checks the move against
//! `JobState::can_become`, keeps the attempt count and bytes sent, writes the record (with
//! what a Done writes beside it) and updates the index, whose per-batch counts follow from it
//! (ARCHITECTURE.md, "A job's life").
//!
//! Also the writes to a job that are not states: a new stamp, warnings, progress.

use std::collections::HashSet;

use super::index::Index;
use super::store::{encode, key};
use super::{BatchId, Job, JobEvent, JobId, JobState, Queue, QueueError, Result, now_ms};

/// A move written by [`Queue::apply`], to be flushed and then announced.
pub(super) struct Moved {
    pub(super) job: Job,
    /// The job's batch, if this was its last unfinished job.
    pub(super) batch_over: Option<BatchId>,
}

/// The attempt count after a move from `from` to `to` (it drives the backoff, `engine::retry`).
fn attempts(current: u32, from: &JobState, to: &JobState) -> u32 {
    match (from, to) {
        // Waiting again from waiting: the same wait, at another time (Retry).
        (JobState::Waiting { .. }, JobState::Waiting { .. }) => current,
        (_, JobState::Waiting { .. }) => current.saturating_add(1),
        (JobState::Uploading { offset: old, .. }, JobState::Uploading { offset: new, .. })
            if new > old =>
        {
            0
        }
        (JobState::Uploading { .. }, JobState::Uploading { .. }) => current,
        // Resuming keeps the count, so a run of failures keeps backing off.
        (JobState::Waiting { .. }, _) => current,
        _ => 0,
    }
}

impl Queue {
    /// The one transition: moves `job` (as it is now: held, or read from sled for a final job
    /// that Retry brings back) to `next` if the state machine allows it, and writes it. Not
    /// flushed: the caller flushes, then announces ([`Queue::announce`]). Called with the index
    /// locked, so that two moves of one job reach sled in order.
    pub(super) fn apply(&self, index: &mut Index, mut job: Job, next: JobState) -> Result<Moved> {
        if !job.state.can_become(&next) {
            return Err(QueueError::IllegalTransition {
                id: job.id,
                from: job.state.name(),
                to: next.name(),
            });
        }
        job.attempts = attempts(job.attempts, &job.state, &next);
        match &next {
            JobState::Uploading { offset, .. } => job.bytes_sent = *offset,
            JobState::Done { .. } => job.bytes_sent = job.source_size,
            // Starting over: nothing of it is in Dropbox yet.
            JobState::Queued => job.bytes_sent = 0,
            _ => {}
        }
        job.state = next;
        // Written before the Done itself, in the same flush: sled recovers a prefix of its
        // log after a crash, so a Done that survives has its entry too (the watch's
        // uploaded-index: without it the catch-up scan would send the file again;
        // ARCHITECTURE.md, invariant 2).
        if matches!(job.state, JobState::Done { .. })
            && let Some(record) = self.inner.done_recorder.get()
            && let Some((tree, k, v)) = record(&job)
        {
            tree.insert(k, v)?;
        }
        // What was sent where, for `replace` (`sent`), under the same rule.
        if let Some((k, v)) = super::sent::sent_entry(&job) {
            self.inner.sent.insert(k, v)?;
        }
        self.inner.jobs.insert(key(job.id), encode(&job))?;
        let batch_over = if job.state.is_terminal() {
            index.leave(job.id)
        } else {
            index.join(&job);
            None
        };
        Ok(Moved { job, batch_over })
    }

    /// Tells subscribers about flushed moves, and the engine that the queue changed.
    fn announce(&self, moved: &[Moved]) {
        for moved in moved {
            self.publish(&moved.job);
            if let Some(batch) = moved.batch_over {
                let _ = self.inner.batches_done.send(batch);
            }
        }
        self.inner.changed.notify_waiters();
    }

    /// Moves an unfinished job to `next`, if the state machine allows it, and makes that
    /// durable before it returns.
    pub async fn transition(&self, id: JobId, next: JobState) -> Result<Job> {
        let moved = {
            let mut index = self.index();
            let held = match index.contains(id) {
                true => self.stored(id)?,
                false => None,
            };
            let Some(job) = held else {
                drop(index);
                // Final (or unknown): only Retry brings a final job back.
                return Err(match self.stored(id)? {
                    Some(job) => QueueError::IllegalTransition {
                        id,
                        from: job.state.name(),
                        to: next.name(),
                    },
                    None => QueueError::NotFound(id),
                });
            };
            self.apply(&mut index, job, next)?
        };
        self.flush().await?;
        self.announce(std::slice::from_ref(&moved));
        Ok(moved.job)
    }

    /// Moves many unfinished jobs at once, each as [`Queue::transition`] would, with one flush
    /// for all of them: the engine records a whole pack's sessions durably before sending it
    /// (ARCHITECTURE.md, invariant 3) at the cost of one write to disk, not one per job.
    /// Returns each move's own result in order (a job cancelled meanwhile refuses its move
    /// and the others go on); an error of the database or the flush fails them all.
    pub async fn transition_many(&self, moves: Vec<(JobId, JobState)>) -> Result<Vec<Result<Job>>> {
        let mut results = Vec::with_capacity(moves.len());
        let mut moved = Vec::new();
        {
            let mut index = self.index();
            for (id, next) in moves {
                let job = match self.held(&index, id) {
                    Ok(job) => job,
                    Err(QueueError::NotFound(_)) => {
                        results.push(Err(match self.stored(id)? {
                            Some(job) => QueueError::IllegalTransition {
                                id,
                                from: job.state.name(),
                                to: next.name(),
                            },
                            None => QueueError::NotFound(id),
                        }));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                match self.apply(&mut index, job, next) {
                    Ok(m) => {
                        results.push(Ok(m.job.clone()));
                        moved.push(m);
                    }
                    Err(e @ QueueError::IllegalTransition { .. }) => results.push(Err(e)),
                    Err(e) => return Err(e),
                }
            }
        }
        if !moved.is_empty() {
            self.flush().await?;
            self.announce(&moved);
        }
        Ok(results)
    }

    /// Queues failed and cancelled jobs again, and makes waiting ones try again now: one
    /// job, or every such job of a batch. Their batch is summarized again when they end.
    /// Returns the jobs queued again and the waiting jobs woken.
    pub async fn retry(&self, id: u64) -> Result<Vec<JobId>> {
        let candidates: Vec<JobId> = match self.batch(id)? {
            Some(batch) => batch.jobs,
            None if self.get(id)?.is_some() => vec![id],
            None => return Err(QueueError::NotFound(id)),
        };
        let now = now_ms();
        let mut moved = Vec::new();
        let mut reopened = HashSet::new();
        {
            let mut index = self.index();
            for job_id in candidates {
                let Some(job) = self.stored(job_id)? else {
                    continue;
                };
                let next = match &job.state {
                    JobState::Failed { .. } | JobState::Cancelled => {
                        reopened.insert(job.batch);
                        JobState::Queued
                    }
                    // Waiting out a backoff: the user says now. Same wait, an earlier time.
                    JobState::Waiting {
                        retry_at_ms,
                        reason,
                        resume,
                    } if *retry_at_ms > now => JobState::Waiting {
                        retry_at_ms: now,
                        reason: reason.clone(),
                        resume: resume.clone(),
                    },
                    _ => continue,
                };
                moved.push(self.apply(&mut index, job, next)?);
            }
        }
        // A batch with jobs again is not over: its summary is made again when they end.
        for batch in reopened {
            if let Some(mut record) = self.batch(batch)? {
                record.summary = None;
                self.inner.batches.insert(key(batch), encode(&record))?;
            }
        }
        self.flush().await?;
        self.announce(&moved);
        Ok(moved.into_iter().map(|m| m.job.id).collect())
    }

    /// Cancels a job, or every unfinished job of a batch. Returns the jobs cancelled.
    pub async fn cancel(&self, id: u64) -> Result<Vec<JobId>> {
        let targets: Vec<JobId> = if let Some(batch) = self.batch(id)? {
            let index = self.index();
            batch
                .jobs
                .into_iter()
                .filter(|j| index.contains(*j))
                .collect()
        } else if let Some(job) = self.get(id)? {
            if job.state.is_terminal() {
                return Ok(Vec::new());
            }
            vec![id]
        } else {
            return Err(QueueError::NotFound(id));
        };
        for job in &targets {
            self.transition(*job, JobState::Cancelled).await?;
        }
        Ok(targets)
    }

    /// Records the source's version again (the file changed; the job starts over).
    pub async fn restamp(&self, id: JobId, stamp: crate::prepare::Stamp) -> Result<Job> {
        let job = {
            let index = self.index();
            let mut job = self.held(&index, id)?;
            job.set_stamp(stamp);
            self.inner.jobs.insert(key(id), encode(&job))?;
            index.current(job)
        };
        self.flush().await?;
        Ok(job)
    }

    /// Records warnings for a job (kept with it, reported when its batch ends).
    pub async fn note_warnings(&self, id: JobId, warnings: Vec<String>) -> Result<()> {
        {
            let index = self.index();
            let mut job = self.held(&index, id)?;
            // Added to what the job already says (that it replaces another job's file, say).
            for warning in warnings {
                if !job.warnings.contains(&warning) {
                    job.warnings.push(warning);
                }
            }
            self.inner.jobs.insert(key(id), encode(&job))?;
        }
        self.flush().await
    }

    /// Progress within a request, for status only (not persisted: the confirmed offset is).
    pub fn note_progress(&self, id: JobId, bytes_sent: u64) {
        self.index().note_progress(id, bytes_sent);
    }

    /// An unfinished job's record, read with the index locked (`index`).
    pub(super) fn held(&self, index: &Index, id: JobId) -> Result<Job> {
        match index.contains(id) {
            true => self.stored(id)?.ok_or(QueueError::NotFound(id)),
            false => Err(QueueError::NotFound(id)),
        }
    }

    pub(super) fn publish(&self, job: &Job) {
        let _ = self.inner.events.send(JobEvent { job: job.clone() });
    }
}

//! The scheduler: claims runnable jobs from the queue and runs each in its own task, within
//! two limits (`upload.transfers` jobs sending, one more per core preparing meanwhile). It
//! waits on the queue's `Notify`, the login status and the policy hold, never polls
//! (ARCHITECTURE.md, "How a photo travels"), and stops a cancelled job's task at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;
use crate::prepare;
use crate::queue::{Claim, Job, JobId, JobState, now_ms};

/// A job the engine is working on.
pub(super) struct Running {
    /// Cancelled to stop the job's task at once.
    pub(super) token: CancellationToken,
    /// The job's place among the jobs the engine works on at once; given back when the job
    /// only waits for its pack or its batch commit.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    /// Its bytes are with the packer: its commit is coming, so the batch committer waits for it.
    pub(super) packing: bool,
}

impl Engine {
    pub(super) fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs being prepared or sent (not just waiting for their commit).
    pub(super) fn sending(&self) -> usize {
        self.running().values().filter(|r| r.slot.is_some()).count()
    }

    /// Jobs whose bytes are with the packer: each will hand the committer its session.
    pub(super) fn packing(&self) -> usize {
        self.running().values().filter(|r| r.packing).count()
    }

    /// The job no longer counts against the jobs worked on at once.
    pub(super) fn free_slot(&self, id: JobId) {
        let slot = self.running().get_mut(&id).and_then(|r| r.slot.take());
        if slot.is_some() {
            drop(slot);
            self.wake_batchers();
        }
    }

    /// The job's bytes are with the packer (true) or its commit with the committer (false).
    pub(super) fn set_packing(&self, id: JobId, packing: bool) {
        if let Some(running) = self.running().get_mut(&id) {
            running.packing = packing;
        }
        if !packing {
            self.wake_batchers();
        }
    }

    /// The packer and the batch committer send what they hold once nothing more is coming;
    /// tells both that this may now be so.
    pub(super) fn wake_batchers(&self) {
        self.slot_freed.notify_one();
        self.pack_wake.notify_one();
    }

    /// Runs until `shutdown` is cancelled; then stops every job promptly (an in-flight request
    /// is abandoned; the persisted state lets the next start resume) and returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        // Claimed jobs: those sending, plus one per core preparing its photo meanwhile.
        let slots = Arc::new(Semaphore::new(self.upload.transfers + cores()));
        tracker.spawn(self.clone().stop_cancelled_jobs(shutdown.clone()));
        tracker.spawn(self.clone().finish_batches(shutdown.clone()));
        let incoming = self
            .commits_incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(incoming) = incoming {
            tracker.spawn(self.clone().commit_batches(incoming, shutdown.clone()));
        }
        let pieces = self
            .pieces_incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(pieces) = pieces {
            tracker.spawn(self.clone().pack_pieces(pieces, shutdown.clone()));
        }
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = shutdown.cancelled() => break,
            };
            let Some(job) = self.next_job(&shutdown).await else {
                break;
            };
            let token = shutdown.child_token();
            self.running().insert(
                job.id,
                Running {
                    token: token.clone(),
                    slot: Some(permit),
                    packing: false,
                },
            );
            let engine = self.clone();
            tracker.spawn(engine.work(job, token));
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Waits for a runnable job: not paused, logged in, either queued or due, and not a
    /// watch-folder job while a policy holds those.
    pub(super) async fn next_job(&self, shutdown: &CancellationToken) -> Option<Job> {
        let mut status = self.session.status();
        let mut auto_hold = self.auto_hold.clone();
        loop {
            let changed = self.queue.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            status.borrow_and_update();
            let held = auto_hold.borrow_and_update().is_held();
            let due = if self.queue.paused() || !self.session.is_logged_in() {
                None
            } else {
                match self.queue.claim_next(now_ms(), held) {
                    Claim::Job(job) => return Some(*job),
                    Claim::Later(at) => Some(at),
                    Claim::Idle => None,
                }
            };
            let sleep = async {
                match due {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = status.changed() => {}
                // A hold that ends makes watch jobs runnable. One that begins needs no wake-up:
                // claimed jobs check it before their first byte (`drive`).
                _ = async {
                    // Without its sender (no policy any more) it never changes again.
                    if auto_hold.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                } => {}
                _ = sleep => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    /// Cancelling a job in the queue stops its transfer at once.
    pub(super) async fn stop_cancelled_jobs(self: Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.queue.subscribe();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.cancelled() => return,
            };
            match event {
                Ok(event) if event.job.state == JobState::Cancelled => {
                    let running = self.running().get(&event.job.id).map(|r| r.token.clone());
                    match running {
                        // The job's own task discards its file as it stops.
                        Some(token) => token.cancel(),
                        None if event.job.options.prepare != prepare::PrepareOptions::default() => {
                            self.discard_prepared(event.job.id).await;
                        }
                        None => {}
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some: check every running job.
                    let ids: Vec<JobId> = self.running().keys().copied().collect();
                    for id in ids {
                        if matches!(self.queue.get(id), Ok(Some(job)) if job.state == JobState::Cancelled)
                            && let Some(running) = self.running().get(&id)
                        {
                            running.token.cancel();
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

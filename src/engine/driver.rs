//! The job driver: moves one job from its persisted state until it is Done or something stops
//! it, and records why it stopped (`settle`).
//!
//! A job claimed after a restart continues from what was written: a Waiting job resumes its
//! state, a Committing one is resolved by looking at Dropbox (ARCHITECTURE.md, invariant 2),
//! an Uploading one resumes its session unless its source changed. Every open of the source is
//! checked against what was queued (invariants 8 and 9). The choice between whole-file,
//! sequential-session and concurrent transfer is made here and carried out by `transfer` and
//! `concurrent`.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Engine, Step, blocking, retry, source_step};
use crate::dropbox;
use crate::prepare::{self, SourceError, SourceFile};
use crate::queue::{FailureKind, Job, JobId, JobState, QueueError, now_ms};

impl Engine {
    pub(super) async fn work(self: Arc<Self>, job: Job, token: CancellationToken) {
        let id = job.id;
        let outcome = tokio::select! {
            outcome = self.drive(job) => outcome,
            _ = token.cancelled() => Err(Step::Stopped),
        };
        if let Err(step) = outcome
            && let Err(e) = self.settle(id, step).await
        {
            tracing::warn!(job = id, "could not record the job's outcome: {e}");
        }
        if self.running().remove(&id).is_some_and(|r| r.slot.is_some()) {
            self.slot_freed.notify_one();
        }
        if matches!(self.queue.get(id), Ok(Some(job)) if job.state.is_terminal()) {
            self.discard_prepared(id).await;
        }
        self.queue.release(id);
    }

    /// A job's prepared file goes when the job ends (done, failed or cancelled).
    pub(super) async fn discard_prepared(&self, id: JobId) {
        let dir = self.prepared_dir.clone();
        let _ = tokio::task::spawn_blocking(move || prepare::discard(&dir, id)).await;
    }

    /// Records why a job stopped moving.
    pub(super) async fn settle(&self, id: JobId, step: Step) -> Result<(), QueueError> {
        let Some(job) = self.queue.get(id)? else {
            return Ok(());
        };
        if job.state.is_terminal() {
            return Ok(());
        }
        match step {
            Step::Transient {
                reason,
                retry_after,
            } => {
                let wait = retry::backoff(job.attempts + 1, retry_after);
                tracing::info!(job = id, file = %job.source.display(), "waiting {wait:?}: {reason}");
                let retry_at_ms = now_ms() + wait.as_millis() as u64;
                self.queue
                    .transition(
                        id,
                        JobState::Waiting {
                            retry_at_ms,
                            reason,
                            resume: Box::new(job.state),
                        },
                    )
                    .await?;
            }
            Step::Failed { kind, message } => {
                tracing::warn!(job = id, "failed: {message}");
                self.queue
                    .transition(id, JobState::Failed { kind, message })
                    .await?;
            }
            Step::LoggedOut | Step::Requeued | Step::Stopped => {}
        }
        Ok(())
    }

    pub(super) async fn to(&self, id: JobId, next: JobState) -> Result<JobState, Step> {
        Ok(self.queue.transition(id, next).await?.state)
    }

    /// Moves one job forward until it is Done or something stops it.
    pub(super) async fn drive(&self, job: Job) -> Result<(), Step> {
        let id = job.id;
        // A name Dropbox refuses is known now: fail with that reason, before any request (its
        // own refusal, `malformed_path`, reads as if the folder were wrong).
        if let Some(why) = dropbox::path::refused_file_name(&job.remote_path) {
            return Err(Step::Failed {
                kind: FailureKind::Refused,
                message: format!(
                    "{}: {why}; rename the file to upload it",
                    job.source.display()
                ),
            });
        }
        let mut state = job.state.clone();
        if let JobState::Waiting { resume, .. } = state {
            state = self.to(id, *resume).await?;
        }
        if let JobState::Committing {
            content_hash,
            session_id,
            before,
        } = &state
        {
            let sending = self
                .network_slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            if self
                .resolve_commit(
                    &job,
                    content_hash,
                    session_id.as_deref(),
                    before.as_deref(),
                    sending,
                )
                .await?
            {
                return Ok(());
            }
            return Err(self.requeue(id).await);
        }
        if state == JobState::Queued {
            state = self.to(id, JobState::Preparing).await?;
        }
        if let JobState::Uploading {
            session_id: Some(_),
            offset,
            ..
        } = &state
        {
            tracing::info!(job = id, file = %job.source.display(), "resuming an upload session at offset {offset}");
        }
        // The source under its access rule, checked against what was queued: another file in
        // its place (swapped, or a link put there) is refused; another version of it (edited,
        // even with size and mtime put back) is sent as it is now, from the start.
        let source = job.source_file();
        let stamp = blocking(move || source.stat())
            .await?
            .map_err(source_step)?;
        let resuming = matches!(
            state,
            JobState::Uploading {
                session_id: Some(_),
                ..
            }
        );
        let queued = job.source_stamp();
        if let Some(queued) = queued
            && !queued.same_file(&stamp)
        {
            return Err(source_step(SourceError::Replaced(job.source.clone())));
        }
        let changed = match queued {
            Some(queued) => queued != stamp,
            // A record from before identities were kept: only size and mtime to compare.
            None => (stamp.size, stamp.mtime_ms) != (job.source_size, job.source_mtime_ms),
        };
        if queued != Some(stamp) {
            self.queue.restamp(id, stamp).await?;
        }
        if changed && resuming {
            return Err(self.requeue(id).await);
        }
        let Some(prepared) = self.prepared(&job, Some(stamp), resuming).await? else {
            // The prepared bytes a session was started with are gone: start over.
            return Err(self.requeue(id).await);
        };
        if prepared.stamp.size > dropbox::MAX_FILE_SIZE {
            return Err(Step::Failed {
                kind: FailureKind::Refused,
                message: format!(
                    "{}: Dropbox takes files up to {} bytes through the API; this one has {}",
                    job.source.display(),
                    dropbox::MAX_FILE_SIZE,
                    prepared.stamp.size
                ),
            });
        }
        // Known not to fit: fail now rather than after sending it all. (The quota read at login
        // and after batches may be stale; Dropbox's own insufficient_space catches the rest.)
        let free = self.session.info().borrow().free_bytes();
        if let Some(free) = free
            && prepared.stamp.size > free
        {
            return Err(Step::Failed {
                kind: FailureKind::Refused,
                message: format!(
                    "{}: Dropbox is full: the file needs {} bytes and the account has {free} bytes free",
                    job.source.display(),
                    prepared.stamp.size
                ),
            });
        }
        let size = prepared.stamp.size;
        let concurrent = match &state {
            JobState::Uploading {
                session_id: Some(_),
                concurrent,
                ..
            } => *concurrent,
            // More than one chunk, and committed on its own: chunks go in parallel.
            _ => size > self.upload.session_threshold && size > self.upload.chunk_size,
        };
        let sending = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // A watch job claimed ahead (to prepare) before a policy hold began waits after all:
        // nothing of it is sent yet. One already sending finishes its file.
        if job.origin.is_some()
            && !matches!(state, JobState::Uploading { .. })
            && self.auto_hold.borrow().is_held()
        {
            drop(sending);
            tracing::debug!(
                job = id,
                "held by policy before its first byte: queued again"
            );
            return Err(self.requeue(id).await);
        }
        if concurrent {
            return self
                .upload_concurrent(&job, state, &prepared.file(), prepared.stamp, sending)
                .await;
        }
        if !self.upload.batch_commit
            && prepared.stamp.size <= self.upload.session_threshold
            && !matches!(state, JobState::Uploading { .. })
        {
            self.upload_whole(&job, &prepared.file()).await
        } else {
            self.upload_session(&job, state, &prepared.file(), prepared.stamp.size, sending)
                .await
        }
    }

    /// The file a job uploads: the source, or the file `prepare` made for it (resized, or
    /// without its location). A session being resumed must go on with the very bytes it
    /// started with, so then the prepared file already in the cache is used, never made
    /// again; None if it is gone.
    pub(super) async fn prepared(
        &self,
        job: &Job,
        stamp: Option<prepare::Stamp>,
        resuming: bool,
    ) -> Result<Option<prepare::Prepared>, Step> {
        let options = job.options.prepare.clone();
        let needs_file = options != prepare::PrepareOptions::default();
        if resuming && needs_file {
            let (dir, id) = (self.prepared_dir.clone(), job.id);
            return blocking(move || cached_prepared(&dir, id)).await;
        }
        let source = SourceFile {
            expect: stamp,
            ..job.source_file()
        };
        let (dir, id) = (self.prepared_dir.clone(), job.id);
        // Decoding a 50 MP photo takes 150 MB and all of a core: no more at once than cores.
        let _slot = self
            .prepare_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let prepared = blocking(move || prepare::prepare(source, &options, &dir, id))
            .await?
            .map_err(source_step)?;
        for warning in &prepared.warnings {
            tracing::warn!(job = job.id, "{warning}");
        }
        if !prepared.warnings.is_empty() && prepared.warnings != job.warnings {
            self.queue
                .note_warnings(job.id, prepared.warnings.clone())
                .await?;
        }
        Ok(Some(prepared))
    }

    pub(super) async fn requeue(&self, id: JobId) -> Step {
        match self.queue.transition(id, JobState::Queued).await {
            Ok(_) => Step::Requeued,
            Err(e) => e.into(),
        }
    }
}

/// The prepared file a job left in the cache (`<job id>-<name>`, not a `.part`), if any.
pub(super) fn cached_prepared(dir: &Path, id: JobId) -> Option<prepare::Prepared> {
    let prefix = format!("{id}-");
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(&prefix) && !name.ends_with(".part")
    })?;
    let path = entry.path();
    let stamp = prepare::check_source(&path).ok()?;
    Some(prepare::Prepared {
        path,
        stamp,
        temporary: true,
        access: prepare::Access::Given,
        warnings: Vec::new(),
    })
}

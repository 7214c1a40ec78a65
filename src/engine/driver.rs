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
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Engine, Step, blocking, retry, source_step};
use crate::config::UploadConfig;
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
        if self
            .running()
            .remove(&id)
            .is_some_and(|r| r.slot.is_some() || r.packing)
        {
            self.wake_batchers();
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
        let Some(next) = settled(&job, step, now_ms(), retry::backoff) else {
            return Ok(());
        };
        match &next {
            JobState::Waiting {
                retry_at_ms,
                reason,
                ..
            } => {
                let wait =
                    std::time::Duration::from_secs(retry_at_ms.saturating_sub(now_ms()) / 1000);
                let source = job.source.to_string_lossy();
                let cause = super::plain_cause(reason, &source);
                if self
                    .outages
                    .first_telling(&cause, std::time::Instant::now())
                {
                    tracing::info!("{cause}; retrying in {}", humantime::format_duration(wait));
                }
                tracing::debug!(job = id, file = %job.source.display(), "waiting {wait:?}: {reason}");
            }
            JobState::Failed { message, .. } => tracing::warn!(job = id, "failed: {message}"),
            _ => {}
        }
        self.queue.transition(id, next).await?;
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
        // Under `replace`, the rev of the copy to replace as it is now (`replace`).
        let job = self.aim_replace(job).await?;
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
        match source_verdict(&job, stamp, resuming) {
            SourceVerdict::Replaced => {
                return Err(source_step(SourceError::Replaced(job.source.clone())));
            }
            SourceVerdict::Restart => {
                self.queue.restamp(id, stamp).await?;
                return Err(self.requeue(id).await);
            }
            SourceVerdict::Go { restamp } => {
                if restamp {
                    self.queue.restamp(id, stamp).await?;
                }
            }
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
        let transfer = transfer_for(&state, prepared.stamp.size, &self.upload);
        let file = prepared.file();
        // Each way reads, hashes and looks for the file in Dropbox before it takes a network
        // slot: the slot covers requests only (issue 16).
        match transfer {
            Transfer::Concurrent => {
                self.upload_concurrent(&job, state, &file, prepared.stamp)
                    .await
            }
            Transfer::Whole => self.upload_whole(&job, &state, &file).await,
            Transfer::Packed => self.upload_small(&job, &state, &file).await,
            Transfer::Session => {
                self.upload_session(&job, state, &file, prepared.stamp.size)
                    .await
            }
        }
    }

    /// A network slot for a job about to send, unless a policy hold began while it waited
    /// (`held_back`, looked at once it may send): then the job is queued again.
    pub(super) async fn slot_unless_held(
        &self,
        job: &Job,
        state: &JobState,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, Step> {
        let sending = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        if self.held_back(job, state) {
            drop(sending);
            return Err(self.requeue(job.id).await);
        }
        Ok(sending)
    }

    /// A watch job claimed ahead (to prepare) before a policy hold began waits after all:
    /// nothing of it is sent yet. One already sending finishes its file. True when the job is
    /// to be queued again.
    pub(super) fn held_back(&self, job: &Job, state: &JobState) -> bool {
        let held = job.origin.is_some()
            && !matches!(state, JobState::Uploading { .. })
            && self.auto_hold.borrow().is_held();
        if held {
            tracing::debug!(
                job = job.id,
                "held by policy before its first byte: queued again"
            );
        }
        held
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

/// What a job that stopped with `step` becomes: Waiting (after a backoff from `wait`, its
/// state kept to resume), Failed, or nothing to write (logged out, requeued or stopped: what
/// is persisted stays; or the job is already final).
pub(super) fn settled(
    job: &Job,
    step: Step,
    now_ms: u64,
    wait: impl FnOnce(u32, Option<Duration>) -> Duration,
) -> Option<JobState> {
    if job.state.is_terminal() {
        return None;
    }
    match step {
        Step::Transient {
            reason,
            retry_after,
        } => Some(JobState::Waiting {
            retry_at_ms: now_ms + wait(job.attempts + 1, retry_after).as_millis() as u64,
            reason,
            resume: Box::new(job.state.clone()),
        }),
        Step::Failed { kind, message } => Some(JobState::Failed { kind, message }),
        Step::LoggedOut | Step::Requeued | Step::Stopped => None,
    }
}

/// What the source found on disk (`now`) means for a job about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceVerdict {
    /// Another file has taken the name (another device or inode): refused.
    Replaced,
    /// The file changed under a session being resumed: its bytes no longer match what was
    /// sent, so the job starts over (with the new stamp recorded).
    Restart,
    /// Go on; `restamp`: record the stamp first (the version to send from now on).
    Go { restamp: bool },
}

/// Compares the source on disk with what was queued (ARCHITECTURE.md, invariants 8 and 9).
/// `resuming`: the job continues an upload session.
pub(super) fn source_verdict(job: &Job, now: prepare::Stamp, resuming: bool) -> SourceVerdict {
    let queued = job.source_stamp();
    if let Some(queued) = queued
        && !queued.same_file(&now)
    {
        return SourceVerdict::Replaced;
    }
    let changed = match queued {
        Some(queued) => queued != now,
        // A record from before identities were kept: only size and mtime to compare.
        None => (now.size, now.mtime_ms) != (job.source_size, job.source_mtime_ms),
    };
    if changed && resuming {
        return SourceVerdict::Restart;
    }
    SourceVerdict::Go {
        restamp: queued != Some(now),
    }
}

/// How a job's bytes go up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transfer {
    /// One `files/upload` request (`transfer`).
    Whole,
    /// A sequential upload session, committed alone or in a batch (`transfer`).
    Session,
    /// With others, many small files to a request, committed in a batch (`packing`).
    Packed,
    /// A concurrent upload session, committed alone (`concurrent`).
    Concurrent,
}

/// The transfer for a `size`-byte file in `state`: a session being resumed goes on as it
/// started; a file of more than one chunk that is committed on its own goes in parallel
/// chunks; a small file goes in one request when batching is off, else in a pack with others
/// when it fits one request's piece (`packing::MAX_PIECE`, one chunk), else through a session.
pub(super) fn transfer_for(state: &JobState, size: u64, upload: &UploadConfig) -> Transfer {
    let session_started = matches!(
        state,
        JobState::Uploading {
            session_id: Some(_),
            ..
        }
    );
    if upload.batch_commit
        && !session_started
        && size > 0
        && size <= upload.session_threshold
        && size <= upload.chunk_size.min(super::packing::MAX_PIECE)
    {
        return Transfer::Packed;
    }
    let concurrent = match state {
        JobState::Uploading {
            session_id: Some(_),
            concurrent,
            ..
        } => *concurrent,
        _ => size > upload.session_threshold && size > upload.chunk_size,
    };
    if concurrent {
        Transfer::Concurrent
    } else if !upload.batch_commit
        && size <= upload.session_threshold
        && !matches!(state, JobState::Uploading { .. })
    {
        Transfer::Whole
    } else {
        Transfer::Session
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::job;
    use crate::export::Conflict;
    use crate::prepare::Stamp;
    use crate::queue::FailureKind;

    fn uploading(session: Option<&str>, offset: u64, concurrent: bool) -> JobState {
        JobState::Uploading {
            session_id: session.map(str::to_string),
            offset,
            concurrent,
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

    #[test]
    fn settle_writes_waiting_with_the_state_to_resume_or_failed_or_nothing() {
        let now = 1_000_000;
        // The backoff is given the attempt number and Retry-After; here it answers with a
        // figure that shows both.
        let wait = |attempt: u32, after: Option<Duration>| {
            Duration::from_secs(u64::from(attempt)) + after.unwrap_or_default()
        };
        let transient = |after| Step::Transient {
            reason: "Dropbox had a server error".into(),
            retry_after: after,
        };
        let failed = || Step::Failed {
            kind: FailureKind::Refused,
            message: "refused".into(),
        };
        let waiting = |at: u64, resume: JobState| {
            Some(JobState::Waiting {
                retry_at_ms: at,
                reason: "Dropbox had a server error".into(),
                resume: Box::new(resume),
            })
        };
        let mut retried = job(committing(), Conflict::SkipIdentical);
        retried.attempts = 2;
        let table: Vec<(&str, crate::queue::Job, Step, Option<JobState>)> = vec![
            (
                "transient while preparing",
                job(JobState::Preparing, Conflict::SkipIdentical),
                transient(None),
                waiting(now + 1_000, JobState::Preparing),
            ),
            (
                "transient mid-session keeps its offset",
                job(uploading(Some("s"), 8, false), Conflict::SkipIdentical),
                transient(None),
                waiting(now + 1_000, uploading(Some("s"), 8, false)),
            ),
            (
                "Retry-After on the third try",
                retried,
                transient(Some(Duration::from_secs(30))),
                waiting(now + 33_000, committing()),
            ),
            (
                "failed",
                job(JobState::Preparing, Conflict::SkipIdentical),
                failed(),
                Some(JobState::Failed {
                    kind: FailureKind::Refused,
                    message: "refused".into(),
                }),
            ),
            (
                "logged out: the job keeps its state",
                job(uploading(Some("s"), 8, false), Conflict::SkipIdentical),
                Step::LoggedOut,
                None,
            ),
            (
                "requeued: already written",
                job(JobState::Queued, Conflict::SkipIdentical),
                Step::Requeued,
                None,
            ),
            (
                "stopped: already written",
                job(committing(), Conflict::SkipIdentical),
                Step::Stopped,
                None,
            ),
            (
                "already cancelled",
                job(JobState::Cancelled, Conflict::SkipIdentical),
                transient(None),
                None,
            ),
            (
                "already done",
                job(
                    JobState::Done {
                        content_hash: "h".into(),
                        remote_path: "/Album/a.jpg".into(),
                        rev: "r".into(),
                        skipped: false,
                    },
                    Conflict::SkipIdentical,
                ),
                failed(),
                None,
            ),
        ];
        for (what, job, step, expected) in table {
            assert_eq!(settled(&job, step, now, wait), expected, "{what}");
        }
    }

    #[test]
    fn the_source_on_disk_decides_whether_a_job_goes_on_restarts_or_is_refused() {
        let queued = Stamp {
            size: 100,
            mtime_ms: Some(5),
            ctime_ns: 9,
            dev: 1,
            ino: 2,
        };
        let mut recorded = job(JobState::Preparing, Conflict::SkipIdentical);
        (recorded.source_size, recorded.source_mtime_ms) = (queued.size, queued.mtime_ms);
        (
            recorded.source_dev,
            recorded.source_ino,
            recorded.source_ctime_ns,
        ) = (queued.dev, queued.ino, queued.ctime_ns);
        // A record from before identities were kept: size and mtime only.
        let mut legacy = recorded.clone();
        (legacy.source_dev, legacy.source_ino, legacy.source_ctime_ns) = (0, 0, 0);
        let edited = Stamp {
            size: 120,
            ctime_ns: 10,
            ..queued
        };
        let touched = Stamp {
            ctime_ns: 10,
            ..queued
        };
        let swapped = Stamp { ino: 3, ..queued };
        let table = [
            (
                "unchanged, fresh",
                &recorded,
                queued,
                false,
                SourceVerdict::Go { restamp: false },
            ),
            (
                "unchanged, resuming",
                &recorded,
                queued,
                true,
                SourceVerdict::Go { restamp: false },
            ),
            (
                "edited, fresh: the new version is sent",
                &recorded,
                edited,
                false,
                SourceVerdict::Go { restamp: true },
            ),
            (
                "edited, resuming: start over",
                &recorded,
                edited,
                true,
                SourceVerdict::Restart,
            ),
            (
                "ctime only, resuming: start over",
                &recorded,
                touched,
                true,
                SourceVerdict::Restart,
            ),
            (
                "another file in its place",
                &recorded,
                swapped,
                false,
                SourceVerdict::Replaced,
            ),
            (
                "another file in its place, resuming",
                &recorded,
                swapped,
                true,
                SourceVerdict::Replaced,
            ),
            (
                "legacy record, same size and mtime: identity recorded",
                &legacy,
                queued,
                true,
                SourceVerdict::Go { restamp: true },
            ),
            (
                "legacy record, edited, resuming",
                &legacy,
                edited,
                true,
                SourceVerdict::Restart,
            ),
        ];
        for (what, job, now, resuming, expected) in table {
            assert_eq!(source_verdict(job, now, resuming), expected, "{what}");
        }
    }

    #[test]
    fn the_transfer_follows_size_batching_and_what_a_resumed_session_started_as() {
        let mib = 1024 * 1024;
        let batched = UploadConfig {
            session_threshold: 16 * mib,
            chunk_size: 8 * mib,
            batch_commit: true,
            ..UploadConfig::default()
        };
        let unbatched = UploadConfig {
            batch_commit: false,
            ..batched.clone()
        };
        use Transfer::*;
        let table = [
            ("small, batched", JobState::Preparing, mib, &batched, Packed),
            (
                "one chunk, batched",
                JobState::Preparing,
                8 * mib,
                &batched,
                Packed,
            ),
            (
                "two chunks, batched",
                JobState::Preparing,
                8 * mib + 1,
                &batched,
                Session,
            ),
            ("empty, batched", JobState::Preparing, 0, &batched, Session),
            (
                "small, batched, a session started before (resumed by probing it)",
                uploading(Some("s"), 0, false),
                mib,
                &batched,
                Session,
            ),
            (
                "small, batched, Uploading with no session yet",
                uploading(None, 0, false),
                mib,
                &batched,
                Packed,
            ),
            (
                "small, unbatched",
                JobState::Preparing,
                mib,
                &unbatched,
                Whole,
            ),
            (
                "at the threshold, unbatched",
                JobState::Preparing,
                16 * mib,
                &unbatched,
                Whole,
            ),
            ("large", JobState::Preparing, 17 * mib, &batched, Concurrent),
            (
                "large, unbatched",
                JobState::Preparing,
                17 * mib,
                &unbatched,
                Concurrent,
            ),
            (
                "small, unbatched, a session started before",
                uploading(None, 0, false),
                mib,
                &unbatched,
                Session,
            ),
            (
                "large, resumed as sequential",
                uploading(Some("s"), 8 * mib, false),
                17 * mib,
                &batched,
                Session,
            ),
            (
                "resumed as concurrent",
                uploading(Some("s"), 0, true),
                17 * mib,
                &batched,
                Concurrent,
            ),
        ];
        for (what, state, size, upload, expected) in table {
            assert_eq!(transfer_for(&state, size, upload), expected, "{what}");
        }
    }
}

//! The upload engine: takes jobs from the queue and drives each through its states until it is
//! Done, Failed, parked as Waiting, or stopped.
//!
//! One task per running job, at most `upload.transfers` at once. A job's progress is written to
//! the queue at every step (session id and confirmed offset included), so a job picked up after
//! a crash continues from where it was: an upload session from its offset, and a commit whose
//! answer never came by looking at the remote file first (ARCHITECTURE.md, invariant 2).
//!
//! Files go up through upload sessions in chunks, each carrying the content hash of its own
//! bytes; small files are then committed together in batches (`commit`), large ones on their
//! own. With `upload.batch_commit` off, small files go up in one `files/upload` each. A job is
//! Done only when the metadata Dropbox returns carries the content hash of the bytes sent
//! (ARCHITECTURE.md, invariant 4).
//!
//! Two limits keep both the CPU and the network busy without holding much memory: at most
//! `upload.transfers` jobs send data at once (each holding at most one chunk in memory), and up
//! to one more job per core is claimed ahead of them to prepare (resize) its photo meanwhile.
//!
//! Errors are sorted in [`Engine::classify`]: transient ones park the job as Waiting (backoff in
//! [`retry`]), an expired access token is refreshed once and the request repeated, a refused
//! token logs the account out (jobs wait, they are not failed), anything else fails the job
//! with a message naming the file.

mod batches;
mod meter;
pub mod retry;

pub use batches::BatchFinished;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::UploadConfig;
use crate::credentials::{Session, SessionError};
use crate::dropbox::{self, AuthError, Client};
use crate::export::Conflict;
use crate::prepare::{self, SourceError, SourceFile};
use crate::queue::{Claim, FailureKind, Job, JobId, JobState, Queue, QueueError, now_ms};

/// Runs one Dropbox request through [`Session::with_token`] (a fresh token; on
/// `expired_access_token` one shared refresh and one more try) and evaluates to its result. A
/// 429 holds back every request for its Retry-After (the client keeps that, for every route);
/// a session that cannot give a token ends the step. A macro so that call sites can borrow
/// their arguments as they would in a plain call.
macro_rules! call {
    ($engine:expr, |$token:ident| $request:expr) => {{
        let engine = &$engine;
        engine
            .session
            .with_token(|token: crate::secret::Secret| async {
                // A move, so the future owns the token; everything else is borrowed.
                let token = token;
                let $token = &token;
                $request.await
            })
            .await
            .map_err(session_step)?
    }};
}

mod commit;
mod concurrent;
mod remote;

/// Progress of one job's bytes, throttled to a few events per second per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressEvent {
    pub job: JobId,
    pub sent: u64,
    pub total: u64,
}

/// Least time between two progress events of one job.
const PROGRESS_INTERVAL_MS: u64 = 200;

/// Tries for a request whose successful answer could not be read, before its job fails.
const DECODE_RETRIES: u32 = 3;

/// Why a job stopped moving, decided in one place.
#[derive(Debug, Clone)]
enum Step {
    /// Wait and try again from the current state.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The account is logged out; the job keeps its state until a login.
    LoggedOut,
    /// Retrying will not help.
    Failed { kind: FailureKind, message: String },
    /// The job went back to Queued (a session expired, the source changed); run it again.
    Requeued,
    /// Cancelled or shutting down; what is persisted stays as it is.
    Stopped,
}

impl From<QueueError> for Step {
    fn from(e: QueueError) -> Step {
        match e {
            // The job was cancelled (or finished) under us.
            QueueError::IllegalTransition { .. } | QueueError::NotFound(_) => Step::Stopped,
            e => Step::Transient {
                reason: format!("the queue could not be updated: {e}"),
                retry_after: None,
            },
        }
    }
}

/// How often a job held back by a full cache disk looks for space again.
const CACHE_FULL_RETRY: Duration = Duration::from_secs(5);

fn source_step(e: SourceError) -> Step {
    match e {
        SourceError::Changed(_) => Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        },
        // The photo is fine; the disk is not. Failing it would make the user retry by hand
        // what freeing space fixes: the job waits, and the others that need no cache go on.
        SourceError::Cache {
            ref dir,
            ref source,
            ..
        } if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
            Step::Transient {
                reason: format!(
                    "the cache disk is full: no room in {} for the prepared copy; waiting for space",
                    dir.display()
                ),
                retry_after: Some(CACHE_FULL_RETRY),
            }
        }
        e => Step::Failed {
            kind: FailureKind::Source,
            message: e.to_string(),
        },
    }
}

pub struct Engine {
    queue: Queue,
    session: Arc<Session>,
    client: Client,
    upload: UploadConfig,
    progress: broadcast::Sender<ProgressEvent>,
    /// Where prepared (resized, location-free) files wait for their upload.
    prepared_dir: PathBuf,
    /// Photos being prepared at once, at most one per core.
    prepare_slots: Semaphore,
    /// Jobs sending file data at once (`upload.transfers`).
    network_slots: Semaphore,
    running: std::sync::Mutex<HashMap<JobId, Running>>,
    /// Told when a running job gives back its slot (the batch committer then checks whether
    /// anything is still being sent).
    slot_freed: Notify,
    /// To the batch committer (`commit`).
    commits: mpsc::UnboundedSender<commit::Entry>,
    commits_incoming: std::sync::Mutex<Option<mpsc::UnboundedReceiver<commit::Entry>>>,
    /// Batches as they end (see `batches`).
    batches: broadcast::Sender<BatchFinished>,
    /// Bytes sent recently, for the rate and ETA `status` shows.
    meter: Arc<meter::Meter>,
    /// What is already in Dropbox's folders, for skip-identical.
    remote: remote::RemoteIndex,
    /// Whether watch-folder jobs wait (`policy`); read at each claim.
    auto_hold: tokio::sync::watch::Receiver<crate::policy::Hold>,
}

/// A job the engine is working on.
struct Running {
    /// Cancelled to stop the job's task at once.
    token: CancellationToken,
    /// The job's place among the jobs the engine works on at once; given back when the job
    /// only waits for its batch commit.
    slot: Option<OwnedSemaphorePermit>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Step> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Step::Transient {
            reason: format!("internal task failed: {e}"),
            retry_after: None,
        })
}

impl Engine {
    pub fn new(
        queue: Queue,
        session: Arc<Session>,
        client: Client,
        upload: UploadConfig,
        prepared_dir: PathBuf,
        auto_hold: tokio::sync::watch::Receiver<crate::policy::Hold>,
    ) -> Arc<Engine> {
        let (progress, _) = broadcast::channel(1024);
        let (commits, commits_incoming) = mpsc::unbounded_channel();
        let transfers = upload.transfers;
        Arc::new(Engine {
            queue,
            session,
            client,
            upload,
            progress,
            prepared_dir,
            prepare_slots: Semaphore::new(cores()),
            network_slots: Semaphore::new(transfers),
            running: Default::default(),
            slot_freed: Notify::new(),
            commits,
            commits_incoming: std::sync::Mutex::new(Some(commits_incoming)),
            batches: broadcast::channel(256).0,
            meter: Default::default(),
            remote: Default::default(),
            auto_hold,
        })
    }

    /// Upload throughput over the last few seconds, in bytes per second.
    pub fn throughput(&self) -> u64 {
        self.meter.rate()
    }

    pub fn subscribe_progress(&self) -> broadcast::Receiver<ProgressEvent> {
        self.progress.subscribe()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs being prepared or sent (not just waiting for their commit).
    fn sending(&self) -> usize {
        self.running().values().filter(|r| r.slot.is_some()).count()
    }

    /// The job no longer counts against the jobs worked on at once.
    fn free_slot(&self, id: JobId) {
        let slot = self.running().get_mut(&id).and_then(|r| r.slot.take());
        if slot.is_some() {
            drop(slot);
            self.slot_freed.notify_one();
        }
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
    async fn next_job(&self, shutdown: &CancellationToken) -> Option<Job> {
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
    async fn stop_cancelled_jobs(self: Arc<Self>, shutdown: CancellationToken) {
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

    async fn work(self: Arc<Self>, job: Job, token: CancellationToken) {
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
    async fn discard_prepared(&self, id: JobId) {
        let dir = self.prepared_dir.clone();
        let _ = tokio::task::spawn_blocking(move || prepare::discard(&dir, id)).await;
    }

    /// Records why a job stopped moving.
    async fn settle(&self, id: JobId, step: Step) -> Result<(), QueueError> {
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

    async fn to(&self, id: JobId, next: JobState) -> Result<JobState, Step> {
        Ok(self.queue.transition(id, next).await?.state)
    }

    /// Moves one job forward until it is Done or something stops it.
    async fn drive(&self, job: Job) -> Result<(), Step> {
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
    async fn prepared(
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

    async fn requeue(&self, id: JobId) -> Step {
        match self.queue.transition(id, JobState::Queued).await {
            Ok(_) => Step::Requeued,
            Err(e) => e.into(),
        }
    }

    /// One request: read, commit, verify.
    async fn upload_whole(&self, job: &Job, path: &SourceFile) -> Result<(), Step> {
        let source = path.clone();
        let (bytes, stamp, hash) = blocking(move || prepare::read_whole(&source))
            .await?
            .map_err(source_step)?;
        if self.already_there(job, &hash).await? {
            return Ok(());
        }
        self.committing(job, &hash, None).await?;
        let arg = dropbox::UploadArg {
            commit: commit_info(job),
            content_hash: Some(hash.clone()),
        };
        let progress = self.progress_for(job.id, 0, stamp.size);
        let result = call!(self, |token| self.client.upload(
            token,
            &arg,
            bytes.clone(),
            Some(progress.clone())
        ));
        match result {
            Ok(meta) => self.verified(job, meta, &hash, false).await,
            Err(e) => Err(self.classify(job, e).await),
        }
    }

    /// An upload session: chunks from the confirmed offset, then the commit. `sending` is the
    /// job's network slot, given back once the data is sent.
    async fn upload_session(
        &self,
        job: &Job,
        state: JobState,
        path: &SourceFile,
        expected_size: u64,
        sending: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<(), Step> {
        let id = job.id;
        let (mut session_id, mut offset) = match &state {
            JobState::Uploading {
                session_id: Some(session),
                offset,
                ..
            } => (Some(session.clone()), *offset),
            _ => (None, 0),
        };
        let source = path.clone();
        // A file that fits one request is read once: its hash is also the request's.
        let (stamp, hash, mut whole) =
            if session_id.is_none() && expected_size <= self.upload.chunk_size {
                let (bytes, stamp, hash) = blocking(move || prepare::read_whole(&source))
                    .await?
                    .map_err(source_step)?;
                (stamp, hash, Some(bytes))
            } else {
                let (stamp, hash) = blocking(move || prepare::hash_whole(&source))
                    .await?
                    .map_err(source_step)?;
                (stamp, hash, None)
            };
        if !matches!(state, JobState::Uploading { .. }) {
            if self.already_there(job, &hash).await? {
                return Ok(());
            }
            self.to(
                id,
                JobState::Uploading {
                    session_id: None,
                    offset: 0,
                    concurrent: false,
                    landed: Vec::new(),
                },
            )
            .await?;
        }
        let size = stamp.size;
        if offset > size {
            return Err(self.requeue(id).await);
        }
        if let Some(session) = &session_id
            && offset < size
        {
            offset = self.probe_offset(job, session, offset, size).await?;
        }
        let chunk = self.upload.chunk_size;
        while session_id.is_none() || offset < size {
            let len = chunk.min(size - offset);
            let close = offset + len == size;
            let (body, body_hash) = match whole.take() {
                Some(bytes) if offset == 0 && len == size => (bytes, hash.clone()),
                _ => {
                    let source = path.clone();
                    blocking(move || prepare::read_range(&source, offset, len as usize))
                        .await?
                        .map_err(source_step)?
                }
            };
            let progress = self.progress_for(id, offset, size);
            match &session_id {
                None => {
                    let arg = dropbox::UploadSessionStartArg {
                        close,
                        session_type: None,
                        content_hash: Some(body_hash),
                    };
                    let result = call!(self, |token| self.client.upload_session_start(
                        token,
                        &arg,
                        body.clone(),
                        Some(progress.clone())
                    ));
                    let started = match result {
                        Ok(started) => started,
                        Err(e) => return Err(self.classify(job, e).await),
                    };
                    session_id = Some(started.session_id);
                    offset += len;
                }
                Some(session) => {
                    let arg = dropbox::UploadSessionAppendArg {
                        cursor: dropbox::UploadSessionCursor {
                            session_id: session.clone(),
                            offset,
                        },
                        close,
                        content_hash: Some(body_hash),
                    };
                    let result = call!(self, |token| self.client.upload_session_append(
                        token,
                        &arg,
                        body.clone(),
                        Some(progress.clone())
                    ));
                    match result {
                        Ok(()) => offset += len,
                        Err(dropbox::Error::Route(
                            dropbox::UploadSessionAppendError::IncorrectOffset { correct_offset },
                        )) if correct_offset <= size => {
                            // Dropbox has more or fewer bytes than recorded (a lost answer, a
                            // crash between append and record): continue from its count.
                            tracing::info!(
                                job = id,
                                "resuming at Dropbox's offset {correct_offset} (had {offset})"
                            );
                            offset = correct_offset;
                        }
                        Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::Closed))
                            if close =>
                        {
                            // The closing append landed; its answer was lost.
                            offset = size;
                        }
                        Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::NotFound)) => {
                            tracing::info!(
                                job = id,
                                "the upload session expired; sending the file again"
                            );
                            return Err(self.requeue(id).await);
                        }
                        Err(e) => return Err(self.classify(job, e).await),
                    }
                }
            }
            self.to(
                id,
                JobState::Uploading {
                    session_id: session_id.clone(),
                    offset,
                    concurrent: false,
                    landed: Vec::new(),
                },
            )
            .await?;
        }
        drop(sending);
        let session = session_id.expect("the loop runs until a session exists");
        self.committing(job, &hash, Some(&session)).await?;
        self.commit(job, &session, stamp.size, &hash).await
    }

    /// Asks Dropbox how much of a resumed sequential session it holds, with an empty append at
    /// the recorded offset: a chunk that landed just before a crash (its answer never recorded)
    /// is then not sent again. Returns the offset to go on from.
    async fn probe_offset(
        &self,
        job: &Job,
        session: &str,
        offset: u64,
        size: u64,
    ) -> Result<u64, Step> {
        let arg = dropbox::UploadSessionAppendArg {
            cursor: dropbox::UploadSessionCursor {
                session_id: session.to_string(),
                offset,
            },
            close: false,
            content_hash: None,
        };
        let result = call!(self, |token| self.client.upload_session_append(
            token,
            &arg,
            Bytes::new(),
            None
        ));
        match result {
            Ok(()) => Ok(offset),
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::IncorrectOffset {
                correct_offset,
            })) if correct_offset <= size => {
                tracing::info!(
                    job = job.id,
                    "Dropbox holds {correct_offset} bytes of the session (recorded {offset})"
                );
                Ok(correct_offset)
            }
            // Closed: the closing append landed, so all of it is there.
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::Closed)) => Ok(size),
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::NotFound)) => {
                tracing::info!(
                    job = job.id,
                    "the upload session expired; sending the file again"
                );
                Err(self.requeue(job.id).await)
            }
            Err(e) => Err(self.classify(job, e).await),
        }
    }

    /// Commits a closed session: a small file in a batch with others, a large one on its own.
    async fn commit(&self, job: &Job, session: &str, size: u64, hash: &str) -> Result<(), Step> {
        if !self.upload.batch_commit || size > self.upload.session_threshold {
            return self.finish_session(job, session, size, hash).await;
        }
        let label = format!("{} → {}", job.source.display(), job.remote_path);
        let arg = finish_arg(job, session, size);
        match self.commit_in_batch(job.id, label, arg).await? {
            commit::Outcome::Landed(meta) => self.verified(job, meta, hash, false).await,
            commit::Outcome::Refused(dropbox::UploadSessionFinishError::LookupFailed(e)) => {
                // The session is gone or does not hold what we think: send the file again.
                tracing::info!(
                    job = job.id,
                    "the batch commit could not use the session ({e}); sending the file again"
                );
                Err(self.requeue(job.id).await)
            }
            commit::Outcome::Refused(e) => Err(self.classify(job, dropbox::Error::Route(e)).await),
            commit::Outcome::Unsure(step) => Err(step),
        }
    }

    /// `upload_session/finish` for one file.
    async fn finish_session(
        &self,
        job: &Job,
        session: &str,
        size: u64,
        hash: &str,
    ) -> Result<(), Step> {
        let arg = finish_arg(job, session, size);
        let result = call!(self, |token| self.client.upload_session_finish(
            token,
            &arg,
            Bytes::new(),
            None
        ));
        match result {
            Ok(meta) => self.verified(job, meta, hash, false).await,
            Err(dropbox::Error::Route(dropbox::UploadSessionFinishError::LookupFailed(_))) => {
                // The session is gone or does not hold what we think: send the file again.
                Err(self.requeue(job.id).await)
            }
            Err(e) => Err(self.classify(job, e).await),
        }
    }

    /// The job is about to send its commit: records it as Committing, so that a crash or a
    /// lost answer is resolved by looking at Dropbox. Under `rename` the files already holding
    /// this content under the job's name (or a renamed copy of it) are listed first and kept
    /// with the state: a commit under `rename` always makes a new file, and only a file not
    /// among these can be the one it made.
    async fn committing(&self, job: &Job, hash: &str, session: Option<&str>) -> Result<(), Step> {
        let before = if job.options.conflict == Conflict::Rename {
            let copies = self.copies_with_hash(job, hash).await?;
            Some(copies.iter().map(lower_path).collect())
        } else {
            None
        };
        self.to(
            job.id,
            JobState::Committing {
                content_hash: hash.to_string(),
                session_id: session.map(str::to_string),
                before,
            },
        )
        .await?;
        Ok(())
    }

    /// A commit was sent but its answer never recorded: did it land? Looks at the remote file
    /// before anything is sent again (ARCHITECTURE.md, invariant 2), holding the job's network
    /// slot `sending` for the look-ups. Returns true when the job is now Done. `before`: see
    /// `JobState::Committing`.
    async fn resolve_commit(
        &self,
        job: &Job,
        hash: &str,
        session: Option<&str>,
        before: Option<&[String]>,
        sending: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<bool, Step> {
        if let Some(before) = before {
            // Under `rename` a file with this content that was there before the commit (at the
            // name asked for, or a copy) is not its work: only a new one counts, wherever
            // Dropbox put it.
            let landed = self
                .copies_with_hash(job, hash)
                .await?
                .into_iter()
                .find(|meta| !before.contains(&lower_path(meta)));
            if let Some(meta) = landed {
                tracing::info!(
                    job = job.id,
                    "an earlier commit landed as {:?}",
                    meta.path_display
                );
                self.verified(job, meta, hash, false).await?;
                return Ok(true);
            }
        } else if let Some(meta) = self.remote_with_hash(job, hash).await? {
            tracing::info!(
                job = job.id,
                "an earlier commit landed: {}",
                job.remote_path
            );
            self.verified(job, meta, hash, false).await?;
            return Ok(true);
        }
        // Under a policy that lets Dropbox rename, the lost commit may have landed beside the
        // name asked for ("photo (1).jpg"): that copy is this job's file.
        if before.is_none()
            && job.options.conflict.renames()
            && let Some(meta) = self.find_renamed_copy(job, hash).await?
        {
            tracing::info!(
                job = job.id,
                "an earlier commit landed under another name: {:?}",
                meta.path_display
            );
            self.verified(job, meta, hash, false).await?;
            return Ok(true);
        }
        // Not there: a closed session can simply be committed again (no data to send).
        drop(sending);
        if let Some(session) = session
            // The session holds the bytes; only their size is wanted here.
            && let Some(prepared) = self.prepared(job, None, true).await?
        {
            self.commit(job, session, prepared.stamp.size, hash).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// With `skip-identical`, a file of the same name and content already in Dropbox makes the
    /// job Done without sending anything. Returns true when that is so.
    async fn already_there(&self, job: &Job, hash: &str) -> Result<bool, Step> {
        if job.options.conflict != Conflict::SkipIdentical {
            return Ok(false);
        }
        let listed = self.remote_file(job).await?;
        if listed.is_none_or(|meta| meta.content_hash.as_deref() != Some(hash)) {
            return Ok(false);
        }
        // The listing may be a few seconds old: confirm before sending nothing.
        let Some(meta) = self.remote_with_hash(job, hash).await? else {
            return Ok(false);
        };
        tracing::info!(
            job = job.id,
            "already in Dropbox with the same content: {}",
            job.remote_path
        );
        self.verified(job, meta, hash, true).await?;
        Ok(true)
    }

    /// The file at the job's remote path, if it holds exactly the content with `hash`.
    async fn remote_with_hash(
        &self,
        job: &Job,
        hash: &str,
    ) -> Result<Option<dropbox::FileMetadata>, Step> {
        Ok(self
            .get_file(job)
            .await?
            .filter(|meta| meta.content_hash.as_deref() == Some(hash)))
    }

    /// A file beside the job's target, named as Dropbox names renamed copies
    /// (`name (N).ext`, `name (conflicted copy…).ext`), holding exactly this content.
    async fn find_renamed_copy(
        &self,
        job: &Job,
        hash: &str,
    ) -> Result<Option<dropbox::FileMetadata>, Step> {
        let (_, name) = job
            .remote_path
            .rsplit_once('/')
            .unwrap_or(("", &job.remote_path));
        let name = name.to_lowercase();
        Ok(self
            .copies_with_hash(job, hash)
            .await?
            .into_iter()
            .find(|meta| meta.name.to_lowercase() != name))
    }

    /// The files in the job's target folder holding exactly this content under the job's
    /// name or a name Dropbox gives renamed copies of it (`name (N).ext`,
    /// `name (conflicted copy…).ext`). Read from a fresh listing, never a cached one: what it
    /// says decides whether a commit made a file.
    async fn copies_with_hash(
        &self,
        job: &Job,
        hash: &str,
    ) -> Result<Vec<dropbox::FileMetadata>, Step> {
        let (parent, name) = job
            .remote_path
            .rsplit_once('/')
            .unwrap_or(("", &job.remote_path));
        let exact = name.to_lowercase();
        let stem = name
            .rsplit_once('.')
            .map_or(name, |(stem, _)| stem)
            .to_lowercase();
        let mut found = Vec::new();
        let arg = dropbox::ListFolderArg {
            path: parent.to_string(),
            ..Default::default()
        };
        let mut page = match call!(self, |token| self.client.list_folder(token, &arg)) {
            Ok(page) => page,
            // No folder: nothing in it.
            Err(dropbox::Error::Route(_)) => return Ok(found),
            Err(e) => return Err(self.classify(job, e).await),
        };
        loop {
            for entry in std::mem::take(&mut page.entries) {
                if let dropbox::Metadata::File(meta) = entry
                    && meta.content_hash.as_deref() == Some(hash)
                {
                    let lower = meta.name.to_lowercase();
                    if lower == exact || lower.starts_with(&format!("{stem} (")) {
                        found.push(meta);
                    }
                }
            }
            if !page.has_more {
                return Ok(found);
            }
            let cursor = page.cursor.clone();
            page = match call!(self, |token| self
                .client
                .list_folder_continue(token, &cursor))
            {
                Ok(page) => page,
                Err(dropbox::Error::Route(_)) => return Ok(found),
                Err(e) => return Err(self.classify(job, e).await),
            };
        }
    }

    /// Done only if Dropbox holds exactly the bytes sent (ARCHITECTURE.md, invariant 4).
    async fn verified(
        &self,
        job: &Job,
        meta: dropbox::FileMetadata,
        hash: &str,
        skipped: bool,
    ) -> Result<(), Step> {
        if meta.content_hash.as_deref() != Some(hash) {
            return Err(Step::Failed {
                kind: FailureKind::Verification,
                message: format!(
                    "{}: Dropbox stored different content at {} than was sent (content hash {} instead of {hash})",
                    job.source.display(),
                    job.remote_path,
                    meta.content_hash.as_deref().unwrap_or("missing"),
                ),
            });
        }
        self.note_remote(&meta).await;
        let remote_path = meta
            .path_display
            .clone()
            .unwrap_or_else(|| job.remote_path.clone());
        self.to(
            job.id,
            JobState::Done {
                content_hash: hash.to_string(),
                remote_path,
                rev: meta.rev,
                skipped,
            },
        )
        .await?;
        Ok(())
    }

    /// Sorts a Dropbox error into what happens to the job.
    async fn classify<E: dropbox::RouteError>(&self, job: &Job, error: dropbox::Error<E>) -> Step {
        match error {
            dropbox::Error::Auth(AuthError::ExpiredAccessToken) => Step::Transient {
                reason: "the access token expired again".into(),
                retry_after: None,
            },
            // `Session::with_token` has logged the account out if the token was the current one.
            dropbox::Error::Auth(_) => Step::LoggedOut,
            e if e.is_transient() => Step::Transient {
                reason: e.to_string(),
                retry_after: e.retry_after(),
            },
            // A success whose body does not parse: most likely cut short by a proxy or the
            // connection. A few more tries; then the job fails with the reason, since a Dropbox
            // that changed its answers would otherwise be asked forever.
            e @ dropbox::Error::Decode { .. } if job.attempts < DECODE_RETRIES => Step::Transient {
                reason: e.to_string(),
                retry_after: None,
            },
            e => Step::Failed {
                kind: FailureKind::Refused,
                message: format!("{} → {}: {e}", job.source.display(), job.remote_path),
            },
        }
    }

    /// A progress callback for one request's body, covering bytes `base..` of `total`.
    fn progress_for(&self, id: JobId, base: u64, total: u64) -> dropbox::Progress {
        self.shared_progress(id, base, total).request()
    }

    /// Progress of one job whose bytes from `base` on may go in several requests at once.
    fn shared_progress(&self, id: JobId, base: u64, total: u64) -> Arc<SharedProgress> {
        let queue = self.queue.clone();
        let events = self.progress.clone();
        let last = AtomicU64::new(0);
        Arc::new(SharedProgress {
            at: AtomicU64::new(base),
            meter: self.meter.clone(),
            report: Box::new(move |at: u64| {
                let now = now_ms();
                if at < total
                    && now.saturating_sub(last.load(Ordering::Relaxed)) < PROGRESS_INTERVAL_MS
                {
                    return;
                }
                last.store(now, Ordering::Relaxed);
                queue.note_progress(id, at);
                let _ = events.send(ProgressEvent {
                    job: id,
                    sent: at,
                    total,
                });
            }),
        })
    }
}

/// One job's bytes going out, reported as progress events (a few per second) and counted by
/// the throughput meter.
struct SharedProgress {
    /// Bytes of the job's file sent or known to be there.
    at: AtomicU64,
    meter: Arc<meter::Meter>,
    /// Reports the new count (throttled).
    report: Box<dyn Fn(u64) + Send + Sync>,
}

impl SharedProgress {
    /// Counts bytes that are there without being sent now (landed before a restart).
    fn skip(&self, bytes: u64) {
        let at = self.at.fetch_add(bytes, Ordering::Relaxed) + bytes;
        (self.report)(at);
    }

    /// A callback for one request's body (given the bytes of it sent so far): adds what it
    /// sends to the job's count.
    fn request(self: &Arc<Self>) -> dropbox::Progress {
        let shared = self.clone();
        let counted = AtomicU64::new(0);
        Arc::new(move |sent: u64| {
            let delta = sent.saturating_sub(counted.swap(sent, Ordering::Relaxed));
            shared.meter.add(delta);
            let at = shared.at.fetch_add(delta, Ordering::Relaxed) + delta;
            (shared.report)(at);
        })
    }
}

/// The prepared file a job left in the cache (`<job id>-<name>`, not a `.part`), if any.
fn cached_prepared(dir: &Path, id: JobId) -> Option<prepare::Prepared> {
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

/// A file's path as Dropbox compares it.
fn lower_path(meta: &dropbox::FileMetadata) -> String {
    meta.path_lower
        .clone()
        .or_else(|| meta.path_display.as_deref().map(dropbox::path::path_key))
        .unwrap_or_else(|| meta.name.to_lowercase())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The commit of a closed session (no data travels with it).
fn finish_arg(job: &Job, session: &str, size: u64) -> dropbox::UploadSessionFinishArg {
    dropbox::UploadSessionFinishArg {
        cursor: dropbox::UploadSessionCursor {
            session_id: session.to_string(),
            offset: size,
        },
        commit: commit_info(job),
        content_hash: None,
    }
}

fn session_step(e: SessionError) -> Step {
    if e.is_transient() {
        Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        }
    } else {
        Step::LoggedOut
    }
}

/// Where and how a job's file is written, per its conflict policy. The identical-content rule
/// of Dropbox (an `add` or `overwrite` of the same bytes writes nothing and answers with the
/// existing file) keeps a retried commit from making a copy; `rename` asks for a new name even
/// then (`strict_conflict`).
fn commit_info(job: &Job) -> dropbox::CommitInfo {
    let (mode, autorename, strict_conflict) = match (&job.replaces_rev, job.options.conflict) {
        // The finished version of a file sent half-written takes that upload's place; if the
        // remote copy changed since, Dropbox keeps both ("name (conflicted copy).jpg").
        (Some(rev), _) => (dropbox::WriteMode::Update(rev.clone()), true, false),
        (None, Conflict::SkipIdentical) => (dropbox::WriteMode::Add, true, false),
        (None, Conflict::Rename) => (dropbox::WriteMode::Add, true, true),
        (None, Conflict::Overwrite) => (dropbox::WriteMode::Overwrite, false, false),
    };
    dropbox::CommitInfo {
        path: job.remote_path.clone(),
        mode,
        autorename,
        client_modified: job.source_mtime_ms.map(|ms| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }),
        mute: false,
        strict_conflict,
    }
}

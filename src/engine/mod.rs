//! The upload engine: takes jobs from the queue and drives each through its states until it is
//! Done, Failed, parked as Waiting, or stopped.
//!
//! One task per running job, at most `upload.transfers` at once. A job's progress is written to
//! the queue at every step (session id and confirmed offset included), so a job picked up after
//! a crash continues from where it was: an upload session from its offset, and a commit whose
//! answer never came by looking at the remote file first (ARCHITECTURE.md, invariant 2).
//!
//! Small files (one chunk) go up many to a request (`packing`: sessions from `start_batch`,
//! their bytes in one `append_batch`); larger ones through upload sessions in chunks, each
//! carrying the content hash of its own bytes. Small files are then committed together in
//! batches (`commit`), large ones on their own. With `upload.batch_commit` off, small files go
//! up in one `files/upload` each. A job is Done only when the metadata Dropbox returns carries
//! the content hash of the bytes sent (ARCHITECTURE.md, invariant 4).
//!
//! Two limits keep both the CPU and the network busy without holding much memory: at most
//! `upload.transfers` requests send data at once (`network_slots`: a slot covers a request,
//! never the reading, hashing or looking up before it), and up to `upload.transfers` plus one
//! per core jobs are claimed, so photos are prepared (resized) meanwhile. A job whose bytes
//! wait with the packer gives its place back; the packer holds at most `packing::HELD_BYTES`.
//!
//! Errors are sorted in `classify`: transient ones park the job as Waiting (backoff in
//! [`retry`]), an expired access token is refreshed once and the request repeated, a refused
//! token logs the account out (jobs wait, they are not failed), anything else fails the job
//! with a message naming the file.
//!
//! The engine's parts, one idea each (ARCHITECTURE.md, "Modules"):
//!
//! - `scheduler`: claims runnable jobs and runs each in a task, within the two limits;
//!   stops a cancelled job at once.
//! - `driver`: one job from its persisted state to Done (restart repair, source checks, the
//!   choice of transfer) and `settle`, which records why it stopped.
//! - `transfer`: whole-file and sequential-session uploads and their commits; `concurrent`:
//!   a large file's chunks in parallel; `packing`: small files' bytes many to a request;
//!   `commit`: small files' commits batched.
//! - `remote`: what Dropbox already holds (skip-identical, the listing cache) and what a lost
//!   commit resolves to, by looking; `replace`: an edited photo's upload taking the place of
//!   the copy sent before.
//! - `classify`: every error as a `Step` (wait, fail, requeue, logged out, stopped);
//!   `retry`: how long a wait lasts.
//! - `progress`: throttled progress events and the throughput `meter`.
//! - `batches`: a batch's summary (and shared link) once its last job is final.

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

mod batches;
mod classify;
mod commit;
mod concurrent;
mod driver;
mod meter;
mod outages;
mod packing;
mod progress;
mod remote;
mod replace;
pub mod retry;
mod scheduler;
mod transfer;

pub use batches::BatchFinished;
pub use outages::plain_cause;
pub use progress::ProgressEvent;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Notify, Semaphore, broadcast, mpsc};

use crate::config::UploadConfig;
use crate::credentials::Session;
use crate::dropbox::Client;
use crate::queue::{JobId, Queue};
use classify::{Step, dropbox_step, session_step, source_step};
use progress::SharedProgress;
use scheduler::{Running, cores};

/// Takes jobs from the queue and uploads them (see the module map above).
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
    /// Requests sending file data at once (`upload.transfers`); taken for a request only.
    network_slots: Semaphore,
    running: std::sync::Mutex<HashMap<JobId, Running>>,
    /// Told when a running job gives back its slot (the batch committer then checks whether
    /// anything is still being sent).
    slot_freed: Notify,
    /// Told likewise, for the packer (`packing`), which waits on the same condition.
    pack_wake: Notify,
    /// To the packer (`packing`): small files' bytes, to go up many to a request.
    pieces: mpsc::UnboundedSender<packing::Piece>,
    pieces_incoming: std::sync::Mutex<Option<mpsc::UnboundedReceiver<packing::Piece>>>,
    /// Room for pieces held by the packer, in [`packing::held_units`].
    piece_room: Arc<Semaphore>,
    /// To the batch committer (`commit`).
    commits: mpsc::UnboundedSender<commit::Entry>,
    commits_incoming: std::sync::Mutex<Option<mpsc::UnboundedReceiver<commit::Entry>>>,
    /// Batches as they end (see `batches`).
    batches: broadcast::Sender<BatchFinished>,
    /// Bytes sent recently, for the rate and ETA `status` shows.
    meter: Arc<meter::Meter>,
    /// What is already in Dropbox's folders, for skip-identical.
    remote: remote::RemoteIndex,
    /// Held while a batch's shared link is made (`batches`), so it is made once.
    links: tokio::sync::Mutex<()>,
    /// Causes of waiting told to the log lately, so an outage is one line, not one per file.
    outages: outages::Outages,
    /// Whether watch-folder jobs wait (`policy`); read at each claim.
    auto_hold: tokio::sync::watch::Receiver<crate::policy::Hold>,
}

/// Runs blocking work (disk, decoding) on tokio's blocking pool; a task that died is a
/// passing failure of its job.
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
        let (pieces, pieces_incoming) = mpsc::unbounded_channel();
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
            pack_wake: Notify::new(),
            pieces,
            pieces_incoming: std::sync::Mutex::new(Some(pieces_incoming)),
            piece_room: Arc::new(Semaphore::new(
                packing::held_units(packing::HELD_BYTES) as usize
            )),
            commits,
            commits_incoming: std::sync::Mutex::new(Some(commits_incoming)),
            batches: broadcast::channel(256).0,
            meter: Default::default(),
            remote: Default::default(),
            links: Default::default(),
            outages: Default::default(),
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
}

/// What the engine's table tests share: jobs and remote files made from a few words.
#[cfg(test)]
mod test_support {
    use crate::dropbox::FileMetadata;
    use crate::export::Conflict;
    use crate::queue::{Job, JobState};

    /// A job for `/photos/a.jpg` → `/Album/a.jpg` in `state`, under `conflict`.
    pub fn job(state: JobState, conflict: Conflict) -> Job {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "id": 7,
            "batch": 1,
            "source": "/photos/a.jpg",
            "remote_path": "/Album/a.jpg",
            "created_ms": 0,
            "state": state,
        }))
        .expect("a job record");
        job.options.conflict = conflict;
        job
    }

    /// A file named `name` in `/Album` holding the content `hash`.
    pub fn file(name: &str, hash: &str) -> FileMetadata {
        FileMetadata {
            name: name.into(),
            path_lower: Some(format!("/album/{}", name.to_lowercase())),
            path_display: Some(format!("/Album/{name}")),
            id: format!("id:{name}"),
            client_modified: "2026-01-01T00:00:00Z".into(),
            server_modified: "2026-01-01T00:00:00Z".into(),
            rev: format!("rev-{name}"),
            size: 1,
            content_hash: Some(hash.into()),
            is_downloadable: true,
        }
    }
}

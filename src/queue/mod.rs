//! The persistent upload queue: jobs and batches in sled, and the in-memory index the engine
//! schedules from.
//!
//! Durability rule: every write is flushed (fsync) before the call that made it returns, so
//! `Upload` returning means the jobs survive `kill -9` (ARCHITECTURE.md, invariant 1), and a job recorded as
//! `Committing` is known to be so after a crash (ARCHITECTURE.md, invariant 2). Flushes run on the blocking pool
//! (`Db::flush`, never `flush_async`, which deadlocks when several run at once: sled#1308).
//!
//! Unfinished jobs are also kept in memory (`Index`), so scheduling and status never scan the
//! database; finished ones live only in sled.

mod job;
mod same_path;
mod seal;

pub use same_path::collisions;

pub use job::{
    Batch, BatchId, BatchSummary, FailureKind, Job, JobId, JobState, Origin, SharedLink, now_ms,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast, watch};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "cannot open the queue database at {path}: {error}. If another dbxportd is running, \
         stop it first. Otherwise move {path} aside (it holds your queued uploads) and start \
         again; the files as they were before this start are also kept in {backup}"
    )]
    Open {
        path: PathBuf,
        backup: PathBuf,
        error: sled::Error,
    },
    /// What the database held when dbxportd last stopped is not all there: sled recovers a
    /// damaged file by dropping what follows the damage, and would start with a shorter queue.
    #[error(
        "the queue database at {path} is damaged: it holds {found} where dbxportd left {sealed} \
         when it last stopped (sled cuts a damaged file at the damage as it opens it). The files as \
         they were before this start are kept in {backup}: to try them, move {path} aside and rename the copy to {name}; to start with \
         an empty queue, move both aside (they hold your queued uploads)",
        name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )]
    Damaged {
        path: PathBuf,
        backup: PathBuf,
        sealed: String,
        found: String,
    },
    /// The copy taken before opening could not be made; the database was not opened.
    #[error(
        "cannot keep a copy of the queue database {path} before opening it: {error}. Nothing in \
         it was changed. Make sure the folder and its files are yours and readable (chmod -R u+rw \
         {path}) and that the disk has room, then start again"
    )]
    Backup {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", describe_db_error(.0))]
    Db(#[from] sled::Error),
    #[error("a queue record is unreadable: {0}")]
    Corrupt(String),
    #[error("no job or batch with id {0}")]
    NotFound(u64),
    #[error("job {id} cannot go from {from} to {to}")]
    IllegalTransition {
        id: JobId,
        from: &'static str,
        to: &'static str,
    },
    #[error("the queue's background task failed: {0}")]
    Join(String),
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A database error in words a user can act on. A full disk is the one users meet: sled keeps
/// failing after it (until the database is opened again), so the way out includes a restart.
fn describe_db_error(e: &sled::Error) -> String {
    match e {
        // By kind: sled hands out copies of the error it latched, which keep only the kind.
        sled::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            "the disk holding dbxport's state folder (the queue database) is full: \
             nothing new can be queued. Free some space there, then restart dbxport \
             (systemctl --user restart dbxport); the queue is kept"
                .to_string()
        }
        e => format!("queue database error: {e}"),
    }
}

/// What a caller hands over for one file.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub source: PathBuf,
    pub remote_path: String,
    /// The source when it was accepted: its identity and version.
    pub stamp: crate::prepare::Stamp,
    /// How its path may be resolved when it is read.
    pub access: crate::prepare::Access,
    /// An earlier upload (its rev, at `remote_path`) this one replaces.
    pub replaces_rev: Option<String>,
    pub options: crate::export::ExportOptions,
    /// Set for files a watched folder found.
    pub origin: Option<Origin>,
}

/// Which jobs `list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    /// Not yet final.
    Active,
    Done,
    Failed,
    Batch(BatchId),
}

/// What the engine should do next.
#[derive(Debug)]
pub enum Claim {
    /// Work on this job; it is reserved until [`Queue::release`].
    Job(Box<Job>),
    /// Nothing runnable now; the earliest waiting job becomes runnable at this time (ms).
    Later(u64),
    /// Nothing to do until something changes.
    Idle,
}

/// Sent to subscribers on every state change.
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub job: Job,
}

#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Where `db` lives, for its seal and its backup.
    db_path: PathBuf,
    jobs: sled::Tree,
    batches: sled::Tree,
    meta: sled::Tree,
    index: Mutex<Index>,
    changed: Notify,
    /// The pause switch as it is now, for whoever shows it (the job tray) whichever way it
    /// was flipped.
    paused: watch::Sender<bool>,
    events: broadcast::Sender<JobEvent>,
    /// A batch whose last unfinished job just became final.
    batches_done: broadcast::Sender<BatchId>,
    /// What else a job's Done writes, in the same flush (see [`Queue::set_done_recorder`]).
    done_recorder: std::sync::OnceLock<DoneRecorder>,
    /// The next id to hand out.
    next_id: std::sync::atomic::AtomicU64,
}

/// Given a job that just became Done, an entry to write with it: (tree, key, value).
pub type DoneRecorder = Box<dyn Fn(&Job) -> Option<(sled::Tree, Vec<u8>, Vec<u8>)> + Send + Sync>;

#[derive(Default)]
struct Index {
    /// Unfinished jobs, in id (arrival) order.
    active: BTreeMap<JobId, Job>,
    /// Jobs the engine is working on.
    claimed: HashSet<JobId>,
    /// Unfinished jobs per batch: a batch is over when its count reaches zero.
    unfinished: HashMap<BatchId, usize>,
    /// Unfinished jobs by Dropbox path: those writing one file run one at a time.
    same_path: same_path::SamePath,
}

impl Index {
    /// An unfinished job joins the index.
    fn add(&mut self, job: Job) {
        *self.unfinished.entry(job.batch).or_default() += 1;
        self.same_path.insert(&job.remote_path, job.id);
        self.active.insert(job.id, job);
    }
}

const PAUSED_KEY: &[u8] = b"paused";
const LAST_OPTIONS_KEY: &[u8] = b"last_export_options";
const BANDWIDTH_KEY: &[u8] = b"bandwidth_limit";
const PAUSED_SINCE_KEY: &[u8] = b"paused_since_ms";
const NEXT_ID_KEY: &[u8] = b"next_id";

/// The first id above every id in use: the stored counter, and the highest key of each tree
/// keyed by id (a counter lost in a crash must not hand out an id again).
fn first_free_id(meta: &sled::Tree, trees: &[&sled::Tree]) -> Result<u64> {
    let mut next = match meta.get(NEXT_ID_KEY)? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .as_ref()
                .try_into()
                .map_err(|_| QueueError::Corrupt("the id counter is not 8 bytes".into()))?,
        ),
        // Ids start at 1: 0 reads like "none".
        None => 1,
    };
    for tree in trees {
        if let Some((k, _)) = tree.last()?
            && let Ok(bytes) = <[u8; 8]>::try_from(k.as_ref())
        {
            next = next.max(u64::from_be_bytes(bytes).saturating_add(1));
        }
    }
    Ok(next)
}

fn key(id: u64) -> [u8; 8] {
    // Big-endian so that sled's key order is numeric order.
    id.to_be_bytes()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("queue records serialize")
}

impl Queue {
    /// Opens (or creates) the database and repairs what a crash left half-done. Blocking:
    /// call it from the blocking pool.
    pub fn open(path: &Path) -> Result<Queue> {
        // sled "recovers" a damaged file by cutting it at the damage, silently and in place:
        // keep the bytes as they are now, so that what it drops can still be had back.
        let backup = seal::backup_path(path);
        let open_err = |error| QueueError::Open {
            path: path.to_path_buf(),
            backup: backup.clone(),
            error,
        };
        if path.exists() {
            seal::copy_dir(path, &backup).map_err(|error| QueueError::Backup {
                path: path.to_path_buf(),
                error,
            })?;
        }
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(open_err)?;
        let jobs = db.open_tree("jobs").map_err(open_err)?;
        let batches = db.open_tree("batches").map_err(open_err)?;
        let meta = db.open_tree("meta").map_err(open_err)?;
        if let Some(sealed) = seal::read(path) {
            let found = seal::Seal::of(&jobs, &batches)?;
            if found.lost_from(&sealed) {
                return Err(QueueError::Damaged {
                    path: path.to_path_buf(),
                    backup,
                    sealed: sealed.to_string(),
                    found: found.to_string(),
                });
            }
        }
        // From here on the database changes; a crash before the next clean stop leaves no
        // seal, and sled's own crash recovery (a torn tail) is trusted.
        seal::remove(path);
        let mut index = Index::default();
        for entry in jobs.iter() {
            let (_, value) = entry?;
            let mut job: Job = decode(&value)?;
            if job.state.is_terminal() {
                continue;
            }
            // Preparing leaves nothing behind worth keeping: prepare again.
            if job.state == JobState::Preparing {
                job.state = JobState::Queued;
                jobs.insert(key(job.id), encode(&job))?;
            }
            index.add(job);
        }
        db.flush()?;
        let paused = matches!(meta.get(PAUSED_KEY), Ok(Some(v)) if v.as_ref() == [1]);
        let (events, _) = broadcast::channel(4096);
        let (batches_done, _) = broadcast::channel(256);
        let watches = db.open_tree("watches")?;
        let next_id = first_free_id(&meta, &[&jobs, &batches, &watches])?;
        Ok(Queue {
            inner: Arc::new(Inner {
                db,
                db_path: path.to_path_buf(),
                jobs,
                batches,
                meta,
                index: Mutex::new(index),
                changed: Notify::new(),
                paused: watch::Sender::new(paused),
                events,
                batches_done,
                done_recorder: std::sync::OnceLock::new(),
                next_id: std::sync::atomic::AtomicU64::new(next_id),
            }),
        })
    }

    /// A named tree in the queue's database, for modules that keep records of their own
    /// (watches, the uploaded-index): one sled file, one lock, one flush.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// A new unique id (jobs, batches and watches share the sequence). Ids count up by one
    /// from the highest ever used: sled's own `generate_id` jumps by about a million at each
    /// start, which made ids 20 digits wide and meaningless to read.
    pub fn generate_id(&self) -> Result<u64> {
        self.take_ids(1)
    }

    /// `n` consecutive new ids; returns the first.
    fn take_ids(&self, n: u64) -> Result<u64> {
        let first = self
            .inner
            .next_id
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        // Written with the records that use it, and flushed with them: after a crash the
        // highest key still on disk (see `first_free_id`) covers what the counter lost.
        self.inner
            .meta
            .insert(NEXT_ID_KEY, &(first + n).to_be_bytes())?;
        Ok(first)
    }

    /// At a clean stop: flushes, and records what the database holds, so the next start can
    /// tell a damaged file from an intact one. Blocking.
    pub fn seal(&self) -> Result<()> {
        self.inner.db.flush()?;
        let seal = seal::Seal::of(&self.inner.jobs, &self.inner.batches)?;
        seal::write(&self.inner.db_path, &seal).map_err(|e| QueueError::Db(sled::Error::Io(e)))
    }

    /// Makes every write so far durable, on the blocking pool.
    pub async fn flush(&self) -> Result<()> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| QueueError::Join(e.to_string()))??;
        Ok(())
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding this lock leaves plain data behind; carry on with it.
        self.inner.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, job: &Job) {
        let _ = self.inner.events.send(JobEvent { job: job.clone() });
    }

    /// Accepts a batch. Returns once every job is on disk (ARCHITECTURE.md, invariant 1).
    pub async fn enqueue(
        &self,
        remote_folder: &str,
        new_jobs: Vec<NewJob>,
    ) -> Result<(BatchId, Vec<Job>)> {
        // The batch's id, then its jobs' in order.
        let batch_id = self.take_ids(new_jobs.len() as u64 + 1)?;
        let created_ms = now_ms();
        let replaces = self.replaced_sources(&new_jobs);
        let mut jobs = Vec::with_capacity(new_jobs.len());
        let mut write = sled::Batch::default();
        for ((id, new), replaces) in (batch_id + 1..).zip(new_jobs).zip(replaces) {
            let warnings = replaces
                .map(|earlier| {
                    format!(
                        "{} replaced {} in Dropbox at {}: both were handed over for that path \
                         (Dropbox does not tell letter case apart) under conflict = overwrite, \
                         and this one came last",
                        new.source.display(),
                        earlier.display(),
                        new.remote_path
                    )
                })
                .into_iter()
                .collect();
            let mut job = Job {
                id,
                batch: batch_id,
                source: new.source,
                remote_path: new.remote_path,
                source_size: 0,
                source_mtime_ms: None,
                source_dev: 0,
                source_ino: 0,
                source_ctime_ns: 0,
                access: new.access,
                replaces_rev: new.replaces_rev,
                created_ms,
                state: JobState::Queued,
                attempts: 0,
                bytes_sent: 0,
                options: new.options,
                warnings,
                origin: new.origin,
            };
            job.set_stamp(new.stamp);
            write.insert(&key(job.id), encode(&job));
            jobs.push(job);
        }
        let batch = Batch {
            id: batch_id,
            remote_folder: remote_folder.to_string(),
            created_ms,
            jobs: jobs.iter().map(|j| j.id).collect(),
            summary: None,
            shared_link: None,
        };
        // The batch record first: a crash between the two writes leaves an empty batch, never
        // jobs without one.
        self.inner.batches.insert(key(batch_id), encode(&batch))?;
        self.inner.jobs.apply_batch(write)?;
        self.flush().await?;
        {
            let mut index = self.index();
            for job in &jobs {
                index.add(job.clone());
            }
        }
        for job in &jobs {
            self.publish(job);
        }
        self.inner.changed.notify_waiters();
        Ok((batch_id, jobs))
    }

    /// Registers what a job's Done writes beside it, durably with it (once; later calls are
    /// ignored).
    pub fn set_done_recorder(&self, recorder: DoneRecorder) {
        let _ = self.inner.done_recorder.set(recorder);
    }

    /// For each new job under `overwrite`, the source of the unfinished job (queued before,
    /// or earlier in `new_jobs`) whose file in Dropbox it will replace: it runs after that one
    /// (`same_path`), and says so, so that neither job's "uploaded" hides the other.
    fn replaced_sources(&self, new_jobs: &[NewJob]) -> Vec<Option<PathBuf>> {
        let index = self.index();
        // The latest source for each path among the new jobs so far.
        let mut earlier: HashMap<String, PathBuf> = HashMap::new();
        new_jobs
            .iter()
            .map(|new| {
                let key = crate::dropbox::path::path_key(&new.remote_path);
                let before = index
                    .same_path
                    .last(&new.remote_path)
                    .and_then(|id| index.active.get(&id))
                    .map(|job| job.source.clone())
                    .or_else(|| earlier.get(&key).cloned());
                earlier.insert(key, new.source.clone());
                before.filter(|_| new.options.conflict == crate::export::Conflict::Overwrite)
            })
            .collect()
    }

    /// Moves a job to `next`, if the state machine allows it, and makes that durable.
    pub async fn transition(&self, id: JobId, next: JobState) -> Result<Job> {
        let mut batch_done = None;
        let job = {
            let mut index = self.index();
            let Some(job) = index.active.get_mut(&id) else {
                drop(index);
                return Err(match self.get(id)? {
                    Some(job) => QueueError::IllegalTransition {
                        id,
                        from: job.state.name(),
                        to: next.name(),
                    },
                    None => QueueError::NotFound(id),
                });
            };
            if !job.state.can_become(&next) {
                return Err(QueueError::IllegalTransition {
                    id,
                    from: job.state.name(),
                    to: next.name(),
                });
            }
            job.attempts = match (&job.state, &next) {
                (_, JobState::Waiting { .. }) => job.attempts.saturating_add(1),
                (
                    JobState::Uploading { offset: old, .. },
                    JobState::Uploading { offset: new, .. },
                ) if new > old => 0,
                (JobState::Uploading { .. }, JobState::Uploading { .. }) => job.attempts,
                // Resuming keeps the count, so a run of failures keeps backing off.
                (JobState::Waiting { .. }, _) => job.attempts,
                _ => 0,
            };
            if let JobState::Uploading { offset, .. } = &next {
                job.bytes_sent = *offset;
            }
            if let JobState::Done { .. } = &next {
                job.bytes_sent = job.source_size;
            }
            job.state = next;
            let job = job.clone();
            if job.state.is_terminal() {
                index.active.remove(&id);
                index.same_path.remove(&job.remote_path, id);
                if let Some(left) = index.unfinished.get_mut(&job.batch) {
                    *left -= 1;
                    if *left == 0 {
                        index.unfinished.remove(&job.batch);
                        batch_done = Some(job.batch);
                    }
                }
                index.claimed.remove(&id);
            }
            // Written before the Done itself, in the same flush: sled recovers a prefix of its
            // log after a crash, so a Done that survives has its entry too (the watch's
            // uploaded-index: without it the catch-up scan would send the file again).
            if matches!(job.state, JobState::Done { .. })
                && let Some(record) = self.inner.done_recorder.get()
                && let Some((tree, k, v)) = record(&job)
            {
                tree.insert(k, v)?;
            }
            // Written under the lock so that two transitions of one job reach sled in order.
            self.inner.jobs.insert(key(id), encode(&job))?;
            job
        };
        self.flush().await?;
        self.publish(&job);
        if let Some(batch) = batch_done {
            let _ = self.inner.batches_done.send(batch);
        }
        self.inner.changed.notify_waiters();
        Ok(job)
    }

    /// Batches whose last unfinished job just became final.
    pub fn subscribe_batches(&self) -> broadcast::Receiver<BatchId> {
        self.inner.batches_done.subscribe()
    }

    /// Batches without a summary whose jobs are all final: those a crash (or a stop) caught
    /// between their last job and their summary.
    pub fn unsummarized_batches(&self) -> Result<Vec<BatchId>> {
        let unfinished: HashSet<BatchId> = self.index().unfinished.keys().copied().collect();
        let mut out = Vec::new();
        for entry in self.inner.batches.iter() {
            let (_, value) = entry?;
            let batch: Batch = decode(&value)?;
            if batch.summary.is_none() && !unfinished.contains(&batch.id) {
                out.push(batch.id);
            }
        }
        Ok(out)
    }

    /// Records how a batch ended.
    pub async fn set_summary(&self, id: BatchId, summary: BatchSummary) -> Result<Batch> {
        let mut batch = self.batch(id)?.ok_or(QueueError::NotFound(id))?;
        batch.summary = Some(summary);
        self.inner.batches.insert(key(id), encode(&batch))?;
        self.flush().await?;
        Ok(batch)
    }

    /// Records how the making of the batch's shared link ended.
    pub async fn set_shared_link(&self, id: BatchId, link: SharedLink) -> Result<Batch> {
        let mut batch = self.batch(id)?.ok_or(QueueError::NotFound(id))?;
        batch.shared_link = Some(link);
        self.inner.batches.insert(key(id), encode(&batch))?;
        self.flush().await?;
        Ok(batch)
    }

    /// Records the source's version again (the file changed; the job starts over).
    pub async fn restamp(&self, id: JobId, stamp: crate::prepare::Stamp) -> Result<Job> {
        let job = {
            let mut index = self.index();
            let job = index.active.get_mut(&id).ok_or(QueueError::NotFound(id))?;
            job.set_stamp(stamp);
            let job = job.clone();
            self.inner.jobs.insert(key(id), encode(&job))?;
            job
        };
        self.flush().await?;
        Ok(job)
    }

    /// Records warnings for a job (kept with it, reported when its batch ends).
    pub async fn note_warnings(&self, id: JobId, warnings: Vec<String>) -> Result<()> {
        {
            let mut index = self.index();
            let job = index.active.get_mut(&id).ok_or(QueueError::NotFound(id))?;
            // Added to what the job already says (that it replaces another job's file, say).
            for warning in warnings {
                if !job.warnings.contains(&warning) {
                    job.warnings.push(warning);
                }
            }
            self.inner.jobs.insert(key(id), encode(&*job))?;
        }
        self.flush().await
    }

    /// Progress within a request, for status only (not persisted: the confirmed offset is).
    pub fn note_progress(&self, id: JobId, bytes_sent: u64) {
        if let Some(job) = self.index().active.get_mut(&id) {
            job.bytes_sent = bytes_sent;
        }
    }

    /// The next job to work on, skipping claimed and still-waiting jobs: files handed over by
    /// a caller first, then watch-folder finds, each in arrival order. While `auto_held` (a
    /// policy: metered connection, battery), watch-folder finds are not runnable at all. A job
    /// writing the same Dropbox path as an earlier unfinished job waits for it (`same_path`).
    pub fn claim_next(&self, now_ms: u64, auto_held: bool) -> Claim {
        let mut index = self.index();
        let mut earliest: Option<u64> = None;
        let mut found: Option<&Job> = None;
        for (id, job) in &index.active {
            if index.claimed.contains(id)
                || (auto_held && job.origin.is_some())
                || index
                    .same_path
                    .blocked(&job.remote_path, *id, &index.claimed)
            {
                continue;
            }
            if let JobState::Waiting { retry_at_ms, .. } = job.state
                && retry_at_ms > now_ms
            {
                earliest = Some(earliest.map_or(retry_at_ms, |e| e.min(retry_at_ms)));
                continue;
            }
            if job.origin.is_none() {
                found = Some(job);
                break;
            }
            found = found.or(Some(job));
        }
        let found = found.cloned();
        match (found, earliest) {
            (Some(job), _) => {
                index.claimed.insert(job.id);
                Claim::Job(Box::new(job))
            }
            (None, Some(at)) => Claim::Later(at),
            (None, None) => Claim::Idle,
        }
    }

    /// The engine is done with a claimed job (finished, parked or cancelled).
    pub fn release(&self, id: JobId) {
        self.index().claimed.remove(&id);
        self.inner.changed.notify_waiters();
    }

    /// Resolves when the queue changes (a new job, a transition, a release, pause/resume).
    /// Create the future before checking the condition you wait for, so no wake-up is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    pub fn get(&self, id: JobId) -> Result<Option<Job>> {
        if let Some(job) = self.index().active.get(&id) {
            return Ok(Some(job.clone()));
        }
        self.inner
            .jobs
            .get(key(id))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn batch(&self, id: BatchId) -> Result<Option<Batch>> {
        self.inner
            .batches
            .get(key(id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Jobs matching `filter`, oldest first.
    pub fn list(&self, filter: Filter) -> Result<Vec<Job>> {
        match filter {
            Filter::Active => Ok(self.index().active.values().cloned().collect()),
            Filter::Batch(batch) => {
                let Some(batch) = self.batch(batch)? else {
                    return Ok(Vec::new());
                };
                batch
                    .jobs
                    .iter()
                    .filter_map(|id| self.get(*id).transpose())
                    .collect()
            }
            Filter::All | Filter::Done | Filter::Failed => {
                let active: BTreeMap<JobId, Job> = self.index().active.clone();
                let mut out = Vec::new();
                for entry in self.inner.jobs.iter() {
                    let (k, v) = entry?;
                    let id = u64::from_be_bytes(
                        k.as_ref()
                            .try_into()
                            .map_err(|_| QueueError::Corrupt("bad key".into()))?,
                    );
                    let job = match active.get(&id) {
                        Some(job) => job.clone(),
                        None => decode(&v)?,
                    };
                    let keep = match filter {
                        Filter::Done => matches!(job.state, JobState::Done { .. }),
                        Filter::Failed => matches!(job.state, JobState::Failed { .. }),
                        _ => true,
                    };
                    if keep {
                        out.push(job);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Number of unfinished jobs.
    pub fn active_len(&self) -> usize {
        self.index().active.len()
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
        let mut retried = Vec::new();
        let mut batches = HashSet::new();
        let now = now_ms();
        for job_id in candidates {
            let Some(mut job) = self.get(job_id)? else {
                continue;
            };
            match &mut job.state {
                JobState::Failed { .. } | JobState::Cancelled => {
                    if !job.state.can_become(&JobState::Queued) {
                        continue;
                    }
                    job.state = JobState::Queued;
                    job.attempts = 0;
                    job.bytes_sent = 0;
                    let mut index = self.index();
                    index.add(job.clone());
                    self.inner.jobs.insert(key(job.id), encode(&job))?;
                    batches.insert(job.batch);
                }
                // Waiting out a backoff: the user says now. Same state, an earlier time.
                JobState::Waiting { retry_at_ms, .. } if *retry_at_ms > now => {
                    *retry_at_ms = now;
                    let mut index = self.index();
                    let Some(active) = index.active.get_mut(&job.id) else {
                        continue;
                    };
                    if let JobState::Waiting { retry_at_ms, .. } = &mut active.state {
                        *retry_at_ms = now;
                    }
                    self.inner.jobs.insert(key(job.id), encode(&job))?;
                }
                _ => continue,
            }
            retried.push(job.id);
            self.publish(&job);
        }
        for batch in batches {
            if let Some(mut record) = self.batch(batch)? {
                record.summary = None;
                self.inner.batches.insert(key(batch), encode(&record))?;
            }
        }
        self.flush().await?;
        self.inner.changed.notify_waiters();
        Ok(retried)
    }

    /// Removes finished jobs (done, failed, cancelled) that ended before `before_ms`, and the
    /// batches left with no job. A job's end is its batch's summary time, or, before a batch
    /// has one, the job's creation. Other trees (the watches' record of uploaded files) are
    /// not touched: a watch must not send again what it sent before. Returns how many jobs
    /// went. Blocking work runs on the blocking pool.
    pub async fn prune(&self, before_ms: u64) -> Result<usize> {
        let inner = self.inner.clone();
        let removed = tokio::task::spawn_blocking(move || -> Result<usize> {
            let mut removed = 0;
            for entry in inner.batches.iter() {
                let (batch_key, value) = entry?;
                let mut batch: Batch = decode(&value)?;
                let ended_ms = batch.summary.as_ref().map(|s| s.finished_ms);
                let mut kept = Vec::with_capacity(batch.jobs.len());
                let mut write = sled::Batch::default();
                for id in &batch.jobs {
                    let Some(bytes) = inner.jobs.get(key(*id))? else {
                        continue;
                    };
                    let job: Job = decode(&bytes)?;
                    let ended = ended_ms.unwrap_or(job.created_ms);
                    if job.state.is_terminal() && ended < before_ms {
                        write.remove(&key(*id));
                        removed += 1;
                    } else {
                        kept.push(*id);
                    }
                }
                if kept.len() == batch.jobs.len() {
                    continue;
                }
                inner.jobs.apply_batch(write)?;
                if kept.is_empty() {
                    inner.batches.remove(batch_key)?;
                } else {
                    batch.jobs = kept;
                    inner.batches.insert(batch_key, encode(&batch))?;
                }
            }
            inner.db.flush()?;
            Ok(removed)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))??;
        Ok(removed)
    }

    /// Cancels a job, or every unfinished job of a batch. Returns the jobs cancelled.
    pub async fn cancel(&self, id: u64) -> Result<Vec<JobId>> {
        let targets: Vec<JobId> = if let Some(batch) = self.batch(id)? {
            let index = self.index();
            batch
                .jobs
                .into_iter()
                .filter(|j| index.active.contains_key(j))
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

    /// The export options of the last batch that chose any (see `export.remember_last_choice`).
    pub fn last_export_options(&self) -> Option<crate::export::ExportOptions> {
        let bytes = self.inner.meta.get(LAST_OPTIONS_KEY).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    pub async fn set_last_export_options(
        &self,
        options: &crate::export::ExportOptions,
    ) -> Result<()> {
        self.inner.meta.insert(LAST_OPTIONS_KEY, encode(options))?;
        self.flush().await
    }

    /// The bandwidth limit set over D-Bus, if one was (it outlives restarts).
    pub fn bandwidth_limit(&self) -> Option<u64> {
        let bytes = self.inner.meta.get(BANDWIDTH_KEY).ok()??;
        Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?))
    }

    pub async fn set_bandwidth_limit(&self, bytes_per_sec: u64) -> Result<()> {
        self.inner
            .meta
            .insert(BANDWIDTH_KEY, &bytes_per_sec.to_be_bytes())?;
        self.flush().await
    }

    pub fn paused(&self) -> bool {
        matches!(self.inner.meta.get(PAUSED_KEY), Ok(Some(v)) if v.as_ref() == [1])
    }

    /// When the queue was paused (ms since the epoch), while it is.
    pub fn paused_since(&self) -> Option<u64> {
        if !self.paused() {
            return None;
        }
        let bytes = self.inner.meta.get(PAUSED_SINCE_KEY).ok()??;
        Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?))
    }

    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        // A second `pause` keeps the first one's time: the queue has been paused since then.
        if paused && !self.paused() {
            self.inner
                .meta
                .insert(PAUSED_SINCE_KEY, &now_ms().to_be_bytes())?;
        }
        self.inner.meta.insert(PAUSED_KEY, &[paused as u8])?;
        self.flush().await?;
        self.inner.paused.send_replace(paused);
        self.inner.changed.notify_waiters();
        Ok(())
    }

    /// Follows the pause switch.
    pub fn watch_paused(&self) -> watch::Receiver<bool> {
        self.inner.paused.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(name: &str) -> NewJob {
        NewJob {
            origin: None,
            source: PathBuf::from(format!("/photos/{name}")),
            remote_path: format!("/P/{name}"),
            stamp: crate::prepare::Stamp {
                size: 10,
                mtime_ms: Some(1),
                ..Default::default()
            },
            access: Default::default(),
            replaces_rev: None,
            options: Default::default(),
        }
    }

    #[tokio::test]
    async fn jobs_survive_reopen_and_preparing_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let (batch, jobs) = {
            let queue = Queue::open(&path).unwrap();
            let (batch, jobs) = queue
                .enqueue("/P", vec![new_job("a.jpg"), new_job("b.jpg")])
                .await
                .unwrap();
            queue
                .transition(jobs[0].id, JobState::Preparing)
                .await
                .unwrap();
            queue
                .transition(
                    jobs[0].id,
                    JobState::Uploading {
                        session_id: None,
                        offset: 0,
                        concurrent: false,
                        landed: Vec::new(),
                    },
                )
                .await
                .unwrap();
            queue
                .transition(jobs[1].id, JobState::Preparing)
                .await
                .unwrap();
            (batch, jobs)
        };
        let queue = Queue::open(&path).unwrap();
        assert_eq!(queue.active_len(), 2);
        assert!(matches!(
            queue.get(jobs[0].id).unwrap().unwrap().state,
            JobState::Uploading { .. }
        ));
        assert_eq!(
            queue.get(jobs[1].id).unwrap().unwrap().state,
            JobState::Queued
        );
        assert_eq!(queue.list(Filter::Batch(batch)).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn illegal_transitions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let (_, jobs) = queue.enqueue("/P", vec![new_job("a.jpg")]).await.unwrap();
        let err = queue
            .transition(
                jobs[0].id,
                JobState::Done {
                    content_hash: "h".into(),
                    remote_path: "/x".into(),
                    rev: "r".into(),
                    skipped: false,
                },
            )
            .await;
        assert!(err.is_ok(), "queued -> done is allowed (identical remote)");
        let err = queue
            .transition(jobs[0].id, JobState::Preparing)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                QueueError::IllegalTransition {
                    from: "done",
                    to: "preparing",
                    ..
                }
            ),
            "{err}"
        );
        let (_, more) = queue.enqueue("/P", vec![new_job("b.jpg")]).await.unwrap();
        let err = queue
            .transition(
                more[0].id,
                JobState::Committing {
                    content_hash: "h".into(),
                    session_id: None,
                    before: None,
                },
            )
            .await;
        assert!(
            matches!(
                err,
                Err(QueueError::IllegalTransition { from: "queued", .. })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn claims_skip_claimed_and_waiting_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let (_, jobs) = queue
            .enqueue("/P", vec![new_job("a"), new_job("b")])
            .await
            .unwrap();
        let Claim::Job(first) = queue.claim_next(0, false) else {
            panic!("expected a job")
        };
        assert_eq!(first.id, jobs[0].id);
        // b is parked until t=1000.
        queue
            .transition(jobs[1].id, JobState::Preparing)
            .await
            .unwrap();
        queue
            .transition(
                jobs[1].id,
                JobState::Waiting {
                    retry_at_ms: 1000,
                    reason: "x".into(),
                    resume: Box::new(JobState::Preparing),
                },
            )
            .await
            .unwrap();
        assert!(matches!(queue.claim_next(500, false), Claim::Later(1000)));
        let Claim::Job(second) = queue.claim_next(1000, false) else {
            panic!("expected b")
        };
        assert_eq!(second.id, jobs[1].id);
        queue.release(first.id);
        queue.release(second.id);
        queue.cancel(first.id).await.unwrap();
        queue.cancel(second.id).await.unwrap();
        assert!(matches!(queue.claim_next(5000, false), Claim::Idle));
    }

    #[tokio::test]
    async fn held_watch_jobs_are_skipped_and_callers_jobs_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let mut found = new_job("found");
        found.origin = Some(Origin {
            watch: 1,
            dev: 2,
            ino: 3,
        });
        let (_, watch_jobs) = queue.enqueue("/C", vec![found]).await.unwrap();
        assert!(matches!(queue.claim_next(0, true), Claim::Idle));
        let (_, asked) = queue.enqueue("/P", vec![new_job("asked")]).await.unwrap();
        let Claim::Job(job) = queue.claim_next(0, true) else {
            panic!("a caller's job runs while watch jobs are held")
        };
        assert_eq!(job.id, asked[0].id);
        assert!(matches!(queue.claim_next(0, true), Claim::Idle));
        let Claim::Job(job) = queue.claim_next(0, false) else {
            panic!("the watch job runs once the hold ends")
        };
        assert_eq!(job.id, watch_jobs[0].id);
    }

    #[tokio::test]
    async fn ids_are_small_and_do_not_jump_at_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let (first_batch, first_jobs) = {
            let queue = Queue::open(&path).unwrap();
            let (batch, jobs) = queue
                .enqueue("/P", vec![new_job("a"), new_job("b")])
                .await
                .unwrap();
            (batch, jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        };
        assert_eq!((first_batch, first_jobs), (1, vec![2, 3]));
        for expected in [4, 6, 8] {
            let queue = Queue::open(&path).unwrap();
            let (batch, jobs) = queue.enqueue("/P", vec![new_job("c")]).await.unwrap();
            assert_eq!((batch, jobs[0].id), (expected, expected + 1));
        }
    }

    #[tokio::test]
    async fn retry_takes_cancelled_again_and_waiting_now() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let (batch, jobs) = queue
            .enqueue("/P", vec![new_job("a"), new_job("b"), new_job("c")])
            .await
            .unwrap();
        queue.cancel(jobs[0].id).await.unwrap();
        queue
            .transition(jobs[1].id, JobState::Preparing)
            .await
            .unwrap();
        let later = now_ms() + 3_600_000;
        queue
            .transition(
                jobs[1].id,
                JobState::Waiting {
                    retry_at_ms: later,
                    reason: "offline".into(),
                    resume: Box::new(JobState::Preparing),
                },
            )
            .await
            .unwrap();
        let retried = queue.retry(batch).await.unwrap();
        assert_eq!(retried, vec![jobs[0].id, jobs[1].id]);
        assert_eq!(
            queue.get(jobs[0].id).unwrap().unwrap().state,
            JobState::Queued
        );
        let JobState::Waiting { retry_at_ms, .. } = queue.get(jobs[1].id).unwrap().unwrap().state
        else {
            panic!("still waiting, for less long")
        };
        assert!(retry_at_ms < later);
        assert!(matches!(queue.claim_next(now_ms(), false), Claim::Job(_)));
    }

    #[tokio::test]
    async fn prune_removes_old_finished_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let (old, old_jobs) = queue
            .enqueue("/P", vec![new_job("a"), new_job("b")])
            .await
            .unwrap();
        queue.cancel(old_jobs[0].id).await.unwrap();
        let (_, new_jobs) = queue.enqueue("/P", vec![new_job("c")]).await.unwrap();
        queue.cancel(new_jobs[0].id).await.unwrap();
        // Everything so far ended before `cut`; the unfinished `b` stays whatever its age.
        let cut = now_ms() + 1;
        assert_eq!(queue.prune(cut).await.unwrap(), 2);
        assert!(queue.get(old_jobs[0].id).unwrap().is_none());
        assert!(queue.get(old_jobs[1].id).unwrap().is_some());
        assert_eq!(
            queue.batch(old).unwrap().unwrap().jobs,
            vec![old_jobs[1].id]
        );
        assert_eq!(queue.list(Filter::All).unwrap().len(), 1);
        assert_eq!(queue.prune(0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn cancel_a_batch_and_paused_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let queue = Queue::open(&path).unwrap();
            let (batch, _) = queue
                .enqueue("/P", vec![new_job("a"), new_job("b")])
                .await
                .unwrap();
            assert_eq!(queue.cancel(batch).await.unwrap().len(), 2);
            assert_eq!(queue.active_len(), 0);
            assert!(matches!(
                queue.cancel(999_999).await,
                Err(QueueError::NotFound(_))
            ));
            queue.set_paused(true).await.unwrap();
        }
        let queue = Queue::open(&path).unwrap();
        assert!(queue.paused());
        assert_eq!(
            queue
                .list(Filter::All)
                .unwrap()
                .iter()
                .filter(|j| j.state == JobState::Cancelled)
                .count(),
            2
        );
    }
}

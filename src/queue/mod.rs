//! The persistent upload queue: jobs and batches in sled, and the in-memory index the engine
//! schedules from.
//!
//! Durability rule: every write is flushed (fsync) before the call that made it returns, so
//! `Upload` returning means the jobs survive `kill -9` (ARCHITECTURE.md, invariant 1), and a job recorded as
//! `Committing` is known to be so after a crash (ARCHITECTURE.md, invariant 2). Flushes run on the blocking pool
//! (`Db::flush`, never `flush_async`, which deadlocks when several run at once: sled#1308).
//!
//! Unfinished jobs are also kept in memory (`index`), so scheduling and status never scan the
//! database; finished ones live only in sled. Every state change goes through one transition
//! (`transition`), the repairs at a start included (`restore`).
//!
//! Files: `enqueue` (accepting a batch), `transition` (every state change, Retry, Cancel),
//! `restore` (what a start makes of what it finds), `index` (unfinished jobs, the per-batch
//! counts), `batches` (summaries, pruning), `settings` (pause, bandwidth, last options),
//! `store` (keys and records in sled), `seal` (damage detection), `sent` (what was sent where,
//! for `replace`), `same_path`, `job`, `error`.

mod batches;
mod enqueue;
mod error;
mod index;
mod job;
mod restore;
mod same_path;
mod seal;
mod sent;
mod settings;
mod store;
mod transition;

pub use error::{QueueError, Result};
pub use same_path::collisions;
pub use sent::{Sent, folder_of};

pub use job::{
    Batch, BatchId, BatchSummary, FailureKind, Job, JobId, JobState, Origin, Phase, SharedLink,
    now_ms,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast, watch};

use index::Index;
use store::{decode, first_free_id, key};

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
    /// What the user should know about this job from the start (each naming its file), e.g.
    /// that its folder's date came from the file's modification time.
    pub warnings: Vec<String>,
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
    /// What was sent where, per source file and folder (`sent`).
    sent: sled::Tree,
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

/// How long [`open_db`] keeps trying a lock that a queue closed a moment ago may still hold.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database, trying again for up to [`LOCK_RELEASE_WAIT`] while its file lock
/// is held. After the last handle of a database is dropped, sled's own I/O pool can still
/// hold the file (and so its lock) while it finishes writing a segment, and sled offers no
/// way to wait for that: a queue closed and opened again in one process (a restart) would
/// otherwise fail at random. A lock held longer belongs to another daemon, which the caller
/// reports as such.
fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let open = || {
        sled::Config::new()
            .path(path)
            .cache_capacity(32 * 1024 * 1024)
            .open()
    };
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match open() {
            // sled words its lock failure as an I/O error of its own making, text only.
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_RELEASE_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Given a job that just became Done, an entry to write with it: (tree, key, value).
pub type DoneRecorder = Box<dyn Fn(&Job) -> Option<(sled::Tree, Vec<u8>, Vec<u8>)> + Send + Sync>;

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
        let db = open_db(path).map_err(open_err)?;
        let jobs = db.open_tree("jobs").map_err(open_err)?;
        let batches = db.open_tree("batches").map_err(open_err)?;
        let meta = db.open_tree("meta").map_err(open_err)?;
        let sent = db.open_tree("sent").map_err(open_err)?;
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
        let paused = settings::stored_paused(&meta);
        let (events, _) = broadcast::channel(4096);
        let (batches_done, _) = broadcast::channel(256);
        let watches = db.open_tree("watches")?;
        let next_id = first_free_id(&meta, &[&jobs, &batches, &watches])?;
        let queue = Queue {
            inner: Arc::new(Inner {
                db,
                db_path: path.to_path_buf(),
                jobs,
                batches,
                meta,
                sent,
                index: Mutex::new(Index::default()),
                changed: Notify::new(),
                paused: watch::Sender::new(paused),
                events,
                batches_done,
                done_recorder: std::sync::OnceLock::new(),
                next_id: std::sync::atomic::AtomicU64::new(next_id),
            }),
        };
        queue.restore()?;
        let forgotten = queue.prune_sent()?;
        if forgotten > 0 {
            tracing::debug!("forgot {forgotten} uploads of files that are gone");
        }
        Ok(queue)
    }

    /// A named tree in the queue's database, for modules that keep records of their own
    /// (watches, the uploaded-index): one sled file, one lock, one flush.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.inner.db.open_tree(name)?)
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

    /// The next job to work on, skipping claimed and still-waiting jobs: files handed over by
    /// a caller first, then watch-folder finds, each in arrival order. While `auto_held` (a
    /// policy: metered connection, battery), watch-folder finds are not runnable at all. A job
    /// writing the same Dropbox path as an earlier unfinished job waits for it (`same_path`).
    pub fn claim_next(&self, now_ms: u64, auto_held: bool) -> Claim {
        let mut index = self.index();
        let mut earliest: Option<u64> = None;
        let mut found: Option<JobId> = None;
        for (id, entry) in index.entries() {
            if !index.claimable(id, entry, auto_held) {
                continue;
            }
            if entry.waiting_until > now_ms {
                let at = entry.waiting_until;
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                continue;
            }
            if !entry.watch {
                found = Some(id);
                break;
            }
            found = found.or(Some(id));
        }
        match (found, earliest) {
            (Some(id), _) => match self.stored(id) {
                Ok(Some(job)) => {
                    index.claimed.insert(id);
                    Claim::Job(Box::new(index.current(job)))
                }
                // Nothing the engine could do with it; the next change tries again.
                Ok(None) => Claim::Idle,
                Err(e) => {
                    tracing::warn!(job = id, "cannot read the job from the queue: {e}");
                    Claim::Idle
                }
            },
            (None, Some(at)) => Claim::Later(at),
            (None, None) => Claim::Idle,
        }
    }

    /// Whether a job could be claimed now (`claim_next` would find one): the engine's
    /// batchers send what they hold at once when nothing more is coming soon.
    pub fn runnable_now(&self, now_ms: u64, auto_held: bool) -> bool {
        if self.paused() {
            return false;
        }
        let index = self.index();
        index.entries().any(|(id, entry)| {
            index.claimable(id, entry, auto_held) && entry.waiting_until <= now_ms
        })
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

    /// A job as it is now: its record, with the progress of a request under way.
    pub fn get(&self, id: JobId) -> Result<Option<Job>> {
        let job = self.stored(id)?;
        Ok(job.map(|job| self.index().current(job)))
    }

    /// The job as sled holds it (as of its last transition). Call it, not `get`, with the
    /// index locked.
    fn stored(&self, id: JobId) -> Result<Option<Job>> {
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
            Filter::Active => {
                let ids: Vec<JobId> = self.index().entries().map(|(id, _)| id).collect();
                ids.into_iter()
                    .filter_map(|id| self.get(id).transpose())
                    .collect()
            }
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
                let mut out = Vec::new();
                for entry in self.inner.jobs.iter() {
                    let (_, v) = entry?;
                    // An unfinished job as it is now (its progress is not written to sled).
                    let job = self.index().current(decode(&v)?);
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
        self.index().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn new_job(name: &str) -> NewJob {
        NewJob {
            origin: None,
            warnings: Vec::new(),
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

    #[test]
    fn a_lock_released_a_moment_later_is_waited_for_and_one_kept_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        // Held for a moment after the other open starts, as sled's I/O pool holds it after a
        // queue is dropped: the second open waits and succeeds.
        let held = open_db(&path).unwrap();
        let opener = {
            let path = path.clone();
            std::thread::spawn(move || open_db(&path).map(drop).map_err(|e| e.to_string()))
        };
        // The holder's delay itself (what the test is about), not a synchronisation.
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
        assert_eq!(opener.join().unwrap(), Ok(()));
        // Held for good (another daemon): the lock error, after a bounded wait.
        let held = open_db(&path).unwrap();
        let started = std::time::Instant::now();
        let err = open_db(&path).map(drop).unwrap_err().to_string();
        assert!(err.contains("could not acquire lock"), "{err}");
        assert!(started.elapsed() < LOCK_RELEASE_WAIT * 2);
        drop(held);
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
    async fn many_moves_in_one_flush_each_with_its_own_result_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let uploading = |session: &str| JobState::Uploading {
            session_id: Some(session.into()),
            offset: 0,
            concurrent: false,
            landed: Vec::new(),
        };
        let jobs = {
            let queue = Queue::open(&path).unwrap();
            let names = ["a.jpg", "b.jpg", "c.jpg"].map(new_job);
            let (_, jobs) = queue.enqueue("/P", names.into()).await.unwrap();
            for job in &jobs[..2] {
                queue.transition(job.id, JobState::Preparing).await.unwrap();
            }
            queue.cancel(jobs[2].id).await.unwrap();
            let mut events = queue.subscribe();
            let results = queue
                .transition_many(vec![
                    (jobs[0].id, uploading("s0")),
                    (jobs[2].id, uploading("s2")),
                    (jobs[1].id, uploading("s1")),
                ])
                .await
                .unwrap();
            assert_eq!(results[0].as_ref().unwrap().state, uploading("s0"));
            assert!(
                matches!(
                    results[1],
                    Err(QueueError::IllegalTransition {
                        from: "cancelled",
                        ..
                    })
                ),
                "{:?}",
                results[1]
            );
            assert_eq!(results[2].as_ref().unwrap().state, uploading("s1"));
            // Both moves announced, the refused one not.
            assert_eq!(events.try_recv().unwrap().job.id, jobs[0].id);
            assert_eq!(events.try_recv().unwrap().job.id, jobs[1].id);
            assert!(events.try_recv().is_err());
            jobs
        };
        let queue = Queue::open(&path).unwrap();
        for (job, session) in jobs[..2].iter().zip(["s0", "s1"]) {
            assert_eq!(
                queue.get(job.id).unwrap().unwrap().state,
                uploading(session)
            );
        }
    }

    #[tokio::test]
    async fn runnable_now_is_an_unclaimed_job_that_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        assert!(!queue.runnable_now(now_ms(), false), "empty");
        let (_, jobs) = queue.enqueue("/P", vec![new_job("a.jpg")]).await.unwrap();
        assert!(queue.runnable_now(now_ms(), false), "queued");
        let Claim::Job(claimed) = queue.claim_next(now_ms(), false) else {
            panic!("a job to claim");
        };
        assert!(!queue.runnable_now(now_ms(), false), "claimed");
        queue
            .transition(
                claimed.id,
                JobState::Waiting {
                    retry_at_ms: now_ms() + 60_000,
                    reason: "r".into(),
                    resume: Box::new(JobState::Queued),
                },
            )
            .await
            .unwrap();
        queue.release(jobs[0].id);
        assert!(!queue.runnable_now(now_ms(), false), "waiting");
        assert!(queue.runnable_now(now_ms() + 61_000, false), "due");
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

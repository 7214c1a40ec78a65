//! Accepting a batch of jobs: ids, the note a job gets when it will replace another job's
//! file, and the order of writes that makes an accepted batch durable and whole
//! (ARCHITECTURE.md, invariant 1).

use std::collections::HashMap;

use super::same_path::PathKey;
use super::store::{WRITE_CHUNK, encode, key, set_next_id};
use super::{Batch, BatchId, DoneRecorder, Job, JobState, NewJob, Queue, Result, now_ms};

/// Jobs in one batch from which the memory it freed is handed back to the system.
const TRIM_AFTER: usize = 1000;

/// Hands memory the allocator holds free back to the system (glibc keeps it otherwise).
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Queue {
    /// Accepts a batch. Returns once every job is on disk (ARCHITECTURE.md, invariant 1).
    pub async fn enqueue(
        &self,
        remote_folder: &str,
        mut new_jobs: Vec<NewJob>,
    ) -> Result<(BatchId, Vec<Job>)> {
        for new in &mut new_jobs {
            self.aim_at_earlier_copy(new);
        }
        // The batch's id, then its jobs' in order.
        let batch_id = self.take_ids(new_jobs.len() as u64 + 1)?;
        let created_ms = now_ms();
        let replaces = self.replaced_sources(&new_jobs);
        let mut jobs = Vec::with_capacity(new_jobs.len());
        for ((id, new), replaces) in (batch_id + 1..).zip(new_jobs).zip(replaces) {
            let mut warnings = new.warnings;
            warnings.extend(replaces.map(|earlier| {
                format!(
                    "{} replaced {} in Dropbox at {}: both were handed over for that path \
                         (Dropbox does not tell letter case apart) under conflict = overwrite, \
                         and this one came last",
                    new.access.shown(&new.source),
                    earlier,
                    new.remote_path
                )
            }));
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
        // The jobs in sled batches of `WRITE_CHUNK` (one sled batch of them all held memory
        // for every record), then the batch record: sled recovers a prefix of its log, so a
        // batch record that survives a crash has all its jobs, and jobs without their batch
        // record are from an `Upload` that never returned (`restore` removes them).
        let written = self.write_jobs(&jobs).and_then(|()| {
            self.inner.batches.insert(key(batch_id), encode(&batch))?;
            Ok(())
        });
        if let Err(e) = written {
            // Best effort, so that they do not sit there until the next start.
            for job in &jobs {
                let _ = self.inner.jobs.remove(key(job.id));
            }
            return Err(e);
        }
        self.flush().await?;
        {
            let mut index = self.index();
            for job in &jobs {
                index.join(job);
            }
        }
        for job in &jobs {
            self.publish(job);
        }
        self.inner.changed.notify_waiters();
        if jobs.len() >= TRIM_AFTER {
            // A batch this large left megabytes of freed memory (the caller's paths, the jobs
            // as built, their records) spread among the live records; the allocator keeps it
            // until told to give back what is free.
            let _ = tokio::task::spawn_blocking(give_back_free_memory).await;
        }
        Ok((batch_id, jobs))
    }

    /// Under `replace`, a file this daemon sent into the same folder before goes to that copy
    /// (its path, even where Dropbox named it otherwise, e.g. `photo (1).jpg`) as an update at
    /// its rev: the copy is this photo's earlier version, and aiming at the name the export
    /// would give it could hit another file or make a second copy. Not when the export now
    /// gives the file another extension (a PNG sent as it is, now resized to JPEG): that is
    /// another kind of file, sent as if nothing were remembered. The engine reads the rev again
    /// before sending (`engine::replace`), as an earlier job for this copy may still be running.
    fn aim_at_earlier_copy(&self, new: &mut NewJob) {
        if new.options.conflict != crate::export::Conflict::Replace || new.replaces_rev.is_some() {
            return;
        }
        let folder = super::folder_of(&new.remote_path);
        let sent = match self.remembered(&new.source, new.stamp.dev, new.stamp.ino, folder) {
            Ok(Some(sent)) => sent,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    "{}: cannot read what was sent of it before ({e}); it goes up as a new file",
                    new.source.display()
                );
                return;
            }
        };
        if extension(&sent.remote_path) == extension(&new.remote_path) {
            new.remote_path = sent.remote_path;
            new.replaces_rev = Some(sent.rev);
        }
    }

    /// Registers what a job's Done writes beside it, durably with it (once; later calls are
    /// ignored).
    pub fn set_done_recorder(&self, recorder: DoneRecorder) {
        let _ = self.inner.done_recorder.set(recorder);
    }

    /// For each new job under `overwrite`, the source of the unfinished job (queued before,
    /// or earlier in `new_jobs`) whose file in Dropbox it will replace: it runs after that one
    /// (`same_path`), and says so, so that neither job's "uploaded" hides the other.
    fn replaced_sources(&self, new_jobs: &[NewJob]) -> Vec<Option<String>> {
        let index = self.index();
        // The latest source for each path among the new jobs so far.
        let mut earlier: HashMap<String, String> = HashMap::new();
        new_jobs
            .iter()
            .map(|new| {
                let key = crate::dropbox::path::path_key(&new.remote_path);
                let before = index
                    .same_path
                    .last(PathKey::of(&new.remote_path))
                    .and_then(|id| self.stored(id).ok().flatten())
                    .map(|job| job.access.shown(&job.source))
                    .or_else(|| earlier.get(&key).cloned());
                earlier.insert(key, new.access.shown(&new.source));
                before.filter(|_| new.options.conflict == crate::export::Conflict::Overwrite)
            })
            .collect()
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
        set_next_id(&self.inner.meta, first + n)?;
        Ok(first)
    }

    /// Writes job records, `WRITE_CHUNK` to a sled batch, each encoded as its chunk goes (not
    /// all of them at once: a large batch's records would all be in memory together).
    fn write_jobs(&self, jobs: &[Job]) -> Result<()> {
        for chunk in jobs.chunks(WRITE_CHUNK) {
            let mut write = sled::Batch::default();
            for job in chunk {
                write.insert(&key(job.id), encode(job));
            }
            self.inner.jobs.apply_batch(write)?;
        }
        Ok(())
    }
}

/// A Dropbox path's extension, as Dropbox compares names (lowercased); "" without one.
fn extension(remote_path: &str) -> String {
    let name = remote_path.rsplit('/').next().unwrap_or(remote_path);
    match name.rfind('.') {
        Some(i) if i > 0 => name[i + 1..].to_lowercase(),
        _ => String::new(),
    }
}

//! Large files through a concurrent upload session: chunks are read, hashed and sent in
//! parallel, in any order, so one big video fills the link the way many photos do.
//!
//! Dropbox's rules for such a session: the start carries no data, every chunk but the last
//! starts on a 4 MiB multiple and is a 4 MiB multiple long (our chunk size is one), and the
//! closing append must come last — nothing is accepted after it. Which chunks landed is
//! persisted as they land (`Uploading { concurrent, landed }`), so after a crash only the
//! others are sent again.
//!
//! Memory stays bounded by chunk size × transfers whatever the file size: a chunk is read only
//! once it holds one of the engine's network slots, which it keeps until its request ends.
//! The file's content hash is put together from the chunks' block digests as they are read,
//! so a fresh upload reads the file once; chunks that landed before a restart are hashed again
//! from disk (no network).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::{Engine, SharedProgress, Step, blocking, dropbox_step, session_step, source_step};
use crate::dropbox::content_hash::{BlockDigest, from_block_digests};
use crate::dropbox::{self, UploadSessionAppendError};
use crate::prepare::{self, SourceFile, Stamp};
use crate::queue::{Job, JobState};

/// Where each chunk of a `size`-byte file starts.
fn chunk_starts(size: u64, chunk: u64) -> Vec<u64> {
    (0..size.max(1)).step_by(chunk as usize).collect()
}

/// Bytes confirmed from the start (`offset`) and the chunks confirmed beyond it.
fn persisted(starts: &[u64], landed: &BTreeSet<u64>, size: u64) -> (u64, Vec<u64>) {
    let prefix = starts.iter().take_while(|s| landed.contains(s)).count();
    let offset = starts.get(prefix).copied().unwrap_or(size);
    let beyond = landed.iter().copied().filter(|s| *s > offset).collect();
    (offset, beyond)
}

impl Engine {
    /// Sends `path` (`stamp` as read before) through a concurrent session, resuming `state`,
    /// then commits it on its own. A new session looks for the file in Dropbox first, without
    /// a network slot; its start request takes one, and each chunk then takes a slot of its own.
    pub(super) async fn upload_concurrent(
        &self,
        job: &Job,
        state: JobState,
        path: &SourceFile,
        stamp: Stamp,
    ) -> Result<(), Step> {
        let id = job.id;
        let size = stamp.size;
        let chunk = self.upload.chunk_size;
        let starts = chunk_starts(size, chunk);
        let last = *starts.last().expect("at least one chunk");
        let len_at = move |at: u64| (size - at).min(chunk) as usize;

        let (session, mut landed) = match state {
            JobState::Uploading {
                session_id: Some(session),
                offset,
                concurrent: true,
                landed,
            } => {
                let mut all: BTreeSet<u64> =
                    starts.iter().copied().filter(|s| *s < offset).collect();
                all.extend(landed);
                tracing::info!(
                    job = id,
                    file = %job.source.display(),
                    "resuming a concurrent upload session: {} of {} chunks there",
                    all.len(),
                    starts.len()
                );
                (session, all)
            }
            state => {
                if self.already_there_sized(job, path, size).await? {
                    return Ok(());
                }
                let _sending = self.slot_unless_held(job, &state).await?;
                let session = self.start_concurrent(job).await?;
                (session, BTreeSet::new())
            }
        };

        let progress = self.shared_progress(id, 0, size);
        progress.skip(landed.iter().map(|at| len_at(*at) as u64).sum());
        let mut digests: BTreeMap<u64, Vec<BlockDigest>> = BTreeMap::new();
        let mut todo = starts
            .iter()
            .copied()
            .filter(|s| *s != last && !landed.contains(s))
            .collect::<Vec<_>>()
            .into_iter();
        let mut inflight = FuturesUnordered::new();
        loop {
            while inflight.len() < self.upload.transfers
                && let Some(at) = todo.next()
            {
                inflight.push(self.send_chunk(
                    job,
                    path,
                    &session,
                    at,
                    len_at(at),
                    false,
                    &progress,
                ));
            }
            let Some(sent) = inflight.next().await else {
                break;
            };
            let (at, chunk_digests) = sent?;
            digests.insert(at, chunk_digests);
            landed.insert(at);
            self.record_landed(job, &session, &starts, &landed, size)
                .await?;
        }
        drop(inflight);
        // Every other chunk is there: now the closing one, which seals the session.
        if !landed.contains(&last) {
            let (at, chunk_digests) = self
                .send_chunk(job, path, &session, last, len_at(last), true, &progress)
                .await?;
            digests.insert(at, chunk_digests);
            landed.insert(at);
            self.record_landed(job, &session, &starts, &landed, size)
                .await?;
        }

        // Chunks that landed in an earlier run are hashed from disk; then the file must be
        // the one we started reading, or what was sent may mix two versions.
        let missing: Vec<u64> = starts
            .iter()
            .copied()
            .filter(|s| !digests.contains_key(s))
            .collect();
        let source = path.clone();
        let (earlier, now) = blocking(move || {
            let mut earlier = Vec::new();
            for at in missing {
                let (_, d) = prepare::read_chunk(&source, at, len_at(at))?;
                earlier.push((at, d));
            }
            Ok::<_, prepare::SourceError>((earlier, source.stat()?))
        })
        .await?
        .map_err(source_step)?;
        digests.extend(earlier);
        if now != stamp {
            tracing::info!(job = id, file = %job.source.display(), "the file changed while it was sent; sending it again");
            return Err(self.requeue(id).await);
        }
        let hash = from_block_digests(digests.values().flatten());
        self.committing(job, &hash, Some(&session)).await?;
        self.commit(job, &session, size, &hash).await
    }

    /// With `skip-identical` (or `replace`), a large file already in Dropbox with the same content makes the
    /// job Done without sending. Only a remote file of the same size is worth hashing ours for.
    async fn already_there_sized(
        &self,
        job: &Job,
        path: &SourceFile,
        size: u64,
    ) -> Result<bool, Step> {
        if !job.options.conflict.skips_identical() {
            return Ok(false);
        }
        if self
            .remote_file(job)
            .await?
            .is_none_or(|meta| meta.size != size)
        {
            return Ok(false);
        }
        let source = path.clone();
        let (_, hash) = blocking(move || prepare::hash_whole(&source))
            .await?
            .map_err(source_step)?;
        self.already_there(job, &hash).await
    }

    async fn start_concurrent(&self, job: &Job) -> Result<String, Step> {
        let arg = dropbox::UploadSessionStartArg {
            close: false,
            session_type: Some(dropbox::SessionType::Concurrent),
            content_hash: None,
        };
        let result = call!(self, |token| self.client.upload_session_start(
            token,
            &arg,
            bytes::Bytes::new(),
            None
        ));
        let session = match result {
            Ok(started) => started.session_id,
            Err(e) => return Err(dropbox_step(job, e)),
        };
        self.to(
            job.id,
            JobState::Uploading {
                session_id: Some(session.clone()),
                offset: 0,
                concurrent: true,
                landed: Vec::new(),
            },
        )
        .await?;
        Ok(session)
    }

    /// One chunk: waits for a network slot, reads and hashes the chunk, appends it. Returns
    /// where it starts and its block digests.
    #[allow(clippy::too_many_arguments)]
    async fn send_chunk(
        &self,
        job: &Job,
        path: &SourceFile,
        session: &str,
        at: u64,
        len: usize,
        close: bool,
        progress: &Arc<SharedProgress>,
    ) -> Result<(u64, Vec<BlockDigest>), Step> {
        let _slot = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let source = path.clone();
        let (body, digests) = blocking(move || prepare::read_chunk(&source, at, len))
            .await?
            .map_err(source_step)?;
        let arg = dropbox::UploadSessionAppendArg {
            cursor: dropbox::UploadSessionCursor {
                session_id: session.to_string(),
                offset: at,
            },
            close,
            content_hash: Some(from_block_digests(&digests)),
        };
        let result = call!(self, |token| self.client.upload_session_append(
            token,
            &arg,
            body.clone(),
            Some(progress.request())
        ));
        match result {
            Ok(()) => Ok((at, digests)),
            // The closing append landed before; its answer was lost.
            Err(dropbox::Error::Route(UploadSessionAppendError::Closed)) if close => {
                Ok((at, digests))
            }
            Err(dropbox::Error::Route(
                UploadSessionAppendError::NotFound | UploadSessionAppendError::Closed,
            )) => {
                tracing::info!(
                    job = job.id,
                    "the upload session expired or was closed; sending the file again"
                );
                Err(self.requeue(job.id).await)
            }
            Err(e) => Err(dropbox_step(job, e)),
        }
    }

    async fn record_landed(
        &self,
        job: &Job,
        session: &str,
        starts: &[u64],
        landed: &BTreeSet<u64>,
        size: u64,
    ) -> Result<(), Step> {
        let (offset, beyond) = persisted(starts, landed, size);
        self.to(
            job.id,
            JobState::Uploading {
                session_id: Some(session.to_string()),
                offset,
                concurrent: true,
                landed: beyond,
            },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_file() {
        assert_eq!(chunk_starts(10, 4), [0, 4, 8]);
        assert_eq!(chunk_starts(8, 4), [0, 4]);
        assert_eq!(chunk_starts(0, 4), [0]);
    }

    #[test]
    fn landed_chunks_persist_as_a_prefix_and_the_rest() {
        let starts = chunk_starts(20, 4);
        let landed: BTreeSet<u64> = [0, 4, 12].into();
        assert_eq!(persisted(&starts, &landed, 20), (8, vec![12]));
        let all: BTreeSet<u64> = starts.iter().copied().collect();
        assert_eq!(persisted(&starts, &all, 20), (20, vec![]));
        assert_eq!(persisted(&starts, &BTreeSet::new(), 20), (0, vec![]));
    }
}

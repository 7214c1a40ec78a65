//! Sending a file: in one `files/upload` request, or through a sequential upload session
//! (chunks from the confirmed offset, then the commit, alone or in a batch). A large file's
//! concurrent session is in `concurrent`. Every chunk carries the content hash of its bytes;
//! the job is recorded as Committing before its commit is sent, so a lost answer is resolved
//! by looking (ARCHITECTURE.md, invariant 2).

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::remote::lower_path;
use super::{Engine, Step, blocking, commit, dropbox_step, session_step, source_step};
use crate::dropbox;
use crate::export::Conflict;
use crate::prepare::{self, SourceFile};
use crate::queue::{Job, JobState};

impl Engine {
    /// One request: read, look, commit, verify. Only the request holds a network slot.
    pub(super) async fn upload_whole(
        &self,
        job: &Job,
        state: &JobState,
        path: &SourceFile,
    ) -> Result<(), Step> {
        let Some((bytes, stamp, hash)) = self.read_and_look(job, state, path).await? else {
            return Ok(());
        };
        // Durable before the request goes (ARCHITECTURE.md, invariant 2), but written
        // without a network slot: the slot covers the request only.
        self.committing(job, &hash, None).await?;
        let sending = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // Looked at again once it may send: a hold that began while it waited keeps it back.
        if self.held_back(job, state) {
            drop(sending);
            return Err(self.requeue(job.id).await);
        }
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
        drop(sending);
        match result {
            Ok(meta) => self.verified(job, meta, &hash, false).await,
            Err(e) => Err(dropbox_step(job, e)),
        }
    }

    /// A small file to go up with others (`packing`): read and hashed, and looked for in
    /// Dropbox, before its bytes are handed over; it holds no network slot itself.
    pub(super) async fn upload_small(
        &self,
        job: &Job,
        state: &JobState,
        path: &SourceFile,
    ) -> Result<(), Step> {
        let Some((bytes, _, hash)) = self.read_and_look(job, state, path).await? else {
            return Ok(());
        };
        self.upload_packed(job, bytes, &hash).await
    }

    /// What a file of one request does before it is sent, holding no network slot: read and
    /// hashed, looked for in Dropbox (None: the same content is there, the job is Done), and
    /// sent back to the queue if a policy hold began (`held_back`).
    async fn read_and_look(
        &self,
        job: &Job,
        state: &JobState,
        path: &SourceFile,
    ) -> Result<Option<(bytes::Bytes, prepare::Stamp, String)>, Step> {
        let source = path.clone();
        let (bytes, stamp, hash) = blocking(move || prepare::read_whole(&source))
            .await?
            .map_err(source_step)?;
        if self.already_there(job, &hash).await? {
            return Ok(None);
        }
        if self.held_back(job, state) {
            return Err(self.requeue(job.id).await);
        }
        Ok(Some((bytes, stamp, hash)))
    }

    /// An upload session: chunks from the confirmed offset, then the commit. The file is
    /// read (or hashed) and looked for in Dropbox before a network slot is taken; the slot is
    /// held while the chunks go and given back before the commit.
    pub(super) async fn upload_session(
        &self,
        job: &Job,
        state: JobState,
        path: &SourceFile,
        expected_size: u64,
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
        let sending = self.slot_unless_held(job, &state).await?;
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
                        Err(e) => return Err(dropbox_step(job, e)),
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
                    offset = self.append(job, &arg, body, Some(progress), size).await?;
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
    pub(super) async fn probe_offset(
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
        self.append(job, &arg, Bytes::new(), None, size).await
    }

    /// One `upload_session/append_v2` of `body` at `arg`'s offset, for a file of `size` bytes.
    /// Returns the offset Dropbox holds afterwards: past the body, or Dropbox's own count where
    /// that differs from what was recorded (a lost answer, a crash between append and record).
    /// An expired session requeues the job, to send the file again.
    async fn append(
        &self,
        job: &Job,
        arg: &dropbox::UploadSessionAppendArg,
        body: Bytes,
        progress: Option<dropbox::Progress>,
        size: u64,
    ) -> Result<u64, Step> {
        let offset = arg.cursor.offset;
        let sent = offset + body.len() as u64;
        // Closed means all of it landed when this append closes the session (its answer was
        // lost) or when it is the probe (empty body) of a resumed session.
        let closed_is_full = arg.close || body.is_empty();
        let result = call!(self, |token| self.client.upload_session_append(
            token,
            arg,
            body.clone(),
            progress.clone()
        ));
        match result {
            Ok(()) => Ok(sent),
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::IncorrectOffset {
                correct_offset,
            })) if correct_offset <= size => {
                tracing::info!(
                    job = job.id,
                    "Dropbox holds {correct_offset} bytes of the session (recorded {offset})"
                );
                Ok(correct_offset)
            }
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::Closed))
                if closed_is_full =>
            {
                Ok(size)
            }
            Err(dropbox::Error::Route(dropbox::UploadSessionAppendError::NotFound)) => {
                tracing::info!(
                    job = job.id,
                    "the upload session expired; sending the file again"
                );
                Err(self.requeue(job.id).await)
            }
            Err(e) => Err(dropbox_step(job, e)),
        }
    }

    /// Commits a closed session: a small file in a batch with others, a large one on its own.
    /// Either way the answer is read in one place.
    pub(super) async fn commit(
        &self,
        job: &Job,
        session: &str,
        size: u64,
        hash: &str,
    ) -> Result<(), Step> {
        let arg = finish_arg(job, session, size);
        let outcome = if !self.upload.batch_commit || size > self.upload.session_threshold {
            self.finish_session(job, &arg).await?
        } else {
            let label = format!("{} → {}", job.source.display(), job.remote_path);
            self.commit_in_batch(job.id, label, arg).await?
        };
        match outcome {
            commit::Outcome::Landed(meta) => self.verified(job, meta, hash, false).await,
            commit::Outcome::Refused(dropbox::UploadSessionFinishError::LookupFailed(e)) => {
                // The session is gone or does not hold what we think: send the file again.
                tracing::info!(
                    job = job.id,
                    "the commit could not use the session ({e}); sending the file again"
                );
                Err(self.requeue(job.id).await)
            }
            commit::Outcome::Refused(e) => Err(dropbox_step(job, dropbox::Error::Route(e))),
            commit::Outcome::Unsure(step) => Err(step),
        }
    }

    /// `upload_session/finish` for one file, its answer told as a batch entry's would be. A
    /// failure of the call itself (not Dropbox's refusal) is the job's step at once.
    async fn finish_session(
        &self,
        job: &Job,
        arg: &dropbox::UploadSessionFinishArg,
    ) -> Result<commit::Outcome, Step> {
        let result = call!(self, |token| self.client.upload_session_finish(
            token,
            arg,
            Bytes::new(),
            None
        ));
        match result {
            Ok(meta) => Ok(commit::Outcome::Landed(meta)),
            Err(dropbox::Error::Route(e)) => Ok(commit::Outcome::Refused(e)),
            Err(e) => Err(dropbox_step(job, e)),
        }
    }

    /// The job is about to send its commit: records it as Committing, so that a crash or a
    /// lost answer is resolved by looking at Dropbox. Under `rename` the files already holding
    /// this content under the job's name (or a renamed copy of it) are listed first and kept
    /// with the state: a commit under `rename` always makes a new file, and only a file not
    /// among these can be the one it made.
    pub(super) async fn committing(
        &self,
        job: &Job,
        hash: &str,
        session: Option<&str>,
    ) -> Result<(), Step> {
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
}

/// The commit of a closed session (no data travels with it).
pub(super) fn finish_arg(job: &Job, session: &str, size: u64) -> dropbox::UploadSessionFinishArg {
    dropbox::UploadSessionFinishArg {
        cursor: dropbox::UploadSessionCursor {
            session_id: session.to_string(),
            offset: size,
        },
        commit: commit_info(job),
        content_hash: None,
    }
}

/// Where and how a job's file is written, per its conflict policy. The identical-content rule
/// of Dropbox (an `add` or `overwrite` of the same bytes writes nothing and answers with the
/// existing file) keeps a retried commit from making a copy; `rename` asks for a new name even
/// then (`strict_conflict`).
pub(super) fn commit_info(job: &Job) -> dropbox::CommitInfo {
    let (mode, autorename, strict_conflict) = match (&job.replaces_rev, job.options.conflict) {
        // The finished version of a file sent half-written, or under `replace` the edited
        // version of a file sent before, takes that upload's place; if the remote copy changed
        // since, Dropbox keeps both ("name (conflicted copy).jpg").
        (Some(rev), _) => (dropbox::WriteMode::Update(rev.clone()), true, false),
        // `replace` with nothing remembered acts as `skip-identical`: a first export never
        // overwrites anyone's file (`replace`).
        (None, Conflict::SkipIdentical | Conflict::Replace) => {
            (dropbox::WriteMode::Add, true, false)
        }
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

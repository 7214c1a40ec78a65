//! Upload sessions, sequential and concurrent (reference §3.8). A session's data is kept on
//! disk as one file per append, named by its offset, under `sessions/<id>/`, together with a
//! small `session.json`; a 1 GiB upload is never in memory, an append is a rename, and a
//! restarted emulator still has every session. Each session has its own async lock, so appends
//! to different sessions (and the bodies of concurrent appends) proceed in parallel.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::OwnedMutexGuard;

use super::body::{Spooled, TempFile};
use super::wire::{flat, nested, void};
use super::{EmulatorError, lock};
use crate::dropbox::content_hash::ContentHasher;

/// The largest file a session may build: 2^41 − 2^22 bytes.
pub(crate) const MAX_FILE: u64 = (1 << 41) - (1 << 22);

/// Concurrent sessions take data in multiples of this (except the closing append).
pub(crate) const BLOCK: u64 = 4 * 1024 * 1024;

/// Sessions expire this long after they were started.
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

const PREFIX: &str = "pid_upload_session:";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) concurrent: bool,
    pub(crate) closed: bool,
    /// Seconds since the epoch.
    created: u64,
    /// offset → length of each stored part.
    parts: BTreeMap<u64, u64>,
    /// Set when the session was finished or expired while someone waited for its lock.
    #[serde(skip)]
    gone: bool,
    #[serde(skip)]
    dir: PathBuf,
}

/// `UploadSessionLookupError`: top-level in append's errors, under `lookup_failed` in finish's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupFailure {
    NotFound,
    IncorrectOffset(u64),
    Closed,
    NotClosed,
    TooLarge,
    ConcurrentInvalidOffset,
    ConcurrentInvalidDataSize,
}

impl LookupFailure {
    pub(crate) fn json(self) -> Value {
        match self {
            LookupFailure::NotFound => void("not_found"),
            LookupFailure::IncorrectOffset(correct) => {
                flat("incorrect_offset", json!({ "correct_offset": correct }))
            }
            LookupFailure::Closed => void("closed"),
            LookupFailure::NotClosed => void("not_closed"),
            LookupFailure::TooLarge => void("too_large"),
            LookupFailure::ConcurrentInvalidOffset => void("concurrent_session_invalid_offset"),
            LookupFailure::ConcurrentInvalidDataSize => {
                void("concurrent_session_invalid_data_size")
            }
        }
    }
}

/// The session-related members of `UploadSessionFinishError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FinishFailure {
    Lookup(LookupFailure),
    ConcurrentDataNotAllowed,
    ConcurrentNotClosed,
    ConcurrentMissingData,
}

impl FinishFailure {
    pub(crate) fn json(self) -> Value {
        match self {
            FinishFailure::Lookup(failure) => nested("lookup_failed", failure.json()),
            FinishFailure::ConcurrentDataNotAllowed => void("concurrent_session_data_not_allowed"),
            FinishFailure::ConcurrentNotClosed => void("concurrent_session_not_closed"),
            FinishFailure::ConcurrentMissingData => void("concurrent_session_missing_data"),
        }
    }
}

impl From<LookupFailure> for FinishFailure {
    fn from(failure: LookupFailure) -> Self {
        FinishFailure::Lookup(failure)
    }
}

/// A session's bytes in one file, ready to commit.
pub(crate) struct Assembled {
    /// The file to commit (the single part itself, or `temp`).
    pub(crate) path: PathBuf,
    /// A concatenation made for the commit, removed when dropped.
    _temp: Option<TempFile>,
    pub(crate) size: u64,
    pub(crate) hash: String,
}

impl Session {
    /// Bytes stored so far (sequential), or the end of the data seen (concurrent).
    pub(crate) fn len(&self) -> u64 {
        self.parts
            .iter()
            .next_back()
            .map_or(0, |(offset, len)| offset + len)
    }

    /// Whether the parts cover `0..len()` without holes.
    fn is_complete(&self) -> bool {
        let mut expected = 0;
        for (offset, len) in &self.parts {
            if *offset != expected {
                return false;
            }
            expected += len;
        }
        true
    }

    fn part_path(&self, offset: u64) -> PathBuf {
        self.dir.join(format!("{offset:016x}.part"))
    }

    /// The rules for one `append_v2` of `len` bytes at `offset`.
    pub(crate) fn check_append(
        &self,
        offset: u64,
        len: u64,
        close: bool,
    ) -> Result<(), LookupFailure> {
        if self.concurrent {
            if self.closed {
                return Err(LookupFailure::Closed);
            }
            if !offset.is_multiple_of(BLOCK) {
                return Err(LookupFailure::ConcurrentInvalidOffset);
            }
            if !close && !len.is_multiple_of(BLOCK) {
                return Err(LookupFailure::ConcurrentInvalidDataSize);
            }
        } else {
            // Offset first: a client whose closing append's answer was lost learns from
            // `correct_offset` that the data landed.
            if offset != self.len() {
                return Err(LookupFailure::IncorrectOffset(self.len()));
            }
            if self.closed {
                return Err(LookupFailure::Closed);
            }
        }
        if offset.saturating_add(len) > MAX_FILE {
            return Err(LookupFailure::TooLarge);
        }
        Ok(())
    }

    /// The rules for `finish` with `body_len` bytes at `offset`.
    pub(crate) fn check_finish(&self, offset: u64, body_len: u64) -> Result<(), FinishFailure> {
        if self.concurrent {
            if body_len > 0 {
                return Err(FinishFailure::ConcurrentDataNotAllowed);
            }
            if !self.closed {
                return Err(FinishFailure::ConcurrentNotClosed);
            }
            if !self.is_complete() {
                return Err(FinishFailure::ConcurrentMissingData);
            }
        }
        if offset != self.len() {
            return Err(LookupFailure::IncorrectOffset(self.len()).into());
        }
        if self.closed && body_len > 0 {
            return Err(LookupFailure::Closed.into());
        }
        if self.len().saturating_add(body_len) > MAX_FILE {
            return Err(LookupFailure::TooLarge.into());
        }
        Ok(())
    }

    /// The rules for one `finish_batch_v2` entry: no body, so the session must be closed.
    pub(crate) fn check_batch(&self, offset: u64) -> Result<(), FinishFailure> {
        if !self.closed {
            return Err(LookupFailure::NotClosed.into());
        }
        self.check_finish(offset, 0)
    }

    /// Stores `body` as the part at `offset`, and closes the session if asked.
    pub(crate) async fn add_part(
        &mut self,
        offset: u64,
        body: Spooled,
        close: bool,
    ) -> std::io::Result<()> {
        if body.size > 0 {
            body.file.persist(&self.part_path(offset)).await?;
            self.parts.insert(offset, body.size);
        }
        self.closed |= close;
        self.save().await
    }

    async fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = dir.join("session.json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, dir.join("session.json"))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// The session's bytes as one file with its content hash, on the blocking pool. A single
    /// part is used in place; several are concatenated into a temporary file in `tmp_dir`.
    pub(crate) async fn assemble(&self, tmp_dir: &Path) -> std::io::Result<Assembled> {
        let parts: Vec<PathBuf> = self.parts.keys().map(|o| self.part_path(*o)).collect();
        let size = self.len();
        if let [only] = parts.as_slice() {
            let path = only.clone();
            let hash = tokio::task::spawn_blocking({
                let path = path.clone();
                move || crate::dropbox::content_hash::content_hash_file(&path)
            })
            .await
            .map_err(std::io::Error::other)??;
            return Ok(Assembled {
                path,
                _temp: None,
                size,
                hash,
            });
        }
        let temp = TempFile::new_in(tmp_dir);
        let out_path = temp.path().to_owned();
        let hash = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut out =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out_path)?);
            let mut hasher = ContentHasher::new();
            let mut buf = vec![0u8; 1 << 20];
            for part in parts {
                let mut input = std::fs::File::open(part)?;
                loop {
                    let n = input.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                }
            }
            out.flush()?;
            Ok(hasher.finish())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Assembled {
            path: temp.path().to_owned(),
            _temp: Some(temp),
            size,
            hash,
        })
    }

    fn expired(&self) -> bool {
        now_secs().saturating_sub(self.created) > LIFETIME.as_secs()
    }
}

pub(crate) struct Sessions {
    dir: PathBuf,
    /// A std mutex around the map only; each session's own lock is async because it is held
    /// across file operations.
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

impl Sessions {
    /// Loads the sessions under `root/sessions`, dropping expired and unreadable ones.
    pub(crate) async fn open(root: &Path) -> Result<Sessions, EmulatorError> {
        let dir = root.join("sessions");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| EmulatorError::Io {
                path: dir.clone(),
                action: "creating the session directory",
                source,
            })?;
        let mut map = HashMap::new();
        let mut listing = tokio::fs::read_dir(&dir)
            .await
            .map_err(|source| EmulatorError::Io {
                path: dir.clone(),
                action: "listing the sessions",
                source,
            })?;
        while let Ok(Some(item)) = listing.next_entry().await {
            let session_dir = item.path();
            let loaded = tokio::fs::read(session_dir.join("session.json"))
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok());
            match loaded {
                Some(mut session) if !session.expired() => {
                    session.dir = session_dir;
                    map.insert(
                        session.id.clone(),
                        Arc::new(tokio::sync::Mutex::new(session)),
                    );
                }
                _ => {
                    let _ = tokio::fs::remove_dir_all(&session_dir).await;
                }
            }
        }
        Ok(Sessions {
            dir,
            map: Mutex::new(map),
        })
    }

    /// Starts a session, with `first` as its data at offset 0 if given.
    pub(crate) async fn create(
        &self,
        concurrent: bool,
        close: bool,
        first: Option<Spooled>,
    ) -> std::io::Result<String> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let dir = self.dir.join(&token);
        tokio::fs::create_dir_all(&dir).await?;
        let mut session = Session {
            id: format!("{PREFIX}{token}"),
            concurrent,
            closed: false,
            created: now_secs(),
            parts: BTreeMap::new(),
            gone: false,
            dir,
        };
        match first {
            Some(body) => session.add_part(0, body, close).await?,
            None => {
                session.closed = close;
                session.save().await?;
            }
        }
        let id = session.id.clone();
        lock(&self.map).insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        Ok(id)
    }

    /// Locks a live session; `None` if it is unknown, finished or expired (`not_found`).
    pub(crate) async fn lock(&self, id: &str) -> Option<OwnedMutexGuard<Session>> {
        let session = lock(&self.map).get(id).cloned()?;
        let mut guard = session.lock_owned().await;
        if guard.gone {
            return None;
        }
        if guard.expired() {
            self.consume(&mut guard).await;
            return None;
        }
        Some(guard)
    }

    /// Ends a session (finished, or expired) and deletes its data.
    pub(crate) async fn consume(&self, session: &mut Session) {
        session.gone = true;
        lock(&self.map).remove(&session.id);
        let _ = tokio::fs::remove_dir_all(&session.dir).await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

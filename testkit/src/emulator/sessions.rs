//! Upload sessions, sequential and concurrent (reference §3.8), kept on disk under
//! `sessions/<id>/` with a small `session.json`, so a 1 GiB upload is never in memory and a
//! restarted emulator still has every session. Each session has its own async lock, so appends
//! to different sessions (and the bodies of concurrent appends) proceed in parallel.
//!
//! Finishing a session costs metadata, not bytes:
//!
//! - Bytes. A session's data lives in one file, `data`, where every part sits at its offset.
//!   A body is spooled (and hashed) in `tmp/` as before; when it is kept, the first part at
//!   offset 0 of a session is renamed to `data`, and any other is copied into `data` at its
//!   offset with `std::io::copy` between two `File`s (copy_file_range on Linux: the copy stays
//!   in the kernel, and happens while the client is still sending the next part). Committing is
//!   then a rename of `data` into the store's blobs. The one exception keeps concurrent
//!   sessions' rules exact: a part whose range overlaps a different stored part (a client
//!   re-sending a range with another split) must not clobber that part's bytes, so it is kept
//!   beside, as `<offset>.part`, and copied into `data` only when the session is finished (a
//!   finishable session's parts never overlap).
//! - Hash. Each part records the SHA-256 digests of its 4 MiB blocks, computed while its body
//!   was received (that pass checks the request's `content_hash` anyway), as hex in
//!   `session.json`. When every part but the last is a whole number of blocks (always so for
//!   concurrent sessions, and for sequential ones sent in multiples of 4 MiB), the parts'
//!   blocks are the file's blocks and the content hash is the SHA-256 over their digests in
//!   order. Otherwise `data` is read once and hashed.
//!
//! A `session.json` from before digests were kept does not parse, and such a session is
//! dropped on open, as an unreadable one always was.

use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::OwnedMutexGuard;

use super::body::Spooled;
use super::content_hash::{BlockDigest, content_hash_file, from_block_digests};
use super::wire::{flat, nested, void};
use super::{EmulatorError, lock};

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
    /// offset → each stored part.
    parts: BTreeMap<u64, Part>,
    /// Set when the session was finished or expired while someone waited for its lock.
    #[serde(skip)]
    gone: bool,
    #[serde(skip)]
    dir: PathBuf,
}

/// One stored append.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Part {
    len: u64,
    /// The SHA-256 of each 4 MiB block of the part, as 64 hex characters each, in order.
    blocks: String,
    /// Kept in `<offset>.part` rather than in `data` (it overlapped another part).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    beside: bool,
}

impl Part {
    fn end(&self, offset: u64) -> u64 {
        offset + self.len
    }
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
    /// The session's `data` file, which the commit moves into the store.
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) hash: String,
}

/// What making a session's `data` whole takes, to be run on the blocking pool
/// ([`Assembly::run`]); several can run in one blocking task.
pub(crate) struct Assembly {
    data: PathBuf,
    size: u64,
    /// Parts kept beside `data`: (file, offset).
    beside: Vec<(PathBuf, u64)>,
    /// The file's block digests when the parts are block-aligned; `None` to hash `data`.
    blocks: Option<Vec<BlockDigest>>,
}

impl Assembly {
    /// Copies parts kept beside into `data`, cuts `data` to the session's length (a rejected
    /// or replaced append may have left bytes past it) and finds the content hash. Blocking;
    /// idempotent, so a commit that failed can assemble again.
    pub(crate) fn run(self) -> std::io::Result<Assembled> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.data)?;
        for (part, offset) in &self.beside {
            copy_at(part, &file, *offset)?;
        }
        if file.metadata()?.len() != self.size {
            file.set_len(self.size)?;
        }
        drop(file);
        let hash = match &self.blocks {
            Some(blocks) => from_block_digests(blocks),
            None => content_hash_file(&self.data)?,
        };
        Ok(Assembled {
            path: self.data,
            size: self.size,
            hash,
        })
    }
}

/// Copies all of `src` into `dst` at `offset`, in the kernel where it can (copy_file_range).
fn copy_at(src: &Path, mut dst: &std::fs::File, offset: u64) -> std::io::Result<()> {
    let mut input = std::fs::File::open(src)?;
    dst.seek(SeekFrom::Start(offset))?;
    std::io::copy(&mut input, &mut dst)?;
    Ok(())
}

fn to_hex(blocks: &[BlockDigest]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(blocks.len() * 64);
    for byte in blocks.iter().flatten() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn from_hex(hex: &str) -> Option<Vec<BlockDigest>> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(64) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    bytes
        .chunks(64)
        .map(|chunk| {
            let mut digest = [0u8; 32];
            for (i, pair) in chunk.chunks(2).enumerate() {
                digest[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
            }
            Some(digest)
        })
        .collect()
}

impl Session {
    /// Bytes stored so far (sequential), or the end of the data seen (concurrent).
    pub(crate) fn len(&self) -> u64 {
        self.parts
            .iter()
            .next_back()
            .map_or(0, |(offset, part)| part.end(*offset))
    }

    /// Whether the parts cover `0..len()` without holes.
    fn is_complete(&self) -> bool {
        let mut expected = 0;
        for (offset, part) in &self.parts {
            if *offset != expected {
                return false;
            }
            expected += part.len;
        }
        true
    }

    fn part_path(&self, offset: u64) -> PathBuf {
        self.dir.join(format!("{offset:016x}.part"))
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join("data")
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

    /// Stores `body` as the part at `offset` (replacing one stored there), and closes the
    /// session if asked.
    pub(crate) async fn add_part(
        &mut self,
        offset: u64,
        body: Spooled,
        close: bool,
    ) -> std::io::Result<()> {
        if body.size > 0 {
            let end = offset + body.size;
            let replaced = self.parts.get(&offset).cloned();
            // Does the body overlap another part whose bytes are in `data`?
            let clash = self
                .parts
                .range(..end)
                .any(|(o, p)| *o != offset && !p.beside && p.end(*o) > offset);
            let in_data = self.parts.values().any(|p| !p.beside);
            let beside_path = self.part_path(offset);
            let data = self.data_path();
            if clash {
                body.file.persist(&beside_path).await?;
            } else if offset == 0 && !in_data {
                body.file.persist(&data).await?;
            } else {
                let src = body.file.path().to_owned();
                let copied = match tokio::task::spawn_blocking(move || {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&data)?;
                    copy_at(&src, &file, offset)
                })
                .await
                {
                    Ok(copied) => copied,
                    Err(join) => Err(std::io::Error::other(join)),
                };
                if let Err(error) = copied {
                    // The replaced part's bytes in `data` may be half overwritten.
                    if replaced.is_some_and(|p| !p.beside) {
                        self.parts.remove(&offset);
                        let _ = self.save().await;
                    }
                    return Err(error);
                }
                drop(body.file);
            }
            if !clash && replaced.is_some_and(|p| p.beside) {
                let _ = tokio::fs::remove_file(&beside_path).await;
            }
            self.parts.insert(
                offset,
                Part {
                    len: body.size,
                    blocks: to_hex(&body.blocks),
                    beside: clash,
                },
            );
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

    /// The file's block digests from its parts', if every part but the last is a whole
    /// number of blocks (the parts must be complete).
    fn aligned_blocks(&self) -> Option<Vec<BlockDigest>> {
        let mut blocks = Vec::new();
        let last = self.parts.keys().next_back().copied();
        for (offset, part) in &self.parts {
            if Some(*offset) != last && !part.len.is_multiple_of(BLOCK) {
                return None;
            }
            let digests = from_hex(&part.blocks)?;
            if digests.len() as u64 != part.len.div_ceil(BLOCK) {
                return None;
            }
            blocks.extend(digests);
        }
        Some(blocks)
    }

    /// What [`Session::assemble`] does, to run on the blocking pool. The parts must be
    /// complete (`check_finish` made sure).
    pub(crate) fn assembly(&self) -> Assembly {
        Assembly {
            data: self.data_path(),
            size: self.len(),
            beside: self
                .parts
                .iter()
                .filter(|(_, p)| p.beside)
                .map(|(o, _)| (self.part_path(*o), *o))
                .collect(),
            blocks: self.aligned_blocks(),
        }
    }

    /// The session's bytes as one file with its content hash, on the blocking pool: no byte
    /// is read when the parts are block-aligned.
    pub(crate) async fn assemble(&self) -> std::io::Result<Assembled> {
        let assembly = self.assembly();
        tokio::task::spawn_blocking(move || assembly.run())
            .await
            .map_err(std::io::Error::other)?
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
        self.consume_all([session]).await;
    }

    /// Ends several sessions, deleting their data in one blocking task.
    pub(crate) async fn consume_all<'a>(
        &self,
        sessions: impl IntoIterator<Item = &'a mut Session>,
    ) {
        let mut dirs = Vec::new();
        {
            let mut map = lock(&self.map);
            for session in sessions {
                session.gone = true;
                map.remove(&session.id);
                dirs.push(session.dir.clone());
            }
        }
        let _ = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

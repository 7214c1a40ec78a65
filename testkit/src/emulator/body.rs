//! Reading request bodies without holding them in memory: upload bodies (up to 150 MiB each)
//! stream into a temporary file under the root while their content hash is computed, both on
//! the blocking pool so the runtime threads only shuttle frames. A body over the limit stops
//! being stored at the limit, as Dropbox's `payload_too_large` requires. The hash is kept as
//! the body's 4 MiB block digests too, so a session can hash a whole file from its parts'
//! digests without reading them again (see `sessions`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use std::future::Future;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use rand::Rng;

use sha2::{Digest, Sha256};

use super::Shared;
use super::content_hash::{BLOCK_SIZE, BlockDigest, from_block_digests};

/// After a body passes its limit, at most this much more is read and discarded, so a client
/// still sending gets the error instead of a reset; beyond that the connection is cut.
const DRAIN_CAP: u64 = 1024 * 1024 * 1024;

/// Frames in flight between the connection and the writer; bounds memory per upload.
const CHANNEL_FRAMES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the request body is larger than the limit")]
    TooLarge,
    /// The client went away mid-body; there is nobody to answer.
    #[error("the client disconnected mid-body")]
    Gone,
    #[error("emulator I/O error while storing the body: {0}")]
    Io(#[from] std::io::Error),
}

/// A request body that counts the bytes read from it into a shared counter, so the request log
/// can tell how much of each body reached the emulator (all of it, or for a dropped
/// connection, what was read before the drop). Every handler reads bodies through this type.
///
/// It is also where the uplink's bandwidth cap applies (`network`): with a cap, each frame is
/// held until the shared link would have carried it, and counted when it is let through.
pub(crate) struct Counted {
    inner: Incoming,
    count: Arc<AtomicU64>,
    uplink: Option<Arc<Shared>>,
    /// A frame waiting for the link, and the timer that lets it through.
    held: Option<(Frame<Bytes>, Pin<Box<tokio::time::Sleep>>)>,
}

impl Counted {
    pub(crate) fn new(inner: Incoming, count: Arc<AtomicU64>) -> Counted {
        Counted {
            inner,
            count,
            uplink: None,
            held: None,
        }
    }

    /// Reads the body through the emulator's uplink, at its bandwidth cap if one is set.
    pub(crate) fn paced(mut self, shared: Arc<Shared>) -> Counted {
        self.uplink = Some(shared);
        self
    }

    fn let_through(&self, frame: Frame<Bytes>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(data) = frame.data_ref() {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some((_, timer)) = &mut self.held {
            std::task::ready!(timer.as_mut().poll(cx));
            if let Some((frame, _)) = self.held.take() {
                return self.let_through(frame);
            }
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let carried = match (&self.uplink, frame.data_ref()) {
            (Some(shared), Some(data)) => shared.network.carry(data.len()),
            _ => None,
        };
        match carried {
            Some(until) if until > tokio::time::Instant::now() => {
                let mut timer = Box::pin(tokio::time::sleep_until(until));
                // Polled once so the timer wakes this task when the link is free.
                if timer.as_mut().poll(cx).is_ready() {
                    return self.let_through(frame);
                }
                self.held = Some((frame, timer));
                Poll::Pending
            }
            _ => self.let_through(frame),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let held = self
            .held
            .as_ref()
            .and_then(|(frame, _)| frame.data_ref())
            .map_or(0, |data| data.len() as u64);
        // The upper bound first: SizeHint refuses a lower bound above the upper one.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + held);
        }
        hint.set_lower(hint.lower() + held);
        hint
    }
}

/// A file under the root's `tmp/` that is removed when dropped, unless it was moved away.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// A fresh, not yet created path in `dir`.
    pub(crate) fn new_in(dir: &Path) -> TempFile {
        let name: u128 = rand::rng().random();
        TempFile {
            path: dir.join(format!("{name:032x}.tmp")),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `to`; on failure it is still removed on drop.
    pub(crate) async fn persist(mut self, to: &Path) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, to).await?;
        // Nothing is left at the old path for the drop to remove.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        if path.as_os_str().is_empty() {
            return;
        }
        // Unlinking a big file can take a moment; keep it off the runtime threads when possible.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::fs::remove_file(path).await;
                });
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// A body stored on disk, with its size, content hash and block digests.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub(crate) file: TempFile,
    pub(crate) size: u64,
    pub(crate) hash: String,
    /// The SHA-256 of each 4 MiB block (the last may be shorter); `hash` is the content hash
    /// made of them.
    pub(crate) blocks: Vec<BlockDigest>,
}

/// The 4 MiB block digests of a stream fed in pieces of any size: what
/// the client's `ContentHasher` computes, with the digests
/// kept.
#[derive(Default)]
pub(crate) struct BlockHasher {
    block: Sha256,
    block_len: usize,
    digests: Vec<BlockDigest>,
}

impl BlockHasher {
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest: BlockDigest = std::mem::take(&mut self.block).finalize().into();
        self.digests.push(digest);
        self.block_len = 0;
    }

    /// The digests of all blocks, the last (partial) one included.
    pub(crate) fn finish(mut self) -> Vec<BlockDigest> {
        if self.block_len > 0 {
            self.close_block();
        }
        self.digests
    }
}

/// Streams `body` into a new file in `dir`, hashing it; at most `limit` bytes.
pub(crate) async fn spool(mut body: Counted, dir: &Path, limit: u64) -> Result<Spooled, BodyError> {
    let file = TempFile::new_in(dir);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_FRAMES);
    let path = file.path().to_owned();
    let writer =
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Vec<BlockDigest>)> {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
            let mut hasher = BlockHasher::default();
            let mut size = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                size += chunk.len() as u64;
            }
            out.flush()?;
            Ok((size, hasher.finish()))
        });
    let mut received = 0u64;
    let mut outcome = Ok(());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            outcome = Err(BodyError::Gone);
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we need
        };
        received += data.len() as u64;
        if received > limit {
            outcome = Err(BodyError::TooLarge);
            break;
        }
        if tx.send(data).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|join| BodyError::Io(std::io::Error::other(join)))?;
    match outcome {
        Err(BodyError::TooLarge) => {
            drain(body, DRAIN_CAP).await;
            Err(BodyError::TooLarge)
        }
        Err(other) => Err(other),
        Ok(()) => {
            let (size, blocks) = written?;
            let hash = from_block_digests(&blocks);
            Ok(Spooled {
                file,
                size,
                hash,
                blocks,
            })
        }
    }
}

/// Reads a small body (an RPC argument) into memory, at most `limit` bytes.
pub(crate) async fn read_small(mut body: Counted, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Gone)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards up to `cap` bytes, so the client finishes sending before the answer.
pub(crate) async fn drain(mut body: Counted, cap: u64) {
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > cap {
                return;
            }
        }
    }
}

/// Reads some of the body (at least one frame or half of the announced length) and stops:
/// the ResetMidBody fault then drops the connection with the rest unread.
pub(crate) async fn read_part(mut body: Counted, announced: Option<u64>) {
    let target = announced.map_or(1, |len| (len / 2).max(1));
    let mut seen = 0u64;
    while seen < target {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                }
            }
            _ => return,
        }
    }
}

/// Cuts a stored body into consecutive pieces of `lengths` (which must add up to its size),
/// each a [`Spooled`] of its own in `dir` with its own hash and block digests, as if each had
/// arrived alone: `append_batch` stores each piece in its session like one `append_v2` body.
/// One pass over the body, on the blocking pool.
pub(crate) async fn split(
    body: &Spooled,
    lengths: Vec<u64>,
    dir: &Path,
) -> std::io::Result<Vec<Spooled>> {
    let source = body.file.path().to_owned();
    let dir = dir.to_owned();
    let task = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Spooled>> {
        let mut input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&source)?);
        let mut pieces = Vec::with_capacity(lengths.len());
        let mut buf = vec![0u8; 1 << 20];
        for length in lengths {
            let file = TempFile::new_in(&dir);
            let mut out =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(file.path())?);
            let mut hasher = BlockHasher::default();
            let mut left = length;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                std::io::Read::read_exact(&mut input, &mut buf[..want])?;
                hasher.update(&buf[..want]);
                out.write_all(&buf[..want])?;
                left -= want as u64;
            }
            out.flush()?;
            let blocks = hasher.finish();
            pieces.push(Spooled {
                file,
                size: length,
                hash: from_block_digests(&blocks),
                blocks,
            });
        }
        Ok(pieces)
    });
    task.await.map_err(std::io::Error::other)?
}

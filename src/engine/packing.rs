//! The packer: small files go up many to a request. Each small file (at most one chunk) that
//! is prepared, read, hashed and not already in Dropbox becomes a [`Piece`]; one task
//! (`pack_pieces`) owns the pending pieces and sends them together: empty sessions taken ahead
//! with `upload_session/start_batch`, then one `upload_session/append_batch` whose entries each
//! close their session and whose body (every piece, one after another) carries the content
//! hash of the whole. The closed sessions then go to the batch committer (`commit`) as before.
//!
//! A pack goes when it is full ([`MAX_APPEND_BATCH_ENTRIES`] pieces, or [`PACK_BYTES`]), when
//! nothing more is coming soon (no job is being prepared or read and none is waiting to be
//! claimed: the commit batcher's rule), or when its oldest piece has waited
//! `upload.pack_wait_ms`. The wait matters: photos being resized arrive a few a second, and a
//! request each would cost as much as sending them one by one (issue 16). Several packs may be
//! in flight at once, each holding a network slot while its request is out, and only then:
//! building the body, its hash and the state writes happen without one.
//!
//! Durability (ARCHITECTURE.md, invariant 3): every piece's session is recorded (Uploading at
//! offset 0) before its bytes are sent, all of a pack's jobs in one flush; a piece that landed
//! is recorded at offset = size, again one flush for the pack, before its job hears of it. A
//! crash in between leaves the job Uploading at offset 0, and the next start asks Dropbox how
//! much the session holds (`transfer::probe_offset`): a closed session goes straight to its
//! commit, nothing sent again.
//!
//! The job that handed a piece over waits for its outcome (its session, or why it stopped)
//! through a oneshot, as with the commit batcher; a job that stops waiting drops its receiver
//! and its piece is left out of the next pack. A whole-request failure (5xx, reset, a lost
//! answer, a rate limit) sends the same pack again to the same cursors after a backoff (never
//! sooner than Retry-After): entries that had landed then answer `closed` or
//! `incorrect_offset` at their size, and count as landed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::classify::{error_step, file_message};
use super::{Engine, Step, blocking, retry, session_step};
use crate::dropbox::{
    self, AppendBatchEntry, AppendBatchEntryError, AppendBatchResult, MAX_APPEND_BATCH_ENTRIES,
    UploadSessionCursor,
};
use crate::queue::{FailureKind, Job, JobId, JobState};

const MIB: u64 = 1024 * 1024;
/// Most bytes in one pack: far under Dropbox's 150 MiB a request, so that the packs being
/// filled and sent keep the daemon's memory small, yet a few hundred resized photos each.
pub(super) const PACK_BYTES: u64 = 32 * MIB;
/// The largest file that goes as a piece (larger ones go through their own session): a pack
/// holds at least four.
pub(super) const MAX_PIECE: u64 = 8 * MIB;
/// Bytes of pieces held at once (pending and in flight); a job hands its piece over only when
/// there is room, so memory stays bounded however fast photos are prepared.
pub(super) const HELD_BYTES: u64 = 2 * PACK_BYTES;
/// Most sessions asked for in one `start_batch` (Dropbox takes up to 1000); spare ones are
/// kept for the next pack while the daemon runs (a session lives for 7 days).
const MAX_START_BATCH: usize = 500;

/// The unit in which [`HELD_BYTES`] is counted out (a semaphore's permits are `u32`).
pub(super) fn held_units(bytes: u64) -> u32 {
    bytes.div_ceil(1024).max(1) as u32
}

/// A small file's bytes, waiting to go up in a pack.
pub(super) struct Piece {
    pub job: Job,
    /// The whole file.
    pub body: Bytes,
    /// Answered with the closed session holding the file, or why the job stops.
    pub reply: oneshot::Sender<Result<String, Step>>,
    /// Its share of [`HELD_BYTES`], given back when the piece is answered.
    pub _room: OwnedSemaphorePermit,
    /// The session it goes to, once it has one.
    pub session: Option<String>,
    /// Bytes the session holds already: the piece's cursor (0, unless Dropbox said otherwise).
    pub offset: u64,
    /// Whole-request failures met by the packs it was in.
    pub tries: u32,
}

impl Piece {
    fn size(&self) -> u64 {
        self.body.len() as u64
    }

    /// Bytes this piece adds to a pack's body.
    fn length(&self) -> u64 {
        self.size() - self.offset
    }
}

/// When the pending pieces go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing pending.
    Idle,
    Now,
    At(Instant),
}

/// When a pack of the pending pieces (`pieces` of them, `bytes` in all, the oldest handed over
/// at `oldest`) goes: at once when full or when nothing more is coming soon, else when the
/// oldest has waited `wait`.
pub(super) fn pack_due(
    pieces: usize,
    bytes: u64,
    oldest: Option<Instant>,
    nothing_coming: bool,
    wait: Duration,
    now: Instant,
) -> Due {
    let Some(oldest) = oldest.filter(|_| pieces > 0) else {
        return Due::Idle;
    };
    let full = pieces >= MAX_APPEND_BATCH_ENTRIES || bytes >= PACK_BYTES;
    if full || nothing_coming || oldest + wait <= now {
        Due::Now
    } else {
        Due::At(oldest + wait)
    }
}

/// How many of the pending pieces, whose lengths come in order, make the next pack: up to
/// [`MAX_APPEND_BATCH_ENTRIES`] and [`PACK_BYTES`], and always at least one.
pub(super) fn pack_len(lengths: impl IntoIterator<Item = u64>) -> usize {
    let mut bytes = 0u64;
    let mut count = 0usize;
    for length in lengths {
        if count == MAX_APPEND_BATCH_ENTRIES || (count > 0 && bytes + length > PACK_BYTES) {
            break;
        }
        bytes += length;
        count += 1;
    }
    count
}

/// What one entry's answer means for its piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PieceStep {
    /// The session holds the whole file, closed.
    Landed,
    /// The session holds `offset` bytes: send the rest in a later pack.
    Resend { offset: u64 },
    /// The session is gone: the piece goes to a new one.
    NewSession,
    /// Retrying will not help; why, in words for the user.
    Fail(String),
}

/// Maps an entry's answer for a piece of a `size`-byte file to what happens to it. A piece
/// always closes its session, so a closed session, or one holding `size` bytes, holds it: an
/// earlier send whose answer was lost, or a crash before the answer was recorded.
pub(super) fn piece_step(result: &AppendBatchResult, size: u64) -> PieceStep {
    match result {
        AppendBatchResult::Success => PieceStep::Landed,
        AppendBatchResult::Failure(e) => match e {
            AppendBatchEntryError::Closed => PieceStep::Landed,
            AppendBatchEntryError::IncorrectOffset { correct_offset }
                if *correct_offset == size =>
            {
                PieceStep::Landed
            }
            AppendBatchEntryError::IncorrectOffset { correct_offset } if *correct_offset < size => {
                PieceStep::Resend {
                    offset: *correct_offset,
                }
            }
            AppendBatchEntryError::IncorrectOffset { correct_offset } => PieceStep::Fail(format!(
                "Dropbox holds {correct_offset} bytes in the upload session of a file of {size} bytes"
            )),
            AppendBatchEntryError::NotFound => PieceStep::NewSession,
            e => PieceStep::Fail(format!("Dropbox refused the file's bytes: {e}")),
        },
    }
}

/// One pack's request, from building its body to its answer; returns the pieces to send again.
type Flight<'a> = Pin<Box<dyn Future<Output = Vec<(Instant, Piece)>> + Send + 'a>>;

impl Engine {
    /// Hands a small file's bytes to the packer and waits until they are in a closed session
    /// (recorded by the packer), then commits it in a batch. The job gives back its place among
    /// the jobs worked on at once while it waits: it reads and sends nothing more.
    pub(super) async fn upload_packed(
        &self,
        job: &Job,
        body: Bytes,
        hash: &str,
    ) -> Result<(), Step> {
        let size = body.len() as u64;
        let room = self
            .piece_room
            .clone()
            .acquire_many_owned(held_units(size))
            .await
            .expect("the semaphore is never closed");
        let (reply, answer) = oneshot::channel();
        self.set_packing(job.id, true);
        self.free_slot(job.id);
        self.pieces
            .send(Piece {
                job: job.clone(),
                body,
                reply,
                _room: room,
                session: None,
                offset: 0,
                tries: 0,
            })
            .map_err(|_| Step::Stopped)?;
        let session = answer.await.map_err(|_| Step::Stopped)??;
        self.committing(job, hash, Some(&session)).await?;
        self.commit(job, &session, size, hash).await
    }

    /// The packer: runs until `shutdown`; what is pending or in flight then stays as recorded
    /// (Preparing, or Uploading with its session) for the next start.
    pub(super) async fn pack_pieces(
        self: Arc<Self>,
        mut incoming: mpsc::UnboundedReceiver<Piece>,
        shutdown: CancellationToken,
    ) {
        let wait = Duration::from_millis(self.upload.pack_wait_ms);
        let spare = std::sync::Mutex::new(Vec::<String>::new());
        let mut pending: VecDeque<(Instant, Piece)> = VecDeque::new();
        let mut flying: FuturesUnordered<Flight<'_>> = FuturesUnordered::new();
        loop {
            pending.retain(|(_, p)| !p.reply.is_closed());
            let bytes = pending.iter().map(|(_, p)| p.length()).sum();
            let nothing_coming = self.sending() == 0
                && !self
                    .queue
                    .runnable_now(crate::queue::now_ms(), self.auto_hold.borrow().is_held());
            let due = pack_due(
                pending.len(),
                bytes,
                pending.front().map(|(at, _)| *at),
                nothing_coming,
                wait,
                Instant::now(),
            );
            // No more packs out at once than requests may be (each holds a network slot).
            let room = flying.len() < self.upload.transfers;
            let sleep = async {
                match due {
                    Due::Now if room => {}
                    Due::At(at) if room => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                piece = incoming.recv() => match piece {
                    Some(piece) => pending.push_back((Instant::now(), piece)),
                    None => return,
                },
                // A job stopped preparing or sending: perhaps nothing more is coming.
                _ = self.pack_wake.notified() => {}
                Some(again) = flying.next(), if !flying.is_empty() => {
                    // Pieces to send again go first, in their order.
                    for piece in again.into_iter().rev() {
                        pending.push_front(piece);
                    }
                }
                _ = sleep => {
                    let take = pack_len(pending.iter().map(|(_, p)| p.length()));
                    let pack: Vec<_> = pending.drain(..take).collect();
                    flying.push(Box::pin(self.send_pack(pack, &spare)));
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One pack: sessions for the pieces without one (recorded before anything is sent),
    /// `append_batch` until Dropbox answers it, and each piece's answer. Returns the pieces to
    /// go in a later pack (Dropbox holds part of them, their session is gone, or there was no
    /// session left for them).
    async fn send_pack(
        &self,
        pack: Vec<(Instant, Piece)>,
        spare: &std::sync::Mutex<Vec<String>>,
    ) -> Vec<(Instant, Piece)> {
        let pack = self.hold_back(pack).await;
        let (mut pack, mut again) = self.give_sessions(pack, spare).await;
        let mut tries = 0u32;
        let results = loop {
            pack.retain(|(_, p)| !p.reply.is_closed());
            if pack.is_empty() {
                return again;
            }
            let step = match self.append_pack(&pack).await {
                Ok(results) if results.len() == pack.len() => break results,
                Ok(results) => Step::Transient {
                    reason: format!(
                        "Dropbox answered {} entries for a batch of {}",
                        results.len(),
                        pack.len()
                    ),
                    retry_after: None,
                },
                Err(step) => step,
            };
            tries += 1;
            if !self.wait_out(&mut pack, step, tries).await {
                return again;
            }
        };
        let mut landed = Vec::new();
        for ((at, mut piece), result) in pack.into_iter().zip(results) {
            match piece_step(&result, piece.size()) {
                PieceStep::Landed => landed.push(piece),
                PieceStep::Resend { offset } => {
                    tracing::debug!(
                        job = piece.job.id,
                        "Dropbox holds {offset} bytes of the piece's session; sending the rest"
                    );
                    piece.offset = offset;
                    again.push((at, piece));
                }
                PieceStep::NewSession => {
                    tracing::info!(
                        job = piece.job.id,
                        "the upload session expired; sending the file again"
                    );
                    (piece.session, piece.offset) = (None, 0);
                    again.push((at, piece));
                }
                PieceStep::Fail(why) => {
                    let _ = piece.reply.send(Err(Step::Failed {
                        kind: FailureKind::Refused,
                        message: file_message(&piece.job, why),
                    }));
                }
            }
        }
        // Durable before the jobs count their bytes as landed (ARCHITECTURE.md, invariant 3).
        let moves = landed
            .iter()
            .map(|p| (p.job.id, uploading(p.session.clone(), p.size())))
            .collect();
        for piece in self.record(landed, moves).await.into_iter().flatten() {
            let session = piece.session.clone().unwrap_or_default();
            let _ = piece.reply.send(Ok(session));
        }
        again
    }

    /// A watch job whose bytes wait here unsent when a policy hold begins (metered, battery)
    /// is queued again, as one waiting for a network slot would be (`Engine::held_back`); the
    /// others go on. One flush for all of them.
    async fn hold_back(&self, pack: Vec<(Instant, Piece)>) -> Vec<(Instant, Piece)> {
        if !self.auto_hold.borrow().is_held() {
            return pack;
        }
        let (held, pack): (Vec<_>, Vec<_>) = pack
            .into_iter()
            .partition(|(_, p)| p.job.origin.is_some() && p.session.is_none() && p.offset == 0);
        let moves = held
            .iter()
            .map(|(_, p)| (p.job.id, JobState::Queued))
            .collect();
        let held: Vec<Piece> = held.into_iter().map(|(_, p)| p).collect();
        for piece in self.record(held, moves).await.into_iter().flatten() {
            tracing::debug!(
                job = piece.job.id,
                "held by policy before its first byte: queued again"
            );
            let _ = piece.reply.send(Err(Step::Requeued));
        }
        pack
    }

    /// Gives every piece without one a session, from the spare ones or a `start_batch`, and
    /// records each job's new session before a byte of it is sent: one flush for the pack.
    /// Returns the pieces ready to go, and those left for a later pack (no session for them).
    async fn give_sessions(
        &self,
        pack: Vec<(Instant, Piece)>,
        spare: &std::sync::Mutex<Vec<String>>,
    ) -> (Vec<(Instant, Piece)>, Vec<(Instant, Piece)>) {
        let spare_now = || spare.lock().unwrap_or_else(|e| e.into_inner());
        // Pieces sent before (to be sent again) have their session recorded already.
        let (mut fresh, mut ready): (Vec<_>, Vec<_>) =
            pack.into_iter().partition(|(_, p)| p.session.is_none());
        let short = fresh.len().saturating_sub(spare_now().len());
        if short > 0 {
            // As many as the jobs still to come may use, within one request's worth.
            let ask = self
                .queue
                .active_len()
                .clamp(short, MAX_START_BATCH.max(short));
            let mut tries = 0u32;
            loop {
                match self.start_sessions(ask, tries).await {
                    Ok(sessions) => {
                        spare_now().extend(sessions);
                        break;
                    }
                    Err(step) => {
                        tries += 1;
                        if !self.wait_out(&mut fresh, step, tries).await {
                            break;
                        }
                    }
                }
            }
        }
        let mut left = Vec::new();
        let mut given = Vec::new();
        {
            let mut spare = spare_now();
            for (at, mut piece) in fresh {
                match spare.pop() {
                    Some(session) => {
                        piece.session = Some(session);
                        given.push((at, piece));
                    }
                    None => left.push((at, piece)),
                }
            }
        }
        if !left.is_empty() {
            tracing::warn!(
                "Dropbox gave fewer upload sessions than asked for; {} files wait for the next batch",
                left.len()
            );
        }
        let moves = given
            .iter()
            .map(|(_, p)| (p.job.id, uploading(p.session.clone(), 0)))
            .collect();
        let (arrived, pieces): (Vec<Instant>, Vec<Piece>) = given.into_iter().unzip();
        let kept = self.record(pieces, moves).await;
        ready.extend(
            arrived
                .into_iter()
                .zip(kept)
                .filter_map(|(at, piece)| piece.map(|p| (at, p))),
        );
        (ready, left)
    }

    /// `start_batch` of `count` sessions, holding a network slot for the request only
    /// (`tries`: its failures so far).
    async fn start_sessions(&self, count: usize, tries: u32) -> Result<Vec<String>, Step> {
        let _slot = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tracing::debug!(count, "starting upload sessions");
        let result = call!(self, |token| self
            .client
            .upload_session_start_batch(token, count));
        result.map_err(|e| pack_step(e, tries))
    }

    /// One `append_batch` of the pack: each piece from its cursor, closing its session, the
    /// body's content hash with it. The body is built and hashed before the network slot is
    /// taken; the slot is held for the request only.
    async fn append_pack(&self, pack: &[(Instant, Piece)]) -> Result<Vec<AppendBatchResult>, Step> {
        let entries: Vec<AppendBatchEntry> = pack
            .iter()
            .map(|(_, p)| AppendBatchEntry {
                cursor: UploadSessionCursor {
                    session_id: p.session.clone().unwrap_or_default(),
                    offset: p.offset,
                },
                length: p.length(),
                close: true,
            })
            .collect();
        let parts: Vec<Bytes> = pack
            .iter()
            .map(|(_, p)| p.body.slice(p.offset as usize..))
            .collect();
        let (body, hash) = blocking(move || {
            let mut body = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for part in &parts {
                body.extend_from_slice(part);
            }
            let hash = dropbox::content_hash::content_hash(&body);
            (body.freeze(), hash)
        })
        .await?;
        let progress = pack_progress(
            pack.iter()
                .map(|(_, p)| (p.length(), self.progress_for(p.job.id, p.offset, p.size())))
                .collect(),
        );
        let tries = pack.iter().map(|(_, p)| p.tries).max().unwrap_or(0);
        let _slot = self
            .network_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tracing::debug!(
            entries = entries.len(),
            bytes = body.len(),
            "sending a pack"
        );
        let result = call!(self, |token| self.client.upload_session_append_batch(
            token,
            &entries,
            body.clone(),
            Some(hash.clone()),
            Some(progress.clone())
        ));
        result.map_err(|e| pack_step(e, tries))
    }

    /// A whole request failed with `step` (its `tries`-th failure): waits out a transient
    /// failure (never sooner than Retry-After) and returns true to send it again; otherwise
    /// tells every piece's job and returns false.
    async fn wait_out(&self, pack: &mut Vec<(Instant, Piece)>, step: Step, tries: u32) -> bool {
        for (_, piece) in pack.iter_mut() {
            piece.tries = piece.tries.max(tries);
        }
        match step {
            Step::Transient {
                reason,
                retry_after,
            } => {
                let wait = retry::backoff(tries, retry_after);
                let shown = humantime::format_duration(Duration::from_secs(wait.as_secs()));
                // One log line per cause of waiting, as for a job's own request (`outages`).
                let source = pack
                    .first()
                    .map(|(_, p)| p.job.source.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let cause = super::plain_cause(&reason, &source);
                if self
                    .outages
                    .first_telling(&cause, std::time::Instant::now())
                {
                    tracing::info!("{cause}; retrying in {shown}");
                }
                tracing::debug!(
                    "sending {} small files together: {reason}; retrying in {shown}",
                    pack.len()
                );
                tokio::time::sleep(wait).await;
                true
            }
            Step::Failed { kind, message } => {
                for (_, piece) in pack.drain(..) {
                    let _ = piece.reply.send(Err(Step::Failed {
                        kind,
                        message: file_message(&piece.job, &message),
                    }));
                }
                false
            }
            step => {
                for (_, piece) in pack.drain(..) {
                    let _ = piece.reply.send(Err(step.clone()));
                }
                false
            }
        }
    }

    /// Writes `moves` (one per piece, in order) in one flush; returns the pieces whose job
    /// moved, each in its place, and tells the others' jobs why not.
    async fn record(
        &self,
        pieces: Vec<Piece>,
        moves: Vec<(JobId, JobState)>,
    ) -> Vec<Option<Piece>> {
        if pieces.is_empty() {
            return Vec::new();
        }
        match self.queue.transition_many(moves).await {
            Ok(results) => pieces
                .into_iter()
                .zip(results)
                .map(|(piece, result)| match result {
                    Ok(_) => Some(piece),
                    Err(e) => {
                        let _ = piece.reply.send(Err(Step::from(e)));
                        None
                    }
                })
                .collect(),
            Err(e) => {
                let step = Step::from(e);
                for piece in pieces {
                    let _ = piece.reply.send(Err(step.clone()));
                }
                Vec::new()
            }
        }
    }
}

/// A piece's job state: its session, and the bytes the session holds of it.
fn uploading(session: Option<String>, offset: u64) -> JobState {
    JobState::Uploading {
        session_id: session,
        offset,
        concurrent: false,
        landed: Vec::new(),
    }
}

/// A failed request of a pack as a step; no one job's, so a failure's message is its cause
/// alone, and `wait_out` names each piece's file ([`file_message`]). `tries` bounds the
/// retries of an answer that cannot be read.
fn pack_step<E: dropbox::RouteError>(error: dropbox::Error<E>, tries: u32) -> Step {
    error_step(error, tries)
}

/// One progress callback for a pack's body, telling each piece's own callback (`parts`: each
/// piece's length in the body and its callback, in body order) how much of it has gone.
fn pack_progress(parts: Vec<(u64, dropbox::Progress)>) -> dropbox::Progress {
    // The piece the body has reached, and where that piece starts in the body.
    let at = std::sync::Mutex::new((0usize, 0u64));
    Arc::new(move |sent: u64| {
        let mut at = at.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((length, progress)) = parts.get(at.0) {
            let within = sent.saturating_sub(at.1).min(*length);
            progress(within);
            if within < *length {
                break;
            }
            at.1 += length;
            at.0 += 1;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_goes_when_full_when_nothing_more_is_coming_or_when_its_oldest_waited() {
        let now = Instant::now();
        let wait = Duration::from_secs(5);
        let second = Duration::from_secs(1);
        let max = MAX_APPEND_BATCH_ENTRIES;
        /// (case, pieces, bytes, oldest, nothing coming, when)
        type Row<'a> = (&'a str, usize, u64, Option<Instant>, bool, Due);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            ("nothing pending", 0, 0, None, true, Due::Idle),
            ("one piece, more coming: waits for its oldest", 1, 100, Some(now), false, Due::At(now + wait)),
            ("one piece, nothing more coming: at once", 1, 100, Some(now), true, Due::Now),
            ("the oldest waited long enough", 3, 300, Some(now - wait), false, Due::Now),
            ("the oldest waited a second: four more", 3, 300, Some(now - second), false, Due::At(now + 4 * second)),
            ("one short of full", max - 1, 1000, Some(now), false, Due::At(now + wait)),
            ("full by count", max, 1000, Some(now), false, Due::Now),
            ("one byte short of full", 2, PACK_BYTES - 1, Some(now), false, Due::At(now + wait)),
            ("full by bytes", 2, PACK_BYTES, Some(now), false, Due::Now),
        ];
        for (what, pieces, bytes, oldest, nothing_coming, expected) in table {
            assert_eq!(
                pack_due(pieces, bytes, oldest, nothing_coming, wait, now),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn a_pack_takes_pieces_in_order_within_the_count_and_byte_limits() {
        let max = MAX_APPEND_BATCH_ENTRIES;
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<u64>, usize)> = vec![
            ("nothing", vec![], 0),
            ("a few", vec![10, 20, 30], 3),
            ("more than a pack's count", vec![1; max + 7], max),
            ("exactly the byte limit", vec![PACK_BYTES / 2, PACK_BYTES / 2, 1], 2),
            ("the next would go over", vec![PACK_BYTES - 10, 11, 1], 1),
            ("one larger than a pack still goes alone", vec![PACK_BYTES + 1, 1], 1),
            ("four of the largest pieces fill a pack", vec![MAX_PIECE; 5], 4),
        ];
        for (what, lengths, expected) in table {
            assert_eq!(pack_len(lengths), expected, "{what}");
        }
    }

    #[test]
    fn each_entrys_answer_is_a_step_for_its_piece() {
        use AppendBatchEntryError as E;
        let failure = AppendBatchResult::Failure;
        let size = 1000;
        #[rustfmt::skip]
        let table: Vec<(&str, AppendBatchResult, PieceStep)> = vec![
            ("appended and closed", AppendBatchResult::Success, PieceStep::Landed),
            ("closed: an earlier send whose answer was lost", failure(E::Closed), PieceStep::Landed),
            ("holds the whole file already", failure(E::IncorrectOffset { correct_offset: size }), PieceStep::Landed),
            ("holds nothing: send again from 0", failure(E::IncorrectOffset { correct_offset: 0 }), PieceStep::Resend { offset: 0 }),
            ("holds part: send the rest", failure(E::IncorrectOffset { correct_offset: 400 }), PieceStep::Resend { offset: 400 }),
            ("expired: a new session", failure(E::NotFound), PieceStep::NewSession),
        ];
        for (what, result, expected) in table {
            assert_eq!(piece_step(&result, size), expected, "{what}");
        }
        // Anything else fails the job, with Dropbox's reason.
        for result in [
            failure(E::IncorrectOffset {
                correct_offset: size + 1,
            }),
            failure(E::TooLarge),
            failure(E::Other),
        ] {
            let step = piece_step(&result, size);
            assert!(
                matches!(&step, PieceStep::Fail(why) if why.contains("Dropbox")),
                "{result:?}: {step:?}"
            );
        }
    }

    #[test]
    fn a_packs_progress_tells_each_piece_how_much_of_it_has_gone() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let part = |name: &'static str| -> dropbox::Progress {
            let seen = seen.clone();
            Arc::new(move |n| seen.lock().unwrap().push((name, n)))
        };
        let progress = pack_progress(vec![(10, part("a")), (5, part("b")), (20, part("c"))]);
        progress(4);
        progress(12);
        progress(35);
        assert_eq!(
            *seen.lock().unwrap(),
            [("a", 4), ("a", 10), ("b", 2), ("b", 5), ("c", 20)]
        );
    }
}

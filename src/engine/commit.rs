//! Batched commits: the closed upload sessions of small files wait here and are committed
//! together with `files/upload_session/finish_batch_v2`.
//!
//! Every commit takes a lock on the account's namespace, and commits that collide get
//! `too_many_write_operations`; Dropbox's answer is to send data in parallel but commit many
//! files at once, one commit in flight per account. So one task (`commit_batches`) owns the
//! pending entries and commits them in order; a batch goes when it is full (`batch_size`),
//! when its oldest entry has waited `batch_wait_ms`, or as soon as no job is sending (nothing
//! more is coming soon). Entries are taken in the order they arrived.
//!
//! The job that handed an entry over waits for its [`Outcome`] and records it itself, so a
//! job's state still changes in one place (the job's task). A job that stops waiting
//! (cancelled, or the daemon shutting down) drops its receiver; its entry is then left out of
//! the next batch. A crash loses nothing: the job is persisted as Committing, and is resolved
//! by looking at the remote file on the next start (ARCHITECTURE.md, invariant 2).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Engine, Step, retry, session_step};
use crate::dropbox::{self, FinishBatchEntry, UploadSessionFinishError};
use crate::queue::{FailureKind, JobId};

/// A closed session, ready to be committed.
pub(super) struct Entry {
    pub job: JobId,
    /// "source → remote", for messages about the whole call.
    pub label: String,
    pub arg: dropbox::UploadSessionFinishArg,
    pub reply: oneshot::Sender<Outcome>,
    /// Times this entry met write contention (or a rate limit) already.
    pub tries: u32,
}

/// What became of one entry.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Committed; Dropbox's metadata for the file (its content hash still to be checked).
    Landed(dropbox::FileMetadata),
    /// Dropbox refused this entry (contention is retried here and never reported).
    Refused(UploadSessionFinishError),
    /// The call failed as a whole. The commit may or may not have landed: the job keeps its
    /// Committing state and the step says when to look again.
    Unsure(Step),
}

/// How long the next batch waits after some of its entries met write contention: the backoff
/// of `retry` for the entry refused most often, so one unlucky entry backs off further while
/// entries new to the batch do not inherit its history.
fn contention_wait(retried: &[(Instant, Entry)]) -> Duration {
    let tries = retried.iter().map(|(_, e)| e.tries).max().unwrap_or(1);
    retry::backoff(tries, None)
}

/// Waiting entries, in arrival order, with when each arrived.
#[derive(Default)]
struct Pending {
    entries: std::collections::VecDeque<(Instant, Entry)>,
}

impl Pending {
    /// Drops entries whose job stopped waiting.
    fn prune(&mut self) {
        self.entries.retain(|(_, e)| !e.reply.is_closed());
    }

    fn oldest(&self) -> Option<Instant> {
        self.entries.front().map(|(at, _)| *at)
    }
}

impl Engine {
    /// Hands a closed session to the batch committer and waits for its outcome. The job's
    /// transfer slot is given back first: committing sends no file data.
    pub(super) async fn commit_in_batch(
        &self,
        job: JobId,
        label: String,
        arg: dropbox::UploadSessionFinishArg,
    ) -> Result<Outcome, Step> {
        let (reply, outcome) = oneshot::channel();
        self.free_slot(job);
        self.commits
            .send(Entry {
                job,
                label,
                arg,
                reply,
                tries: 0,
            })
            .map_err(|_| Step::Stopped)?;
        self.set_packing(job, false);
        outcome.await.map_err(|_| Step::Stopped)
    }

    /// The committer: runs until `shutdown`; what is pending then stays Committing.
    pub(super) async fn commit_batches(
        self: Arc<Self>,
        mut incoming: mpsc::UnboundedReceiver<Entry>,
        shutdown: CancellationToken,
    ) {
        let mut pending = Pending::default();
        let mut not_before: Option<Instant> = None;
        let wait = Duration::from_millis(self.upload.batch_wait_ms);
        loop {
            pending.prune();
            let due = pending.oldest().map(|oldest| {
                // Nothing more is coming soon: no job is being prepared or sent, and none has
                // its bytes with the packer (each of those will hand over a session).
                let ready = pending.entries.len() >= self.upload.batch_size
                    || (self.sending() == 0 && self.packing() == 0)
                    || oldest + wait <= Instant::now();
                let at = if ready { Instant::now() } else { oldest + wait };
                not_before.map_or(at, |t| t.max(at))
            });
            let sleep = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                entry = incoming.recv() => match entry {
                    Some(entry) => pending.entries.push_back((Instant::now(), entry)),
                    None => return,
                },
                // A job stopped sending: perhaps nothing more is coming.
                _ = self.slot_freed.notified() => {}
                _ = sleep => {
                    let take = pending.entries.len().min(self.upload.batch_size);
                    let batch: Vec<_> = pending.entries.drain(..take).collect();
                    let retry = tokio::select! {
                        retry = self.commit_batch(batch) => retry,
                        _ = shutdown.cancelled() => return,
                    };
                    // Entries that met write contention go first in the next batch, after a wait.
                    if retry.is_empty() {
                        not_before = None;
                    } else {
                        not_before = Some(Instant::now() + contention_wait(&retry));
                        for entry in retry.into_iter().rev() {
                            pending.entries.push_front(entry);
                        }
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One `finish_batch_v2` call. Answers each entry's job, except those to try again (write
    /// contention, or a rate limit that refused the whole call), which are returned.
    async fn commit_batch(&self, batch: Vec<(Instant, Entry)>) -> Vec<(Instant, Entry)> {
        let args: Vec<_> = batch.iter().map(|(_, e)| e.arg.clone()).collect();
        tracing::debug!(entries = args.len(), "committing a batch");
        let result: Result<_, Step> = async {
            Ok(call!(self, |token| self
                .client
                .upload_session_finish_batch(token, &args)))
        }
        .await;
        let results = match result {
            Ok(Ok(results)) => results,
            // Refused before any work was done: the same batch goes again after Retry-After
            // (the client holds back every request until then).
            Ok(Err(e @ dropbox::Error::RateLimited { .. })) => {
                tracing::info!("batch commit of {} files: {e}", batch.len());
                return batch
                    .into_iter()
                    .map(|(at, mut entry)| {
                        entry.tries += 1;
                        (at, entry)
                    })
                    .collect();
            }
            Ok(Err(e)) => {
                let transient = e.is_transient() || matches!(e, dropbox::Error::Decode { .. });
                tracing::info!("batch commit of {} files failed: {e}", batch.len());
                for (_, entry) in batch {
                    let step = if transient {
                        Step::Transient {
                            reason: format!("committing: {e}"),
                            retry_after: e.retry_after(),
                        }
                    } else if let dropbox::Error::Auth(_) = e {
                        Step::LoggedOut
                    } else {
                        Step::Failed {
                            kind: FailureKind::Refused,
                            message: format!("{}: {e}", entry.label),
                        }
                    };
                    let _ = entry.reply.send(Outcome::Unsure(step));
                }
                return Vec::new();
            }
            Err(step) => {
                for (_, entry) in batch {
                    let _ = entry.reply.send(Outcome::Unsure(step.clone()));
                }
                return Vec::new();
            }
        };
        let mut retry = Vec::new();
        for ((at, entry), result) in batch.into_iter().zip(results) {
            match result {
                FinishBatchEntry::Success(meta) => {
                    let _ = entry.reply.send(Outcome::Landed(meta));
                }
                FinishBatchEntry::Failure(e) if dropbox::RouteError::is_transient(&e) => {
                    tracing::debug!(job = entry.job, "batch entry: {e}");
                    let mut entry = entry;
                    entry.tries += 1;
                    retry.push((at, entry));
                }
                FinishBatchEntry::Failure(e) => {
                    let _ = entry.reply.send(Outcome::Refused(e));
                }
            }
        }
        retry
    }
}

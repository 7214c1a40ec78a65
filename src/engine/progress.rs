//! Progress of a job's bytes: events throttled to a few per second per job, the offset noted
//! in the queue, and every byte counted by the throughput meter (`meter`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Engine, meter};
use crate::dropbox;
use crate::queue::{JobId, now_ms};

/// Progress of one job's bytes, throttled to a few events per second per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressEvent {
    pub job: JobId,
    pub sent: u64,
    pub total: u64,
}

/// Least time between two progress events of one job.
const PROGRESS_INTERVAL_MS: u64 = 200;

impl Engine {
    /// A progress callback for one request's body, covering bytes `base..` of `total`.
    pub(super) fn progress_for(&self, id: JobId, base: u64, total: u64) -> dropbox::Progress {
        self.shared_progress(id, base, total).request()
    }

    /// Progress of one job whose bytes from `base` on may go in several requests at once.
    pub(super) fn shared_progress(&self, id: JobId, base: u64, total: u64) -> Arc<SharedProgress> {
        let queue = self.queue.clone();
        let events = self.progress.clone();
        let last = AtomicU64::new(0);
        Arc::new(SharedProgress {
            at: AtomicU64::new(base),
            meter: self.meter.clone(),
            report: Box::new(move |at: u64| {
                let now = now_ms();
                if at < total
                    && now.saturating_sub(last.load(Ordering::Relaxed)) < PROGRESS_INTERVAL_MS
                {
                    return;
                }
                last.store(now, Ordering::Relaxed);
                queue.note_progress(id, at);
                let _ = events.send(ProgressEvent {
                    job: id,
                    sent: at,
                    total,
                });
            }),
        })
    }
}

/// One job's bytes going out, reported as progress events (a few per second) and counted by
/// the throughput meter.
pub(super) struct SharedProgress {
    /// Bytes of the job's file sent or known to be there.
    at: AtomicU64,
    meter: Arc<meter::Meter>,
    /// Reports the new count (throttled).
    report: Box<dyn Fn(u64) + Send + Sync>,
}

impl SharedProgress {
    /// Counts bytes that are there without being sent now (landed before a restart).
    pub(super) fn skip(&self, bytes: u64) {
        let at = self.at.fetch_add(bytes, Ordering::Relaxed) + bytes;
        (self.report)(at);
    }

    /// A callback for one request's body (given the bytes of it sent so far): adds what it
    /// sends to the job's count.
    pub(super) fn request(self: &Arc<Self>) -> dropbox::Progress {
        let shared = self.clone();
        let counted = AtomicU64::new(0);
        Arc::new(move |sent: u64| {
            let delta = sent.saturating_sub(counted.swap(sent, Ordering::Relaxed));
            shared.meter.add(delta);
            let at = shared.at.fetch_add(delta, Ordering::Relaxed) + delta;
            (shared.report)(at);
        })
    }
}

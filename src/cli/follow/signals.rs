//! The signals `--wait` follows, drained by a task of their own from the moment of
//! subscribing into the tally, so that a full signal queue never stalls the connection (see
//! the module above).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::Notify;

use super::screen::Screen;
use super::tally::{Phase, Tally};
use crate::cli::describe;
use crate::service::UploaderProxy;

/// The signals `--wait` follows, subscribed before `Upload` is called so nothing is missed.
pub(super) struct Streams {
    pub(super) states: crate::service::JobStateChangedStream,
    pub(super) progress: crate::service::JobProgressStream,
    pub(super) finished: crate::service::BatchFinishedStream,
    pub(super) owner: zbus::proxy::OwnerChangedStream<'static>,
}

/// Signals being drained from the moment of subscribing: whatever the caller awaits next
/// (`Upload`, a `ListJobs`, a notification) can no longer stall the connection.
pub struct Subscription {
    pub(super) tally: Arc<Mutex<Tally>>,
    pub(super) wake: Arc<Notify>,
    pub(super) drainer: tokio::task::JoinHandle<()>,
    /// Ctrl-C, listened for from before the files are handed over: one pressed while
    /// `Upload` is under way, or just after the batch id is printed, ends the wait with the
    /// words that say the uploads go on (rather than killing the process unexplained).
    pub(super) interrupt: tokio::signal::unix::Signal,
}

impl Subscription {
    pub async fn start(proxy: &UploaderProxy<'static>) -> Result<Subscription, String> {
        let streams = Streams {
            states: proxy
                .receive_job_state_changed()
                .await
                .map_err(|e| describe(&e))?,
            progress: proxy
                .receive_job_progress()
                .await
                .map_err(|e| describe(&e))?,
            finished: proxy
                .receive_batch_finished()
                .await
                .map_err(|e| describe(&e))?,
            owner: proxy
                .inner()
                .receive_owner_changed()
                .await
                .map_err(|e| describe(&e))?,
        };
        let tally = Arc::new(Mutex::new(Tally {
            batch: None,
            early_summaries: Vec::new(),
            jobs: HashMap::new(),
            seq: 0,
            summary: None,
            owner_changed: false,
            lost: false,
            said: HashSet::new(),
            screen: Screen::new(),
            meter: None,
        }));
        let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
        let wake = Arc::new(Notify::new());
        let drainer = tokio::spawn(drain(streams, tally.clone(), wake.clone()));
        Ok(Subscription {
            tally,
            wake,
            drainer,
            interrupt,
        })
    }
}

impl Subscription {
    /// Tells `meter` the batch's bytes sent and total at every change (see `Tally::meter`).
    pub fn on_progress(&self, meter: super::tally::Meter) {
        lock(&self.tally).meter = Some(meter);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.drainer.abort();
    }
}

/// Drains every signal as it comes, into the tally; never awaits anything else.
pub(super) async fn drain(streams: Streams, tally: Arc<Mutex<Tally>>, wake: Arc<Notify>) {
    let Streams {
        mut states,
        mut progress,
        mut finished,
        mut owner,
    } = streams;
    loop {
        tokio::select! {
            signal = states.next() => {
                let Some(signal) = signal else { break };
                let Ok(args) = signal.args() else { continue };
                let mut t = lock(&tally);
                if t.batch != Some(args.batch) {
                    continue;
                }
                let Some(phase) = Phase::parse(args.state) else { continue };
                t.apply(args.job, phase, args.message, true);
                if t.all_final() {
                    wake.notify_one();
                }
            }
            signal = progress.next() => {
                let Some(signal) = signal else { break };
                if let Ok(args) = signal.args() {
                    lock(&tally).progress(args.job, args.sent);
                }
            }
            signal = finished.next() => {
                let Some(signal) = signal else { break };
                let Ok(args) = signal.args() else { continue };
                let mut t = lock(&tally);
                match t.batch {
                    Some(batch) if batch == args.batch => {
                        t.summary = Some(args.summary.clone());
                        wake.notify_one();
                    }
                    // Bounded: a few other batches may end in the moment before `Upload` answers.
                    None if t.early_summaries.len() < 16 => {
                        t.early_summaries.push((args.batch, args.summary.clone()));
                    }
                    _ => {}
                }
            }
            change = owner.next() => {
                let Some(_) = change else { break };
                lock(&tally).owner_changed = true;
                wake.notify_one();
            }
        }
    }
    lock(&tally).lost = true;
    wake.notify_one();
}

pub(super) fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    // Plain data: a panic elsewhere while it was held leaves nothing half-changed that matters.
    tally.lock().unwrap_or_else(|e| e.into_inner())
}

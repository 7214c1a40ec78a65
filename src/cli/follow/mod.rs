//! `upload --wait`: following one batch to its end, whatever its size, across a daemon restart.
//!
//! The bus hands each signal subscription a bounded queue (zbus keeps 64 messages). A client
//! that stops reading its signals while it awaits something else, such as a `ListJobs` reply,
//! stalls its whole connection once a queue is full, and the reply it awaits is stuck behind
//! them: `--wait` on 100 files hung forever that way. So one task does nothing but drain the
//! signals into the batch's tally, at all times, and never awaits anything else. `ListJobs`
//! runs beside it as a resync: it catches what the bus dropped and what happened while the
//! daemon restarted, and it is what ends the wait if `BatchFinished` was missed.
//!
//! Memory is one small record per job of the batch (and at most [`MAX_BARS`] progress bars):
//! nothing queues up however fast the signals come.

mod screen;
mod signals;
mod tally;
mod warnings;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use zbus::zvariant::{OwnedValue, Value};

use super::jobs::JobView;
use super::term::{detail, warnln};
use super::{describe, term::outln};
use crate::queue::BatchSummary;
use crate::service::UploaderProxy;
use screen::short_message;
pub use signals::Subscription;
use signals::lock;
use tally::{Phase, Tally};

/// How long to wait for `BatchFinished` once every job is final, when the batch asked for a
/// shared link (the summary carries it, and making it takes a request to Dropbox).
const LINK_WAIT: Duration = Duration::from_secs(90);

/// The shortest pause between two resyncs; a large batch's `ListJobs` waits longer, so that
/// resyncing never costs the daemon more than a small share of its time.
const RESYNC_EVERY: Duration = Duration::from_secs(2);

/// How long a daemon may be off the bus (a restart) before the wait gives up.
const DAEMON_AWAY_LIMIT: Duration = Duration::from_secs(120);

/// How following a batch ended.
pub enum Followed {
    /// Every job is final: the counts from the jobs, failures, warnings and link from the
    /// daemon's summary when it came.
    Finished(BatchSummary),
    /// Ctrl-C: the batch goes on in the daemon.
    Interrupted,
}

/// Whether a failed call means the daemon is off the bus for now (stopped or restarting)
/// rather than refusing.
fn daemon_away(e: &crate::service::ServiceError) -> bool {
    use crate::service::ServiceError;
    matches!(e, ServiceError::ZBus(zbus::Error::MethodError(name, _, _)) if matches!(
        name.as_str(),
        "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply"
    ))
}

async fn list(
    proxy: &UploaderProxy<'_>,
    batch: u64,
) -> Result<Vec<JobView>, crate::service::ServiceError> {
    let filter: HashMap<String, OwnedValue> = [(
        "batch".to_string(),
        Value::from(batch).try_to_owned().expect("plain value"),
    )]
    .into();
    Ok(proxy
        .list_jobs(filter)
        .await?
        .iter()
        .map(JobView::from_dict)
        .collect())
}

/// Follows `batch` until every job is final, printing a line per file and bars for the ones in
/// flight. `want_link`: the batch asked for a shared link, which only its summary carries.
pub async fn follow(
    proxy: &UploaderProxy<'static>,
    batch: u64,
    mut subscription: Subscription,
    want_link: bool,
    json: bool,
) -> Result<Followed, String> {
    let tally = subscription.tally.clone();
    let wake = subscription.wake.clone();
    {
        let mut t = lock(&tally);
        if json {
            t.screen.lines = false;
            t.screen
                .multi
                .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        t.batch = Some(batch);
        let early = std::mem::take(&mut t.early_summaries);
        t.summary = early.into_iter().find(|(b, _)| *b == batch).map(|(_, s)| s);
    }
    let ended = watch(
        proxy,
        batch,
        &tally,
        &wake,
        want_link,
        &mut subscription.interrupt,
    )
    .await;
    drop(subscription);
    let ended = ended?;
    let t = lock(&tally);
    t.screen.overall.finish_and_clear();
    for bar in t.screen.bars.values() {
        bar.finish_and_clear();
    }
    if !ended {
        return Ok(Followed::Interrupted);
    }
    let c = t.counts();
    if !json {
        outln!(
            "{} uploaded, {} already there, {} failed, {} cancelled",
            c.uploaded,
            c.skipped,
            c.failed,
            c.cancelled
        );
    }
    // The counts are the jobs' own final states (the summary may not have come); the
    // failures, warnings and link are the daemon's summary.
    let mut summary = t
        .summary
        .as_ref()
        .map(crate::service::summary_from_dict)
        .unwrap_or_default();
    summary.done = c.uploaded + c.skipped;
    summary.skipped = c.skipped;
    summary.failed = c.failed;
    summary.cancelled = c.cancelled;
    if summary.failures.is_empty() {
        summary.failures = t
            .jobs
            .values()
            .filter(|j| j.phase == Phase::Failed)
            .map(short_message)
            .collect();
    }
    if !json {
        // Wrapped for a person reading a terminal; whole lines for a pipe.
        let width = super::term::stderr_width();
        for line in warnings::grouped(&summary.warnings, batch) {
            warnln!("{}", super::term::hanging("warning: ", &line, width));
        }
        if let Some(link) = &summary.link {
            outln!("Shared link: {link}");
        }
        if let Some(error) = &summary.link_error {
            warnln!("dbxportctl: {error}");
        }
    }
    Ok(Followed::Finished(summary))
}

/// The resync loop; true when the batch ended, false on Ctrl-C.
async fn watch(
    proxy: &UploaderProxy<'static>,
    batch: u64,
    tally: &Mutex<Tally>,
    wake: &Notify,
    want_link: bool,
    interrupt: &mut tokio::signal::unix::Signal,
) -> Result<bool, String> {
    let mut next = Instant::now();
    let mut away_since: Option<Instant> = None;
    let mut final_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                let seq = lock(tally).seq;
                let started = Instant::now();
                match list(proxy, batch).await {
                    Ok(jobs) => {
                        let took = started.elapsed().as_millis();
                        lock(tally).screen.multi.suspend(|| {
                            detail!("resync: {} jobs of batch {batch} in {took} ms", jobs.len())
                        });
                        if away_since.take().is_some() {
                            lock(tally).screen.tell("dbxportd is back: following the batch again".into());
                        }
                        let mut t = lock(tally);
                        t.resync(seq, jobs);
                        if t.jobs.is_empty() {
                            return Err(format!("batch {batch} holds no jobs (were they cleaned?)"));
                        }
                        if t.all_final() {
                            let since = *final_since.get_or_insert_with(Instant::now);
                            // Without a link to wait for, a resync that finds every job
                            // final ends the wait: BatchFinished was missed or is moot.
                            if t.summary.is_some() || !want_link || since.elapsed() > LINK_WAIT {
                                return Ok(true);
                            }
                        } else {
                            final_since = None;
                        }
                    }
                    Err(e) if daemon_away(&e) => {
                        let since = *away_since.get_or_insert_with(|| {
                            lock(tally).screen.tell(format!(
                                "dbxportd stopped; waiting for it to come back (batch {batch} stays queued)"
                            ));
                            Instant::now()
                        });
                        if since.elapsed() > DAEMON_AWAY_LIMIT {
                            return Err(format!(
                                "dbxportd has been gone for {} s: start it (systemctl --user start dbxport) \
                                 and follow batch {batch} with `dbxportctl jobs --batch {batch}`",
                                DAEMON_AWAY_LIMIT.as_secs()
                            ));
                        }
                    }
                    Err(e) => return Err(describe(&e)),
                }
                next = Instant::now() + RESYNC_EVERY.max(started.elapsed() * 20);
            }
            _ = wake.notified() => {
                let mut t = lock(tally);
                if t.lost {
                    return Err("lost the connection to the session bus".into());
                }
                if t.summary.is_some() {
                    // One last look for the final states (content hashes, names).
                    drop(t);
                    next = Instant::now();
                    continue;
                }
                if std::mem::take(&mut t.owner_changed) || t.all_final() {
                    // Soon, not at once: BatchFinished usually follows the last job's signal.
                    next = next.min(Instant::now() + Duration::from_millis(300));
                }
            }
            _ = interrupt.recv() => {
                let t = lock(tally);
                t.screen.overall.finish_and_clear();
                drop(t);
                warnln!(
                    "\nStopped following batch {batch}; its uploads go on in dbxportd. \
                     Follow them with `dbxportctl jobs --batch {batch}`, or stop them with \
                     `dbxportctl cancel {batch}`."
                );
                return Ok(false);
            }
        }
    }
}

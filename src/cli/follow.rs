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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::Notify;
use tokio::time::Instant;
use zbus::zvariant::{OwnedValue, Value};

use super::jobs::JobView;
use super::term::{self, detail, say, warnln};
use super::{describe, term::outln};
use crate::queue::BatchSummary;
use crate::service::UploaderProxy;

/// At most this many files get a bar of their own (the daemon sends a few at a time anyway).
const MAX_BARS: usize = 8;

/// How long to wait for `BatchFinished` once every job is final, when the batch asked for a
/// shared link (the summary carries it, and making it takes a request to Dropbox).
const LINK_WAIT: Duration = Duration::from_secs(90);

/// The shortest pause between two resyncs; a large batch's `ListJobs` waits longer, so that
/// resyncing never costs the daemon more than a small share of its time.
const RESYNC_EVERY: Duration = Duration::from_secs(2);

/// How long a daemon may be off the bus (a restart) before the wait gives up.
const DAEMON_AWAY_LIMIT: Duration = Duration::from_secs(120);

/// The signals `--wait` follows, subscribed before `Upload` is called so nothing is missed.
struct Streams {
    states: crate::service::JobStateChangedStream,
    progress: crate::service::JobProgressStream,
    finished: crate::service::BatchFinishedStream,
    owner: zbus::proxy::OwnerChangedStream<'static>,
}

/// Signals being drained from the moment of subscribing: whatever the caller awaits next
/// (`Upload`, a `ListJobs`, a notification) can no longer stall the connection.
pub struct Subscription {
    tally: Arc<Mutex<Tally>>,
    wake: Arc<Notify>,
    drainer: tokio::task::JoinHandle<()>,
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
        }));
        let wake = Arc::new(Notify::new());
        let drainer = tokio::spawn(drain(streams, tally.clone(), wake.clone()));
        Ok(Subscription {
            tally,
            wake,
            drainer,
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.drainer.abort();
    }
}

/// A job's state as the daemon names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Queued,
    Preparing,
    Uploading,
    Committing,
    Waiting,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    fn parse(name: &str) -> Option<Phase> {
        Some(match name {
            "queued" => Phase::Queued,
            "preparing" => Phase::Preparing,
            "uploading" => Phase::Uploading,
            "committing" => Phase::Committing,
            "waiting" => Phase::Waiting,
            "done" => Phase::Done,
            "failed" => Phase::Failed,
            "cancelled" => Phase::Cancelled,
            _ => return None,
        })
    }

    fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled)
    }
}

/// One job of the batch, as small as it can be.
struct Tracked {
    phase: Phase,
    size: u64,
    sent: u64,
    /// The local path, to cut it out of the daemon's messages (the name says it shorter).
    source: Box<str>,
    /// The file name, as shown.
    name: Box<str>,
    skipped: bool,
    /// Why it failed (or why it waits).
    message: Box<str>,
    /// Where it landed, when Dropbox stored it under another name.
    stored_as: Option<Box<str>>,
    /// The final state whose line was printed: a late or repeated signal does not print it
    /// twice.
    printed: Option<Phase>,
    /// The tally's signal count when a signal last touched this job: a `ListJobs` answer
    /// older than that is stale for it.
    signal_seq: u64,
}

/// What has been learnt about the batch; shared by the draining task and the resync.
struct Tally {
    /// None until `Upload` has answered.
    batch: Option<u64>,
    /// Batch ends heard before the batch's id was known (a tiny batch can end that fast).
    early_summaries: Vec<(u64, HashMap<String, OwnedValue>)>,
    jobs: HashMap<u64, Tracked>,
    /// Signals applied so far.
    seq: u64,
    summary: Option<HashMap<String, OwnedValue>>,
    /// The daemon came back (or went): resync now.
    owner_changed: bool,
    /// A signal stream ended: the connection to the bus is gone.
    lost: bool,
    /// Waiting reasons already told, so that an outage is one line, not one per file and try.
    said: HashSet<String>,
    /// Nothing is drawn before the first resync has found the batch's jobs.
    screen: Screen,
}

/// Bars on stderr (when it is a terminal) and result lines on stdout.
struct Screen {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<u64, ProgressBar>,
    /// Columns for result lines (None: not a terminal, lines are not cut).
    width: Option<usize>,
    /// Result lines on stdout (not with `--json`, whose one object says it all).
    lines: bool,
}

impl Screen {
    fn new() -> Screen {
        let multi = MultiProgress::new();
        if term::verbosity() == term::Verbosity::Quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Screen {
            multi,
            overall,
            bars: HashMap::new(),
            width: term::width(),
            lines: true,
        }
    }

    /// Prints a result line above the bars.
    fn line(&self, line: String) {
        if self.lines {
            self.multi.suspend(|| outln!("{line}"));
        }
    }

    /// Tells something along the way (stderr) above the bars.
    fn tell(&self, line: String) {
        self.multi.suspend(|| say!("{line}"));
    }

    /// A name cut to fit a line that spends `used` columns on other things.
    fn fit<'a>(&self, name: &'a str, used: usize) -> std::borrow::Cow<'a, str> {
        match self.width {
            Some(width) => term::shorten(name, width.saturating_sub(used).max(12)),
            None => std::borrow::Cow::Borrowed(name),
        }
    }
}

impl Tally {
    fn all_final(&self) -> bool {
        !self.jobs.is_empty() && self.jobs.values().all(|j| j.phase.is_final())
    }

    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for job in self.jobs.values() {
            match job.phase {
                Phase::Done if job.skipped => c.skipped += 1,
                Phase::Done => c.uploaded += 1,
                Phase::Failed => c.failed += 1,
                Phase::Cancelled => c.cancelled += 1,
                _ => {}
            }
        }
        c
    }

    /// A job moved, as a signal or a resync says.
    fn apply(&mut self, id: u64, phase: Phase, message: &str, from_signal: bool) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if from_signal {
            self.seq += 1;
            job.signal_seq = self.seq;
            // Out of a final state a job only goes back to the start (a retry); anything else
            // is an older signal overtaken by a resync.
            if job.phase.is_final() && !phase.is_final() && phase != Phase::Queued {
                return;
            }
        }
        job.phase = phase;
        if matches!(phase, Phase::Failed | Phase::Waiting) {
            job.message = message.into();
        }
        if phase == Phase::Done {
            job.sent = job.size;
        }
        let in_flight = matches!(phase, Phase::Uploading | Phase::Committing);
        if !in_flight && let Some(bar) = self.screen.bars.remove(&id) {
            bar.finish_and_clear();
            self.screen.multi.remove(&bar);
        }
        if in_flight && !self.screen.bars.contains_key(&id) && self.screen.bars.len() < MAX_BARS {
            let bar = self
                .screen
                .multi
                .insert_after(&self.screen.overall, ProgressBar::new(job.size));
            bar.set_style(
                ProgressStyle::with_template("  {wide_msg} [{bar:20}] {bytes}/{total_bytes}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(job.name.to_string());
            bar.set_position(job.sent);
            self.screen.bars.insert(id, bar);
        }
        if phase.is_final() && job.printed != Some(phase) {
            job.printed = Some(phase);
            let line = result_line(job, &self.screen);
            self.screen.line(line);
        }
        if phase == Phase::Waiting {
            let reason =
                term::clean(&super::stalls::plain_cause(&job.message, &job.source)).into_owned();
            // Bounded: an outage has a handful of causes, not one per file.
            if self.said.len() < 64 && self.said.insert(reason.clone()) {
                self.screen.tell(format!("waiting: {reason}"));
            }
        }
        self.refresh();
    }

    fn progress(&mut self, id: u64, sent: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.sent = sent.min(job.size);
        if let Some(bar) = self.screen.bars.get(&id) {
            bar.set_position(job.sent);
        }
        self.refresh();
    }

    fn refresh(&self) {
        let sent: u64 = self.jobs.values().map(|j| j.sent).sum();
        self.screen.overall.set_position(sent);
        let c = self.counts();
        let finished = c.uploaded + c.skipped + c.failed + c.cancelled;
        let mut msg = format!("{finished}/{} files", self.jobs.len());
        if c.failed > 0 {
            msg.push_str(&format!(", {} failed", c.failed));
        }
        self.screen.overall.set_message(msg);
    }

    /// A `ListJobs` answer that was asked for when `seq` signals had been applied.
    fn resync(&mut self, seq: u64, jobs: Vec<JobView>) {
        let mut added = false;
        for view in jobs {
            let Some(phase) = Phase::parse(&view.state) else {
                continue;
            };
            match self.jobs.get_mut(&view.id) {
                Some(job) => {
                    if job.signal_seq > seq {
                        // A signal came after this answer was made: it is newer.
                        continue;
                    }
                    job.skipped = view.skipped;
                    job.sent = view.sent;
                    job.stored_as = stored_as(&view);
                }
                None => {
                    added = true;
                    self.jobs.insert(view.id, tracked(&view, phase));
                }
            }
            self.apply(view.id, phase, &view.message, false);
        }
        if added {
            let total = self.jobs.values().map(|j| j.size).sum();
            self.screen.overall.set_length(total);
            self.refresh();
        }
    }
}

/// The new name Dropbox gave a file, when it is not the one asked for.
fn stored_as(view: &JobView) -> Option<Box<str>> {
    let stored = view.stored_path.as_deref()?;
    (!stored.eq_ignore_ascii_case(&view.remote_path))
        .then(|| stored.rsplit('/').next().unwrap_or(stored).into())
}

fn tracked(view: &JobView, phase: Phase) -> Tracked {
    Tracked {
        // Not yet applied: `apply` prints and draws from here.
        phase: if phase.is_final() {
            Phase::Queued
        } else {
            phase
        },
        size: view.size,
        sent: view.sent,
        source: view.source.as_str().into(),
        name: term::clean(&super::jobs::file_name(&view.source)).into(),
        skipped: view.skipped,
        message: Box::from(""),
        stored_as: stored_as(view),
        printed: None,
        signal_seq: 0,
    }
}

/// The daemon's message about a job, with its long local path cut to the file's name.
fn short_message(job: &Tracked) -> String {
    let text = if job.source.is_empty() {
        job.message.to_string()
    } else {
        job.message.replace(&*job.source, &job.name)
    };
    term::clean(&text).into_owned()
}

fn result_line(job: &Tracked, screen: &Screen) -> String {
    match job.phase {
        Phase::Done if job.skipped => format!(
            "exists    {} (already in Dropbox)",
            screen.fit(&job.name, 31)
        ),
        Phase::Done => match &job.stored_as {
            Some(stored) => format!(
                "done      {} → {}",
                screen.fit(&job.name, 14 + stored.chars().count().min(30)),
                term::clean(stored)
            ),
            None => format!("done      {}", screen.fit(&job.name, 10)),
        },
        Phase::Failed => {
            let message = short_message(job);
            if message.starts_with(&*job.name) {
                format!("failed    {message}")
            } else {
                format!("failed    {}: {message}", job.name)
            }
        }
        _ => format!("cancelled {}", screen.fit(&job.name, 10)),
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub uploaded: u32,
    pub skipped: u32,
    pub failed: u32,
    pub cancelled: u32,
}

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

/// Drains every signal as it comes, into the tally; never awaits anything else.
async fn drain(streams: Streams, tally: Arc<Mutex<Tally>>, wake: Arc<Notify>) {
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

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    // Plain data: a panic elsewhere while it was held leaves nothing half-changed that matters.
    tally.lock().unwrap_or_else(|e| e.into_inner())
}

/// Follows `batch` until every job is final, printing a line per file and bars for the ones in
/// flight. `want_link`: the batch asked for a shared link, which only its summary carries.
pub async fn follow(
    proxy: &UploaderProxy<'static>,
    batch: u64,
    subscription: Subscription,
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
    let ended = watch(proxy, batch, &tally, &wake, want_link).await;
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
        for warning in &summary.warnings {
            warnln!("warning: {warning}");
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
) -> Result<bool, String> {
    let mut next = Instant::now();
    let mut away_since: Option<Instant> = None;
    let mut final_since: Option<Instant> = None;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
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
            _ = &mut interrupt => {
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

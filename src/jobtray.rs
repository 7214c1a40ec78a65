//! Transfers in Plasma's job tray (the progress entries Dolphin's copies show), one entry per
//! batch — an `Upload` call or a watch folder's flush — with bytes, files, speed and a cancel
//! and a pause button.
//!
//! The protocol is kjobwidgets' `KUiServerV2JobTracker`: `org.kde.JobViewServerV2.requestView`
//! on `org.kde.JobViewServer` (owned by plasmashell, formerly kuiserver) returns a view object
//! implementing `org.kde.JobViewV3`, driven with `update(a{sv})` (keys `percent`,
//! `processedBytes`, `totalBytes`, `processedFiles`, `totalFiles`, `speed`, `infoMessage`,
//! `title`, `descriptionLabel1`/`descriptionValue1`, `suspended`) and ended with
//! `terminate(errorCode, errorMessage, hints)`. Its `cancelRequested` cancels the batch's
//! unfinished jobs; `suspendRequested`/`resumeRequested` pause and resume the whole queue
//! (the queue pauses as a whole, so that is what the button can honestly do).
//!
//! A watch folder's batch held by a policy (metered connection, battery) says so in its
//! entry's info line until the hold ends.
//!
//! Updates go out at most every [`UPDATE_INTERVAL`] per entry, whatever the number of files.
//! No job tray on the bus (GNOME, a headless session) means no entry: the server's presence is
//! checked when a batch starts, so one that appears later is used for the next batches, and
//! nothing is ever started by D-Bus activation on our behalf.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use zbus::zvariant::{OwnedObjectPath, Value};

use crate::engine::{BatchFinished, Engine, ProgressEvent};
use crate::policy::Hold;
use crate::queue::{BatchId, BatchSummary, Job, JobId, Queue};

/// The bus name KDE's job trackers talk to.
pub const SERVER_NAME: &str = "org.kde.JobViewServer";

/// Least time between two updates of one entry.
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(250);

/// `KJob::KilledJobError`: Plasma shows a cancelled job as cancelled, not as failed.
const KILLED: u32 = 1;
/// `KJob::UserDefinedError`: the entry shows the message as the job's error.
const FAILED: u32 = 100;

/// The user may cancel (1) and suspend/resume (2) the job.
const CAPABILITIES: i32 = 0x1 | 0x2;

#[zbus::proxy(
    interface = "org.kde.JobViewServerV2",
    default_service = "org.kde.JobViewServer",
    default_path = "/JobViewServer",
    gen_blocking = false
)]
pub trait JobViewServerV2 {
    #[zbus(name = "requestView")]
    fn request_view(
        &self,
        desktop_entry: &str,
        capabilities: i32,
        hints: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.kde.JobViewV3",
    default_service = "org.kde.JobViewServer",
    gen_blocking = false
)]
pub trait JobViewV3 {
    #[zbus(name = "update", no_reply)]
    fn update(&self, properties: HashMap<&str, Value<'_>>) -> zbus::Result<()>;

    #[zbus(name = "terminate", no_reply)]
    fn terminate(
        &self,
        error_code: u32,
        error_message: &str,
        hints: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;

    #[zbus(signal, name = "cancelRequested")]
    fn cancel_requested(&self) -> zbus::Result<()>;

    #[zbus(signal, name = "suspendRequested")]
    fn suspend_requested(&self) -> zbus::Result<()>;

    #[zbus(signal, name = "resumeRequested")]
    fn resume_requested(&self) -> zbus::Result<()>;
}

/// What the user asked of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Cancel,
    Suspend,
    Resume,
}

/// One job's share of its batch's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Share {
    /// Bytes to send: the source's size, or the prepared file's once its upload reports it.
    size: u64,
    sent: u64,
    finished: bool,
}

impl Share {
    fn of(job: &Job) -> Share {
        Share {
            size: job.source_size,
            sent: job.bytes_sent.min(job.source_size),
            finished: job.state.is_terminal(),
        }
    }
}

/// A batch's figures as the tray shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub processed_bytes: u64,
    pub total_bytes: u64,
    pub processed_files: u64,
    pub total_files: u64,
    pub percent: u32,
}

fn figures<'a>(shares: impl Iterator<Item = &'a Share>) -> Figures {
    let mut f = Figures {
        processed_bytes: 0,
        total_bytes: 0,
        processed_files: 0,
        total_files: 0,
        percent: 0,
    };
    for share in shares {
        f.total_bytes += share.size;
        f.total_files += 1;
        if share.finished {
            f.processed_bytes += share.size;
            f.processed_files += 1;
        } else {
            f.processed_bytes += share.sent.min(share.size);
        }
    }
    f.percent = if f.total_files > 0 && f.processed_files == f.total_files {
        100
    } else {
        // Not 100 until every file is final: the last commit is still to come.
        (f.processed_bytes * 100)
            .checked_div(f.total_bytes)
            .map_or(0, |p| (p as u32).min(99))
    };
    f
}

/// How an entry ends: `terminate`'s error code and message.
pub fn ending(summary: &BatchSummary) -> (u32, String) {
    if summary.failed > 0 {
        let total = summary.done + summary.failed + summary.cancelled;
        let mut message = format!("{} of {total} could not be sent", summary.failed);
        if let Some(first) = summary.failures.first() {
            message.push_str(&format!(": {first}"));
        }
        (FAILED, message)
    } else if summary.cancelled > 0 && summary.done == 0 {
        (KILLED, String::new())
    } else {
        (0, String::new())
    }
}

/// The line under an entry's title: how many photos go where, and why they wait if a policy
/// holds them.
pub fn info_message(folder: &str, files: usize, hold: Hold) -> String {
    let folder = if folder.is_empty() { "/" } else { folder };
    let files = crate::notifications::photos(files as u32);
    match hold {
        Hold::None => format!("{files} to {folder}"),
        hold => format!("{files} to {folder} — waiting: {}", hold.reason()),
    }
}

/// What an entry says about its batch: the title, how many photos go where.
fn about(folder: &str, info: String) -> HashMap<&'static str, Value<'static>> {
    let folder = if folder.is_empty() { "/" } else { folder };
    HashMap::from([
        ("title", Value::from("Uploading to Dropbox")),
        ("infoMessage", Value::from(info)),
        ("descriptionLabel1", Value::from("Destination")),
        (
            "descriptionValue1",
            Value::from(format!("Dropbox:{folder}")),
        ),
    ])
}

/// A batch shown in the tray.
struct Entry {
    view: JobViewV3Proxy<'static>,
    shares: HashMap<JobId, Share>,
    /// Changed since the last update.
    dirty: bool,
    /// Ends the task that listens to the entry's buttons.
    buttons: CancellationToken,
    /// A watch folder's batch, which policies may hold.
    automatic: bool,
    folder: String,
}

impl Entry {
    async fn show_suspended(&self, paused: bool) {
        let mut props: HashMap<&str, Value<'_>> = HashMap::new();
        props.insert("suspended", Value::from(paused));
        if let Err(e) = self.view.update(props).await {
            tracing::debug!("job tray update: {e}");
        }
    }

    async fn send(&mut self, speed: u64) {
        let f = figures(self.shares.values());
        let mut props: HashMap<&str, Value<'_>> = HashMap::new();
        props.insert("percent", Value::from(f.percent));
        props.insert("processedBytes", Value::from(f.processed_bytes));
        props.insert("totalBytes", Value::from(f.total_bytes));
        props.insert("processedFiles", Value::from(f.processed_files));
        props.insert("totalFiles", Value::from(f.total_files));
        props.insert("speed", Value::from(speed));
        if let Err(e) = self.view.update(props).await {
            tracing::debug!("job tray update: {e}");
        }
        self.dirty = false;
    }

    /// Says whether (and why) a watch batch waits.
    async fn tell_hold(&self, hold: Hold) {
        let info = info_message(&self.folder, self.shares.len(), hold);
        let props = HashMap::from([("infoMessage", Value::from(info))]);
        if let Err(e) = self.view.update(props).await {
            tracing::debug!("job tray update: {e}");
        }
    }
}

/// Shows every batch in the job tray, while one runs, until `shutdown`.
pub async fn run(
    conn: zbus::Connection,
    queue: Queue,
    engine: Arc<Engine>,
    mut hold: watch::Receiver<Hold>,
    shutdown: CancellationToken,
) {
    let (requests, mut requested) = mpsc::unbounded_channel();
    let mut tray = Tray {
        conn,
        hold: *hold.borrow_and_update(),
        queue: queue.clone(),
        entries: HashMap::new(),
        batch_of: HashMap::new(),
        unshown: HashSet::new(),
        requests,
    };
    let mut events = queue.subscribe();
    let mut progress = engine.subscribe_progress();
    let mut batches = engine.subscribe_batches();
    let mut tick = tokio::time::interval(UPDATE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hold_alive = true;
    // Paused from the tray, over D-Bus or by dbxportctl: every entry shows it.
    let mut paused = queue.watch_paused();
    let mut paused_alive = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => tray.job_changed(&event.job).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            p = progress.recv() => match p {
                Ok(p) => tray.progress(p),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            finished = batches.recv() => match finished {
                Ok(finished) => tray.finished(&finished, engine.throughput()).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            Some((batch, request)) = requested.recv() => tray.requested(batch, request).await,
            changed = hold.changed(), if hold_alive => match changed {
                Ok(()) => {
                    tray.hold = *hold.borrow_and_update();
                    for entry in tray.entries.values().filter(|e| e.automatic) {
                        entry.tell_hold(tray.hold).await;
                    }
                }
                Err(_) => hold_alive = false,
            },
            changed = paused.changed(), if paused_alive => match changed {
                Ok(()) => {
                    let now = *paused.borrow_and_update();
                    tray.show_suspended(now).await;
                }
                Err(_) => paused_alive = false,
            },
            _ = tick.tick(), if tray.entries.values().any(|e| e.dirty) => {
                let speed = engine.throughput();
                for entry in tray.entries.values_mut().filter(|e| e.dirty) {
                    entry.send(speed).await;
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    // Entries left would stay in the tray for good.
    for (_, entry) in tray.entries.drain() {
        entry.buttons.cancel();
        let _ = entry.view.terminate(KILLED, "", HashMap::new()).await;
    }
}

struct Tray {
    conn: zbus::Connection,
    /// The policy hold now: watch batches say they wait.
    hold: Hold,
    queue: Queue,
    entries: HashMap<BatchId, Entry>,
    batch_of: HashMap<JobId, BatchId>,
    /// Batches seen while no job tray ran: they stay out of it.
    unshown: HashSet<BatchId>,
    /// Buttons pressed, from each entry's listener.
    requests: mpsc::UnboundedSender<(BatchId, Request)>,
}

impl Tray {
    async fn job_changed(&mut self, job: &Job) {
        if let Some(entry) = self.entries.get_mut(&job.batch) {
            let share = entry.shares.entry(job.id).or_default();
            let size = share.size.max(job.source_size);
            *share = Share {
                size,
                sent: share.sent.max(job.bytes_sent).min(size),
                finished: job.state.is_terminal(),
            };
            entry.dirty = true;
            return;
        }
        if job.state.is_terminal() || self.unshown.contains(&job.batch) {
            return;
        }
        self.show(job.batch).await;
    }

    fn progress(&mut self, p: ProgressEvent) {
        let Some(batch) = self.batch_of.get(&p.job) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(batch) {
            let share = entry.shares.entry(p.job).or_default();
            share.size = p.total;
            share.sent = p.sent.min(p.total);
            entry.dirty = true;
        }
    }

    /// A new batch: an entry for it, if a job tray is there.
    async fn show(&mut self, batch: BatchId) {
        let Ok(Some(record)) = self.queue.batch(batch) else {
            return;
        };
        // Each job's share, read one at a time: a batch of 20,000 is not held as jobs here.
        let mut shares = HashMap::with_capacity(record.jobs.len());
        let (mut automatic, mut open) = (false, false);
        for id in &record.jobs {
            if let Ok(Some(job)) = self.queue.get(*id) {
                automatic |= job.origin.is_some();
                open |= !job.state.is_terminal();
                shares.insert(job.id, Share::of(&job));
            }
        }
        // Over already (its events came after its end): nothing to show.
        if !open {
            return;
        }
        let hold = if automatic { self.hold } else { Hold::None };
        let info = info_message(&record.remote_folder, shares.len(), hold);
        let Some((view, clicks)) = self.request_view(&record.remote_folder, info).await else {
            self.unshown.insert(batch);
            return;
        };
        let stop = CancellationToken::new();
        if let Some(clicks) = clicks {
            tokio::spawn(listen(clicks, batch, self.requests.clone(), stop.clone()));
        }
        for id in shares.keys() {
            self.batch_of.insert(*id, batch);
        }
        let mut entry = Entry {
            view,
            shares,
            dirty: false,
            buttons: stop,
            automatic,
            folder: record.remote_folder.clone(),
        };
        entry.send(0).await;
        if self.queue.paused() {
            entry.show_suspended(true).await;
        }
        self.entries.insert(batch, entry);
    }

    /// A view for a batch's entry, with its buttons' clicks (None if they cannot be heard: the
    /// entry still shows the progress), listened to before the entry is first updated, so a
    /// click that comes as soon as it shows is not lost.
    async fn request_view(
        &self,
        folder: &str,
        info: String,
    ) -> Option<(JobViewV3Proxy<'static>, Option<Clicks>)> {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await.ok()?;
        let name = zbus::names::BusName::try_from(SERVER_NAME).ok()?;
        if !dbus.name_has_owner(name).await.unwrap_or(false) {
            tracing::debug!("no job tray ({SERVER_NAME} is not on the bus)");
            return None;
        }
        let server = JobViewServerV2Proxy::new(&self.conn).await.ok()?;
        let about = about(folder, info);
        let mut hints = about.clone();
        // The delay before showing is ours to decide (kjobwidgets does the same).
        hints.insert("immediate", Value::from(true));
        let path = match server.request_view("dbxport", CAPABILITIES, hints).await {
            Ok(path) => path,
            Err(e) => {
                tracing::debug!("the job tray refused a view: {e}");
                return None;
            }
        };
        let view = JobViewV3Proxy::builder(&self.conn)
            .path(path)
            .ok()?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .ok()?;
        let clicks = buttons(&view)
            .await
            .inspect_err(|e| tracing::debug!("job tray buttons: {e}"))
            .ok();
        // The same as an update: servers before Plasma 5.22 ignore the hints.
        let _ = view.update(about).await;
        Some((view, clicks))
    }

    async fn finished(&mut self, finished: &BatchFinished, speed: u64) {
        self.unshown.remove(&finished.batch);
        let Some(mut entry) = self.entries.remove(&finished.batch) else {
            return;
        };
        entry.buttons.cancel();
        self.batch_of.retain(|_, b| *b != finished.batch);
        // Every job is final now, whatever events are still on their way.
        for share in entry.shares.values_mut() {
            share.finished = true;
        }
        entry.send(speed).await;
        let (code, message) = ending(&finished.summary);
        if let Err(e) = entry.view.terminate(code, &message, HashMap::new()).await {
            tracing::debug!("job tray terminate: {e}");
        }
    }

    async fn requested(&mut self, batch: BatchId, request: Request) {
        let outcome = match request {
            Request::Cancel => self.queue.cancel(batch).await.map(|_| ()),
            // D-Bus clients hear of it through `Paused`, which follows the queue's switch.
            Request::Suspend | Request::Resume => {
                self.queue.set_paused(request == Request::Suspend).await
            }
        };
        match outcome {
            Ok(()) => tracing::info!("job tray: {request:?} for batch {batch}"),
            Err(e) => tracing::warn!("job tray: {request:?} for batch {batch}: {e}"),
        }
    }

    /// Every entry shows the queue paused or running.
    async fn show_suspended(&self, paused: bool) {
        for entry in self.entries.values() {
            entry.show_suspended(paused).await;
        }
    }
}

/// An entry's button clicks, as requests.
type Clicks = futures_util::stream::BoxStream<'static, Request>;

/// The entry's buttons as one stream of requests.
async fn buttons(view: &JobViewV3Proxy<'static>) -> zbus::Result<Clicks> {
    let (cancel, suspend, resume) = (
        view.receive_cancel_requested().await?,
        view.receive_suspend_requested().await?,
        view.receive_resume_requested().await?,
    );
    Ok(futures_util::stream::select_all([
        cancel.map(|_| Request::Cancel).boxed(),
        suspend.map(|_| Request::Suspend).boxed(),
        resume.map(|_| Request::Resume).boxed(),
    ])
    .boxed())
}

/// Forwards an entry's buttons until it ends.
async fn listen(
    mut buttons: Clicks,
    batch: BatchId,
    requests: mpsc::UnboundedSender<(BatchId, Request)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            Some(request) = buttons.next() => {
                if requests.send((batch, request)).is_err() {
                    return;
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(size: u64, sent: u64, finished: bool) -> Share {
        Share {
            size,
            sent,
            finished,
        }
    }

    #[test]
    fn figures_count_finished_files_whole_and_others_by_bytes_sent() {
        let f = figures([share(100, 0, true), share(300, 150, false)].iter());
        assert_eq!(f.processed_bytes, 250);
        assert_eq!(f.total_bytes, 400);
        assert_eq!((f.processed_files, f.total_files), (1, 2));
        assert_eq!(f.percent, 62);
    }

    #[test]
    fn a_hundred_percent_only_when_every_file_is_final() {
        // All bytes sent, the commit still to come.
        let f = figures([share(100, 100, false)].iter());
        assert_eq!(f.percent, 99);
        let f = figures([share(100, 100, true), share(0, 0, true)].iter());
        assert_eq!(f.percent, 100);
        assert_eq!(figures([].iter()).percent, 0);
    }

    #[test]
    fn a_held_batch_says_why_it_waits() {
        assert_eq!(info_message("", 1, Hold::None), "1 photo to /");
        assert_eq!(
            info_message("/Camera", 3, Hold::Metered),
            "3 photos to /Camera — waiting: metered connection"
        );
    }

    #[test]
    fn endings_tell_failures_and_cancels_apart() {
        let ok = BatchSummary {
            done: 3,
            ..Default::default()
        };
        assert_eq!(ending(&ok), (0, String::new()));
        let cancelled = BatchSummary {
            cancelled: 3,
            ..Default::default()
        };
        assert_eq!(ending(&cancelled), (KILLED, String::new()));
        let failed = BatchSummary {
            done: 1,
            failed: 1,
            failures: vec!["/p/a.jpg: permission denied".into()],
            ..Default::default()
        };
        assert_eq!(
            ending(&failed),
            (
                FAILED,
                "1 of 2 could not be sent: /p/a.jpg: permission denied".into()
            )
        );
    }
}

//! `dbxportctl upload`: checks the files, hands them to the daemon, and with `--wait` follows
//! them to the end with a progress bar per file in flight and one for the batch.
//!
//! Files that cannot be uploaded (missing, a directory) are reported one by one and left out,
//! so the rest still go; the exit code then says some were refused. Waiting follows the
//! daemon's `JobStateChanged`/`JobProgress` signals, subscribed before `Upload` is called so
//! nothing is missed; a periodic `ListJobs` re-syncs in case the bus dropped signals.
//!
//! File-manager menus run it with `--notify`: there is no terminal to read, so what went wrong
//! before the daemon took the files, and (with `--wait`) how the batch ended, also goes out as
//! desktop notifications. `--copy-link` waits for the batch's shared link and puts it on the
//! clipboard.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use zbus::zvariant::{OwnedValue, Value};

use super::jobs::{JobView, fetch};
use super::{Exit, UploadArgs, describe, report};
use crate::notifications::{Display, Notice, notice_for, photos};
use crate::prepare;
use crate::queue::BatchSummary;
use crate::service::UploaderProxy;

pub async fn run(conn: &zbus::Connection, args: UploadArgs) -> Result<Exit, String> {
    let mut options = args.export.to_options();
    // A link to copy needs a link, and the batch's end to have it.
    if args.copy_link {
        options.insert("share_link".into(), OwnedValue::from(true));
    }
    let wait = args.wait || args.copy_link;
    let notices = args.notify.then(|| Notices::new(conn));
    let to = args.to.as_deref();
    let sent = match send_batch_with(conn, &args.files, to, options, wait, notices.as_ref()).await {
        Ok(sent) => sent,
        Err(message) => {
            if let Some(notices) = &notices {
                notices.failed(&message).await;
            }
            return Err(message);
        }
    };
    let (exit, copied) = finish(&sent, args.copy_link).await;
    if let Some(notices) = &notices {
        notices.outcome(&sent, exit, copied).await;
    }
    Ok(exit)
}

/// Queues `files` (and follows them when `wait`); shared with `dbxportctl demo`.
pub async fn send(
    conn: &zbus::Connection,
    files: &[PathBuf],
    to: Option<&str>,
    options: HashMap<String, OwnedValue>,
    wait: bool,
) -> Result<Exit, String> {
    let sent = send_batch_with(conn, files, to, options, wait, None).await?;
    Ok(sent.exit())
}

/// What became of an upload request.
#[derive(Debug, Default)]
struct Sent {
    /// Files left out before asking the daemon, each with the reason.
    refused: Vec<String>,
    /// The batch and how many jobs it holds (None: nothing was queued).
    batch: Option<(u64, u32)>,
    /// The Dropbox folder the batch went to (the configured default when none was given);
    /// found out only for notices.
    folder: String,
    /// With `wait`: the batch's end, as the daemon summed it up.
    finished: Option<BatchSummary>,
}

impl Sent {
    fn exit(&self) -> Exit {
        let outcome = match &self.finished {
            Some(s) if s.failed > 0 => Exit::JobsFailed,
            Some(s) if s.cancelled > 0 => Exit::Cancelled,
            _ => Exit::Ok,
        };
        if (!self.refused.is_empty() || self.batch.is_none()) && outcome == Exit::Ok {
            Exit::JobsFailed
        } else {
            outcome
        }
    }
}

/// Checks `files`, queues what can go (telling `notices` once they are queued), and with
/// `wait` follows the batch to its end.
async fn send_batch_with(
    conn: &zbus::Connection,
    files: &[PathBuf],
    to: Option<&str>,
    options: HashMap<String, OwnedValue>,
    wait: bool,
    notices: Option<&Notices<'_>>,
) -> Result<Sent, String> {
    let mut sent = Sent::default();
    let mut paths = Vec::new();
    for file in files {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        match prepare::check_source(&absolute) {
            Ok(_) => paths.push(absolute),
            Err(e) => {
                report(&e);
                sent.refused.push(e.to_string());
            }
        }
    }
    if paths.is_empty() {
        report("nothing to upload");
        return Ok(sent);
    }
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let streams = if wait {
        Some(Streams::subscribe(&proxy).await?)
    } else {
        None
    };
    let folder = to.unwrap_or("").to_string();
    // A D-Bus string cannot hold a name that is not UTF-8: such a batch goes as bytes.
    let queued = match paths.iter().map(|p| p.to_str()).collect::<Option<Vec<_>>>() {
        Some(texts) => {
            let texts = texts.into_iter().map(str::to_owned).collect();
            proxy.upload(texts, folder, options).await
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            let bytes = paths.iter().map(|p| p.as_os_str().as_bytes().to_vec());
            proxy.upload_paths(bytes.collect(), folder, options).await
        }
    };
    let (batch, ids) = queued.map_err(|e| describe(&e))?;
    eprintln!("queued {} file(s) as batch {batch}", ids.len());
    sent.batch = Some((batch, ids.len() as u32));
    if let Some(notices) = notices {
        sent.folder = match to {
            Some(folder) => folder.to_string(),
            // The daemon chose the folder (its configured default): its jobs say which.
            None => fetch(&proxy, &[("batch", Value::from(batch))])
                .await?
                .first()
                .and_then(|job| job.remote_path.rsplit_once('/'))
                .map(|(folder, _)| folder.to_string())
                .unwrap_or_default(),
        };
        notices.queued(&sent).await;
    }
    if let Some(streams) = streams {
        sent.finished = Some(follow(&proxy, batch, streams).await?);
    }
    Ok(sent)
}

/// With `copy_link`, puts the batch's link on the clipboard. The exit code, and with
/// `copy_link` whether the link is on the clipboard: a link that could not be made or copied
/// fails the run (1) when nothing else did, since the link is what was asked for.
async fn finish(sent: &Sent, copy_link: bool) -> (Exit, Option<bool>) {
    let exit = sent.exit();
    if !copy_link || sent.batch.is_none() {
        return (exit, None);
    }
    let copied = match sent.finished.as_ref().and_then(|s| s.link.as_deref()) {
        Some(link) => {
            let copied = crate::notifications::copy_to_clipboard(link).await;
            if copied {
                eprintln!("link copied to the clipboard");
            } else {
                report("cannot copy the link: none of wl-copy, xclip or xsel worked");
            }
            copied
        }
        // `follow` has said why.
        None => false,
    };
    let exit = if !copied && exit == Exit::Ok {
        Exit::Error
    } else {
        exit
    };
    (exit, Some(copied))
}

/// `--notify`: what a file manager's user, who has no terminal, is told.
struct Notices<'a> {
    conn: &'a zbus::Connection,
    /// The "on its way" notice, which the outcome replaces.
    queued: std::sync::atomic::AtomicU32,
}

impl<'a> Notices<'a> {
    fn new(conn: &'a zbus::Connection) -> Notices<'a> {
        Notices {
            conn,
            queued: Default::default(),
        }
    }

    async fn show(&self, notice: Notice, display: Display) -> u32 {
        // No notification server (a headless session): stderr has said it all already.
        crate::notifications::show(self.conn, &notice, display)
            .await
            .unwrap_or(0)
    }

    /// The request failed as a whole: the daemon is unreachable or refused the call.
    async fn failed(&self, message: &str) {
        let notice = Notice {
            summary: "Photos not sent to Dropbox".into(),
            body: message.to_string(),
            actions: vec![],
            urgent: true,
        };
        self.show(notice, self.replacing()).await;
    }

    fn replacing(&self) -> Display {
        Display {
            replaces: self.queued.load(std::sync::atomic::Ordering::Relaxed),
            transient: false,
        }
    }

    /// The files are queued. Brief and transient when all went: the daemon's own notice tells
    /// how the batch ended, so this only confirms the click did something (a large batch can
    /// take minutes). Files refused here never reach the daemon, so they are told in full.
    async fn queued(&self, sent: &Sent) {
        let Some((_, count)) = sent.batch else { return };
        let mut notice = Notice {
            summary: format!("{} queued for {}", photos(count), folder_name(&sent.folder)),
            body: String::new(),
            actions: vec![],
            urgent: !sent.refused.is_empty(),
        };
        if !sent.refused.is_empty() {
            notice.body = refused_lines(&sent.refused);
        }
        let id = self
            .show(
                notice,
                Display {
                    replaces: 0,
                    transient: sent.refused.is_empty(),
                },
            )
            .await;
        self.queued.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// The end: nothing could go, or (with `--wait`) how the batch ended, in the daemon's own
    /// words, with the files refused here and what became of the link.
    async fn outcome(&self, sent: &Sent, exit: Exit, copied: Option<bool>) {
        if sent.batch.is_none() {
            let notice = Notice {
                summary: "Nothing sent to Dropbox".into(),
                body: refused_lines(&sent.refused),
                actions: vec![],
                urgent: true,
            };
            self.show(notice, Display::default()).await;
            return;
        }
        let Some(summary) = &sent.finished else {
            return;
        };
        let Some(mut notice) = notice_for(&sent.folder, summary, false).or_else(|| {
            (exit == Exit::Cancelled).then(|| Notice {
                summary: "Upload to Dropbox cancelled".into(),
                body: String::new(),
                actions: vec![],
                urgent: false,
            })
        }) else {
            return;
        };
        // The daemon's notice carries the actions; this one only tells.
        notice.actions.clear();
        if let Some(link) = &summary.link {
            match copied {
                Some(true) => {
                    notice.body = notice
                        .body
                        .replace(&format!("Link: {link}"), &format!("Link copied: {link}"));
                }
                Some(false) => {
                    notice
                        .body
                        .push_str("\nNot copied: none of wl-copy, xclip or xsel worked");
                    notice.urgent = true;
                }
                None => {}
            }
        } else if copied.is_some() {
            notice.urgent = true;
        }
        if !sent.refused.is_empty() {
            notice.body.push('\n');
            notice.body.push_str(&refused_lines(&sent.refused));
            notice.urgent = true;
        }
        self.show(notice, self.replacing()).await;
    }
}

fn folder_name(folder: &str) -> &str {
    if folder.is_empty() { "/" } else { folder }
}

fn refused_lines(refused: &[String]) -> String {
    format!("Not sent:\n{}", refused.join("\n"))
}

/// What the user sees of one batch while it runs.
struct View {
    jobs: HashMap<u64, JobView>,
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<u64, ProgressBar>,
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.into())
}

impl View {
    fn new(jobs: Vec<JobView>) -> View {
        let multi = MultiProgress::new();
        let total: u64 = jobs.iter().map(|j| j.size).sum();
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let mut view = View {
            jobs: HashMap::new(),
            multi,
            overall,
            bars: HashMap::new(),
        };
        for job in jobs {
            view.update(job);
        }
        view
    }

    /// (uploaded, already there, failed, cancelled)
    fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |s: &str| self.jobs.values().filter(|j| j.state == s).count();
        let skipped = self
            .jobs
            .values()
            .filter(|j| j.state == "done" && j.skipped)
            .count();
        (
            count("done") - skipped,
            skipped,
            count("failed"),
            count("cancelled"),
        )
    }

    fn all_final(&self) -> bool {
        self.jobs.values().all(JobView::is_final)
    }

    fn refresh_overall(&self) {
        let sent: u64 = self
            .jobs
            .values()
            .map(|j| if j.state == "done" { j.size } else { j.sent })
            .sum();
        self.overall.set_position(sent);
        let (done, skipped, failed, _) = self.counts();
        let done = done + skipped;
        self.overall.set_message(format!(
            "{done}/{} files{}",
            self.jobs.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ));
    }

    /// A job's new state: print final outcomes as lines, keep bars for the ones in flight.
    fn update(&mut self, job: JobView) {
        let was_final = self.jobs.get(&job.id).is_some_and(JobView::is_final);
        if job.is_final() {
            if let Some(bar) = self.bars.remove(&job.id) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            if !was_final {
                let line = match job.state.as_str() {
                    "done" => format!("done      {}: {}", job.source, job.message),
                    "failed" => format!("failed    {}", job.message),
                    _ => format!("cancelled {}", job.source),
                };
                self.multi.suspend(|| println!("{line}"));
            }
        } else if matches!(job.state.as_str(), "uploading" | "committing")
            && !self.bars.contains_key(&job.id)
        {
            let bar = self.multi.add(ProgressBar::new(job.size));
            bar.set_style(
                ProgressStyle::with_template("{msg:>24} [{bar:30}] {bytes}/{total_bytes}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(file_name(&job.source));
            bar.set_position(job.sent);
            self.bars.insert(job.id, bar);
        }
        if job.state == "waiting" && self.jobs.get(&job.id).is_none_or(|j| j.state != "waiting") {
            let line = format!("waiting   {}: {}", file_name(&job.source), job.message);
            self.multi.suspend(|| eprintln!("{line}"));
        }
        self.jobs.insert(job.id, job);
        self.refresh_overall();
    }

    fn progress(&mut self, id: u64, sent: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.sent = sent;
        }
        if let Some(bar) = self.bars.get(&id) {
            bar.set_position(sent);
        }
        self.refresh_overall();
    }
}

/// The streams `--wait` follows, subscribed before `Upload` is called.
pub struct Streams {
    states: crate::service::JobStateChangedStream,
    progress: crate::service::JobProgressStream,
    finished: crate::service::BatchFinishedStream,
}

impl Streams {
    pub async fn subscribe(proxy: &UploaderProxy<'_>) -> Result<Streams, String> {
        Ok(Streams {
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
        })
    }
}

/// How long to wait for `BatchFinished` once every job is final (it follows at once, unless a
/// shared link is being made).
const SUMMARY_WAIT: Duration = Duration::from_secs(90);

async fn follow(
    proxy: &UploaderProxy<'_>,
    batch: u64,
    streams: Streams,
) -> Result<BatchSummary, String> {
    let Streams {
        mut states,
        mut progress,
        mut finished,
    } = streams;
    let jobs = fetch(proxy, &[("batch", Value::from(batch))]).await?;
    let mut view = View::new(jobs);
    let mut resync = tokio::time::interval(Duration::from_secs(2));
    let mut summary: Option<HashMap<String, OwnedValue>> = None;
    let mut all_final_since: Option<tokio::time::Instant> = None;
    while summary.is_none() {
        if view.all_final() {
            let since = *all_final_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > SUMMARY_WAIT {
                break;
            }
        }
        tokio::select! {
            signal = states.next() => {
                let Some(signal) = signal else { return Err("lost the connection to dbxportd".into()) };
                let Ok(args) = signal.args() else { continue };
                if args.batch != batch {
                    continue;
                }
                if let Some(job) = view.jobs.get(&args.job).cloned() {
                    view.update(JobView { state: args.state.to_string(), message: args.message.to_string(), ..job });
                }
            }
            signal = progress.next() => {
                let Some(signal) = signal else { return Err("lost the connection to dbxportd".into()) };
                if let Ok(args) = signal.args() {
                    view.progress(args.job, args.sent);
                }
            }
            signal = finished.next() => {
                let Some(signal) = signal else { return Err("lost the connection to dbxportd".into()) };
                if let Ok(args) = signal.args()
                    && args.batch == batch
                {
                    summary = Some(args.summary.clone());
                }
            }
            _ = resync.tick() => {
                for job in fetch(proxy, &[("batch", Value::from(batch))]).await? {
                    view.update(job);
                }
            }
        }
    }
    // Final states with content hashes and messages, from the daemon itself.
    for job in fetch(proxy, &[("batch", Value::from(batch))]).await? {
        view.update(job);
    }
    view.overall.finish_and_clear();
    let (done, skipped, failed, cancelled) = view.counts();
    println!("{done} uploaded, {skipped} already there, {failed} failed, {cancelled} cancelled");
    // The counts are the jobs' own final states (the summary may not have come in time); the
    // failures, warnings and link are the daemon's summary.
    let mut summary = summary
        .as_ref()
        .map(crate::service::summary_from_dict)
        .unwrap_or_default();
    summary.done = (done + skipped) as u32;
    summary.skipped = skipped as u32;
    summary.failed = failed as u32;
    summary.cancelled = cancelled as u32;
    if summary.failures.is_empty() {
        summary.failures = view
            .jobs
            .values()
            .filter(|j| j.state == "failed")
            .map(|j| j.message.clone())
            .collect();
    }
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(link) = &summary.link {
        println!("Shared link: {link}");
    }
    if let Some(error) = &summary.link_error {
        eprintln!("dbxportctl: {error}");
    }
    Ok(summary)
}

//! `dbxportctl upload`: checks the files, hands them to the daemon, and with `--wait` follows
//! them to the end with a progress bar per file in flight and one for the batch.
//!
//! Files that cannot be uploaded (missing, a directory) are reported one by one and left out,
//! so the rest still go; the exit code then says some were refused. Waiting follows the
//! daemon's `JobStateChanged`/`JobProgress` signals, subscribed before `Upload` is called so
//! nothing is missed; a periodic `ListJobs` re-syncs in case the bus dropped signals.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use zbus::zvariant::{OwnedValue, Value};

use super::jobs::{JobView, fetch};
use super::{Exit, UploadArgs, describe, report};
use crate::prepare;
use crate::service::UploaderProxy;

pub async fn run(conn: &zbus::Connection, args: UploadArgs) -> Result<Exit, String> {
    let options = args.export.to_options();
    send(conn, &args.files, args.to.as_deref(), options, args.wait).await
}

/// Queues `files` (and follows them when `wait`); shared with `dbxportctl demo`.
pub async fn send(
    conn: &zbus::Connection,
    files: &[PathBuf],
    to: Option<&str>,
    options: HashMap<String, OwnedValue>,
    wait: bool,
) -> Result<Exit, String> {
    let mut paths = Vec::new();
    let mut refused = 0;
    for file in files {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        match prepare::check_source(&absolute) {
            Ok(_) => paths.push(absolute),
            Err(e) => {
                report(e);
                refused += 1;
            }
        }
    }
    if paths.is_empty() {
        report("nothing to upload");
        return Ok(Exit::JobsFailed);
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
    let outcome = match streams {
        Some(streams) => follow(&proxy, batch, streams).await?,
        None => Exit::Ok,
    };
    Ok(if refused > 0 && outcome == Exit::Ok {
        Exit::JobsFailed
    } else {
        outcome
    })
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

async fn follow(proxy: &UploaderProxy<'_>, batch: u64, streams: Streams) -> Result<Exit, String> {
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
    let text = |key: &str| {
        summary
            .as_ref()
            .and_then(|s| s.get(key))
            .and_then(|v| <&str>::try_from(&**v).ok().map(String::from))
    };
    let warnings = summary
        .as_ref()
        .and_then(|s| s.get("warnings"))
        .and_then(|v| Vec::<String>::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default();
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(link) = text("link") {
        println!("Shared link: {link}");
    }
    if let Some(error) = text("link_error") {
        eprintln!("dbxportctl: {error}");
    }
    Ok(if failed > 0 {
        Exit::JobsFailed
    } else if cancelled > 0 {
        Exit::Cancelled
    } else {
        Exit::Ok
    })
}

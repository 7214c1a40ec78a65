//! `dbxportctl jobs`, `status`, `cancel`, `pause` and `resume`: reading and steering the queue.

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::term::outln;
use super::{Exit, JobsArgs, describe, term};
use crate::service::{AccountProxy, UploaderProxy};

/// A job as the daemon describes it (`ListJobs`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobView {
    pub id: u64,
    pub batch: u64,
    pub source: String,
    pub remote_path: String,
    pub state: String,
    pub message: String,
    pub size: u64,
    pub sent: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
    /// Done without sending: the same content was already in Dropbox.
    pub skipped: bool,
    /// Where a done job's file is in Dropbox (another name than `remote_path` when Dropbox
    /// renamed it to keep both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_path: Option<String>,
    /// When the job was queued (ms since the epoch).
    pub created_ms: u64,
    /// What the user should know although the file went up, each naming the file: a copy
    /// kept beside a changed one instead of replacing it, a photo sent as it is, a folder
    /// date taken from the file's modification time. Always present (empty when none), so
    /// scripts can read it without a check.
    pub warnings: Vec<String>,
}

impl JobView {
    pub fn from_dict(d: &HashMap<String, OwnedValue>) -> JobView {
        let u = |k: &str| d.get(k).and_then(|v| u64::try_from(&**v).ok()).unwrap_or(0);
        let s = |k: &str| {
            d.get(k)
                .and_then(|v| <&str>::try_from(&**v).ok().map(String::from))
        };
        JobView {
            id: u("id"),
            batch: u("batch"),
            source: s("source").unwrap_or_default(),
            remote_path: s("remote_path").unwrap_or_default(),
            state: s("state").unwrap_or_default(),
            message: s("message").unwrap_or_default(),
            size: u("size"),
            sent: u("sent"),
            content_hash: s("content_hash"),
            retry_at_ms: d.get("retry_at_ms").and_then(|v| u64::try_from(&**v).ok()),
            skipped: d
                .get("skipped")
                .and_then(|v| bool::try_from(&**v).ok())
                .unwrap_or(false),
            stored_path: s("stored_path"),
            created_ms: u("created_ms"),
            warnings: d
                .get("warnings")
                .and_then(|v| <Vec<String>>::try_from(v.try_clone().ok()?).ok())
                .unwrap_or_default(),
        }
    }
}

pub async fn fetch(
    proxy: &UploaderProxy<'_>,
    filter: &[(&str, Value<'_>)],
) -> Result<Vec<JobView>, String> {
    let filter: HashMap<String, OwnedValue> = filter
        .iter()
        .map(|(k, v)| (k.to_string(), v.try_to_owned().expect("plain values")))
        .collect();
    let jobs = proxy.list_jobs(filter).await.map_err(|e| describe(&e))?;
    Ok(jobs.iter().map(JobView::from_dict).collect())
}

/// The last component of a path as the daemon gives it (the whole text when it has none).
pub fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.into())
}

/// Bytes in a human unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How far back `jobs` looks without `--all`: finished jobs of the last day, every unfinished.
const RECENT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub async fn list(conn: &zbus::Connection, args: &JobsArgs) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let mut filter = vec![("state", Value::from(args.state.as_str()))];
    if let Some(batch) = args.batch {
        filter.push(("batch", Value::from(batch)));
    }
    let recent_only = !args.all && args.batch.is_none();
    if recent_only {
        let since = crate::queue::now_ms().saturating_sub(RECENT.as_millis() as u64);
        filter.push(("since_ms", Value::from(since)));
    }
    let jobs = fetch(&proxy, &filter).await?;
    if args.json {
        term::print_json(&jobs);
        return Ok(Exit::Ok);
    }
    if jobs.is_empty() {
        outln!("no jobs");
    } else {
        print_jobs(&jobs);
    }
    if recent_only && term::stdout_is_terminal() {
        outln!(
            "(unfinished jobs and those of the last 24 hours; `dbxportctl jobs --all` for every job)"
        );
    }
    Ok(Exit::Ok)
}

/// The jobs, batch by batch: the folders once in the batch's heading, then a short line per
/// job (id, state, size, name), the reason under a failed or waiting job, and a job's warnings
/// under it.
fn print_jobs(jobs: &[JobView]) {
    let width = term::width();
    // Reasons and warnings wrap at words for a person at a terminal; a pipe gets whole lines.
    let wrap = term::stdout_is_terminal().then_some(width).flatten();
    let id_width = jobs
        .iter()
        .map(|j| j.id.to_string().len())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut start = 0;
    while start < jobs.len() {
        let batch = jobs[start].batch;
        let end = jobs[start..]
            .iter()
            .position(|j| j.batch != batch)
            .map_or(jobs.len(), |n| start + n);
        let group = &jobs[start..end];
        let local = common_dir(group.iter().map(|j| j.source.as_str()));
        let remote = common_dir(group.iter().map(|j| j.remote_path.as_str()));
        // Files handed over as open files (`--spool`, `UploadFds`) are known by name only: no
        // local folder to show.
        let handed_over = group.iter().all(|j| !j.source.starts_with('/'));
        outln!(
            "batch {batch}: {} → {}",
            match (local.is_empty(), handed_over) {
                (true, true) => "files handed over".into(),
                (true, false) => "/".into(),
                (false, _) => term::clean(&local),
            },
            term::clean(if remote.is_empty() { "/" } else { &remote })
        );
        for job in group {
            let name = relative(&job.source, &local);
            // Where it goes below the batch's folder: its name, and the folders a template
            // made for it (`2026/2026-11-03/IMG_1.jpg`).
            let remote_name = relative(
                job.stored_path.as_deref().unwrap_or(&job.remote_path),
                &remote,
            );
            let mut shown = term::clean(name).into_owned();
            if !remote_name.eq_ignore_ascii_case(file_name(&job.source).as_str()) {
                shown.push_str(" → ");
                shown.push_str(&term::clean(remote_name));
            }
            let lead = format!(
                "{:>id_width$} {:<10} {:>9}  ",
                job.id,
                job.state,
                human_bytes(job.size)
            );
            let shown = match width {
                Some(w) => {
                    term::shorten(&shown, w.saturating_sub(lead.chars().count())).into_owned()
                }
                None => shown,
            };
            outln!("{lead}{shown}");
            if !job.message.is_empty() && matches!(job.state.as_str(), "failed" | "waiting") {
                let message = job.message.replace(&job.source, name);
                let message = match job.retry_at_ms {
                    Some(at) => waiting_message(&message, at),
                    None => message,
                };
                let indent = " ".repeat(id_width + 1);
                outln!("{}", term::hanging(&indent, &term::clean(&message), wrap));
            }
            for warning in &job.warnings {
                let warning = warning.replace(&job.source, name);
                let indent = " ".repeat(id_width + 1);
                outln!("{}", term::hanging(&indent, &term::clean(&warning), wrap));
            }
        }
        start = end;
    }
}

/// The longest folder holding every path (`""` for the top).
fn common_dir<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut common: Option<Vec<&str>> = None;
    for path in paths {
        let parts: Vec<&str> = path.split('/').collect();
        let parent = &parts[..parts.len().saturating_sub(1)];
        common = Some(match common {
            None => parent.to_vec(),
            Some(c) => c
                .iter()
                .zip(parent)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    common.unwrap_or_default().join("/")
}

/// `path` below `dir` (as `common_dir` gave it).
fn relative<'a>(path: &'a str, dir: &str) -> &'a str {
    path.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(path)
}

/// A waiting job's reason with the time of its next try, which is the daemon's own
/// (`retry_at_ms`), not a figure quoted inside the reason: Dropbox may say "retry in 1s"
/// while the backoff waits minutes.
pub fn waiting_message(reason: &str, retry_at_ms: u64) -> String {
    let reason = match reason.rfind("; retry in ") {
        Some(at) => &reason[..at],
        None => reason,
    };
    let now = crate::queue::now_ms();
    if retry_at_ms <= now {
        return format!("{reason}; trying again now");
    }
    let wait = std::time::Duration::from_secs((retry_at_ms - now).div_ceil(1000));
    format!(
        "{reason}; next try in {} (at {})",
        humantime::format_duration(wait),
        clock(retry_at_ms)
    )
}

/// A time of day (local) as HH:MM:SS.
pub fn clock(ms: u64) -> String {
    let secs = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r fills the struct we own from a time value we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format!("{}", ms / 1000);
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

#[derive(Serialize)]
struct Status {
    account_state: String,
    account: String,
    account_message: String,
    credential_store: String,
    paused: bool,
    /// When the queue was paused (ms since the epoch), while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_since_ms: Option<u64>,
    /// Why watch-folder uploads wait ("" when they do not).
    auto_uploads_held: String,
    queue_length: u32,
    states: std::collections::BTreeMap<String, usize>,
    /// Jobs that failed and wait for `retry` (however old).
    failed: usize,
    bytes_remaining: u64,
    /// Bytes per second over the last few seconds, while something is being sent.
    throughput: u64,
    /// Seconds left at that rate, when something is moving.
    eta_seconds: Option<u64>,
    bandwidth_limit: u64,
    /// Requests carrying file data allowed at once now (adaptive, at most `upload.transfers`).
    concurrency: u32,
    /// What keeps uploads from moving, each with the command that fixes it.
    stalls: Vec<String>,
}

pub async fn status(conn: &zbus::Connection, json: bool) -> Result<Exit, String> {
    let uploader = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let active = fetch(&uploader, &[("state", Value::from("active"))]).await?;
    let failed = fetch(&uploader, &[("state", Value::from("failed"))])
        .await?
        .len();
    let mut states = std::collections::BTreeMap::new();
    for job in &active {
        *states.entry(job.state.clone()).or_insert(0) += 1;
    }
    let sending = active
        .iter()
        .any(|j| matches!(j.state.as_str(), "uploading" | "committing"));
    let stalls =
        super::stalls::stalls(conn, &uploader, &active, super::stalls::For::Status).await?;
    let throughput = match sending {
        true => uploader.throughput().await.map_err(|e| describe(&e))?,
        // A rate left over from the last transfer is not a rate: nothing moves now.
        false => 0,
    };
    let bytes_remaining: u64 = active.iter().map(|j| j.size.saturating_sub(j.sent)).sum();
    let paused = uploader.paused().await.map_err(|e| describe(&e))?;
    let status = Status {
        account_state: account.state().await.map_err(|e| describe(&e))?,
        account: account.account_name().await.map_err(|e| describe(&e))?,
        account_message: account.status_message().await.map_err(|e| describe(&e))?,
        credential_store: account.credential_store().await.map_err(|e| describe(&e))?,
        paused,
        paused_since_ms: match paused {
            true => Some(uploader.paused_since_ms().await.map_err(|e| describe(&e))?)
                .filter(|ms| *ms > 0),
            false => None,
        },
        auto_uploads_held: uploader
            .auto_uploads_held()
            .await
            .map_err(|e| describe(&e))?,
        queue_length: uploader.queue_length().await.map_err(|e| describe(&e))?,
        bytes_remaining,
        states,
        failed,
        throughput,
        eta_seconds: (throughput > 0).then(|| bytes_remaining.div_ceil(throughput)),
        bandwidth_limit: uploader.bandwidth_limit().await.map_err(|e| describe(&e))?,
        concurrency: uploader.concurrency().await.map_err(|e| describe(&e))?,
        stalls: stalls.iter().map(ToString::to_string).collect(),
    };
    if json {
        term::print_json(&status);
        return Ok(Exit::Ok);
    }
    // Wrapped for a person reading a terminal; whole lines for a pipe.
    let width = term::stdout_is_terminal().then(term::width).flatten();
    match status.account_state.as_str() {
        "logged_in" => {
            let text = format!(
                "{} (login kept in {})",
                status.account, status.credential_store
            );
            outln!("{}", term::hanging("Account:  ", &text, width));
        }
        _ => outln!("Account:  not logged in"),
    }
    let mut queue = format!("{} unfinished", status.queue_length);
    if !status.states.is_empty() {
        let parts: Vec<String> = status
            .states
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        queue.push_str(&format!(" ({})", parts.join(", ")));
    }
    if status.bytes_remaining > 0 {
        queue.push_str(&format!(
            ", {} to send",
            human_bytes(status.bytes_remaining)
        ));
    }
    outln!("Queue:    {queue}");
    if status.failed > 0 {
        let text = format!(
            "{} (`dbxportctl jobs --state failed --all` shows why; `dbxportctl retry ID` sends again)",
            status.failed
        );
        outln!("{}", term::hanging("Failed:   ", &text, width));
    }
    if status.throughput > 0 {
        let eta = status.eta_seconds.unwrap_or(0);
        outln!(
            "Sending:  {}/s, about {} left, up to {} at once",
            human_bytes(status.throughput),
            humantime::format_duration(std::time::Duration::from_secs(eta)),
            status.concurrency
        );
    }
    if status.bandwidth_limit > 0 {
        outln!("Limit:    {}/s", human_bytes(status.bandwidth_limit));
    }
    for stall in &stalls {
        outln!("{}", term::hanging("Note:     ", &stall.to_string(), width));
    }
    Ok(Exit::Ok)
}

pub async fn clean(
    conn: &zbus::Connection,
    older_than: Option<std::time::Duration>,
) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let secs = older_than.map_or(0, |d| d.as_secs());
    let removed = proxy.clean_jobs(secs).await.map_err(|e| describe(&e))?;
    match older_than {
        Some(d) => outln!(
            "forgot {removed} finished job(s) older than {}",
            humantime::format_duration(d)
        ),
        None => outln!("forgot {removed} finished job(s)"),
    }
    Ok(Exit::Ok)
}

pub async fn cancel(conn: &zbus::Connection, id: u64, json: bool) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let cancelled = proxy.cancel(id).await.map_err(|e| describe(&e))?;
    if json {
        outln!(
            "{}",
            serde_json::json!({ "id": id, "cancelled": cancelled })
        );
    } else if cancelled.is_empty() {
        outln!("nothing to cancel: {id} has no unfinished job");
    } else {
        outln!("cancelled {} job(s)", cancelled.len());
    }
    Ok(Exit::Ok)
}

pub async fn retry(conn: &zbus::Connection, id: u64, json: bool) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    // The states before, to say what became of each job.
    let mut before = fetch(&proxy, &[("batch", Value::from(id))]).await?;
    if before.is_empty() {
        before = fetch(&proxy, &[("state", Value::from("all"))])
            .await?
            .into_iter()
            .filter(|j| j.id == id)
            .collect();
    }
    let retried = proxy.retry(id).await.map_err(|e| describe(&e))?;
    let count = |state: &str| {
        before
            .iter()
            .filter(|j| j.state == state && retried.contains(&j.id))
            .count()
    };
    let (failed, cancelled, waiting) = (count("failed"), count("cancelled"), count("waiting"));
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "id": id,
                "retried": retried,
                "failed": failed,
                "cancelled": cancelled,
                "waiting": waiting,
            })
        );
        return Ok(Exit::Ok);
    }
    if retried.is_empty() {
        let mut states: std::collections::BTreeMap<&str, usize> = Default::default();
        for job in &before {
            *states.entry(job.state.as_str()).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        outln!(
            "nothing to retry in {id}: {} (only failed, cancelled and waiting jobs are)",
            states.join(", ")
        );
        return Ok(Exit::Ok);
    }
    let mut said = Vec::new();
    if failed + cancelled > 0 {
        let mut what = Vec::new();
        if failed > 0 {
            what.push(format!("{failed} failed"));
        }
        if cancelled > 0 {
            what.push(format!("{cancelled} cancelled"));
        }
        said.push(format!("queued {} job(s) again", what.join(" and ")));
    }
    if waiting > 0 {
        said.push(format!("{waiting} waiting job(s) try again now"));
    }
    outln!("{}", said.join("; "));
    Ok(Exit::Ok)
}

/// `2M`, `500K`, `1.5MiB`, `1000000`, `off` → bytes per second (units as config sizes take them).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    crate::config::edit::parse_bytes(text)
        .ok_or_else(|| format!("{text:?} is not a rate: try 2M, 500K, 1.5MiB or off"))
}

pub async fn limit(conn: &zbus::Connection, rate: Option<&str>) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    if let Some(rate) = rate {
        let rate = parse_rate(rate)?;
        proxy
            .set_bandwidth_limit(rate)
            .await
            .map_err(|e| describe(&e))?;
    }
    match proxy.bandwidth_limit().await.map_err(|e| describe(&e))? {
        0 => outln!("no bandwidth limit"),
        rate => outln!("bandwidth limit: {}/s ({rate} bytes/s)", human_bytes(rate)),
    }
    Ok(Exit::Ok)
}

pub async fn pause(conn: &zbus::Connection, pause: bool) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    if pause {
        proxy.pause().await
    } else {
        proxy.resume().await
    }
    .map_err(|e| describe(&e))?;
    outln!("{}", if pause { "paused" } else { "resumed" });
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("off").unwrap(), 0);
        assert_eq!(parse_rate("2M").unwrap(), 2_000_000);
        assert_eq!(parse_rate("500K").unwrap(), 500_000);
        assert_eq!(parse_rate("1.5MiB").unwrap(), 1_572_864);
        assert_eq!(parse_rate("1000").unwrap(), 1000);
        assert_eq!(parse_rate("2 MB/s").unwrap(), 2_000_000);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("3X").is_err());
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}

//! `dbxportctl jobs`, `status`, `cancel`, `pause` and `resume`: reading and steering the queue.

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::term::outln;
use super::{Exit, describe};
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

pub async fn list(
    conn: &zbus::Connection,
    state: &str,
    batch: Option<u64>,
    json: bool,
) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let mut filter = vec![("state", Value::from(state))];
    if let Some(batch) = batch {
        filter = vec![("batch", Value::from(batch))];
    }
    let jobs = fetch(&proxy, &filter).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&jobs).expect("jobs serialize")
        );
        return Ok(Exit::Ok);
    }
    if jobs.is_empty() {
        outln!("no jobs");
        return Ok(Exit::Ok);
    }
    outln!(
        "{:>20} {:>20} {:<10} {:>10}  FILE → DROPBOX",
        "ID",
        "BATCH",
        "STATE",
        "SIZE"
    );
    for job in &jobs {
        outln!(
            "{:>20} {:>20} {:<10} {:>10}  {} → {}",
            job.id,
            job.batch,
            job.state,
            human_bytes(job.size),
            job.source,
            job.remote_path
        );
        if !job.message.is_empty() && job.state != "done" {
            outln!("{:>20}   {}", "", job.message);
        }
    }
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct Status {
    account_state: String,
    account: String,
    account_message: String,
    credential_store: String,
    paused: bool,
    /// Why watch-folder uploads wait ("" when they do not).
    auto_uploads_held: String,
    queue_length: u32,
    states: std::collections::BTreeMap<String, usize>,
    bytes_remaining: u64,
    /// Bytes per second over the last few seconds.
    throughput: u64,
    /// Seconds left at that rate, when something is moving.
    eta_seconds: Option<u64>,
    bandwidth_limit: u64,
}

pub async fn status(conn: &zbus::Connection, json: bool) -> Result<Exit, String> {
    let uploader = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let account = AccountProxy::new(conn).await.map_err(|e| describe(&e))?;
    let active = fetch(&uploader, &[("state", Value::from("active"))]).await?;
    let mut states = std::collections::BTreeMap::new();
    for job in &active {
        *states.entry(job.state.clone()).or_insert(0) += 1;
    }
    let status = Status {
        account_state: account.state().await.map_err(|e| describe(&e))?,
        account: account.account_name().await.map_err(|e| describe(&e))?,
        account_message: account.status_message().await.map_err(|e| describe(&e))?,
        credential_store: account.credential_store().await.map_err(|e| describe(&e))?,
        paused: uploader.paused().await.map_err(|e| describe(&e))?,
        auto_uploads_held: uploader
            .auto_uploads_held()
            .await
            .map_err(|e| describe(&e))?,
        queue_length: uploader.queue_length().await.map_err(|e| describe(&e))?,
        bytes_remaining: active.iter().map(|j| j.size.saturating_sub(j.sent)).sum(),
        states,
        throughput: uploader.throughput().await.map_err(|e| describe(&e))?,
        eta_seconds: None,
        bandwidth_limit: uploader.bandwidth_limit().await.map_err(|e| describe(&e))?,
    };
    let status = Status {
        eta_seconds: (status.throughput > 0)
            .then(|| status.bytes_remaining.div_ceil(status.throughput)),
        ..status
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        );
        return Ok(Exit::Ok);
    }
    match status.account_state.as_str() {
        "logged_in" => outln!(
            "Account:  {} (token in {})",
            status.account,
            status.credential_store
        ),
        _ => outln!("Account:  not logged in — {}", status.account_message),
    }
    outln!(
        "Queue:    {} unfinished{}, {} to send",
        status.queue_length,
        if status.paused { " (paused)" } else { "" },
        human_bytes(status.bytes_remaining)
    );
    if !status.auto_uploads_held.is_empty() {
        outln!(
            "Held:     watch-folder uploads wait ({})",
            status.auto_uploads_held
        );
    }
    if status.throughput > 0 {
        let eta = status.eta_seconds.unwrap_or(0);
        outln!(
            "Sending:  {}/s, about {} left",
            human_bytes(status.throughput),
            if eta >= 120 {
                format!("{} min", eta.div_ceil(60))
            } else {
                format!("{eta} s")
            }
        );
    }
    if status.bandwidth_limit > 0 {
        outln!("Limit:    {}/s", human_bytes(status.bandwidth_limit));
    }
    for (state, n) in &status.states {
        outln!("          {n} {state}");
    }
    for job in active.iter().filter(|j| j.state == "waiting") {
        outln!("          waiting: {} — {}", job.source, job.message);
    }
    Ok(Exit::Ok)
}

pub async fn cancel(conn: &zbus::Connection, id: u64) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let cancelled = proxy.cancel(id).await.map_err(|e| describe(&e))?;
    outln!("cancelled {} job(s)", cancelled.len());
    Ok(Exit::Ok)
}

pub async fn retry(conn: &zbus::Connection, id: u64) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let retried = proxy.retry(id).await.map_err(|e| describe(&e))?;
    outln!("queued {} failed job(s) again", retried.len());
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

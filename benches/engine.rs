//! Engine figures for BENCHMARKS.md (issue 5, "Speed"): the release `dbxportd` on a private
//! bus against the test kit's emulator on 127.0.0.1.
//!
//! - photos: `BENCH_FILES` (1000) files of 2.5–3.5 MB of pseudo-random bytes, queued with one
//!   `Upload` call (default options) until `BatchFinished`: once with `upload.batch_commit =
//!   true` (the default: `finish_batch_v2`) and once, with a fresh daemon and emulator, with
//!   `batch_commit = false` (one `files/upload` per file). Beside them, in the same run, plain
//!   one-request-per-file clients against a fresh emulator each: reqwest with 4 concurrent
//!   `files/upload` calls, and curl with 4 parallel transfers; and a plain batch client
//!   (reqwest: 4 concurrent `upload_session/start` with close, then `finish_batch_v2`), which
//!   shows what the emulator's batch route costs by itself. Reported: files/s, MB/s, commit
//!   calls and every route's request count (`BENCH_TIMELINE=1`: arrivals per 0.5 s too);
//! - one big file: `BENCH_BIG_MIB` (2048) MiB of pseudo-random bytes, fresh daemon with the
//!   default config, `Upload` to Done, beside curl streaming the same file to a discard sink
//!   (the loopback ceiling, before and after the daemon's run) and a plain reqwest client
//!   sending it as one session of 8 MiB chunks one after another; the daemon's RSS sampled
//!   every 50 ms from /proc (VmRSS) and its VmHWM at the end. Target: ≥ 80 % of the ceiling,
//!   RSS under 100 MB.
//!
//! Each timed part starts after a `sync()`, a fresh emulator (and daemon) and nothing else of
//! this benchmark running.
//!
//! Run: `cargo bench --bench engine` (needs dbus-daemon and curl). Smaller:
//! `BENCH_FILES=100 BENCH_BIG_MIB=256 cargo bench --bench engine`; `0` skips a part.
//! Files go under `BENCH_DIR` (default /var/tmp) and are removed afterwards.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbxport::config::Config;
use dbxport::service::UploaderProxy;
use dbxport_testkit::emulator::{Emulator, EmulatorConfig, RequestRecord};
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use zbus::zvariant::Value;

const COMMIT_ROUTES: [&str; 3] = [
    "/2/files/upload",
    "/2/files/upload_session/finish",
    "/2/files/upload_session/finish_batch_v2",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get_u32(d: &Dict, key: &str) -> u32 {
    d.get(key).and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail as u64 * s.f_frsize as u64
}

/// Writes dirty pages out, so each timed part starts without the previous one's writeback.
fn sync() {
    unsafe { libc::sync() };
}

/// splitmix64: fast pseudo-random bytes that neither compress nor repeat across files.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// `n` files of 2.5–3.5 MB (sizes spread evenly, shuffled by a multiplicative step).
fn make_photos(dir: &Path, n: usize) -> (Vec<PathBuf>, u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut buf = vec![0u8; 3_500_000];
    let mut total = 0;
    let files = (0..n)
        .map(|i| {
            let step = (i * 7919) % n.max(1);
            let size = 2_500_000 + (1_000_000 * step) / n.max(1);
            let mut noise = Noise(0xD8C5_0000_0000 + i as u64);
            noise.fill(&mut buf[..size]);
            // A JPEG start, so the files look like photos to anything that sniffs.
            buf[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
            let p = dir.join(format!("IMG_{i:05}.jpg"));
            std::fs::write(&p, &buf[..size]).unwrap();
            total += size as u64;
            p
        })
        .collect();
    (files, total)
}

fn make_big(path: &Path, bytes: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut block = vec![0u8; 8 << 20];
    let mut noise = Noise(0xB16_F11E);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        noise.fill(&mut block[..n]);
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

/// Requests per route: (count, answers other than 2xx by status).
type RouteCounts = BTreeMap<String, (usize, BTreeMap<u16, usize>)>;

fn route_counts(records: &[RequestRecord]) -> RouteCounts {
    let mut counts = RouteCounts::new();
    for r in records {
        let e = counts.entry(r.route.clone()).or_default();
        e.0 += 1;
        if !(200..300).contains(&r.status) {
            *e.1.entry(r.status).or_insert(0) += 1;
        }
    }
    counts
}

fn commits(counts: &RouteCounts) -> usize {
    COMMIT_ROUTES
        .iter()
        .map(|r| counts.get(*r).map_or(0, |c| c.0))
        .sum()
}

fn routes_line(counts: &RouteCounts) -> String {
    counts
        .iter()
        .map(|(route, (n, bad))| {
            let route = route.trim_start_matches("/2/");
            if bad.is_empty() {
                format!("{route} {n}")
            } else {
                let bad: Vec<String> = bad
                    .iter()
                    .map(|(status, k)| format!("{k} answered {status}"))
                    .collect();
                format!("{route} {n} ({})", bad.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One figure row of the final table.
struct Row {
    what: String,
    files: usize,
    bytes: u64,
    elapsed: Duration,
    commits: Option<usize>,
    requests: Option<usize>,
    note: String,
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| what | files | MB | s | files/s | MB/s | commit calls | all requests | note |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let opt = |v: Option<usize>| v.map_or("–".to_string(), |v| v.to_string());
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {} | {} | {} |",
            r.what,
            r.files,
            r.bytes as f64 / 1e6,
            r.elapsed.as_secs_f64(),
            r.files as f64 / r.elapsed.as_secs_f64(),
            mb_per_s(r.bytes, r.elapsed),
            opt(r.commits),
            opt(r.requests),
            r.note
        );
    }
}

/// Warnings and errors the daemon logged (its filter is `warn`).
fn daemon_log_summary(sandbox: &Sandbox) -> String {
    let text = std::fs::read_to_string(sandbox.daemon_log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        "daemon log: empty".into()
    } else {
        let first: Vec<&str> = lines.iter().take(5).copied().collect();
        format!(
            "daemon log: {} lines, first: {}",
            lines.len(),
            first.join(" / ")
        )
    }
}

async fn start_sandbox(dir: &Path, config: Config) -> Sandbox {
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config.upload = config.upload;
    options.drop_root_file_access = false;
    options.log_filter = "warn".into();
    let mut sandbox = Sandbox::start(dir, options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    sandbox.login().await.unwrap();
    sandbox
}

struct DaemonRun {
    started: Instant,
    elapsed: Duration,
    summary: Dict,
    states: BTreeMap<String, usize>,
    records: Vec<RequestRecord>,
}

/// One `Upload` of `files` to `folder`, until the batch's `BatchFinished` signal.
async fn daemon_upload(sandbox: &Sandbox, files: &[PathBuf], folder: &str) -> DaemonRun {
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    let paths = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(paths, folder.into(), dict(&[]))
        .await
        .unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(3600), async {
        while let Some(signal) = finished.next().await {
            let args = signal.args().unwrap();
            if args.batch == batch {
                return args.summary.clone();
            }
        }
        panic!("signal stream ended");
    })
    .await
    .expect("the batch did not finish within an hour");
    let elapsed = started.elapsed();
    let jobs = uploader
        .list_jobs(dict(&[("batch", Value::from(batch))]))
        .await
        .unwrap();
    let mut states = BTreeMap::new();
    for job in &jobs {
        let state = <&str>::try_from(&*job["state"]).unwrap().to_string();
        *states.entry(state).or_insert(0) += 1;
    }
    DaemonRun {
        started,
        elapsed,
        summary,
        states,
        records: sandbox.emulator.requests(),
    }
}

/// Plain client: reqwest, one `files/upload` per file (body read whole), 4 at a time.
async fn reqwest_photos(emulator: &Emulator, files: &[PathBuf], folder: &str) -> Duration {
    let client = reqwest::Client::new();
    let url = format!("{}/2/files/upload", emulator.base_url());
    let token = emulator.access_token();
    let started = Instant::now();
    let results: Vec<()> = futures_util::stream::iter(files.iter())
        .map(|file| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            async move {
                let body = tokio::fs::read(file).await.unwrap();
                let arg = serde_json::json!({
                    "path": format!("{folder}/{}", file.file_name().unwrap().to_string_lossy()),
                    "mode": "add",
                });
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Dropbox-API-Arg", arg.to_string())
                    .header("Content-Type", "application/octet-stream")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "{}: {status} {text}", file.display());
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert_eq!(results.len(), files.len());
    started.elapsed()
}

/// Plain batch client: reqwest, 4 concurrent `upload_session/start` (close = true) with each
/// file's bytes, then `finish_batch_v2` per 1000 files once all are sent. Returns (total, time
/// of the finish_batch_v2 calls).
async fn reqwest_batch(
    emulator: &Emulator,
    files: &[PathBuf],
    folder: &str,
) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let base = emulator.base_url();
    let token = emulator.access_token();
    let started = Instant::now();
    let sessions: Vec<(String, u64, String)> = futures_util::stream::iter(files.iter())
        .map(|file| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let body = tokio::fs::read(file).await.unwrap();
                let size = body.len() as u64;
                let response = client
                    .post(format!("{base}/2/files/upload_session/start"))
                    .bearer_auth(&token)
                    .header("Dropbox-API-Arg", r#"{"close": true}"#)
                    .header("Content-Type", "application/octet-stream")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "{}: {status} {text}", file.display());
                let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                (
                    answer["session_id"].as_str().unwrap().to_string(),
                    size,
                    name,
                )
            }
        })
        .buffered(4)
        .collect()
        .await;
    let finish_started = Instant::now();
    for group in sessions.chunks(1000) {
        let entries: Vec<serde_json::Value> = group
            .iter()
            .map(|(session, size, name)| {
                serde_json::json!({
                    "cursor": {"session_id": session, "offset": size},
                    "commit": {"path": format!("{folder}/{name}"), "mode": "add"},
                })
            })
            .collect();
        let response = client
            .post(format!("{base}/2/files/upload_session/finish_batch_v2"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "entries": entries }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(status.is_success(), "finish_batch_v2: {status} {answer}");
        let ok = answer["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e[".tag"] == "success")
            .count();
        assert_eq!(ok, group.len(), "finish_batch_v2: {answer}");
    }
    (started.elapsed(), finish_started.elapsed())
}

/// Plain client for one big file: reqwest, an upload session with 8 MiB chunks sent one after
/// another (start, append_v2…, finish), no hashing. Returns (total, time of the finish call).
async fn reqwest_session(
    emulator: &Emulator,
    file: &Path,
    path: &str,
    chunk: usize,
) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let token = emulator.access_token();
    let base = emulator.base_url();
    let call = |route: &'static str, arg: serde_json::Value, body: Vec<u8>| {
        let request = client
            .post(format!("{base}/2/files/upload_session/{route}"))
            .bearer_auth(&token)
            .header("Dropbox-API-Arg", arg.to_string())
            .header("Content-Type", "application/octet-stream")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert!(status.is_success(), "{route}: {status} {text}");
            text
        }
    };
    let started = Instant::now();
    let mut input = tokio::fs::File::open(file).await.unwrap();
    let read_chunk = async |input: &mut tokio::fs::File| {
        let mut buf = vec![0u8; chunk];
        let mut got = 0;
        while got < chunk {
            let n = input.read(&mut buf[got..]).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        buf
    };
    let first = read_chunk(&mut input).await;
    let mut offset = first.len() as u64;
    let answer = call("start", serde_json::json!({"close": false}), first).await;
    let session: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let session = session["session_id"].as_str().unwrap().to_string();
    loop {
        let body = read_chunk(&mut input).await;
        if body.is_empty() {
            break;
        }
        let len = body.len() as u64;
        let arg = serde_json::json!({
            "cursor": {"session_id": session, "offset": offset},
            "close": false,
        });
        call("append_v2", arg, body).await;
        offset += len;
    }
    let finish_started = Instant::now();
    let arg = serde_json::json!({
        "cursor": {"session_id": session, "offset": offset},
        "commit": {"path": path, "mode": "add"},
    });
    call("finish", arg, Vec::new()).await;
    (started.elapsed(), finish_started.elapsed())
}

/// Request arrivals per `step` after `started`, per route (BENCH_TIMELINE=1).
fn print_timeline(records: &[RequestRecord], started: Instant, step: f64) {
    let mut buckets: BTreeMap<u64, BTreeMap<String, usize>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.received >= started) {
        let bucket = ((r.received - started).as_secs_f64() / step) as u64;
        *buckets
            .entry(bucket)
            .or_default()
            .entry(r.route.trim_start_matches("/2/").to_string())
            .or_insert(0) += 1;
    }
    for (bucket, routes) in buckets {
        let line: Vec<String> = routes.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("    {:6.2} s: {}", bucket as f64 * step, line.join(", "));
    }
}

/// Plain client: curl uploading `files` to /2/files/upload, 4 parallel transfers.
fn curl_photos(emulator: &Emulator, files: &[PathBuf], folder: &str, dir: &Path) -> Duration {
    let config = dir.join("curl.cfg");
    let mut cfg = std::io::BufWriter::new(std::fs::File::create(&config).unwrap());
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            writeln!(cfg, "next").unwrap();
        }
        let arg = format!(
            r#"{{\"path\": \"{folder}/{}\", \"mode\": \"add\"}}"#,
            file.file_name().unwrap().to_string_lossy()
        );
        writeln!(cfg, "url = \"{}/2/files/upload\"", emulator.base_url()).unwrap();
        writeln!(
            cfg,
            "header = \"Authorization: Bearer {}\"",
            emulator.access_token()
        )
        .unwrap();
        writeln!(cfg, "header = \"Content-Type: application/octet-stream\"").unwrap();
        writeln!(cfg, "header = \"Dropbox-API-Arg: {arg}\"").unwrap();
        writeln!(cfg, "upload-file = \"{}\"", file.display()).unwrap();
        writeln!(cfg, "request = \"POST\"").unwrap();
        writeln!(cfg, "output = \"/dev/null\"").unwrap();
    }
    drop(cfg);
    let started = Instant::now();
    let status = std::process::Command::new("curl")
        .args([
            "-s",
            "--no-progress-meter",
            "--fail",
            "--parallel",
            "--parallel-max",
            "4",
            "-K",
        ])
        .arg(&config)
        .status()
        .unwrap();
    assert!(status.success(), "curl failed");
    started.elapsed()
}

/// curl streaming `file` to the discard sink.
async fn ceiling(port: u16, file: &Path) -> Duration {
    let started = Instant::now();
    let status = tokio::process::Command::new("curl")
        // -T streams the file (--data-binary @file would read it into memory first).
        .args([
            "-s",
            "--fail",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/octet-stream",
            // No `Expect: 100-continue`: the sink never answers it, and curl would wait 1 s.
            "-H",
            "Expect:",
            "-T",
        ])
        .arg(file)
        .arg(format!("http://127.0.0.1:{port}/sink"))
        .status()
        .await
        .unwrap();
    assert!(status.success(), "curl to the sink failed");
    started.elapsed()
}

/// Samples a process's VmRSS every 50 ms until stopped: (peak kB, samples).
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, peak, samples) = (stop.clone(), peak.clone(), samples.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    peak.fetch_max(proc_status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        RssSampler {
            stop,
            peak,
            samples,
            task,
        }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (
            self.peak.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

fn describe_run(label: &str, run: &DaemonRun, files: usize, bytes: u64) -> (usize, usize) {
    let counts = route_counts(&run.records);
    let commit_calls = commits(&counts);
    println!(
        "{label}: {files} files, {:.1} MB in {:.2} s = {:.1} files/s, {:.1} MB/s; summary done {} skipped {} failed {} cancelled {}; job states {:?}",
        bytes as f64 / 1e6,
        run.elapsed.as_secs_f64(),
        files as f64 / run.elapsed.as_secs_f64(),
        mb_per_s(bytes, run.elapsed),
        get_u32(&run.summary, "done"),
        get_u32(&run.summary, "skipped"),
        get_u32(&run.summary, "failed"),
        get_u32(&run.summary, "cancelled"),
        run.states,
    );
    if let Some(failures) = run.summary.get("failures")
        && let Ok(list) = Vec::<String>::try_from(failures.try_clone().unwrap())
        && !list.is_empty()
    {
        println!(
            "  failures ({}): {:?}",
            list.len(),
            &list[..list.len().min(5)]
        );
    }
    println!(
        "  requests {} (commit calls {commit_calls}): {}",
        run.records.len(),
        routes_line(&counts)
    );
    let after_upload: Vec<&RequestRecord> = run
        .records
        .iter()
        .filter(|r| r.received >= run.started)
        .collect();
    if let (Some(first), Some(last)) = (after_upload.first(), after_upload.last()) {
        println!(
            "  after Upload: first request ({}) at {:.2} s, last ({}) at {:.2} s, BatchFinished at {:.2} s",
            first.route.trim_start_matches("/2/"),
            (first.received - run.started).as_secs_f64(),
            last.route.trim_start_matches("/2/"),
            (last.received - run.started).as_secs_f64(),
            run.elapsed.as_secs_f64()
        );
    }
    let commit_times: Vec<f64> = run
        .records
        .iter()
        .filter(|r| COMMIT_ROUTES.contains(&r.route.as_str()) && r.received >= run.started)
        .map(|r| (r.received - run.started).as_secs_f64())
        .collect();
    if let (Some(first), Some(last)) = (commit_times.first(), commit_times.last()) {
        println!("  commit calls arrived from {first:.2} s to {last:.2} s after Upload");
    }
    if std::env::var("BENCH_TIMELINE").is_ok_and(|v| v == "1") {
        println!("  requests arriving per 0.5 s after Upload:");
        print_timeline(&run.records, run.started, 0.5);
    }
    (commit_calls, run.records.len())
}

#[tokio::main]
async fn main() {
    let n_files = env_u64("BENCH_FILES", 1000) as usize;
    let big_mib = env_u64("BENCH_BIG_MIB", 2048);
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::Builder::new()
        .prefix("dbxport-bench-engine-")
        .tempdir_in(&base)
        .unwrap();
    let upload = Config::default().upload;
    println!(
        "dbxportd release build; defaults: transfers {}, session threshold {} MiB, chunk {} MiB, batch_commit {}, batch_size {}, batch_wait_ms {}",
        upload.transfers,
        upload.session_threshold >> 20,
        upload.chunk_size >> 20,
        upload.batch_commit,
        upload.batch_size,
        upload.batch_wait_ms
    );
    println!(
        "work dir {}; free {:.1} GB; load average {}",
        dir.path().display(),
        free_bytes(dir.path()) as f64 / 1e9,
        load_average()
    );
    let mut rows = Vec::new();

    if n_files > 0 {
        let started = Instant::now();
        let (photos, total) = make_photos(&dir.path().join("photos"), n_files);
        println!(
            "generated {n_files} files, {:.1} MB, in {:.1} s",
            total as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );

        for batch_commit in [true, false] {
            let label = format!("dbxportd, batch_commit = {batch_commit}");
            let sub = dir.path().join(format!("sandbox-batch-{batch_commit}"));
            let mut config = Config::default();
            config.upload.batch_commit = batch_commit;
            let sandbox = start_sandbox(&sub, config).await;
            sync();
            let run = daemon_upload(&sandbox, &photos, "/Photos").await;
            let (commit_calls, requests) = describe_run(&label, &run, n_files, total);
            let stored = sandbox.emulator.files().len();
            println!(
                "  emulator holds {stored} files; {}",
                daemon_log_summary(&sandbox)
            );
            println!("  load average {}", load_average());
            let done = get_u32(&run.summary, "done") as usize;
            rows.push(Row {
                what: label,
                files: n_files,
                bytes: total,
                elapsed: run.elapsed,
                commits: Some(commit_calls),
                requests: Some(requests),
                note: if done == n_files {
                    "all done".into()
                } else {
                    format!("only {done} done")
                },
            });
            sandbox.shutdown().await;
            std::fs::remove_dir_all(&sub).unwrap();
        }

        // Plain clients, each against a fresh emulator.
        let plain = dir.path().join("plain-reqwest");
        let emulator = Emulator::start(EmulatorConfig {
            root: plain.clone(),
            port: 0,
            access_token: None,
            app_key: None,
        })
        .await
        .unwrap();
        sync();
        let elapsed = reqwest_photos(&emulator, &photos, "/Photos").await;
        let counts = route_counts(&emulator.requests());
        let label = "plain client (reqwest, 4 concurrent `files/upload`)";
        println!(
            "{label}: {n_files} files in {:.2} s = {:.1} files/s, {:.1} MB/s; requests: {}; emulator holds {} files",
            elapsed.as_secs_f64(),
            n_files as f64 / elapsed.as_secs_f64(),
            mb_per_s(total, elapsed),
            routes_line(&counts),
            emulator.files().len()
        );
        rows.push(Row {
            what: label.into(),
            files: n_files,
            bytes: total,
            elapsed,
            commits: Some(commits(&counts)),
            requests: Some(counts.values().map(|c| c.0).sum()),
            note: "same process as the emulator".into(),
        });
        emulator.shutdown().await;
        std::fs::remove_dir_all(&plain).unwrap();

        if curl_ok() {
            let plain = dir.path().join("plain-curl");
            let emulator = Emulator::start(EmulatorConfig {
                root: plain.clone(),
                port: 0,
                access_token: None,
                app_key: None,
            })
            .await
            .unwrap();
            sync();
            let elapsed = curl_photos(&emulator, &photos, "/Photos", dir.path());
            let counts = route_counts(&emulator.requests());
            let label = "plain client (curl, 4 parallel `files/upload`)";
            println!(
                "{label}: {n_files} files in {:.2} s = {:.1} files/s, {:.1} MB/s; requests: {}; emulator holds {} files",
                elapsed.as_secs_f64(),
                n_files as f64 / elapsed.as_secs_f64(),
                mb_per_s(total, elapsed),
                routes_line(&counts),
                emulator.files().len()
            );
            rows.push(Row {
                what: label.into(),
                files: n_files,
                bytes: total,
                elapsed,
                commits: Some(commits(&counts)),
                requests: Some(counts.values().map(|c| c.0).sum()),
                note: "separate process".into(),
            });
            emulator.shutdown().await;
            std::fs::remove_dir_all(&plain).unwrap();
        }
        // The same, batched as the daemon does: sessions closed on start, one finish_batch_v2.
        let plain = dir.path().join("plain-batch");
        let emulator = Emulator::start(EmulatorConfig {
            root: plain.clone(),
            port: 0,
            access_token: None,
            app_key: None,
        })
        .await
        .unwrap();
        sync();
        let (elapsed, finish) = reqwest_batch(&emulator, &photos, "/Photos").await;
        let counts = route_counts(&emulator.requests());
        let label = "plain batch client (reqwest, 4 concurrent `upload_session/start`, then `finish_batch_v2`)";
        println!(
            "{label}: {n_files} files in {:.2} s = {:.1} files/s, {:.1} MB/s, of which finish_batch_v2 {:.2} s; requests: {}; emulator holds {} files",
            elapsed.as_secs_f64(),
            n_files as f64 / elapsed.as_secs_f64(),
            mb_per_s(total, elapsed),
            finish.as_secs_f64(),
            routes_line(&counts),
            emulator.files().len()
        );
        rows.push(Row {
            what: label.into(),
            files: n_files,
            bytes: total,
            elapsed,
            commits: Some(commits(&counts)),
            requests: Some(counts.values().map(|c| c.0).sum()),
            note: format!("finish_batch_v2 alone {:.2} s", finish.as_secs_f64()),
        });
        emulator.shutdown().await;
        std::fs::remove_dir_all(&plain).unwrap();
        std::fs::remove_dir_all(dir.path().join("photos")).unwrap();
    }

    let mut big_summary = None;
    if big_mib > 0 {
        let size = big_mib << 20;
        let big = dir.path().join("big.bin");
        let started = Instant::now();
        make_big(&big, size);
        println!(
            "generated {big_mib} MiB in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        // What hashing alone costs here (the daemon hashes the file before sending it).
        let started = Instant::now();
        let hash = tokio::task::spawn_blocking({
            let big = big.clone();
            move || dbxport::dropbox::content_hash::content_hash_file(&big).unwrap()
        })
        .await
        .unwrap();
        let hash_time = started.elapsed();
        println!(
            "content hash of the file in this process: {:.2} s = {:.1} MB/s ({}…)",
            hash_time.as_secs_f64(),
            mb_per_s(size, hash_time),
            &hash[..12]
        );

        let port = discard_sink().await;
        sync();
        let ceiling_before = ceiling(port, &big).await;
        println!(
            "loopback ceiling (curl -T to a discard sink), before: {:.2} s = {:.1} MB/s",
            ceiling_before.as_secs_f64(),
            mb_per_s(size, ceiling_before)
        );

        let sub = dir.path().join("sandbox-big");
        let sandbox = start_sandbox(&sub, Config::default()).await;
        let pid = sandbox.daemon_pid().unwrap();
        // Reset the peak-RSS counter so VmHWM covers this upload only.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        sync();
        let rss_before = proc_status_kb(pid, "VmRSS:");
        let sampler = RssSampler::start(pid);
        let run = daemon_upload(&sandbox, std::slice::from_ref(&big), "/Big").await;
        let (peak_sampled, samples) = sampler.finish().await;
        let hwm = proc_status_kb(pid, "VmHWM:");
        let rss_after = proc_status_kb(pid, "VmRSS:");
        let label = format!("dbxportd, one {big_mib} MiB file");
        let (commit_calls, requests) = describe_run(&label, &run, 1, size);
        let uploads: Vec<&RequestRecord> = run
            .records
            .iter()
            .filter(|r| r.route.contains("upload"))
            .collect();
        if let (Some(first), Some(last)) = (uploads.first(), uploads.last()) {
            println!(
                "  after Upload: first body request at {:.2} s (the hash pass before it), last ({}) at {:.2} s; sending took {:.2} s = {:.1} MB/s",
                (first.received - run.started).as_secs_f64(),
                last.route.trim_start_matches("/2/"),
                (last.received - run.started).as_secs_f64(),
                (last.received - first.received).as_secs_f64(),
                mb_per_s(size, last.received - first.received)
            );
        }
        println!(
            "  daemon RSS: before {rss_before} kB, peak sampled {peak_sampled} kB ({samples} samples every 50 ms), VmHWM {hwm} kB, after {rss_after} kB"
        );
        println!(
            "  emulator holds {} files; {}",
            sandbox.emulator.files().len(),
            daemon_log_summary(&sandbox)
        );
        sandbox.shutdown().await;
        std::fs::remove_dir_all(&sub).unwrap();

        let plain = dir.path().join("plain-session");
        let emulator = Emulator::start(EmulatorConfig {
            root: plain.clone(),
            port: 0,
            access_token: None,
            app_key: None,
        })
        .await
        .unwrap();
        let chunk = Config::default().upload.chunk_size as usize;
        sync();
        let (session_time, finish_time) =
            reqwest_session(&emulator, &big, "/Big/big.bin", chunk).await;
        let counts = route_counts(&emulator.requests());
        let session_label = format!(
            "plain client (reqwest, one session, {} MiB chunks one after another, no hashing)",
            chunk >> 20
        );
        println!(
            "{session_label}: {:.2} s = {:.1} MB/s, of which the emulator's finish call {:.2} s; requests: {}",
            session_time.as_secs_f64(),
            mb_per_s(size, session_time),
            finish_time.as_secs_f64(),
            routes_line(&counts)
        );
        emulator.shutdown().await;
        std::fs::remove_dir_all(&plain).unwrap();

        sync();
        let ceiling_after = ceiling(port, &big).await;
        println!(
            "loopback ceiling (curl -T to a discard sink), after: {:.2} s = {:.1} MB/s",
            ceiling_after.as_secs_f64(),
            mb_per_s(size, ceiling_after)
        );
        println!("  load average {}", load_average());
        let ceiling_best = ceiling_before.min(ceiling_after);
        rows.push(Row {
            what: label,
            files: 1,
            bytes: size,
            elapsed: run.elapsed,
            commits: Some(commit_calls),
            requests: Some(requests),
            note: format!(
                "{:.0} % of the ceiling (faster of the two)",
                100.0 * ceiling_best.as_secs_f64() / run.elapsed.as_secs_f64()
            ),
        });
        rows.push(Row {
            what: session_label,
            files: 1,
            bytes: size,
            elapsed: session_time,
            commits: Some(1),
            requests: Some(counts.values().map(|c| c.0).sum()),
            note: format!("finish call alone {:.2} s", finish_time.as_secs_f64()),
        });
        for (when, t) in [("before", ceiling_before), ("after", ceiling_after)] {
            rows.push(Row {
                what: format!("loopback ceiling: curl -T to a discard sink ({when})"),
                files: 1,
                bytes: size,
                elapsed: t,
                commits: None,
                requests: Some(1),
                note: String::new(),
            });
        }
        big_summary = Some((
            mb_per_s(size, run.elapsed),
            mb_per_s(size, ceiling_best),
            rss_before,
            peak_sampled.max(hwm),
        ));
    }

    print_table(&rows);
    if let Some((rate, ceiling, before, peak)) = big_summary {
        let ratio = rate / ceiling * 100.0;
        println!();
        println!(
            "big file: {rate:.1} MB/s = {ratio:.0} % of the ceiling {ceiling:.1} MB/s (target ≥ 80 %: {}); daemon RSS before {:.1} MB, peak {:.1} MB (target < 100 MB: {})",
            if ratio >= 80.0 { "met" } else { "NOT met" },
            before as f64 * 1024.0 / 1e6,
            peak as f64 * 1024.0 / 1e6,
            if (peak as f64 * 1024.0) < 100e6 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    println!("load average at the end {}", load_average());
}

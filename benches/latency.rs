//! Throughput at real network distance (issue 16; BENCHMARKS.md, "At real network distance").
//!
//! Every other benchmark runs on loopback, where a request costs nothing. Here the test kit's
//! emulator answers each request after a latency (default 80 ms ± 10 ms), limits each token to
//! a rate of requests (default 12/s, answered 429 with Retry-After) and serialises commits per
//! account (a commit meeting a held lock gets `too_many_write_operations`), as real Dropbox does
//! (the emulator's network model documents each knob and its source).
//!
//! Three contenders upload the same photos, each to a fresh emulator with the same model:
//!
//! - `dbxportd` (release build, default configuration) on a private bus: one `Upload` call,
//!   timed until its batch has finished, resizing included;
//! - a plain per-file client: `files/upload`, 8 at once;
//! - a well-written batch client: 8 workers of `upload_session/start` with `close`, then
//!   `finish_batch_v2` for all, retrying per-entry contention.
//!
//! Both reference clients wait out every Retry-After (one wait shared by all their workers, as
//! a well-written client keeps it: the limit is the token's) and retry 5xx, and, for resized
//! photos, first resize with `vipsthumbnail` on every core (its time counted). Reported:
//! files/s, requests per photo, 429s received, requests sent sooner than a Retry-After told
//! them (the emulator counts them), the daemon's peak RSS and its requests by route, and the
//! load average (the machine is shared).
//!
//! Workloads: 300 and 1,000 photos resized to 1600 px, and 300 originals. Photos are copies of
//! `BENCH_PHOTOS` (default ../shared/photos/large), each made distinct by a trailer after the
//! JPEG's end. Environment: `BENCH_WORKLOADS` (e.g. `300r,1000r,300o`), `BENCH_LATENCY_MS`,
//! `BENCH_JITTER_MS`, `BENCH_RATE` (requests/s per token), `BENCH_PER_FILE_UP_TO` (the
//! per-file client runs on workloads of at most this many photos, default 300: each of its
//! uploads is a commit, so the lock lets it go at about one photo a second), `BENCH_COMMIT_MS` and
//! `BENCH_COMMIT_ENTRY_MS` (the lock's hold), `BENCH_DIR`, `BENCH_DAEMON_LOG` (the daemon's
//! `RUST_LOG`, e.g. `info,dbxport=debug`; its log is then kept as
//! `target/latency-daemon-N.log`, N the workload's index).
//!
//! Run: `benches/latency.sh` (installs vipsthumbnail if missing), or `cargo bench --bench latency`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dbxport::config::Config;
use dbxport::service::UploaderProxy;
use dbxport_testkit::emulator::{CommitLock, Emulator, EmulatorConfig, NetworkModel};
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use futures_util::StreamExt;
use zbus::zvariant::Value;

/// The network every contender meets.
fn network() -> NetworkModel {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    NetworkModel {
        latency: Duration::from_millis(env("BENCH_LATENCY_MS", 80)),
        jitter: Duration::from_millis(env("BENCH_JITTER_MS", 10)),
        seed: 16,
        bandwidth: None,
        rate_limit: Some(env("BENCH_RATE", 12) as u32),
        commit_lock: Some(CommitLock {
            base: Duration::from_millis(env("BENCH_COMMIT_MS", 200)),
            per_entry: Duration::from_millis(env("BENCH_COMMIT_ENTRY_MS", 2)),
        }),
    }
}

/// One workload: how many photos, and the longest side they are resized to (None: originals).
#[derive(Clone, Copy)]
struct Workload {
    photos: usize,
    resize: Option<u32>,
}

impl Workload {
    fn label(&self) -> String {
        match self.resize {
            Some(px) => format!("{} photos resized to {px} px", self.photos),
            None => format!("{} originals", self.photos),
        }
    }
}

/// What one contender achieved.
struct Figures {
    elapsed: Duration,
    requests: usize,
    too_many: usize,
    early: u64,
    peak_rss_kb: Option<u64>,
}

impl Figures {
    fn print(&self, who: &str, workload: &Workload, resize: Option<Duration>) {
        let n = workload.photos as f64;
        println!(
            "  {who:<26} {:>7.2} s  {:>6.1} files/s  {:>5.3} req/photo  {:>4} × 429  {:>3} early{}{}",
            self.elapsed.as_secs_f64(),
            n / self.elapsed.as_secs_f64(),
            self.requests as f64 / n,
            self.too_many,
            self.early,
            resize.map_or(String::new(), |r| format!(
                "  (resize {:.2} s)",
                r.as_secs_f64()
            )),
            self.peak_rss_kb.map_or(String::new(), |kb| format!(
                "  RSS peak {:.1} MB",
                kb as f64 / 1024.0
            )),
        );
    }
}

fn counts(emulator: &Emulator) -> (usize, usize, u64) {
    let requests = emulator.requests();
    let too_many = requests.iter().filter(|r| r.status == 429).count();
    (requests.len(), too_many, emulator.early_requests())
}

/// `count` distinct photos made from the JPEGs in `source`.
fn make_photos(source: &Path, dir: &Path, count: usize) -> Vec<PathBuf> {
    let mut originals: Vec<PathBuf> = std::fs::read_dir(source)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    originals.sort();
    assert!(!originals.is_empty(), "no JPEG in {}", source.display());
    let bytes: Vec<Vec<u8>> = originals
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let path = dir.join(format!("IMG_{i:05}.jpg"));
            let mut data = bytes[i % bytes.len()].clone();
            // After the JPEG's end marker: ignored by decoders, distinct per file.
            data.extend_from_slice(format!("dbxport-bench-{i}").as_bytes());
            std::fs::write(&path, data).unwrap();
            path
        })
        .collect()
}

/// The daemon: one Upload, timed until its batch has finished.
async fn daemon(dir: &Path, photos: &[PathBuf], workload: &Workload, index: usize) -> Figures {
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config.upload = Config::default().upload;
    options.drop_root_file_access = false;
    let keep_log = std::env::var("BENCH_DAEMON_LOG").ok();
    options.log_filter = keep_log.clone().unwrap_or_else(|| "warn".into());
    let mut sandbox = Sandbox::start(dir, options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    sandbox.login().await.unwrap();
    let pid = sandbox.daemon_pid().unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    // The login's own requests happen on a fast network and are not counted.
    sandbox.emulator.set_network(network());
    let before = sandbox.emulator.requests().len();
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let mut opts = vec![];
    match workload.resize {
        Some(px) => {
            opts.push(("resize", Value::from(true)));
            opts.push(("max_dimension", Value::from(px)));
        }
        None => opts.push(("original", Value::from(true))),
    }
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(
            photos
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            "/Bench".into(),
            dict(&opts),
        )
        .await
        .unwrap();
    loop {
        let signal = finished.next().await.expect("the daemon stays on the bus");
        let args = signal.args().unwrap();
        if args.batch == batch {
            let done = args.summary.get("done").and_then(|v| u32::try_from(v).ok());
            assert_eq!(
                done,
                Some(photos.len() as u32),
                "not every photo went up: {:?}",
                args.summary
            );
            break;
        }
    }
    let elapsed = started.elapsed();
    let (requests, too_many, early) = counts(&sandbox.emulator);
    let mut routes = std::collections::BTreeMap::<String, usize>::new();
    for request in &sandbox.emulator.requests()[before..] {
        *routes.entry(request.route.clone()).or_default() += 1;
    }
    let routes: Vec<String> = routes
        .into_iter()
        .map(|(route, n)| format!("{} {n}", route.trim_start_matches("/2/files/")))
        .collect();
    println!("    dbxportd's requests: {}", routes.join(", "));
    let figures = Figures {
        elapsed,
        requests: requests - before,
        too_many,
        early,
        peak_rss_kb: Some(proc_status_kb(pid, "VmHWM:")),
    };
    assert_eq!(sandbox.emulator.files().len(), photos.len());
    if keep_log.is_some() {
        let kept = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
            .join(format!("latency-daemon-{index}.log"));
        std::fs::copy(sandbox.daemon_log(), &kept).unwrap();
        println!("    daemon log: {}", kept.display());
    }
    sandbox.shutdown().await;
    figures
}

/// vipsthumbnail on every core, as a batch client would resize before uploading.
fn vips_resize(photos: &[PathBuf], out: &Path, px: u32) -> (Vec<PathBuf>, Duration) {
    std::fs::create_dir_all(out).unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let children: Vec<_> = photos
        .chunks(photos.len().div_ceil(cores))
        .map(|chunk| {
            std::process::Command::new("vipsthumbnail")
                .args(chunk)
                .arg("--size")
                .arg(format!("{px}x{px}"))
                .arg("-o")
                .arg(format!("{}/%s.jpg[Q=85,strip]", out.display()))
                .spawn()
                .expect("vipsthumbnail (benches/latency.sh installs it)")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "vipsthumbnail failed");
    }
    let elapsed = started.elapsed();
    let resized = photos
        .iter()
        .map(|p| out.join(p.file_name().unwrap()))
        .collect();
    (resized, elapsed)
}

/// A reference client's HTTP side: waits out Retry-After and retries 5xx and resets, as a
/// well-written client does.
struct Reference {
    http: reqwest::Client,
    base: String,
    token: String,
    /// No request leaves before this: the latest Retry-After, shared by every worker.
    not_before: std::sync::Mutex<Instant>,
}

impl Reference {
    async fn call(
        &self,
        route: &str,
        arg: &serde_json::Value,
        body: Option<Vec<u8>>,
    ) -> serde_json::Value {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Looked at again after each wait: another worker's 429 may have pushed it on.
            loop {
                let not_before = *self.not_before.lock().unwrap();
                if not_before <= Instant::now() {
                    break;
                }
                tokio::time::sleep_until(not_before.into()).await;
            }
            let mut request = self
                .http
                .post(format!("{}/2/{route}", self.base))
                .bearer_auth(&self.token);
            request = match &body {
                Some(bytes) => request
                    .header("Dropbox-API-Arg", arg.to_string())
                    .header("Content-Type", "application/octet-stream")
                    .body(bytes.clone()),
                None => request.json(arg),
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(_) if attempt < 20 => {
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                    continue;
                }
                Err(e) => panic!("{route}: {e}"),
            };
            let status = response.status().as_u16();
            if status == 429 {
                let wait = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                let until = Instant::now() + Duration::from_secs(wait);
                let mut not_before = self.not_before.lock().unwrap();
                *not_before = (*not_before).max(until);
                continue;
            }
            if status >= 500 && attempt < 20 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            assert_eq!(status, 200, "{route}: {status} {text}");
            return serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        }
    }
}

async fn fresh_emulator(dir: &Path) -> Emulator {
    let emulator = Emulator::start(EmulatorConfig {
        root: dir.to_path_buf(),
        port: 0,
        access_token: None,
        app_key: None,
    })
    .await
    .unwrap();
    emulator.set_network(network());
    emulator
}

fn reference(emulator: &Emulator) -> Arc<Reference> {
    Arc::new(Reference {
        http: reqwest::Client::new(),
        base: emulator.base_url(),
        token: emulator.access_token(),
        not_before: std::sync::Mutex::new(Instant::now()),
    })
}

/// Runs `work` over `files` with 8 workers.
async fn eight_at_once<F, Fut, T>(files: &[PathBuf], work: F) -> Vec<T>
where
    F: Fn(usize, PathBuf) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let files = Arc::new(files.to_vec());
    let work = Arc::new(work);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (next, files, work) = (next.clone(), files.clone(), work.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(file) = files.get(i) else { break };
                    out.push((i, work(i, file.clone()).await));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

/// The plain client: one `files/upload` per photo, 8 at once.
async fn per_file_client(
    dir: &Path,
    photos: &[PathBuf],
    workload: &Workload,
) -> (Figures, Option<Duration>) {
    let emulator = fresh_emulator(&dir.join("dropbox")).await;
    let started = Instant::now();
    let (files, resize) = match workload.resize {
        Some(px) => {
            let (files, took) = vips_resize(photos, &dir.join("resized"), px);
            (files, Some(took))
        }
        None => (photos.to_vec(), None),
    };
    let client = reference(&emulator);
    eight_at_once(&files, move |_, file| {
        let client = client.clone();
        async move {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = tokio::fs::read(&file).await.unwrap();
            let arg = serde_json::json!({"path": format!("/Bench/{name}"), "mode": "add"});
            client.call("files/upload", &arg, Some(bytes)).await;
        }
    })
    .await;
    let elapsed = started.elapsed();
    let (requests, too_many, early) = counts(&emulator);
    assert_eq!(emulator.files().len(), photos.len());
    emulator.shutdown().await;
    (
        Figures {
            elapsed,
            requests,
            too_many,
            early,
            peak_rss_kb: None,
        },
        resize,
    )
}

/// The batch client: 8 workers of `upload_session/start` with close, then `finish_batch_v2`
/// (up to 1,000 entries a call), entries refused for contention committed again.
async fn batch_client(
    dir: &Path,
    photos: &[PathBuf],
    workload: &Workload,
) -> (Figures, Option<Duration>) {
    let emulator = fresh_emulator(&dir.join("dropbox")).await;
    let started = Instant::now();
    let (files, resize) = match workload.resize {
        Some(px) => {
            let (files, took) = vips_resize(photos, &dir.join("resized"), px);
            (files, Some(took))
        }
        None => (photos.to_vec(), None),
    };
    let client = reference(&emulator);
    let worker_client = client.clone();
    let started_sessions = eight_at_once(&files, move |_, file| {
        let client = worker_client.clone();
        async move {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = tokio::fs::read(&file).await.unwrap();
            let size = bytes.len() as u64;
            let arg = serde_json::json!({"close": true});
            let answer = client
                .call("files/upload_session/start", &arg, Some(bytes))
                .await;
            let session = answer["session_id"].as_str().unwrap().to_string();
            serde_json::json!({
                "cursor": {"session_id": session, "offset": size},
                "commit": {"path": format!("/Bench/{name}"), "mode": "add"},
            })
        }
    })
    .await;
    let mut pending = started_sessions;
    while !pending.is_empty() {
        let mut retry = Vec::new();
        for chunk in pending.chunks(1000) {
            let answer = client
                .call(
                    "files/upload_session/finish_batch_v2",
                    &serde_json::json!({"entries": chunk}),
                    None,
                )
                .await;
            for (entry, result) in chunk.iter().zip(answer["entries"].as_array().unwrap()) {
                if result[".tag"] == "failure" {
                    retry.push(entry.clone());
                }
            }
        }
        if !retry.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        pending = retry;
    }
    let elapsed = started.elapsed();
    let (requests, too_many, early) = counts(&emulator);
    assert_eq!(emulator.files().len(), photos.len());
    emulator.shutdown().await;
    (
        Figures {
            elapsed,
            requests,
            too_many,
            early,
            peak_rss_kb: None,
        },
        resize,
    )
}

#[tokio::main]
async fn main() {
    let source =
        PathBuf::from(std::env::var("BENCH_PHOTOS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/photos/large").into()
        }));
    let workloads: Vec<Workload> = std::env::var("BENCH_WORKLOADS")
        .unwrap_or_else(|_| "300r,1000r,300o".into())
        .split(',')
        .map(|w| {
            let (n, kind) = w.split_at(w.len() - 1);
            Workload {
                photos: n.parse().expect("BENCH_WORKLOADS: e.g. 300r,1000r,300o"),
                resize: (kind == "r").then_some(1600),
            }
        })
        .collect();
    let per_file_up_to: usize = std::env::var("BENCH_PER_FILE_UP_TO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::Builder::new()
        .prefix("dbxport-bench-latency-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
        .unwrap();
    let model = network();
    println!(
        "network: {:?} ± {:?} per request, {} requests/s per token, commit lock {}; {} cores",
        model.latency,
        model.jitter,
        model
            .rate_limit
            .map_or("no limit".into(), |r| r.to_string()),
        model.commit_lock.map_or("off".into(), |l| format!(
            "{:?} + {:?}/entry",
            l.base, l.per_entry
        )),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    for (i, workload) in workloads.iter().enumerate() {
        let here = dir.path().join(format!("w{i}"));
        let photos = make_photos(&source, &here.join("photos"), workload.photos);
        let bytes: u64 = photos
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        println!(
            "{} ({:.0} MB), load average {}:",
            workload.label(),
            bytes as f64 / 1e6,
            load_average()
        );
        let figures = daemon(&here.join("daemon"), &photos, workload, i).await;
        figures.print("dbxportd", workload, None);
        // Every `files/upload` is a commit: against the lock it goes at about one a second,
        // so by default it runs on the smaller workloads only.
        if workload.photos <= per_file_up_to {
            let (figures, resize) =
                per_file_client(&here.join("per-file"), &photos, workload).await;
            figures.print("per-file client (8)", workload, resize);
        }
        let (batch, resize) = batch_client(&here.join("batch"), &photos, workload).await;
        batch.print("batch client (8 + finish)", workload, resize);
        let _ = std::fs::remove_dir_all(&here);
    }
    println!("load average at the end: {}", load_average());
}

/// The 1, 5 and 15 minute load averages (the machine is shared: figures beside it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

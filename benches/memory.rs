//! Memory figures for BENCHMARKS.md (issue 13, "Memory at scale"): the release `dbxportd` on a
//! private bus against the test kit's emulator on 127.0.0.1, its peak RSS read from
//! /proc/PID/status (VmHWM) and its RSS (VmRSS) at each step.
//!
//! - many files: `BENCH_FILES` (20,000) files of 2 KiB (distinct bytes) handed over in one
//!   `Upload` while the queue is paused: RSS with all of them queued; then resumed until
//!   `BatchFinished`: the peak while they go up, and the RSS once they are done. Target: under
//!   60 MB with 20,000 queued.
//! - one big file: `BENCH_BIG_MIB` (3072) MiB of pseudo-random bytes, a fresh daemon with the
//!   default config, `Upload` to Done: the peak. Target: under 100 MB.
//!
//! Run: `cargo bench --bench memory` (needs dbus-daemon). Smaller: `BENCH_FILES=2000
//! BENCH_BIG_MIB=512 cargo bench --bench memory`; `0` skips a part. Files go under
//! `BENCH_DIR` (default /var/tmp) and are removed afterwards. These are figures to read, not
//! pass/fail tests.

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbxport::config::Config;
use dbxport::service::UploaderProxy;
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use futures_util::StreamExt;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn start_sandbox(dir: &Path) -> Sandbox {
    // `BENCH_DAEMON`: another program to start as the daemon (a wrapper running it under a
    // heap profiler, say, to see where the memory goes).
    let daemon = std::env::var_os("BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    let mut options = SandboxOptions::new(daemon);
    options.config.upload = Config::default().upload;
    options.drop_root_file_access = false;
    options.log_filter = "warn".into();
    let mut sandbox = Sandbox::start(dir, options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    sandbox.login().await.unwrap();
    sandbox
}

/// Resets VmHWM to the current RSS, so that the next reading is the peak from now on.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Waits for the `BatchFinished` of `batch` and returns how long it took from `started`.
async fn finished(
    signals: &mut dbxport::service::BatchFinishedStream,
    batch: u64,
    started: Instant,
) -> Duration {
    tokio::time::timeout(Duration::from_secs(3600), async {
        while let Some(signal) = signals.next().await {
            if signal.args().unwrap().batch == batch {
                return started.elapsed();
            }
        }
        panic!("signal stream ended");
    })
    .await
    .expect("the batch did not finish within an hour")
}

async fn many_files(root: &Path, count: u64) {
    let dir = root.join("many");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..count)
        .map(|i| {
            let path = dir.join(format!("IMG_{i:06}.jpg"));
            let mut body = vec![0u8; 2048];
            body[..8].copy_from_slice(&i.to_le_bytes());
            std::fs::write(&path, &body).unwrap();
            path
        })
        .collect();
    let sandbox = start_sandbox(&root.join("sandbox-many")).await;
    let pid = sandbox.daemon_pid().unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let mut signals = uploader.receive_batch_finished().await.unwrap();
    uploader.pause().await.unwrap();
    let idle = proc_status_kb(pid, "VmRSS:");
    reset_peak(pid);
    let paths = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(paths, "/Many".into(), dict(&[]))
        .await
        .unwrap();
    let enqueue = started.elapsed();
    let queued_peak = proc_status_kb(pid, "VmHWM:");
    let queued = proc_status_kb(pid, "VmRSS:");
    if std::env::var_os("BENCH_QUEUED_ONLY").is_some() {
        // For a heap profile of the queued state alone.
        println!(
            "{count} files queued: RSS {:.1} MB (peak {:.1} MB)",
            mb(queued),
            mb(queued_peak)
        );
        // A profiler's wrapper writes as it goes: give it time before the daemon stops.
        tokio::time::sleep(Duration::from_secs(20)).await;
        sandbox.shutdown().await;
        return;
    }
    let started = Instant::now();
    uploader.resume().await.unwrap();
    let elapsed = finished(&mut signals, batch, started).await;
    let peak = proc_status_kb(pid, "VmHWM:");
    let after = proc_status_kb(pid, "VmRSS:");
    println!(
        "{count} files of 2 KiB in one Upload: returned in {} ms; daemon RSS idle {:.1} MB, \
         with all queued (paused) {:.1} MB (peak during the call {:.1} MB); then all uploaded \
         in {:.1} s, peak {:.1} MB, after {:.1} MB",
        enqueue.as_millis(),
        mb(idle),
        mb(queued),
        mb(queued_peak),
        elapsed.as_secs_f64(),
        mb(peak),
        mb(after)
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&dir);
}

fn make_big(path: &Path, bytes: u64) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

async fn big_file(root: &Path, mib: u64) {
    let big = root.join("big.bin");
    make_big(&big, mib << 20);
    let sandbox = start_sandbox(&root.join("sandbox-big")).await;
    let pid = sandbox.daemon_pid().unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let mut signals = uploader.receive_batch_finished().await.unwrap();
    let before = proc_status_kb(pid, "VmRSS:");
    reset_peak(pid);
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(
            vec![big.to_string_lossy().into_owned()],
            "/Big".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let elapsed = finished(&mut signals, batch, started).await;
    let peak = proc_status_kb(pid, "VmHWM:");
    println!(
        "one {mib} MiB file: uploaded in {:.1} s ({:.0} MB/s); daemon RSS before {:.1} MB, \
         peak (VmHWM) {:.1} MB",
        elapsed.as_secs_f64(),
        mb_per_s(mib << 20, elapsed),
        mb(before),
        mb(peak)
    );
    drop(sandbox);
    let _ = std::fs::remove_file(&big);
}

#[tokio::main]
async fn main() {
    let base = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let root = tempfile::tempdir_in(&base).unwrap();
    println!(
        "machine: {} CPUs; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let files = env_u64("BENCH_FILES", 20_000);
    if files > 0 {
        many_files(root.path(), files).await;
    }
    let big = env_u64("BENCH_BIG_MIB", 3072);
    if big > 0 {
        big_file(root.path(), big).await;
    }
}

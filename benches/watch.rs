//! Watch-folder figures for BENCHMARKS.md: the release `dbxportd` on a private bus against the
//! emulator on loopback.
//!
//! - latency: 500 files written into a watched folder, one every 20 ms (`BENCH_FILES`,
//!   `BENCH_GAP_MS`), each in two writes and a close; for each file, the time from the end of
//!   its last write (the close) to the `JobStateChanged(queued)` signal for its job, as this
//!   client receives it. Median and worst, once per settle time (`BENCH_SETTLE_MS`, default
//!   `2000,300`: the default and the test suite's). The figure includes the settle time by
//!   design; the files are uploaded as they are found, as in real use.
//! - idle: 10 watched folders (recursive, 10 subfolders each) of 10,000 files each
//!   (`BENCH_FOLDERS`, `BENCH_FOLDER_FILES`), with an include pattern (`*.cr3`) that none of the
//!   `.jpg` names match, so the catch-up scan walks and judges all 100,000 files but uploads
//!   none. Reported: the time each `AddWatch` took (it returns after the catch-up scan), then the
//!   daemon's CPU time (utime + stime) and RSS over `BENCH_IDLE_SECS` (60) of quiet, and its
//!   inotify watch count.
//!
//! Run: `cargo bench --bench watch` (needs dbus-daemon).

mod common;
use common::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbxport::service::{UploaderProxy, WatchesProxy};
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use futures_util::StreamExt;
use zbus::zvariant::Value;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// inotify watches the process holds: the `inotify wd:` lines of its inotify fds' fdinfo.
fn inotify_watches(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy() == "anon_inode:inotify")
        })
        .map(|fd| {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A sandbox with the default config but `settle_ms`, logged in.
async fn sandbox(root: &Path, settle_ms: u64) -> Sandbox {
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config.watch.settle_ms = settle_ms;
    options.drop_root_file_access = false;
    options.log_filter = "warn".into();
    let mut sandbox = Sandbox::start(root, options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    sandbox.login().await.unwrap();
    sandbox
}

/// Last write → job enqueued, for `files` files written `gap` apart.
async fn latency(root: &Path, settle_ms: u64, files: usize, gap: Duration) {
    let sandbox = sandbox(root, settle_ms).await;
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let watches = WatchesProxy::new(&conn).await.unwrap();
    let dir = root.join("incoming");
    std::fs::create_dir(&dir).unwrap();
    watches
        .add_watch(
            dir.to_string_lossy().into_owned(),
            "/Incoming".into(),
            dict(&[]),
        )
        .await
        .unwrap();

    // Every job's `queued` signal, timed as it arrives.
    let mut changes = uploader.receive_job_state_changed().await.unwrap();
    let collector = tokio::spawn(async move {
        let mut queued: HashMap<u64, Instant> = HashMap::new();
        while queued.len() < files {
            let Some(signal) = changes.next().await else {
                break;
            };
            let args = signal.args().unwrap();
            if args.state == "queued" {
                queued.entry(args.job).or_insert_with(Instant::now);
            }
        }
        queued
    });

    let started = Instant::now();
    let mut last_write: HashMap<String, Instant> = HashMap::new();
    let body: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..files {
        let path = dir.join(format!("IMG_{i:04}.jpg"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(&(i as u64).to_le_bytes()).unwrap();
            f.write_all(&body).unwrap();
        }
        last_write.insert(path.to_string_lossy().into_owned(), Instant::now());
        tokio::time::sleep(gap).await;
    }
    let written = started.elapsed();
    let queued = tokio::time::timeout(Duration::from_secs(300), collector)
        .await
        .expect("every file queued within 5 minutes")
        .unwrap();
    let jobs = uploader.list_jobs(dict(&[])).await.unwrap();
    let mut latencies: Vec<Duration> = jobs
        .iter()
        .filter_map(|d| {
            let id = u64::try_from(&*d["id"]).ok()?;
            let source = <&str>::try_from(&*d["source"]).ok()?;
            Some(
                queued
                    .get(&id)?
                    .saturating_duration_since(last_write[source]),
            )
        })
        .collect();
    assert_eq!(latencies.len(), files, "a job for every file, and one only");
    latencies.sort();
    let median = latencies[files / 2];
    let p90 = latencies[files * 9 / 10];
    println!(
        "latency, settle {settle_ms} ms: {files} files written over {:.1} s; last write -> \
         queued: min {:.0} ms, median {:.0} ms, p90 {:.0} ms, worst {:.0} ms",
        written.as_secs_f64(),
        ms(latencies[0]),
        ms(median),
        ms(p90),
        ms(latencies[files - 1])
    );
    sandbox.shutdown().await;
}

/// 10 watched folders of 10,000 files, nothing to upload: catch-up time, then idle cost.
async fn idle(root: &Path, folders: usize, per_folder: usize, idle_secs: u64) {
    let sandbox = sandbox(root, 2000).await;
    let pid = sandbox.daemon_pid().unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let watches = WatchesProxy::new(&conn).await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let made = Instant::now();
    let mut dirs = Vec::new();
    for f in 0..folders {
        let dir = root.join(format!("camera{f:02}"));
        for s in 0..10 {
            let sub = dir.join(format!("{}CANON", 100 + s));
            std::fs::create_dir_all(&sub).unwrap();
            for i in 0..per_folder / 10 {
                std::fs::write(sub.join(format!("IMG_{i:04}.jpg")), b"x").unwrap();
            }
        }
        dirs.push(dir);
    }
    println!(
        "idle: made {} files in {folders} folders in {:.1} s",
        folders * per_folder,
        made.elapsed().as_secs_f64()
    );
    let (rss_before, ticks_before) = (proc_status_kb(pid, "VmRSS:"), cpu_ticks(pid));
    let mut adds = Vec::new();
    for dir in &dirs {
        let started = Instant::now();
        watches
            .add_watch(
                dir.to_string_lossy().into_owned(),
                format!("/{}", dir.file_name().unwrap().to_string_lossy()),
                dict(&[
                    ("recursive", Value::from(true)),
                    ("include", Value::from(vec!["*.cr3"])),
                ]),
            )
            .await
            .unwrap();
        adds.push(started.elapsed());
    }
    let hz = 100.0; // USER_HZ on Linux
    let ticks_added = cpu_ticks(pid);
    adds.sort();
    println!(
        "idle: {folders} AddWatch calls (each returns after its catch-up scan of {per_folder} \
         files): median {:.0} ms, worst {:.0} ms; daemon CPU for all of them {:.2} s",
        ms(adds[adds.len() / 2]),
        ms(adds[adds.len() - 1]),
        (ticks_added - ticks_before) as f64 / hz
    );
    let listed = watches.list_watches().await.unwrap();
    let active = listed
        .iter()
        .filter(|d| <&str>::try_from(&*d["state"]).ok() == Some("active"))
        .count();
    let jobs = uploader.list_jobs(dict(&[])).await.unwrap().len();
    assert_eq!(active, folders, "every watch active");
    assert_eq!(jobs, 0, "nothing was to be uploaded");

    let (rss0, ticks0) = (proc_status_kb(pid, "VmRSS:"), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (rss1, ticks1) = (proc_status_kb(pid, "VmRSS:"), cpu_ticks(pid));
    println!(
        "idle {idle_secs} s with {folders} watches over {} files: CPU {:.2} s ({:.3} %), RSS \
         {rss_before} KiB before the watches, {rss0} -> {rss1} KiB during; {} inotify watches",
        folders * per_folder,
        (ticks1 - ticks0) as f64 / hz,
        (ticks1 - ticks0) as f64 / hz / idle_secs as f64 * 100.0,
        inotify_watches(pid)
    );
    sandbox.shutdown().await;
}

#[tokio::main]
async fn main() {
    let files: usize = env_or("BENCH_FILES", 500);
    let gap = Duration::from_millis(env_or("BENCH_GAP_MS", 20));
    let settles: Vec<u64> = std::env::var("BENCH_SETTLE_MS")
        .unwrap_or_else(|_| "2000,300".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let folders: usize = env_or("BENCH_FOLDERS", 10);
    let per_folder: usize = env_or("BENCH_FOLDER_FILES", 10_000);
    let idle_secs: u64 = env_or("BENCH_IDLE_SECS", 60);
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    println!("dbxportd release build; watch latency and idle cost");
    for settle in settles {
        let dir = tempfile::Builder::new()
            .prefix("dbxport-bench-")
            .tempdir_in(&base)
            .unwrap();
        latency(dir.path(), settle, files, gap).await;
    }
    if folders > 0 {
        let dir = tempfile::Builder::new()
            .prefix("dbxport-bench-")
            .tempdir_in(&base)
            .unwrap();
        idle(dir.path(), folders, per_folder, idle_secs).await;
    }
}

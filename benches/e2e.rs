//! End-to-end figures for BENCHMARKS.md: the release `dbxportd` on a private bus against the
//! emulator on loopback.
//!
//! - enqueue: one `Upload` call with 10,000 paths, until it returns (accepted = durable);
//! - throughput: 200 photos of ~5 MB, and one 1 GiB file, in MB/s, beside what curl achieves
//!   against the same emulator (the photos) and against a discard sink (the 1 GiB body), and
//!   the daemon's peak RSS during the 1 GiB upload;
//! - idle: the daemon's RSS and CPU time over a quiet period (60 s; `BENCH_IDLE_SECS`).
//!
//! Run: `cargo bench --bench e2e` (needs dbus-daemon and curl).

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbxport::config::Config;
use dbxport::service::UploaderProxy;
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use zbus::zvariant::Value;

async fn wait_batch(proxy: &UploaderProxy<'_>, batch: u64) -> usize {
    loop {
        let jobs = proxy
            .list_jobs(dict(&[("batch", Value::from(batch))]))
            .await
            .unwrap();
        let states: Vec<String> = jobs
            .iter()
            .map(|d| <&str>::try_from(&*d["state"]).unwrap().to_string())
            .collect();
        if states
            .iter()
            .all(|s| matches!(s.as_str(), "done" | "failed" | "cancelled"))
        {
            let failed = states.iter().filter(|s| *s != "done").count();
            assert_eq!(failed, 0, "some jobs did not finish");
            return states.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// curl uploading `files` to the emulator's /2/files/upload, 4 at a time (as the daemon does).
fn curl_photos(sandbox: &Sandbox, files: &[PathBuf], folder: &str, dir: &Path) -> Duration {
    let config = dir.join("curl.cfg");
    let mut cfg = std::fs::File::create(&config).unwrap();
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            writeln!(cfg, "next").unwrap();
        }
        let arg = format!(
            r#"{{\"path\": \"{folder}/{}\", \"mode\": \"add\"}}"#,
            file.file_name().unwrap().to_string_lossy()
        );
        writeln!(
            cfg,
            "url = \"{}/2/files/upload\"",
            sandbox.emulator.base_url()
        )
        .unwrap();
        writeln!(
            cfg,
            "header = \"Authorization: Bearer {}\"",
            sandbox.emulator.access_token()
        )
        .unwrap();
        writeln!(cfg, "header = \"Content-Type: application/octet-stream\"").unwrap();
        writeln!(cfg, "header = \"Dropbox-API-Arg: {arg}\"").unwrap();
        writeln!(cfg, "upload-file = \"{}\"", file.display()).unwrap();
        writeln!(cfg, "request = \"POST\"").unwrap();
        writeln!(cfg, "header = \"Expect:\"").unwrap();
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

#[tokio::main]
async fn main() {
    let idle_secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::Builder::new()
        .prefix("dbxport-bench-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
        .unwrap();
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config.upload = Config::default().upload;
    options.drop_root_file_access = false;
    options.log_filter = "warn".into();
    let mut sandbox = Sandbox::start(dir.path(), options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    sandbox.login().await.unwrap();
    let pid = sandbox.daemon_pid().unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let upload_config = Config::default().upload;
    println!(
        "dbxportd release build; transfers {}, session threshold {} MiB, chunk {} MiB",
        upload_config.transfers,
        upload_config.session_threshold >> 20,
        upload_config.chunk_size >> 20
    );

    // Idle first, while the queue is empty.
    let (rss0, ticks0) = (proc_status_kb(pid, "VmRSS:"), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (rss1, ticks1) = (proc_status_kb(pid, "VmRSS:"), cpu_ticks(pid));
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "idle {idle_secs} s: RSS {} -> {} KiB, CPU {:.2} s ({:.3} %)",
        rss0,
        rss1,
        (ticks1 - ticks0) as f64 / hz,
        (ticks1 - ticks0) as f64 / hz / idle_secs as f64 * 100.0
    );

    // Enqueue 10,000 paths (hard links of one photo), paused so nothing uploads meanwhile.
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos/flower.jpg");
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    let mut paths = Vec::new();
    for i in 0..10_000 {
        let p = many.join(format!("f{i:05}.jpg"));
        std::fs::hard_link(&photo, &p).unwrap_or_else(|_| {
            std::fs::copy(&photo, &p).unwrap();
        });
        paths.push(p.to_string_lossy().into_owned());
    }
    uploader.pause().await.unwrap();
    let started = Instant::now();
    let (batch, ids) = uploader
        .upload(paths, "/Enqueue".into(), dict(&[]))
        .await
        .unwrap();
    let enqueue = started.elapsed();
    println!(
        "enqueue: Upload with {} paths returned in {:.0} ms",
        ids.len(),
        enqueue.as_secs_f64() * 1000.0
    );
    uploader.cancel(batch).await.unwrap();
    uploader.resume().await.unwrap();

    // 200 photos of ~5 MB.
    let big_photo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos/IMG_20200608_111614.jpg");
    let photos_dir = dir.path().join("photos");
    std::fs::create_dir(&photos_dir).unwrap();
    let photos: Vec<PathBuf> = (0..200)
        .map(|i| {
            let p = photos_dir.join(format!("IMG_{i:04}.jpg"));
            // Distinct content per file (one byte differs), as real photos would be.
            let mut data = std::fs::read(&big_photo).unwrap();
            let at = data.len() - 3;
            data[at] = (i % 251) as u8;
            std::fs::write(&p, data).unwrap();
            p
        })
        .collect();
    let total: u64 = photos
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(
            photos
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            "/Photos200".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let n = wait_batch(&uploader, batch).await;
    let elapsed = started.elapsed();
    println!(
        "200 photos: {n} files, {:.1} MB in {:.2} s = {:.1} MB/s (dbxportd)",
        total as f64 / 1e6,
        elapsed.as_secs_f64(),
        mb_per_s(total, elapsed)
    );
    if curl_ok() {
        let elapsed = curl_photos(&sandbox, &photos, "/Curl200", dir.path());
        println!(
            "200 photos: {:.1} MB in {:.2} s = {:.1} MB/s (curl, 4 parallel, same emulator)",
            total as f64 / 1e6,
            elapsed.as_secs_f64(),
            mb_per_s(total, elapsed)
        );
    }

    // One 1 GiB file.
    let big = dir.path().join("video.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..1024u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32).wrapping_mul(2654435761).wrapping_add(i) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let size = 1u64 << 30;
    // Reset the peak-RSS counter so VmHWM covers this upload only.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let rss_before = proc_status_kb(pid, "VmRSS:");
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(
            vec![big.to_string_lossy().into_owned()],
            "/Big".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    wait_batch(&uploader, batch).await;
    let elapsed = started.elapsed();
    println!(
        "1 GiB file: {:.2} s = {:.1} MB/s (dbxportd, Upload to Done); RSS before {} KiB, peak during {} KiB",
        elapsed.as_secs_f64(),
        mb_per_s(size, elapsed),
        rss_before,
        proc_status_kb(pid, "VmHWM:")
    );
    if curl_ok() {
        let port = discard_sink().await;
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
                // Without this curl waits a second for a "100 Continue" the sink never sends.
                "-H",
                "Expect:",
                "-T",
            ])
            .arg(&big)
            .arg(format!("http://127.0.0.1:{port}/sink"))
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let elapsed = started.elapsed();
        println!(
            "1 GiB file: {:.2} s = {:.1} MB/s (curl to a discard sink: the loopback ceiling)",
            elapsed.as_secs_f64(),
            mb_per_s(size, elapsed)
        );
    }
    sandbox.shutdown().await;
}

//! `dbxportctl upload --wait` follows a batch to its end, whatever its size: the 100-photo
//! hang (signals left undrained while awaiting `ListJobs`), 1,000 and 10,000 files, and a
//! daemon restarted while the command waits.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use zbus::zvariant::Value;

use crate::helper::*;

/// `n` small distinct JPEG-looking files (the engine sends originals byte for byte, so only
/// the count matters here, not the pixels).
pub fn make_small_photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("s{i:05}.jpg"));
            let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
            bytes.extend(format!("photo {i} ").repeat(40).as_bytes());
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// A `dbxportctl` run in the background, its output going to files (a pipe nobody reads
/// would fill up and stall it).
pub struct Running {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Running {
    pub fn start(w: &World, name: &str, args: &[String]) -> Running {
        let stdout = w.dir.path().join(format!("{name}.stdout"));
        let stderr = w.dir.path().join(format!("{name}.stderr"));
        let child = w
            .sandbox
            .command(env!("CARGO_BIN_EXE_dbxportctl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("dbxportctl starts");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the command to end within `limit`; a command still running then is killed
    /// and the test fails, saying it hung.
    pub async fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "dbxportctl hung: still waiting after {} s\nstdout tail: {}\nstderr: {}",
                    limit.as_secs(),
                    tail(&std::fs::read_to_string(&self.stdout).unwrap_or_default()),
                    tail(&std::fs::read_to_string(&self.stderr).unwrap_or_default()),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (
            status,
            std::fs::read_to_string(&self.stdout).unwrap(),
            std::fs::read_to_string(&self.stderr).unwrap(),
        )
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn upload_args(to: &str, files: &[PathBuf]) -> Vec<String> {
    let mut args: Vec<String> = ["upload", "--to", to, "--wait"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    args
}

/// Uploads `n` files with `--wait` and checks that the command ends, within `limit`, with
/// every file counted and in Dropbox.
async fn wait_for_many(n: usize, limit: Duration) {
    let w = world(small_config()).await;
    let files = make_small_photos(&w.photo_dir(), n);
    let started = Instant::now();
    let run = Running::start(&w, "upload", &upload_args("/Many", &files));
    let (status, stdout, stderr) = run.finish(limit).await;
    eprintln!(
        "{n} files with --wait: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(status.success(), "{status}\n{}\n{stderr}", tail(&stdout));
    assert!(
        stdout.contains(&format!(
            "{n} uploaded, 0 already there, 0 failed, 0 cancelled"
        )),
        "{}",
        tail(&stdout)
    );
    // One line per file, each once.
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("done ")).count(),
        n,
        "{}",
        tail(&stdout)
    );
    assert_eq!(w.sandbox.emulator.files().len(), n);
}

#[system_test]
async fn wait_follows_100_photos_to_the_end() {
    // The finding: 100 photos hung 6 times out of 6. Real photos, several per second.
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 100);
    let run = Running::start(&w, "upload", &upload_args("/Hundred", &files));
    let (status, stdout, stderr) = run.finish(Duration::from_secs(120)).await;
    assert!(status.success(), "{status}\n{}\n{stderr}", tail(&stdout));
    assert!(
        stdout.contains("100 uploaded, 0 already there, 0 failed, 0 cancelled"),
        "{}",
        tail(&stdout)
    );
    let jobs = jobs(&w.uploader().await, &[("state", Value::from("all"))]).await;
    assert_eq!(jobs.len(), 100);
    assert_jobs_verified(&w, &jobs);
}

#[system_test]
async fn wait_follows_1000_files_to_the_end() {
    wait_for_many(1_000, Duration::from_secs(240)).await;
}

/// 10,000 files take several minutes on a small machine: run with `--ignored`.
#[system_test]
#[ignore]
async fn wait_follows_10000_files_to_the_end() {
    wait_for_many(10_000, Duration::from_secs(1_800)).await;
}

#[system_test]
async fn wait_survives_a_daemon_restart() {
    let mut w = world(small_config()).await;
    let files = make_small_photos(&w.photo_dir(), 30);
    // Paused, so the batch is certainly still open when the daemon goes.
    assert!(w.ctl(&["pause"]).status.success());
    let run = Running::start(&w, "upload", &upload_args("/Restart", &files));
    let uploader = w.uploader().await;
    wait_for("the batch to be queued", || async {
        (jobs(&uploader, &[("state", Value::from("active"))])
            .await
            .len()
            == 30)
            .then_some(())
    })
    .await;
    // The command is following (its first resync is done) before the daemon goes.
    wait_for("the command to follow", || async {
        std::fs::read_to_string(&run.stderr)
            .unwrap_or_default()
            .contains("queued 30 file(s)")
            .then_some(())
    })
    .await;
    w.sandbox.stop_daemon();
    // The command notices the daemon is gone (a resync finds nobody) and keeps waiting.
    wait_for("the command to notice", || async {
        std::fs::read_to_string(&run.stderr)
            .unwrap_or_default()
            .contains("dbxportd stopped; waiting for it to come back")
            .then_some(())
    })
    .await;
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    w.uploader().await.resume().await.unwrap();
    let (status, stdout, stderr) = run.finish(Duration::from_secs(120)).await;
    assert!(stderr.contains("dbxportd is back"), "{stderr}");
    assert!(status.success(), "{status}\n{}\n{stderr}", tail(&stdout));
    assert!(
        stdout.contains("30 uploaded, 0 already there, 0 failed, 0 cancelled"),
        "{}\n{stderr}",
        tail(&stdout)
    );
    assert_eq!(w.sandbox.emulator.files().len(), 30);
}

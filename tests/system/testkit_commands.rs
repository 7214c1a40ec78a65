//! `dbxportctl demo` and `dbxportctl emulator`, which run the test kit's binary
//! (`dbxport-testkit`, next to dbxportctl) in dbxportctl's place: the README's demo works end to
//! end through it, the emulator serves and stops on Ctrl-C with status 0, and a dbxportctl
//! without the test kit beside it (a packaged build) says what is missing and how to build it.
//!
//! The test kit's binary is built by the workspace's `cargo test` (its own tests need it); a
//! filtered `cargo test --test system` alone does not build it, hence the message below.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use crate::helper::*;

fn dbxportctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dbxportctl"))
}

/// Fails, saying how to build it, when the test kit's binary is not next to dbxportctl.
fn require_testkit_binary() {
    let binary = dbxportctl().with_file_name("dbxport-testkit");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p dbxport-testkit` (the workspace's \
         `cargo test` does)",
        binary.display()
    );
}

/// `dbxportctl ARGS` run from `exe`, to its end, within the deadline.
async fn run(exe: &Path, args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("dbxportctl {args:?} still running after {DEADLINE:?}"))
        .expect("dbxportctl runs")
}

#[system_test]
async fn demo_uploads_the_samples_and_lists_them_verified() {
    require_testkit_binary();
    let out = run(&dbxportctl(), &["demo"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Starting a private D-Bus, the Dropbox emulator and dbxportd"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Dropbox now holds in /dbxport-demo:"),
        "{stdout}"
    );
    let samples = sample_photos();
    assert!(!samples.is_empty());
    for photo in samples {
        let name = photo.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            stdout
                .lines()
                .any(|line| line.ends_with(&format!("  {name}")) && line.contains("  same  ")),
            "{name} is not listed as the same as the local file:\n{stdout}"
        );
    }
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
}

#[system_test]
async fn emulator_serves_until_ctrl_c() {
    require_testkit_binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dropbox");
    let token = "sl.a-token-for-the-emulator-command";
    let mut child = tokio::process::Command::new(dbxportctl())
        .args([
            "emulator",
            "--root",
            &root.to_string_lossy(),
            "--token",
            token,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dbxportctl runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the emulator says where it listens in time")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("Dropbox API emulator on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();

    // It answers a client pointed at it, with the token given.
    let mut config = dbxport::config::Config::default();
    config.dropbox.api_url = url.clone();
    config.dropbox.content_url = url;
    let client = dbxport::daemon::client_for(&config).unwrap();
    client
        .get_space_usage(&dbxport::secret::Secret::new(token))
        .await
        .expect("the emulator answers");

    // Ctrl-C stops it cleanly: the exec kept dbxportctl's process, so the signal reaches it.
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on the child this test started and still holds.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the emulator stops in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[system_test]
async fn emulator_flags_set_the_network_model() {
    require_testkit_binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dropbox");
    let token = "sl.a-token-for-the-emulator-command";
    #[rustfmt::skip]
    let flags = [
        "--latency-ms", "300", "--jitter-ms", "20", "--bandwidth", "10MB", "--rate-limit", "12",
        "--commit-lock-ms", "200", "--commit-entry-ms", "2",
    ];
    let mut child = tokio::process::Command::new(dbxportctl())
        .args([
            "emulator",
            "--root",
            &root.to_string_lossy(),
            "--token",
            token,
        ])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dbxportctl runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the emulator says what it does in time")
            .unwrap()
            .expect("a line")
    };
    let first = next_line().await;
    let url = first
        .strip_prefix("Dropbox API emulator on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let second = next_line().await;
    assert_eq!(
        second,
        "network: latency 300 ms + up to 20 ms, upload bandwidth 10000000 bytes/s, \
         12 requests/s per token, namespace lock 200 ms + 2 ms per file"
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let shown: serde_json::Value = http
        .get(format!("{url}/__emulator/network"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["model"],
        serde_json::json!({
            "latency_ms": 300, "jitter_ms": 20, "seed": 0, "bandwidth": 10_000_000,
            "rate_limit": 12, "commit_lock": {"base_ms": 200, "per_entry_ms": 2},
        })
    );
    // A client pointed at it pays the latency.
    let mut config = dbxport::config::Config::default();
    config.dropbox.api_url = url.clone();
    config.dropbox.content_url = url;
    let client = dbxport::daemon::client_for(&config).unwrap();
    let sent = std::time::Instant::now();
    client
        .get_space_usage(&dbxport::secret::Secret::new(token))
        .await
        .expect("the emulator answers");
    assert!(sent.elapsed() >= std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on the child this test started and still holds.
    assert_eq!(
        unsafe { libc::kill(child.id().expect("running") as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the emulator stops in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // A rate it cannot read is a usage error that says what it takes.
    let out = run(
        &dbxportctl(),
        &[
            "emulator",
            "--root",
            &root.to_string_lossy(),
            "--bandwidth",
            "fast",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"fast\" is not a rate: try 10MB"),
        "{stderr}"
    );
}

#[system_test]
async fn without_the_test_kit_demo_and_emulator_say_how_to_build_it() {
    // A dbxportctl alone in its directory, as a package installs it.
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("dbxportctl");
    std::fs::copy(dbxportctl(), &alone).unwrap();
    for args in [vec!["demo"], vec!["emulator", "--root", "/nonexistent"]] {
        let out = run(&alone, &args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        for needed in [
            format!("`dbxportctl {}` needs", args[0]),
            "dbxport-testkit".to_string(),
            dir.path().join("dbxport-testkit").display().to_string(),
            "cargo build --release --bins".to_string(),
        ] {
            assert!(
                stderr.contains(&needed),
                "{args:?}: {needed:?} not in {stderr}"
            );
        }
    }
}

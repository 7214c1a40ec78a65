//! The whole path: `dbxportctl upload --wait` → D-Bus → queue → engine → emulator.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;

use crate::helper::*;

#[system_test]
async fn twenty_photos_go_up_verified_with_progress() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 20);
    let threshold = small_config().upload.session_threshold;
    assert!(
        files
            .iter()
            .any(|f| std::fs::metadata(f).unwrap().len() > threshold)
    );
    assert!(
        files
            .iter()
            .any(|f| std::fs::metadata(f).unwrap().len() <= threshold)
    );

    // Count progress signals on our own connection, subscribed before the upload starts.
    let uploader = w.uploader().await;
    let mut progress = uploader.receive_job_progress().await.unwrap();
    let complete_signals = Arc::new(AtomicU64::new(0));
    let counter = complete_signals.clone();
    tokio::spawn(async move {
        while let Some(signal) = progress.next().await {
            let args = signal.args().unwrap();
            assert!(args.sent <= args.total, "progress beyond the total");
            if args.sent == args.total && args.total > 0 {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let mut args = vec!["upload", "--to", "/E2E", "--original", "--wait"];
    let names: Vec<String> = paths(&files);
    args.extend(names.iter().map(String::as_str));
    let out = w.ctl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("20 uploaded, 0 already there, 0 failed"),
        "{stdout}"
    );

    // The emulator holds each file once, with the local content hash.
    let stored: HashMap<String, _> = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| (f.path_lower.clone(), f))
        .collect();
    assert_eq!(stored.len(), 20, "{:?}", stored.keys());
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        let remote = stored
            .get(&format!("/e2e/{name}"))
            .unwrap_or_else(|| panic!("{name} missing in Dropbox"));
        assert_eq!(remote.content_hash, hash(file), "{name}");
        assert_eq!(remote.size, std::fs::metadata(file).unwrap().len());
    }
    // Large files went through sessions of several appends, committed on their own; small ones
    // were sent whole and committed together.
    let routes: Vec<String> = w
        .sandbox
        .emulator
        .requests()
        .into_iter()
        .map(|r| r.route)
        .collect();
    assert!(
        routes
            .iter()
            .any(|r| r == "/2/files/upload_session/append_v2"),
        "no session appends"
    );
    assert!(
        routes.iter().any(|r| r == "/2/files/upload_session/finish"),
        "no large file committed on its own"
    );
    let batch_commits = routes
        .iter()
        .filter(|r| *r == "/2/files/upload_session/finish_batch_v2")
        .count();
    assert!(
        (1..=10).contains(&batch_commits),
        "{batch_commits} batch commits for 20 photos"
    );
    assert!(
        !routes.iter().any(|r| r == "/2/files/upload"),
        "a photo was committed on its own with files/upload"
    );

    // Every file's last byte was reported.
    wait_for("a progress signal per file", || {
        let seen = complete_signals.load(Ordering::Relaxed);
        async move { (seen >= 20).then_some(()) }
    })
    .await;

    // `dbxportctl jobs --json` agrees with the emulator.
    let out = w.ctl(&["jobs", "--json"]);
    assert!(out.status.success());
    let jobs: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("jobs --json is JSON");
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        assert_eq!(job["state"], "done", "{job}");
        let remote = job["remote_path"].as_str().unwrap().to_lowercase();
        assert_eq!(
            job["content_hash"].as_str(),
            Some(stored[&remote].content_hash.as_str()),
            "{job}"
        );
    }
    let out = w.ctl(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["queue_length"], 0);
    assert_eq!(status["account_state"], "logged_in");
}

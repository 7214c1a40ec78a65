//! The limits on sending: the bandwidth limit (set with `dbxportctl limit`, obeyed by
//! transfers, kept across restarts), and how many requests go at once (adaptive, shown in
//! `status` and told in the daemon's log).

use std::time::{Duration, Instant};

use crate::helper::*;

#[system_test]
async fn uploads_keep_to_the_bandwidth_limit() {
    let mut w = world(small_config()).await;
    let out = w.ctl(&["limit", "1M"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1000000 bytes/s"));
    let big = sample_photos().into_iter().next().unwrap();
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > 4_000_000);
    let uploader = w.uploader().await;
    let started = Instant::now();
    let (batch, _) = uploader
        .upload(paths(&[big]), "/Slow".into(), dict(&[]))
        .await
        .unwrap();
    // While it runs, status shows the rate (at most the limit) and a time left.
    let status = wait_for("a throughput in status", || async {
        let out = w.ctl(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (status["throughput"].as_u64().unwrap() > 0).then_some(status)
    })
    .await;
    assert!(
        status["throughput"].as_u64().unwrap() <= 1_300_000,
        "{status}"
    );
    assert!(status["eta_seconds"].as_u64().is_some(), "{status}");
    assert_eq!(status["bandwidth_limit"], 1_000_000);
    // And how many requests may carry data at once now: the adaptive limit, within its
    // ceiling (`upload.transfers`).
    let concurrency = status["concurrency"].as_u64().expect("a concurrency");
    let ceiling = small_config().upload.transfers as u64;
    assert!((1..=ceiling).contains(&concurrency), "{status}");
    assert_jobs_verified(&w, &batch_final(&uploader, batch).await);
    // At 1 MB/s, 4.8 MB cannot take less than about 4.8 s (one slice may go at once).
    let floor = Duration::from_secs_f64((size - 256 * 1024) as f64 / 1_000_000.0);
    assert!(
        started.elapsed() >= floor,
        "{:?} for {size} bytes at 1 MB/s",
        started.elapsed()
    );

    // The limit outlives a restart; `off` lifts it.
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    assert_eq!(
        w.uploader().await.bandwidth_limit().await.unwrap(),
        1_000_000
    );
    let out = w.ctl(&["limit", "off"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no bandwidth limit"));
    // Checked before the daemon is asked: a usage error.
    let out = w.ctl(&["limit", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a rate"));
}

#[system_test]
async fn pause_holds_transfers_across_a_restart_until_resume() {
    let mut w = world(small_config()).await;
    let out = w.ctl(&["pause"]);
    assert!(out.status.success());
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    assert!(
        uploader.paused().await.unwrap(),
        "pause was forgotten by the restart"
    );
    let files = make_photos(&w.photo_dir(), 3);
    let before = w.sandbox.emulator.requests().len();
    let (batch, _) = uploader
        .upload(paths(&files), "/Paused".into(), dict(&[]))
        .await
        .unwrap();
    // The proxy caches QueueLength from PropertiesChanged, which may arrive after Upload's
    // reply: wait for it once, then it must stay.
    wait_for("QueueLength 3", || async {
        (uploader.queue_length().await.unwrap() == 3).then_some(())
    })
    .await;
    // Accepted and queued, but nothing goes to Dropbox while paused. (Observed through the
    // daemon's own view: the jobs stay queued while it answers other calls.)
    for _ in 0..3 {
        let queued = jobs(&uploader, &[("batch", zbus::zvariant::Value::from(batch))]).await;
        assert!(queued.iter().all(|j| j.state == "queued"), "{queued:#?}");
        assert_eq!(uploader.queue_length().await.unwrap(), 3);
    }
    assert!(
        w.sandbox.emulator.requests()[before..]
            .iter()
            .all(|r| !r.route.starts_with("/2/files/")),
        "a transfer started while paused"
    );
    let out = w.ctl(&["resume"]);
    assert!(out.status.success());
    assert_jobs_verified(&w, &batch_final(&uploader, batch).await);
}

#[system_test]
async fn the_measured_rate_is_within_ten_percent_of_the_limit() {
    const LIMIT: f64 = 4_000_000.0;
    let mut config = small_config();
    config.upload.bandwidth_limit = LIMIT as u64;
    let w = world(config).await;
    // 24 MiB: six 4 MiB requests, about 6.3 s at the limit.
    let file = w.photo_dir().join("paced.raw");
    write_random_file(&file, 24 * dbxport::config::MIB, 9);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(std::slice::from_ref(&file)),
            "/Paced".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    assert_jobs_verified(&w, &batch_final(&uploader, batch).await);
    // The rate as Dropbox sees it: from the first upload request's arrival to the arrival of
    // the last one that carried bytes, the bytes of every body but that last one's (whose
    // bytes come after its arrival). Commits without a body come whenever the engine likes.
    let requests = w.sandbox.emulator.requests();
    let carrying: Vec<_> = requests
        .iter()
        .filter(|r| is_upload_route(&r.route) && r.body_bytes > 0)
        .collect();
    assert!(carrying.len() >= 4, "{carrying:?}");
    let (first, last) = (carrying[0], carrying[carrying.len() - 1]);
    let bytes: u64 = carrying[..carrying.len() - 1]
        .iter()
        .map(|r| r.body_bytes)
        .sum();
    let seconds = (last.received - first.received).as_secs_f64();
    let rate = bytes as f64 / seconds;
    eprintln!("{bytes} bytes in {seconds:.2} s: {rate:.0} bytes/s against a limit of {LIMIT}");
    assert!(
        (rate - LIMIT).abs() <= LIMIT * 0.10,
        "{rate:.0} bytes/s is not within 10 % of the limit {LIMIT}"
    );
}

#[system_test]
async fn the_daemon_log_tells_when_the_requests_at_once_change() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 8);
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Rounds").await;
    // Two at once to start with; a round of two requests that went well while others waited
    // makes it three.
    let log = w.daemon_log();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("requests at once"))
        .collect();
    assert!(
        told.iter()
            .any(|l| l.contains("requests at once: 2 → 3 (a round of requests went well)")),
        "{told:#?}"
    );
}

//! The network model (`network`, `throttle`): latency and jitter, the shared upload bandwidth,
//! the per-token rate limit with its Retry-After and the count of early requests, and the
//! namespace lock commits take. Lower bounds on time are asserted exactly; upper bounds are
//! loose, for a loaded machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::super::{CommitLock, NetworkModel};
use super::*;

/// Far above anything these requests need on loopback, however loaded the machine.
const SLACK: Duration = Duration::from_secs(5);

fn model() -> NetworkModel {
    NetworkModel::default()
}

#[tokio::test]
async fn every_answer_waits_the_latency_and_the_jitter_stays_in_its_range() {
    let h = start().await;
    let latency = Duration::from_millis(40);
    h.emu.set_network(NetworkModel { latency, ..model() });
    let n = 10;
    let started = Instant::now();
    for _ in 0..n {
        h.rpc("/2/files/list_folder", json!({"path": ""}))
            .await
            .ok();
    }
    let took = started.elapsed();
    assert!(took >= latency * n, "{n} requests took {took:?}");
    assert!(took < latency * n + SLACK, "{n} requests took {took:?}");

    // Jitter: each delay within latency..=latency+jitter, drawn anew for each request.
    let (latency, jitter) = (Duration::from_millis(20), Duration::from_millis(30));
    h.emu.set_network(NetworkModel {
        latency,
        jitter,
        seed: 3,
        ..model()
    });
    let before = h.emu.requests().len();
    let mut measured = Vec::new();
    for _ in 0..20 {
        let sent = Instant::now();
        h.rpc("/2/files/list_folder", json!({"path": ""}))
            .await
            .ok();
        measured.push(sent.elapsed());
    }
    let drawn: Vec<Duration> = h.emu.requests()[before..]
        .iter()
        .map(|r| r.latency)
        .collect();
    assert_eq!(drawn.len(), 20);
    for (drawn, measured) in drawn.iter().zip(&measured) {
        assert!(
            (latency..=latency + jitter).contains(drawn),
            "{drawn:?} outside {latency:?}..={:?}",
            latency + jitter
        );
        assert!(
            measured >= drawn,
            "answered in {measured:?}, drawn {drawn:?}"
        );
    }
    assert!(
        drawn.iter().any(|d| *d != drawn[0]),
        "the jitter varies: {drawn:?}"
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn bodies_are_read_at_the_bandwidth_cap_shared_by_all_connections() {
    let h = start().await;
    let cap = 1_000_000u64;
    h.emu.set_network(NetworkModel {
        bandwidth: Some(cap),
        ..model()
    });
    let size = 300_000usize;
    let one = bytes(size, 1);
    let at_cap = Duration::from_secs_f64(size as f64 / cap as f64);
    let started = Instant::now();
    h.upload("/one.bin", &one).await;
    let took = started.elapsed();
    assert!(took >= at_cap, "{size} bytes at {cap} B/s took {took:?}");
    assert!(took < at_cap + SLACK, "{took:?}");

    // Two bodies at once, on two connections, share the one uplink.
    let (a, b) = (bytes(size, 2), bytes(size, 3));
    let started = Instant::now();
    let other = client();
    let second = async {
        let response = other
            .post(h.url("/2/files/upload"))
            .bearer_auth(&h.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Dropbox-API-Arg", json!({"path": "/b.bin"}).to_string())
            .body(b.clone())
            .send()
            .await
            .expect("send");
        Answer::of(response).await
    };
    let (first, second) = tokio::join!(h.upload("/a.bin", &a), second);
    let took = started.elapsed();
    second.ok();
    assert_eq!(first["size"], size);
    assert!(
        took >= at_cap * 2,
        "two bodies of {size} bytes took {took:?}"
    );
    for (path, data) in [("/one.bin", &one), ("/a.bin", &a), ("/b.bin", &b)] {
        let stored = h.stored(path).expect("stored");
        assert_eq!(stored.content_hash, content_hash(data), "{path}");
    }
    h.emu.shutdown().await;
}

#[tokio::test]
async fn over_the_rate_limit_a_request_is_refused_with_retry_after_and_sooner_is_early() {
    let h = start().await;
    h.emu.set_network(NetworkModel {
        rate_limit: Some(3),
        ..model()
    });
    for _ in 0..3 {
        h.rpc("/2/files/list_folder", json!({"path": ""}))
            .await
            .ok();
    }
    let photo = bytes(1000, 4);
    let answer = h.upload_with(json!({"path": "/over.jpg"}), &photo).await;
    let error = answer.route_error(429, "too_many_requests/");
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        error,
        json!({"reason": {".tag": "too_many_requests"}, "retry_after": 1})
    );
    assert!(
        h.stored("/over.jpg").is_none(),
        "a throttled request is not processed"
    );
    assert_eq!(h.emu.early_requests(), 0);

    // Sent again at once (the client read the 429): early, and throttled again.
    let again = h.upload_with(json!({"path": "/over.jpg"}), &photo).await;
    let told = Instant::now();
    again.route_error(429, "too_many_requests/");
    assert_eq!(h.emu.early_requests(), 1);
    let last = h.emu.requests().pop().expect("logged");
    assert!(last.early.is_some_and(|by| by > Duration::ZERO), "{last:?}");
    assert!(h.stored("/over.jpg").is_none());

    // Obeying Retry-After: the wait told, then it goes through.
    let retry_after: u64 = again.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep_until((told + Duration::from_secs(retry_after)).into()).await;
    h.upload("/over.jpg", &photo).await;
    assert!(h.stored("/over.jpg").is_some());
    let stats = h.emu.network_stats();
    assert_eq!(stats.early_requests, 1, "{stats:?}");
    assert_eq!(stats.too_many_requests, 2, "{stats:?}");
    assert_eq!(stats.too_many_write_operations, 0, "{stats:?}");
    h.emu.shutdown().await;
}

#[tokio::test]
async fn a_commit_meeting_the_held_lock_is_refused_and_appends_go_on() {
    let h = start().await;
    let hold = Duration::from_secs(2);
    h.emu.set_network(NetworkModel {
        commit_lock: Some(CommitLock {
            base: hold,
            per_entry: Duration::ZERO,
        }),
        ..model()
    });
    let session = h.session(&bytes(100, 5), false).await;
    let first = bytes(2000, 6);
    let first_answered = AtomicBool::new(false);
    let started = Instant::now();
    let holder = async {
        let answer = h.upload_with(json!({"path": "/first.jpg"}), &first).await;
        first_answered.store(true, Ordering::SeqCst);
        (answer, started.elapsed())
    };
    let meanwhile = async {
        // The first commit is processed at once; its answer waits for the hold.
        eventually("the first commit written", || {
            h.stored("/first.jpg").is_some()
        })
        .await;
        let refused = h
            .upload_with(json!({"path": "/second.jpg"}), &bytes(2000, 7))
            .await;
        let error = refused.route_error(429, "too_many_write_operations/");
        assert_eq!(refused.headers["retry-after"], "1");
        assert_eq!(
            error,
            json!({"reason": {".tag": "too_many_write_operations"}})
        );
        let folder = h
            .rpc("/2/files/create_folder_v2", json!({"path": "/Album"}))
            .await;
        folder.route_error(429, "too_many_write_operations/");
        // Data transport never takes the lock.
        let append = h
            .content(
                "/2/files/upload_session/append_v2",
                json!({"cursor": {"session_id": session, "offset": 100}}),
                bytes(100, 8),
            )
            .await;
        assert_eq!(append.status, 200, "{}", append.text());
        h.session(&bytes(10, 9), true).await;
        assert!(
            !first_answered.load(Ordering::SeqCst),
            "all this happened while the lock was held"
        );
    };
    let ((answer, took), ()) = tokio::join!(holder, meanwhile);
    answer.ok();
    assert!(
        took >= hold,
        "the commit's answer waited for its hold: {took:?}"
    );
    assert!(
        h.stored("/second.jpg").is_none(),
        "the refused commit wrote nothing"
    );
    assert!(h.stored("/album").is_none());
    // The hold is over: the next commit goes through.
    h.upload("/second.jpg", &bytes(2000, 7)).await;
    assert_eq!(h.emu.network_stats().too_many_write_operations, 2);

    // Two commits sent at once: one commits, the other is refused.
    let (a_bytes, b_bytes) = (bytes(500, 10), bytes(500, 11));
    let (a, b) = tokio::join!(
        h.upload_with(json!({"path": "/a.jpg"}), &a_bytes),
        h.upload_with(json!({"path": "/b.jpg"}), &b_bytes),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429], "{} / {}", a.text(), b.text());
    let written = ["/a.jpg", "/b.jpg"]
        .iter()
        .filter(|p| h.stored(p).is_some())
        .count();
    assert_eq!(written, 1);
    h.emu.shutdown().await;
}

/// A closed session of a few bytes, ready for a batch commit.
async fn closed_session(h: &Harness, seed: u8) -> String {
    h.session(&bytes(100, seed), true).await
}

#[tokio::test]
async fn the_hold_grows_with_the_entries_of_a_batch_commit() {
    let h = start().await;
    let (base, per_entry) = (Duration::from_millis(100), Duration::from_millis(100));
    h.emu.set_network(NetworkModel {
        commit_lock: Some(CommitLock { base, per_entry }),
        ..model()
    });
    for entries in [1u32, 8] {
        let mut list = Vec::new();
        for i in 0..entries {
            let session = closed_session(&h, i as u8).await;
            list.push(json!({
                "cursor": {"session_id": session, "offset": 100},
                "commit": {"path": format!("/batch{entries}/{i}.jpg")},
            }));
        }
        let started = Instant::now();
        let answer = h
            .rpc(
                "/2/files/upload_session/finish_batch_v2",
                json!({"entries": list}),
            )
            .await;
        let took = started.elapsed();
        let result = answer.ok();
        let results = result["entries"].as_array().expect("entries");
        assert!(results.iter().all(|e| e[".tag"] == "success"), "{result}");
        let hold = base + per_entry * entries;
        assert!(took >= hold, "{entries} entries answered after {took:?}");
        assert!(took < hold + SLACK, "{took:?}");
    }
    h.emu.shutdown().await;
}

#[tokio::test]
async fn the_control_route_sets_the_model_and_shows_what_it_did() {
    let h = start().await;
    let set = h
        .http
        .post(h.url("/__emulator/network"))
        .json(&json!({"rate_limit": 1, "commit_lock": {"base_ms": 10}}))
        .send()
        .await
        .expect("send");
    assert_eq!(set.status(), 200);
    assert_eq!(
        h.emu.network(),
        NetworkModel {
            rate_limit: Some(1),
            commit_lock: Some(CommitLock {
                base: Duration::from_millis(10),
                per_entry: Duration::ZERO,
            }),
            ..model()
        }
    );
    h.rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .ok();
    h.rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .route_error(429, "too_many_requests/");
    let shown: serde_json::Value = h
        .http
        .get(h.url("/__emulator/network"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        shown,
        json!({
            "model": {"latency_ms": 0, "jitter_ms": 0, "seed": 0, "bandwidth": null,
                      "rate_limit": 1, "commit_lock": {"base_ms": 10, "per_entry_ms": 0}},
            "stats": {"too_many_requests": 1, "too_many_write_operations": 0,
                      "early_requests": 0},
        })
    );
    // An unknown knob is refused, not ignored.
    let typo = h
        .http
        .post(h.url("/__emulator/network"))
        .json(&json!({"latency": 80}))
        .send()
        .await
        .expect("send");
    assert_eq!(typo.status(), 400);
    h.emu.shutdown().await;
}

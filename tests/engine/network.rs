//! The engine at network distance: the emulator's network model on (latency, the per-token
//! rate limit, the namespace lock), and the client copes: every photo Done and verified, and
//! no request sooner than a Retry-After told it (ARCHITECTURE.md, invariant 6).

use std::time::Duration;

use dbxport_testkit::emulator::{CommitLock, NetworkModel};

use super::*;

#[system_test]
async fn fifty_photos_go_up_through_latency_rate_limit_and_lock_never_sooner_than_retry_after() {
    let bench = Bench::start().await;
    bench.emulator.set_network(NetworkModel {
        latency: Duration::from_millis(30),
        // Packs carry the fifty in a handful of requests: a low rate so that they meet it.
        rate_limit: Some(2),
        commit_lock: Some(CommitLock {
            base: Duration::from_millis(50),
            per_entry: Duration::from_millis(2),
        }),
        ..NetworkModel::default()
    });
    let photos: Vec<(PathBuf, Vec<u8>)> = (0..50u64)
        .map(|i| bench.file(&format!("net{i:02}.jpg"), 20_000 + 100 * i))
        .collect();
    let paths: Vec<&Path> = photos.iter().map(|(path, _)| path.as_path()).collect();
    let queued = bench.enqueue("/Network", &paths).await;
    let (jobs, finals) = bench.until_final(queued).await;
    for (job, (_, bytes)) in jobs.iter().zip(&photos) {
        assert_done_with(&bench, &finals[&job.id].0, bytes);
    }
    let early: Vec<(String, Duration)> = bench
        .emulator
        .requests()
        .into_iter()
        .filter_map(|r| Some((r.route, r.early?)))
        .collect();
    let stats = bench.emulator.network_stats();
    assert_eq!(
        stats.early_requests, 0,
        "sooner than Retry-After: {early:?}"
    );
    assert!(
        stats.too_many_requests > 0,
        "the rate limit was met, so the test shows the client waiting it out: {stats:?}"
    );
    bench.stop().await;
}

//! Transient faults are not failures (invariant 6): 429s and 5xx on the upload routes are
//! retried until every job is Done, and never sooner than Retry-After.

use std::time::Duration;

use dbxport::emulator::Fault;

use crate::helper::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_waited_out() {
    // One transfer at a time: besides the batch committer, at most one request is on the wire
    // when a 429 is answered.
    let mut config = small_config();
    config.upload.transfers = 1;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 10);
    let faults = w.sandbox.emulator.faults();
    faults.inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::TooManyRequests { retry_after: 2 },
        2,
    );
    faults.inject(
        "/2/files/upload_session/finish",
        Fault::TooManyWriteOperations { retry_after: 1 },
        1,
    );
    faults.inject(
        "/2/files/upload_session/append_v2",
        Fault::ServerError { status: 503 },
        2,
    );
    faults.inject(
        "/2/files/upload_session/start",
        Fault::ServerError { status: 500 },
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Flaky".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    assert_jobs_verified(&w, &done);
    assert_eq!(w.sandbox.emulator.files().len(), 10);

    let requests = w.sandbox.emulator.requests();
    let injected: Vec<_> = requests.iter().filter(|r| r.fault.is_some()).collect();
    assert_eq!(
        injected.len(),
        6,
        "every injected fault was hit: {injected:?}"
    );
    // After a 429, nothing was sent before its Retry-After had passed — except the one request
    // the other lane (transfer or committer) may already have had on the wire, which arrives
    // at once; never the same route.
    for (i, limited) in requests.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let retry_after = if limited.route == "/2/files/upload_session/finish_batch_v2" {
            2
        } else {
            1
        };
        let earliest = limited.received + Duration::from_secs(retry_after);
        let early: Vec<_> = requests[i + 1..]
            .iter()
            .filter(|later| later.route.starts_with("/2/files/") && later.received < earliest)
            .collect();
        assert!(
            early.len() <= 1,
            "{} requests within Retry-After {retry_after}s of a 429 on {}: {early:?}",
            early.len(),
            limited.route
        );
        for later in early {
            let after = later.received - limited.received;
            assert!(
                later.route != limited.route && after < Duration::from_millis(100),
                "{} came {after:?} after a 429 on {} with Retry-After {retry_after}",
                later.route,
                limited.route
            );
        }
    }
}

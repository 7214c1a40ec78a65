//! Transient faults are not failures (ARCHITECTURE.md, invariant 6): 429s and 5xx on the upload routes are
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
    assert_retry_after_kept(&requests, |limited| {
        if limited.route == "/2/files/upload_session/finish_batch_v2" {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        }
    });
}

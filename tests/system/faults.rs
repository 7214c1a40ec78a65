//! Transient faults are not failures (ARCHITECTURE.md, invariant 6): 429s and 5xx on the upload routes are
//! retried until every job is Done, and never sooner than Retry-After.

use std::time::Duration;

use dbxport_testkit::emulator::Fault;

use crate::helper::*;

#[system_test]
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
    upload_verified(&w, &uploader, &files, "/Flaky").await;
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

/// A 429 on `files/list_folder` (the listing skip-identical reads) holds back every request
/// for its Retry-After, as on the upload routes: nothing reaches Dropbox's API sooner.
#[system_test]
async fn retry_after_on_list_folder_is_kept() {
    let mut config = small_config();
    config.upload.transfers = 1;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 12);
    w.sandbox.emulator.faults().inject(
        "/2/files/list_folder",
        Fault::TooManyRequests { retry_after: 1 },
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Listed".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    let requests = w.sandbox.emulator.requests();
    let (at, limited) = requests
        .iter()
        .enumerate()
        .find(|(_, r)| r.status == 429)
        .expect("the listing was rate limited");
    assert_eq!(limited.route, "/2/files/list_folder");
    // No listing is asked again before the wait has passed; requests of other lanes already
    // on the wire may arrive within moments (see `assert_retry_after_kept`), none later.
    let relisted: Vec<_> = requests[at + 1..]
        .iter()
        .filter(|r| r.route == "/2/files/list_folder")
        .map(|r| r.received - limited.received)
        .collect();
    assert!(
        relisted
            .iter()
            .all(|after| *after >= Duration::from_secs(1)),
        "list_folder asked again {relisted:?} after a 429 with Retry-After 1 s"
    );
    assert_retry_after_kept(&requests, |_| Duration::from_secs(1));
}

/// The folder browser's listing (`Folders.ListFolders`) keeps a Retry-After too: asked again at
/// once after a 429, the daemon sends nothing to Dropbox until the wait has passed.
#[system_test]
async fn retry_after_holds_back_the_folder_browser_too() {
    let w = world(small_config()).await;
    w.sandbox.emulator.faults().inject(
        "/2/files/list_folder",
        Fault::TooManyRequests { retry_after: 2 },
        1,
    );
    let folders = dbxport::service::FoldersProxy::new(&w.conn).await.unwrap();
    let err = folders
        .list_folders("/".into())
        .await
        .expect_err("the 429 is reported");
    assert!(err.to_string().contains("slow down"), "{err}");
    folders
        .list_folders("/".into())
        .await
        .expect("the second try succeeds, once the wait has passed");
    let listings: Vec<_> = w
        .sandbox
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.route == "/2/files/list_folder")
        .collect();
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert_eq!(listings[0].status, 429);
    let gap = listings[1].received - listings[0].received;
    assert!(
        gap >= Duration::from_secs(2),
        "asked again {gap:?} after a 429 with Retry-After 2 s"
    );
}

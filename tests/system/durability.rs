//! Invariants 1–3 under `kill -9` and lost answers: nothing accepted is lost, and each job
//! ends as exactly one remote file.

use dbxport_testkit::emulator::Fault;
use zbus::zvariant::Value;

use crate::helper::*;

#[system_test]
async fn kill_9_mid_upload_loses_nothing_and_duplicates_nothing() {
    let mut config = small_config();
    config.upload.transfers = 2;
    let mut w = world(config).await;
    let files = make_photos(&w.photo_dir(), 12);
    // Slow appends so the daemon is caught with sessions half-sent.
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 1500 },
        100,
    );
    let uploader = w.uploader().await;
    let (batch, ids) = uploader
        .upload(paths(&files), "/Kill".into(), dict(&[]))
        .await
        .expect("Upload");
    assert_eq!(ids.len(), 12);

    // Kill it once a session has data in it.
    w.wait_for_request("/2/files/upload_session/append_v2")
        .await;
    w.sandbox.kill_daemon();
    w.sandbox.emulator.faults().clear();

    w.sandbox.start_daemon().await.expect("restart");
    let conn = w.sandbox.bus.connect().await.unwrap();
    let uploader = dbxport::service::UploaderProxy::new(&conn).await.unwrap();
    // Every accepted job is still there.
    let all = jobs(&uploader, &[("batch", Value::from(batch))]).await;
    assert_eq!(all.len(), 12, "jobs lost across kill -9");
    let done = batch_final(&uploader, batch).await;
    assert!(
        done.iter().all(|j| j.state == "done"),
        "{done:#?}\n{}",
        w.daemon_log()
    );
    assert_jobs_verified(&w, &done);
    assert_one_copy_each(&w, &files, "/kill");
    // The job caught with a session open went on with that session instead of starting over.
    assert!(
        w.daemon_log()
            .contains("resuming an upload session at offset"),
        "{}",
        w.daemon_log()
    );
}

#[system_test]
async fn kill_9_right_after_upload_returns_keeps_the_jobs() {
    let mut w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 30);
    // Hold every request so nothing finishes before the kill.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 5000 }, 1000);
    let uploader = w.uploader().await;
    let (batch, ids) = uploader
        .upload(paths(&files), "/Queued".into(), dict(&[]))
        .await
        .unwrap();
    w.sandbox.kill_daemon();
    w.sandbox.emulator.faults().clear();
    w.sandbox.start_daemon().await.unwrap();
    let conn = w.sandbox.bus.connect().await.unwrap();
    let uploader = dbxport::service::UploaderProxy::new(&conn).await.unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done.len(), ids.len());
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    assert_jobs_verified(&w, &done);
    assert_one_copy_each(&w, &files, "/queued");
}

#[system_test]
async fn a_lost_commit_answer_is_resolved_by_looking_not_by_sending_again() {
    lost_commit_answers(true).await;
}

#[system_test]
async fn a_lost_commit_answer_without_batching_is_resolved_by_looking() {
    lost_commit_answers(false).await;
}

/// Commits land but their answers are lost: batch commits, single-file commits and (without
/// batching) single-request uploads. Every file must end up once, its bytes sent once.
async fn lost_commit_answers(batch_commit: bool) {
    let mut config = small_config();
    config.upload.batch_commit = batch_commit;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 14);
    let faults = w.sandbox.emulator.faults();
    // The file is written, the connection drops before the answer.
    faults.inject("/2/files/upload", Fault::LoseAnswer, 2);
    faults.inject("/2/files/upload_session/finish", Fault::LoseAnswer, 2);
    faults.inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::LoseAnswer,
        1,
    );
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Lost").await;
    assert_one_copy_each(&w, &files, "/lost");
    let requests = w.sandbox.emulator.requests();
    let lost = requests.iter().filter(|r| r.fault.is_some()).count();
    assert!(lost >= 3, "only {lost} answers were lost");
    // Each file's bytes were sent once: after a lost answer the daemon asked, it did not
    // resend. Every file starts once: a whole upload, a session start or a piece of a pack.
    let first_requests = files_started(&requests);
    assert_eq!(first_requests, files.len(), "files were sent again");
    assert!(
        requests.iter().any(|r| r.route == "/2/files/get_metadata"),
        "the outcome was never looked up"
    );
}

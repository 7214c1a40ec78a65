//! A hostile Dropbox: answers cut in half, connections closed mid-answer, bodies far larger
//! than any real answer or that never end, a server that stops answering, a content hash that
//! does not match, an error tag no client knows. The daemon times out, retries or fails the
//! one job with a reason; memory stays bounded; nothing panics and the daemon keeps serving.

use dbxport::service::{FoldersProxy, ServiceError};
use dbxport_testkit::emulator::Fault;

use crate::helper::*;

/// Read timeout for these tests: a stall costs this long.
const TIMEOUT_SECS: u64 = 2;

fn hostile_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.dropbox.read_timeout_secs = TIMEOUT_SECS;
    config
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[system_test]
async fn uploads_through_hostile_answers_end_in_one_verified_copy_each() {
    let mut config = hostile_config();
    // Every photo through the batch route, one commit call each, so each fault meets one.
    config.upload.session_threshold = 16 * 1024 * 1024;
    config.upload.batch_size = 1;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 6);
    let faults = w.sandbox.emulator.faults();
    let commit = "/2/files/upload_session/finish_batch_v2";
    let start = "/2/files/upload_session/start";
    // Answers to commits that did happen, cut or lost: resolved by looking, never sent twice.
    faults.inject(commit, Fault::TruncatedAnswer, 1);
    faults.inject(commit, Fault::CutOffAnswer, 1);
    faults.inject(commit, Fault::Stall, 1);
    // Answers to uploads that did not happen: far too large, never ending.
    faults.inject(
        start,
        Fault::HugeAnswer {
            bytes: 400 * 1024 * 1024,
        },
        1,
    );
    faults.inject(start, Fault::EndlessAnswer { every_ms: 20 }, 1);
    faults.inject(start, Fault::TruncatedAnswer, 1);
    // Answers to packs of small files that did land, cut: sent again to the same sessions,
    // whose entries then answer that they hold the piece already.
    let pack = "/2/files/upload_session/append_batch";
    faults.inject(pack, Fault::TruncatedAnswer, 1);
    faults.inject(pack, Fault::CutOffAnswer, 1);

    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Hostile".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(
        done.iter().all(|j| j.state == "done"),
        "{done:#?}\n{}",
        w.daemon_log()
    );
    assert_jobs_verified(&w, &done);
    assert_one_copy_each(&w, &files, "/hostile");
    let hit = w
        .sandbox
        .emulator
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    assert_eq!(
        hit,
        8,
        "every hostile answer was met: {:?}",
        w.sandbox
            .emulator
            .requests()
            .iter()
            .map(|r| (r.route.clone(), r.fault.clone()))
            .collect::<Vec<_>>()
    );

    // A 400 MB answer was read only up to the cap.
    let pid = w.sandbox.daemon_pid().unwrap();
    let peak_kb = status_kb(pid, "VmHWM:");
    println!(
        "daemon peak RSS through the hostile answers: {} MiB",
        peak_kb / 1024
    );
    assert!(
        peak_kb < 200 * 1024,
        "the daemon's memory grew to {peak_kb} kB"
    );
    let log = w.daemon_log();
    assert!(!log.contains("panicked"), "{log}");
}

#[system_test]
async fn stalled_trickling_and_broken_answers_are_errors_and_the_daemon_keeps_serving() {
    let w = world(hostile_config()).await;
    let folders = FoldersProxy::new(&w.conn).await.unwrap();
    folders.create_folder("/Albums/One".into()).await.unwrap();
    let faults = w.sandbox.emulator.faults();
    let list = "/2/files/list_folder";
    for (fault, says) in [
        (Fault::Stall, "timed out"),
        (Fault::EndlessAnswer { every_ms: 100 }, "timed out"),
        (Fault::TruncatedAnswer, "ends early"),
        (Fault::CutOffAnswer, ""),
        // Tolerated as the route's "other" refusal (the union is open).
        (Fault::UnknownErrorTag, "cannot list this folder"),
        (
            Fault::HugeAnswer {
                bytes: 64 * 1024 * 1024,
            },
            "longer than",
        ),
    ] {
        let name = fault.name();
        faults.inject(list, fault, 1);
        let started = std::time::Instant::now();
        let result = folders.list_folders("/Albums".into()).await;
        let took = started.elapsed();
        println!("list_folder answered with {name}: {result:?} after {took:?}");
        let text = match result {
            Err(ServiceError::Failed(t)) | Err(ServiceError::NotFound(t)) => t,
            other => panic!("{name}: expected an error, got {other:?}"),
        };
        assert!(text.contains(says), "{name}: {text}");
        assert!(
            took < std::time::Duration::from_secs(3 * TIMEOUT_SECS),
            "{name}: took {took:?}"
        );
        // The next call is answered as if nothing happened.
        let listed = folders.list_folders("/Albums".into()).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
    }
    assert!(!w.daemon_log().contains("panicked"));
}

#[system_test]
async fn a_wrong_hash_or_an_unknown_refusal_fails_that_file_with_the_reason() {
    let mut config = hostile_config();
    config.upload.batch_commit = false;
    config.upload.transfers = 1;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 3);
    let faults = w.sandbox.emulator.faults();
    faults.inject("/2/files/upload_session/finish", Fault::WrongContentHash, 1);
    faults.inject("/2/files/upload_session/start", Fault::UnknownErrorTag, 1);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Strange".into(), dict(&[]))
        .await
        .unwrap();
    let jobs = batch_final(&uploader, batch).await;
    let failed: Vec<_> = jobs.iter().filter(|j| j.state == "failed").collect();
    assert_eq!(
        jobs.iter().filter(|j| j.state == "done").count(),
        1,
        "{jobs:#?}"
    );
    assert_eq!(failed.len(), 2, "{jobs:#?}");
    assert!(
        failed
            .iter()
            .any(|j| j.message.contains("different content") && j.message.contains(&j.source)),
        "{failed:#?}"
    );
    assert!(
        failed
            .iter()
            .any(|j| j.message.contains("could not start the upload session")
                && j.message.contains(&j.source)),
        "{failed:#?}"
    );
    // Both can be sent again once Dropbox behaves.
    uploader.retry(batch).await.unwrap();
    let jobs = batch_final(&uploader, batch).await;
    assert!(jobs.iter().all(|j| j.state == "done"), "{jobs:#?}");
}

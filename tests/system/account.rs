//! Tokens: a refresh token handed over by `dbxportctl login --refresh-token-stdin`, and an
//! access token that expires mid-batch, refreshed once for every job that saw it expire.

use std::io::Write;
use std::process::Stdio;

use dbxport::emulator::Fault;

use crate::helper::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_and_the_uploads_go_on() {
    let w = world(small_config()).await;
    // Log in again with a refresh token, through the CLI, token on stdin.
    let refresh = w.sandbox.emulator.mint_refresh_token();
    let mut child = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["login", "--refresh-token-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(refresh.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Logged in to Dropbox as"), "{stdout}");
    assert!(!stdout.contains(&refresh), "the token was echoed");

    assert_eq!(
        w.requests_to("/oauth2/token"),
        1,
        "login minted one access token"
    );

    // Every access token issued so far expires: the running uploads all see 401.
    let files = make_photos(&w.photo_dir(), 12);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 300 },
        4,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Refresh".into(), dict(&[]))
        .await
        .unwrap();
    wait_for("an upload request", || async {
        w.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| r.route.starts_with("/2/files/upload"))
            .then_some(())
    })
    .await;
    w.sandbox.emulator.expire_access_tokens();
    let done = batch_final(&uploader, batch).await;
    assert_jobs_verified(&w, &done);
    assert!(
        w.saw_status(401),
        "the expiry was never seen, so this test proved nothing"
    );
    assert_eq!(
        w.requests_to("/oauth2/token"),
        2,
        "one refresh shared by every job that saw the expiry"
    );
    let log = w.daemon_log();
    assert!(
        !log.contains(&refresh) && !log.contains(&w.sandbox.emulator.access_token()),
        "a token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_batch_at_once() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 6);
    // Requests that would take a minute to answer.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 60_000 }, 1000);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Cancel".into(), dict(&[]))
        .await
        .unwrap();
    wait_for("a transfer to start", || async {
        w.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| r.route.starts_with("/2/files/upload"))
            .then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let out = w.ctl(&["cancel", &batch.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = batch_final(&uploader, batch).await;
    assert!(jobs.iter().all(|j| j.state == "cancelled"), "{jobs:#?}");
    // The daemon did not sit out the minute-long request.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // And it is free for new work: the queue is empty and nothing is claimed.
    assert_eq!(uploader.queue_length().await.unwrap(), 0);
    w.sandbox.emulator.faults().clear();
    let more = make_photos(&w.dir.path().join("photos"), 1);
    let (batch, _) = uploader
        .upload(paths(&more), "/Cancel".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_jobs_verified(&w, &done);
}

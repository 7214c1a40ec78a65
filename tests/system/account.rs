//! Tokens: a refresh token handed over by `dbxportctl login --refresh-token-stdin`, and an
//! access token that expires mid-batch, refreshed once for every job that saw it expire.

use std::io::Write;
use std::process::Stdio;

use dbxport_testkit::emulator::Fault;

use crate::helper::*;

#[system_test]
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
    w.wait_for_request("/2/files/upload").await;
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

#[system_test]
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
    w.wait_for_request("/2/files/").await;
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

/// Logs the daemon in with a fresh refresh token from the emulator.
async fn login_with_refresh(w: &World) -> String {
    let refresh = w.sandbox.emulator.mint_refresh_token();
    w.account()
        .await
        .login_with_token("refresh".into(), refresh.clone())
        .await
        .expect("login");
    refresh
}

#[system_test]
async fn tokens_expiring_every_few_seconds_never_reach_the_user() {
    let w = world_with(small_config(), Setup::default()).await;
    w.sandbox
        .emulator
        .set_access_token_lifetime(std::time::Duration::from_secs(3));
    login_with_refresh(&w).await;
    let files = make_photos(&w.photo_dir(), 50);
    // Slow enough that the batch spans several token lifetimes.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 400 }, 1000);
    let started = std::time::Instant::now();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Short".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    let elapsed = started.elapsed();
    assert_jobs_verified(&w, &done);
    assert!(
        elapsed.as_secs() >= 6,
        "the batch ({elapsed:?}) must outlive two tokens to prove anything"
    );
    // Refreshed about once per lifetime (ahead of expiry), not once per request or per job.
    let refreshes = w
        .sandbox
        .emulator
        .requests()
        .iter()
        .filter(|r| r.route == "/oauth2/token")
        .count();
    let lifetimes = elapsed.as_secs_f64() / 3.0;
    assert!(refreshes >= 2, "{refreshes} refreshes in {elapsed:?}");
    assert!(
        (refreshes as f64) <= 2.0 * lifetimes + 3.0,
        "{refreshes} refreshes for {lifetimes:.1} lifetimes"
    );
    // No job ever waited because of the token.
    assert!(!w.daemon_log().contains("access token expired again"));
}

#[system_test]
async fn a_revoked_login_makes_jobs_wait_until_the_next_login() {
    let w = world_with(small_config(), Setup::default()).await;
    login_with_refresh(&w).await;
    let account = w.account().await;
    let files = make_photos(&w.photo_dir(), 8);
    // Every request takes a while, and every job needs at least two (the skip-identical
    // look-up, then the upload): the revocation, made as the first request arrives, lands
    // before any job can finish.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 300 }, 1000);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Revoked".into(), dict(&[]))
        .await
        .unwrap();
    w.wait_for_request("/2/files/").await;
    w.sandbox.emulator.revoke_refresh_tokens();
    wait_for("the account to be logged out", || async {
        (!account.logged_in().await.unwrap()).then_some(())
    })
    .await;
    let out = w.ctl(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["account_state"], "logged_out");
    assert!(
        status["account_message"]
            .as_str()
            .unwrap()
            .contains("log in again"),
        "{status}"
    );
    // Nothing failed: the jobs that did not finish are waiting for a login.
    let all = jobs(&uploader, &[("batch", zbus::zvariant::Value::from(batch))]).await;
    assert!(all.iter().all(|j| j.state != "failed"), "{all:#?}");
    assert!(
        all.iter().any(|j| j.state != "done"),
        "everything finished before the revocation: proves nothing"
    );

    w.sandbox.emulator.faults().clear();
    login_with_refresh(&w).await;
    let done = batch_final(&uploader, batch).await;
    assert_jobs_verified(&w, &done);
}

#[system_test]
async fn no_token_in_trace_logs_or_on_the_bus() {
    let mut config = small_config();
    config.dropbox.redirect_port = free_port();
    let w = world_with(
        config,
        Setup {
            log_filter: Some("trace".into()),
            ..Setup::default()
        },
    )
    .await;
    // Everything on the bus, as an eavesdropper would see it.
    let monitor_log = w.dir.path().join("bus-monitor.log");
    let mut monitor = std::process::Command::new("dbus-monitor")
        .args(["--address", w.sandbox.bus.address()])
        .stdout(std::fs::File::create(&monitor_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor runs (dbus-bin)");
    let account = w.account().await;
    let mut finished = account.receive_login_finished().await.unwrap();
    // A browser login (no token crosses the bus), a refresh, an upload, a logout.
    w.sandbox
        .emulator
        .set_access_token_lifetime(std::time::Duration::from_secs(2));
    let url = account.begin_login(Default::default()).await.unwrap();
    let browser = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        browser
            .get(&url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        futures_util::StreamExt::next(&mut finished)
            .await
            .unwrap()
            .args()
            .unwrap()
            .ok
    );
    let files = make_photos(&w.photo_dir(), 6);
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 400 }, 20);
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Secret").await;
    assert!(
        w.sandbox
            .emulator
            .requests()
            .iter()
            .filter(|r| r.route == "/oauth2/token")
            .count()
            >= 2
    );
    // Every token the emulator issued (it keeps them in its auth.json), before the logout
    // revokes them.
    let auth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.dir.path().join("dropbox/auth.json")).unwrap())
            .unwrap();
    account.logout().await.unwrap();
    let _ = monitor.kill();
    let _ = monitor.wait();
    let mut tokens: Vec<String> = Vec::new();
    for kind in ["access", "refresh"] {
        if let Some(map) = auth[kind].as_object() {
            tokens.extend(map.keys().cloned());
        }
    }
    tokens.push(w.sandbox.emulator.access_token());
    assert!(tokens.len() >= 3, "{} tokens", tokens.len());
    let log = w.daemon_log();
    let bus = std::fs::read_to_string(&monitor_log).unwrap();
    assert!(
        log.contains("TRACE"),
        "the daemon did not log at trace level"
    );
    assert!(bus.contains("LoginFinished"), "the monitor saw nothing");
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "a token is in the daemon's log"
        );
        assert!(!bus.contains(token.as_str()), "a token crossed the bus");
    }
}

#[system_test]
async fn a_photo_that_cannot_fit_fails_before_it_is_sent() {
    let w = world_with(small_config(), Setup::default()).await;
    // A nearly full account: 3 MB free.
    w.sandbox.emulator.set_space_allocated(3_000_000);
    w.sandbox.login().await.unwrap();
    let account = w.account().await;
    wait_for("the quota to be read", || async {
        (account.allocated_bytes().await.unwrap() == 3_000_000).then_some(())
    })
    .await;
    let samples = sample_photos();
    let big = samples
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 4_000_000)
        .unwrap();
    let small = samples
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() < 100_000)
        .unwrap();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[big.clone(), small.clone()]),
            "/Full".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    let failed: Vec<_> = done.iter().filter(|j| j.state == "failed").collect();
    assert_eq!(failed.len(), 1, "{done:#?}");
    assert!(
        failed[0].message.contains("Dropbox is full"),
        "{}",
        failed[0].message
    );
    assert!(
        failed[0].message.contains(&*big.to_string_lossy()),
        "the message names the file"
    );
    assert!(
        done.iter().any(|j| j.state == "done"),
        "the small photo still went up"
    );
    // Nothing of the big photo was sent: the only session is the small photo's, sent in a
    // pack.
    let routes: Vec<String> = w
        .sandbox
        .emulator
        .requests()
        .into_iter()
        .map(|r| r.route)
        .filter(|r| r.contains("/2/files/upload"))
        .collect();
    assert_eq!(
        routes,
        [
            "/2/files/upload_session/start_batch",
            "/2/files/upload_session/append_batch",
            "/2/files/upload_session/finish_batch_v2"
        ]
    );
}

#[system_test]
async fn a_file_too_large_for_dropbox_fails_before_it_is_sent() {
    let w = world(small_config()).await;
    let photos = make_photos(&w.photo_dir(), 2);
    // A sparse file one byte over what an upload session takes.
    let huge = w.photo_dir().join("huge.mov");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(dbxport::dropbox::MAX_FILE_SIZE + 1)
        .unwrap();
    let mut files = photos.clone();
    files.push(huge.clone());
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Huge".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    let failed: Vec<_> = done.iter().filter(|j| j.state == "failed").collect();
    assert_eq!(failed.len(), 1, "{done:#?}");
    assert!(failed[0].source.ends_with("huge.mov"));
    assert!(
        failed[0].message.contains("huge.mov") && failed[0].message.contains("up to"),
        "{}",
        failed[0].message
    );
    assert_eq!(done.iter().filter(|j| j.state == "done").count(), 2);
    // Not a byte of it went: the only sessions are the two photos'.
    assert_eq!(uploads_started(&w), 2);
}

/// `login --refresh-token-stdin` with a token Dropbox refuses, while logged in: the login in
/// use stays as it was (queued jobs go on, a restart finds the same login), and the error says
/// it was the new token that was refused.
#[system_test]
async fn a_refused_new_token_leaves_the_working_login_as_it_was() {
    let mut w = world_with(small_config(), Setup::default()).await;
    login_with_refresh(&w).await;
    let account = w.account().await;
    let before = account.account_name().await.unwrap();
    let uploader = w.uploader().await;
    uploader.pause().await.unwrap();
    let files = make_photos(&w.photo_dir(), 4);
    let (batch, _) = uploader
        .upload(paths(&files), "/Kept".into(), dict(&[]))
        .await
        .unwrap();

    let mut child = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["login", "--refresh-token-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bad = "not-a-refresh-token-dropbox-ever-issued";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("refused the refresh token you gave")
            && said.contains("the login in use is unchanged"),
        "the error names the new token: {said}"
    );
    assert!(!said.contains("stored login"), "{said}");
    assert!(!said.contains(bad), "the token was echoed: {said}");

    // Still logged in, as the same account; the queued jobs go on.
    assert!(account.logged_in().await.unwrap());
    assert_eq!(account.account_name().await.unwrap(), before);
    uploader.resume().await.unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_jobs_verified(&w, &done);

    // A restart finds the same login: it was never dropped.
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let account = w.account().await;
    wait_for("the login after the restart", || async {
        account.logged_in().await.unwrap().then_some(())
    })
    .await;
    assert_eq!(account.account_name().await.unwrap(), before);
}

//! What `dbxportctl` writes: a closed stdout (`| head -1`) ends every command quietly, control
//! characters in file names never reach the terminal, and lines fit an 80-column terminal.

use std::process::{Output, Stdio};

use crate::helper::*;

/// `dbxportctl ARGS` with its stdout a pipe whose reader has already gone, as in
/// `dbxportctl jobs | head -1` once `head` has its line.
fn ctl_into_closed_pipe(w: &World, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    w.sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("dbxportctl runs")
}

#[system_test]
async fn a_closed_stdout_ends_every_command_quietly() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Pipe".into(), dict(&[]))
        .await
        .unwrap();
    batch_final(&uploader, batch).await;
    let batch = batch.to_string();
    let first = files[0].to_string_lossy().into_owned();
    for args in [
        vec!["jobs"],
        vec!["jobs", "--json"],
        vec!["jobs", "--batch", &batch],
        vec!["status"],
        vec!["status", "--json"],
        vec!["config", "get"],
        vec!["config", "get", "--json"],
        vec!["config", "path"],
        vec!["account"],
        vec!["watch", "ls"],
        vec!["limit"],
        vec!["man"],
        vec!["completions", "bash"],
    ] {
        let out = ctl_into_closed_pipe(&w, &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `upload` tells on stderr what it queued before its first result line; the closed
    // stdout then ends it quietly too (the batch goes on in the daemon).
    let out = ctl_into_closed_pipe(&w, &["upload", "--to", "/Pipe2", "--wait", &first]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.lines().count() == 1 && stderr.starts_with("queued 1 file(s) as batch "),
        "{stderr}"
    );
}

/// No byte that commands a terminal: ESC, BEL or any other control character.
fn assert_no_controls(what: &str, text: &[u8]) {
    let bad: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| *b < 0x20 && *b != b'\n' || *b == 0x7f)
        .collect();
    assert!(
        bad.is_empty(),
        "{what} holds control bytes {bad:x?}: {}",
        String::from_utf8_lossy(text)
    );
}

#[system_test]
async fn control_characters_in_names_never_reach_the_terminal() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    // Retitles the terminal, rings its bell and turns what follows red, if printed raw.
    let evil = dir.join("evil\x1b]0;pwned\x07\x1b[31m.jpg");
    std::fs::copy(&sample_photos()[0], &evil).unwrap();
    let unreadable = dir.join("bell\x07.jpg");
    std::fs::write(&unreadable, b"\xFF\xD8\xFF\xE0 x").unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = w.ctl(&[
        "upload",
        "--to",
        "/Evil",
        "--wait",
        &evil.to_string_lossy(),
        &unreadable.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_no_controls("upload --wait's stdout", &out.stdout);
    assert_no_controls("upload --wait's stderr", &out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("evil\\x1b]0;pwned\\x07\\x1b[31m.jpg"),
        "the name is shown, escaped: {stdout}"
    );
    assert!(stdout.contains("failed    bell\\x07.jpg"), "{stdout}");
    for args in [
        vec!["jobs"],
        vec!["jobs", "--all"],
        vec!["jobs", "--state", "failed"],
        vec!["status"],
    ] {
        let out = w.ctl(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_no_controls(&format!("{args:?}'s stdout"), &out.stdout);
        assert_no_controls(&format!("{args:?}'s stderr"), &out.stderr);
        if args.len() > 1 || args[0] == "jobs" {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("bell\\x07.jpg"),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[system_test]
async fn upload_and_status_say_at_once_why_nothing_moves() {
    // Logged out: the upload is queued, and says so with the fix.
    let w = world_with(small_config(), Setup::default()).await;
    let files = make_photos(&w.photo_dir(), 1);
    let file = files[0].to_string_lossy().into_owned();
    let out = w.ctl(&["upload", "--to", "/Why", &file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not logged in") && stderr.contains("`dbxportctl login`"),
        "{stderr}"
    );
    let status = w.ctl(&["status"]);
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("`dbxportctl login`"), "{said}");
    assert!(!said.contains("Sending:"), "idle, yet a rate: {said}");

    // Logged in and paused: the pause and its time, with `resume`.
    w.sandbox.login().await.unwrap();
    assert!(w.ctl(&["pause"]).status.success());
    let started = std::time::Instant::now();
    let run = crate::wait::Running::start(
        &w,
        "paused",
        &[
            "upload".into(),
            "--to".into(),
            "/Why".into(),
            "--wait".into(),
            file.clone(),
        ],
    );
    wait_for("the pause to be said", || async {
        std::fs::read_to_string(&run.stderr)
            .unwrap_or_default()
            .contains("the queue is paused (since ")
            .then_some(())
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let stderr = std::fs::read_to_string(&run.stderr).unwrap();
    assert!(stderr.contains("`dbxportctl resume`"), "{stderr}");
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    assert!(
        said.contains("the queue is paused (since ") && said.contains("`dbxportctl resume`"),
        "{said}"
    );
    assert!(w.ctl(&["resume"]).status.success());
    let (status, stdout, _) = run.finish(std::time::Duration::from_secs(60)).await;
    assert!(status.success(), "{stdout}");

    // A failed job is counted.
    let locked = w.photo_dir().join("locked.jpg");
    std::fs::copy(&files[0], &locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = w.ctl(&[
        "upload",
        "--to",
        "/Why",
        "--wait",
        &locked.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    assert!(said.contains("Failed:   1 "), "{said}");
}

#[system_test]
async fn an_outage_is_told_once_in_status_and_in_the_daemon_log() {
    let mut w = world(small_config()).await;
    // Dropbox goes out of reach: the daemon starts again with its servers on a port where
    // nothing listens, so every connection is refused (the login stays stored).
    w.sandbox.stop_daemon();
    let config_file = w.sandbox.root.join("config/dbxport/config.toml");
    let text = std::fs::read_to_string(&config_file).unwrap();
    let gone = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        &config_file,
        text.replace(&w.sandbox.emulator.base_url(), &gone),
    )
    .unwrap();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    uploader
        .upload(paths(&files), "/Off".into(), dict(&[]))
        .await
        .unwrap();
    wait_for("the jobs to wait", || async {
        let waiting = jobs(
            &uploader,
            &[("state", zbus::zvariant::Value::from("waiting"))],
        )
        .await;
        (waiting.len() == 3).then_some(())
    })
    .await;
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    let notes: Vec<&str> = said.lines().filter(|l| l.contains("offline")).collect();
    assert_eq!(notes.len(), 1, "one line for the one cause: {said}");
    assert!(notes[0].contains("3 files wait"), "{said}");
    assert!(notes[0].contains("next try in"), "{said}");
    assert!(!said.contains("os error 111"), "{said}");

    // The daemon's log says the cause once, in the same words, not once per file and try;
    // the raw error of each attempt is there for debugging only.
    let log = w.daemon_log();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("offline: cannot connect to Dropbox"))
        .collect();
    assert_eq!(told.len(), 1, "one line for the outage: {log}");
    assert!(
        told[0].contains(" INFO ") && told[0].contains("retrying in"),
        "{log}"
    );
    for line in log.lines().filter(|l| l.contains("os error 111")) {
        assert!(
            line.contains(" DEBUG "),
            "an attempt's raw error above debug: {line}"
        );
    }

    // A config changed after the daemon read it: the way to apply it is said.
    let out = w.ctl(&["config", "set", "upload.transfers", "3"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    assert!(
        said.contains("config.toml changed") && said.contains("`dbxportctl restart`"),
        "{said}"
    );
}

#[system_test]
async fn restart_makes_the_daemon_read_a_changed_config() {
    let w = world(small_config()).await;
    let before = w.sandbox.daemon_pid();
    assert!(
        w.ctl(&["config", "set", "upload.transfers", "3"])
            .status
            .success()
    );
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    assert!(said.contains("`dbxportctl restart`"), "{said}");
    let out = w.ctl(&["restart"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&w.ctl(&["status"]).stdout).into_owned();
    assert!(!said.contains("config.toml changed"), "{said}");
    assert!(said.contains("Account:  "), "{said}");
    // The new daemon is not the sandbox's child: stop it by the pid the bus gives.
    let conn = w.sandbox.bus.connect().await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let pid = dbus
        .get_connection_unix_process_id(
            zbus::names::BusName::try_from(dbxport::service::BUS_NAME).unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(Some(pid), before);
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

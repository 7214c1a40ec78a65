//! Words a person reads: a second daemon names the first, a daemon log written to a file has
//! no colour codes, `watch rm` takes a path, and a file that is not a photo is pointed out.

use crate::helper::*;

#[system_test]
async fn a_second_daemon_names_the_first() {
    let w = world(small_config()).await;
    let pid = w.sandbox.daemon_pid().unwrap();
    let out = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportd"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim(),
        format!(
            "dbxportd: dbxportd is already running (pid {pid}): `dbxportctl status` talks to it; \
             `dbxportctl restart` restarts it"
        ),
        "one line, no sled error, no advice to move the database"
    );
    // Seen from another session (another bus), the queue's lock tells the same.
    let out = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportd"))
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .trim()
            .starts_with("dbxportd: dbxportd is already running: ")
            && !stderr.contains("aside"),
        "{stderr}"
    );
    // The first one carries on.
    assert!(w.ctl(&["status"]).status.success());
}

#[system_test]
async fn a_daemon_log_in_a_file_has_no_colour_codes() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 1);
    let out = w.ctl(&[
        "upload",
        "--to",
        "/Log",
        "--wait",
        &files[0].to_string_lossy(),
    ]);
    assert!(out.status.success());
    let log = w.daemon_log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file");
}

#[system_test]
async fn watch_rm_takes_a_path_and_non_photos_are_pointed_out() {
    let w = world(small_config()).await;
    let dir = w.dir.path().join("watched");
    std::fs::create_dir_all(&dir).unwrap();
    let out = w.ctl(&["watch", "add", &dir.to_string_lossy(), "--to", "/W"]);
    assert!(out.status.success(), "{out:?}");
    let out = w.ctl(&["watch", "rm", &format!("{}/", dir.display())]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&w.ctl(&["watch", "ls"]).stdout).into_owned();
    assert_eq!(listed.trim(), "no watched folders");
    let out = w.ctl(&["watch", "rm", "/nowhere"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no watch on /nowhere"),
        "{stderr}"
    );

    let notes = w.photo_dir().join("SOURCES.md");
    std::fs::write(&notes, "# where the photos come from\n").unwrap();
    let photo = make_photos(&w.photo_dir(), 1);
    let out = w.ctl(&[
        "upload",
        "--to",
        "/W",
        &notes.to_string_lossy(),
        &photo[0].to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: 1 file is not a photo or video, sent as it is: SOURCES.md"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
}

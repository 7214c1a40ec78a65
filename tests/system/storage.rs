//! The daemon's own files: private whatever the umask or an earlier hand left them; a queue
//! database that is corrupted or unreadable stops the daemon with a message that says what to
//! do, and is never deleted or rewritten; a full cache disk holds preparation back instead of
//! failing photos.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use zbus::zvariant::Value;

use crate::helper::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[system_test]
async fn state_cache_and_login_are_private_even_after_being_loosened() {
    let mut w = world(small_config()).await;
    let root = w.sandbox.root.clone();
    let state = root.join("state/dbxport");
    let cache = root.join("cache/dbxport");
    let login = state.join("credentials.json");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("prepared")), 0o700);
    assert_eq!(mode(&login), 0o600);

    // Loosened by hand (or by an older version under umask 022): tightened at the next start.
    w.sandbox.stop_daemon().expect("it was running");
    for dir in [&state, &cache, &cache.join("prepared")] {
        set_mode(dir, 0o755);
    }
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    for dir in [&state, &cache, &cache.join("prepared")] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&login), 0o600);
}

/// Every file under `dir` (by its path below `dir`) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// A daemon with 5 jobs queued (paused, so they stay), then stopped.
async fn stopped_with_a_queue() -> (World, PathBuf) {
    let mut w = world(small_config()).await;
    let uploader = w.uploader().await;
    uploader.pause().await.unwrap();
    let files = make_photos(&w.photo_dir(), 5);
    uploader
        .upload(paths(&files), "/Kept".into(), dict(&[]))
        .await
        .unwrap();
    w.sandbox.stop_daemon().expect("it was running");
    let db = w.sandbox.root.join("state/dbxport/queue.sled");
    (w, db)
}

#[system_test]
async fn a_damaged_or_unreadable_queue_database_stops_the_daemon_and_is_left_as_it_is() {
    let (mut w, db) = stopped_with_a_queue().await;
    let data = db.join("db");
    let conf = db.join("conf");
    let original = snapshot(&db);

    type Damage = fn(&Path, &Path);
    let damages: [(&str, Damage); 4] = [
        ("bytes overwritten in the middle", |data, _| {
            let mut bytes = std::fs::read(data).unwrap();
            let mid = bytes.len() / 2;
            let end = (mid + 4096).min(bytes.len());
            bytes[mid..end].fill(0xA5);
            std::fs::write(data, bytes).unwrap();
        }),
        ("truncated to half", |data, _| {
            let len = std::fs::metadata(data).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(data)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("config file garbage", |_, conf| {
            std::fs::write(conf, b"\xff\xfe not a sled config").unwrap();
        }),
        ("unreadable", |data, _| set_mode(data, 0o000)),
    ];
    for (what, damage) in damages {
        // Each case starts from the intact database.
        let _ = std::fs::remove_dir_all(&db);
        std::fs::create_dir_all(&db).unwrap();
        for (path, bytes) in &original {
            std::fs::write(db.join(path), bytes).unwrap();
        }
        damage(&data, &conf);
        let damaged = snapshot(&db);
        let started = w.sandbox.start_daemon().await;
        let log = w.daemon_log();
        println!("queue database {what}: started = {}", started.is_ok());
        if started.is_ok() {
            // Only acceptable if every queued job is still there.
            w.reconnect().await;
            let jobs = jobs(&w.uploader().await, &[]).await;
            assert_eq!(
                jobs.len(),
                5,
                "{what}: the daemon started and lost jobs: {jobs:?}"
            );
            w.sandbox.stop_daemon();
            continue;
        }
        let last = log
            .lines()
            .rev()
            .find(|l| l.starts_with("dbxportd: "))
            .unwrap_or_default()
            .to_string();
        println!("  said: {last}");
        assert!(
            last.contains(&db.display().to_string())
                && ["move", "chmod"].iter().any(|todo| last.contains(todo)),
            "{what}: the message should name the database and say what to do: {last}"
        );
        set_mode(&data, 0o644);
        // sled may rewrite the damaged files as it opens them; the copy taken before it did
        // holds them byte for byte.
        let backup = db.with_file_name("queue.sled.previous");
        if backup.exists() {
            assert!(
                last.contains(&backup.display().to_string()),
                "{what}: the message should say where the copy is: {last}"
            );
            let kept = snapshot(&backup);
            assert!(
                kept == damaged,
                "{what}: the copy differs from the files before the start ({} vs {} files)",
                kept.len(),
                damaged.len()
            );
        } else {
            assert!(
                snapshot(&db) == damaged,
                "{what}: with no copy, the files must be untouched"
            );
        }
        let _ = std::fs::remove_dir_all(&backup);
    }
}

#[system_test]
async fn a_full_cache_disk_holds_preparation_back_and_fails_no_photo() {
    let w = world(small_config()).await;
    let prepared = w.sandbox.root.join("cache/dbxport/prepared");
    let Some(mount) = mount_tmpfs(&prepared, "32k", "0700") else {
        eprintln!("skipped: mounting a tmpfs needs privileges this run does not have");
        return;
    };
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&files),
            "/Full".into(),
            dict(&[("max_dimension", Value::from(2000u32))]),
        )
        .await
        .unwrap();
    let waiting = wait_for("a job waiting for cache space", || async {
        jobs(&uploader, &[("batch", Value::from(batch))])
            .await
            .into_iter()
            .find(|j| j.state == "waiting")
    })
    .await;
    assert!(
        waiting.message.contains("full") && waiting.message.contains("cache"),
        "{waiting:?}"
    );
    let now = jobs(&uploader, &[("batch", Value::from(batch))]).await;
    assert!(now.iter().all(|j| j.state != "failed"), "{now:#?}");

    // Space again: everything goes.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&prepared)
        .status()
        .unwrap();
    assert!(grown.success());
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    drop(mount);
}

#[system_test]
async fn a_full_state_disk_refuses_new_uploads_clearly_and_loses_nothing() {
    let (mut w, db) = stopped_with_a_queue().await;
    let state = db.parent().unwrap().to_path_buf();
    // The state folder moves onto a small file system, which is then filled up.
    let saved = w.dir.path().join("state-saved");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&state)
            .arg(&saved)
            .status()
            .unwrap()
            .success()
    );
    let Some(_mount) = mount_tmpfs(&state, "48m", "0700") else {
        eprintln!("skipped: mounting a tmpfs needs privileges this run does not have");
        return;
    };
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cp -a '{}'/. '{}'/",
                saved.display(),
                state.display()
            ))
            .status()
            .unwrap()
            .success()
    );
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    assert_eq!(jobs(&uploader, &[]).await.len(), 5);
    let filler = state.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .status();
    // Jobs are small records: it takes a few thousand to need new room in the database.
    let files = make_photos(&w.photo_dir(), 20);
    let mut refused = None;
    let mut accepted = 0;
    for _ in 0..1000 {
        match uploader
            .upload(paths(&files), "/Full".into(), dict(&[]))
            .await
        {
            Ok(_) => accepted += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    println!("{accepted} upload calls accepted before the disk was full");
    println!("a full state disk: {refused:?}");
    let refused = refused.expect("some upload call must meet the full disk");
    let said = refused.to_string();
    assert!(
        said.contains("is full") && said.contains("restart"),
        "the error should say the disk is full and what to do: {said}"
    );
    // The daemon still answers.
    assert!(jobs(&uploader, &[]).await.len() >= 5);
    // Space again, and the restart the message asks for: every job it accepted is there.
    std::fs::remove_file(&filler).unwrap();
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    let all = jobs(&uploader, &[]).await;
    assert_eq!(
        all.len(),
        5 + accepted * files.len(),
        "accepted jobs were lost"
    );
    uploader.resume().await.unwrap();
    let (batch, _) = uploader
        .upload(paths(&files[..1]), "/After".into(), dict(&[]))
        .await
        .unwrap();
    assert_eq!(batch_final(&uploader, batch).await[0].state, "done");
}

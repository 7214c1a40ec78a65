//! A hostile (or careless) caller on the session bus: paths that are not photos or not even
//! files, names no D-Bus string can hold, option values of the wrong type or out of range, and
//! a call with 100,000 paths. Each gets a precise error naming what is wrong, or is handled;
//! the daemon answers the next call as if nothing happened. The matrix is printed (run with
//! `--nocapture` to see it).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Instant;

use zbus::zvariant::Value;

use dbxport::service::ServiceError;

use crate::helper::*;

/// The error's name and text, or what was queued.
fn outcome(result: &Result<(u64, Vec<u64>), ServiceError>) -> String {
    match result {
        Ok((_, jobs)) => format!("queued {} job(s)", jobs.len()),
        Err(ServiceError::InvalidPath(t)) => format!("InvalidPath: {}", t.replace('\n', " | ")),
        Err(ServiceError::InvalidArgument(t)) => format!("InvalidArgument: {t}"),
        Err(e) => format!("other error: {e}"),
    }
}

#[system_test]
async fn every_bad_path_gets_a_precise_error_and_the_daemon_keeps_serving() {
    let w = world(small_config()).await;
    let pid = w.sandbox.daemon_pid();
    let dir = w.photo_dir();
    let uploader = w.uploader().await;

    let fifo = dir.join("a-fifo.jpg");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let looped = dir.join("loop-a.jpg");
    std::os::unix::fs::symlink(dir.join("loop-b.jpg"), &looped).unwrap();
    std::os::unix::fs::symlink(&looped, dir.join("loop-b.jpg")).unwrap();
    let long_name = dir.join(format!("{}.jpg", "n".repeat(300)));
    let long_path = PathBuf::from(format!("{}/{}", dir.display(), "d/".repeat(2100)));

    let cases: Vec<(String, &str)> = vec![
        (fifo.display().to_string(), "not a regular file"),
        ("/dev/zero".into(), "not a regular file"),
        ("/proc/self/status".into(), "kernel pseudo-file"),
        ("/proc/self/mem".into(), "kernel pseudo-file"),
        ("/sys/kernel/uevent_seqnum".into(), "kernel pseudo-file"),
        (looped.display().to_string(), "links loop"),
        (long_name.display().to_string(), "too long"),
        (long_path.display().to_string(), "too long"),
        ("photo.jpg".into(), "not an absolute path"),
        ("".into(), "not an absolute path"),
    ];
    let mut matrix = Vec::new();
    for (path, reason) in &cases {
        let started = Instant::now();
        let result = uploader
            .upload(vec![path.clone()], "/Hostile".into(), dict(&[]))
            .await;
        let said = outcome(&result);
        matrix.push(format!(
            "{:<60} → {} ({} ms)",
            shorten(path),
            shorten(&said),
            started.elapsed().as_millis()
        ));
        assert!(
            matches!(result, Err(ServiceError::InvalidPath(ref t)) if t.contains(reason.to_owned())),
            "{path:?}: expected InvalidPath saying {reason:?}, got {said}"
        );
    }

    // Option values of the wrong type or out of range: InvalidArgument naming the option.
    let good = make_photos(&dir, 1).remove(0);
    let options: Vec<(&str, Value<'_>, &str)> = vec![
        ("max_dimension", Value::from("big"), "max_dimension"),
        ("max_dimension", Value::from(0u32), "max_dimension"),
        ("max_dimension", Value::from(u32::MAX), "max_dimension"),
        ("max_dimension", Value::from(-5i64), "positive"),
        ("jpeg_quality", Value::from(0u32), "jpeg_quality"),
        ("jpeg_quality", Value::from(101u32), "jpeg_quality"),
        ("jpeg_quality", Value::from(true), "jpeg_quality"),
        ("conflict", Value::from("clobber"), "conflict"),
        ("conflict", Value::from(1u32), "conflict"),
        ("share_link", Value::from("yes"), "share_link"),
        ("original", Value::from(1u8), "original"),
        ("colour", Value::from(true), "colour"),
    ];
    for (key, value, named) in options {
        let shown = format!("option {key} = {value:?}");
        let result = uploader
            .upload(
                paths(std::slice::from_ref(&good)),
                "/Hostile".into(),
                dict(&[(key, value)]),
            )
            .await;
        let said = outcome(&result);
        matrix.push(format!("{shown:<60} → {said}"));
        assert!(
            matches!(result, Err(ServiceError::InvalidArgument(ref t)) if t.contains(named)),
            "{shown}: expected InvalidArgument naming {named}, got {said}"
        );
    }
    for folder in [
        "Photos",
        "/a//b",
        "/trailing/",
        "/x/desktop.ini",
        "/bad\\name",
    ] {
        let result = uploader
            .upload(paths(std::slice::from_ref(&good)), folder.into(), dict(&[]))
            .await;
        let said = outcome(&result);
        matrix.push(format!("{:<60} → {said}", format!("folder {folder:?}")));
        assert!(
            matches!(result, Err(ServiceError::InvalidArgument(_))),
            "folder {folder:?}: {said}"
        );
    }

    // 100,000 paths, none there: one error that names the first ones and counts the rest.
    let many: Vec<String> = (0..100_000)
        .map(|i| format!("{}/missing-{i:06}.jpg", dir.display()))
        .collect();
    let started = Instant::now();
    let result = uploader.upload(many, "/Hostile".into(), dict(&[])).await;
    let took = started.elapsed();
    let said = outcome(&result);
    matrix.push(format!(
        "{:<60} → {} ({} ms)",
        "100,000 missing paths",
        shorten(&said),
        took.as_millis()
    ));
    match &result {
        Err(ServiceError::InvalidPath(t)) => {
            assert!(
                t.contains("missing-000000.jpg: no such file"),
                "{}",
                shorten(t)
            );
            assert!(t.contains("… and 99980 more"), "{}", shorten(t));
        }
        _ => panic!("100,000 missing paths: {}", shorten(&said)),
    }

    // Nothing above was queued; the daemon is the same process and serves the next call.
    assert!(jobs(&uploader, &[]).await.is_empty());
    let (batch, _) = uploader
        .upload(
            paths(std::slice::from_ref(&good)),
            "/Hostile".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done[0].state, "done", "{:?}", done[0]);
    assert_eq!(w.sandbox.daemon_pid(), pid);
    println!("bad-input matrix (Upload):\n{}", matrix.join("\n"));
}

#[system_test]
async fn odd_but_real_names_are_uploaded() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let uploader = w.uploader().await;
    let sample = make_photos(&dir, 1).remove(0);

    // A newline in the name, the longest name Linux and Dropbox allow, and a name that is not
    // UTF-8 (handed over as bytes through UploadPaths; a D-Bus string cannot hold it).
    let newline = dir.join("two\nlines.jpg");
    let longest = dir.join(format!("{}.jpg", "l".repeat(251)));
    let latin1 = dir.join(OsString::from_vec(b"caf\xe9.jpg".to_vec()));
    for file in [&newline, &longest, &latin1] {
        std::fs::copy(&sample, file).unwrap();
    }
    let (batch, _) = uploader
        .upload(
            paths(&[newline.clone(), longest.clone()]),
            "/Odd".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let mut finished = batch_final(&uploader, batch).await;
    let with_nul = [latin1.as_os_str().as_bytes(), b"\0"].concat();
    let (batch, _) = uploader
        .upload_paths(vec![with_nul], "/Odd".into(), dict(&[]))
        .await
        .unwrap();
    finished.extend(batch_final(&uploader, batch).await);
    for job in &finished {
        assert_eq!(job.state, "done", "{job:?}");
    }
    let mut stored: Vec<String> = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_display)
        .collect();
    stored.sort();
    let mut expected = vec![
        "/Odd/two\nlines.jpg".to_string(),
        format!("/Odd/{}.jpg", "l".repeat(251)),
        "/Odd/caf\u{fffd}.jpg".to_string(),
    ];
    expected.sort();
    assert_eq!(stored, expected);

    // dbxportctl hands such a name over as bytes too.
    let out = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["upload", "--to", "/Odd/ctl", "--wait"])
        .arg(&latin1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        w.sandbox
            .emulator
            .files()
            .iter()
            .any(|f| f.path_display == "/Odd/ctl/caf\u{fffd}.jpg")
    );

    // A NUL inside a byte path is refused, naming it.
    let result = uploader
        .upload_paths(vec![b"/tmp/a\0b.jpg".to_vec()], "/Odd".into(), dict(&[]))
        .await;
    assert!(
        matches!(result, Err(ServiceError::InvalidPath(ref t)) if t.contains("NUL")),
        "{}",
        outcome(&result)
    );
}

#[system_test]
async fn a_watched_folder_exports_a_file_whose_name_is_not_utf8() {
    let mut config = small_config();
    config.watch.settle_ms = 200;
    let w = world(config).await;
    let dir = w.sandbox.root.join("card");
    std::fs::create_dir_all(&dir).unwrap();
    let sample = make_photos(&w.photo_dir(), 1).remove(0);
    w.watches()
        .await
        .add_watch(dir.display().to_string(), "/Card".into(), dict(&[]))
        .await
        .unwrap();
    // Written elsewhere and moved in, as a card reader's copy ends.
    let staged = w
        .sandbox
        .root
        .join(OsString::from_vec(b"IMG_\xff\xfe.JPG".to_vec()));
    std::fs::copy(&sample, &staged).unwrap();
    std::fs::rename(&staged, dir.join(staged.file_name().unwrap())).unwrap();
    let uploader = w.uploader().await;
    let job = wait_for("the watch's job to finish", || async {
        jobs(&uploader, &[])
            .await
            .into_iter()
            .find(|j| j.state == "done" || j.state == "failed")
    })
    .await;
    assert_eq!(job.state, "done", "{job:?}\n{}", w.daemon_log());
    assert_eq!(job.remote_path, "/Card/IMG_\u{fffd}\u{fffd}.JPG");
    assert!(!w.daemon_log().contains("panicked"), "{}", w.daemon_log());
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 160 {
        return text.to_string();
    }
    let head: String = text.chars().take(100).collect();
    let tail: String = text
        .chars()
        .rev()
        .take(50)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head} … {tail}")
}

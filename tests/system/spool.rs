//! Files handed over as open descriptors (`UploadFds`, `dbxportctl upload --spool`, and the
//! CLI's fallback when the daemon cannot see a path): copied into the daemon's spool before
//! the call returns, so the caller may delete them at once (durable on ack, ARCHITECTURE.md,
//! invariant 1); the copy goes after a verified Done and stays while the job is Failed so Retry
//! works; the spool is bounded (`spool.max_bytes`).

use std::path::{Path, PathBuf};

use dbxport::service::UploaderProxy;
use dbxport_testkit::emulator::Fault;
use zbus::zvariant::Value;

use crate::helper::*;

/// The copies in the daemon's spool now.
fn spool_copies(w: &World) -> Vec<PathBuf> {
    let spool = w.dir.path().join("state/dbxport/spool");
    let mut out = Vec::new();
    for folder in std::fs::read_dir(&spool).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(folder.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(file.path());
        }
    }
    out.sort();
    out
}

/// Copies of the sample photos in `dir`, named with spaces and quotes, as a photo app's
/// temporary exports are; with their content hashes.
fn exports(dir: &Path, n: usize) -> Vec<(PathBuf, String)> {
    make_photos(dir, n)
        .into_iter()
        .enumerate()
        .map(|(i, made)| {
            let path = dir.join(format!("Export {i} 'darktable' \"final\".jpg"));
            std::fs::rename(&made, &path).unwrap();
            let hash = hash(&path);
            (path, hash)
        })
        .collect()
}

/// Hands `files` over as open descriptors, each under its own file name.
async fn hand_over(
    uploader: &UploaderProxy<'_>,
    files: &[PathBuf],
    folder: &str,
) -> zbus::Result<(u64, Vec<u64>)> {
    dbxport::cli::handover::hand_over(uploader, files, folder, dict(&[]))
        .await
        .map_err(|e| zbus::Error::Failure(e.to_string()))
}

/// Every job is done, shows the caller's name (not its copy in the spool), and the emulator
/// holds the exact bytes handed over at `folder`/name.
fn assert_handed_over_verified(
    w: &World,
    jobs: &[JobInfo],
    files: &[(PathBuf, String)],
    folder: &str,
) {
    assert_eq!(jobs.len(), files.len(), "{jobs:#?}");
    let stored = w.sandbox.emulator.files();
    for (job, (path, local)) in jobs.iter().zip(files) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(job.state, "done", "{job:#?}\n{}", w.daemon_log());
        assert_eq!(job.source, name, "ListJobs shows the caller's name");
        assert_eq!(job.remote_path, format!("{folder}/{name}"));
        assert_eq!(
            job.content_hash.as_deref(),
            Some(local.as_str()),
            "{job:#?}"
        );
        let remote = stored
            .iter()
            .find(|f| f.path_lower == job.remote_path.to_lowercase())
            .unwrap_or_else(|| panic!("nothing at {}", job.remote_path));
        assert_eq!(&remote.content_hash, local, "{}", job.remote_path);
    }
}

#[system_test]
async fn fds_from_a_caller_that_deletes_its_files_at_once_go_up_verified() {
    let w = world(small_config()).await;
    let dir = w.dir.path().join("darktable-tmp");
    std::fs::create_dir(&dir).unwrap();
    // Large and small: whole uploads, packs and sessions all read from the spool.
    let files = exports(&dir, 5);
    let uploader = w.uploader().await;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (batch, ids) = hand_over(&uploader, &paths, "/Handed")
        .await
        .expect("UploadFds");
    assert_eq!(ids.len(), 5);
    // The caller's temporary files go the moment the call returns.
    std::fs::remove_dir_all(&dir).unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_handed_over_verified(&w, &done, &files, "/Handed");
}

#[system_test]
async fn the_spool_is_emptied_after_done_and_kept_while_failed_and_retry_sends_it() {
    let mut config = small_config();
    // One `files/upload` per small file, so the injected refusal meets the first one.
    config.upload.batch_commit = false;
    config.upload.transfers = 1;
    let w = world(config).await;
    let dir = w.dir.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    let samples = sample_photos();
    let small = |name: &str, sample: usize| {
        let path = dir.join(name);
        std::fs::copy(&samples[sample], &path).unwrap();
        let hash = hash(&path);
        (path, hash)
    };
    // flower.jpg and sample1.jpg: below the session threshold, one `files/upload` each.
    let (refused, refused_hash) = small("refused once.jpg", samples.len() - 2);
    let uploader = w.uploader().await;
    w.sandbox
        .emulator
        .faults()
        .inject("/2/files/upload", Fault::UnknownErrorTag, 1);
    // Through the CLI, with the flags a script uses: it waits, and tells the failure by the
    // caller's name (the batch's summary, as notifications show it too).
    let out = w.ctl(&[
        "upload",
        "--spool",
        "--wait",
        "--json",
        "--to",
        "/Kept",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&refused).unwrap();
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = outcome["batch"].as_u64().unwrap();
    let failures = outcome["outcome"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{outcome}");
    let failure = failures[0].as_str().unwrap();
    assert!(
        failure.contains("refused once.jpg") && !failure.contains("/spool/"),
        "{outcome}"
    );
    let jobs = batch_final(&uploader, first).await;
    assert_eq!(jobs[0].state, "failed", "{jobs:#?}");
    // The message names the caller's file, not the copy.
    assert!(jobs[0].message.contains("refused once.jpg"), "{jobs:#?}");
    assert!(!jobs[0].message.contains("/spool/"), "{jobs:#?}");
    let kept = spool_copies(&w);
    assert_eq!(kept.len(), 1, "the failed job's copy is kept: {kept:?}");
    assert_eq!(hash(&kept[0]), refused_hash);

    // Another hand-over goes up, and its copy goes once it is Done; the failed one's stays.
    let (other, other_hash) = small("goes up.jpg", samples.len() - 3);
    let (second, _) = hand_over(&uploader, std::slice::from_ref(&other), "/Kept")
        .await
        .unwrap();
    std::fs::remove_file(&other).unwrap();
    let jobs = batch_final(&uploader, second).await;
    assert_handed_over_verified(&w, &jobs, &[(other, other_hash)], "/Kept");
    wait_for("the done job's copy to go", || async {
        (spool_copies(&w) == kept).then_some(())
    })
    .await;

    // Retry sends the failed one from its copy; then the spool is empty.
    uploader.retry(first).await.unwrap();
    let jobs = batch_final(&uploader, first).await;
    assert_handed_over_verified(&w, &jobs, &[(refused, refused_hash)], "/Kept");
    wait_for("an empty spool", || async {
        spool_copies(&w).is_empty().then_some(())
    })
    .await;
}

#[system_test]
async fn kill_9_right_after_upload_fds_returns_loses_nothing() {
    let mut w = world(small_config()).await;
    let dir = w.dir.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    let files = exports(&dir, 6);
    // Hold every request so nothing finishes before the kill.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 5000 }, 1000);
    let uploader = w.uploader().await;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (batch, ids) = hand_over(&uploader, &paths, "/Killed").await.unwrap();
    w.sandbox.kill_daemon();
    std::fs::remove_dir_all(&dir).unwrap();
    // What a crash between a hand-over's copy and its queueing leaves: a copy no job needs.
    let orphan = w.dir.path().join("state/dbxport/spool/1-0/0-orphan.jpg");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"never queued").unwrap();
    w.sandbox.emulator.faults().clear();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;
    // The start removed it (and said so) before serving, and kept the batch's copies.
    assert!(!orphan.exists() && !orphan.parent().unwrap().exists());
    assert!(
        w.daemon_log()
            .contains("removed 1 spool copy no queued or failed job needs"),
        "{}",
        w.daemon_log()
    );
    let uploader = w.uploader().await;
    let all = jobs(&uploader, &[("batch", Value::from(batch))]).await;
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids,
        "jobs lost across kill -9"
    );
    let done = batch_final(&uploader, batch).await;
    assert_handed_over_verified(&w, &done, &files, "/Killed");
    wait_for("an empty spool", || async {
        spool_copies(&w).is_empty().then_some(())
    })
    .await;
}

#[system_test]
async fn a_full_spool_is_refused_clearly_and_queues_nothing() {
    let mut config = small_config();
    config.spool.max_bytes = dbxport::config::MIB;
    let w = world(config).await;
    let dir = w.photo_dir();
    let samples = sample_photos();
    // The second largest sample (1.8 MB): more than the spool holds.
    let big = dir.join("big.jpg");
    std::fs::copy(&samples[1], &big).unwrap();
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > dbxport::config::MIB);
    let uploader = w.uploader().await;
    let err = dbxport::cli::handover::hand_over(
        &uploader,
        std::slice::from_ref(&big),
        "/Full",
        dict(&[]),
    )
    .await
    .unwrap_err()
    .to_string();
    for part in [
        "the spool is full".to_string(),
        format!("take {size} bytes"),
        "spool.max_bytes = 1048576 bytes (1.0 MiB)".to_string(),
        "Nothing was copied or queued".to_string(),
        "raise spool.max_bytes".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} not in: {err}");
    }
    assert!(w.all_jobs().await.is_empty(), "nothing queued");
    assert!(spool_copies(&w).is_empty(), "nothing copied");
    // The CLI says the same, and exits 1.
    let out = w.ctl(&["upload", "--spool", "--to", "/Full", big.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the spool is full"), "{stderr}");
    assert!(w.all_jobs().await.is_empty(), "nothing queued");
    // What fits goes: the bound, not the hand-over, refused it.
    let small = dir.join("small one.jpg");
    std::fs::copy(&samples[samples.len() - 2], &small).unwrap();
    let small_hash = hash(&small);
    let out = w.ctl(&[
        "upload",
        "--spool",
        "--wait",
        "--to",
        "/Full",
        small.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = w.all_jobs().await;
    assert_handed_over_verified(&w, &jobs, &[(small, small_hash)], "/Full");
}

#[system_test]
async fn a_file_in_a_tmp_the_daemon_cannot_see_goes_up_through_the_fallback() {
    // The daemon gets a /tmp of its own, as under systemd's PrivateTmp=yes.
    let w = world_with(
        small_config(),
        Setup {
            private_tmp: true,
            ..Setup::default()
        },
    )
    .await;
    w.sandbox.login().await.expect("login");
    // Where screenshot tools and darktable put their exports: the caller's /tmp.
    let outside = tempfile::Builder::new()
        .prefix("dbxport-caller-tmp")
        .tempdir_in("/tmp")
        .unwrap();
    let photo = outside.path().join("x.jpg");
    std::fs::copy(&sample_photos()[2], &photo).unwrap();
    let local = hash(&photo);
    let uploader = w.uploader().await;
    // The daemon cannot see it: that is what the fallback is for.
    let refused = uploader
        .upload(
            paths(std::slice::from_ref(&photo)),
            "/Tmp".into(),
            dict(&[]),
        )
        .await
        .unwrap_err();
    assert!(
        dbxport::cli::describe(&refused).contains("x.jpg: no such file"),
        "{refused:?}"
    );
    let out = w.ctl(&["upload", "--wait", "--to", "/Tmp", photo.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", w.daemon_log());
    assert_eq!(
        stderr.matches("handing it over as open files").count(),
        1,
        "{stderr}"
    );
    let jobs = w.all_jobs().await;
    assert_handed_over_verified(&w, &jobs, &[(photo, local)], "/Tmp");
}

#[system_test]
async fn a_cancelled_hand_over_leaves_no_copy() {
    let w = world(small_config()).await;
    let dir = w.dir.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    let files = exports(&dir, 3);
    // Hold every request: the jobs are still under way when they are cancelled.
    w.sandbox
        .emulator
        .faults()
        .inject("*", Fault::Delay { millis: 3000 }, 1000);
    let uploader = w.uploader().await;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let (batch, ids) = hand_over(&uploader, &paths, "/Cancelled").await.unwrap();
    assert_eq!(spool_copies(&w).len(), 3);
    assert_eq!(uploader.cancel(batch).await.unwrap(), ids);
    wait_for("an empty spool", || async {
        spool_copies(&w).is_empty().then_some(())
    })
    .await;
}

#[system_test]
async fn bad_names_and_descriptors_are_refused_by_name_and_nothing_is_queued() {
    let w = world(small_config()).await;
    let uploader = w.uploader().await;
    let photo = make_photos(&w.photo_dir(), 1).remove(0);
    let fd = || {
        zbus::zvariant::OwnedFd::from(std::os::fd::OwnedFd::from(
            std::fs::File::open(&photo).unwrap(),
        ))
    };
    let refusal = |e: &dbxport::service::ServiceError| dbxport::cli::describe(e);
    // A name that is a path.
    let err = uploader
        .upload_fds(
            vec!["../x.jpg".into()],
            vec![fd()],
            "/Bad".into(),
            dict(&[]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, dbxport::service::ServiceError::InvalidPath(_))
            && refusal(&err).contains("\"../x.jpg\": a name cannot hold '/'"),
        "{err:?}"
    );
    // Names and descriptors that do not pair up.
    let err = uploader
        .upload_fds(
            vec!["a.jpg".into(), "b.jpg".into()],
            vec![fd()],
            "/Bad".into(),
            dict(&[]),
        )
        .await
        .unwrap_err();
    assert!(refusal(&err).contains("2 names for 1 file descriptors"));
    // A pipe, beside a good file: the whole call is refused, naming the pipe.
    let (read, _write) = std::io::pipe().unwrap();
    let pipe = zbus::zvariant::OwnedFd::from(std::os::fd::OwnedFd::from(read));
    let err = uploader
        .upload_fds(
            vec!["good.jpg".into(), "stream.jpg".into()],
            vec![fd(), pipe],
            "/Bad".into(),
            dict(&[]),
        )
        .await
        .unwrap_err();
    assert!(
        refusal(&err).starts_with("stream.jpg: not a regular file (a pipe)"),
        "pipe"
    );
    // A bad option refuses the call before anything is copied.
    let err = uploader
        .upload_fds(
            vec!["a.jpg".into()],
            vec![fd()],
            "/Bad".into(),
            dict(&[("conflict", zbus::zvariant::Value::from("sometimes"))]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, dbxport::service::ServiceError::InvalidArgument(_)),
        "{err:?}"
    );
    assert!(w.all_jobs().await.is_empty(), "nothing queued");
    assert!(spool_copies(&w).is_empty(), "nothing copied");
    // And the daemon goes on serving.
    let (batch, _) = uploader
        .upload_fds(
            vec!["fine.jpg".into()],
            vec![fd()],
            "/Bad".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let jobs = batch_final(&uploader, batch).await;
    assert_eq!(jobs[0].state, "done", "{jobs:#?}");
}

#[system_test]
async fn cleaning_a_failed_hand_over_away_removes_its_copy() {
    let mut config = small_config();
    config.upload.batch_commit = false;
    let w = world(config).await;
    let samples = sample_photos();
    let photo = w.photo_dir().join("fails.jpg");
    std::fs::copy(&samples[samples.len() - 2], &photo).unwrap();
    w.sandbox
        .emulator
        .faults()
        .inject("/2/files/upload", Fault::UnknownErrorTag, 1);
    let uploader = w.uploader().await;
    let (batch, _) = hand_over(&uploader, std::slice::from_ref(&photo), "/Clean")
        .await
        .unwrap();
    let jobs = batch_final(&uploader, batch).await;
    assert_eq!(jobs[0].state, "failed", "{jobs:#?}");
    assert_eq!(spool_copies(&w).len(), 1, "kept for Retry");
    // With the job forgotten, nothing can retry it: its copy goes with it.
    assert_eq!(uploader.clean_jobs(0).await.unwrap(), 1);
    assert!(spool_copies(&w).is_empty(), "{:?}", spool_copies(&w));
}

#[system_test]
async fn a_hand_over_of_more_files_than_one_call_carries_is_one_batch() {
    // darktable hands a whole export over at once (`upload --spool`); dbus-daemon passes at
    // most 16 descriptors in a message (and drops a caller that sends more), so 300 go in
    // parts, queued as one batch.
    let w = world(small_config()).await;
    w.sandbox.login().await.expect("login");
    let dir = w.dir.path().join("darktable-tmp");
    std::fs::create_dir(&dir).unwrap();
    let files: Vec<PathBuf> = (0..300u64)
        .map(|i| {
            let path = dir.join(format!("export {i:03}.jpg"));
            write_random_file(&path, 2_000 + i, 0x19_0300 + i);
            path
        })
        .collect();
    let mut args = vec!["upload", "--spool", "--original", "--wait", "--to", "/Many"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = w.ctl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", w.daemon_log());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        stderr.contains("queued 300 file(s) as batch "),
        "one batch: {stderr}"
    );
    let jobs = w.all_jobs().await;
    assert_eq!(jobs.len(), 300);
    assert!(jobs.iter().all(|j| j.state == "done"), "{stderr}");
    assert_eq!(w.sandbox.emulator.files().len(), 300);
    // Each copy goes once its Done is durable, a moment after the batch ends.
    wait_for("an empty spool", || async {
        spool_copies(&w).is_empty().then_some(())
    })
    .await;
}

/// `UploadFds` of `files` from `uploader`'s connection, as one part (`more`: more follow).
async fn part(
    uploader: &UploaderProxy<'_>,
    files: &[PathBuf],
    folder: &str,
    more: bool,
) -> Result<(u64, Vec<u64>), dbxport::service::ServiceError> {
    let names = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let fds = files
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).unwrap();
            zbus::zvariant::OwnedFd::from(std::os::fd::OwnedFd::from(file))
        })
        .collect();
    let options = match more {
        true => dict(&[("more", Value::from(true))]),
        false => dict(&[]),
    };
    uploader
        .upload_fds(names, fds, folder.into(), options)
        .await
}

#[system_test]
async fn parts_of_a_hand_over_are_dropped_when_the_caller_leaves_or_a_part_differs() {
    let w = world(small_config()).await;
    let dir = w.dir.path().join("parts");
    std::fs::create_dir(&dir).unwrap();
    let files: Vec<PathBuf> = (0..6u64)
        .map(|i| {
            let path = dir.join(format!("part {i}.jpg"));
            write_random_file(&path, 3_000 + i, 0x19_0600 + i);
            path
        })
        .collect();
    // A caller of its own, which sends a first part and goes away.
    let leaving = w.sandbox.bus.connect().await.expect("connect");
    let uploader = UploaderProxy::new(&leaving).await.unwrap();
    let answer = part(&uploader, &files[..3], "/Parts", true)
        .await
        .expect("a first part");
    assert_eq!(
        answer,
        (0, vec![]),
        "a part that more follow queues nothing yet"
    );
    assert_eq!(spool_copies(&w).len(), 3, "copied before the answer");
    assert!(w.all_jobs().await.is_empty());
    drop(uploader);
    drop(leaving);
    wait_for("the copies of a caller that left removed", || async {
        spool_copies(&w).is_empty().then_some(())
    })
    .await;
    // A last part naming another folder than the first: refused, and both parts dropped.
    let uploader = w.uploader().await;
    part(&uploader, &files[..3], "/Parts", true)
        .await
        .expect("a first part");
    let refused = part(&uploader, &files[3..], "/Elsewhere", false)
        .await
        .unwrap_err();
    assert!(
        dbxport::cli::describe(&refused).contains("another folder or other options"),
        "{refused:?}"
    );
    assert!(spool_copies(&w).is_empty(), "{:?}", spool_copies(&w));
    assert!(w.all_jobs().await.is_empty());
    // And a hand-over after it starts afresh: its two parts are one batch of six.
    part(&uploader, &files[..3], "/Parts", true)
        .await
        .expect("a first part");
    let (batch, ids) = part(&uploader, &files[3..], "/Parts", false)
        .await
        .expect("the last part");
    assert_eq!(ids.len(), 6);
    let jobs = w.all_jobs().await;
    assert_eq!(jobs.len(), 6);
    assert!(batch > 0);
}

#[system_test]
async fn a_templates_folder_is_the_one_the_handed_over_file_came_from() {
    let w = world(small_config()).await;
    w.sandbox.login().await.expect("login");
    let trip = w.dir.path().join("photos/Summer Trip");
    std::fs::create_dir_all(&trip).unwrap();
    let photo = trip.join("beach.jpg");
    std::fs::copy(&sample_photos()[2], &photo).unwrap();
    // `upload --spool` tells the daemon the folder each copy came from, as a path upload
    // would have it.
    let out = w.ctl(&[
        "upload",
        "--spool",
        "--wait",
        "--to",
        "/Trips/{folder}",
        photo.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = w.all_jobs().await;
    assert_eq!(
        jobs[0].remote_path, "/Trips/Summer Trip/beach.jpg",
        "{jobs:#?}"
    );
    // A caller that tells none gets the template's stand-in, and a name that is a path is
    // refused, naming the option.
    let uploader = w.uploader().await;
    let (_, ids) = part(
        &uploader,
        std::slice::from_ref(&photo),
        "/Other/{folder}",
        false,
    )
    .await
    .expect("UploadFds");
    let jobs = w.all_jobs().await;
    let job = jobs.iter().find(|j| j.id == ids[0]).unwrap();
    assert_eq!(job.remote_path, "/Other/Unknown folder/beach.jpg");
    let file = std::fs::File::open(&photo).unwrap();
    let refused = uploader
        .upload_fds(
            vec!["beach.jpg".into()],
            vec![zbus::zvariant::OwnedFd::from(std::os::fd::OwnedFd::from(
                file,
            ))],
            "/Other/{folder}".into(),
            dict(&[("folders", Value::from(vec!["a/b"]))]),
        )
        .await
        .unwrap_err();
    assert!(
        dbxport::cli::describe(&refused).contains("option folders"),
        "{refused:?}"
    );
}

//! What lands in Dropbox is exactly what the user meant (issue 13): a watched folder never
//! follows a symbolic link, file or folder, whenever it appears; a file swapped under a queued
//! job is refused; a writer that stalls mid-file keeps its file back however long it stalls; an
//! edit in place that puts size and mtime back is noticed, during an upload and after an
//! export; hidden folders made while a watch runs are not taken; one unreadable subfolder does
//! not stop a watch; and kill -9 during a watch export makes no twin and no second job.
//!
//! The hostile neighbour of these tests can write into the watched folder and owns a "private"
//! file outside it (standing for `~/.ssh/id_ed25519`); every test checks that no byte of it
//! reached the emulator.
//!
//! "Nothing happened" is never waited for with a sleep: the test waits for the daemon's own
//! decision (its log line), or drops a later photo and waits for that one's job, as
//! `watch.rs` explains.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dbxport_testkit::emulator::Fault;
use zbus::zvariant::Value;

use crate::helper::*;

/// Short settle and writer-idle times so the tests run quickly (defaults 2 s and 60 s).
fn watch_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    config.watch.writer_idle_ms = 600;
    config
}

/// A private file outside the watched folder, and its content hash.
fn private_file(w: &World) -> (PathBuf, String) {
    let dir = w.dir.path().join("home/.ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_ed25519");
    std::fs::write(&key, b"-----BEGIN OPENSSH PRIVATE KEY----- not for Dropbox").unwrap();
    let hash = hash(&key);
    (key, hash)
}

fn assert_not_stored(w: &World, private_hash: &str) {
    let stored = w.sandbox.emulator.files();
    assert!(
        stored.iter().all(|f| f.content_hash != private_hash),
        "the private file reached Dropbox: {stored:#?}"
    );
}

/// Drops `name` (a real photo) into `dir` and waits for its job to be done: every event before
/// it has been decided by then.
async fn marker(w: &World, dir: &Path, name: &str) {
    let sample = sample_photos().into_iter().next().unwrap();
    let path = dir.join(name);
    std::fs::copy(&sample, &path).unwrap();
    let source = path.to_string_lossy().into_owned();
    wait_for(&format!("{name} done"), || async {
        w.all_jobs()
            .await
            .iter()
            .any(|j| j.source == source && j.state == "done")
            .then_some(())
    })
    .await;
}

async fn wait_for_log(w: &World, what: &str) {
    wait_for(&format!("the daemon's log to say {what:?}"), || async {
        w.daemon_log().contains(what).then_some(())
    })
    .await;
}

/// Finding 1: a link to a private file named like a photo, and a link to a private folder,
/// placed in a recursive watch before it starts and while it runs: none is exported, and the
/// daemon says why.
#[system_test]
async fn a_watch_follows_no_symlink_file_or_folder() {
    let w = world(watch_config()).await;
    let (key, private_hash) = private_file(&w);
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(camera.join("2026")).unwrap();
    std::os::unix::fs::symlink(&key, camera.join("IMG_0000.jpg")).unwrap();
    std::os::unix::fs::symlink(key.parent().unwrap(), camera.join("sshdir-before")).unwrap();
    add_watch(&w, &camera, "/Camera", &[("recursive", Value::from(true))]).await;
    marker(&w, &camera, "first.jpg").await;

    // Live: a link to the key, one in a subfolder, and a link to the key's folder in which a
    // new "photo" then appears.
    std::os::unix::fs::symlink(&key, camera.join("IMG_0001.jpg")).unwrap();
    std::os::unix::fs::symlink(&key, camera.join("2026/IMG_0002.jpg")).unwrap();
    std::os::unix::fs::symlink(key.parent().unwrap(), camera.join("sshdir")).unwrap();
    std::fs::copy(&key, key.parent().unwrap().join("id_copy.jpg")).unwrap();
    // The daemon's decision on each link (they are created, never closed-after-write: each
    // is looked at once the writer-idle time has passed).
    wait_for_log(&w, "IMG_0001.jpg: is a symbolic link").await;
    wait_for_log(&w, "IMG_0002.jpg: is a symbolic link").await;
    marker(&w, &camera.join("2026"), "second.jpg").await;

    assert_not_stored(&w, &private_hash);
    let stored = w.stored_paths();
    assert!(
        stored
            .iter()
            .all(|p| !p.contains("IMG_000") && !p.contains("sshdir")),
        "{stored:?}"
    );
    assert_eq!(stored.len(), 2, "{stored:?}");
    let jobs = w.all_jobs().await;
    assert_eq!(jobs.len(), 2, "no job for any link: {jobs:#?}");
}

/// Finding 1, second way in: a photo queued from a watch, then swapped for a link to the key
/// before its upload; and the same for a file a caller handed over. Both jobs fail naming the
/// file, and the key stays home.
#[system_test]
async fn a_queued_file_swapped_for_a_symlink_is_refused() {
    let w = world(watch_config()).await;
    let (key, private_hash) = private_file(&w);
    let uploader = w.uploader().await;
    uploader.pause().await.unwrap();

    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    add_watch(&w, &camera, "/Camera", &[]).await;
    let watched = camera.join("IMG_0003.jpg");
    std::fs::copy(sample_photos().remove(0), &watched).unwrap();
    let watched_source = watched.to_string_lossy().into_owned();
    wait_for("the watch to queue the photo", || async {
        w.all_jobs()
            .await
            .iter()
            .any(|j| j.source == watched_source)
            .then_some(())
    })
    .await;

    let handed = w.dir.path().join("handed.jpg");
    std::fs::copy(sample_photos().remove(0), &handed).unwrap();
    uploader
        .upload(
            paths(std::slice::from_ref(&handed)),
            "/Handed".into(),
            dict(&[]),
        )
        .await
        .unwrap();

    for path in [&watched, &handed] {
        std::fs::remove_file(path).unwrap();
        std::os::unix::fs::symlink(&key, path).unwrap();
    }
    uploader.resume().await.unwrap();
    let ended = wait_for("both jobs final", || async {
        let jobs = w.all_jobs().await;
        (jobs.len() == 2
            && jobs
                .iter()
                .all(|j| matches!(j.state.as_str(), "done" | "failed" | "cancelled")))
        .then_some(jobs)
    })
    .await;
    for job in &ended {
        assert_eq!(job.state, "failed", "{job:#?}");
    }
    let by_source = |p: &Path| {
        let p = p.to_string_lossy().into_owned();
        ended
            .iter()
            .find(|j| j.source == p)
            .unwrap()
            .message
            .clone()
    };
    assert!(
        by_source(&watched).contains("IMG_0003.jpg: is a symbolic link"),
        "{ended:#?}"
    );
    assert!(
        by_source(&handed).contains("handed.jpg: another file has taken this name"),
        "{ended:#?}"
    );
    assert_not_stored(&w, &private_hash);
    assert!(w.sandbox.emulator.files().is_empty());
}

/// Finding 2: a writer that stalls mid-file for longer than the writer-idle time. Nothing goes
/// up while it holds the file open; once it finishes, the whole photo goes up, once.
#[system_test]
async fn a_stalled_writer_keeps_its_file_back_until_it_closes_it() {
    let w = world(watch_config()).await;
    let import = w.dir.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    add_watch(&w, &import, "/Import", &[]).await;

    let photo = std::fs::read(sample_photos().remove(0)).unwrap();
    let path = import.join("slow.jpg");
    let mut writer = std::fs::File::create(&path).unwrap();
    writer.write_all(&photo[..photo.len() / 2]).unwrap();
    writer.flush().unwrap();
    // The stall outlasts the writer-idle time (600 ms): the daemon looks, finds the file
    // still open for writing, and says so.
    wait_for_log(&w, "slow.jpg: still open for writing by another program").await;
    assert!(
        w.all_jobs().await.is_empty(),
        "a job for a half-written file"
    );
    assert!(w.sandbox.emulator.files().is_empty());

    writer.write_all(&photo[photo.len() / 2..]).unwrap();
    drop(writer);
    let done = wait_for("the finished photo done", || async {
        let jobs = w.all_jobs().await;
        (jobs.len() == 1 && jobs[0].state == "done").then_some(jobs)
    })
    .await;
    assert_eq!(done[0].content_hash.as_deref(), Some(hash(&path).as_str()));
    marker(&w, &import, "after.jpg").await;
    let stored = w.stored_paths();
    assert_eq!(
        stored.len(),
        2,
        "one copy of the finished photo: {stored:?}"
    );
    let slow = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .find(|f| f.path_display == "/Import/slow.jpg")
        .expect("slow.jpg stored");
    assert_eq!(slow.size, photo.len() as u64, "the whole photo, not a half");
}

/// Finding 2, second half: a writer the daemon cannot see (it closes the file half-way, then
/// appends the rest after a pause longer than the settle time) gets its half sent. When the
/// finished file comes, it replaces that upload instead of going up beside it.
#[system_test]
async fn a_photo_sent_half_written_is_replaced_by_the_finished_one() {
    let w = world(watch_config()).await;
    let import = w.dir.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    add_watch(&w, &import, "/Import", &[]).await;

    let photo = std::fs::read(sample_photos().remove(0)).unwrap();
    let path = import.join("slow.jpg");
    std::fs::write(&path, &photo[..photo.len() / 2]).unwrap();
    wait_for("the half to go up", || async {
        (w.sandbox.emulator.files().len() == 1).then_some(())
    })
    .await;
    let mut writer = std::fs::File::options().append(true).open(&path).unwrap();
    writer.write_all(&photo[photo.len() / 2..]).unwrap();
    drop(writer);
    let whole = hash(&path);
    let jobs = wait_for("the finished photo's job done", || async {
        let jobs = w.all_jobs().await;
        (jobs.len() == 2 && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    let stored = w.sandbox.emulator.files();
    assert_eq!(
        stored.len(),
        1,
        "the half is still there beside it: {stored:#?}"
    );
    assert_eq!(stored[0].path_display, "/Import/slow.jpg");
    assert_eq!(stored[0].content_hash, whole);
    assert!(
        jobs.iter().all(|j| j.remote_path == "/Import/slow.jpg"),
        "{jobs:#?}"
    );
}

/// Rewrites `len` bytes at `at` in place and puts the mtime back, as
/// `exiftool -P -overwrite_original_in_place` does: size and mtime as before, ctime not.
fn edit_in_place(path: &Path, at: u64, len: usize) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut file = std::fs::File::options().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&vec![0x5a; len]).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

/// Finding 3, after an export: an exported photo edited in place with size and mtime put back
/// is exported again.
#[system_test]
async fn an_edit_in_place_with_the_mtime_put_back_is_exported_again() {
    let w = world(watch_config()).await;
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    let path = camera.join("edited.jpg");
    std::fs::copy(sample_photos().remove(0), &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    add_watch(&w, &camera, "/Camera", &[]).await;
    wait_for("the first export", || async {
        (w.sandbox.emulator.files().len() == 1).then_some(())
    })
    .await;

    edit_in_place(&path, size / 2, 64);
    let edited = hash(&path);
    w.wait_for_stored_hash("the edit exported", &edited).await;
}

/// Finding 3, after the bytes were read: a photo edited while its upload is being committed
/// is exported again once that upload ends (the watch looks at it again then).
#[system_test]
async fn an_edit_made_while_the_upload_commits_is_exported_after_it() {
    let w = world(watch_config()).await;
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    add_watch(&w, &camera, "/Camera", &[]).await;
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/finish*",
        Fault::Delay { millis: 1500 },
        1,
    );
    let path = camera.join("edited.jpg");
    std::fs::copy(sample_photos().remove(0), &path).unwrap();
    w.wait_for_request("/2/files/upload_session/finish").await;
    // The commit is held by the emulator: every byte was read. Now the edit.
    let size = std::fs::metadata(&path).unwrap().len();
    edit_in_place(&path, size / 3, 128);
    let edited = hash(&path);
    w.wait_for_stored_hash("the edit exported", &edited).await;
}

/// Finding 3, during an upload: the file is edited in place (mtime put back) between two
/// chunks of its upload. What Dropbox ends up with is one whole version, the new one, never a
/// mix of the two.
#[system_test]
async fn an_edit_in_place_during_an_upload_is_never_sent_mixed() {
    let mut config = small_config();
    // One chunk at a time, so the edit falls between two reads of the file.
    config.upload.transfers = 1;
    let w = world(config).await;
    let path = w.dir.path().join("big.jpg");
    write_random_file(&path, 10 * 1024 * 1024, 13);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 1500 },
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(std::slice::from_ref(&path)), "/Big".into(), dict(&[]))
        .await
        .unwrap();
    // The first chunk is on its way (held by the emulator): now an edit that touches both
    // what was read (the first chunk) and what is not read yet (the last). Sending the rest
    // as it is now would give Dropbox a file that is neither version.
    w.wait_for_request("/2/files/upload_session/append_v2")
        .await;
    edit_in_place(&path, 1024 * 1024, 4096);
    edit_in_place(&path, 9 * 1024 * 1024, 4096);
    let ended = batch_final(&uploader, batch).await;
    assert_eq!(ended[0].state, "done", "{ended:#?}");
    let stored = w.sandbox.emulator.files();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(
        stored[0].content_hash,
        hash(&path),
        "Dropbox holds a mix of two versions"
    );
    assert_eq!(ended[0].content_hash.as_deref(), Some(hash(&path).as_str()));
}

/// Finding 7: hidden folders made while a recursive watch runs are not taken, like those the
/// catch-up scan skips.
#[system_test]
async fn hidden_folders_made_while_watching_are_not_taken() {
    let w = world(watch_config()).await;
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    add_watch(&w, &camera, "/Camera", &[("recursive", Value::from(true))]).await;
    marker(&w, &camera, "first.jpg").await;
    std::fs::create_dir_all(camera.join(".thumbnails/large")).unwrap();
    std::fs::create_dir_all(camera.join("trip/.newhidden")).unwrap();
    for f in [
        ".thumbnails/t.jpg",
        ".thumbnails/large/l.jpg",
        "trip/.newhidden/h.jpg",
    ] {
        std::fs::copy(sample_photos().remove(0), camera.join(f)).unwrap();
    }
    marker(&w, &camera.join("trip"), "shown.jpg").await;
    let stored = w.stored_paths();
    assert_eq!(
        stored.len(),
        2,
        "only first.jpg and trip/shown.jpg: {stored:?}"
    );
    assert!(stored.iter().all(|p| !p.contains("/.")), "{stored:?}");
}

/// Finding 8: one subfolder the daemon cannot read (a root-owned `lost+found`) and a link to
/// `/proc` do not stop a recursive watch: it stays active, says which folder it skipped, and
/// exports the rest.
#[system_test]
async fn an_unreadable_subfolder_is_skipped_and_the_watch_goes_on() {
    let w = world(watch_config()).await;
    let card = w.dir.path().join("card");
    std::fs::create_dir_all(card.join("DCIM")).unwrap();
    std::fs::create_dir_all(card.join("lost+found")).unwrap();
    std::fs::copy(sample_photos().remove(0), card.join("lost+found/x.jpg")).unwrap();
    std::fs::set_permissions(
        card.join("lost+found"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::os::unix::fs::symlink("/proc", card.join("proc")).unwrap();
    let photos = make_photos(&card.join("DCIM"), 3);
    let id = add_watch(&w, &card, "/Card", &[("recursive", Value::from(true))]).await;
    let done = wait_for("3 photos exported", || async {
        let jobs = w.all_jobs().await;
        (jobs.len() == 3 && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    assert_eq!(done.len(), photos.len());
    assert_eq!(w.watch_view(id).await.state, "active");
    // The daemon runs without root's file access (the sandbox drops it), as a user would.
    wait_for_log(&w, "lost+found: this subfolder").await;
    marker(&w, &card.join("DCIM"), "later.jpg").await;
    std::fs::set_permissions(
        card.join("lost+found"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// Finding 5: kill -9 six times during a 91-photo watch export, under each conflict policy:
/// no photo gets a `name (1).jpg` twin and no file is queued twice (the uploaded-index entry
/// is written with the job's Done, so the catch-up scan after a restart never trusts a stale
/// index).
#[system_test]
async fn kill_9_during_a_watch_export_under_rename_makes_no_twin_and_no_second_job() {
    kill_9_during_a_watch_export("rename").await;
}

#[system_test]
async fn kill_9_during_a_watch_export_under_skip_identical_queues_nothing_twice() {
    kill_9_during_a_watch_export("skip-identical").await;
}

#[system_test]
async fn kill_9_during_a_watch_export_under_overwrite_queues_nothing_twice() {
    kill_9_during_a_watch_export("overwrite").await;
}

async fn kill_9_during_a_watch_export(conflict: &str) {
    const PHOTOS: usize = 91;
    const KILLS: usize = 6;
    let mut w = world(watch_config()).await;
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    let photos = make_photos(&camera, PHOTOS);
    add_watch(
        &w,
        &camera,
        "/Camera",
        &[("conflict", Value::from("rename"))],
    )
    .await;
    // Slow the commits a little so kills land while jobs are finishing.
    w.sandbox.emulator.faults().inject_rate(
        "/2/files/upload_session/finish_batch_v2",
        Fault::Delay { millis: 200 },
        500,
    );
    for kill in 0..KILLS {
        // Some photos done since the last restart, then the kill.
        let before = w.sandbox.emulator.files().len();
        let target = (before + 6).min(PHOTOS - 1);
        wait_for(&format!("progress before kill {kill}"), || async {
            (w.sandbox.emulator.files().len() >= target).then_some(())
        })
        .await;
        w.sandbox.kill_daemon();
        w.sandbox.start_daemon().await.expect("restart");
        w.reconnect().await;
    }
    wait_for("every photo exported", || async {
        let jobs = w.all_jobs().await;
        (jobs.iter().filter(|j| j.state == "done").count() >= PHOTOS
            && jobs.iter().all(|j| j.state == "done"))
        .then_some(())
    })
    .await;
    marker(&w, &camera, "zz-after.jpg").await;
    let stored = w.stored_paths();
    let twins: Vec<&String> = stored.iter().filter(|p| p.contains(" (")).collect();
    assert!(
        twins.is_empty(),
        "{conflict}: twins after kill -9: {twins:?}"
    );
    assert_eq!(stored.len(), PHOTOS + 1, "{stored:?}");
    let jobs = w.all_jobs().await;
    assert_eq!(
        jobs.len(),
        PHOTOS + 1,
        "{conflict}: files queued again after a kill: {} jobs",
        jobs.len()
    );
    drop(photos);
}

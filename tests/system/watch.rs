//! Watch folders: complete photos that land in a watched folder are exported once — not while
//! they are written, not again after a restart, a rename or a touch — and a folder that goes
//! away is reported and picked up again when it returns.
//!
//! "Nothing happened" is never waited for with a sleep: after the change that must not make a
//! job (a touch, a rename), the test drops a new photo into the same folder and waits for
//! *its* job. The daemon settles candidates in the order their events came, so once the later
//! photo has its job, the earlier change has been decided.

use std::collections::{BTreeSet, HashSet};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::zvariant::Value;

use crate::helper::*;

/// Short settle time so tests run quickly; the daemon's default is 2 s.
fn watch_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    config
}

/// Waits until `n` jobs exist and all are Done; returns them. A failed or cancelled job ends
/// the wait at once.
async fn jobs_done(w: &World, n: usize) -> Vec<JobInfo> {
    wait_for(&format!("{n} jobs done"), || async {
        let jobs = w.all_jobs().await;
        let ended_badly: Vec<&JobInfo> = jobs
            .iter()
            .filter(|j| matches!(j.state.as_str(), "failed" | "cancelled"))
            .collect();
        assert!(ended_badly.is_empty(), "jobs ended badly: {ended_badly:#?}");
        (jobs.len() >= n && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await
}

fn copy_photo(to: &Path) -> PathBuf {
    let sample = sample_photos().into_iter().next().unwrap();
    std::fs::copy(&sample, to).unwrap();
    to.to_path_buf()
}

#[system_test]
async fn a_watched_folder_exports_what_it_holds_and_what_arrives() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("camera");
    std::fs::create_dir(&dir).unwrap();
    let photos = make_photos(&dir, 3);
    std::fs::write(dir.join("notes.txt"), b"not a photo").unwrap();
    let id = add_watch(&w, &dir, "/Camera", &[]).await;

    let done = jobs_done(&w, 3).await;
    assert_eq!(done.len(), 3, "{done:#?}");
    assert_jobs_verified(&w, &done);

    // An atomic save: written under a temporary name, then renamed into place.
    let tmp = dir.join(".new.jpg.part");
    copy_photo(&tmp);
    let saved = dir.join("new.jpg");
    std::fs::rename(&tmp, &saved).unwrap();
    let done = jobs_done(&w, 4).await;
    assert_eq!(done.len(), 4, "{done:#?}");
    let stored = w.stored_paths();
    assert!(
        stored.contains(&"/Camera/new.jpg".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored
            .iter()
            .any(|p| p.contains(".part") || p.ends_with(".txt"))
    );
    for photo in &photos {
        let name = photo.file_name().unwrap().to_string_lossy();
        assert!(stored.contains(&format!("/Camera/{name}")), "{stored:?}");
    }

    let listed = w.watches().await.list_watches().await.unwrap();
    assert_eq!(listed.len(), 1);
    let view = dbxport::cli::WatchView::from_dict(&listed[0]);
    assert_eq!(view.id, id);
    assert_eq!(view.state, "active");
    assert_eq!(view.remote_folder, "/Camera");
    // The uploaded-index is written when the watch hears of the job's end, a moment after
    // the job is Done.
    wait_for("4 files in the uploaded-index", || async {
        (w.watch_view(id).await.uploaded == 4).then_some(())
    })
    .await;
}

#[system_test]
async fn a_slow_writer_gives_one_job_after_its_last_write() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("import");
    std::fs::create_dir(&dir).unwrap();
    add_watch(&w, &dir, "/Import", &[]).await;

    // 20 MB in 100 chunks over about 5 s, the file open throughout.
    let path = dir.join("DSC_0001.JPG");
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in data.chunks(200_000) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        // Pacing the writer is the point of the test, not synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            w.all_jobs().await.is_empty(),
            "a job was made while the file was being written"
        );
    }
    drop(file);
    let done = jobs_done(&w, 1).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(
        done[0].content_hash.as_deref(),
        Some(hash(&path).as_str()),
        "the finished file went up"
    );
}

/// Waits until watch `id` has `n` files in its uploaded-index.
async fn indexed(w: &World, id: u64, n: u64) {
    wait_for(&format!("{n} files in watch {id}'s index"), || async {
        (w.watch_view(id).await.uploaded == n).then_some(())
    })
    .await
}

/// `n` files of distinct content `{prefix}{i:04}.jpg` in `dir`, 20–120 kB (below the session
/// threshold, so each is one `files/upload`).
fn small_files(dir: &Path, prefix: &str, n: usize, seed: u64) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("{prefix}{i:04}.jpg"));
            write_random_file(&path, 20_000 + (i as u64 % 11) * 10_000, seed + i as u64);
            path
        })
        .collect()
}

fn sources(jobs: &[JobInfo]) -> BTreeSet<String> {
    jobs.iter().map(|j| j.source.clone()).collect()
}

fn path_set(files: &[PathBuf]) -> BTreeSet<String> {
    paths(files).into_iter().collect()
}

/// `WatchChanged` signals from now on, as (id, state, reason).
async fn watch_changes(
    w: &World,
) -> impl futures_util::Stream<Item = (u64, String, String)> + Unpin + use<> {
    w.watches()
        .await
        .receive_watch_changed()
        .await
        .expect("subscribe to WatchChanged")
        .map(|signal| {
            let args = signal.args().expect("WatchChanged args");
            (args.id, args.state.to_string(), args.reason.to_string())
        })
}

/// The next `WatchChanged` for watch `id` into `state`; returns its reason.
async fn next_change(
    changes: &mut (impl futures_util::Stream<Item = (u64, String, String)> + Unpin),
    id: u64,
    state: &str,
) -> String {
    let wait = async {
        while let Some((changed, now, reason)) = changes.next().await {
            if changed == id && now == state {
                return reason;
            }
        }
        panic!("the signal stream ended");
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no WatchChanged({id}, {state}) within {DEADLINE:?}"))
}

#[system_test]
async fn a_writer_that_reopens_the_file_for_each_chunk_gives_one_job() {
    let mut config = watch_config();
    // Every gap between the writer's chunks (a close, a pause, an open) is far below this.
    config.watch.settle_ms = 1000;
    let w = world(config).await;
    let dir = w.dir.path().join("import");
    std::fs::create_dir(&dir).unwrap();
    add_watch(&w, &dir, "/Import", &[]).await;

    // 20 MB in 100 appends, each its own open … write … close (a close-after-write each time).
    let path = dir.join("DSC_0002.JPG");
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i * 17 % 253) as u8).collect();
    let mut longest_gap = Duration::ZERO;
    let mut last_close = Instant::now();
    for chunk in data.chunks(200_000) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        longest_gap = longest_gap.max(last_close.elapsed());
        file.write_all(chunk).unwrap();
        drop(file);
        last_close = Instant::now();
        // Pacing the writer is the point of the test, not synchronisation.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let jobs = w.all_jobs().await;
        assert!(
            jobs.is_empty(),
            "a job was made while the file was being appended to (longest gap between \
             chunks so far {longest_gap:?}): {jobs:#?}"
        );
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 20_000_000);
    let done = jobs_done(&w, 1).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(
        done[0].content_hash.as_deref(),
        Some(hash(&path).as_str()),
        "the finished file went up"
    );
    assert_jobs_verified(&w, &done);
}

#[system_test]
async fn atomic_saves_and_a_camera_import_of_200_files_give_200_jobs_and_no_temporaries() {
    let w = world(watch_config()).await;
    let card = w.dir.path().join("card");
    let first = card.join("DCIM/100CANON");
    std::fs::create_dir_all(&first).unwrap();
    // Sources outside the watched folder (same file system, so a rename moves them in).
    let staging = w.dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let sources_made = small_files(&staging, "src", 200, 1000);
    // Files that are not photos to export, there before any photo arrives (so by the time the
    // last photo has its job they have been looked at): an aborted download, a crashed
    // editor's hidden save, and the AppleDouble file macOS leaves beside each photo it copies.
    let leftovers = [
        first.join("IMG_9999.JPG.part"),
        first.join(".IMG_9998.JPG"),
        first.join("._IMG_0000.JPG"),
    ];
    for (i, leftover) in leftovers.iter().enumerate() {
        write_random_file(leftover, 30_000, 9000 + i as u64);
    }
    let id = add_watch(&w, &card, "/Camera", &[("recursive", Value::from(true))]).await;
    // A second camera folder appears after the watch started.
    let second = card.join("DCIM/101CANON");
    std::fs::create_dir(&second).unwrap();

    let mut finals = Vec::new();
    for (i, source) in sources_made.iter().enumerate() {
        let folder = if i < 100 { &first } else { &second };
        let name = format!("IMG_{i:04}.JPG");
        let target = folder.join(&name);
        let write_in_chunks = |to: &Path| {
            let data = std::fs::read(source).unwrap();
            let mut file = std::fs::File::create(to).unwrap();
            for chunk in data.chunks(8192) {
                file.write_all(chunk).unwrap();
            }
        };
        match i % 5 {
            // A plain copy to the final name.
            0 => {
                std::fs::copy(source, &target).unwrap();
            }
            // Written in chunks under the final name.
            1 => write_in_chunks(&target),
            // Atomic save through a hidden temporary (`.IMG_0002.JPG.tmp`).
            2 => {
                let tmp = folder.join(format!(".{name}.tmp"));
                write_in_chunks(&tmp);
                std::fs::rename(&tmp, &target).unwrap();
            }
            // A download-style partial file (`IMG_0003.JPG.part`) renamed when complete.
            3 => {
                let tmp = folder.join(format!("{name}.part"));
                write_in_chunks(&tmp);
                std::fs::rename(&tmp, &target).unwrap();
            }
            // Moved in from outside the watched folder.
            _ => std::fs::rename(source, &target).unwrap(),
        }
        finals.push(target);
    }

    let done = jobs_done(&w, 200).await;
    assert_eq!(done.len(), 200, "{:#?}", sources(&done));
    assert_eq!(sources(&done), path_set(&finals), "one job per final file");
    assert_jobs_verified(&w, &done);
    let stored: BTreeSet<String> = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_lower)
        .collect();
    let expected: BTreeSet<String> = finals
        .iter()
        .map(|p| {
            let relative = p.strip_prefix(&card).unwrap().to_string_lossy();
            format!("/camera/{relative}").to_lowercase()
        })
        .collect();
    assert_eq!(
        stored, expected,
        "Dropbox holds exactly the 200 final names"
    );
    assert_eq!(uploads_started(&w), 200, "a file was sent twice");
    indexed(&w, id, 200).await;
}

/// Five files go up; the daemon stops (`graceful`: SIGTERM, else `kill -9`); 50 files are
/// added; at the next start exactly those 50 are uploaded.
async fn files_added_while_stopped(graceful: bool) {
    let mut w = world(watch_config()).await;
    let dir = w.dir.path().join("phone");
    std::fs::create_dir(&dir).unwrap();
    let old = small_files(&dir, "old", 5, 1);
    let id = add_watch(&w, &dir, "/Phone", &[]).await;
    let first = jobs_done(&w, 5).await;
    assert_eq!(first.len(), 5);
    indexed(&w, id, 5).await;
    assert_eq!(uploads_started(&w), 5);

    if graceful {
        let status = w.sandbox.stop_daemon().expect("the daemon was running");
        assert!(status.success(), "dbxportd exited with {status}");
    } else {
        w.sandbox.kill_daemon();
    }
    let new = small_files(&dir, "new", 50, 100);
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;

    let done = jobs_done(&w, 55).await;
    let first_ids: HashSet<u64> = first.iter().map(|j| j.id).collect();
    let later: Vec<JobInfo> = done
        .iter()
        .filter(|j| !first_ids.contains(&j.id))
        .cloned()
        .collect();
    indexed(&w, id, 55).await;
    // Each file's bytes went up once: the 5 before the stop, the 50 after.
    assert_eq!(uploads_started(&w), 55, "files were sent again");
    let mut expected_stored = path_set(&old);
    expected_stored.extend(path_set(&new));
    assert_one_copy_each(&w, &[old.clone(), new.clone()].concat(), "/phone");
    let new_jobs: Vec<JobInfo> = later
        .iter()
        .filter(|j| path_set(&new).contains(&j.source))
        .cloned()
        .collect();
    assert_eq!(sources(&new_jobs), path_set(&new));
    assert_eq!(new_jobs.len(), 50, "{new_jobs:#?}");
    assert_jobs_verified(&w, &new_jobs);
    if graceful {
        // The index was on disk: the old files were not even looked at again.
        assert_eq!(
            later.len(),
            50,
            "jobs for old files: {:#?}",
            sources(&later)
        );
    }
}

#[system_test]
async fn files_added_while_the_daemon_was_stopped_are_the_only_ones_exported_at_start() {
    files_added_while_stopped(true).await;
}

#[system_test]
async fn files_added_while_the_daemon_was_killed_are_the_only_ones_sent_at_start() {
    files_added_while_stopped(false).await;
}

#[system_test]
async fn a_removed_folder_is_reported_missing_and_watched_again_when_recreated() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("sdcard");
    std::fs::create_dir(&dir).unwrap();
    let id = add_watch(&w, &dir, "/Card", &[]).await;
    assert_eq!(w.watch_view(id).await.state, "active");
    let mut changes = watch_changes(&w).await;

    std::fs::remove_dir(&dir).unwrap();
    let reason = next_change(&mut changes, id, "missing").await;
    assert!(reason.contains(&*dir.to_string_lossy()), "{reason}");
    let view = w.watch_view(id).await;
    assert_eq!(view.state, "missing");
    assert_eq!(view.reason, reason);

    // Recreated, with a photo already in it before the watch is back (found by its scan) …
    std::fs::create_dir(&dir).unwrap();
    let early = small_files(&dir, "early", 1, 7).remove(0);
    let reason = next_change(&mut changes, id, "active").await;
    assert_eq!(reason, "");
    assert_eq!(w.watch_view(id).await.state, "active");
    // … and one after (found by inotify).
    let late = small_files(&dir, "late", 1, 8).remove(0);
    let done = jobs_done(&w, 2).await;
    assert_eq!(done.len(), 2, "{done:#?}");
    assert_eq!(sources(&done), path_set(&[early, late]));
    assert_jobs_verified(&w, &done);
}

/// Opens `path` for writing and sets its mtime an hour ahead, as `touch` does; the bytes stay.
fn touch(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
}

/// Rewrites 1000 bytes in the middle of `path`, in place: same inode, same size.
fn edit_in_place(path: &Path) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(5000)).unwrap();
    file.write_all(&[0x5a; 1000]).unwrap();
}

#[system_test]
async fn a_touched_photo_is_not_sent_again_and_an_edited_one_follows_the_conflict_policy() {
    let w = world(watch_config()).await;
    // Same photo in two folders: one watched under skip-identical, one under overwrite (the
    // default for watches, replace, has its own tests: `replace.rs`).
    let keep = w.dir.path().join("keep");
    let over = w.dir.path().join("over");
    std::fs::create_dir(&keep).unwrap();
    std::fs::create_dir(&over).unwrap();
    let a_keep = small_files(&keep, "a", 1, 42).remove(0);
    let a_over = over.join(a_keep.file_name().unwrap());
    std::fs::copy(&a_keep, &a_over).unwrap();
    let original = hash(&a_keep);
    let keep_id = add_watch(
        &w,
        &keep,
        "/Keep",
        &[("conflict", Value::from("skip-identical"))],
    )
    .await;
    let over_id = add_watch(
        &w,
        &over,
        "/Over",
        &[("conflict", Value::from("overwrite"))],
    )
    .await;
    jobs_done(&w, 2).await;
    indexed(&w, keep_id, 1).await;
    indexed(&w, over_id, 1).await;
    assert_eq!(uploads_started(&w), 2);

    // Touched: a new mtime, the same bytes. Then a marker photo, whose job means the touch has
    // been looked at.
    touch(&a_keep);
    touch(&a_over);
    let marker = small_files(&keep, "marker", 1, 43).remove(0);
    let done = jobs_done(&w, 3).await;
    assert_eq!(done.len(), 3, "a touched file got a job: {done:#?}");
    assert!(sources(&done).contains(&*marker.to_string_lossy()));
    assert_eq!(uploads_started(&w), 3, "a touched file was sent again");

    // Edited in place (same inode, same size, new bytes).
    edit_in_place(&a_keep);
    edit_in_place(&a_over);
    let edited = hash(&a_keep);
    assert_ne!(edited, original);
    let done = jobs_done(&w, 5).await;
    assert_eq!(done.len(), 5, "{done:#?}");
    for job in &done[3..] {
        assert_eq!(
            job.content_hash.as_deref(),
            Some(edited.as_str()),
            "{job:?}"
        );
    }
    assert_eq!(uploads_started(&w), 5);
    let stored: std::collections::BTreeMap<String, String> = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| (f.path_display, f.content_hash))
        .collect();
    let expected: std::collections::BTreeMap<String, String> = [
        // skip-identical: the old photo stays, the edited one goes up beside it.
        ("/Keep/a0000.jpg", &original),
        ("/Keep/a0000 (1).jpg", &edited),
        ("/Keep/marker0000.jpg", &hash(&marker)),
        // overwrite: the edited one replaces it.
        ("/Over/a0000.jpg", &edited),
    ]
    .into_iter()
    .map(|(p, h)| (p.to_string(), h.clone()))
    .collect();
    assert_eq!(stored, expected);
}

#[system_test]
async fn a_rename_within_the_folder_uploads_nothing() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("album");
    std::fs::create_dir(&dir).unwrap();
    let photo = small_files(&dir, "a", 1, 5).remove(0);
    let id = add_watch(&w, &dir, "/Album", &[]).await;
    jobs_done(&w, 1).await;
    indexed(&w, id, 1).await;

    let renamed = dir.join("renamed.jpg");
    std::fs::rename(&photo, &renamed).unwrap();
    let marker = small_files(&dir, "marker", 1, 6).remove(0);
    let done = jobs_done(&w, 2).await;
    assert_eq!(done.len(), 2, "the renamed file got a job: {done:#?}");
    assert_eq!(
        done[1].source,
        marker.to_string_lossy(),
        "the second job is the marker's"
    );
    assert_eq!(uploads_started(&w), 2);
    let stored: BTreeSet<String> = w.stored_paths().into_iter().collect();
    assert_eq!(
        stored,
        BTreeSet::from([
            "/Album/a0000.jpg".to_string(),
            "/Album/marker0000.jpg".into()
        ])
    );
}

#[system_test]
async fn watch_jobs_run_after_files_handed_over_by_a_caller() {
    let mut config = watch_config();
    // One transfer, and each small file in one `files/upload` (no commit batches, which would
    // finish a caller's file and watch files together): jobs are sent one at a time, in the
    // order the queue hands them out, and done in that order.
    config.upload.transfers = 1;
    config.upload.batch_commit = false;
    let w = world(config).await;
    let uploader = w.uploader().await;
    uploader.pause().await.unwrap();
    let dir = w.dir.path().join("backlog");
    std::fs::create_dir(&dir).unwrap();
    small_files(&dir, "w", 20, 300);
    add_watch(&w, &dir, "/Backlog", &[]).await;
    wait_for("20 watch jobs queued", || async {
        (w.all_jobs().await.len() == 20).then_some(())
    })
    .await;

    let mut changes = uploader.receive_job_state_changed().await.unwrap();
    let hand = small_files(&w.photo_dir(), "hand", 3, 400);
    let (_, interactive) = uploader
        .upload(paths(&hand), "/Hand".into(), dict(&[]))
        .await
        .unwrap();
    uploader.resume().await.unwrap();

    // The order in which jobs leave `queued`, and in which they are done.
    let mut started: Vec<u64> = Vec::new();
    let mut finished: Vec<u64> = Vec::new();
    let collect = async {
        while finished.len() < 23 {
            let signal = changes.next().await.expect("signal stream");
            let args = signal.args().unwrap();
            match args.state {
                "queued" => {}
                "done" => finished.push(args.job),
                "failed" | "cancelled" => {
                    panic!("job {} {}: {}", args.job, args.state, args.message)
                }
                _ => {
                    if !started.contains(&args.job) {
                        started.push(args.job)
                    }
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("23 jobs done");
    let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
    assert_eq!(
        set(&started[..3]),
        set(&interactive),
        "the caller's files started first: {started:?}"
    );
    assert_eq!(
        set(&finished[..3]),
        set(&interactive),
        "the caller's files were done first: {finished:?}"
    );
}

#[system_test]
async fn an_unreadable_folder_is_an_error_of_the_watch_not_of_the_daemon() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("locked");
    std::fs::create_dir(&dir).unwrap();
    let inside = small_files(&dir, "in", 1, 9).remove(0);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut changes = watch_changes(&w).await;
    let id = add_watch(&w, &dir, "/Locked", &[]).await;
    let view = w.watch_view(id).await;
    assert_eq!(view.state, "error", "{view:?}");
    assert!(view.reason.contains("permission"), "{view:?}");
    assert!(view.reason.contains(&*dir.to_string_lossy()), "{view:?}");

    // The daemon goes on: an upload by hand is exported meanwhile.
    let hand = small_files(&w.photo_dir(), "hand", 1, 10);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&hand), "/Hand".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_jobs_verified(&w, &done);

    // Readable again: the watch recovers and exports what the folder holds.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    next_change(&mut changes, id, "active").await;
    assert_eq!(w.watch_view(id).await.state, "active");
    let done = jobs_done(&w, 2).await;
    assert_eq!(done.len(), 2, "{done:#?}");
    assert!(sources(&done).contains(&*inside.to_string_lossy()));
    assert_jobs_verified(&w, &done);
}

#[system_test]
async fn a_folder_watched_for_two_dropbox_folders_exports_to_both() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    add_watch(&w, &dir, "/A", &[]).await;
    add_watch(&w, &dir, "/B", &[]).await;
    let photo = small_files(&dir, "x", 1, 77).remove(0);
    let done = jobs_done(&w, 2).await;
    let remote: BTreeSet<String> = done.iter().map(|j| j.remote_path.clone()).collect();
    assert_eq!(
        remote,
        BTreeSet::from(["/A/x0000.jpg".to_string(), "/B/x0000.jpg".into()])
    );
    assert!(sources(&done).iter().all(|s| *s == photo.to_string_lossy()));
}

#[system_test]
async fn removing_one_of_two_watches_of_a_folder_leaves_the_other_working() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    let first = add_watch(&w, &dir, "/A", &[]).await;
    let second = add_watch(&w, &dir, "/B", &[]).await;
    w.watches().await.remove_watch(first).await.unwrap();
    assert_eq!(w.watch_view(second).await.state, "active");
    let photo = small_files(&dir, "y", 1, 78).remove(0);
    let done = jobs_done(&w, 1).await;
    assert_eq!(done[0].source, photo.to_string_lossy());
    assert_eq!(done[0].remote_path, "/B/y0000.jpg");
}

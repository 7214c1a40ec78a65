//! Replacing an earlier export (issue 17, item 3): under `conflict = replace` an edited photo
//! exported again takes the place of the copy sent before (same path, new content, new rev,
//! no `photo (1).jpg`); a copy changed in Dropbox since is never overwritten, the upload is
//! kept beside it and `dbxportctl jobs` says why; a watch does this by default; and a kill -9
//! between the commit and the job's Done makes no twin and is resolved by looking.

use std::path::{Path, PathBuf};

use dbxport_testkit::emulator::{Fault, StoredFile};
use zbus::zvariant::Value;

use crate::helper::*;

/// The files the emulator holds under `folder` (lower case).
fn stored_in(w: &World, folder: &str) -> Vec<StoredFile> {
    w.sandbox
        .emulator
        .files()
        .into_iter()
        .filter(|f| f.path_lower.starts_with(&format!("{folder}/")))
        .collect()
}

/// One photo in `dir`, and a second version of it: another sample photo's bytes, which are
/// not the first version with something appended (that would be the watch's "grew since it
/// went up" case, not an edit).
fn photo_and_edit(dir: &Path) -> (PathBuf, Vec<u8>) {
    let photo = make_photos(dir, 1).remove(0);
    let samples = sample_photos();
    let edit = std::fs::read(&samples[samples.len() - 1]).unwrap();
    assert_ne!(std::fs::read(&photo).unwrap(), edit);
    (photo, edit)
}

/// Saves `bytes` over `path` in place (the same file: its device and inode stay).
fn save_over(path: &Path, bytes: &[u8]) {
    let before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    std::fs::write(path, bytes).unwrap();
    let after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap());
    assert_eq!(before, after, "an edit in place");
}

/// `dbxportctl upload FILE --to FOLDER --conflict replace --wait`, which must succeed.
fn export_replacing(w: &World, file: &Path, folder: &str) {
    let out = w.ctl(&[
        "upload",
        file.to_str().unwrap(),
        "--to",
        folder,
        "--conflict",
        "replace",
        "--wait",
    ]);
    assert!(
        out.status.success(),
        "upload --conflict replace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[system_test]
async fn an_edited_photo_exported_again_replaces_its_copy_with_a_new_rev() {
    let w = world(small_config()).await;
    let (photo, edit) = photo_and_edit(&w.photo_dir());
    export_replacing(&w, &photo, "/Album");
    let first = stored_in(&w, "/album");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].content_hash, hash(&photo));

    save_over(&photo, &edit);
    export_replacing(&w, &photo, "/Album");
    let now = stored_in(&w, "/album");
    assert_eq!(
        now.len(),
        1,
        "one remote file, no renamed copy: {:?}",
        now.iter().map(|f| &f.path_display).collect::<Vec<_>>()
    );
    assert_eq!(now[0].path_lower, first[0].path_lower, "the same path");
    assert_eq!(now[0].content_hash, hash(&photo), "the new content");
    assert_ne!(now[0].rev, first[0].rev, "a new rev");
}

#[system_test]
async fn a_copy_changed_in_dropbox_since_is_kept_and_the_job_says_why() {
    let w = world(small_config()).await;
    let (photo, edit) = photo_and_edit(&w.photo_dir());
    export_replacing(&w, &photo, "/Album");
    let sent = stored_in(&w, "/album").remove(0);

    // Behind the daemon's back, someone edits the copy in Dropbox.
    let (client, token) = elsewhere(&w);
    let theirs = bytes::Bytes::from_static(b"edited on another device");
    let arg = dbxport::dropbox::UploadArg {
        commit: dbxport::dropbox::CommitInfo {
            mode: dbxport::dropbox::WriteMode::Overwrite,
            ..dbxport::dropbox::CommitInfo::new(sent.path_display.clone())
        },
        content_hash: None,
    };
    let changed = client.upload(&token, &arg, theirs, None).await.unwrap();
    assert_ne!(changed.rev, sent.rev);

    save_over(&photo, &edit);
    export_replacing(&w, &photo, "/Album");
    let now = stored_in(&w, "/album");
    assert_eq!(now.len(), 2, "{now:?}");
    let at_path = now
        .iter()
        .find(|f| f.path_lower == sent.path_lower)
        .unwrap();
    assert_eq!(
        at_path.rev, changed.rev,
        "the copy changed elsewhere is not overwritten"
    );
    let beside = now
        .iter()
        .find(|f| f.path_lower != sent.path_lower)
        .unwrap();
    assert_eq!(beside.content_hash, hash(&photo), "the upload, renamed");
    assert!(
        beside.path_display.contains("conflicted copy"),
        "{}",
        beside.path_display
    );

    let out = w.ctl(&["jobs"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let name = beside.path_display.rsplit('/').next().unwrap();
    let why = format!(
        "was changed since it was sent (rev {}); uploaded as {name} instead of replacing it",
        sent.rev
    );
    assert!(
        listing.contains(&why),
        "`dbxportctl jobs` says why:\n{listing}"
    );
}

#[system_test]
async fn a_watch_replaces_the_copy_of_a_photo_saved_over_by_default() {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    let w = world(config).await;
    let camera = w.dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    let (photo, edit) = photo_and_edit(&camera);
    let id = add_watch(&w, &camera, "/Camera", &[]).await;
    assert_eq!(w.watch_view(id).await.conflict, "replace", "the default");
    w.wait_for_stored_hash("the photo exported", &hash(&photo))
        .await;
    let first = stored_in(&w, "/camera");
    assert_eq!(first.len(), 1, "{first:?}");

    save_over(&photo, &edit);
    w.wait_for_stored_hash("the new version exported", &hash(&photo))
        .await;
    let now = stored_in(&w, "/camera");
    assert_eq!(
        now.len(),
        1,
        "the copy replaced, not kept beside: {:?}",
        now.iter().map(|f| &f.path_display).collect::<Vec<_>>()
    );
    assert_eq!(now[0].path_lower, first[0].path_lower);
    assert_eq!(now[0].content_hash, hash(&photo));
    assert_ne!(now[0].rev, first[0].rev);
}

#[system_test]
async fn kill_9_between_commit_and_done_under_replace_makes_no_twin_and_sends_nothing_again() {
    let mut w = world(small_config()).await;
    let (photo, edit) = photo_and_edit(&w.photo_dir());
    export_replacing(&w, &photo, "/Album");
    let first = stored_in(&w, "/album").remove(0);

    save_over(&photo, &edit);
    let new_hash = hash(&photo);
    // The commit lands, its answer is held back: the job stays Committing until the kill.
    let faults = w.sandbox.emulator.faults();
    for route in [
        "/2/files/upload",
        "/2/files/upload_session/finish",
        "/2/files/upload_session/finish_batch_v2",
    ] {
        faults.inject(route, Fault::Delay { millis: 600_000 }, 1);
    }
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(std::slice::from_ref(&photo)),
            "/Album".into(),
            dict(&[("conflict", Value::from("replace"))]),
        )
        .await
        .unwrap();
    w.wait_for_stored_hash("the commit landed", &new_hash).await;
    let jobs = jobs(&uploader, &[("batch", Value::from(batch))]).await;
    assert_eq!(jobs[0].state, "committing", "{jobs:?}");
    let before_kill = w.sandbox.emulator.requests().len();
    w.sandbox.kill_daemon();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;

    let uploader = w.uploader().await;
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done[0].state, "done", "{done:?}");
    // Resolved by looking (ARCHITECTURE.md, invariant 2): nothing sent or committed again.
    let again: Vec<String> = w.sandbox.emulator.requests()[before_kill..]
        .iter()
        .filter(|r| is_upload_route(&r.route))
        .map(|r| r.route.clone())
        .collect();
    assert!(again.is_empty(), "sent again after the restart: {again:?}");
    let now = stored_in(&w, "/album");
    assert_eq!(
        now.len(),
        1,
        "no twin after the restart: {:?}",
        now.iter().map(|f| &f.path_display).collect::<Vec<_>>()
    );
    assert_eq!(now[0].path_lower, first.path_lower);
    assert_eq!(now[0].content_hash, new_hash);
    assert_ne!(now[0].rev, first.rev);
}

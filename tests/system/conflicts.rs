//! The conflict policies, against files already in Dropbox: skip-identical (the default),
//! rename and overwrite — and that a lost commit under a renaming policy still ends as one
//! file, found under the name Dropbox gave it.

use std::collections::HashMap;

use bytes::Bytes;
use dbxport::dropbox::{self, CommitInfo, UploadArg, WriteMode};
use dbxport::secret::Secret;
use dbxport_testkit::emulator::Fault;
use zbus::zvariant::Value;

use crate::helper::*;

/// Puts `data` at `path` in the emulated Dropbox, behind the daemon's back.
async fn seed(w: &World, path: &str, data: &[u8]) {
    let mut config = dbxport::config::Config::default();
    config.dropbox.api_url = w.sandbox.emulator.base_url();
    config.dropbox.content_url = w.sandbox.emulator.base_url();
    let client = dbxport::daemon::client_for(&config).unwrap();
    let arg = UploadArg {
        commit: CommitInfo {
            path: path.into(),
            mode: WriteMode::Overwrite,
            autorename: false,
            client_modified: None,
            mute: false,
            strict_conflict: false,
        },
        content_hash: None,
    };
    client
        .upload(
            &Secret::new(w.sandbox.emulator.access_token()),
            &arg,
            Bytes::copy_from_slice(data),
            None,
        )
        .await
        .expect("seed upload");
}

fn stored(w: &World) -> HashMap<String, String> {
    w.sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| (f.path_display, f.content_hash))
        .collect()
}

/// Uploads one file into /C under `conflict` and expects it done.
async fn upload_all_done(
    uploader: &dbxport::service::UploaderProxy<'_>,
    file: &std::path::Path,
    conflict: &str,
) {
    let options = dict(&[("conflict", Value::from(conflict))]);
    let (batch, _) = uploader
        .upload(paths(&[file.to_path_buf()]), "/C".into(), options)
        .await
        .unwrap();
    let done = batch_final(uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
}

fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[system_test]
async fn skip_identical_rename_and_overwrite() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let (a, b, c) = (
        b"AAAA-photo-a".to_vec(),
        b"BBBB-photo-b".to_vec(),
        b"CCCC-edited-b".to_vec(),
    );
    seed(&w, "/C/a.jpg", &a).await;
    seed(&w, "/C/b.jpg", &b).await;
    let uploader = w.uploader().await;

    // skip-identical (the default): a.jpg is already there with the same bytes — done, nothing
    // sent; b.jpg differs — kept beside the old one, which is not touched.
    let local_a = write(&dir, "a.jpg", &a);
    let sub = dir.join("edited");
    std::fs::create_dir(&sub).unwrap();
    let local_b = write(&sub, "b.jpg", &c);
    let before = w.sandbox.emulator.requests().len();
    let (batch, _) = uploader
        .upload(
            paths(&[local_a.clone(), local_b.clone()]),
            "/C".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    let uploads_for_a = files_started(&w.sandbox.emulator.requests()[before..]);
    assert_eq!(uploads_for_a, 1, "only b.jpg's bytes were sent");
    let a_job = done.iter().find(|j| j.source.ends_with("/a.jpg")).unwrap();
    assert!(
        a_job.message.contains("already in Dropbox"),
        "{}",
        a_job.message
    );
    let files = stored(&w);
    assert_eq!(
        files["/C/b.jpg"],
        dropbox::content_hash::content_hash(&b),
        "the old b.jpg was kept"
    );
    assert_eq!(
        files["/C/b (1).jpg"],
        dropbox::content_hash::content_hash(&c),
        "the new one beside it"
    );
    assert_eq!(files.len(), 3);

    // rename: even identical content gets a new name.
    upload_all_done(&uploader, &local_a, "rename").await;
    assert_eq!(
        stored(&w)["/C/a (1).jpg"],
        dropbox::content_hash::content_hash(&a)
    );

    // overwrite: b.jpg now holds the edited bytes.
    upload_all_done(&uploader, &local_b, "overwrite").await;
    assert_eq!(
        stored(&w)["/C/b.jpg"],
        dropbox::content_hash::content_hash(&c)
    );

    // The CLI takes the same policies.
    let out = w.ctl(&[
        "upload",
        "--to",
        "/C",
        "--conflict",
        "rename",
        "--wait",
        &local_b.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stored(&w).contains_key("/C/b (2).jpg"),
        "{:?}",
        stored(&w).keys()
    );
}

#[system_test]
async fn a_lost_commit_under_rename_ends_as_one_renamed_file() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    seed(&w, "/R/p.jpg", b"the old picture").await;
    let local = write(&dir, "p.jpg", b"a different picture");
    // The commit lands as "p (1).jpg", and its answer is lost.
    w.sandbox
        .emulator
        .faults()
        .inject("/2/files/upload", Fault::LoseAnswer, 1);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&[local]), "/R".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    let files = stored(&w);
    assert_eq!(files.len(), 2, "no second copy: {:?}", files.keys());
    assert!(files.contains_key("/R/p (1).jpg"));
}

/// The job's `stored_path` (where Dropbox holds its file) as ListJobs gives it.
async fn stored_path(uploader: &dbxport::service::UploaderProxy<'_>, batch: u64) -> String {
    let listed = uploader
        .list_jobs(dict(&[("batch", Value::from(batch))]))
        .await
        .unwrap();
    listed[0]
        .get("stored_path")
        .and_then(|v| <&str>::try_from(&**v).ok())
        .unwrap_or_default()
        .to_string()
}

#[system_test]
async fn a_commit_reset_under_rename_is_not_done_until_a_new_file_exists() {
    let w = world(small_config()).await;
    let data = b"the same picture, uploaded again".to_vec();
    // The very bytes are already there: under rename a new copy is still wanted.
    seed(&w, "/R/p.jpg", &data).await;
    let local = write(&w.photo_dir(), "p.jpg", &data);
    // The commit is cut off by a reset before Dropbox acts on it.
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::ResetMidBody,
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[local]),
            "/R".into(),
            dict(&[("conflict", Value::from("rename"))]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    assert!(
        w.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| r.fault.as_deref() == Some("reset_mid_body")),
        "the reset happened"
    );
    let files = stored(&w);
    assert_eq!(files.len(), 2, "a new file exists: {:?}", files.keys());
    assert_eq!(
        files["/R/p (1).jpg"],
        dropbox::content_hash::content_hash(&data)
    );
    assert_eq!(stored_path(&uploader, batch).await, "/R/p (1).jpg");
    assert!(
        done[0].message.contains("/R/p (1).jpg"),
        "{}",
        done[0].message
    );
}

#[system_test]
async fn a_lost_answer_under_rename_reports_where_the_file_landed() {
    let w = world(small_config()).await;
    let data = b"ren: a picture with two copies already".to_vec();
    seed(&w, "/R/ren.jpg", &data).await;
    seed(&w, "/R/ren (1).jpg", &data).await;
    let local = write(&w.photo_dir(), "ren.jpg", &data);
    // The commit lands (as "ren (2).jpg"), and its answer is lost.
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::LoseAnswer,
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[local]),
            "/R".into(),
            dict(&[("conflict", Value::from("rename"))]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    assert!(
        w.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| r.fault.as_deref() == Some("lose_answer")),
        "the answer was lost"
    );
    let files = stored(&w);
    assert_eq!(files.len(), 3, "one new file: {:?}", files.keys());
    assert_eq!(stored_path(&uploader, batch).await, "/R/ren (2).jpg");
    assert!(
        done[0].message.contains("/R/ren (2).jpg"),
        "{}",
        done[0].message
    );
}

//! The end of a batch: `BatchFinished` with counts and failure reasons, and the shared link
//! to the folder when the batch asked for one — made once, then reused, and waited for
//! through server errors.

use std::os::unix::fs::PermissionsExt;

use futures_util::StreamExt;
use zbus::zvariant::{OwnedValue, Value};

use crate::helper::*;

fn get_u32(d: &std::collections::HashMap<String, OwnedValue>, key: &str) -> u32 {
    d.get(key)
        .and_then(|v| u32::try_from(&**v).ok())
        .unwrap_or_else(|| panic!("{key} missing: {d:?}"))
}

fn get_str(d: &std::collections::HashMap<String, OwnedValue>, key: &str) -> Option<String> {
    d.get(key)
        .and_then(|v| <&str>::try_from(&**v).ok())
        .map(String::from)
}

/// The summary `BatchFinished` carries for `batch`.
async fn summary_of(
    finished: &mut dbxport::service::BatchFinishedStream,
    batch: u64,
) -> std::collections::HashMap<String, OwnedValue> {
    loop {
        let signal = finished.next().await.unwrap();
        let args = signal.args().unwrap();
        if args.batch == batch {
            return args.summary.clone();
        }
    }
}

/// Uploads `files` into `folder` asking for the folder's shared link; the batch's summary.
async fn linked_batch(
    uploader: &dbxport::service::UploaderProxy<'_>,
    finished: &mut dbxport::service::BatchFinishedStream,
    files: &[std::path::PathBuf],
    folder: &str,
) -> std::collections::HashMap<String, OwnedValue> {
    let (batch, _) = uploader
        .upload(
            paths(files),
            folder.into(),
            dict(&[("share_link", Value::from(true))]),
        )
        .await
        .unwrap();
    summary_of(finished, batch).await
}

#[system_test]
async fn a_batch_ends_with_its_counts_and_a_reused_shared_link() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let files = make_photos(&dir, 3);
    let locked = dir.join("locked.jpg");
    std::fs::copy(&files[0], &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let uploader = w.uploader().await;
    let mut finished = uploader.receive_batch_finished().await.unwrap();

    let all = [files.clone(), vec![locked.clone()]].concat();
    let summary = linked_batch(&uploader, &mut finished, &all, "/Shared").await;
    assert_eq!(get_u32(&summary, "done"), 3);
    assert_eq!(get_u32(&summary, "failed"), 1);
    assert_eq!(get_u32(&summary, "skipped"), 0);
    let failures = summary
        .get("failures")
        .map(|v| Vec::<String>::try_from(v.try_clone().unwrap()).unwrap())
        .unwrap();
    assert!(failures[0].contains("locked.jpg"), "{failures:?}");
    let link = get_str(&summary, "link").unwrap_or_else(|| panic!("no link: {summary:?}"));
    assert!(link.starts_with("https://"), "{link}");

    // The CLI prints the link; asking again for the same folder reuses the link.
    let out = w.ctl(&[
        "upload",
        "--to",
        "/Shared",
        "--share-link",
        "--wait",
        &files[0].to_string_lossy(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("Shared link: {link}")), "{stdout}");
    assert!(stdout.contains("0 uploaded, 1 already there"), "{stdout}");

    // Without share_link, no link is made.
    let (plain, _) = uploader
        .upload(paths(&files[1..2]), "/Plain".into(), dict(&[]))
        .await
        .unwrap();
    assert!(get_str(&summary_of(&mut finished, plain).await, "link").is_none());
    let links = w
        .sandbox
        .emulator
        .requests()
        .iter()
        .filter(|r| r.route.starts_with("/2/sharing/"))
        .count();
    assert!(
        links >= 2,
        "the second batch asked Dropbox again (and got the same link)"
    );
}

#[system_test]
async fn failed_jobs_can_be_retried_once_the_cause_is_fixed() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let files = make_photos(&dir, 2);
    std::fs::set_permissions(&files[1], std::fs::Permissions::from_mode(0o000)).unwrap();
    let uploader = w.uploader().await;
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    let (batch, _) = uploader
        .upload(paths(&files), "/Retry".into(), dict(&[]))
        .await
        .unwrap();
    let first = finished.next().await.unwrap();
    assert_eq!(get_u32(&first.args().unwrap().summary, "failed"), 1);

    // The user fixes the file and asks again, for the whole batch.
    std::fs::set_permissions(&files[1], std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = w.ctl(&["retry", &batch.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued 1 failed job(s) again"));
    let second = finished.next().await.unwrap();
    let args = second.args().unwrap();
    assert_eq!(args.batch, batch);
    assert_eq!(get_u32(&args.summary, "failed"), 0);
    assert_jobs_verified(&w, &batch_final(&uploader, batch).await);
    // Nothing left to retry.
    let out = w.ctl(&["retry", &batch.to_string()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("nothing to retry in {batch}: 2 done")),
        "{said}"
    );
}

#[system_test]
async fn a_shared_link_comes_through_a_run_of_server_errors() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 2);
    // More server errors in a row than a few quick retries would wait out: the link waits in
    // its job's Waiting state, with its backoff, for as long as it takes.
    w.sandbox.emulator.faults().inject(
        "/2/sharing/create_shared_link_with_settings",
        dbxport_testkit::emulator::Fault::ServerError { status: 503 },
        4,
    );
    let uploader = w.uploader().await;
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    let summary = linked_batch(&uploader, &mut finished, &files, "/Patient").await;
    assert_eq!(get_u32(&summary, "done"), 2, "{summary:?}");
    let link = get_str(&summary, "link").unwrap_or_else(|| panic!("no link: {summary:?}"));
    assert!(link.starts_with("https://"), "{link}");
    assert_eq!(get_str(&summary, "link_error"), None);
    let tries = w
        .sandbox
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.route == "/2/sharing/create_shared_link_with_settings")
        .count();
    assert_eq!(
        tries, 5,
        "four refused by a server error, then the one that made it"
    );
}

/// A shared link of the top of the Dropbox cannot exist: asked for, the batch is refused
/// before anything is queued, saying what to do, whether the top was named or is where a
/// template's folders meet.
#[system_test]
async fn a_shared_link_of_the_top_of_the_dropbox_is_refused_before_queueing() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let files = make_photos(&dir, 2);
    let uploader = w.uploader().await;
    for folder in ["/", "/{year}"] {
        let err = uploader
            .upload(
                paths(&files),
                folder.into(),
                dict(&[("share_link", Value::from(true))]),
            )
            .await
            .expect_err(folder)
            .to_string();
        assert!(
            err.contains("shared link needs a folder") && err.contains("/Photos/{year}"),
            "{folder}: {err}"
        );
    }
    let jobs = uploader.list_jobs(Default::default()).await.unwrap();
    assert!(jobs.is_empty(), "queued anyway: {jobs:?}");
    // A watch asking for links into the top is refused when it is added, not at each batch.
    let watches = w.watches().await;
    for folder in ["/", "/{year}"] {
        let err = watches
            .add_watch(
                dir.to_string_lossy().into_owned(),
                folder.into(),
                dict(&[("share_link", Value::from(true))]),
            )
            .await
            .expect_err(folder)
            .to_string();
        assert!(
            err.contains("shared link needs a folder"),
            "{folder}: {err}"
        );
    }
    assert!(watches.list_watches().await.unwrap().is_empty());
    // Without the link the top is a fine place to send to; and the template's folders only
    // meet at the top because the two photos were taken in different years.
    uploader
        .upload(paths(&files), "/".into(), dict(&[]))
        .await
        .expect("the top without a link");
    let (batch, _) = uploader
        .upload(paths(&files), "/{year}".into(), dict(&[]))
        .await
        .expect("a template without a link");
    let tops: std::collections::HashSet<String> = uploader
        .list_jobs(dict(&[("batch", Value::from(batch))]))
        .await
        .unwrap()
        .iter()
        .filter_map(|d| get_str(d, "remote_path"))
        .filter_map(|p| p.split('/').nth(1).map(String::from))
        .collect();
    assert_eq!(tops.len(), 2, "{tops:?}");
}

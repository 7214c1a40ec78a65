//! Permanent refusals fail one job, never the batch (ARCHITECTURE.md, invariant 5): a Dropbox that turns out to
//! be full (its quota changed after the daemon read it, so only Dropbox itself can say so) and
//! a name Dropbox refuses each fail their own job with a reason in words, and the rest of the
//! batch goes on to Done. (A quota already known to be too small is refused before sending:
//! `account::a_photo_that_cannot_fit_fails_before_it_is_sent`.)

use std::path::PathBuf;

use dbxport::config::MIB;

use crate::helper::*;

/// `n` small files of distinct content in `dir`.
fn small_files(dir: &std::path::Path, n: u64) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("s{i:02}.jpg"));
            write_random_file(&path, 20_000 + i * 1_000, 100 + i);
            path
        })
        .collect()
}

#[system_test]
async fn a_dropbox_full_behind_the_daemons_back_fails_only_the_file_that_does_not_fit() {
    let w = world(small_config()).await;
    let account = w.account().await;
    // The daemon has read the quota at login: plenty of room.
    let roomy = wait_for("the quota to be read", || async {
        let allocated = account.allocated_bytes().await.unwrap();
        (allocated > 0).then_some(allocated)
    })
    .await;
    let dir = w.photo_dir();
    let small = small_files(&dir, 10);
    let big = dir.join("big.raw");
    write_random_file(&big, 6 * MIB, 7);
    let small_total: u64 = small
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    // Then the account fills up elsewhere: the small files still fit, the big one does not,
    // and the daemon's copy of the quota does not know.
    w.sandbox.emulator.set_space_allocated(small_total + MIB);
    assert!(roomy > small_total + 6 * MIB);

    let mut all = small.clone();
    all.insert(small.len() / 2, big.clone());
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&all), "/Full".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    let (failed, ok): (Vec<_>, Vec<_>) = done.into_iter().partition(|j| j.state == "failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].source, big.to_string_lossy(), "{failed:#?}");
    let message = failed[0].message.to_lowercase();
    assert!(
        message.contains("full") || message.contains("space"),
        "the reason does not say Dropbox is full: {}",
        failed[0].message
    );
    assert!(
        failed[0].message.contains(&*big.to_string_lossy()),
        "the reason does not name the file: {}",
        failed[0].message
    );
    // Dropbox was asked: the refusal came from it, not from the stale quota.
    assert!(
        w.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| is_upload_route(&r.route) && r.status == 409),
        "Dropbox never refused a commit"
    );
    assert_eq!(ok.len(), small.len(), "{ok:#?}");
    assert_jobs_verified(&w, &ok);
    assert_one_copy_each(&w, &small, "/full");
}

#[system_test]
async fn a_name_dropbox_refuses_fails_that_file_and_the_rest_go_up() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let good = small_files(&dir, 6);
    let refused: Vec<PathBuf> = ["desktop.ini", "Thumbs.db", ".DS_Store"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = dir.join(name);
            write_random_file(&path, 3_000, 50 + i as u64);
            path
        })
        .collect();
    let mut all = good.clone();
    for (i, path) in refused.iter().enumerate() {
        all.insert(2 * i + 1, path.clone());
    }
    let uploader = w.uploader().await;
    // Refused when the batch is handed over (naming the file), or accepted and failed later.
    let (batch, _) = uploader
        .upload(paths(&all), "/Names".into(), dict(&[]))
        .await
        .unwrap_or_else(|e| panic!("the good files were refused with the bad: {e}"));
    let done = batch_final(&uploader, batch).await;
    let (failed, ok): (Vec<_>, Vec<_>) = done.into_iter().partition(|j| j.state == "failed");
    assert_eq!(failed.len(), refused.len(), "{failed:#?}\n{ok:#?}");
    for path in &refused {
        let name = path.file_name().unwrap().to_string_lossy();
        let job = failed
            .iter()
            .find(|j| j.source == path.to_string_lossy())
            .unwrap_or_else(|| panic!("{name} did not fail: {failed:#?}"));
        assert!(
            job.message.contains(&*name) && job.message.to_lowercase().contains("name"),
            "the reason does not say the name {name} is refused: {}",
            job.message
        );
    }
    assert_eq!(ok.len(), good.len());
    assert_jobs_verified(&w, &ok);
    assert_one_copy_each(&w, &good, "/names");
}

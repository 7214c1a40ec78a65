//! How files reach Dropbox: small files as closed upload sessions committed together with
//! `finish_batch_v2` (full batches, one commit in flight), a large file's chunks sent in
//! parallel through a concurrent session and committed on its own.

use std::time::Duration;

use dbxport_testkit::emulator::Fault;

use crate::helper::*;

fn routes(w: &World, route: &str) -> Vec<dbxport_testkit::emulator::RequestRecord> {
    w.sandbox
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.route == route)
        .collect()
}

#[system_test]
async fn small_files_are_committed_in_batches_one_at_a_time() {
    let mut config = small_config();
    // Above every sample photo: all of them are small files here.
    config.upload.session_threshold = 64 * 1024 * 1024;
    config.upload.batch_size = 7;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 30);
    // Slow commits: if two were ever in flight at once, their arrivals would be closer than this.
    let commit_time = Duration::from_millis(300);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::Delay {
            millis: commit_time.as_millis() as u64,
        },
        1000,
    );
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Batched").await;
    assert_eq!(w.sandbox.emulator.files().len(), 30);

    let commits = routes(&w, "/2/files/upload_session/finish_batch_v2");
    // 30 files in batches of at most 7.
    assert!(
        (5..=15).contains(&commits.len()),
        "{} batch commits for 30 files",
        commits.len()
    );
    for pair in commits.windows(2) {
        let gap = pair[1].received - pair[0].received;
        assert!(
            gap >= commit_time,
            "two batch commits in flight at once ({gap:?} apart)"
        );
    }
    assert!(routes(&w, "/2/files/upload").is_empty());
    assert!(routes(&w, "/2/files/upload_session/finish").is_empty());
    assert_eq!(uploads_started(&w), 30);
}

#[system_test]
async fn without_batching_each_small_file_is_one_request() {
    let mut config = small_config();
    config.upload.session_threshold = 64 * 1024 * 1024;
    config.upload.batch_commit = false;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 8);
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, &files, "/Single").await;
    assert_eq!(routes(&w, "/2/files/upload").len(), 8);
    assert!(routes(&w, "/2/files/upload_session/finish_batch_v2").is_empty());
}

#[system_test]
async fn a_large_file_goes_in_parallel_chunks_and_commits_alone() {
    let mut config = small_config();
    config.upload.transfers = 4;
    let w = world(config.clone()).await;
    // 10 chunks of 4 MiB and a short last one.
    let path = w.photo_dir().join("video.mov");
    let data: Vec<u8> = (0..(40 * 1024 * 1024 + 12345u64))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    // Slow appends: chunks sent one after another would arrive at least this far apart.
    let append_time = Duration::from_millis(400);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay {
            millis: append_time.as_millis() as u64,
        },
        100,
    );
    let uploader = w.uploader().await;
    upload_verified(&w, &uploader, std::slice::from_ref(&path), "/Big").await;
    assert_eq!(w.sandbox.emulator.files()[0].content_hash, hash(&path));

    let appends = routes(&w, "/2/files/upload_session/append_v2");
    assert_eq!(appends.len(), 11, "one append per chunk");
    let overlapping = appends
        .windows(2)
        .filter(|p| p[1].received - p[0].received < append_time / 2)
        .count();
    assert!(
        overlapping >= 3,
        "the chunks went one after another: {:?}",
        appends
            .windows(2)
            .map(|p| p[1].received - p[0].received)
            .collect::<Vec<_>>()
    );
    assert_eq!(routes(&w, "/2/files/upload_session/finish").len(), 1);
    assert!(routes(&w, "/2/files/upload_session/finish_batch_v2").is_empty());
}

#[system_test]
async fn progress_signals_are_coalesced_a_few_per_second() {
    use futures_util::StreamExt;
    let w = world(small_config()).await;
    let mut files = make_photos(&w.photo_dir(), 40);
    // And one file sent slowly, so it reports progress many times.
    let big = w.photo_dir().join("slow.mov");
    std::fs::write(&big, vec![7u8; 24 * 1024 * 1024]).unwrap();
    files.push(big);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 600 },
        100,
    );
    let uploader = w.uploader().await;
    let mut progress = uploader.receive_job_progress().await.unwrap();
    let seen = tokio::spawn(async move {
        let mut seen: Vec<(std::time::Instant, u64, u64, u64)> = Vec::new();
        while let Some(signal) = progress.next().await {
            let args = signal.args().unwrap();
            seen.push((std::time::Instant::now(), args.job, args.sent, args.total));
            if seen.iter().filter(|s| s.2 == s.3).count() == 41 {
                break;
            }
        }
        seen
    });
    let (batch, _) = uploader
        .upload(paths(&files), "/Progress".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    let seen = tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("every job's last progress signal")
        .unwrap();
    // Signals arrive in flushes: between two signals of one job lies at least most of a flush
    // interval (250 ms; bus delivery may bunch them a little).
    let mut by_job: std::collections::HashMap<u64, Vec<std::time::Instant>> = Default::default();
    for (at, job, _, _) in &seen {
        by_job.entry(*job).or_default().push(*at);
    }
    let slow = by_job.values().map(Vec::len).max().unwrap();
    assert!(slow >= 4, "the slow file reported progress {slow} times");
    for times in by_job.values() {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(150),
                "two progress signals of one job {:?} apart",
                pair[1] - pair[0]
            );
        }
    }
}

#[system_test]
async fn photos_are_resized_ahead_of_the_transfers() {
    let mut config = small_config();
    config.upload.transfers = 1;
    let w = world(config).await;
    let files = make_photos(&w.photo_dir(), 8);
    // The first transfer (a pack of resized photos) hangs for a while; preparation must not
    // wait for it.
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_batch",
        Fault::Delay { millis: 5000 },
        1,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&files),
            "/Ahead".into(),
            dict(&[
                ("resize", zbus::zvariant::Value::from(true)),
                ("max_dimension", zbus::zvariant::Value::from(640u32)),
            ]),
        )
        .await
        .unwrap();
    let cache = w.dir.path().join("cache/dbxport/prepared");
    wait_for("photos prepared while the only transfer is stuck", || {
        let prepared = std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".part"))
                    .count()
            })
            .unwrap_or(0);
        let starts = routes(&w, "/2/files/upload_session/append_batch").len();
        async move { (prepared >= 3 && starts == 1).then_some(()) }
    })
    .await;
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
}

#[system_test]
async fn skip_identical_reads_a_busy_folder_once_and_confirms_before_skipping() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 30);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Album".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    // Not one look-up per photo: a few, then the folder's listing answers the rest.
    let lookups = routes(&w, "/2/files/get_metadata").len();
    let listings = routes(&w, "/2/files/list_folder").len();
    assert!(lookups < 10, "{lookups} get_metadata calls for 30 photos");
    assert!(listings >= 1);

    // Behind the daemon's back, one photo goes; the rest are sent again: only the deleted one
    // travels, although the daemon's listing still shows it.
    let (client, token) = elsewhere(&w);
    let gone = format!("/Album/{}", files[0].file_name().unwrap().to_string_lossy());
    client.delete(&token, &gone).await.unwrap();
    let starts_before = uploads_started(&w);
    let again = upload_verified(&w, &uploader, &files, "/Album").await;
    let sent = uploads_started(&w) - starts_before;
    assert_eq!(sent, 1, "only the deleted photo is sent again");
    let skipped = again
        .iter()
        .filter(|j| j.message.contains("already in Dropbox"))
        .count();
    assert_eq!(skipped, 29);
    assert_eq!(w.sandbox.emulator.files().len(), 30);
}

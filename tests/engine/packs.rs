//! Small files through the packer (issue 16): many to an `append_batch` request, sessions taken
//! ahead with `start_batch`, committed with `finish_batch_v2`; under faults every job Done once
//! and verified; and the reading, hashing and skip-identical look-up of a file done without a
//! network slot.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

const APPEND_BATCH: &str = "/2/files/upload_session/append_batch";
const START_BATCH: &str = "/2/files/upload_session/start_batch";

/// `count` small files of 20–60 KB in the bench's directory, with their bytes.
fn photos(bench: &Bench, count: usize) -> Vec<(PathBuf, Vec<u8>)> {
    (0..count)
        .map(|i| {
            bench.file(
                &format!("p{i:03}.jpg"),
                20_000 + (i as u64 * 7_919) % 40_000,
            )
        })
        .collect()
}

/// Requests the emulator received from the `from`-th on, by route.
fn routes_since(bench: &Bench, from: usize) -> HashMap<String, usize> {
    let mut routes = HashMap::new();
    for r in bench.emulator.requests().into_iter().skip(from) {
        *routes.entry(r.route).or_default() += 1;
    }
    routes
}

/// Every job Done exactly once, each file stored once (no renamed twin) with the bytes sent.
fn assert_all_done_once(
    bench: &Bench,
    jobs: &[Job],
    finals: &HashMap<JobId, (Job, Vec<JobState>)>,
    photos: &[(PathBuf, Vec<u8>)],
) {
    for (job, (_, bytes)) in jobs.iter().zip(photos) {
        let (last, states) = &finals[&job.id];
        assert_done_with(bench, last, bytes);
        let dones = states
            .iter()
            .filter(|s| matches!(s, JobState::Done { .. }))
            .count();
        assert_eq!(dones, 1, "job {}: {states:#?}", job.id);
    }
    let stored = bench.emulator.files();
    assert_eq!(stored.len(), photos.len(), "one file per photo");
    let mut commits: HashMap<String, usize> = HashMap::new();
    for commit in bench.emulator.session_commits() {
        *commits.entry(commit.path_lower).or_default() += 1;
    }
    assert!(
        commits.values().all(|n| *n == 1),
        "a file committed twice: {commits:?}"
    );
}

#[system_test]
async fn two_hundred_small_files_go_up_in_a_handful_of_requests() {
    let bench = Bench::start().await;
    let photos = photos(&bench, 200);
    let before = bench.emulator.requests().len();
    let paths: Vec<&Path> = photos.iter().map(|(p, _)| p.as_path()).collect();
    let queued = bench.enqueue("/Packed", &paths).await;
    let (jobs, finals) = bench.until_final(queued).await;
    assert_all_done_once(&bench, &jobs, &finals, &photos);
    let routes = routes_since(&bench, before);
    let total: usize = routes.values().sum();
    eprintln!("{total} requests for {} photos: {routes:?}", photos.len());
    // One start_batch, a pack or a few, as many commits, and skip-identical's three look-ups
    // and one listing of the folder: a tenth of a request per photo is the target.
    assert!(total * 10 < photos.len(), "{total} requests: {routes:?}");
    assert!(routes.contains_key(APPEND_BATCH), "{routes:?}");
    assert_eq!(routes.get(START_BATCH), Some(&1), "{routes:?}");
    for single in [
        "/2/files/upload",
        "/2/files/upload_session/start",
        "/2/files/upload_session/append_v2",
    ] {
        assert_eq!(routes.get(single), None, "{routes:?}");
    }
    bench.stop().await;
}

#[system_test]
async fn two_hundred_small_files_under_five_percent_faults_are_each_done_once_and_verified() {
    let bench = Bench::start().await;
    let faults = bench.emulator.faults();
    faults.seed(0x16_0002);
    // Each kind at least once where it matters most: the pack itself and the sessions...
    faults.inject(APPEND_BATCH, Fault::LoseAnswer, 1);
    faults.inject(APPEND_BATCH, Fault::ResetMidBody, 1);
    faults.inject(APPEND_BATCH, Fault::ServerError { status: 503 }, 1);
    faults.inject(APPEND_BATCH, Fault::TooManyRequests { retry_after: 1 }, 1);
    faults.inject(START_BATCH, Fault::ServerError { status: 500 }, 1);
    // ...and 5 % of every request, and of every pack's entries.
    for fault in [
        Fault::TooManyRequests { retry_after: 1 },
        Fault::ServerError { status: 503 },
        Fault::ResetMidBody,
        Fault::LoseAnswer,
    ] {
        faults.inject_rate("*", fault, 12);
    }
    faults.inject_rate(
        APPEND_BATCH,
        Fault::EntryIncorrectOffset { per_mille: 50 },
        1000,
    );
    let photos = photos(&bench, 200);
    let before = bench.emulator.requests().len();
    let paths: Vec<&Path> = photos.iter().map(|(p, _)| p.as_path()).collect();
    let queued = bench.enqueue("/Faulty", &paths).await;
    let (jobs, finals) = bench.until_final(queued).await;
    assert_all_done_once(&bench, &jobs, &finals, &photos);
    let records: Vec<_> = bench.emulator.requests().into_iter().skip(before).collect();
    let faults_met = records.iter().filter(|r| r.fault.is_some()).count();
    eprintln!(
        "{} requests ({faults_met} faulted, {} entries misplaced) for {} photos",
        records.len(),
        bench.emulator.faults().entries_misplaced(),
        photos.len()
    );
    let faulted = |name: &str| {
        records
            .iter()
            .any(|r| r.route == APPEND_BATCH && r.fault.as_deref() == Some(name))
    };
    for name in [
        "lose_answer",
        "reset_mid_body",
        "server_error",
        "too_many_requests",
    ] {
        assert!(faulted(name), "no pack met {name}");
    }
    assert!(
        bench.emulator.faults().entries_misplaced() > 0,
        "no entry answered incorrect_offset"
    );
    // Faults cost requests (each retried pack, each job that waited), but far fewer than a
    // request per photo.
    assert!(
        records.len() * 2 < photos.len(),
        "{} requests for {} photos",
        records.len(),
        photos.len()
    );
    bench.stop().await;
}

/// Two files of `size` bytes go up with one network slot while each skip-identical look-up
/// takes a second to answer; asserts the second look-up began before the first answered. Were
/// the look-up made holding the slot, the second file's would start only after the first
/// file's had answered (and its first request had gone).
async fn both_looked_up_at_once(size: u64) {
    let bench = Bench::start_with(|upload| upload.transfers = 1).await;
    let lookup = "/2/files/get_metadata";
    let delay = Duration::from_secs(1);
    bench.emulator.faults().inject(
        lookup,
        Fault::Delay {
            millis: delay.as_millis() as u64,
        },
        2,
    );
    let photos = [bench.file("n1.jpg", size), bench.file("n2.jpg", size)];
    let queued = bench
        .enqueue("/Slotless", &[&photos[0].0, &photos[1].0])
        .await;
    let (jobs, finals) = bench.until_final(queued).await;
    for (job, (_, bytes)) in jobs.iter().zip(&photos) {
        assert_done_with(&bench, &finals[&job.id].0, bytes);
    }
    let received: Vec<_> = bench
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.route == lookup)
        .map(|r| r.received)
        .collect();
    assert_eq!(received.len(), 2, "one look-up per file");
    let apart = received[1].duration_since(received[0]);
    assert!(
        apart < delay,
        "the second look-up began {apart:?} after the first: it waited for the slot"
    );
    bench.stop().await;
}

#[system_test]
async fn files_are_read_and_looked_up_in_dropbox_without_a_network_slot() {
    // Small files, which go up in packs.
    both_looked_up_at_once(30_000).await;
}

#[system_test]
async fn large_files_are_looked_up_in_dropbox_without_a_network_slot() {
    // Files of three chunks, each through its own concurrent session.
    both_looked_up_at_once(9 * MIB + 123).await;
}

#[system_test]
async fn a_hold_queues_watched_files_whose_bytes_wait_unsent_and_the_pack_in_flight_finishes() {
    // One request at a time; the first pack lands but its answer takes three seconds, so the
    // next watched files' bytes wait with the packer when a policy hold (metered) begins.
    let bench = Bench::start_with(|upload| upload.transfers = 1).await;
    let faults = bench.emulator.faults();
    faults.inject(APPEND_BATCH, Fault::Delay { millis: 3000 }, 1);
    let first = bench.file("w0.jpg", 30_000);
    let rest = [bench.file("w1.jpg", 30_000), bench.file("w2.jpg", 30_000)];
    let first_queued = bench.enqueue_watched("/Watched", &[&first.0]).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let requests_to = |route: &str, answered: bool| {
        bench
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r.route == route && (!answered || r.status != 0))
            .count()
    };
    while requests_to(APPEND_BATCH, false) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no pack sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut events = bench.queue.subscribe();
    let rest_queued = bench
        .enqueue_watched("/Watched", &[&rest[0].0, &rest[1].0])
        .await;
    // Their look-ups answered, their bytes are with the packer, behind the pack in flight.
    while requests_to("/2/files/get_metadata", true) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no look-ups");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bench.hold.send_replace(dbxport::policy::Hold::Metered);
    // The pack in flight finishes; the two waiting go back to the queue unsent.
    let (jobs, finals) = bench.until_final(first_queued).await;
    assert_done_with(&bench, &finals[&jobs[0].id].0, &first.1);
    let waiting: Vec<JobId> = rest_queued.0.iter().map(|j| j.id).collect();
    // Queued again: Queued after Preparing (the first Queued is their arrival).
    let mut prepared = std::collections::HashSet::new();
    let mut requeued = std::collections::HashSet::new();
    tokio::time::timeout(DEADLINE, async {
        while requeued.len() < waiting.len() {
            let event = events.recv().await.expect("the queue's events");
            let id = event.job.id;
            match event.job.state {
                JobState::Preparing if waiting.contains(&id) => {
                    prepared.insert(id);
                }
                JobState::Queued if prepared.contains(&id) => {
                    requeued.insert(id);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("both watched files queued again");
    assert_eq!(
        requests_to(APPEND_BATCH, false),
        1,
        "only the first pack went"
    );
    // The hold ends: they go up.
    bench.hold.send_replace(dbxport::policy::Hold::None);
    let (jobs, finals) = bench.until_final(rest_queued).await;
    for (job, (_, bytes)) in jobs.iter().zip(&rest) {
        assert_done_with(&bench, &finals[&job.id].0, bytes);
    }
    bench.stop().await;
}

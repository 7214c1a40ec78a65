//! Invariants 1–3 under `kill -9` at any instant: a batch killed up to ten times at random
//! moments ends with every job Done and one verified copy of each file, and interrupted uploads
//! resume instead of starting over (counted in bytes the emulator received). Also a 1 GiB file
//! cut off at 60 % sends only the rest after the restart, and a pack of small files that landed
//! just before a kill is not sent again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dbxport::config::MIB;
use dbxport_testkit::emulator::Fault;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zbus::zvariant::Value;

use crate::helper::*;

/// Kills the daemon (`kill -9`), starts it again and reconnects.
async fn kill_and_restart(w: &mut World) {
    w.sandbox.kill_daemon();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;
}

/// Upload-route requests the emulator has seen so far, a pack (`append_batch`) counting one
/// for each file's piece in it.
fn upload_requests(w: &World) -> usize {
    w.sandbox
        .emulator
        .requests()
        .iter()
        .filter(|r| is_upload_route(&r.route))
        .map(|r| r.pieces.len().max(1))
        .sum()
}

#[system_test]
async fn ten_kills_at_random_moments_lose_nothing_duplicate_nothing_and_resume() {
    const SEED: u64 = 0x5eed_0005;
    const KILLS: usize = 10;
    let config = small_config();
    let (chunk, threshold, transfers) = (
        config.upload.chunk_size,
        config.upload.session_threshold,
        config.upload.transfers as u64,
    );
    let mut w = world(config).await;
    let mut rng = StdRng::seed_from_u64(SEED);
    // 295 small files (one request each, or one batched commit) and 5 of 2.5–3.5 chunks,
    // spread through the batch, that need an upload session.
    let dir = w.photo_dir();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut large: Vec<PathBuf> = Vec::new();
    for i in 0..300u64 {
        let path = dir.join(format!("c{i:03}.jpg"));
        let size = if i % 60 == 30 {
            large.push(path.clone());
            chunk * 5 / 2 + rng.random_range(0..chunk)
        } else {
            rng.random_range(2_000..60_000)
        };
        write_random_file(&path, size, SEED + i);
        files.push(path);
    }
    assert!(
        large
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() > threshold)
    );
    // Slow half the appends, so kills land while sessions are half-sent (and while an append
    // that landed has not been answered yet), and most other requests a little, so that ten
    // kills fit in the batch's lifetime.
    let faults = w.sandbox.emulator.faults();
    faults.seed(SEED);
    faults.inject_rate(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 400 },
        500,
    );
    // Small files go up a few hundred to a request (`append_batch`): each pack is stored and
    // then answered late, so the kills also land between a pack landing and its answer, and
    // the batch lasts long enough for ten.
    faults.inject_rate(
        "/2/files/upload_session/append_batch",
        Fault::Delay { millis: 1500 },
        1000,
    );
    faults.inject_rate("/2/files/upload*", Fault::Delay { millis: 150 }, 700);

    let uploader = w.uploader().await;
    let (batch, ids) = uploader
        .upload(paths(&files), "/Crash".into(), dict(&[]))
        .await
        .expect("Upload");
    assert_eq!(ids.len(), files.len());
    drop(uploader);

    let started = Instant::now();
    let mut kills = Vec::new();
    for k in 0..KILLS {
        // Some progress since the last restart (3–15 upload requests), then a random moment.
        // Kills 3 and 7 also wait for an append, so at least those catch a large file with a
        // session open. Small files go up hundreds to a request, so on a loaded machine the
        // batch may be all in Dropbox before the tenth kill: the kills end there.
        let since = upload_requests(&w);
        let appends_since = w.requests_to("/2/files/upload_session/append_v2");
        let wanted = rng.random_range(3..=15);
        let all_stored = wait_for("upload progress since the restart", || async {
            let all_stored = w.sandbox.emulator.files().len() == files.len();
            let progressed = upload_requests(&w) >= since + wanted
                && (!(k == 3 || k == 7)
                    || w.requests_to("/2/files/upload_session/append_v2") > appends_since);
            (progressed || all_stored).then_some(all_stored)
        })
        .await;
        if all_stored {
            break;
        }
        // Not a synchronisation: the random instant of the kill itself.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=300))).await;
        kills.push(Instant::now());
        eprintln!(
            "kill {k} at {:?}, {} upload requests so far",
            started.elapsed(),
            upload_requests(&w)
        );
        kill_and_restart(&mut w).await;
        // Every accepted job is still there after each kill.
        let uploader = w.uploader().await;
        let all = jobs(&uploader, &[("batch", Value::from(batch))]).await;
        assert_eq!(all.len(), files.len(), "jobs lost by kill {k}");
    }
    w.sandbox.emulator.faults().clear();
    let uploader = w.uploader().await;
    let done = batch_final(&uploader, batch).await;
    eprintln!(
        "{} kills and the batch done in {:?}",
        kills.len(),
        started.elapsed()
    );
    assert!(kills.len() >= 3, "only {} kills landed", kills.len());
    assert!(
        done.iter().all(|j| j.state == "done"),
        "{:#?}",
        done.iter()
            .filter(|j| j.state != "done")
            .collect::<Vec<_>>()
    );
    assert_jobs_verified(&w, &done);
    assert_one_copy_each(&w, &files, "/crash");

    // Bytes: nothing was sent twice beyond what a kill can waste, i.e. per kill at most one
    // request body per transfer (cut off, or landed but unanswered and sent again).
    let requests = w.sandbox.emulator.requests();
    let sizes: HashMap<String, u64> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().to_lowercase();
            (
                format!("/crash/{name}"),
                std::fs::metadata(f).unwrap().len(),
            )
        })
        .collect();
    let total: u64 = sizes.values().sum();
    let received = upload_bytes(&requests);
    let per_kill = transfers * chunk.max(threshold);
    assert!(
        received <= total + kills.len() as u64 * per_kill,
        "{received} bytes received for {total} bytes of files"
    );
    // Per session: which file it became (whichever route committed it) and what it received.
    let commits: HashMap<String, String> = w
        .sandbox
        .emulator
        .session_commits()
        .into_iter()
        .map(|c| (c.session, c.path_lower))
        .collect();
    let mut by_session: HashMap<&str, (u64, usize)> = HashMap::new();
    for r in requests.iter().filter(|r| is_upload_route(&r.route)) {
        if let Some(session) = &r.session {
            let entry = by_session.entry(session).or_default();
            entry.0 += r.body_bytes;
            entry.1 += 1;
        }
    }
    // A session left behind holds at most its first request (a kill before the daemon
    // recorded its id). One that got appends and was dropped is an upload started over.
    for (session, (bytes, count)) in &by_session {
        if !commits.contains_key(*session) {
            assert!(
                *count == 1 && *bytes <= chunk,
                "session {session} got {count} requests ({bytes} bytes), then was abandoned: \
                 an upload started over instead of resuming"
            );
        }
    }
    let mut interrupted = 0;
    for file in &large {
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        let path = format!("/crash/{name}");
        let size = sizes[&path];
        let sessions: HashSet<&str> = commits
            .iter()
            .filter(|(_, p)| **p == path)
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(sessions.len(), 1, "{path} committed from {sessions:?}");
        let session = *sessions.iter().next().unwrap();
        let (bytes, _) = by_session[session];
        // Did a kill land while this session was open?
        let times: Vec<Instant> = requests
            .iter()
            .filter(|r| r.session.as_deref() == Some(session))
            .map(|r| r.received)
            .collect();
        let (first, last) = (times[0], *times.last().unwrap());
        let kills_during = kills.iter().filter(|k| first < **k && **k < last).count() as u64;
        if kills_during > 0 {
            interrupted += 1;
        }
        // A concurrent session's chunks go up side by side, each recorded as it lands
        // (ARCHITECTURE.md, invariants): a kill loses at most the chunks in flight, one per
        // transfer, and nothing recorded is sent again.
        let in_flight = transfers.min(size.div_ceil(chunk));
        assert!(
            bytes <= size + kills_during * in_flight * chunk,
            "{path}: {bytes} bytes received for {size} ({kills_during} kills while its \
             session was open, {in_flight} chunks in flight at most)"
        );
    }
    assert!(
        interrupted >= 1,
        "no kill landed while a large file's session was open; the test proved nothing"
    );
    eprintln!(
        "{received} bytes received for {total} bytes; {interrupted} large files resumed across a kill"
    );
}

#[system_test]
async fn a_gib_cut_off_at_sixty_percent_sends_only_the_rest() {
    const GIB: u64 = 1024 * MIB;
    let mut config = small_config();
    config.upload.chunk_size = 16 * MIB;
    // At most four chunks in flight (the adaptive limit's ceiling): those whose answers the
    // kill cuts off are sent again, and the bounds below allow for four, not for sixteen.
    config.upload.transfers = 4;
    let chunk = config.upload.chunk_size;
    let transfers = config.upload.transfers as u64;
    let mut w = world(config).await;
    let big = w.photo_dir().join("big.raw");
    let made = Instant::now();
    write_random_file(&big, GIB, 1);
    let local = hash(&big);
    eprintln!("1 GiB written and hashed in {:?}", made.elapsed());

    let started = Instant::now();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(std::slice::from_ref(&big)), "/Huge".into(), dict(&[]))
        .await
        .unwrap();
    drop(uploader);
    wait_for_within(
        Duration::from_secs(300),
        "60 % of the file to arrive",
        || async { (upload_bytes(&w.sandbox.emulator.requests()) >= GIB * 6 / 10).then_some(()) },
    )
    .await;
    kill_and_restart(&mut w).await;
    let before = w.sandbox.emulator.requests();
    // What the session held at the kill: the bodies of the requests answered 200.
    let stored: u64 = before
        .iter()
        .filter(|r| is_upload_route(&r.route) && r.status == 200)
        .map(|r| r.body_bytes)
        .sum();
    eprintln!(
        "killed after {:?} with {stored} bytes stored",
        started.elapsed()
    );
    let uploader = w.uploader().await;
    let done = wait_for_within(Duration::from_secs(300), "the 1 GiB job to end", || async {
        let all = jobs(&uploader, &[("batch", Value::from(batch))]).await;
        all.iter()
            .all(|j| j.state == "done" || j.state == "failed")
            .then_some(all)
    })
    .await;
    eprintln!("1 GiB done {:?} after the start", started.elapsed());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].state, "done", "{}", done[0].message);
    assert_eq!(done[0].content_hash.as_deref(), Some(local.as_str()));
    let stored_file = w.sandbox.emulator.files();
    assert_eq!(stored_file.len(), 1);
    assert_eq!(stored_file[0].content_hash, local);
    assert_eq!(stored_file[0].size, GIB);

    let after = upload_bytes(&w.sandbox.emulator.requests()[before.len()..]);
    eprintln!("{after} bytes sent after the restart");
    assert!(
        stored >= GIB / 2,
        "only {stored} bytes were stored at the kill"
    );
    // The remainder, plus at most the chunks whose answers the kill cut off (they landed but
    // were not yet recorded; a concurrent session cannot be asked which chunks it holds).
    assert!(
        after <= GIB - stored + transfers * chunk,
        "{after} bytes sent after the restart; {} were missing",
        GIB - stored
    );
    assert!(after < GIB / 2, "{after} bytes sent again");
}

#[system_test]
async fn a_chunk_whose_answer_was_lost_is_not_sent_again() {
    // A file sent as a sequential session of several chunks (below the threshold for
    // parallel chunks); the second append lands but its answer never comes back, as when the
    // daemon is killed at that instant or the connection drops.
    let mut config = small_config();
    config.upload.session_threshold = 32 * MIB;
    config.upload.chunk_size = 4 * MIB;
    config.upload.transfers = 1;
    let w = world(config).await;
    let path = w.photo_dir().join("clip.mov");
    let size = 22 * MIB + 12_345;
    write_random_file(&path, size, 7);
    let faults = w.sandbox.emulator.faults();
    // The first append as usual, the second stored and its answer lost.
    faults.inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 0 },
        1,
    );
    faults.inject("/2/files/upload_session/append_v2", Fault::LoseAnswer, 1);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(std::slice::from_ref(&path)), "/Seq".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done[0].state, "done", "{}", done[0].message);
    assert_eq!(w.sandbox.emulator.files()[0].content_hash, hash(&path));
    let requests = w.sandbox.emulator.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.fault.as_deref() == Some("lose_answer"))
    );
    // Every byte travelled once: before going on, the daemon asked Dropbox where the session
    // stands. (finish_batch_v2 is an RPC: its body is JSON, not file data.)
    let sent: u64 = requests
        .iter()
        .filter(|r| is_upload_route(&r.route) && !r.route.ends_with("finish_batch_v2"))
        .map(|r| r.body_bytes)
        .sum();
    assert_eq!(sent, size, "{} bytes sent again", sent.saturating_sub(size));
}

#[system_test]
async fn sigterm_mid_upload_stops_at_once_and_the_upload_resumes() {
    let mut config = small_config();
    config.upload.chunk_size = 8 * MIB;
    let mut w = world(config).await;
    let path = w.photo_dir().join("video.mp4");
    let size = 160 * MIB;
    write_random_file(&path, size, 11);
    // Six chunks go through, then appends turn slow: the stop comes with chunks landed and
    // requests in flight.
    let faults = w.sandbox.emulator.faults();
    faults.inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 0 },
        6,
    );
    faults.inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 3000 },
        8,
    );
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(std::slice::from_ref(&path)),
            "/Term".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    drop(uploader);
    wait_for("six chunks confirmed", || async {
        let confirmed = w
            .sandbox
            .emulator
            .requests()
            .iter()
            .filter(|r| r.route == "/2/files/upload_session/append_v2" && r.status == 200)
            .count();
        (confirmed >= 6).then_some(())
    })
    .await;
    let stopping = Instant::now();
    let status = w.sandbox.stop_daemon().expect("it was running");
    let took = stopping.elapsed();
    // The unit gives it TimeoutStopSec=20 before SIGKILL; it needs far less.
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?}");
    assert!(status.success(), "exit status {status:?}");
    let before = w.sandbox.emulator.requests().len();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done[0].state, "done", "{}", done[0].message);
    assert_eq!(w.sandbox.emulator.files()[0].content_hash, hash(&path));
    // It resumed: the session started before the stop was finished, not begun again.
    let after = &w.sandbox.emulator.requests()[before..];
    assert!(
        !after
            .iter()
            .any(|r| r.route == "/2/files/upload_session/start"),
        "the upload started over"
    );
    let resent = upload_bytes(after);
    assert!(
        resent <= size - 6 * 8 * MIB + 8 * MIB,
        "{resent} bytes sent after the restart"
    );
}

#[system_test]
async fn a_kill_after_a_pack_landed_sends_none_of_it_again() {
    // Small files go up many to an `append_batch` (issue 16). The first pack is stored but its
    // answer held back, and the daemon killed then: it knew each file's session (recorded
    // before the pack went) but not that the pieces landed.
    const APPEND_BATCH: &str = "/2/files/upload_session/append_batch";
    let mut w = world(small_config()).await;
    let dir = w.photo_dir();
    let files: Vec<PathBuf> = (0..40u64)
        .map(|i| {
            let path = dir.join(format!("k{i:02}.jpg"));
            write_random_file(&path, 10_000 + i * 1_000, 0x16_0003 + i);
            path
        })
        .collect();
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    w.sandbox
        .emulator
        .faults()
        .inject(APPEND_BATCH, Fault::Delay { millis: 120_000 }, 1);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Packed".into(), dict(&[]))
        .await
        .expect("Upload");
    drop(uploader);
    // The pack held back is the first to reach the emulator, which need not be the first
    // the daemon built: a pack of one photo may overtake it. If the wait fails, every pack
    // seen is named, to tell a pack that never came from one that failed or did not land.
    let deadline = Instant::now() + DEADLINE;
    let landed: Vec<String> = loop {
        let requests = w.sandbox.emulator.requests();
        let packs: Vec<_> = requests
            .iter()
            .filter(|r| r.route == APPEND_BATCH)
            .collect();
        if let Some(pack) = packs.iter().find(|r| r.fault.as_deref() == Some("delay"))
            && pack.status == 0
            && !pack.pieces.is_empty()
            && pack.pieces.iter().all(|p| p.applied)
        {
            break pack.pieces.iter().map(|p| p.session.clone()).collect();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a pack stored, its answer not out yet; packs seen \
             (fault, status, pieces, applied): {:?}; requests: {}",
            packs
                .iter()
                .map(|r| (
                    r.fault.clone(),
                    r.status,
                    r.pieces.len(),
                    r.pieces.iter().filter(|p| p.applied).count()
                ))
                .collect::<Vec<_>>(),
            requests.len()
        );
        // Polling the emulator's record, as `wait_for` does.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    kill_and_restart(&mut w).await;
    w.sandbox.emulator.faults().clear();
    let uploader = w.uploader().await;
    let done = batch_final(&uploader, batch).await;
    assert!(
        done.iter().all(|j| j.state == "done"),
        "{:#?}",
        done.iter()
            .filter(|j| j.state != "done")
            .collect::<Vec<_>>()
    );
    assert_one_copy_each(&w, &files, "/packed");
    let requests = w.sandbox.emulator.requests();
    // Each landed session got its bytes once: no later piece for it, and the restarted daemon
    // asked where it stood with an empty append.
    for session in &landed {
        let pieces = requests
            .iter()
            .flat_map(|r| &r.pieces)
            .filter(|p| &p.session == session)
            .count();
        assert_eq!(pieces, 1, "session {session} was sent {pieces} pieces");
        let appended: u64 = requests
            .iter()
            .filter(|r| r.session.as_ref() == Some(session))
            .map(|r| r.body_bytes)
            .sum();
        assert_eq!(appended, 0, "bytes sent again to session {session}");
    }
    // And every byte of every file was stored once (start_batch and finish_batch_v2 are RPCs:
    // their bodies are JSON, not file data). Packs go several at once, so another pack may be
    // on its way when the daemon is killed: what of it was not stored (a body cut off, or an
    // entry the emulator reached only after the restarted daemon had sent that piece anew) is
    // rightly sent again, and only such bytes may travel twice.
    let data: Vec<_> = requests
        .iter()
        .filter(|r| {
            is_upload_route(&r.route)
                && !r.route.ends_with("finish_batch_v2")
                && !r.route.ends_with("start_batch")
        })
        .collect();
    let stored: u64 = data
        .iter()
        .map(|r| match r.route == APPEND_BATCH {
            true => r
                .pieces
                .iter()
                .filter(|p| p.applied)
                .map(|p| p.length)
                .sum(),
            false => r.body_bytes,
        })
        .sum();
    assert_eq!(
        stored,
        total,
        "{} bytes stored again",
        stored.saturating_sub(total)
    );
    let cut_off: u64 = data
        .iter()
        .filter(|r| r.route == APPEND_BATCH && r.status == 0)
        .map(|r| {
            let stored: u64 = r
                .pieces
                .iter()
                .filter(|p| p.applied)
                .map(|p| p.length)
                .sum();
            r.body_bytes - stored
        })
        .sum();
    let sent: u64 = data.iter().map(|r| r.body_bytes).sum();
    assert_eq!(
        sent,
        total + cut_off,
        "{} bytes sent again beyond {cut_off} received but not stored by packs whose answer never came; the data requests \
         (route, fault, status, bytes, pieces as session@offset+length applied):\n{}",
        sent.saturating_sub(total + cut_off),
        data.iter()
            .map(|r| format!(
                "{} {:?} {} {} {:?} [{}]",
                r.route,
                r.fault,
                r.status,
                r.body_bytes,
                r.session,
                r.pieces
                    .iter()
                    .map(|p| format!("{}@{}+{} {}", p.session, p.offset, p.length, p.applied))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} of {} files landed before the kill and were committed without sending again",
        landed.len(),
        files.len()
    );
}

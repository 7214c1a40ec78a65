//! Transient is not failure (ARCHITECTURE.md, invariant 6) when faults come at random rather than one by one:
//! with a fifth of the upload requests answered 5xx, 429 or cut off mid-body and commits
//! meeting write-lock contention, every job still ends Done with one verified copy, and no
//! request goes out before the Retry-After of a 429 that came back before it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dbxport::config::MIB;
use dbxport_testkit::emulator::Fault;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helper::*;

const RETRY_AFTER: u32 = 1;

#[system_test]
async fn random_5xx_429_resets_and_write_contention_are_all_waited_out() {
    const SEED: u64 = 0xfa17;
    // One transfer at a time. The batch committer is a second lane, so a request of the other
    // lane may already be on the wire when a 429 comes back.
    let mut config = small_config();
    config.upload.transfers = 1;
    let w = world(config).await;
    let mut rng = StdRng::seed_from_u64(SEED);
    let dir = w.photo_dir();
    // 76 small files and 4 that take an upload session of two or three requests.
    let files: Vec<PathBuf> = (0..80u64)
        .map(|i| {
            let path = dir.join(format!("f{i:02}.jpg"));
            let size = if i % 20 == 10 {
                5 * MIB + rng.random_range(0..4 * MIB)
            } else {
                rng.random_range(2_000..80_000)
            };
            write_random_file(&path, size, SEED + i);
            path
        })
        .collect();

    let faults = w.sandbox.emulator.faults();
    faults.seed(SEED);
    // One draw per request; on a commit route these add up to 25 %.
    faults.inject_rate("/2/files/upload*", Fault::ServerError { status: 503 }, 100);
    faults.inject_rate(
        "/2/files/upload*",
        Fault::TooManyRequests {
            retry_after: RETRY_AFTER,
        },
        50,
    );
    faults.inject_rate("/2/files/upload*", Fault::ResetMidBody, 50);
    for commit in [
        "/2/files/upload",
        "/2/files/upload_session/finish",
        "/2/files/upload_session/finish_batch_v2",
    ] {
        faults.inject_rate(
            commit,
            Fault::TooManyWriteOperations {
                retry_after: RETRY_AFTER,
            },
            50,
        );
    }
    // Small files go up many to a request (`append_batch`): few requests to draw on, so each
    // kind is also met twice there for certain.
    for fault in [
        Fault::ServerError { status: 503 },
        Fault::TooManyRequests {
            retry_after: RETRY_AFTER,
        },
        Fault::ResetMidBody,
    ] {
        faults.inject("/2/files/upload_session/append_batch", fault, 2);
    }
    // Batched commits also meet contention entry by entry.
    faults.inject_rate(
        "/2/files/upload_session/finish_batch_v2",
        Fault::EntryWriteContention { per_mille: 50 },
        1000,
    );

    let started = Instant::now();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Flaky".into(), dict(&[]))
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    eprintln!("80 files through random faults in {:?}", started.elapsed());
    assert!(
        done.iter().all(|j| j.state == "done"),
        "{:#?}",
        done.iter()
            .filter(|j| j.state != "done")
            .collect::<Vec<_>>()
    );
    assert_jobs_verified(&w, &done);
    assert_one_copy_each(&w, &files, "/flaky");

    let requests = w.sandbox.emulator.requests();
    let count = |fault: &str| {
        requests
            .iter()
            .filter(|r| r.fault.as_deref() == Some(fault))
            .count()
    };
    let (errors, limited, resets, contention) = (
        count("server_error"),
        count("too_many_requests"),
        count("reset_mid_body"),
        count("too_many_write_operations"),
    );
    eprintln!(
        "{} upload requests: {errors} 5xx, {limited} 429, {resets} resets, {contention} write contention",
        requests
            .iter()
            .filter(|r| is_upload_route(&r.route))
            .count()
    );
    // Each kind was met more than once, or the test proved little. Batched commits are few,
    // so their contention is mostly entry by entry.
    let refused_entries = w.sandbox.emulator.faults().entries_refused() as usize;
    assert!(
        errors >= 3 && limited >= 2 && resets >= 2 && contention + refused_entries >= 2,
        "{errors} 5xx, {limited} 429, {resets} resets, {contention} contention, \
         {refused_entries} batch entries refused"
    );
    // After a 429 (rate limit or write contention), nothing reached Dropbox before its
    // Retry-After had passed.
    assert_retry_after_kept(&requests, |_| Duration::from_secs(RETRY_AFTER.into()));
}

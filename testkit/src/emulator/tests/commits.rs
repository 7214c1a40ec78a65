//! Commits of upload sessions cost metadata, not bytes: the content hash comes from the block
//! digests kept per part, the bytes are renamed (or were copied in the kernel as they came).
//! These tests check that what is committed is still exactly the bytes sent, with their hash,
//! on the fast paths and on the fallbacks.

use serde_json::{Value, json};

use super::super::body::BlockHasher;
use super::super::{Emulator, EmulatorConfig};
use super::*;
use crate::emulator::content_hash::from_block_digests;

const MIB: usize = 1024 * 1024;
const BLOCK: usize = 4 * MIB;

async fn append(h: &Harness, session: &str, offset: usize, data: &[u8], close: bool) {
    let answer = h
        .content(
            "/2/files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": offset}, "close": close}),
            data.to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, b"null");
}

async fn finish(h: &Harness, session: &str, offset: usize, path: &str, data: &[u8]) -> Value {
    h.content(
        "/2/files/upload_session/finish",
        json!({"cursor": {"session_id": session, "offset": offset}, "commit": {"path": path}}),
        data.to_vec(),
    )
    .await
    .ok()
}

async fn concurrent_session(h: &Harness) -> String {
    h.content(
        "/2/files/upload_session/start",
        json!({"session_type": {".tag": "concurrent"}}),
        Vec::new(),
    )
    .await
    .ok()["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned()
}

/// Asserts the answer's metadata, the stored file and the blob's bytes against `data`.
fn assert_committed(h: &Harness, metadata: &Value, path_display: &str, data: &[u8]) {
    assert_file_metadata(metadata, path_display, data, false);
    let stored = h.stored(&path_display.to_lowercase()).expect("stored file");
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.content_hash, content_hash(data));
    let blob = std::fs::read(h.dir.path().join("root/blobs").join(&stored.rev)).expect("blob");
    assert!(
        blob == data,
        "the blob of {path_display} differs from the bytes sent"
    );
}

/// What is left under the root's `sessions/`: finished sessions leave nothing.
fn session_dirs(h: &Harness) -> usize {
    std::fs::read_dir(h.dir.path().join("root/sessions"))
        .expect("sessions dir")
        .count()
}

#[test]
fn block_hasher_gives_the_content_hash_in_any_pieces() {
    for len in [0, 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 9 * MIB + 3] {
        let data = super::bytes(len, 3);
        for piece in [1_000_003, 4 * MIB, 7 * MIB] {
            let mut hasher = BlockHasher::default();
            for chunk in data.chunks(piece) {
                hasher.update(chunk);
            }
            let blocks = hasher.finish();
            assert_eq!(blocks.len(), len.div_ceil(4 * MIB));
            assert_eq!(from_block_digests(&blocks), content_hash(&data), "{len}");
        }
    }
}

#[tokio::test]
async fn sequential_block_aligned_parts_commit_with_the_right_bytes_and_hash() {
    let h = start().await;
    let data = super::bytes(2 * BLOCK + BLOCK + 12_345, 11);
    let session = h.session(&data[..2 * BLOCK], false).await;
    append(&h, &session, 2 * BLOCK, &data[2 * BLOCK..3 * BLOCK], false).await;
    // The last part comes with finish.
    let m = finish(
        &h,
        &session,
        3 * BLOCK,
        "/Seq/aligned.bin",
        &data[3 * BLOCK..],
    )
    .await;
    assert_committed(&h, &m, "/Seq/aligned.bin", &data);
    assert_eq!(session_dirs(&h), 0);
    // One part only: renamed into place.
    let one = super::bytes(5 * MIB + 1, 12);
    let session = h.session(&one, true).await;
    let m = finish(&h, &session, one.len(), "/Seq/one.bin", &[]).await;
    assert_committed(&h, &m, "/Seq/one.bin", &one);
    // No part at all.
    let session = h.session(&[], true).await;
    let m = finish(&h, &session, 0, "/Seq/empty.bin", &[]).await;
    assert_committed(&h, &m, "/Seq/empty.bin", &[]);
}

#[tokio::test]
async fn sequential_unaligned_parts_fall_back_to_hashing_the_file() {
    let h = start().await;
    let data = super::bytes(MIB + 3 + 5 * MIB - 7 + 100 + 4 * MIB, 13);
    let cuts = [0, MIB + 3, 6 * MIB - 4, 6 * MIB + 96, data.len()];
    let session = h.session(&data[cuts[0]..cuts[1]], false).await;
    append(&h, &session, cuts[1], &data[cuts[1]..cuts[2]], false).await;
    append(&h, &session, cuts[2], &data[cuts[2]..cuts[3]], false).await;
    append(&h, &session, cuts[3], &data[cuts[3]..cuts[4]], true).await;
    let m = finish(&h, &session, data.len(), "/Seq/unaligned.bin", &[]).await;
    assert_committed(&h, &m, "/Seq/unaligned.bin", &data);
}

#[tokio::test]
async fn concurrent_parts_out_of_order_commit_with_the_right_bytes_and_hash() {
    let h = start().await;
    let data = super::bytes(3 * BLOCK + 2 * MIB + 777, 17);
    let session = concurrent_session(&h).await;
    // Middle first, then the start, then the end (which closes); two at once.
    let (middle, first) = tokio::join!(
        append(&h, &session, BLOCK, &data[BLOCK..3 * BLOCK], false),
        append(&h, &session, 0, &data[..BLOCK], false),
    );
    let ((), ()) = (middle, first);
    append(&h, &session, 3 * BLOCK, &data[3 * BLOCK..], true).await;
    let m = finish(&h, &session, data.len(), "/Conc/out-of-order.bin", &[]).await;
    assert_committed(&h, &m, "/Conc/out-of-order.bin", &data);
    assert_eq!(session_dirs(&h), 0);
}

#[tokio::test]
async fn concurrent_ranges_sent_again_differently_keep_each_parts_bytes() {
    let h = start().await;
    let data = super::bytes(2 * BLOCK + 999, 19);
    let junk = super::bytes(2 * BLOCK, 200);
    // A: the second block, right. B: two blocks at 0 whose second is junk; it overlaps A, whose
    // bytes must survive. C: the first block again, right, replacing B.
    let a = concurrent_session(&h).await;
    append(&h, &a, BLOCK, &data[BLOCK..2 * BLOCK], false).await;
    append(&h, &a, 0, &junk, false).await;
    append(&h, &a, 0, &data[..BLOCK], false).await;
    append(&h, &a, 2 * BLOCK, &data[2 * BLOCK..], true).await;
    let m = finish(&h, &a, data.len(), "/Conc/a.bin", &[]).await;
    assert_committed(&h, &m, "/Conc/a.bin", &data);
    // The other way round: B (junk in its second block) first, then A overlapping it, then C
    // replacing B. The committed second block is A's.
    let b = concurrent_session(&h).await;
    append(&h, &b, 0, &junk, false).await;
    append(&h, &b, BLOCK, &data[BLOCK..2 * BLOCK], false).await;
    append(&h, &b, 0, &data[..BLOCK], false).await;
    append(&h, &b, 2 * BLOCK, &data[2 * BLOCK..], true).await;
    let m = finish(&h, &b, data.len(), "/Conc/b.bin", &[]).await;
    assert_committed(&h, &m, "/Conc/b.bin", &data);
    // While parts overlap, the session is not finishable (as before).
    let c = concurrent_session(&h).await;
    append(&h, &c, BLOCK, &data[BLOCK..2 * BLOCK], false).await;
    append(&h, &c, 0, &junk, true).await;
    let error = h
        .content(
            "/2/files/upload_session/finish",
            json!({"cursor": {"session_id": c, "offset": 2 * BLOCK}, "commit": {"path": "/Conc/c.bin"}}),
            Vec::new(),
        )
        .await
        .route_error(409, "concurrent_session_missing_data/");
    assert_eq!(error, json!({".tag": "concurrent_session_missing_data"}));
}

#[tokio::test]
async fn finish_batch_v2_commits_every_entry_with_its_hash_and_writes_the_index_first() {
    let h = start().await;
    let mut sessions = Vec::new();
    let mut datas = Vec::new();
    for i in 0..24usize {
        let len = match i % 4 {
            0 => 3 * MIB + i * 1000,
            1 => BLOCK,
            2 => i * 17,
            _ => 2 * BLOCK + 5,
        };
        let data = super::bytes(len, i as u8);
        let session = if i % 4 == 3 {
            // Several parts, the last closing.
            let s = h.session(&data[..BLOCK], false).await;
            append(&h, &s, BLOCK, &data[BLOCK..], true).await;
            s
        } else {
            h.session(&data, true).await
        };
        sessions.push(session);
        datas.push(data);
    }
    let mut entries: Vec<Value> = sessions
        .iter()
        .zip(&datas)
        .enumerate()
        .map(|(i, (s, d))| {
            json!({"cursor": {"session_id": s, "offset": d.len()},
                   "commit": {"path": format!("/Batch/f{i:02}.bin")}})
        })
        .collect();
    // Two entries for one path: the second is renamed; a session named again is gone.
    let extra = super::bytes(1234, 99);
    let twin = h.session(&extra, true).await;
    entries.push(
        json!({"cursor": {"session_id": twin, "offset": extra.len()},
                        "commit": {"path": "/Batch/f00.bin", "autorename": true}}),
    );
    entries.push(
        json!({"cursor": {"session_id": sessions[1], "offset": datas[1].len()},
                        "commit": {"path": "/Batch/again.bin"}}),
    );
    let result = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({ "entries": entries }),
        )
        .await
        .ok();
    let answers = result["entries"].as_array().expect("entries");
    assert_eq!(answers.len(), 26);
    // The index on disk already names every committed file when the answer arrives.
    let index: Value = serde_json::from_slice(
        &std::fs::read(h.dir.path().join("root/index.json")).expect("index"),
    )
    .expect("index JSON");
    for (i, data) in datas.iter().enumerate() {
        let mut m = answers[i].clone();
        assert_eq!(m[".tag"], "success", "{m}");
        m.as_object_mut().expect("object").remove(".tag");
        let path = format!("/Batch/f{i:02}.bin");
        assert_committed(&h, &m, &path, data);
        let key = path.to_lowercase();
        assert_eq!(
            index["entries"][&key]["file"]["content_hash"],
            content_hash(data),
            "{key} in index.json"
        );
    }
    let mut m = answers[24].clone();
    m.as_object_mut().expect("object").remove(".tag");
    assert_committed(&h, &m, "/Batch/f00 (1).bin", &extra);
    assert_eq!(
        answers[25],
        json!({".tag": "failure", "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}})
    );
    let commits = h.emu.session_commits();
    assert_eq!(commits.len(), 25);
    for (commit, session) in commits.iter().zip(&sessions) {
        assert_eq!(&commit.session, session);
    }
    assert_eq!(commits[24].path_lower, "/batch/f00 (1).bin");
    assert_eq!(session_dirs(&h), 0);
}

#[tokio::test]
async fn a_restarted_emulator_finishes_sessions_started_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EmulatorConfig {
        root: dir.path().join("root"),
        port: 0,
        access_token: Some("token".into()),
        app_key: None,
    };
    let emu = Emulator::start(config.clone()).await.expect("start");
    let h = Harness {
        base: emu.base_url(),
        token: emu.access_token(),
        emu,
        dir,
        http: client(),
    };
    let seq = super::bytes(2 * BLOCK + 4321, 23);
    let conc = super::bytes(3 * BLOCK + 77, 29);
    let unaligned = super::bytes(3 * MIB + 2 * MIB, 31);
    let s = h.session(&seq[..BLOCK], false).await;
    append(&h, &s, BLOCK, &seq[BLOCK..2 * BLOCK], false).await;
    let c = concurrent_session(&h).await;
    append(&h, &c, 2 * BLOCK, &conc[2 * BLOCK..3 * BLOCK], false).await;
    append(&h, &c, 0, &conc[..2 * BLOCK], false).await;
    let u = h.session(&unaligned[..3 * MIB], false).await;
    append(&h, &u, 3 * MIB, &unaligned[3 * MIB..], true).await;
    let Harness { emu, dir, .. } = h;
    emu.shutdown().await;

    let emu = Emulator::start(config).await.expect("restart");
    let h = Harness {
        base: emu.base_url(),
        token: emu.access_token(),
        emu,
        dir,
        http: client(),
    };
    let m = finish(&h, &s, 2 * BLOCK, "/Restart/seq.bin", &seq[2 * BLOCK..]).await;
    assert_committed(&h, &m, "/Restart/seq.bin", &seq);
    append(&h, &c, 3 * BLOCK, &conc[3 * BLOCK..], true).await;
    let result = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": [
                {"cursor": {"session_id": c, "offset": conc.len()}, "commit": {"path": "/Restart/conc.bin"}},
                {"cursor": {"session_id": u, "offset": unaligned.len()}, "commit": {"path": "/Restart/u.bin"}},
            ]}),
        )
        .await
        .ok();
    for (answer, (path, data)) in result["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .zip([("/Restart/conc.bin", &conc), ("/Restart/u.bin", &unaligned)])
    {
        let mut m = answer.clone();
        assert_eq!(m[".tag"], "success", "{m}");
        m.as_object_mut().expect("object").remove(".tag");
        assert_committed(&h, &m, path, data);
    }
    assert_eq!(session_dirs(&h), 0);
    h.emu.shutdown().await;
}

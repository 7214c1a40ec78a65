//! The batch session routes: `start_batch`, and `append_batch`'s pieces, per-entry failures,
//! whole-request errors and faults.

use serde_json::json;

use super::*;
use crate::emulator::{Fault, RequestPiece};

const START_BATCH: &str = "/2/files/upload_session/start_batch";
const APPEND_BATCH: &str = "/2/files/upload_session/append_batch";

/// An `append_batch` entry.
fn entry(session: &str, offset: usize, length: usize, close: bool) -> Value {
    json!({"cursor": {"session_id": session, "offset": offset}, "length": length, "close": close})
}

async fn append_batch(h: &Harness, entries: Vec<Value>, body: Vec<u8>) -> Answer {
    h.content(APPEND_BATCH, json!({ "entries": entries }), body)
        .await
}

async fn start_batch(h: &Harness, n: usize) -> Vec<String> {
    let result = h.rpc(START_BATCH, json!({ "num_sessions": n })).await.ok();
    result["session_ids"]
        .as_array()
        .expect("session_ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect()
}

/// Commits each closed session to `/<name>` with finish_batch_v2 and returns the results.
async fn commit(h: &Harness, sessions: &[(&str, usize, &str)]) -> Vec<Value> {
    let entries: Vec<Value> = sessions
        .iter()
        .map(|(session, size, name)| {
            json!({"cursor": {"session_id": session, "offset": size},
                   "commit": {"path": format!("/{name}"), "mode": "add"}})
        })
        .collect();
    let result = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({ "entries": entries }),
        )
        .await
        .ok();
    result["entries"].as_array().expect("entries").clone()
}

fn results(answer: &Answer) -> Vec<Value> {
    answer.ok()["entries"].as_array().expect("entries").clone()
}

fn success() -> Value {
    json!({".tag": "success"})
}

fn failure(error: Value) -> Value {
    json!({".tag": "failure", "failure": error})
}

#[tokio::test]
async fn start_batch_makes_empty_sessions() {
    let h = start().await;
    let ids = start_batch(&h, 3).await;
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.starts_with("pid_upload_session:")));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{ids:?}");
    // Empty and open: the first piece goes at offset 0.
    let answer = append_batch(
        &h,
        vec![entry(&ids[0], 1, 1, false), entry(&ids[1], 0, 1, true)],
        b"ab".to_vec(),
    )
    .await;
    assert_eq!(
        results(&answer),
        [
            failure(json!({".tag": "incorrect_offset", "correct_offset": 0})),
            success()
        ]
    );
    let started = h.emu.requests()[0].clone();
    assert_eq!(started.route, START_BATCH);
    assert_eq!(started.started, ids);
    // The session type is honoured: a concurrent session takes only 4 MiB multiples.
    let result = h
        .rpc(
            START_BATCH,
            json!({"num_sessions": 1, "session_type": {".tag": "concurrent"}}),
        )
        .await
        .ok();
    let concurrent = result["session_ids"][0].as_str().unwrap().to_owned();
    let answer = append_batch(&h, vec![entry(&concurrent, 0, 3, false)], b"abc".to_vec()).await;
    assert_eq!(
        results(&answer),
        [failure(
            json!({".tag": "concurrent_session_invalid_data_size"})
        )]
    );
    // `num_sessions` is 1..=1000, as the spec's validator says.
    for n in [0, 1001] {
        let text = h
            .rpc(START_BATCH, json!({ "num_sessions": n }))
            .await
            .bad_request();
        assert!(
            text.starts_with(
                "Error in call to API function \"files/upload_session/start_batch\": request body: num_sessions:"
            ),
            "{text}"
        );
    }
    let text = h.rpc(START_BATCH, json!({})).await.bad_request();
    assert!(
        text.contains("missing required field 'num_sessions'"),
        "{text}"
    );
}

#[tokio::test]
async fn pieces_land_at_their_sessions_and_offsets() {
    let h = start().await;
    let ids = start_batch(&h, 2).await;
    let head = h.session(b"head:", false).await;
    let a = super::bytes(5 * 1024 * 1024 + 3, 1);
    let b1 = b"first half, ".to_vec();
    let b2 = b"second half".to_vec();
    let tail = b"tail".to_vec();
    let body = [a.clone(), b1.clone(), tail.clone(), b2.clone()].concat();
    let answer = h
        .content(
            APPEND_BATCH,
            json!({"entries": [
                entry(&ids[0], 0, a.len(), true),
                entry(&ids[1], 0, b1.len(), false),
                entry(&head, 5, tail.len(), true),
                // The same session again, after this request's own earlier piece.
                entry(&ids[1], b1.len(), b2.len(), true),
            ], "content_hash": content_hash(&body)}),
            body,
        )
        .await;
    assert_eq!(results(&answer), vec![success(); 4]);
    let b = [b1.clone(), b2.clone()].concat();
    let committed = commit(
        &h,
        &[
            (&ids[0], a.len(), "a.bin"),
            (&ids[1], b.len(), "b.txt"),
            (&head, 9, "head.txt"),
        ],
    )
    .await;
    assert!(
        committed.iter().all(|e| e[".tag"] == "success"),
        "{committed:?}"
    );
    assert_eq!(h.stored("/a.bin").unwrap().content_hash, content_hash(&a));
    assert_eq!(h.stored("/b.txt").unwrap().content_hash, content_hash(&b));
    assert_eq!(
        h.stored("/head.txt").unwrap().content_hash,
        content_hash(b"head:tail")
    );
    // The log names every piece, applied.
    let record = h
        .emu
        .requests()
        .into_iter()
        .find(|r| r.route == APPEND_BATCH)
        .unwrap();
    assert_eq!(record.session, None);
    let piece = |session: &str, offset: usize, length: usize, close: bool| RequestPiece {
        session: session.to_owned(),
        offset: offset as u64,
        length: length as u64,
        close,
        applied: true,
    };
    assert_eq!(
        record.pieces,
        [
            piece(&ids[0], 0, a.len(), true),
            piece(&ids[1], 0, b1.len(), false),
            piece(&head, 5, tail.len(), true),
            piece(&ids[1], b1.len(), b2.len(), true),
        ]
    );
    assert_eq!(record.body_bytes as usize, a.len() + b.len() + tail.len());
}

#[tokio::test]
async fn a_failing_entry_leaves_its_session_and_the_others_land() {
    let h = start().await;
    let behind = h.session(b"12345", false).await;
    let fine = h.session(b"", false).await;
    let closed = h.session(b"done", true).await;
    let answer = append_batch(
        &h,
        vec![
            entry(&behind, 3, 3, false),
            entry(&fine, 0, 4, true),
            entry("pid_upload_session:unknown", 0, 2, false),
            entry(&closed, 4, 1, false),
        ],
        b"XYZfineNOx".to_vec(),
    )
    .await;
    assert_eq!(
        results(&answer),
        [
            failure(json!({".tag": "incorrect_offset", "correct_offset": 5})),
            success(),
            failure(json!({".tag": "not_found"})),
            failure(json!({".tag": "closed"})),
        ]
    );
    let record = h.emu.requests().pop().unwrap();
    let applied: Vec<bool> = record.pieces.iter().map(|p| p.applied).collect();
    assert_eq!(applied, [false, true, false, false]);
    // The refused sessions are as they were: `behind` still takes its next bytes at 5, and
    // none of the refused bytes are in any file.
    let answer = append_batch(&h, vec![entry(&behind, 5, 3, true)], b"678".to_vec()).await;
    assert_eq!(results(&answer), [success()]);
    let committed = commit(
        &h,
        &[
            (&behind, 8, "behind.txt"),
            (&fine, 4, "fine.txt"),
            (&closed, 4, "closed.txt"),
        ],
    )
    .await;
    assert!(
        committed.iter().all(|e| e[".tag"] == "success"),
        "{committed:?}"
    );
    assert_eq!(
        h.stored("/behind.txt").unwrap().content_hash,
        content_hash(b"12345678")
    );
    assert_eq!(
        h.stored("/fine.txt").unwrap().content_hash,
        content_hash(b"fine")
    );
    assert_eq!(
        h.stored("/closed.txt").unwrap().content_hash,
        content_hash(b"done")
    );
}

#[tokio::test]
async fn whole_request_errors_apply_nothing() {
    let h = start().await;
    let ids = start_batch(&h, 2).await;
    let two = |a: usize, b: usize| vec![entry(&ids[0], 0, a, true), entry(&ids[1], 0, b, true)];
    // Lengths that do not add up to the body, shorter or longer: a 409, not a 400.
    for body in [&b"abcd"[..], b"abcdef"] {
        let error = append_batch(&h, two(2, 3), body.to_vec())
            .await
            .route_error(409, "length_mismatch/");
        assert_eq!(error, json!({".tag": "length_mismatch"}));
    }
    // The content hash is of the whole body.
    let answer = h
        .content(
            APPEND_BATCH,
            json!({"entries": two(2, 3), "content_hash": content_hash(b"ab")}),
            b"abcde".to_vec(),
        )
        .await;
    assert_eq!(
        answer.route_error(409, "content_hash_mismatch/"),
        json!({".tag": "content_hash_mismatch"})
    );
    // Over the body limit (lowered here from 150 MiB).
    h.emu.set_max_body(4);
    let error = append_batch(&h, two(2, 3), b"abcde".to_vec())
        .await
        .route_error(409, "payload_too_large/");
    assert_eq!(error, json!({".tag": "payload_too_large"}));
    h.emu.set_max_body(crate::emulator::MAX_BODY);
    // More than the spec's 1000 entries, or a malformed entry: 400s.
    let many: Vec<Value> = (0..1001).map(|_| entry(&ids[0], 0, 0, false)).collect();
    let text = append_batch(&h, many, Vec::new()).await.bad_request();
    assert!(
        text.contains("entries: list has 1001 items, more than the maximum of 1000"),
        "{text}"
    );
    let text = append_batch(
        &h,
        vec![json!({"cursor": {"session_id": ids[0], "offset": 0}})],
        Vec::new(),
    )
    .await
    .bad_request();
    assert!(
        text.contains("entries[0]: missing required field 'length'"),
        "{text}"
    );
    // Nothing of any of them landed: both sessions are still empty.
    let answer = append_batch(&h, two(2, 3), b"abcde".to_vec()).await;
    assert_eq!(results(&answer), vec![success(); 2]);
    let committed = commit(&h, &[(&ids[0], 2, "x.txt"), (&ids[1], 3, "y.txt")]).await;
    assert!(
        committed.iter().all(|e| e[".tag"] == "success"),
        "{committed:?}"
    );
    assert_eq!(
        h.stored("/y.txt").unwrap().content_hash,
        content_hash(b"cde")
    );
}

#[tokio::test]
async fn injected_incorrect_offset_refuses_entries_with_the_real_offset() {
    let h = start().await;
    let ids = start_batch(&h, 3).await;
    let first: Vec<Value> = ids.iter().map(|id| entry(id, 0, 2, false)).collect();
    assert_eq!(
        results(&append_batch(&h, first, b"aabbcc".to_vec()).await),
        vec![success(); 3]
    );
    h.emu.faults().inject(
        APPEND_BATCH,
        Fault::EntryIncorrectOffset { per_mille: 1000 },
        1,
    );
    let next: Vec<Value> = ids.iter().map(|id| entry(id, 2, 1, true)).collect();
    let refused = append_batch(&h, next.clone(), b"xyz".to_vec()).await;
    // Each entry is refused with where its session really stands: the cursor was right.
    assert_eq!(
        results(&refused),
        vec![failure(json!({".tag": "incorrect_offset", "correct_offset": 2})); 3]
    );
    assert_eq!(h.emu.faults().entries_misplaced(), 3);
    let record = h.emu.requests().pop().unwrap();
    assert_eq!(record.fault.as_deref(), Some("entry_incorrect_offset"));
    assert!(record.pieces.iter().all(|p| !p.applied));
    // Nothing was applied: the same request now lands.
    assert_eq!(
        results(&append_batch(&h, next, b"xyz".to_vec()).await),
        vec![success(); 3]
    );
    // At a rate, some entries of one request are refused and the others land.
    let more = start_batch(&h, 40).await;
    h.emu.faults().inject(
        APPEND_BATCH,
        Fault::EntryIncorrectOffset { per_mille: 500 },
        1,
    );
    let entries: Vec<Value> = more.iter().map(|id| entry(id, 0, 1, true)).collect();
    let answered = results(&append_batch(&h, entries, vec![b'q'; 40]).await);
    let refused = answered.iter().filter(|e| **e != success()).count();
    assert!((5..=35).contains(&refused), "{refused} refused");
    assert!(
        answered
            .iter()
            .filter(|e| **e != success())
            .all(|e| *e == failure(json!({".tag": "incorrect_offset", "correct_offset": 0}))),
        "{answered:?}"
    );
    assert_eq!(h.emu.faults().entries_misplaced(), 3 + refused as u64);
}

#[tokio::test]
async fn a_lost_answer_leaves_every_piece_landed() {
    let h = start().await;
    let ids = start_batch(&h, 2).await;
    h.emu.faults().inject(APPEND_BATCH, Fault::LoseAnswer, 1);
    let arg = json!({"entries": [entry(&ids[0], 0, 3, true), entry(&ids[1], 0, 2, false)]});
    let sent = h
        .content_request(APPEND_BATCH, &header_safe(&arg), b"abcde".to_vec())
        .send()
        .await;
    assert!(sent.is_err(), "the answer was lost: {sent:?}");
    let record = h.emu.requests().pop().unwrap();
    assert_eq!(record.fault.as_deref(), Some("lose_answer"));
    assert!(record.pieces.iter().all(|p| p.applied), "{record:?}");
    // Sending the batch again tells the client each piece already landed.
    let again = h.content(APPEND_BATCH, arg, b"abcde".to_vec()).await;
    assert_eq!(
        results(&again),
        [
            failure(json!({".tag": "incorrect_offset", "correct_offset": 3})),
            failure(json!({".tag": "incorrect_offset", "correct_offset": 2})),
        ]
    );
    // And the other faults apply to the batch routes as to any: a 5xx processes nothing.
    h.emu
        .faults()
        .inject(START_BATCH, Fault::ServerError { status: 503 }, 1);
    let answer = h.rpc(START_BATCH, json!({"num_sessions": 5})).await;
    assert_eq!(answer.status, 503);
    assert!(h.emu.requests().pop().unwrap().started.is_empty());
}

#[tokio::test]
async fn a_client_that_leaves_mid_batch_loses_the_answer_not_the_rest_of_the_batch() {
    // A server carries out a request whose body has arrived even if the client goes away
    // meanwhile (a daemon killed with a pack in flight): the entries after that moment land
    // too, so the restarted client finds each piece where it sent it, not some of them.
    use std::sync::Arc;
    let h = start().await;
    let ids = start_batch(&h, 2).await;
    // The second entry waits for its session, held here until the client has gone.
    let held = h.emu.shared.sessions.lock(&ids[1]).await.expect("session");
    let arg = json!({"entries": [entry(&ids[0], 0, 3, true), entry(&ids[1], 0, 2, true)]});
    // A client of its own, so that its connection is the only one to end.
    let request = client()
        .post(h.url(APPEND_BATCH))
        .bearer_auth(&h.token)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header("Dropbox-API-Arg", header_safe(&arg))
        .body(b"abcde".to_vec());
    // Holders of the emulator's state: the connection, the request and its task add to these.
    let idle = Arc::strong_count(&h.emu.shared);
    let leaving = tokio::spawn(request.send());
    eventually("the first entry applied", || {
        h.emu
            .requests()
            .last()
            .is_some_and(|r| r.route == APPEND_BATCH && r.pieces[0].applied)
    })
    .await;
    leaving.abort();
    // The server has let go of the connection and of the request's answer: what is left is
    // the work itself (none, had the client's leaving cut it).
    eventually("the connection closed", || {
        Arc::strong_count(&h.emu.shared) <= idle + 1
    })
    .await;
    drop(held);
    eventually("nothing of the request running", || {
        Arc::strong_count(&h.emu.shared) == idle
    })
    .await;
    let record = h.emu.requests().pop().unwrap();
    assert_eq!(
        record.status, 0,
        "the client left before the answer: {record:?}"
    );
    assert!(record.pieces.iter().all(|p| p.applied), "{record:?}");
}

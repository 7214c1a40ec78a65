//! Upload sessions: sequential and concurrent, offsets, closing, finish and finish_batch_v2.

use serde_json::json;

use super::*;

const MIB: usize = 1024 * 1024;

async fn append(h: &Harness, session: &str, offset: usize, data: &[u8], close: bool) -> Answer {
    h.content(
        "/2/files/upload_session/append_v2",
        json!({"cursor": {"session_id": session, "offset": offset}, "close": close}),
        data.to_vec(),
    )
    .await
}

async fn finish(h: &Harness, session: &str, offset: usize, path: &str, data: &[u8]) -> Answer {
    h.content(
        "/2/files/upload_session/finish",
        json!({"cursor": {"session_id": session, "offset": offset},
               "commit": {"path": path, "mode": "add", "autorename": false, "mute": false}}),
        data.to_vec(),
    )
    .await
}

fn assert_null(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.body, b"null");
}

#[tokio::test]
async fn ten_mib_in_appends_then_finish_batch_v2() {
    let h = start().await;
    let data = super::bytes(10 * MIB + 12_345, 5);
    let (a, rest) = data.split_at(4 * MIB);
    let (b, c) = rest.split_at(4 * MIB);
    let session = h.session(&[], false).await;
    assert!(session.starts_with("pid_upload_session:"));
    assert_null(&append(&h, &session, 0, a, false).await);
    assert_null(&append(&h, &session, a.len(), b, false).await);
    assert_null(&append(&h, &session, a.len() + b.len(), c, true).await);
    let open = h.session(b"not closed", false).await;
    let commit =
        |path: &str| json!({"path": path, "mode": "overwrite", "autorename": false, "mute": false});
    let answer = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": [
                {"cursor": {"session_id": session, "offset": data.len()}, "commit": commit("/Big/ten.bin")},
                {"cursor": {"session_id": open, "offset": 10}, "commit": commit("/Big/open.bin")},
                {"cursor": {"session_id": "pid_upload_session:nope", "offset": 0}, "commit": commit("/Big/x.bin")},
            ]}),
        )
        .await;
    let result = answer.ok();
    let entries = result["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0][".tag"], "success");
    let mut success = entries[0].clone();
    success.as_object_mut().expect("object").remove(".tag");
    assert_file_metadata(&success, "/Big/ten.bin", &data, false);
    assert_eq!(
        entries[1],
        json!({".tag": "failure", "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_closed"}}})
    );
    assert_eq!(
        entries[2],
        json!({".tag": "failure", "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}})
    );
    assert_eq!(
        h.stored("/big/ten.bin").expect("stored").content_hash,
        content_hash(&data)
    );
    // The session was consumed by the commit.
    let answer = append(&h, &session, data.len(), b"more", false).await;
    assert_eq!(
        answer.route_error(409, "not_found/"),
        json!({".tag": "not_found"})
    );
    // Nothing of the session is left on disk.
    let left = std::fs::read_dir(h.dir.path().join("root/sessions"))
        .expect("sessions")
        .count();
    assert_eq!(left, 1, "only the unclosed session remains");
}

#[tokio::test]
async fn append_errors_are_top_level() {
    let h = start().await;
    let session = h.session(b"12345", false).await;
    let error = append(&h, &session, 3, b"678", false)
        .await
        .route_error(409, "incorrect_offset/");
    assert_eq!(
        error,
        json!({".tag": "incorrect_offset", "correct_offset": 5})
    );
    assert_null(&append(&h, &session, 5, b"678", true).await);
    let error = append(&h, &session, 8, b"9", false)
        .await
        .route_error(409, "closed/");
    assert_eq!(error, json!({".tag": "closed"}));
    // A retried closing append (its answer lost) learns where the session stands.
    let error = append(&h, &session, 5, b"678", true)
        .await
        .route_error(409, "incorrect_offset/");
    assert_eq!(error["correct_offset"], 8);
    let error = append(&h, "pid_upload_session:unknown", 0, b"x", false)
        .await
        .route_error(409, "not_found/");
    assert_eq!(error, json!({".tag": "not_found"}));
    let answer = h
        .content(
            "/2/files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 8}, "content_hash": content_hash(b"y")}),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(
        answer.route_error(409, "content_hash_mismatch/"),
        json!({".tag": "content_hash_mismatch"})
    );
    let text = h
        .content(
            "/2/files/upload_session/append_v2",
            json!({"close": true}),
            Vec::new(),
        )
        .await
        .bad_request();
    assert!(
        text.starts_with("Error in call to API function \"files/upload_session/append_v2\""),
        "{text}"
    );
}

#[tokio::test]
async fn finish_errors_nest_lookup_failed_and_path() {
    let h = start().await;
    h.upload("/taken.txt", b"already here").await;
    let session = h.session(b"abc", false).await;
    let error = finish(&h, &session, 1, "/x.txt", b"")
        .await
        .route_error(409, "lookup_failed/incorrect_offset/");
    assert_eq!(
        error,
        json!({".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 3}})
    );
    // A conflict nests the WriteError under `path`; the bytes stay in the session.
    let error = finish(&h, &session, 3, "/taken.txt", b"def")
        .await
        .route_error(409, "path/conflict/file/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}})
    );
    let m = finish(&h, &session, 6, "/free.txt", b"").await.ok();
    assert_file_metadata(&m, "/free.txt", b"abcdef", false);
    let error = finish(&h, &session, 6, "/again.txt", b"")
        .await
        .route_error(409, "lookup_failed/not_found/");
    assert_eq!(
        error,
        json!({".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}})
    );
    let error = finish(&h, &session, 6, "/bad/", b"").await;
    error.route_error(409, "lookup_failed/not_found/");
    let other = h.session(b"q", false).await;
    let error = finish(&h, &other, 1, "/bad/", b"")
        .await
        .route_error(409, "path/malformed_path/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "malformed_path"}})
    );
    // After close, finish takes no more data.
    let closed = h.session(b"data", true).await;
    let error = finish(&h, &closed, 4, "/c.txt", b"more")
        .await
        .route_error(409, "lookup_failed/closed/");
    assert_eq!(error["lookup_failed"], json!({".tag": "closed"}));
    let m = finish(&h, &closed, 4, "/c.txt", b"").await.ok();
    assert_file_metadata(&m, "/c.txt", b"data", false);
    // The content_hash argument is the hash of finish's own body only.
    let s = h.session(b"head", false).await;
    let answer = h
        .content(
            "/2/files/upload_session/finish",
            json!({"cursor": {"session_id": s, "offset": 4}, "commit": {"path": "/h.txt"},
                   "content_hash": content_hash(b"tail")}),
            b"tail".to_vec(),
        )
        .await;
    assert_file_metadata(&answer.ok(), "/h.txt", b"headtail", false);
}

#[tokio::test]
async fn finish_reports_insufficient_space_under_path() {
    let h = start().await;
    h.emu.set_space_allocated(3);
    let session = h.session(b"four", true).await;
    let error = finish(&h, &session, 4, "/f.txt", b"")
        .await
        .route_error(409, "path/insufficient_space/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "insufficient_space"}})
    );
}

#[tokio::test]
async fn concurrent_sessions_take_blocks_in_any_order() {
    let h = start().await;
    let block = 4 * MIB;
    let data = super::bytes(2 * block + 1000, 11);
    let start = |body: Vec<u8>, close: bool| {
        h.content(
            "/2/files/upload_session/start",
            json!({"session_type": {".tag": "concurrent"}, "close": close}),
            body,
        )
    };
    let error = start(b"x".to_vec(), false)
        .await
        .route_error(409, "concurrent_session_data_not_allowed/");
    assert_eq!(
        error,
        json!({".tag": "concurrent_session_data_not_allowed"})
    );
    start(Vec::new(), true)
        .await
        .route_error(409, "concurrent_session_close_not_allowed/");
    let session = start(Vec::new(), false).await.ok()["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The second block first, then the first, then the closing tail.
    let (blocks, tail) = data.split_at(2 * block);
    let (first, second) = blocks.split_at(block);
    let error = append(&h, &session, 1000, second, false)
        .await
        .route_error(409, "concurrent_session_invalid_offset/");
    assert_eq!(error, json!({".tag": "concurrent_session_invalid_offset"}));
    append(&h, &session, block, &second[..1000], false)
        .await
        .route_error(409, "concurrent_session_invalid_data_size/");
    let (a, b) = tokio::join!(
        append(&h, &session, block, second, false),
        append(&h, &session, 0, first, false)
    );
    assert_null(&a);
    assert_null(&b);
    let error = finish(&h, &session, data.len(), "/cc.bin", b"")
        .await
        .route_error(409, "concurrent_session_not_closed/");
    assert_eq!(error, json!({".tag": "concurrent_session_not_closed"}));
    assert_null(&append(&h, &session, 2 * block, tail, true).await);
    let m = finish(&h, &session, data.len(), "/cc.bin", b"").await.ok();
    assert_file_metadata(&m, "/cc.bin", &data, false);

    // A hole is missing data; a closing append past the maximum is too_large.
    let holey = start(Vec::new(), false).await.ok()["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_null(&append(&h, &holey, block, b"end", true).await);
    let error = finish(&h, &holey, block + 3, "/hole.bin", b"")
        .await
        .route_error(409, "concurrent_session_missing_data/");
    assert_eq!(error, json!({".tag": "concurrent_session_missing_data"}));
    let huge = start(Vec::new(), false).await.ok()["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let max = (1usize << 41) - (1 << 22);
    let error = append(&h, &huge, max, b"x", true)
        .await
        .route_error(409, "too_large/");
    assert_eq!(error, json!({".tag": "too_large"}));
}

#[tokio::test]
async fn finish_batch_v2_limits_and_conflicts() {
    let h = start().await;
    let entry = json!({"cursor": {"session_id": "pid_upload_session:x", "offset": 0}, "commit": {"path": "/a"}});
    let too_many = vec![entry; 1001];
    let text = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": too_many}),
        )
        .await
        .bad_request();
    assert!(text.starts_with("Error in call to API function \"files/upload_session/finish_batch_v2\": request body: entries"), "{text}");
    let text = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": [{"cursor": {"offset": 0}, "commit": {"path": "/a"}}]}),
        )
        .await
        .bad_request();
    assert!(text.contains("session_id"), "{text}");
    // A conflict fails just its entry; the same session twice is found only once.
    h.upload("/exists.txt", b"old").await;
    let s1 = h.session(b"new", true).await;
    let s2 = h.session(b"fine", true).await;
    let result = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": [
                {"cursor": {"session_id": s1, "offset": 3}, "commit": {"path": "/exists.txt"}},
                {"cursor": {"session_id": s2, "offset": 4}, "commit": {"path": "/fine.txt"}},
                {"cursor": {"session_id": s2, "offset": 4}, "commit": {"path": "/fine2.txt"}},
                {"cursor": {"session_id": s1, "offset": 2}, "commit": {"path": "/x.txt"}},
            ]}),
        )
        .await
        .ok();
    let entries = result["entries"].as_array().expect("entries");
    assert_eq!(
        entries[0],
        json!({".tag": "failure", "failure": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}})
    );
    assert_eq!(entries[1][".tag"], "success");
    assert_eq!(entries[1]["path_display"], "/fine.txt");
    assert_eq!(entries[2]["failure"]["lookup_failed"][".tag"], "not_found");
    assert_eq!(
        entries[3]["failure"],
        json!({".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 3}})
    );
}

//! Fault injection: each kind, through the Rust API and over `/__emulator/faults`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::Fault;
use super::*;

#[tokio::test]
async fn server_errors_are_not_processed_and_vary_their_bodies() {
    let h = start().await;
    h.emu
        .faults()
        .inject("/2/files/upload", Fault::ServerError { status: 503 }, 3);
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let answer = h.upload_with(json!({"path": "/a.txt"}), b"a").await;
        assert_eq!(answer.status, 503);
        assert!(answer.headers.contains_key("x-dropbox-request-id"));
        bodies.push(answer.body.is_empty());
    }
    assert!(
        bodies.contains(&true) && bodies.contains(&false),
        "empty and non-empty bodies"
    );
    assert!(h.emu.files().is_empty(), "a 5xx request is not processed");
    h.upload("/a.txt", b"a").await;
    let records = h.emu.requests();
    assert_eq!(records.len(), 4);
    assert!(
        records[..3]
            .iter()
            .all(|r| r.status == 503 && r.fault.as_deref() == Some("server_error"))
    );
    assert_eq!(records[3].status, 200);
    assert_eq!(records[3].fault, None);
    assert!(records.windows(2).all(|w| w[0].received <= w[1].received));
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let h = start().await;
    h.emu
        .faults()
        .inject("*", Fault::TooManyRequests { retry_after: 7 }, 1);
    let answer = h.rpc("/2/files/list_folder", json!({"path": ""})).await;
    let error = answer.route_error(429, "too_many_requests/");
    assert_eq!(answer.headers["retry-after"], "7");
    assert!(error.get(".tag").is_none(), "RateLimitError is a struct");
    assert_eq!(
        error,
        json!({"reason": {".tag": "too_many_requests"}, "retry_after": 7})
    );

    h.emu.faults().inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::TooManyWriteOperations { retry_after: 1 },
        1,
    );
    // Another route is not affected.
    h.rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .ok();
    let answer = h
        .rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": []}),
        )
        .await;
    let error = answer.route_error(429, "too_many_write_operations/");
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        error,
        json!({"reason": {".tag": "too_many_write_operations"}})
    );
    assert_eq!(
        h.rpc(
            "/2/files/upload_session/finish_batch_v2",
            json!({"entries": []})
        )
        .await
        .ok(),
        json!({"entries": []})
    );
}

#[tokio::test]
async fn reset_mid_body_stores_nothing() {
    let h = start().await;
    h.emu
        .faults()
        .inject("/2/files/upload", Fault::ResetMidBody, 1);
    let data = super::bytes(8 * 1024 * 1024, 2);
    let sent = h
        .content_request(
            "/2/files/upload",
            &header_safe(&json!({"path": "/r.bin"})),
            data.clone(),
        )
        .send()
        .await;
    assert!(sent.is_err(), "the client sees a connection error");
    assert!(h.emu.files().is_empty());
    let records = h.emu.requests();
    assert_eq!(records[0].status, 0);
    assert_eq!(records[0].fault.as_deref(), Some("reset_mid_body"));
    // The next attempt goes through.
    h.upload("/r.bin", &data).await;
}

#[tokio::test]
async fn lose_answer_stores_the_file_but_drops_the_connection() {
    let h = start().await;
    h.emu
        .faults()
        .inject("/2/files/upload", Fault::LoseAnswer, 1);
    let sent = h
        .content_request(
            "/2/files/upload",
            &header_safe(&json!({"path": "/lost.txt"})),
            b"landed".to_vec(),
        )
        .send()
        .await;
    assert!(sent.is_err(), "the client sees a connection error");
    let stored = h.stored("/lost.txt").expect("the commit happened");
    assert_eq!(stored.content_hash, content_hash(b"landed"));
    assert_eq!(h.emu.requests()[0].status, 0);
    // Resending the same bytes finds them there (identical content: same rev).
    let m = h.upload("/lost.txt", b"landed").await;
    assert_eq!(m["rev"], stored.rev);
}

#[tokio::test]
async fn lost_append_answer_shows_as_incorrect_offset() {
    let h = start().await;
    let session = h.session(b"0123", false).await;
    h.emu
        .faults()
        .inject("/2/files/upload_session/append_v2", Fault::LoseAnswer, 1);
    let arg = json!({"cursor": {"session_id": session, "offset": 4}});
    assert!(
        h.content_request(
            "/2/files/upload_session/append_v2",
            &header_safe(&arg),
            b"4567".to_vec()
        )
        .send()
        .await
        .is_err()
    );
    let error = h
        .content("/2/files/upload_session/append_v2", arg, b"4567".to_vec())
        .await
        .route_error(409, "incorrect_offset/");
    assert_eq!(error["correct_offset"], 8);
}

#[tokio::test]
async fn expire_token_fault_expires_the_presented_token() {
    let h = start().await;
    h.emu
        .faults()
        .inject("/2/files/get_metadata", Fault::ExpireToken, 1);
    h.upload("/x.txt", b"x").await;
    let error = h
        .metadata("/x.txt")
        .await
        .route_error(401, "expired_access_token/");
    assert_eq!(error, json!({".tag": "expired_access_token"}));
    h.rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .route_error(401, "expired_access_token/");
}

#[tokio::test]
async fn delay_processes_first_then_answers_late() {
    let h = start().await;
    h.emu
        .faults()
        .inject("/2/files/upload", Fault::Delay { millis: 1000 }, 1);
    let began = Instant::now();
    let request = h.content_request(
        "/2/files/upload",
        &header_safe(&json!({"path": "/slow.txt"})),
        b"s".to_vec(),
    );
    let pending = tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    eventually("the delayed upload to be stored", || {
        h.stored("/slow.txt").is_some()
    })
    .await;
    assert!(
        !pending.is_finished(),
        "stored, but the answer is still held back"
    );
    let status = pending.await.expect("join").expect("send");
    assert_eq!(status, 200);
    assert!(began.elapsed() >= Duration::from_millis(1000));
}

#[tokio::test]
async fn faults_over_http_and_the_file_list() {
    let h = start().await;
    let armed = h
        .http
        .post(h.url("/__emulator/faults"))
        .json(&json!({"route": "/2/files/list_folder", "fault": {"kind": "too_many_requests", "retry_after": 2}, "times": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(armed.status().as_u16(), 200);
    for _ in 0..2 {
        h.rpc("/2/files/list_folder", json!({"path": ""}))
            .await
            .route_error(429, "too_many_requests/");
    }
    h.rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .ok();
    h.http
        .post(h.url("/__emulator/faults"))
        .json(&json!({"route": "*", "fault": {"kind": "server_error", "status": 500}, "times": 5}))
        .send()
        .await
        .expect("send");
    h.http
        .post(h.url("/__emulator/faults/clear"))
        .send()
        .await
        .expect("send");
    h.upload("/Listed.txt", b"l").await;
    let files: serde_json::Value = h
        .http
        .get(h.url("/__emulator/files"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        files,
        json!([{"path_display": "/Listed.txt", "path_lower": "/listed.txt", "size": 1,
                "content_hash": content_hash(b"l"), "rev": h.emu.files()[0].rev}])
    );
    let bad = h
        .http
        .post(h.url("/__emulator/faults"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn error_summary_is_the_reason_phrase() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start().await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let body = r#"{"path": "/missing.txt"}"#;
    let request = format!(
        "POST /2/files/get_metadata HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        h.token,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status_line = answer.lines().next().expect("status line");
    assert!(
        status_line.starts_with("HTTP/1.1 409 path/not_found/"),
        "{status_line}"
    );
    assert!(
        answer.contains("content-type: application/json\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_log_counts_body_bytes_and_names_sessions() {
    let h = start().await;
    let data = super::bytes(3 * 1024 * 1024 + 17, 3);
    h.upload("/whole.bin", &data).await;
    let session = h.session(&data[..1000], false).await;
    let answer = h
        .content(
            "/2/files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 1000}, "close": true}),
            data[1000..].to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let commit = json!({"path": "/Sessions/S.bin", "mode": "add"});
    let answer = h
        .content(
            "/2/files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": data.len()}, "commit": commit}),
            Vec::new(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A body cut off mid-way counts what was read before the drop.
    h.emu
        .faults()
        .inject("/2/files/upload", Fault::ResetMidBody, 1);
    let big = super::bytes(8 * 1024 * 1024, 4);
    let sent = h
        .content_request(
            "/2/files/upload",
            &header_safe(&json!({"path": "/cut.bin"})),
            big.clone(),
        )
        .send()
        .await;
    assert!(sent.is_err());

    let records = h.emu.requests();
    let sizes: Vec<(&str, u64)> = records
        .iter()
        .map(|r| (r.route.as_str(), r.body_bytes))
        .collect();
    assert_eq!(
        sizes[..4],
        [
            ("/2/files/upload", data.len() as u64),
            ("/2/files/upload_session/start", 1000),
            (
                "/2/files/upload_session/append_v2",
                data.len() as u64 - 1000
            ),
            ("/2/files/upload_session/finish", 0),
        ]
    );
    assert_eq!(records[0].session, None);
    assert!(
        records[1..4]
            .iter()
            .all(|r| r.session.as_deref() == Some(session.as_str())),
        "{records:?}"
    );
    let cut = records[4].body_bytes;
    assert!(cut > 0 && cut < big.len() as u64, "{cut} bytes read");
    assert_eq!(
        h.emu.session_commits(),
        vec![crate::emulator::SessionCommit {
            session,
            path_lower: "/sessions/s.bin".into()
        }]
    );
}

/// Requests to `route` (an RPC taking `{"path": ""}`), each answered; their statuses.
async fn statuses(h: &Harness, route: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(h.rpc(route, json!({"path": ""})).await.status);
    }
    out
}

#[tokio::test]
async fn rate_faults_hit_a_seeded_share_of_the_matching_routes() {
    let h = start().await;
    let faults = h.emu.faults();
    faults.seed(7);
    faults.inject_rate(
        "/2/files/list_folder*",
        Fault::ServerError { status: 503 },
        300,
    );
    faults.inject_rate(
        "/2/files/list_folder",
        Fault::TooManyRequests { retry_after: 1 },
        200,
    );
    let first = statuses(&h, "/2/files/list_folder", 200).await;
    let errors = first.iter().filter(|s| **s == 503).count();
    let limited = first.iter().filter(|s| **s == 429).count();
    // 30 % and 20 %, drawn once per request so they never overlap.
    assert!((40..=80).contains(&errors), "{errors} of 200 answered 503");
    assert!(
        (20..=60).contains(&limited),
        "{limited} of 200 answered 429"
    );
    assert_eq!(
        errors + limited + first.iter().filter(|s| **s == 200).count(),
        200
    );
    // The same seed replays the same faults for the same requests.
    faults.seed(7);
    assert_eq!(statuses(&h, "/2/files/list_folder", 200).await, first);
    // Other routes are untouched; a counted fault wins over the rates.
    let other = statuses(&h, "/2/files/get_metadata", 20).await;
    assert!(
        other.iter().all(|s| *s == other[0] && *s < 429),
        "{other:?}"
    );
    faults.inject(
        "/2/files/list_folder",
        Fault::ServerError { status: 500 },
        3,
    );
    assert_eq!(
        statuses(&h, "/2/files/list_folder", 3).await,
        vec![500, 500, 500]
    );
    faults.clear();
    assert!(
        statuses(&h, "/2/files/list_folder", 50)
            .await
            .iter()
            .all(|s| *s == 200)
    );
}

#[tokio::test]
async fn reset_by_rate_drops_even_a_request_without_a_body() {
    let h = start().await;
    h.emu
        .faults()
        .inject_rate("/2/files/upload_session/finish", Fault::ResetMidBody, 1000);
    let session = h.session(b"data", true).await;
    let sent = h
        .content_request(
            "/2/files/upload_session/finish",
            &header_safe(&json!({"cursor": {"session_id": session, "offset": 4},
                                  "commit": {"path": "/never.bin"}})),
            Vec::new(),
        )
        .send()
        .await;
    assert!(sent.is_err(), "the connection was dropped: {sent:?}");
    assert!(h.emu.files().is_empty(), "the commit was not processed");
    let last = h.emu.requests().pop().unwrap();
    assert_eq!((last.status, last.body_bytes), (0, 0));
    assert_eq!(last.fault.as_deref(), Some("reset_mid_body"));
}

#[tokio::test]
async fn write_contention_on_some_batch_entries_leaves_them_to_retry() {
    let h = start().await;
    let mut sessions = Vec::new();
    for i in 0..40u8 {
        sessions.push(h.session(&[i; 10], true).await);
    }
    let entries = |ids: &[(usize, String)]| {
        json!({"entries": ids.iter().map(|(i, s)| json!({
            "cursor": {"session_id": s, "offset": 10},
            "commit": {"path": format!("/Batch/{i}.bin"), "mode": "add"}
        })).collect::<Vec<_>>()})
    };
    h.emu.faults().inject(
        "/2/files/upload_session/finish_batch_v2",
        Fault::EntryWriteContention { per_mille: 500 },
        1,
    );
    let all: Vec<(usize, String)> = sessions.into_iter().enumerate().collect();
    let result = h
        .rpc("/2/files/upload_session/finish_batch_v2", entries(&all))
        .await
        .ok();
    let answered = result["entries"].as_array().unwrap();
    assert_eq!(answered.len(), 40);
    let mut retry = Vec::new();
    for ((i, session), entry) in all.iter().zip(answered) {
        if entry[".tag"] == "failure" {
            assert_eq!(
                *entry,
                json!({".tag": "failure", "failure": {".tag": "too_many_write_operations"}})
            );
            assert!(h.stored(&format!("/batch/{i}.bin")).is_none());
            retry.push((*i, session.clone()));
        } else {
            assert_eq!(entry[".tag"], "success", "{entry}");
            assert!(h.stored(&format!("/batch/{i}.bin")).is_some());
        }
    }
    assert!((5..=35).contains(&retry.len()), "{} refused", retry.len());
    // The refused entries' sessions are intact: the same entries commit on a retry.
    let result = h
        .rpc("/2/files/upload_session/finish_batch_v2", entries(&retry))
        .await
        .ok();
    assert!(
        result["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e[".tag"] == "success"),
        "{result}"
    );
    assert_eq!(h.emu.files().len(), 40);
}

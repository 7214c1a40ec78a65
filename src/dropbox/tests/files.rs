//! The `files` routes on the wire: uploads, upload sessions and their batch commit, metadata,
//! folders and listing.

use super::*;
use crate::dropbox::fixtures::FILE_METADATA;

#[tokio::test]
async fn upload_request_and_progress() {
    let (content, server) = serve_once(json_ok(FILE_METADATA)).await;
    let client = client(dead_url().await, content);
    let body: Bytes = (0..(4 * SLICE + 17))
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let arg = UploadArg {
        commit: CommitInfo {
            client_modified: Some("2024-05-01T12:00:00Z".into()),
            ..CommitInfo::new("/Photos/2024/Café 😀.jpg")
        },
        content_hash: Some(content_hash(&body)),
    };
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let progress: Progress = Arc::new(move |n| sink.lock().unwrap().push(n));

    let metadata = client
        .upload(&token(), &arg, body.clone(), Some(progress))
        .await
        .unwrap();
    assert_eq!(metadata.rev, "015f1a2b3c4d5e600000001a2b3c4d0");
    assert_eq!(metadata.size, 7212);

    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /2/files/upload HTTP/1.1");
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen.header("user-agent"), Some("dbxport-test/1"));
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        seen.header("transfer-encoding"),
        None,
        "sent with Content-Length, not chunked"
    );
    assert_eq!(seen.body, body.to_vec());

    let raw_arg = seen.header_bytes("dropbox-api-arg").unwrap();
    assert!(
        raw_arg.iter().all(|b| (0x20..0x7f).contains(b)),
        "{raw_arg:?}"
    );
    let raw_arg = std::str::from_utf8(raw_arg).unwrap();
    assert!(raw_arg.contains(r"Caf\u00e9 \ud83d\ude00.jpg"), "{raw_arg}");
    let decoded: Value = serde_json::from_str(raw_arg).unwrap();
    assert_eq!(
        decoded,
        json!({"path": "/Photos/2024/Café 😀.jpg", "mode": {".tag": "add"}, "autorename": false,
               "client_modified": "2024-05-01T12:00:00Z", "mute": false, "strict_conflict": false,
               "content_hash": content_hash(&body)})
    );

    let reports = reports.lock().unwrap().clone();
    assert_eq!(
        reports.last().copied(),
        Some(body.len() as u64),
        "{reports:?}"
    );
    assert_eq!(
        reports.len(),
        5,
        "one report per 256 KiB slice: {reports:?}"
    );
    assert!(
        reports
            .windows(2)
            .all(|w| w[0] < w[1] && w[1] - w[0] <= SLICE as u64)
    );
}

#[tokio::test]
async fn finish_with_empty_body_and_conflict() {
    let conflict = r#"{"error_summary": "path/conflict/file/..", "error": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}}"#;
    let (content, server) = serve_once(Then::Reply(response(
        "409 path/conflict/file/..",
        &[("Content-Type", "application/json")],
        conflict,
    )))
    .await;
    let client = client(dead_url().await, content);
    let arg = UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id: "pid_upload_session:XYZ".into(),
            offset: 8388608,
        },
        commit: CommitInfo {
            mode: WriteMode::Overwrite,
            ..CommitInfo::new("/Photos/a.jpg")
        },
        content_hash: Some(content_hash(b"")),
    };
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let progress: Progress = Arc::new(move |n| sink.lock().unwrap().push(n));
    let e = client
        .upload_session_finish(&token(), &arg, Bytes::new(), Some(progress))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(UploadSessionFinishError::Path(WriteError::Conflict(
                WriteConflictError::File
            )))
        ),
        "{e:?}"
    );
    assert!(!e.is_transient());
    assert!(reports.lock().unwrap().is_empty(), "no bytes, no progress");

    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/finish HTTP/1.1"
    );
    assert_eq!(seen.header("content-length"), Some("0"));
    assert!(seen.body.is_empty());
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream")
    );
    let arg: Value = serde_json::from_slice(seen.header_bytes("dropbox-api-arg").unwrap()).unwrap();
    assert_eq!(
        arg["cursor"],
        json!({"session_id": "pid_upload_session:XYZ", "offset": 8388608})
    );
    assert_eq!(arg["commit"]["mode"], json!({".tag": "overwrite"}));
}

#[tokio::test]
async fn append_void_result_and_incorrect_offset() {
    let (content, server) = serve_once(json_ok("null")).await;
    let client = client(dead_url().await, content);
    let arg = UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: "pid_upload_session:XYZ".into(),
            offset: 4,
        },
        close: true,
        content_hash: None,
    };
    client
        .upload_session_append(&token(), &arg, Bytes::from_static(b"abcd"), None)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/append_v2 HTTP/1.1"
    );
    assert_eq!(seen.body, b"abcd");
    assert_eq!(
        serde_json::from_slice::<Value>(seen.header_bytes("dropbox-api-arg").unwrap()).unwrap(),
        json!({"cursor": {"session_id": "pid_upload_session:XYZ", "offset": 4}, "close": true})
    );

    let body = r#"{"error_summary": "incorrect_offset/", "error": {".tag": "incorrect_offset", "correct_offset": 8}}"#;
    let (content, _server) = serve_once(Then::Reply(response(
        "409 Conflict",
        &[("Content-Type", "application/json")],
        body,
    )))
    .await;
    let client = client_with_timeout(dead_url().await, content, Duration::from_secs(10));
    let e = client
        .upload_session_append(&token(), &arg, Bytes::from_static(b"abcd"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(UploadSessionAppendError::IncorrectOffset { correct_offset: 8 })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn session_start() {
    let (content, server) =
        serve_once(json_ok(r#"{"session_id": "pid_upload_session:ABC"}"#)).await;
    let client = client(dead_url().await, content);
    let arg = UploadSessionStartArg {
        close: false,
        session_type: None,
        content_hash: None,
    };
    let started = client
        .upload_session_start(&token(), &arg, Bytes::from_static(b"xy"), None)
        .await
        .unwrap();
    assert_eq!(started.session_id, "pid_upload_session:ABC");
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/start HTTP/1.1"
    );
    assert_eq!(seen.header("dropbox-api-arg"), Some(r#"{"close":false}"#));
}

#[tokio::test]
async fn rpc_route_get_metadata() {
    let tagged = FILE_METADATA.replacen('{', r#"{".tag": "file", "#, 1);
    let (api, server) = serve_once(json_ok(&tagged)).await;
    let client = client(api, dead_url().await);
    let metadata = client
        .get_metadata(&token(), "/Photos/2024/IMG_0001.jpg")
        .await
        .unwrap();
    match metadata {
        Metadata::File(file) => assert_eq!(file.id, "id:a4ayc_80_OEAAAAAAAAAXw"),
        other => panic!("{other:?}"),
    }
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /2/files/get_metadata HTTP/1.1");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen.header("user-agent"), Some("dbxport-test/1"));
    assert_eq!(seen.header("dropbox-api-arg"), None);
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos/2024/IMG_0001.jpg"})
    );
}

#[tokio::test]
async fn rpc_route_not_found_is_route_error() {
    let body = r#"{"error_summary": "path/not_found/.", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#;
    let (api, _server) = serve_once(Then::Reply(response(
        "409 path/not_found/.",
        &[("Content-Type", "application/json")],
        body,
    )))
    .await;
    let client = client(api, dead_url().await);
    let e = client
        .get_metadata(&token(), "/nope.jpg")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(GetMetadataError::Path(LookupError::NotFound))
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn create_folder_and_list_folder_continue() {
    let (api, server) = serve_once(json_ok(
        r#"{"metadata": {"name": "2024", "path_lower": "/photos/2024", "path_display": "/Photos/2024", "id": "id:xyz"}}"#,
    ))
    .await;
    let folder = client(api, dead_url().await)
        .create_folder(&token(), "/Photos/2024", false)
        .await
        .unwrap();
    assert_eq!(folder.path_display.as_deref(), Some("/Photos/2024"));
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /2/files/create_folder_v2 HTTP/1.1");
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos/2024", "autorename": false})
    );

    let (api, server) = serve_once(json_ok(
        r#"{"entries": [], "cursor": "C2", "has_more": false}"#,
    ))
    .await;
    let page = client(api, dead_url().await)
        .list_folder_continue(&token(), "C1")
        .await
        .unwrap();
    assert_eq!(page.cursor, "C2");
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/list_folder/continue HTTP/1.1"
    );
    assert_eq!(seen.json_body(), json!({"cursor": "C1"}));
}

#[tokio::test]
async fn finish_batch_is_rpc_on_the_api_host() {
    let body = r#"{"entries": [
  {".tag": "success", "name": "a.jpg", "path_lower": "/photos/a.jpg", "path_display": "/Photos/a.jpg", "id": "id:a4ayc_80_OEAAAAAAAAAXw",
   "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z", "rev": "015f1a2b3c4d5e600000001a2b3c4d0",
   "size": 7212, "is_downloadable": true, "content_hash": "9eb62f609dee341fdcc4521fd6d5a78d9e5c5bb36d844618d9e8d1b32f28ba95"},
  {".tag": "failure", "failure": {".tag": "too_many_write_operations"}}
]}"#;
    let (api, server) = serve_once(json_ok(body)).await;
    let client = client(api, dead_url().await);
    let entry = |n: u64| UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id: format!("s{n}"),
            offset: n,
        },
        commit: CommitInfo::new(format!("/Photos/{n}.jpg")),
        content_hash: None,
    };
    let results = client
        .upload_session_finish_batch(&token(), &[entry(1), entry(2)])
        .await
        .unwrap();
    assert!(matches!(&results[0], FinishBatchEntry::Success(m) if m.name == "a.jpg"));
    assert_eq!(
        results[1],
        FinishBatchEntry::Failure(UploadSessionFinishError::TooManyWriteOperations)
    );
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/finish_batch_v2 HTTP/1.1"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let sent = seen.json_body();
    assert_eq!(sent["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        sent["entries"][1]["cursor"],
        json!({"session_id": "s2", "offset": 2})
    );
    assert!(sent["entries"][0].get("content_hash").is_none());
}

fn piece(session: &str, offset: u64, length: u64, close: bool) -> AppendBatchEntry {
    AppendBatchEntry {
        cursor: UploadSessionCursor {
            session_id: session.into(),
            offset,
        },
        length,
        close,
    }
}

#[tokio::test]
async fn start_batch_is_rpc_on_the_api_host() {
    let (api, server) = serve_once(json_ok(
        r#"{"session_ids": ["pid_upload_session:A", "pid_upload_session:B", "pid_upload_session:C"]}"#,
    ))
    .await;
    let ids = client(api, dead_url().await)
        .upload_session_start_batch(&token(), 3)
        .await
        .unwrap();
    assert_eq!(
        ids,
        [
            "pid_upload_session:A",
            "pid_upload_session:B",
            "pid_upload_session:C"
        ]
    );
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/start_batch HTTP/1.1"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // Sequential is the default session type: nothing else is sent.
    assert_eq!(seen.json_body(), json!({"num_sessions": 3}));
}

#[tokio::test]
async fn start_batch_refuses_bad_counts_and_short_answers() {
    // Nothing listens: a request would be a Transport error, not BadInput.
    let unreachable = client(dead_url().await, dead_url().await);
    for n in [0, MAX_START_BATCH_SESSIONS + 1] {
        let e = unreachable
            .upload_session_start_batch(&token(), n)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::BadInput(_)), "{n}: {e:?}");
    }
    let (api, _server) = serve_once(json_ok(r#"{"session_ids": ["pid_upload_session:A"]}"#)).await;
    let e = client(api, dead_url().await)
        .upload_session_start_batch(&token(), 2)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Decode { status: 200, .. }), "{e:?}");
}

#[tokio::test]
async fn append_batch_request_and_per_entry_results() {
    let answer = r#"{"entries": [{".tag": "success"},
        {".tag": "failure", "failure": {".tag": "incorrect_offset", "correct_offset": 7}},
        {".tag": "failure", "failure": {".tag": "closed"}}]}"#;
    let (content, server) = serve_once(json_ok(answer)).await;
    let client = client(dead_url().await, content);
    let body: Bytes = (0..(2 * SLICE + 10))
        .map(|i| (i % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    let entries = [
        piece("pid_upload_session:A", 0, SLICE as u64, false),
        piece("pid_upload_session:B", 3, SLICE as u64 + 4, true),
        piece("pid_upload_session:C", 0, 6, true),
    ];
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let progress: Progress = Arc::new(move |n| sink.lock().unwrap().push(n));
    let results = client
        .upload_session_append_batch(
            &token(),
            &entries,
            body.clone(),
            Some(content_hash(&body)),
            Some(progress),
        )
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            AppendBatchResult::Success,
            AppendBatchResult::Failure(AppendBatchEntryError::IncorrectOffset {
                correct_offset: 7
            }),
            AppendBatchResult::Failure(AppendBatchEntryError::Closed),
        ]
    );
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/files/upload_session/append_batch HTTP/1.1"
    );
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        seen.body,
        body.to_vec(),
        "the pieces, concatenated in order"
    );
    let arg: Value = serde_json::from_slice(seen.header_bytes("dropbox-api-arg").unwrap()).unwrap();
    assert_eq!(
        arg,
        json!({"entries": [
            {"cursor": {"session_id": "pid_upload_session:A", "offset": 0}, "length": SLICE, "close": false},
            {"cursor": {"session_id": "pid_upload_session:B", "offset": 3}, "length": SLICE + 4, "close": true},
            {"cursor": {"session_id": "pid_upload_session:C", "offset": 0}, "length": 6, "close": true}],
            "content_hash": content_hash(&body)})
    );
    assert_eq!(
        reports.lock().unwrap().last().copied(),
        Some(body.len() as u64)
    );
}

#[tokio::test]
async fn append_batch_whole_request_error() {
    let refused =
        r#"{"error_summary": "length_mismatch/..", "error": {".tag": "length_mismatch"}}"#;
    let (content, server) = serve_once(Then::Reply(conflict(refused))).await;
    let e = client(dead_url().await, content)
        .upload_session_append_batch(
            &token(),
            &[piece("pid_upload_session:A", 0, 3, true)],
            Bytes::from_static(b"abc"),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(UploadSessionAppendBatchError::LengthMismatch)
        ),
        "{e:?}"
    );
    assert!(!e.is_transient());
    let seen = server.await.unwrap();
    let arg: Value = serde_json::from_slice(seen.header_bytes("dropbox-api-arg").unwrap()).unwrap();
    assert!(arg.get("content_hash").is_none(), "{arg}");
}

#[tokio::test]
async fn append_batch_refuses_before_sending() {
    // Nothing listens: a request would be a Transport error, not BadInput.
    let unreachable = client(dead_url().await, dead_url().await);
    let refused = |e: Error<UploadSessionAppendBatchError>| {
        assert!(matches!(e, Error::BadInput(_)), "{e:?}");
    };
    // No entries, and more than the SDK's 500.
    refused(
        unreachable
            .upload_session_append_batch(&token(), &[], Bytes::new(), None, None)
            .await
            .unwrap_err(),
    );
    let many: Vec<_> = (0..=MAX_APPEND_BATCH_ENTRIES)
        .map(|n| piece(&format!("s{n}"), 0, 1, true))
        .collect();
    let body = Bytes::from(vec![0u8; many.len()]);
    refused(
        unreachable
            .upload_session_append_batch(&token(), &many, body, None, None)
            .await
            .unwrap_err(),
    );
    // Lengths that do not add up to the body, either way, or overflow.
    for lengths in [[2, 2], [1, 1], [u64::MAX, 4]] {
        let entries = [
            piece("a", 0, lengths[0], true),
            piece("b", 0, lengths[1], true),
        ];
        refused(
            unreachable
                .upload_session_append_batch(
                    &token(),
                    &entries,
                    Bytes::from_static(b"abc"),
                    None,
                    None,
                )
                .await
                .unwrap_err(),
        );
    }
    // Over 150 MiB (zeroed pages: nothing is written to them).
    let big = MAX_REQUEST_BODY + 1;
    let entries = [piece("a", 0, big, true)];
    refused(
        unreachable
            .upload_session_append_batch(
                &token(),
                &entries,
                Bytes::from(vec![0u8; big as usize]),
                None,
                None,
            )
            .await
            .unwrap_err(),
    );
    // And the result count must match the request.
    let (content, _server) = serve_once(json_ok(r#"{"entries": [{".tag": "success"}]}"#)).await;
    let e = client(dead_url().await, content)
        .upload_session_append_batch(
            &token(),
            &[piece("a", 0, 1, true), piece("b", 0, 1, true)],
            Bytes::from_static(b"xy"),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Decode { status: 200, .. }), "{e:?}");
}

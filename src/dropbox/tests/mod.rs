//! The client on the wire: each test starts a small HTTP server on 127.0.0.1 that records the
//! raw requests and answers with canned bytes, then checks both the requests and the result.
//! `emulator` runs the shared-link calls against the in-crate emulator instead.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use super::*;
use crate::dropbox::content_hash::content_hash;
use crate::dropbox::http::body::SLICE;
use crate::dropbox::http::route_url;

const TOKEN: &str = "sl.TEST-ACCESS-TOKEN";

/// A request as the server saw it.
#[derive(Debug)]
struct Seen {
    request_line: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Seen {
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .map(|v| std::str::from_utf8(v).expect("UTF-8 header"))
    }

    fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// How the server behaves once it has read the request head.
enum Then {
    /// Read the body (by Content-Length), then send these bytes and close.
    Reply(Vec<u8>),
    /// Read the body at `per_read` bytes per read with `pause` between reads, then reply.
    SlowRead {
        per_read: usize,
        pause: Duration,
        reply: Vec<u8>,
    },
    /// Close the connection without a reply.
    Drop,
    /// Read the body, then never answer (the connection stays open).
    Silence,
    /// Never read the body and never answer.
    Stall,
}

/// A canned HTTP/1.1 response.
fn response(status_line: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

fn json_ok(body: &str) -> Then {
    Then::Reply(response(
        "200 OK",
        &[("Content-Type", "application/json")],
        body,
    ))
}

/// Serves one connection on a fresh port. Both endpoints point at it unless the test replaces
/// one with [`dead_url`], to prove which host a route uses.
async fn serve_once(then: Then) -> (Url, JoinHandle<Seen>) {
    // A small receive buffer, as on a real link: loopback's default buffers swallow megabytes,
    // so a client would hand over a whole body long before the server has read it.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (seen, rest) = read_head(&mut stream).await;
        let length: usize = seen
            .header("content-length")
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut seen = seen;
        match then {
            Then::Reply(bytes) => {
                seen.body = read_body(&mut stream, rest, length, None).await;
                stream.write_all(&bytes).await.unwrap();
                stream.shutdown().await.ok();
            }
            Then::SlowRead {
                per_read,
                pause,
                reply,
            } => {
                seen.body = read_body(&mut stream, rest, length, Some((per_read, pause))).await;
                stream.write_all(&reply).await.unwrap();
                stream.shutdown().await.ok();
            }
            Then::Drop => drop(stream),
            Then::Silence => {
                seen.body = read_body(&mut stream, rest, length, None).await;
                std::future::pending::<()>().await;
            }
            Then::Stall => std::future::pending::<()>().await,
        }
        seen
    });
    (url, task)
}

/// Serves one connection per reply, in order (each reply closes its connection), then stops
/// listening: a request beyond the replies fails to connect.
async fn serve_replies(replies: Vec<Vec<u8>>) -> (Url, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for reply in replies {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (mut request, rest) = read_head(&mut stream).await;
            let length: usize = request
                .header("content-length")
                .map_or(0, |v| v.trim().parse().unwrap());
            request.body = read_body(&mut stream, rest, length, None).await;
            stream.write_all(&reply).await.unwrap();
            stream.shutdown().await.ok();
            seen.push(request);
        }
        seen
    });
    (url, task)
}

/// A URL where nothing listens (the port was bound, then released).
async fn dead_url() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    url
}

async fn read_head(stream: &mut TcpStream) -> (Seen, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside the request head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8(lines.next().unwrap().to_vec()).unwrap();
    let headers = lines
        .map(|line| {
            let colon = line.iter().position(|&b| b == b':').expect("header line");
            let name = String::from_utf8(line[..colon].to_vec()).unwrap();
            let value = line[colon + 1..].trim_ascii().to_vec();
            (name, value)
        })
        .collect();
    let rest = buf[end + 4..].to_vec();
    (
        Seen {
            request_line,
            headers,
            body: Vec::new(),
        },
        rest,
    )
}

async fn read_body(
    stream: &mut TcpStream,
    mut body: Vec<u8>,
    length: usize,
    slow: Option<(usize, Duration)>,
) -> Vec<u8> {
    let per_read = slow.map_or(64 * 1024, |(n, _)| n);
    let mut chunk = vec![0u8; per_read];
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
        if let Some((_, pause)) = slow {
            tokio::time::sleep(pause).await;
        }
    }
    body
}

fn client(api: Url, content: Url) -> Client {
    client_with_timeout(api, content, Duration::from_secs(10))
}

fn client_with_timeout(api: Url, content: Url, read_timeout: Duration) -> Client {
    Client::new(ClientOptions {
        endpoints: Endpoints { api, content },
        ca_file: None,
        user_agent: "dbxport-test/1".into(),
        connect_timeout: Duration::from_secs(5),
        read_timeout,
    })
    .unwrap()
}

fn token() -> Secret {
    Secret::new(TOKEN)
}

/// Every way an error can be shown, for "no secret in it" checks.
fn shown(e: &(impl fmt::Display + fmt::Debug)) -> String {
    format!("{e} | {e:?}")
}

const FILE_METADATA: &str = r#"{"name": "IMG_0001.jpg", "path_lower": "/photos/2024/img_0001.jpg", "path_display": "/Photos/2024/IMG_0001.jpg",
 "id": "id:a4ayc_80_OEAAAAAAAAAXw", "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
 "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212, "is_downloadable": true,
 "content_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#;

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
async fn void_argument_routes_send_null() {
    let (api, server) = serve_once(json_ok(
        r#"{"used": 314159265, "allocation": {".tag": "individual", "allocated": 2147483648}}"#,
    ))
    .await;
    let usage = client(api, dead_url().await)
        .get_space_usage(&token())
        .await
        .unwrap();
    assert_eq!(usage.used, 314159265);
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /2/users/get_space_usage HTTP/1.1");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.body, b"null");

    let (api, server) = serve_once(json_ok("null")).await;
    client(api, dead_url().await)
        .revoke(&token())
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /2/auth/token/revoke HTTP/1.1");
    assert_eq!(seen.body, b"null");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    let (api, server) = serve_once(json_ok(
        r#"{"account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc", "name": {"display_name": "Franz Ferdinand"},
            "email": "franz@example.com", "account_type": {".tag": "pro"}}"#,
    ))
    .await;
    let account = client(api, dead_url().await)
        .get_current_account(&token())
        .await
        .unwrap();
    assert_eq!(account.name.display_name, "Franz Ferdinand");
    assert_eq!(account.account_type, AccountType::Pro);
    assert_eq!(
        server.await.unwrap().request_line,
        "POST /2/users/get_current_account HTTP/1.1"
    );
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

#[tokio::test]
async fn finish_batch_refuses_more_than_1000_before_sending() {
    // Nothing listens: a request would be a Transport error, not BadInput.
    let unreachable = client(dead_url().await, dead_url().await);
    let entries: Vec<_> = (0..1001)
        .map(|n| UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id: format!("s{n}"),
                offset: 0,
            },
            commit: CommitInfo::new(format!("/{n}")),
            content_hash: None,
        })
        .collect();
    let e = unreachable
        .upload_session_finish_batch(&token(), &entries)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadInput(_)), "{e:?}");
    // And the result count must match the request.
    let (api, _server) = serve_once(json_ok(r#"{"entries": []}"#)).await;
    let e = client(api, dead_url().await)
        .upload_session_finish_batch(&token(), &entries[..1])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Decode { status: 200, .. }), "{e:?}");
}

#[tokio::test]
async fn rate_limited_with_retry_after_header() {
    let (api, _server) = serve_once(Then::Reply(response(
        "429 too_many_requests/...",
        &[("Content-Type", "application/json"), ("Retry-After", "15")],
        r#"{"error_summary": "too_many_requests/...", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 15}}"#,
    )))
    .await;
    let e = client(api, dead_url().await)
        .list_folder(&token(), &ListFolderArg::new(""))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { reason: RateLimitReason::TooManyRequests, retry_after }
            if retry_after == Duration::from_secs(15)),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(15)));

    // Write contention on an upload: plain-text 429, the header alone says how long.
    let (content, _server) = serve_once(Then::Reply(response(
        "429 Too Many Requests",
        &[("Content-Type", "text/plain"), ("Retry-After", "2")],
        "Too many requests",
    )))
    .await;
    let arg = UploadArg {
        commit: CommitInfo::new("/a.jpg"),
        content_hash: None,
    };
    let e = client(dead_url().await, content)
        .upload(&token(), &arg, Bytes::from_static(b"x"), None)
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert!(e.is_transient());
}

#[tokio::test]
async fn server_error_with_html_body() {
    let html = "<html><head><title>503</title></head><body>Service Unavailable</body></html>";
    let (content, _server) = serve_once(Then::Reply(response(
        "503 Service Unavailable",
        &[("Content-Type", "text/html")],
        html,
    )))
    .await;
    let arg = UploadArg {
        commit: CommitInfo::new("/a.jpg"),
        content_hash: None,
    };
    let e = client(dead_url().await, content)
        .upload(&token(), &arg, Bytes::from_static(b"x"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Server { status: 503 }), "{e:?}");
    assert!(e.is_transient());
    assert!(!shown(&e).contains("html"), "{}", shown(&e));
}

#[tokio::test]
async fn auth_error_and_bad_input_on_the_wire() {
    let (api, _server) = serve_once(Then::Reply(response(
        "401 Unauthorized",
        &[("Content-Type", "application/json")],
        r#"{"error_summary": "expired_access_token/.", "error": {".tag": "expired_access_token"}}"#,
    )))
    .await;
    let e = client(api, dead_url().await)
        .get_current_account(&token())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::ExpiredAccessToken)),
        "{e:?}"
    );

    let echo = format!(
        "Invalid authorization value in HTTP header \"Authorization\": \"Bearer {TOKEN}\".  Expecting \"Bearer <oauth2-access-token>\"."
    );
    let (api, _server) = serve_once(Then::Reply(response(
        "400 Bad Request",
        &[("Content-Type", "text/plain; charset=utf-8")],
        &echo,
    )))
    .await;
    let e = client(api, dead_url().await)
        .get_metadata(&token(), "/a")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::BadInput(m) if m.starts_with("Invalid authorization value")),
        "{e:?}"
    );
    assert!(!shown(&e).contains(TOKEN), "{}", shown(&e));
}

#[tokio::test]
async fn dropped_connection_is_transport_without_url_or_token() {
    let (content, _server) = serve_once(Then::Drop).await;
    let arg = UploadArg {
        commit: CommitInfo::new("/a.jpg"),
        content_hash: None,
    };
    let e = client(dead_url().await, content.clone())
        .upload(&token(), &arg, Bytes::from_static(b"abc"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.is_transient());
    let text = shown(&e);
    assert!(
        !text.contains(TOKEN) && !text.contains("127.0.0.1") && !text.contains("http://"),
        "{text}"
    );

    let api = dead_url().await;
    let e = client(api, dead_url().await)
        .get_space_usage(&token())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Transport(m) if !m.contains("127.0.0.1")),
        "{e:?}"
    );
}

#[tokio::test]
async fn slow_but_moving_upload_is_not_cut_off() {
    // The body takes several times read_timeout to arrive (reqwest's own read timeout would
    // cut it off), but never stalls that long. The kernel still buffers megabytes on loopback
    // after the last slice is handed over; at this rate they drain well within read_timeout.
    let read_timeout = Duration::from_millis(1500);
    let (content, server) = serve_once(Then::SlowRead {
        per_read: 128 * 1024,
        pause: Duration::from_millis(10),
        reply: response(
            "200 OK",
            &[("Content-Type", "application/json")],
            FILE_METADATA,
        ),
    })
    .await;
    let client = client_with_timeout(dead_url().await, content, read_timeout);
    let body = Bytes::from(vec![7u8; 32 * 1024 * 1024]);
    let arg = UploadArg {
        commit: CommitInfo::new("/big.jpg"),
        content_hash: None,
    };
    let started = Instant::now();
    client
        .upload(&token(), &arg, body.clone(), None)
        .await
        .unwrap();
    assert!(
        started.elapsed() > read_timeout,
        "the test must outlast read_timeout to mean anything"
    );
    assert_eq!(server.await.unwrap().body.len(), body.len());
}

#[tokio::test]
async fn stalled_upload_times_out() {
    let read_timeout = Duration::from_millis(300);
    // The server never reads the body: once the socket buffers are full, nothing moves.
    let (content, _server) = serve_once(Then::Stall).await;
    let client = client_with_timeout(dead_url().await, content, read_timeout);
    let arg = UploadArg {
        commit: CommitInfo::new("/big.jpg"),
        content_hash: None,
    };
    let body = Bytes::from(vec![0u8; 16 * 1024 * 1024]);
    let e = client.upload(&token(), &arg, body, None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Transport(m) if m.contains("timed out")),
        "{e:?}"
    );

    // The body went through but no reply comes.
    let (content, _server) = serve_once(Then::Silence).await;
    let client = client_with_timeout(dead_url().await, content, read_timeout);
    let e = client
        .upload(&token(), &arg, Bytes::from_static(b"abc"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Transport(m) if m.contains("timed out")),
        "{e:?}"
    );
}

#[tokio::test]
async fn refresh_token_request_and_response() {
    let (api, server) = serve_once(json_ok(
        r#"{"access_token": "sl.NEW-ACCESS", "token_type": "bearer", "expires_in": 14400}"#,
    ))
    .await;
    let refresh = Secret::new("R-REFRESH/+ &=");
    let response = client(api, dead_url().await)
        .refresh_access_token("appkey123", &refresh)
        .await
        .unwrap();
    assert_eq!(response.access_token.expose(), "sl.NEW-ACCESS");
    assert_eq!(response.expires_in, Some(14400));
    assert!(response.refresh_token.is_none());
    assert!(!format!("{response:?}").contains("NEW-ACCESS"));

    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /oauth2/token HTTP/1.1");
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.header("authorization"), None);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), "R-REFRESH/+ &=".into()),
            ("client_id".into(), "appkey123".into()),
        ]
    );
}

#[tokio::test]
async fn exchange_code_request() {
    let (api, server) = serve_once(json_ok(
        r#"{"access_token": "sl.A", "token_type": "bearer", "expires_in": 14400, "refresh_token": "R1",
            "scope": "files.content.write", "uid": "123456789", "account_id": "dbid:x"}"#,
    ))
    .await;
    let response = client(api, dead_url().await)
        .exchange_code(
            "appkey123",
            &Secret::new("CODE-1"),
            &Secret::new("VERIFIER-1"),
            Some("http://localhost:53682/"),
        )
        .await
        .unwrap();
    assert_eq!(
        response.refresh_token.as_ref().map(Secret::expose),
        Some("R1")
    );
    assert_eq!(response.account_id.as_deref(), Some("dbid:x"));
    let seen = server.await.unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("grant_type"), Some("authorization_code"));
    assert_eq!(field("code"), Some("CODE-1"));
    assert_eq!(field("code_verifier"), Some("VERIFIER-1"));
    assert_eq!(field("client_id"), Some("appkey123"));
    assert_eq!(field("redirect_uri"), Some("http://localhost:53682/"));
}

#[tokio::test]
async fn token_endpoint_invalid_grant_leaks_nothing() {
    let (api, _server) = serve_once(Then::Reply(response(
        "400 Bad Request",
        &[("Content-Type", "application/json")],
        r#"{"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}"#,
    )))
    .await;
    let refresh = Secret::new("R-SECRET-REFRESH");
    let e = client(api, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OAuthError::InvalidGrant(d) if d == "refresh token is invalid or revoked"),
        "{e:?}"
    );
    assert!(!shown(&e).contains("R-SECRET"));

    // A success-shaped reply that fails to parse holds tokens: none may surface.
    let (api, _server) = serve_once(json_ok(
        r#"{"access_token": "sl.LEAKED-ACCESS", "expires_in": "sl.LEAKED-ACCESS", "refresh_token": "R-LEAKED"}"#,
    ))
    .await;
    let e = client(api, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Decode(_)), "{e:?}");
    assert!(
        !shown(&e).contains("LEAKED") && !shown(&e).contains("R-SECRET"),
        "{}",
        shown(&e)
    );

    // A transport failure neither.
    let e = client(dead_url().await, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Transport(_)) && e.is_transient());
    assert!(
        !shown(&e).contains("R-SECRET") && !shown(&e).contains("127.0.0.1"),
        "{}",
        shown(&e)
    );
}

#[tokio::test]
async fn a_token_that_is_no_header_value_is_refused_before_sending() {
    let client = client(dead_url().await, dead_url().await);
    let bad = Secret::new("sl.bad\ntoken");
    let e = client.get_space_usage(&bad).await.unwrap_err();
    assert!(matches!(e, Error::BadInput(_)), "{e:?}");
    assert!(!shown(&e).contains("sl.bad"));
}

/// §3.14's `shared_link_already_exists` example, with the link.
const ALREADY_EXISTS: &str = r#"{"error_summary": "shared_link_already_exists/metadata/..",
 "error": {".tag": "shared_link_already_exists",
           "shared_link_already_exists": {".tag": "metadata",
              "metadata": {".tag": "file", "url": "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0",
                           "id": "id:a4ayc_80_OEAAAAAAAAAXw", "name": "a.jpg", "path_lower": "/photos/a.jpg",
                           "link_permissions": {"resolved_visibility": {".tag": "public"}, "can_revoke": true, "visibility_policies": [],
                                                "can_set_expiry": false, "can_remove_expiry": false, "allow_download": true,
                                                "can_allow_download": true, "can_disallow_download": false,
                                                "allow_comments": true, "team_restricts_comments": false},
                           "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
                           "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212}}}}"#;

const ALREADY_EXISTS_BARE: &str = r#"{"error_summary": "shared_link_already_exists/..", "error": {".tag": "shared_link_already_exists"}}"#;

fn conflict(body: &str) -> Vec<u8> {
    response(
        "409 Conflict",
        &[("Content-Type", "application/json")],
        body,
    )
}

fn ok_json(body: &str) -> Vec<u8> {
    response("200 OK", &[("Content-Type", "application/json")], body)
}

/// A link as `list_shared_links` would list it.
fn listed_link(tag: &str, name: &str, path_lower: &str) -> String {
    let file_fields = if tag == "file" {
        r#", "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z", "rev": "0123456789", "size": 1"#
    } else {
        ""
    };
    format!(
        r#"{{".tag": "{tag}", "url": "https://www.dropbox.com/scl/x/{name}?dl=0", "name": "{name}", "path_lower": "{path_lower}", "link_permissions": {{"can_revoke": true}}{file_fields}}}"#
    )
}

#[tokio::test]
async fn create_shared_link_request_and_result() {
    let link = r#"{".tag": "folder", "url": "https://www.dropbox.com/scl/fo/abc/Photos?rlkey=xyz&dl=0", "id": "id:f",
                   "name": "Photos", "path_lower": "/photos", "link_permissions": {"resolved_visibility": {".tag": "public"}}}"#;
    let (api, server) = serve_once(json_ok(link)).await;
    let settings = SharedLinkSettings {
        allow_download: Some(true),
        ..SharedLinkSettings::public_viewer()
    };
    let created = client(api, dead_url().await)
        .create_shared_link(&token(), "/Photos", Some(&settings))
        .await
        .unwrap();
    assert!(matches!(&created, SharedLinkMetadata::Folder(f) if f.id.as_deref() == Some("id:f")));
    assert_eq!(
        created.url(),
        "https://www.dropbox.com/scl/fo/abc/Photos?rlkey=xyz&dl=0"
    );
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/sharing/create_shared_link_with_settings HTTP/1.1"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // §3.14's example argument.
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos", "settings": {"audience": {".tag": "public"}, "access": {".tag": "viewer"}, "allow_download": true}})
    );

    // Without settings, none are sent: Dropbox's default link.
    let (api, server) = serve_once(Then::Reply(conflict(ALREADY_EXISTS))).await;
    let e = client(api, dead_url().await)
        .create_shared_link(&token(), "/Photos/a.jpg", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Route(CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(Some(link)))
            if link.path_lower() == Some("/photos/a.jpg")),
        "{e:?}"
    );
    assert_eq!(
        server.await.unwrap().json_body(),
        json!({"path": "/Photos/a.jpg"})
    );
}

#[tokio::test]
async fn list_shared_links_request_and_result() {
    let body = format!(
        r#"{{"links": [{}], "has_more": false}}"#,
        listed_link("file", "a.jpg", "/photos/a.jpg")
    );
    let (api, server) = serve_once(json_ok(&body)).await;
    let arg = ListSharedLinksArg {
        path: Some("/Photos/a.jpg".into()),
        cursor: None,
        direct_only: Some(true),
    };
    let listed = client(api, dead_url().await)
        .list_shared_links(&token(), &arg)
        .await
        .unwrap();
    assert_eq!(listed.links.len(), 1);
    assert_eq!(listed.links[0].name(), "a.jpg");
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/sharing/list_shared_links HTTP/1.1"
    );
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos/a.jpg", "direct_only": true})
    );

    let (api, _server) = serve_once(Then::Reply(conflict(
        r#"{"error_summary": "reset/.", "error": {".tag": "reset"}}"#,
    )))
    .await;
    let e = client(api, dead_url().await)
        .list_shared_links(
            &token(),
            &ListSharedLinksArg {
                cursor: Some("old".into()),
                ..ListSharedLinksArg::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Route(ListSharedLinksError::Reset)),
        "{e:?}"
    );
}

#[tokio::test]
async fn shared_link_for_takes_the_link_from_the_error() {
    // One reply only: a second request (a listing) could not connect and would fail the call.
    let (api, server) = serve_replies(vec![conflict(ALREADY_EXISTS)]).await;
    let link = client(api, dead_url().await)
        .shared_link_for(&token(), "/Photos/a.jpg")
        .await
        .unwrap();
    assert_eq!(
        link.url(),
        "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0"
    );
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].request_line,
        "POST /2/sharing/create_shared_link_with_settings HTTP/1.1"
    );
    assert_eq!(
        seen[0].json_body(),
        json!({"path": "/Photos/a.jpg", "settings": {"audience": {".tag": "public"}, "access": {".tag": "viewer"}}})
    );
}

#[tokio::test]
async fn shared_link_for_lists_when_the_error_has_no_link() {
    // The parent folder's link comes first: it must not be taken for the file's.
    let listing = format!(
        r#"{{"links": [{}, {}], "has_more": false}}"#,
        listed_link("folder", "Photos", "/photos"),
        listed_link("file", "A.jpg", "/photos/a.jpg")
    );
    let (api, server) = serve_replies(vec![conflict(ALREADY_EXISTS_BARE), ok_json(&listing)]).await;
    let link = client(api, dead_url().await)
        .shared_link_for(&token(), "/Photos/A.jpg")
        .await
        .unwrap();
    assert_eq!(link.url(), "https://www.dropbox.com/scl/x/A.jpg?dl=0");
    assert!(matches!(link, SharedLinkMetadata::File(_)));
    let seen = server.await.unwrap();
    assert_eq!(
        seen[1].request_line,
        "POST /2/sharing/list_shared_links HTTP/1.1"
    );
    assert_eq!(
        seen[1].json_body(),
        json!({"path": "/Photos/A.jpg", "direct_only": true})
    );

    // Only other items' links: the original error.
    let listing = format!(
        r#"{{"links": [{}], "has_more": false}}"#,
        listed_link("folder", "Photos", "/photos")
    );
    let (api, _server) =
        serve_replies(vec![conflict(ALREADY_EXISTS_BARE), ok_json(&listing)]).await;
    let e = client(api, dead_url().await)
        .shared_link_for(&token(), "/Photos/A.jpg")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(
                None
            ))
        ),
        "{e:?}"
    );

    // The item went away in between: that is what is reported.
    let (api, _server) = serve_replies(vec![
        conflict(ALREADY_EXISTS_BARE),
        conflict(r#"{"error_summary": "path/not_found/", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#),
    ])
    .await;
    let e = client(api, dead_url().await)
        .shared_link_for(&token(), "/Photos/A.jpg")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::Path(
                LookupError::NotFound
            ))
        ),
        "{e:?}"
    );

    // A transient failure of the listing stays transient.
    let (api, _server) = serve_replies(vec![
        conflict(ALREADY_EXISTS_BARE),
        response("503 Service Unavailable", &[], ""),
    ])
    .await;
    let e = client(api, dead_url().await)
        .shared_link_for(&token(), "/Photos/A.jpg")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Server { status: 503 }), "{e:?}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn shared_link_for_returns_other_errors_without_listing() {
    let (api, server) = serve_replies(vec![conflict(
        r#"{"error_summary": "settings_error/not_authorized/", "error": {".tag": "settings_error", "settings_error": {".tag": "not_authorized"}}}"#,
    )])
    .await;
    let e = client(api, dead_url().await)
        .shared_link_for(&token(), "/a.jpg")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::SettingsError(
                SharedLinkSettingsError::NotAuthorized
            ))
        ),
        "{e:?}"
    );
    assert!(!shown(&e).contains(TOKEN));
    assert_eq!(server.await.unwrap().len(), 1);
}

#[test]
fn route_urls_keep_a_base_path() {
    let base = Url::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        route_url(&base, "2/files/upload").as_str(),
        "http://127.0.0.1:8080/2/files/upload"
    );
    let prefixed = Url::parse("http://127.0.0.1:8080/dropbox/").unwrap();
    assert_eq!(
        route_url(&prefixed, "oauth2/token").as_str(),
        "http://127.0.0.1:8080/dropbox/oauth2/token"
    );
    let real = Endpoints::default();
    assert_eq!(
        route_url(&real.api, "oauth2/token").as_str(),
        "https://api.dropboxapi.com/oauth2/token"
    );
    assert_eq!(
        route_url(&real.content, "2/files/upload_session/append_v2").as_str(),
        "https://content.dropboxapi.com/2/files/upload_session/append_v2"
    );
}

#[test]
fn ca_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let options = |ca: &Path| ClientOptions {
        ca_file: Some(ca.to_owned()),
        ..ClientOptions::default()
    };
    let e = Client::new(options(&missing)).unwrap_err();
    assert!(matches!(e, BuildError::CaFileRead { .. }));
    assert!(e.to_string().contains("missing-ca.pem"), "{e}");

    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let e = Client::new(options(&garbage)).unwrap_err();
    assert!(e.to_string().contains("garbage-ca.pem"), "{e}");

    let ftp = ClientOptions {
        endpoints: Endpoints {
            api: Url::parse("ftp://example.com").unwrap(),
            ..Endpoints::default()
        },
        ..ClientOptions::default()
    };
    assert!(matches!(
        Client::new(ftp).unwrap_err(),
        BuildError::Endpoint { which: "api", .. }
    ));
}

#[cfg(feature = "emulator")]
mod emulator;

#[test]
fn nul_characters_from_the_network_never_reach_a_string() {
    let body = Bytes::from_static(br#"{"error_summary": "a\u0000b \\u0000 c\u0000"}"#);
    let clean = super::neutralise_nul(body);
    let value: serde_json::Value = serde_json::from_slice(&clean).unwrap();
    // The escaped backslash stays text; the two real NULs become U+FFFD.
    assert_eq!(value["error_summary"], "a\u{fffd}b \\u0000 c\u{fffd}");
    let plain = Bytes::from_static(br#"{"a": "b"}"#);
    assert_eq!(super::neutralise_nul(plain.clone()), plain);
}

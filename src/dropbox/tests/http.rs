//! What every route shares on the wire: Void arguments, status mapping, Retry-After, transport
//! failures and timeouts, the token header, base URLs, the CA file, NUL characters.

use super::*;
use crate::dropbox::fixtures::FILE_METADATA;

/// How an upload of one byte to `/a.jpg` fails when the content host answers `then`.
async fn upload_answered(then: Then) -> Error<UploadError> {
    let (content, _server) = serve_once(then).await;
    let arg = UploadArg {
        commit: CommitInfo::new("/a.jpg"),
        content_hash: None,
    };
    client(dead_url().await, content)
        .upload(&token(), &arg, Bytes::from_static(b"x"), None)
        .await
        .unwrap_err()
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
    let e = upload_answered(Then::Reply(response(
        "429 Too Many Requests",
        &[("Content-Type", "text/plain"), ("Retry-After", "2")],
        "Too many requests",
    )))
    .await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert!(e.is_transient());
}

/// A 429 holds back the client's next request from the moment its head arrives, not only once
/// its body has been read: a request leaving in between would go out after the client had
/// the 429 (on the connection the 429 just freed, with a pooled client), sooner than its
/// Retry-After (ARCHITECTURE.md, invariant 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_back_the_next_request_from_its_head_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (head_written, head_out) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        // The first request: a 429 whose body never ends while the test runs.
        let (mut first, _) = listener.accept().await.unwrap();
        read_head(&mut first).await;
        first
            .write_all(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\
                  Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nToo many",
            )
            .await
            .unwrap();
        let written = Instant::now();
        head_written.send(()).unwrap();
        // The next request, on a connection of its own.
        let (mut second, _) = listener.accept().await.unwrap();
        read_head(&mut second).await;
        let arrived = Instant::now();
        second
            .write_all(&response(
                "200 OK",
                &[("Content-Type", "application/json")],
                r#"{"used": 1, "allocation": {".tag": "individual", "allocated": 2}}"#,
            ))
            .await
            .unwrap();
        drop(first);
        arrived - written
    });
    let client = client(api, dead_url().await);
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.get_current_account(&token()).await }
    });
    head_out.await.unwrap();
    // The client has the 429's head; its body is still to come.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.inner.gate.pending().is_none() {
        assert!(
            Instant::now() < deadline,
            "the 429's head arrived, yet the next request would leave at once"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = client.get_space_usage(&token()).await;
    let after = server.await.unwrap();
    assert!(
        after >= Duration::from_secs(1),
        "the next request arrived {after:?} after the 429, sooner than its Retry-After"
    );
    first.abort();
}

#[tokio::test]
async fn server_error_with_html_body() {
    let html = "<html><head><title>503</title></head><body>Service Unavailable</body></html>";
    let e = upload_answered(Then::Reply(response(
        "503 Service Unavailable",
        &[("Content-Type", "text/html")],
        html,
    )))
    .await;
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
async fn a_token_that_is_no_header_value_is_refused_before_sending() {
    let client = client(dead_url().await, dead_url().await);
    let bad = Secret::new("sl.bad\ntoken");
    let e = client.get_space_usage(&bad).await.unwrap_err();
    assert!(matches!(e, Error::BadInput(_)), "{e:?}");
    assert!(!shown(&e).contains("sl.bad"));
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

//! The client on the wire: each test starts a small HTTP server on 127.0.0.1 that records the
//! raw requests and answers with canned bytes, then checks both the requests and the result.
//! The shared-link calls against the test kit's emulator are in `testkit/tests/client.rs`. The
//! tests are grouped as the client is: `files`, `sharing`, `oauth`, and `http` for what every route shares.

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

    /// The body as `application/x-www-form-urlencoded` pairs, in order.
    fn form_body(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
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

mod files;
mod http;
mod oauth;
mod sharing;

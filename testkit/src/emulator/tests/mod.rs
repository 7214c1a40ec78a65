//! End-to-end tests: a real emulator on 127.0.0.1 with a temporary root, driven over HTTP with
//! reqwest, asserting the exact wire shapes the official SDKs depend on. One file per surface.

mod append_batch;
mod auth;
mod commits;
mod faults;
mod metadata;
mod network;
mod persistence;
mod sessions;
mod sharing;
mod upload;

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::{Emulator, EmulatorConfig};
use dbxport::dropbox::content_hash::content_hash;

/// A started emulator with its root and a client that neither retries nor follows redirects.
pub(super) struct Harness {
    pub(super) emu: Emulator,
    pub(super) dir: tempfile::TempDir,
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(super) async fn start() -> Harness {
    start_with(None).await
}

pub(super) async fn start_with(app_key: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(EmulatorConfig {
        root: dir.path().join("root"),
        port: 0,
        access_token: None,
        app_key: app_key.map(str::to_owned),
    })
    .await
    .expect("start");
    let base = emu.base_url();
    let token = emu.access_token();
    Harness {
        emu,
        dir,
        http: client(),
        base,
        token,
    }
}

/// A response taken apart: status, exact Content-Type, body bytes, and headers.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii content type").to_owned())
            .unwrap_or_default();
        let body = response.bytes().await.expect("body").to_vec();
        Answer {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A 200 with a JSON result: Content-Type exactly `application/json`.
    pub(super) fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.content_type, "application/json");
        assert!(self.headers.contains_key("x-dropbox-request-id"));
        self.json()
    }

    /// A 409 (or 401): the envelope, Content-Type exactly `application/json`, the summary
    /// starting with `summary` and followed by 0–3 dots. Returns `error`.
    pub(super) fn route_error(&self, status: u16, summary: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type, "application/json");
        assert!(self.headers.contains_key("x-dropbox-request-id"));
        let body = self.json();
        let got = body["error_summary"].as_str().expect("error_summary");
        let dots = got
            .strip_prefix(summary)
            .unwrap_or_else(|| panic!("summary {got:?} does not start with {summary:?}"));
        assert!(
            dots.len() <= 3 && dots.bytes().all(|b| b == b'.'),
            "{got:?}"
        );
        body["error"].clone()
    }

    /// A 400 plain-text answer.
    pub(super) fn bad_request(&self) -> String {
        assert_eq!(self.status, 400, "{}", self.text());
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
        self.text()
    }
}

/// JSON made header-safe the way the Python SDK does: every non-ASCII character (and DEL) as
/// `\uXXXX`, astral characters as surrogate pairs.
pub(super) fn header_safe(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl Harness {
    pub(super) fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    /// An RPC call with a JSON argument.
    pub(super) async fn rpc(&self, route: &str, arg: Value) -> Answer {
        let response = self
            .http
            .post(self.url(route))
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/json")
            .body(arg.to_string())
            .send()
            .await
            .expect("send");
        Answer::of(response).await
    }

    /// An upload-style call; `arg` goes in `Dropbox-API-Arg` header-safe.
    pub(super) async fn content(&self, route: &str, arg: Value, body: Vec<u8>) -> Answer {
        let response = self
            .content_request(route, &header_safe(&arg), body)
            .send()
            .await
            .expect("send");
        Answer::of(response).await
    }

    pub(super) fn content_request(
        &self,
        route: &str,
        arg: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(route))
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Dropbox-API-Arg", arg)
            .body(body)
    }

    /// `files/upload` in `add` mode; asserts success and returns the metadata.
    pub(super) async fn upload(&self, path: &str, data: &[u8]) -> Value {
        self.upload_with(json!({ "path": path }), data).await.ok()
    }

    pub(super) async fn upload_with(&self, arg: Value, data: &[u8]) -> Answer {
        self.content("/2/files/upload", arg, data.to_vec()).await
    }

    pub(super) async fn metadata(&self, path: &str) -> Answer {
        self.rpc("/2/files/get_metadata", json!({ "path": path }))
            .await
    }

    /// A started sequential session.
    pub(super) async fn session(&self, data: &[u8], close: bool) -> String {
        let answer = self
            .content(
                "/2/files/upload_session/start",
                json!({ "close": close }),
                data.to_vec(),
            )
            .await;
        answer.ok()["session_id"]
            .as_str()
            .expect("session_id")
            .to_owned()
    }

    /// The stored file at `path_lower`, if any.
    pub(super) fn stored(&self, path_lower: &str) -> Option<super::StoredFile> {
        self.emu
            .files()
            .into_iter()
            .find(|f| f.path_lower == path_lower)
    }
}

/// Polls `condition` every few milliseconds until it holds, failing after a deadline.
pub(super) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Deterministic test bytes: byte i = (i * 7 + seed) mod 251.
pub(super) fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed as usize) % 251) as u8)
        .collect()
}

/// Asserts the FileMetadata fields and shapes; `tagged` says whether `.tag: file` is expected.
pub(super) fn assert_file_metadata(m: &Value, path_display: &str, data: &[u8], tagged: bool) {
    if tagged {
        assert_eq!(m[".tag"], "file", "{m}");
    } else {
        assert!(m.get(".tag").is_none(), "unexpected .tag in {m}");
    }
    assert_eq!(m["path_display"], path_display, "{m}");
    assert_eq!(m["path_lower"], path_display.to_lowercase());
    assert_eq!(
        m["name"],
        path_display.rsplit('/').next().unwrap_or_default()
    );
    assert_eq!(m["size"], data.len() as u64);
    assert_eq!(m["content_hash"], content_hash(data));
    assert_eq!(m["is_downloadable"], true);
    let id = m["id"].as_str().expect("id");
    assert!(id.starts_with("id:") && id.len() == 25, "{id}");
    let rev = m["rev"].as_str().expect("rev");
    assert_eq!(rev.len(), 31);
    assert!(
        rev.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    for key in ["client_modified", "server_modified"] {
        let ts = m[key].as_str().expect("timestamp");
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }
}

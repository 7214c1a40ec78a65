//! The HTTP side of every Dropbox call, for all routes alike: building the request (the RPC
//! JSON body, or the upload argument in `Dropbox-API-Arg` and the bytes as the body, or the
//! token endpoint's form), attaching the access token, waiting out a pending Retry-After
//! (`retry_after`), reading the reply within the progress timeout and up to a size cap, and
//! turning it into the route's result or an [`Error`] by status (`status`).
//!
//! Route modules (`files::*`, `sharing`, `users`, `auth`, `oauth`) call [`Client::rpc`],
//! [`Client::rpc_with`], [`Client::upload_route`] and [`Client::token_request`]; nothing else in
//! the client touches reqwest for a call. The token itself is given per call: refreshing it is
//! the caller's (`credentials` refreshes it and sends once more when a call ends in
//! `Auth(ExpiredAccessToken)`).

pub mod arg;
pub(super) mod body;
pub mod limit;
pub(super) mod retry_after;
pub(crate) mod status;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use url::Url;

use super::Client;
use super::error::{Error, RouteError};
use super::oauth::{OAuthError, TokenResponse, decode_token_response};
use crate::secret::Secret;
use arg::header_safe_json;
use body::{Activity, upload_body};
use status::{decode_error, describe_json_error};

/// Called with the cumulative number of bytes of an upload body handed to the connection.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Dropbox's two hosts: RPC routes (JSON bodies) on the api host, uploads (bytes, the argument
/// in `Dropbox-API-Arg`) on the content host.
enum Host {
    Api,
    Content,
}

impl Client {
    /// A token endpoint call: the form as the body, no access token (the form holds what
    /// proves the caller).
    pub(super) async fn token_request(
        &self,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<TokenResponse, OAuthError> {
        let url = route_url(&self.inner.endpoints.api, "oauth2/token");
        self.inner.gate.wait().await;
        let response = self
            .inner
            .rpc
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| OAuthError::Transport(transport(e)))?;
        let reply = self
            .read_whole(response)
            .await
            .map_err(OAuthError::Transport)?;
        tracing::debug!(
            route = "oauth2/token",
            status = reply.status,
            "Dropbox replied"
        );
        let result = decode_token_response(
            reply.status,
            reply.retry_after.as_deref(),
            &reply.body,
            secrets,
        );
        if let Err(OAuthError::RateLimited { retry_after }) = &result {
            self.inner.gate.defer(*retry_after);
        }
        result
    }

    pub(super) async fn rpc<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
    ) -> Result<T, Error<E>>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
        E: RouteError,
    {
        self.rpc_with(token, route, arg, parse_json).await
    }

    /// An RPC call: the argument as a JSON body (a Void argument is `null`, which Dropbox
    /// accepts with `application/json` as the SDKs send it).
    pub(super) async fn rpc_with<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>>
    where
        A: Serialize + ?Sized,
        E: RouteError,
    {
        let request = self.post(Host::Api, route, token)?;
        let body = serde_json::to_vec(arg).expect("Dropbox argument types always serialize");
        let request = request.body(body);
        self.inner.gate.wait().await;
        let response = request
            .send()
            .await
            .map_err(|e| Error::Transport(transport(e)))?;
        let reply = self.read_whole(response).await.map_err(Error::Transport)?;
        self.noted(reply.into_result(route, token, parse))
    }

    /// The start of every API call: a POST of `route` on `host`, with the access token and the
    /// content type of that host's bodies.
    fn post<E>(
        &self,
        host: Host,
        route: &str,
        token: &Secret,
    ) -> Result<reqwest::RequestBuilder, Error<E>> {
        let (pool, base, content_type) = match host {
            Host::Api => (
                &self.inner.rpc,
                &self.inner.endpoints.api,
                "application/json",
            ),
            Host::Content => (
                &self.inner.content,
                &self.inner.endpoints.content,
                "application/octet-stream",
            ),
        };
        Ok(pool
            .post(route_url(base, route))
            .header(AUTHORIZATION, bearer(token)?)
            .header(CONTENT_TYPE, content_type))
    }

    /// A route's result, after a 429 in it has set the wait for every later request.
    fn noted<T, E: RouteError>(&self, result: Result<T, Error<E>>) -> Result<T, Error<E>> {
        if let Err(Error::RateLimited { retry_after, .. }) = &result {
            self.inner.gate.defer(*retry_after);
        }
        result
    }

    /// The answer to any call, within `read_timeout` as a whole: reqwest's read
    /// timeout is per read, so a server trickling a byte now and then would hold the call
    /// (and its slot) forever.
    async fn read_whole(&self, response: reqwest::Response) -> Result<Reply, String> {
        self.held_from_the_head(&response);
        let limit = self.inner.read_timeout;
        tokio::time::timeout(limit, read_reply(response))
            .await
            .map_err(|_| stalled_message(limit))?
    }

    /// A 429 holds back every other request from its head on, before its body is read: the
    /// connection it came on is free again once the body is in, and a request leaving between
    /// then and the decoded answer would go out after the client had the 429 (often on that
    /// very connection), sooner than its Retry-After (ARCHITECTURE.md, invariant 6). The
    /// header's Retry-After, else one second; the decoded answer may say longer (`noted`), and
    /// a shorter wait never shortens this one.
    fn held_from_the_head(&self, response: &reqwest::Response) {
        if response.status().as_u16() != 429 {
            return;
        }
        let seconds = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        self.inner.gate.defer(Duration::from_secs(seconds));
    }

    /// An upload-style call: the argument in `Dropbox-API-Arg`, the bytes as the body.
    pub(super) async fn upload_route<A, T, E>(
        &self,
        token: &Secret,
        route: &'static str,
        arg: &A,
        body: Bytes,
        progress: Option<Progress>,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>>
    where
        A: Serialize,
        E: RouteError,
    {
        let request = self.post(Host::Content, route, token)?;
        // Printable ASCII by construction, so this cannot fail.
        let arg = HeaderValue::from_str(&header_safe_json(arg))
            .map_err(|_| Error::BadInput("the upload argument is not a valid header".into()))?;
        let request = request
            .header("Dropbox-API-Arg", arg)
            .header(CONTENT_LENGTH, body.len());
        self.inner.gate.wait().await;
        let reply = self
            .send_upload(request, body, progress)
            .await
            .map_err(Error::Transport)?;
        self.noted(reply.into_result(route, token, parse))
    }

    /// Sends an upload and reads the reply, failing if nothing moves for `read_timeout`: no
    /// slice of the body taken by the connection, or no reply after the whole body.
    async fn send_upload(
        &self,
        request: reqwest::RequestBuilder,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<Reply, String> {
        let limit = self.inner.read_timeout;
        let activity = Arc::new(Activity::new());
        let request = request.body(upload_body(
            body,
            progress,
            activity.clone(),
            self.inner.limit.clone(),
        ));
        let response = tokio::select! {
            response = request.send() => response.map_err(transport)?,
            () = activity.stalled(limit) => return Err(stalled_message(limit)),
        };
        self.read_whole(response).await
    }
}

/// A response, read.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) retry_after: Option<String>,
    pub(super) body: Bytes,
}

impl Reply {
    pub(super) fn into_result<T, E: RouteError>(
        self,
        route: &str,
        token: &Secret,
        parse: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T, Error<E>> {
        tracing::debug!(route, status = self.status, "Dropbox replied");
        if (200..300).contains(&self.status) {
            parse(&self.body).map_err(|e| Error::Decode {
                status: self.status,
                message: describe_json_error(&e),
            })
        } else {
            Err(decode_error(
                self.status,
                self.retry_after.as_deref(),
                &self.body,
                &[token.expose()],
            ))
        }
    }
}

async fn read_reply(response: reqwest::Response) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = if body_is_read(status) {
        read_capped(response).await?
    } else {
        Bytes::new()
    };
    Ok(Reply {
        status,
        retry_after,
        body: neutralise_nul(body),
    })
}

/// A 5xx body is not used (it may be a proxy's HTML page), so it is not read.
pub(super) fn body_is_read(status: u16) -> bool {
    !(500..600).contains(&status)
}

/// The most of one answer that is read. The largest real ones are `list_folder` pages of 2000
/// entries (a few MB); anything past this is a broken or hostile server, and reading on would
/// let it take the daemon's memory.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// The body, chunk by chunk, up to [`MAX_REPLY_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Bytes, String> {
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_REPLY_BYTES as u64 {
        return Err(format!(
            "Dropbox's answer would be {declared} bytes, more than the {MAX_REPLY_BYTES} read"
        ));
    }
    let mut body = bytes::BytesMut::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!(
                "Dropbox's answer is longer than the {MAX_REPLY_BYTES} bytes read; cut off"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// JSON may carry a NUL character as `\u0000`; a D-Bus string cannot, and the bus drops a
/// connection that sends one. Text from the network reaches callers (error messages, names),
/// so NULs become U+FFFD here, before anything is parsed.
pub(super) fn neutralise_nul(body: Bytes) -> Bytes {
    const NUL: &[u8] = b"\\u0000";
    if !body.windows(NUL.len()).any(|w| w == NUL) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            // Every backslash in valid JSON starts a two-character escape (or \uXXXX).
            if body[i + 1..].starts_with(b"u0000") {
                out.extend_from_slice(b"\\ufffd");
                i += 6;
            } else {
                out.extend_from_slice(&body[i..i + 2]);
                i += 2;
            }
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(body)
}

/// A Void result is `null`; an empty body carries no less information, so it is accepted too.
pub(super) fn parse_void(body: &[u8]) -> serde_json::Result<()> {
    if body.trim_ascii().is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<IgnoredAny>(body).map(drop)
}

fn bearer<E>(token: &Secret) -> Result<HeaderValue, Error<E>> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        Error::BadInput("the access token contains characters not allowed in a header".into())
    })?;
    // Keeps it out of HTTP/2 header compression tables and out of `Debug` output.
    value.set_sensitive(true);
    Ok(value)
}

/// `base` + `route`, keeping any path prefix `base` has.
pub(super) fn route_url(base: &Url, route: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/{}", base.path().trim_end_matches('/'), route));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// A transport failure in words: reqwest's message without the URL, and its causes (which
/// carry the useful part, e.g. "connection refused"). Request headers are never part of it.
fn transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error_chain(&error);
    if error.is_timeout() && !message.contains("timed out") {
        message.push_str(" (timed out)");
    }
    message
}

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest sometimes repeat their cause's text in their own.
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn stalled_message(limit: Duration) -> String {
    format!(
        "no progress for {} (timed out)",
        humantime::format_duration(limit)
    )
}

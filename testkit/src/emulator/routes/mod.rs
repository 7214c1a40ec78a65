//! Request dispatch: faults first (they decide whether a request is processed at all), then
//! the route table, then what every API route shares: POST only, the bearer token, the
//! Content-Type rules of its style, and its argument from the `Dropbox-API-Arg` header or the
//! JSON body. The handlers themselves live in one file per route family.
//!
//! The network model (`network`, `throttle`) hooks in here and nowhere else: [`handle`] paces
//! every body through the uplink, notes early requests, delays each answer (the commit's hold,
//! then the latency) and tells the throttle what each 429 said; [`api`] applies the rate limit
//! once the token is known; [`commit_lock`] takes the namespace lock once a commit has arrived
//! whole (in [`api`] for RPC routes, in [`Call::spool`] for upload-style ones), so no route
//! handler knows about it.

mod batch;
mod control;
mod files;
mod oauth;
mod sharing;
mod upload;
mod users;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::body::Counted;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::Value;

use super::args::{self, FieldError, Fields, Source};
use super::body::{self, BodyError};
use super::faults::Fault;
use super::server::{Connection, Work};
use super::throttle::{COMMIT_ROUTES, CommitPermit};
use super::wire::{self, ApiError, Body, Reply};
use super::{LogIndex, Shared, auth, lock};

/// The connection is to be dropped without an answer. Returned to hyper as the service's
/// error, which makes it close the connection without writing anything.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
pub(crate) struct Dropped;

/// How a handler can end other than with a result.
pub(crate) enum Failure {
    Api(ApiError),
    /// The client vanished, or a fault wants the connection cut.
    Dropped,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

/// Largest JSON argument body accepted (finish_batch_v2 with 1000 entries is far below this).
const MAX_RPC_BODY: usize = 16 * 1024 * 1024;

/// How a route takes its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Raw body; argument in `Dropbox-API-Arg`.
    Upload,
    /// JSON argument in the body.
    Rpc,
    /// Void argument: no body, or `null`.
    Void,
}

const ROUTES: &[(&str, Style)] = &[
    ("/2/files/upload", Style::Upload),
    ("/2/files/upload_session/start", Style::Upload),
    ("/2/files/upload_session/append_v2", Style::Upload),
    ("/2/files/upload_session/finish", Style::Upload),
    ("/2/files/upload_session/start_batch", Style::Rpc),
    ("/2/files/upload_session/append_batch", Style::Upload),
    ("/2/files/upload_session/finish_batch_v2", Style::Rpc),
    ("/2/files/list_folder", Style::Rpc),
    ("/2/files/list_folder/continue", Style::Rpc),
    ("/2/files/create_folder_v2", Style::Rpc),
    ("/2/files/get_metadata", Style::Rpc),
    ("/2/files/delete_v2", Style::Rpc),
    ("/2/sharing/create_shared_link_with_settings", Style::Rpc),
    ("/2/sharing/list_shared_links", Style::Rpc),
    ("/2/users/get_current_account", Style::Void),
    ("/2/users/get_space_usage", Style::Void),
    ("/2/auth/token/revoke", Style::Void),
];

/// One API call, after the checks every route shares.
pub(crate) struct Call<'a> {
    pub(crate) shared: &'a Shared,
    /// The route as Dropbox names it in 400 texts, e.g. `files/upload`.
    pub(crate) route: &'static str,
    pub(crate) token: String,
    pub(crate) arg: Value,
    pub(crate) source: Source,
    /// The raw body of upload-style routes.
    pub(crate) body: Option<Counted>,
    /// A commit route: the files it writes, until it has taken the namespace lock.
    commit: Option<u32>,
    /// The namespace lock, held while the handler runs.
    permit: Option<CommitPermit<'a>>,
    /// Where the lock's hold is noted for the answer's delay.
    ticket: Option<Arc<Ticket>>,
    /// This request's entry in the request log.
    pub(crate) log: Option<LogIndex>,
    /// Per mille of `finish_batch_v2` entries to refuse (0 unless a fault asks for it).
    pub(crate) entry_contention: u32,
    /// Per mille of `append_batch` entries to answer `incorrect_offset` (0 unless a fault asks
    /// for it).
    pub(crate) entry_incorrect_offset: u32,
}

/// What dispatch must know of a request after its handler: until when a commit holds the
/// namespace lock (its answer goes out after that).
#[derive(Default)]
pub(crate) struct Ticket {
    hold: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl<'a> Call<'a> {
    /// The argument as an object to read fields from.
    pub(crate) fn fields(&self) -> Result<Fields<'_>, ApiError> {
        Fields::of(&self.arg).map_err(|e| self.bad(e))
    }

    /// The 400 for a field problem.
    pub(crate) fn bad(&self, error: FieldError) -> ApiError {
        error.into_api(self.route, self.source)
    }

    /// Streams the upload body to disk within the body limit. `payload_too_large` is the
    /// same void member in every upload route's error union.
    pub(crate) async fn spool(&mut self) -> Result<body::Spooled, Failure> {
        let Some(incoming) = self.body.take() else {
            return Err(ApiError::Internal("the body was already read".into()).into());
        };
        let limit = self
            .shared
            .limits
            .max_body
            .load(std::sync::atomic::Ordering::Relaxed);
        let spooled = match body::spool(incoming, self.shared.store.tmp_dir(), limit).await {
            Ok(spooled) => spooled,
            Err(BodyError::TooLarge) => return Err(ApiError::tag("payload_too_large").into()),
            Err(BodyError::Gone) => return Err(Failure::Dropped),
            Err(BodyError::Io(e)) => {
                return Err(ApiError::io("storing the request body", e).into());
            }
        };
        // A commit's body has arrived whole: now it commits, or meets the lock held.
        self.take_commit_lock()?;
        Ok(spooled)
    }

    /// Takes the namespace lock if this is an upload-style commit whose body has arrived
    /// ([`commit_lock`]). Once per request.
    pub(crate) fn take_commit_lock(&mut self) -> Result<(), Failure> {
        let Some(entries) = self.commit.take() else {
            return Ok(());
        };
        self.permit = commit_lock(self.shared, entries, self.ticket.as_deref())?;
        Ok(())
    }
}

/// The namespace lock for a commit writing `entries` files, if the model has one, its hold
/// noted on the request's ticket; 429 `too_many_write_operations` with `Retry-After: 1` while
/// another commit holds it (`throttle`).
fn commit_lock<'a>(
    shared: &'a Shared,
    entries: u32,
    ticket: Option<&Ticket>,
) -> Result<Option<CommitPermit<'a>>, Failure> {
    let Some(config) = shared.network.model().commit_lock else {
        return Ok(None);
    };
    let Some(permit) = shared.throttle.commit(config, entries) else {
        return Err(ApiError::TooManyWriteOperations(1).into());
    };
    if let Some(ticket) = ticket {
        *lock(&ticket.hold) = Some(permit.until);
    }
    Ok(Some(permit))
}

/// The files a commit route writes, for the lock's hold: each `finish_batch_v2` entry, one
/// for every other commit route; `None` for routes that are not commits.
fn commit_entries(route: &str, arg: &Value) -> Option<u32> {
    if !COMMIT_ROUTES.contains(&route) {
        return None;
    }
    if route == "files/upload_session/finish_batch_v2" {
        let entries = arg
            .get("entries")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        return Some(u32::try_from(entries).unwrap_or(u32::MAX));
    }
    Some(1)
}

/// The service function: every request on every connection comes through here.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    work: Work,
    request: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let route = request.uri().path().to_owned();
    // The control routes are the emulator's own, not Dropbox's: no faults, no network model.
    let dropbox = !route.starts_with("/__emulator/");
    let connection = request.extensions().get::<Connection>().map_or(0, |c| c.0);
    let token = bearer(request.headers())
        .filter(|_| dropbox)
        .map(str::to_owned);
    let early = token.as_deref().and_then(|token| {
        let commit = COMMIT_ROUTES.contains(&route.trim_start_matches("/2/"));
        shared.throttle.arrive(token, commit, connection)
    });

    let fault = if route.starts_with("/__emulator/") {
        None
    } else {
        shared.faults.take(&route)
    };
    let (session, pieces) = named_sessions(request.headers());
    let (index, body_bytes) = shared.log.arrive(&route, fault.as_ref(), session, pieces);
    let (mut parts, incoming) = request.into_parts();
    parts.extensions.insert(LogIndex(index));

    if let Some(by) = early {
        shared.log.early(index, by);
    }
    let ticket = Arc::new(Ticket::default());
    parts.extensions.insert(ticket.clone());
    let mut body = Counted::new(incoming, body_bytes);
    if dropbox {
        body = body.paced(shared.clone());
    }
    let request = Request::from_parts(parts, body);
    tracing::debug!(
        route,
        fault = fault.as_ref().map(Fault::name),
        "emulator: request"
    );
    // Carried out to the end in a task of its own, as a server does: hyper drops this future
    // when the client goes away, and a request whose body had arrived would otherwise stop
    // part-way (an `append_batch` between two entries, a piece stored but not recorded). A
    // client that leaves loses the answer only; one that leaves mid-body has nothing applied,
    // since every route reads its whole body before acting.
    let carried = work.tasks.spawn({
        let shared = shared.clone();
        async move {
            let outcome = async {
                match fault {
                    None => serve(&shared, request).await,
                    Some(fault) => faulted(&shared, request, fault).await,
                }
            };
            tokio::select! {
                outcome = outcome => outcome,
                _ = work.abort.cancelled() => Err(Dropped),
            }
        }
    });
    let outcome = carried.await.unwrap_or(Err(Dropped));
    if dropbox {
        // The commit's hold on the namespace lock, then the way back.
        let hold = *lock(&ticket.hold);
        let latency = shared.network.latency();
        if hold.is_some() || !latency.is_zero() {
            let now = tokio::time::Instant::now();
            tokio::time::sleep_until(hold.map_or(now, |hold| hold.max(now)) + latency).await;
            shared.log.delayed(index, latency);
        }
    }
    match outcome {
        Ok(mut response) => {
            if let Ok(id) = HeaderValue::from_str(&wire::request_id()) {
                response.headers_mut().insert(wire::REQUEST_ID, id);
            }
            if let (Some(token), Some(throttled)) =
                (&token, response.extensions().get::<wire::Throttled>())
            {
                shared
                    .throttle
                    .told(token, throttled.refusal, throttled.retry_after, connection);
            }
            let status = response.status().as_u16();
            shared.log.answered(index, status);
            tracing::debug!(route, status, "emulator: answered");
            Ok(response)
        }
        Err(Dropped) => {
            tracing::debug!(route, "emulator: dropped the connection");
            Err(Dropped)
        }
    }
}

/// The share (per mille) of `finish_batch_v2` entries to refuse with write contention; set
/// in the request's extensions by [`Fault::EntryWriteContention`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryContention(pub(crate) u32);

/// The share (per mille) of `append_batch` entries to answer `incorrect_offset`; set in the
/// request's extensions by [`Fault::EntryIncorrectOffset`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryIncorrectOffset(pub(crate) u32);

/// The sessions a request's `Dropbox-API-Arg` names, for the request log: the
/// `cursor.session_id` of a single-session route, or each entry of `append_batch`'s
/// `entries` (whatever the route: a malformed argument is refused later, by the route).
fn named_sessions(headers: &HeaderMap) -> (Option<String>, Vec<super::RequestPiece>) {
    let Some(arg) = headers
        .get("dropbox-api-arg")
        .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
    else {
        return (None, Vec::new());
    };
    let session = |cursor: &Value| Some(cursor.get("session_id")?.as_str()?.to_owned());
    let single = arg.get("cursor").and_then(session);
    let pieces = arg
        .get("entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    let cursor = entry.get("cursor")?;
                    Some(super::RequestPiece {
                        session: session(cursor)?,
                        offset: cursor.get("offset")?.as_u64()?,
                        length: entry.get("length")?.as_u64()?,
                        close: entry.get("close").and_then(Value::as_bool).unwrap_or(false),
                        applied: false,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    (single, pieces)
}

/// Applies an armed fault. Faults that answer instead of the route first read the body, so the
/// client is not cut off mid-send (the answer then reaches it reliably).
async fn faulted(
    shared: &Shared,
    request: Request<Counted>,
    fault: Fault,
) -> Result<Response<Body>, Dropped> {
    match fault {
        Fault::ServerError { status } => {
            let variant = shared.faults.next_server_error();
            refuse(request, ApiError::ServerError { status, variant }).await
        }
        Fault::TooManyRequests { retry_after } => {
            refuse(request, ApiError::TooManyRequests(retry_after)).await
        }
        Fault::TooManyWriteOperations { retry_after } => {
            refuse(request, ApiError::TooManyWriteOperations(retry_after)).await
        }
        Fault::ExpireToken => {
            if let Some(token) = bearer(request.headers()) {
                shared.auth.expire(token);
                shared.auth.flush().await;
            }
            refuse(request, ApiError::Auth("expired_access_token")).await
        }
        Fault::ResetMidBody => {
            let announced = request
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            if announced != Some(0) {
                body::read_part(request.into_body(), announced).await;
            }
            Err(Dropped)
        }
        Fault::LoseAnswer => {
            let _ = serve(shared, request).await;
            Err(Dropped)
        }
        Fault::Delay { millis } => {
            let response = serve(shared, request).await;
            tokio::time::sleep(Duration::from_millis(millis)).await;
            response
        }
        Fault::EntryWriteContention { per_mille } => {
            let mut request = request;
            request.extensions_mut().insert(EntryContention(per_mille));
            serve(shared, request).await
        }
        Fault::EntryIncorrectOffset { per_mille } => {
            let mut request = request;
            request
                .extensions_mut()
                .insert(EntryIncorrectOffset(per_mille));
            serve(shared, request).await
        }
        Fault::TruncatedAnswer => {
            let (parts, whole) = answered(shared, request).await?;
            let half = whole.slice(..whole.len() / 2);
            Ok(Response::from_parts(parts, wire::full(half)))
        }
        Fault::CutOffAnswer => {
            let (mut parts, whole) = answered(shared, request).await?;
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(whole.len()));
            let half = whole.slice(..whole.len() / 2);
            // An error from the body makes hyper abandon the connection mid-answer.
            let frames = futures_util::stream::iter([
                Ok(Frame::data(half)),
                Err(std::io::Error::other("cut off on purpose")),
            ]);
            Ok(Response::from_parts(
                parts,
                BodyExt::boxed(StreamBody::new(frames)),
            ))
        }
        Fault::HugeAnswer { bytes } => {
            body::drain(request.into_body(), 2 * super::MAX_BODY).await;
            const CHUNK: usize = 64 * 1024;
            let blanks = Bytes::from(vec![b' '; CHUNK]);
            let chunks = bytes.div_ceil(CHUNK as u64);
            let frames = futures_util::stream::iter(0..chunks)
                .map(move |_| Ok(Frame::data(blanks.clone())))
                .chain(futures_util::stream::once(async {
                    Ok(Frame::data(Bytes::from_static(b"{}")))
                }));
            Ok(streamed(BodyExt::boxed(StreamBody::new(frames))))
        }
        Fault::EndlessAnswer { every_ms } => {
            body::drain(request.into_body(), 2 * super::MAX_BODY).await;
            let every = Duration::from_millis(every_ms.max(1));
            let frames = futures_util::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok(Frame::data(Bytes::from_static(b" "))), ()))
            });
            Ok(streamed(BodyExt::boxed(StreamBody::new(frames))))
        }
        Fault::Stall => {
            body::drain(request.into_body(), 2 * super::MAX_BODY).await;
            // Bounded, so a test that forgets the client does not leave the task forever.
            tokio::time::sleep(Duration::from_secs(600)).await;
            Err(Dropped)
        }
        Fault::WrongContentHash => {
            let (parts, whole) = answered(shared, request).await?;
            let mut value: Value = match serde_json::from_slice(&whole) {
                Ok(value) => value,
                Err(_) => return Ok(Response::from_parts(parts, wire::full(whole))),
            };
            falsify_hashes(&mut value);
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            Ok(Response::from_parts(parts, wire::full(bytes)))
        }
        Fault::UnknownErrorTag => refuse(request, ApiError::tag("future_error")).await,
    }
}

/// Serves the request and collects the whole answer, for the faults that mangle it.
async fn answered(
    shared: &Shared,
    request: Request<Counted>,
) -> Result<(hyper::http::response::Parts, Bytes), Dropped> {
    let (parts, body) = serve(shared, request).await?.into_parts();
    let whole = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    Ok((parts, whole))
}

/// A 200 JSON answer with a streamed body.
fn streamed(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(wire::JSON));
    response
}

/// Every `content_hash` in an answer, replaced by one that matches no content.
fn falsify_hashes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "content_hash" && v.is_string() {
                    *v = Value::String("0".repeat(64));
                } else {
                    falsify_hashes(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(falsify_hashes),
        _ => {}
    }
}

/// Answers `error` instead of processing the request, once its body has been read.
async fn refuse(request: Request<Counted>, error: ApiError) -> Result<Response<Body>, Dropped> {
    body::drain(request.into_body(), 2 * super::MAX_BODY).await;
    Ok(wire::error_response(error))
}

/// Routes a request to its handler.
async fn serve(shared: &Shared, request: Request<Counted>) -> Result<Response<Body>, Dropped> {
    let path = request.uri().path().to_owned();
    let result = match path.as_str() {
        p if p.starts_with("/__emulator/") => control::handle(shared, request).await,
        "/oauth2/token" | "/1/oauth2/token" => return Ok(oauth::token(shared, request).await),
        "/oauth2/authorize" | "/1/oauth2/authorize" => {
            return Ok(oauth::authorize(shared, request));
        }
        _ => match ROUTES.iter().find(|(p, _)| *p == path) {
            Some((p, style)) => api(shared, request, p, *style).await,
            None => Err(ApiError::UnknownRoute(path.trim_start_matches('/').to_owned()).into()),
        },
    };
    match result {
        Ok(reply) => Ok(wire::reply(reply)),
        Err(Failure::Api(error)) => Ok(wire::error_response(error)),
        Err(Failure::Dropped) => Err(Dropped),
    }
}

/// The checks every API route shares, then its handler.
async fn api(
    shared: &Shared,
    request: Request<Counted>,
    path: &'static str,
    style: Style,
) -> Result<Reply, Failure> {
    let route = path.trim_start_matches("/2/");
    if request.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed.into());
    }
    let token = authenticate(shared, request.headers(), route)?;
    let (parts, incoming) = request.into_parts();
    if let Some(limit) = shared.network.model().rate_limit.filter(|&limit| limit > 0)
        && let Err(retry_after) = shared.throttle.admit(&token, limit)
    {
        // Not processed; the body is read first so the client hears the answer.
        body::drain(incoming, 2 * super::MAX_BODY).await;
        return Err(ApiError::TooManyRequests(retry_after).into());
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (arg, source, body) = match style {
        Style::Upload => {
            check_upload_content_type(route, content_type.as_deref())?;
            let arg = upload_arg(route, &parts)?;
            (arg, Source::Header, Some(incoming))
        }
        Style::Rpc => {
            check_rpc_content_type(route, content_type.as_deref())?;
            let bytes = read_rpc_body(route, incoming).await?;
            (
                args::decode(route, Source::Body, &bytes)?,
                Source::Body,
                None,
            )
        }
        Style::Void => {
            let bytes = read_rpc_body(route, incoming).await?;
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                check_rpc_content_type(route, content_type.as_deref())?;
                let arg = args::decode(route, Source::Body, &bytes)?;
                if !arg.is_null() {
                    return Err(
                        args::bad_request(route, "request body: expected null, got value").into(),
                    );
                }
            }
            (Value::Null, Source::Body, None)
        }
    };
    let commit = commit_entries(route, &arg);
    let ticket = parts.extensions.get::<Arc<Ticket>>().cloned();
    // An RPC commit has arrived whole (its argument is its body): it takes the lock now; an
    // upload-style one once its body has been read (`Call::spool`).
    let (commit, permit) = match (style, commit) {
        (Style::Upload, pending) => (pending, None),
        (_, None) => (None, None),
        (_, Some(entries)) => (None, commit_lock(shared, entries, ticket.as_deref())?),
    };
    let call = Call {
        shared,
        route,
        token,
        arg,
        source,
        body,
        commit,
        permit,
        ticket,
        log: parts.extensions.get::<LogIndex>().copied(),
        entry_contention: parts.extensions.get::<EntryContention>().map_or(0, |c| c.0),
        entry_incorrect_offset: parts
            .extensions
            .get::<EntryIncorrectOffset>()
            .map_or(0, |c| c.0),
    };
    match route {
        "files/upload" => upload::upload(call).await,
        "files/upload_session/start" => upload::start(call).await,
        "files/upload_session/append_v2" => upload::append(call).await,
        "files/upload_session/finish" => upload::finish(call).await,
        "files/upload_session/start_batch" => batch::start_batch(call).await,
        "files/upload_session/append_batch" => batch::append_batch(call).await,
        "files/upload_session/finish_batch_v2" => upload::finish_batch(call).await,
        "files/list_folder" => files::list_folder(call),
        "files/list_folder/continue" => files::list_folder_continue(call),
        "files/create_folder_v2" => files::create_folder(call).await,
        "files/get_metadata" => files::get_metadata(call),
        "files/delete_v2" => files::delete(call).await,
        "sharing/create_shared_link_with_settings" => sharing::create_shared_link(call).await,
        "sharing/list_shared_links" => sharing::list_shared_links(call),
        "users/get_current_account" => users::get_current_account(call),
        "users/get_space_usage" => users::get_space_usage(call),
        "auth/token/revoke" => users::revoke(call).await,
        other => Err(ApiError::UnknownRoute(other.to_owned()).into()),
    }
}

/// The bearer token of a request, if its Authorization header has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Missing or malformed credentials are 400 texts; unknown, revoked and expired tokens 401s.
fn authenticate(shared: &Shared, headers: &HeaderMap, route: &str) -> Result<String, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(args::bad_request(
            route,
            "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\".",
        ));
    };
    let Some(token) = bearer(headers) else {
        return Err(args::bad_request(
            route,
            format_args!(
                "Invalid authorization value in HTTP header \"Authorization\": \"{}\".  Expecting \"Bearer <oauth2-access-token>\".",
                String::from_utf8_lossy(value.as_bytes())
            ),
        ));
    };
    if !auth::well_formed(token) {
        return Err(args::bad_request(
            route,
            "The given OAuth 2 access token is malformed.",
        ));
    }
    match shared.auth.check(token) {
        auth::TokenState::Valid => Ok(token.to_owned()),
        auth::TokenState::Expired => Err(ApiError::Auth("expired_access_token")),
        auth::TokenState::Invalid => Err(ApiError::Auth("invalid_access_token")),
    }
}

/// `(media type, params)` of a Content-Type, lowercased and trimmed.
fn media_type(value: &str) -> (String, Vec<String>) {
    let mut pieces = value.split(';').map(|p| p.trim().to_ascii_lowercase());
    let media = pieces.next().unwrap_or_default();
    (media, pieces.filter(|p| !p.is_empty()).collect())
}

fn is_cors_hack(media: &str, params: &[String]) -> bool {
    media == "text/plain"
        && params
            .iter()
            .any(|p| p.replace(' ', "") == "charset=dropbox-cors-hack")
}

fn check_upload_content_type(route: &str, value: Option<&str>) -> Result<(), ApiError> {
    let (media, params) = media_type(value.unwrap_or(""));
    if media == "application/octet-stream" || is_cors_hack(&media, &params) {
        return Ok(());
    }
    Err(args::bad_request(
        route,
        format_args!(
            "Bad HTTP \"Content-Type\" header: \"{}\".  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\".",
            value.unwrap_or("")
        ),
    ))
}

fn check_rpc_content_type(route: &str, value: Option<&str>) -> Result<(), ApiError> {
    let (media, params) = media_type(value.unwrap_or(""));
    let json_ok =
        media == "application/json" && params.iter().all(|p| p.replace(' ', "") == "charset=utf-8");
    if json_ok || is_cors_hack(&media, &params) {
        return Ok(());
    }
    Err(args::bad_request(
        route,
        format_args!(
            "Bad HTTP \"Content-Type\" header: \"{}\".  Expecting one of \"application/json\", \"text/plain; charset=dropbox-cors-hack\".",
            value.unwrap_or("")
        ),
    ))
}

/// The upload argument: the `Dropbox-API-Arg` header, else the `arg` URL parameter.
fn upload_arg(route: &str, parts: &hyper::http::request::Parts) -> Result<Value, ApiError> {
    if let Some(header) = parts.headers.get("dropbox-api-arg") {
        return args::decode(route, Source::Header, header.as_bytes());
    }
    let from_query = parts.uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "arg")
            .map(|(_, value)| value.into_owned())
    });
    match from_query {
        Some(arg) => args::decode(route, Source::Header, arg.as_bytes()),
        None => Err(args::bad_request(
            route,
            "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
        )),
    }
}

async fn read_rpc_body(route: &str, incoming: Counted) -> Result<bytes::Bytes, Failure> {
    match body::read_small(incoming, MAX_RPC_BODY).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::Gone) => Err(Failure::Dropped),
        Err(BodyError::TooLarge) => Err(args::bad_request(route, "request body: too large").into()),
        Err(BodyError::Io(e)) => Err(ApiError::io("reading the request body", e).into()),
    }
}

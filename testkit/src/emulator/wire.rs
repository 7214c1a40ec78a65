//! How answers look on the wire. The official SDKs are strict here: the Python SDK compares the
//! JSON `Content-Type` with `application/json` for equality, 400s are plain text, Void results
//! are the body `null`, and 401/409/429 bodies carry an `error_summary` that clients must not
//! parse (so its trailing dots vary, as on real Dropbox). Everything that builds a response goes
//! through here so those rules live in one place.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use rand::Rng;
use serde_json::{Value, json};

use super::throttle::Refusal;

/// Boxed, so that the hostile faults can stream answers that stall, never end or break off;
/// every ordinary answer is one `Full` buffer.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A whole answer body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const REQUEST_ID: &str = "x-dropbox-request-id";

/// Marks a 429 answer with its kind and Retry-After, so dispatch can tell the throttle what
/// the token was told once the answer goes out (whichever part refused: the rate limit, the
/// namespace lock or an injected fault).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throttled {
    pub(crate) refusal: Refusal,
    pub(crate) retry_after: u32,
}

/// A successful answer of an API route.
pub(crate) enum Reply {
    Json(Value),
    /// A Void result: HTTP 200 with the body `null`.
    Null,
}

/// Every way an API route can fail, each with its own envelope.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400, plain text: bad argument, bad header, bad token format.
    BadRequest(String),
    /// 401, `error` = AuthError (`invalid_access_token`, `expired_access_token`).
    Auth(&'static str),
    /// 409, `error` = the route's error union, already shaped.
    Route(Value),
    /// 409 whose summary chain must stop short of what [`error_summary`] would follow: a
    /// struct with subtypes (SharedLinkMetadata) carries a `.tag` but is not a union.
    RouteWithChain(&'static str, Value),
    /// 429 with `reason` `too_many_requests` and `retry_after`.
    TooManyRequests(u32),
    /// 429 with `reason` `too_many_write_operations`.
    TooManyWriteOperations(u32),
    /// An injected 5xx; `variant` picks the body.
    ServerError { status: u16, variant: u64 },
    /// 404 for a route the emulator does not know.
    UnknownRoute(String),
    /// 405 for anything but POST on an API route.
    MethodNotAllowed,
    /// 500 when the emulator itself failed (disk full, …); the text says what.
    Internal(String),
}

impl ApiError {
    /// A 409 whose `error` is `{".tag": tag}`.
    pub(crate) fn tag(tag: &str) -> ApiError {
        ApiError::Route(void(tag))
    }

    pub(crate) fn io(action: &str, error: std::io::Error) -> ApiError {
        ApiError::Internal(format!("emulator I/O error while {action}: {error}"))
    }
}

/// `{".tag": name}`: a void union member.
pub(crate) fn void(name: &str) -> Value {
    json!({ ".tag": name })
}

/// `{".tag": name, name: value}`: a member whose value is a union, list, scalar or a struct with
/// subtypes.
pub(crate) fn nested(name: &str, value: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert(".tag".into(), Value::String(name.into()));
    object.insert(name.into(), value);
    Value::Object(object)
}

/// `{".tag": name, ...fields}`: a member whose value is a plain struct.
pub(crate) fn flat(name: &str, fields: Value) -> Value {
    let mut object = match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    object.insert(".tag".into(), Value::String(name.into()));
    Value::Object(object)
}

/// The `error_summary` of an error value: the chain of tags joined by `/`, then `/`, then 0–3
/// dots. The chain follows the member named after the tag, else the first field that is itself
/// a union (a flattened struct such as UploadWriteFailed's `reason`, or RateLimitError's).
pub(crate) fn error_summary(error: &Value) -> String {
    with_dots(&tag_chain(error))
}

/// `chain` + `/` + 0–3 dots.
fn with_dots(chain: &str) -> String {
    let dots = ".".repeat(rand::rng().random_range(0..=3));
    format!("{chain}/{dots}")
}

fn tag_chain(error: &Value) -> String {
    let mut chain = Vec::new();
    let mut current = Some(error);
    while let Some(Value::Object(map)) = current {
        let named = map.get(".tag").and_then(Value::as_str).and_then(|tag| {
            chain.push(tag.to_owned());
            map.get(tag).filter(|v| is_union(v))
        });
        current = named.or_else(|| {
            map.iter()
                .filter(|(key, _)| key.as_str() != ".tag")
                .map(|(_, value)| value)
                .find(|value| is_union(value))
        });
    }
    chain.join("/")
}

fn is_union(value: &Value) -> bool {
    value.get(".tag").is_some()
}

/// A fresh opaque request id, as in `X-Dropbox-Request-Id`.
pub(crate) fn request_id() -> String {
    let value: u128 = rand::rng().random();
    format!("{value:032x}")
}

pub(crate) fn reply(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json(value) => json_response(StatusCode::OK, &value),
        Reply::Null => json_response(StatusCode::OK, &Value::Null),
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    // Serializing a serde_json::Value cannot fail (all keys are strings).
    let body = serde_json::to_vec(value).unwrap_or_default();
    response(status, JSON, body)
}

pub(crate) fn text_response(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    response(status, TEXT, text.into().into_bytes())
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `{"error_summary", "error"}` with the summary also as the HTTP/1.1 reason phrase, as real
/// Dropbox does (clients must not rely on it, but some log it).
fn error_envelope(status: StatusCode, error: Value) -> Response<Body> {
    let summary = error_summary(&error);
    envelope_with_summary(status, error, summary)
}

fn envelope_with_summary(status: StatusCode, error: Value, summary: String) -> Response<Body> {
    let mut response = json_response(
        status,
        &json!({ "error_summary": summary.clone(), "error": error }),
    );
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(summary) {
        response.extensions_mut().insert(reason);
    }
    response
}

pub(crate) fn error_response(error: ApiError) -> Response<Body> {
    match error {
        ApiError::BadRequest(text) => text_response(StatusCode::BAD_REQUEST, text),
        ApiError::Auth(tag) => error_envelope(StatusCode::UNAUTHORIZED, void(tag)),
        ApiError::Route(error) => error_envelope(StatusCode::CONFLICT, error),
        ApiError::RouteWithChain(chain, error) => {
            envelope_with_summary(StatusCode::CONFLICT, error, with_dots(chain))
        }
        ApiError::TooManyRequests(retry_after) => {
            let error = json!({ "reason": void("too_many_requests"), "retry_after": retry_after });
            with_retry_after(
                error_envelope(StatusCode::TOO_MANY_REQUESTS, error),
                Refusal::TooManyRequests,
                retry_after,
            )
        }
        ApiError::TooManyWriteOperations(retry_after) => {
            let error = json!({ "reason": void("too_many_write_operations") });
            with_retry_after(
                error_envelope(StatusCode::TOO_MANY_REQUESTS, error),
                Refusal::TooManyWriteOperations,
                retry_after,
            )
        }
        ApiError::ServerError { status, variant } => server_error(status, variant),
        ApiError::UnknownRoute(route) => text_response(
            StatusCode::NOT_FOUND,
            format!("Unknown API function: {route:?}"),
        ),
        ApiError::MethodNotAllowed => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST requests are allowed on this API function.",
        ),
        ApiError::Internal(text) => text_response(StatusCode::INTERNAL_SERVER_ERROR, text),
    }
}

fn with_retry_after(
    mut response: Response<Body>,
    refusal: Refusal,
    seconds: u32,
) -> Response<Body> {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response.extensions_mut().insert(Throttled {
        refusal,
        retry_after: seconds,
    });
    response
}

/// Real 5xx bodies come in all forms; clients must cope with each, so they take turns.
fn server_error(status: u16, variant: u64) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Server Error");
    match variant % 3 {
        0 => response(status, TEXT, Vec::new()),
        1 => response(
            status,
            "text/html",
            format!(
                "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1>\
                 <p>The server has either erred or is incapable of performing the requested \
                 operation.</p></body></html>",
                code = status.as_u16()
            )
            .into_bytes(),
        ),
        _ => response(status, TEXT, format!("{reason}\n").into_bytes()),
    }
}

/// 400 JSON for `/oauth2/token`: `{"error", "error_description"}` per RFC 6749.
pub(crate) fn oauth_error(code: &str, description: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": code, "error_description": description }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(error: Value) -> String {
        error_summary(&error).trim_end_matches('.').to_owned()
    }

    #[test]
    fn summary_follows_nested_and_flattened_members() {
        let upload = json!({".tag": "path", "reason": nested("conflict", void("file")),
                            "upload_session_id": "pid_upload_session:x"});
        assert_eq!(chain(upload), "path/conflict/file/");
        let finish = nested(
            "lookup_failed",
            flat("incorrect_offset", json!({"correct_offset": 4})),
        );
        assert_eq!(chain(finish), "lookup_failed/incorrect_offset/");
        let rate = json!({"reason": void("too_many_requests"), "retry_after": 3});
        assert_eq!(chain(rate), "too_many_requests/");
        assert_eq!(chain(void("reset")), "reset/");
    }

    #[test]
    fn summary_dots_vary_between_zero_and_three() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let summary = error_summary(&void("closed"));
            assert!(summary.starts_with("closed/"));
            seen.insert(summary.len() - "closed/".len());
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }
}

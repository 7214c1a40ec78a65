//! A reply's HTTP status as an [`Error`], the way Dropbox's API documentation defines them: 400
//! bad input, 401 the token, 403 access, 409 the route's own union (decoded by
//! `union::stone_union!`'s implementations), 429 slow down (with Retry-After), 5xx the server.
//! Text taken from a body is scrubbed of secrets, shortened and kept to one line; JSON errors
//! are described without quoting the body.

use std::time::Duration;

use serde::Deserialize;

use crate::dropbox::auth::{AuthError, RateLimitReason};
use crate::dropbox::error::{Error, RouteError};

/// Longest error text kept from a response.
const MAX_TEXT: usize = 500;

/// The `Error` for a non-2xx API response.
///
/// `retry_after` is the `Retry-After` header, `body` the whole response body, and `secrets`
/// strings that must not appear in the result (the request's token), should Dropbox echo them.
pub(crate) fn decode_error<E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Error<E> {
    match status {
        400 => Error::BadInput(text_or(body, secrets, "HTTP 400 without an explanation")),
        401 => Error::Auth(decode_auth(body)),
        403 => Error::Access(access_message(body, secrets)),
        409 => decode_route(body),
        429 => decode_rate_limit(retry_after, body),
        500..=599 => Error::Server { status },
        _ => Error::BadInput(format!(
            "unexpected HTTP status {status}: {}",
            text_or(body, secrets, "no explanation")
        )),
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    error: T,
    #[serde(default)]
    user_message: Option<UserMessage>,
}

#[derive(Deserialize)]
struct UserMessage {
    text: String,
}

fn decode_auth(body: &[u8]) -> AuthError {
    // A 401 is an auth failure whatever its body says; an unreadable one is just unspecific.
    serde_json::from_slice::<Envelope<AuthError>>(body).map_or(AuthError::Other, |e| e.error)
}

fn decode_route<E: RouteError>(body: &[u8]) -> Error<E> {
    match serde_json::from_slice::<Envelope<E>>(body) {
        Ok(envelope) => {
            if let Some(message) = envelope.user_message {
                tracing::debug!(user_message = %message.text, "Dropbox route error");
            }
            Error::Route(envelope.error)
        }
        // Leniency for servers that send the union itself, without the envelope.
        Err(first) => match serde_json::from_slice::<E>(body) {
            Ok(error) => Error::Route(error),
            Err(_) => Error::Decode {
                status: 409,
                message: describe_json_error(&first),
            },
        },
    }
}

fn decode_rate_limit<E>(header: Option<&str>, body: &[u8]) -> Error<E> {
    #[derive(Deserialize)]
    struct RateLimitError {
        reason: RateLimitReason,
        #[serde(default)]
        retry_after: Option<u64>,
    }
    // A plain-text (or unreadable) 429 counts as too_many_requests (Dropbox's HTTP documentation, "Errors").
    let (reason, body_after) = match serde_json::from_slice::<Envelope<RateLimitError>>(body) {
        Ok(envelope) => (envelope.error.reason, envelope.error.retry_after),
        Err(_) => (RateLimitReason::TooManyRequests, None),
    };
    let header_after = header.and_then(|h| h.trim().parse::<u64>().ok());
    let seconds = header_after.or(body_after).unwrap_or(1);
    Error::RateLimited {
        reason,
        retry_after: Duration::from_secs(seconds),
    }
}

fn access_message(body: &[u8], secrets: &[&str]) -> String {
    #[derive(Deserialize)]
    struct AccessBody {
        #[serde(default)]
        error_summary: Option<String>,
        #[serde(default)]
        user_message: Option<UserMessage>,
    }
    match serde_json::from_slice::<AccessBody>(body) {
        Ok(AccessBody {
            user_message: Some(m),
            ..
        }) => scrub(&m.text, secrets),
        Ok(AccessBody {
            error_summary: Some(s),
            ..
        }) => scrub(summary_tags(&s), secrets),
        _ => text_or(body, secrets, "HTTP 403 without an explanation"),
    }
}

/// `path/not_found/..` → `path/not_found`: Dropbox adds a varying number of trailing dots.
fn summary_tags(summary: &str) -> &str {
    summary.trim_end_matches(['.', '/'])
}

fn text_or(body: &[u8], secrets: &[&str], empty: &str) -> String {
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    if text.is_empty() {
        empty.to_string()
    } else {
        text
    }
}

/// Text from a response made fit for an error message: one line, no secrets, not too long.
/// Besides the given secrets, anything after `Bearer ` goes: Dropbox's 400 for a malformed
/// `Authorization` header quotes the header back.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Bearer ") {
        let (before, after) = rest.split_at(at + "Bearer ".len());
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str("[redacted]");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    let one_line: String = out
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > MAX_TEXT {
        let mut cut: String = one_line.chars().take(MAX_TEXT).collect();
        cut.push('…');
        cut
    } else {
        one_line
    }
}

/// Where and how a JSON body failed to parse, without quoting it: serde's own messages can
/// repeat values from the body, and on the token endpoint those are tokens. Only "missing
/// field" messages are kept, as they name our field, not the body's content.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "the body could not be read".to_string(),
        Category::Syntax => "the body is not valid JSON".to_string(),
        Category::Eof => "the body ends early".to_string(),
        Category::Data => {
            let message = error.to_string();
            match message.split(" at line ").next() {
                Some(m) if m.starts_with("missing field `") => m.to_string(),
                _ => "the JSON does not have the expected shape".to_string(),
            }
        }
    };
    if error.line() == 0 {
        what
    } else {
        format!("{what} (line {}, column {})", error.line(), error.column())
    }
}

/// The route error a 409 with `body` decodes to, for the routes' decoder tests.
#[cfg(test)]
pub(crate) fn route<E: RouteError>(body: &str) -> E {
    match decode_error::<E>(409, None, body.as_bytes(), &[]) {
        Error::Route(e) => e,
        other => panic!("not a route error: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::{
        DeleteError, GetMetadataError, ListFolderContinueError, LookupError, UploadError,
        UploadSessionAppendError, UploadSessionFinishError, UploadSessionLookupError, VoidError,
        WriteConflictError, WriteError,
    };

    #[test]
    fn unknown_tags_become_other() {
        let e: UploadError = route(
            r#"{"error_summary": "quantum_flux/..", "error": {".tag": "quantum_flux", "quantum_flux": 3}}"#,
        );
        assert_eq!(e, UploadError::Other);
        let e: UploadSessionFinishError = route(
            r#"{"error": {".tag": "lookup_failed", "lookup_failed": {".tag": "new_thing", "x": 1}}}"#,
        );
        assert_eq!(
            e,
            UploadSessionFinishError::LookupFailed(UploadSessionLookupError::Other)
        );
        let e: UploadSessionFinishError = route(
            r#"{"error": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "symlink"}}}}"#,
        );
        assert_eq!(
            e,
            UploadSessionFinishError::Path(WriteError::Conflict(WriteConflictError::Other))
        );
        let e: UploadSessionAppendError = route(r#"{"error": {".tag": "brand_new"}}"#);
        assert_eq!(e, UploadSessionAppendError::Other);
        let e: ListFolderContinueError = route(r#"{"error": {".tag": "brand_new"}}"#);
        assert_eq!(e, ListFolderContinueError::Other);
        let e: DeleteError = route(r#"{"error": {".tag": "brand_new"}}"#);
        assert_eq!(e, DeleteError::Other);
    }

    #[test]
    fn lenient_envelopes() {
        // No error_summary, extra fields, a user_message, or no envelope at all.
        let e: UploadSessionAppendError = route(
            r#"{"error": {".tag": "closed", "extra": true}, "user_message": {"text": "Closed.", "locale": "en"}, "more": 1}"#,
        );
        assert_eq!(e, UploadSessionAppendError::Closed);
        let e: GetMetadataError = route(r#"{".tag": "path", "path": {".tag": "not_found"}}"#);
        assert_eq!(e, GetMetadataError::Path(LookupError::NotFound));
    }

    #[test]
    fn undecodable_409_is_decode_without_body() {
        let e = decode_error::<UploadSessionAppendError>(
            409,
            None,
            br#"{"error": {".tag": "incorrect_offset", "correct_offset": "sl.SECRETISH"}}"#,
            &[],
        );
        match &e {
            Error::Decode {
                status: 409,
                message,
            } => assert!(!message.contains("SECRETISH"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(!e.is_transient());
        // A Void route has no error union: any 409 is undecodable.
        let e = decode_error::<VoidError>(409, None, br#"{"error": {".tag": "x"}}"#, &[]);
        assert!(matches!(e, Error::Decode { status: 409, .. }));
        let e = decode_error::<VoidError>(409, None, b"<html>", &[]);
        assert!(matches!(e, Error::Decode { status: 409, .. }), "{e:?}");
    }

    #[test]
    fn status_400_is_trimmed_capped_text_without_tokens() {
        // §4 400 example.
        let body = "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": path: 'photo.jpg' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'\n";
        match decode_error::<UploadError>(400, None, body.as_bytes(), &[]) {
            Error::BadInput(text) => assert_eq!(text, body.trim()),
            other => panic!("{other:?}"),
        }
        let long = "x".repeat(10_000);
        match decode_error::<UploadError>(400, None, long.as_bytes(), &[]) {
            Error::BadInput(text) => assert!(text.chars().count() <= MAX_TEXT + 1),
            other => panic!("{other:?}"),
        }
        let echo = "Invalid authorization value in HTTP header \"Authorization\": \"Bearer sl.abc def\".  Expecting \"Bearer <oauth2-access-token>\".";
        let e = decode_error::<UploadError>(400, None, echo.as_bytes(), &["sl.abc def"]);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("sl.abc"), "{shown}");
        assert!(shown.contains("Invalid authorization value"));
        // Even when the echoed value is not exactly the token we sent.
        let e =
            decode_error::<UploadError>(400, None, b"header: \"Bearer sl.other\"", &["sl.mine"]);
        assert!(!e.to_string().contains("sl.other"), "{e}");
    }

    #[test]
    fn status_401_auth_errors() {
        // §4 401 examples.
        let decode = |b: &str| match decode_error::<VoidError>(401, None, b.as_bytes(), &[]) {
            Error::Auth(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            decode(
                r#"{"error_summary": "expired_access_token/.", "error": {".tag": "expired_access_token"}}"#
            ),
            AuthError::ExpiredAccessToken
        );
        assert_eq!(
            decode(
                r#"{"error_summary": "invalid_access_token/..", "error": {".tag": "invalid_access_token"}}"#
            ),
            AuthError::InvalidAccessToken
        );
        assert_eq!(
            decode(
                r#"{"error_summary": "missing_scope/..", "error": {".tag": "missing_scope", "required_scope": "files.content.write"}}"#
            ),
            AuthError::MissingScope {
                required_scope: "files.content.write".into()
            }
        );
        assert_eq!(
            decode(r#"{"error": {".tag": "user_suspended"}}"#),
            AuthError::UserSuspended
        );
        assert_eq!(
            decode(r#"{"error": {".tag": "route_access_denied"}}"#),
            AuthError::RouteAccessDenied
        );
        assert_eq!(
            decode(r#"{"error": {".tag": "something_new"}}"#),
            AuthError::Other
        );
        assert_eq!(decode("not json"), AuthError::Other);
        let e = decode_error::<VoidError>(
            401,
            None,
            br#"{"error": {".tag": "expired_access_token"}}"#,
            &[],
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn status_403_access() {
        let e = decode_error::<VoidError>(
            403,
            None,
            br#"{"error_summary": "invalid_account_type/endpoint/..", "error": {".tag": "invalid_account_type", "invalid_account_type": {".tag": "endpoint"}}}"#,
            &[],
        );
        match e {
            Error::Access(m) => assert_eq!(m, "invalid_account_type/endpoint"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_429_json_and_text() {
        // The reason and the wait of a rate limit; None for any other error.
        let limited = |e: &Error<VoidError>| match e {
            Error::RateLimited {
                reason,
                retry_after,
            } => Some((*reason, retry_after.as_secs())),
            _ => None,
        };
        // §4: the write-contention capture (header 1, no retry_after in the body).
        let e = decode_error::<VoidError>(
            429,
            Some("1"),
            br#"{"error_summary": "too_many_write_operations/.", "error": {"reason": {".tag": "too_many_write_operations"}}}"#,
            &[],
        );
        assert_eq!(
            limited(&e),
            Some((RateLimitReason::TooManyWriteOperations, 1))
        );
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        // The rate limit with retry_after in the body and no header.
        let e = decode_error::<VoidError>(
            429,
            None,
            br#"{"error_summary": "too_many_requests/...", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 15}}"#,
            &[],
        );
        assert_eq!(limited(&e), Some((RateLimitReason::TooManyRequests, 15)));
        // The header wins over the body.
        let e = decode_error::<VoidError>(
            429,
            Some("300"),
            br#"{"error": {"reason": {".tag": "too_many_requests"}, "retry_after": 15}}"#,
            &[],
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(300)));
        // Plain text is too_many_requests; nothing says how long: 1 s.
        let e = decode_error::<VoidError>(429, None, b"Too Many Requests", &[]);
        assert_eq!(limited(&e), Some((RateLimitReason::TooManyRequests, 1)));
        let e = decode_error::<VoidError>(
            429,
            Some("7"),
            br#"{"error": {"reason": {".tag": "new_reason"}}}"#,
            &[],
        );
        assert_eq!(limited(&e), Some((RateLimitReason::Other, 7)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn status_5xx_any_body() {
        for (status, body) in [
            (500, &br#"{"error": "The server has either erred or is incapable of performing the requested operation."}"#[..]),
            (502, b"<html><body>Bad Gateway</body></html>"),
            (503, b""),
        ] {
            let e = decode_error::<UploadError>(status, None, body, &[]);
            assert!(matches!(e, Error::Server { status: s } if s == status), "{e:?}");
            assert!(e.is_transient());
            assert!(!e.to_string().contains("html") && !e.to_string().contains("erred"));
        }
    }

    #[test]
    fn other_statuses_are_not_transient() {
        let e = decode_error::<UploadError>(404, None, b"Unknown route", &[]);
        assert!(
            matches!(&e, Error::BadInput(m) if m.contains("404") && m.contains("Unknown route"))
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn describe_json_error_keeps_missing_field_only() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: u64,
            b: String,
        }
        let e = serde_json::from_str::<T>(r#"{"a": 1}"#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("missing field `b`"));
        let e = serde_json::from_str::<T>(r#"{"a": "sl.TOKEN", "b": "x"}"#).unwrap_err();
        assert!(!describe_json_error(&e).contains("TOKEN"));
        let e = serde_json::from_str::<T>(r#"{"a": 1, "#).unwrap_err();
        assert!(describe_json_error(&e).starts_with("the body ends early"));
    }
}

//! What can go wrong on a Dropbox call, as types the engine can act on.
//!
//! [`Error`] sorts a failed call by HTTP status the way Dropbox defines them (Dropbox's HTTP documentation, "Errors";
//! the mapping is `http::status`); a 409 carries the route's own error union, declared with its
//! route (`files::upload`, `sharing`, ...) by `union::stone_union!`. Every open union has an
//! `Other` member so that a tag Dropbox adds later is tolerated, not a decode failure. `Display`
//! texts are for the user: they say what happened in Dropbox's terms a person can act on. No
//! message ever contains a token or a response body from a token route.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::auth::{AuthError, RateLimitReason};

/// A route's error union, as decoded from a 409 body.
pub trait RouteError: DeserializeOwned + fmt::Display + fmt::Debug + Send + Sync + 'static {
    /// Whether the same request may succeed later unchanged. Only write-lock contention
    /// (`too_many_write_operations`) is transient among route errors.
    fn is_transient(&self) -> bool {
        false
    }
}

/// A failed Dropbox API call.
#[derive(thiserror::Error, Debug)]
pub enum Error<E> {
    /// HTTP 409: the route's own error. Dropbox's `user_message`, when present, is logged at
    /// debug level; the enum's `Display` is the user-facing text.
    #[error("{0}")]
    Route(E),
    /// HTTP 401: the access token was refused.
    #[error("Dropbox refused the access token: {0}")]
    Auth(AuthError),
    /// HTTP 429: slow down; retry no sooner than `retry_after`.
    #[error("Dropbox asks to slow down ({reason}); retry in {}", humantime::format_duration(*.retry_after))]
    RateLimited {
        reason: RateLimitReason,
        retry_after: Duration,
    },
    /// HTTP 400 (Dropbox's explanation, trimmed and shortened), or a request refused before
    /// it was sent. Retrying the same request will not help.
    #[error("Dropbox rejected the request: {0}")]
    BadInput(String),
    /// HTTP 403: the account may not use this endpoint or feature.
    #[error("Dropbox denied access: {0}")]
    Access(String),
    /// HTTP 5xx. The body is not trusted and not kept.
    #[error("Dropbox had a server error (HTTP {status}); try again later")]
    Server { status: u16 },
    /// The connection failed, timed out or was cut. The outcome of a write is unknown.
    #[error("cannot reach Dropbox: {0}")]
    Transport(String),
    /// A 200 or 409 reply whose body did not parse. The message describes where, never what.
    #[error("unexpected reply from Dropbox (HTTP {status}): {message}")]
    Decode { status: u16, message: String },
}

impl<E: RouteError> Error<E> {
    /// Whether waiting and sending the same request again may succeed: transport failures,
    /// server errors, rate limits, and route errors that mean write-lock contention.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Server { .. } | Error::RateLimited { .. } => true,
            Error::Route(e) => e.is_transient(),
            Error::Auth(_) | Error::BadInput(_) | Error::Access(_) | Error::Decode { .. } => false,
        }
    }
}

impl<E> Error<E> {
    /// How long Dropbox asked to wait (429 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The route error, if this is one.
    pub fn route(&self) -> Option<&E> {
        match self {
            Error::Route(e) => Some(e),
            _ => None,
        }
    }

    /// Converts the route error, keeping every other variant.
    pub fn map_route<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Route(e) => Error::Route(f(e)),
            Error::Auth(e) => Error::Auth(e),
            Error::RateLimited {
                reason,
                retry_after,
            } => Error::RateLimited {
                reason,
                retry_after,
            },
            Error::BadInput(m) => Error::BadInput(m),
            Error::Access(m) => Error::Access(m),
            Error::Server { status } => Error::Server { status },
            Error::Transport(m) => Error::Transport(m),
            Error::Decode { status, message } => Error::Decode { status, message },
        }
    }
}

/// The error type of routes that have none (Void). It has no values: a 409 on such a route
/// cannot be decoded and becomes [`Error::Decode`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum VoidError {}

impl fmt::Display for VoidError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for VoidError {}

impl RouteError for VoidError {}

/// `: text` after a member's message when Dropbox gave a detail (`malformed_path`'s value).
pub(super) fn detail(text: &Option<String>) -> String {
    match text {
        Some(t) if !t.is_empty() => format!(": {t}"),
        _ => String::new(),
    }
}

//! The `auth` namespace: why Dropbox refuses a token (401) or a request rate (429), and
//! `auth/token/revoke`. Getting and refreshing tokens is the OAuth endpoint, `oauth`.

use serde::Deserialize;

use super::Client;
use super::error::{Error, VoidError};
use super::http::parse_void;
use crate::secret::Secret;

/// Why Dropbox refused an access token (HTTP 401).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum AuthError {
    /// Short-lived tokens last about four hours: refresh and retry once.
    #[error("the access token has expired")]
    ExpiredAccessToken,
    #[error("the access token is invalid or was revoked; log in again")]
    InvalidAccessToken,
    #[error("the login lacks the Dropbox permission `{required_scope}`; log in again to grant it")]
    MissingScope { required_scope: String },
    #[error("the Dropbox account is suspended")]
    UserSuspended,
    #[error("this app may not use this Dropbox route")]
    RouteAccessDenied,
    #[error("invalid team member selection")]
    InvalidSelectUser,
    #[error("invalid team admin selection")]
    InvalidSelectAdmin,
    #[error("the access token is not accepted")]
    #[serde(other)]
    Other,
}

/// The `reason` of a 429.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum RateLimitReason {
    /// The per-token rate limit.
    #[error("too many requests")]
    TooManyRequests,
    /// Another write to the same account holds the namespace lock.
    #[error("too many write operations at once in this Dropbox")]
    TooManyWriteOperations,
    #[error("rate limited")]
    #[serde(other)]
    Other,
}

impl Client {
    /// `auth/token/revoke`: revokes this access token, and the refresh token it came from.
    pub async fn revoke(&self, token: &Secret) -> Result<(), Error<VoidError>> {
        self.rpc_with(token, "2/auth/token/revoke", &(), parse_void)
            .await
    }
}

//! A typed async client for the Dropbox API v2 routes dbxport uses: uploads and upload
//! sessions, the batch commit, listing, metadata, folders, delete, the account, shared links,
//! and the OAuth token endpoint.
//!
//! One [`Client`] per daemon: it holds the connection pools and the base URLs (the real hosts or
//! the emulator on 127.0.0.1). Every call is a single HTTP request and is never retried here;
//! the engine owns the retry policy and asks [`Error::is_transient`] and [`Error::retry_after`].
//! One thing is kept here for every caller: after a 429 no request leaves before its
//! Retry-After has passed (`http::retry_after`), since Dropbox's limits are the account's.
//! Tokens are passed per call as [`Secret`]s and appear only in the `Authorization` header or
//! the token endpoint's form, never in an error or a log line.
//!
//! The modules follow the API's namespaces (ARCHITECTURE.md, "Inside `dropbox`"): a route's
//! argument, result, error union and `Client` method sit together.
//!
//! - `files`: uploads, upload sessions and the batch commit, listing, metadata, folders, delete.
//! - `sharing`: shared links. `users`: the account and its space.
//! - `auth`: why a token or a request rate is refused, and token revocation; `oauth`: the token
//!   endpoint (login and refresh).
//! - `client`: [`Client`], its options and connection pools. `http`: what every call does on
//!   the wire (request building, the `Dropbox-API-Arg` header, the status → [`Error`] mapping,
//!   Retry-After, the bandwidth limit). `error`: [`Error`] and [`RouteError`]. `union`: Dropbox's
//!   tagged unions and the `stone_union!` macro that declares each route's error union.
//! - [`content_hash`] and [`path`]: Dropbox's content hash and path rules, checked locally.

mod auth;
mod client;
pub mod content_hash;
mod error;
mod files;
mod http;
mod oauth;
pub mod path;
mod sharing;
mod union;
mod users;

use bytes::Bytes;
use serde::de::DeserializeOwned;

pub use arg::header_safe_json;
pub use auth::{AuthError, RateLimitReason};
pub use client::{BuildError, Client, ClientOptions, Endpoints};
pub use error::{Error, RouteError, VoidError};
pub use files::{
    AppendBatchEntry, AppendBatchEntryError, AppendBatchResult, CommitInfo, CreateFolderError,
    DeleteError, DeletedMetadata, FileMetadata, FinishBatchEntry, FolderMetadata, GetMetadataError,
    ListFolderArg, ListFolderContinueError, ListFolderError, ListFolderResult, LookupError,
    MAX_APPEND_BATCH_ENTRIES, MAX_BATCH_ENTRIES, MAX_FILE_SIZE, MAX_REQUEST_BODY,
    MAX_START_BATCH_SESSIONS, Metadata, SessionType, UploadArg, UploadError,
    UploadSessionAppendArg, UploadSessionAppendBatchError, UploadSessionAppendError,
    UploadSessionCursor, UploadSessionFinishArg, UploadSessionFinishError,
    UploadSessionLookupError, UploadSessionStartArg, UploadSessionStartError,
    UploadSessionStartResult, UploadWriteFailed, WriteConflictError, WriteError, WriteMode,
    timestamp,
};
pub use http::{MAX_REPLY_BYTES, Progress, arg, limit};
pub use oauth::{OAuthError, TokenResponse};
pub use sharing::{
    CreateSharedLinkWithSettingsError, FileLinkMetadata, LinkAudience, LinkPermissions,
    ListSharedLinksArg, ListSharedLinksError, ListSharedLinksResult, RequestedLinkAccessLevel,
    RequestedVisibility, ResolvedVisibility, SharedLinkInfo, SharedLinkMetadata,
    SharedLinkSettings, SharedLinkSettingsError,
};
pub use users::{
    AccountType, FullAccount, MemberSpaceLimitType, Name, SpaceAllocation, SpaceUsage,
};

use crate::secret::Secret;
use http::{Reply, body_is_read, neutralise_nul, parse_json, parse_void};
use oauth::decode_token_response;

/// Decodes an HTTP answer of a Dropbox route as this client does, without the network: the
/// body (dropped for a 5xx, NULs neutralised, as `read_reply` keeps it) as the route's result
/// `T`, or its error union `E` for an error status; `retry_after` is the `Retry-After` header
/// and `token` the request's token, which no error text may show. For a caller with its own
/// transport or a recorded answer; the fuzz targets (`fuzz/`) feed it hostile answers.
pub fn decode_answer<T: DeserializeOwned, E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<T, Error<E>> {
    answer_as_read(status, retry_after, body).into_result("decoded", token, parse_json)
}

/// [`decode_answer`] for a route whose result is Void.
pub fn decode_void_answer<E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<(), Error<E>> {
    answer_as_read(status, retry_after, body).into_result("decoded", token, parse_void)
}

/// [`decode_answer`] for the OAuth token endpoint, with `secrets` as the values sent in its
/// form (none may show in an error text).
pub fn decode_token_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Result<TokenResponse, OAuthError> {
    let reply = answer_as_read(status, retry_after, body);
    decode_token_response(
        reply.status,
        reply.retry_after.as_deref(),
        &reply.body,
        secrets,
    )
}

/// The answer as `read_reply` would have kept it off the wire.
fn answer_as_read(status: u16, retry_after: Option<&str>, body: &[u8]) -> Reply {
    let body = if body_is_read(status) {
        Bytes::copy_from_slice(body)
    } else {
        Bytes::new()
    };
    Reply {
        status,
        retry_after: retry_after.map(str::to_owned),
        body: neutralise_nul(body),
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

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
    CommitInfo, CreateFolderError, DeleteError, DeletedMetadata, FileMetadata, FinishBatchEntry,
    FolderMetadata, GetMetadataError, ListFolderArg, ListFolderContinueError, ListFolderError,
    ListFolderResult, LookupError, MAX_BATCH_ENTRIES, MAX_FILE_SIZE, Metadata, SessionType,
    UploadArg, UploadError, UploadSessionAppendArg, UploadSessionAppendError, UploadSessionCursor,
    UploadSessionFinishArg, UploadSessionFinishError, UploadSessionLookupError,
    UploadSessionStartArg, UploadSessionStartError, UploadSessionStartResult, UploadWriteFailed,
    WriteConflictError, WriteError, WriteMode, timestamp,
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

/// What the client makes of an answer, without the network: the body as [`read_reply`] keeps
/// it, then decoded as a route's result `T` or its error union `E`, with `token` as the
/// request's token. Exists for [`crate::fuzzing`], so that the fuzzers and their regression
/// tests feed hostile answers to the very code a reply meets.
pub(crate) fn replay_answer<T: DeserializeOwned, E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<T, Error<E>> {
    replayed_reply(status, retry_after, body).into_result("replayed", token, parse_json)
}

/// [`replay_answer`] for a route whose result is Void.
pub(crate) fn replay_void_answer<E: RouteError>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &Secret,
) -> Result<(), Error<E>> {
    replayed_reply(status, retry_after, body).into_result("replayed", token, parse_void)
}

/// [`replay_answer`] for the token endpoint, with `secrets` as the values sent in its form.
pub(crate) fn replay_token_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Result<TokenResponse, OAuthError> {
    let reply = replayed_reply(status, retry_after, body);
    decode_token_response(
        reply.status,
        reply.retry_after.as_deref(),
        &reply.body,
        secrets,
    )
}

fn replayed_reply(status: u16, retry_after: Option<&str>, body: &[u8]) -> Reply {
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

//! What can go wrong on a Dropbox call, as types the engine can act on.
//!
//! [`Error`] sorts a failed call by HTTP status the way Dropbox defines them (dropbox-api.md §4);
//! a 409 carries the route's own error union, decoded into one of the enums below. Every open
//! union has an `Other` member so that a tag Dropbox adds later is tolerated, not a decode
//! failure. `Display` texts are for the user: they say what happened in Dropbox's terms a person
//! can act on. No message ever contains a token or a response body from a token route.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::types::{SharedLinkMetadata, Union};

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

/// What is in the way of a write.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum WriteConflictError {
    #[error("a different file already exists at this path in Dropbox")]
    File,
    #[error("a folder already exists at this path in Dropbox")]
    Folder,
    #[error("a file in Dropbox is in the way of one of this path's parent folders")]
    FileAncestor,
    #[error("something already exists at this path in Dropbox")]
    #[serde(other)]
    Other,
}

/// Why a write to a path failed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Dropbox's detail text, if it gave one.
    #[error("Dropbox refuses this path as malformed (it must start with / and not end with / or a space){}", detail(.0))]
    MalformedPath(Option<String>),
    #[error("{0}")]
    Conflict(WriteConflictError),
    #[error("no permission to write here in Dropbox")]
    NoWritePermission,
    #[error("Dropbox is full: no space left in the account")]
    InsufficientSpace,
    #[error("Dropbox refuses this file name")]
    DisallowedName,
    #[error("Dropbox does not allow this change to a team folder")]
    TeamFolder,
    #[error("Dropbox does not allow this operation at this path")]
    OperationSuppressed,
    #[error("too many writes at once in this Dropbox; retrying later")]
    TooManyWriteOperations,
    #[error("access to this path is restricted in Dropbox")]
    AccessRestricted,
    #[error("Dropbox cannot write to this path")]
    Other,
}

fn detail(text: &Option<String>) -> String {
    match text {
        Some(t) if !t.is_empty() => format!(": {t}"),
        _ => String::new(),
    }
}

impl<'de> Deserialize<'de> for WriteError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "malformed_path" => WriteError::MalformedPath(u.nested_opt()?),
            "conflict" => WriteError::Conflict(u.nested()?),
            "no_write_permission" => WriteError::NoWritePermission,
            "insufficient_space" => WriteError::InsufficientSpace,
            "disallowed_name" => WriteError::DisallowedName,
            "team_folder" => WriteError::TeamFolder,
            "operation_suppressed" => WriteError::OperationSuppressed,
            "too_many_write_operations" => WriteError::TooManyWriteOperations,
            "access_restricted" => WriteError::AccessRestricted,
            _ => WriteError::Other,
        })
    }
}

impl WriteError {
    fn is_transient(&self) -> bool {
        matches!(self, WriteError::TooManyWriteOperations)
    }
}

/// Why a path could not be looked up.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    #[error("Dropbox refuses this path as malformed{}", detail(.0))]
    MalformedPath(Option<String>),
    #[error("nothing exists at this path in Dropbox")]
    NotFound,
    #[error("this path in Dropbox is a folder, not a file")]
    NotFile,
    #[error("this path in Dropbox is a file, not a folder")]
    NotFolder,
    #[error("Dropbox restricts this content")]
    RestrictedContent,
    #[error("Dropbox does not support this content type")]
    UnsupportedContentType,
    #[error("this path is locked in Dropbox")]
    Locked,
    #[error("Dropbox cannot look up this path")]
    Other,
}

impl<'de> Deserialize<'de> for LookupError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "malformed_path" => LookupError::MalformedPath(u.nested_opt()?),
            "not_found" => LookupError::NotFound,
            "not_file" => LookupError::NotFile,
            "not_folder" => LookupError::NotFolder,
            "restricted_content" => LookupError::RestrictedContent,
            "unsupported_content_type" => LookupError::UnsupportedContentType,
            "locked" => LookupError::Locked,
            _ => LookupError::Other,
        })
    }
}

/// `files/upload`'s commit failed; the bytes were kept in an upload session, so the commit can
/// be retried with `upload_session/finish` at offset = body length.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadWriteFailed {
    pub reason: WriteError,
    pub upload_session_id: String,
}

/// `files/upload`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    #[error("{}", .0.reason)]
    Path(UploadWriteFailed),
    #[error("Dropbox rejected the file's properties")]
    PropertiesError,
    #[error("the upload is too large for one request (over 150 MiB)")]
    PayloadTooLarge,
    #[error("the data Dropbox received does not match its content hash")]
    ContentHashMismatch,
    #[error("this Dropbox folder requires encryption, which uploads through the API cannot do")]
    EncryptionNotSupported,
    #[error("Dropbox refused the upload")]
    Other,
}

impl<'de> Deserialize<'de> for UploadError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            // UploadWriteFailed is a plain struct, so its fields sit beside `.tag`.
            "path" => UploadError::Path(u.flattened()?),
            "properties_error" => UploadError::PropertiesError,
            "payload_too_large" => UploadError::PayloadTooLarge,
            "content_hash_mismatch" => UploadError::ContentHashMismatch,
            "encryption_not_supported" => UploadError::EncryptionNotSupported,
            _ => UploadError::Other,
        })
    }
}

impl RouteError for UploadError {
    fn is_transient(&self) -> bool {
        matches!(self, UploadError::Path(failed) if failed.reason.is_transient())
    }
}

/// `files/upload_session/start`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum UploadSessionStartError {
    #[error("a concurrent upload session cannot take data when it starts")]
    ConcurrentSessionDataNotAllowed,
    #[error("a concurrent upload session cannot be closed when it starts")]
    ConcurrentSessionCloseNotAllowed,
    #[error("the upload is too large for one request (over 150 MiB)")]
    PayloadTooLarge,
    #[error("the data Dropbox received does not match its content hash")]
    ContentHashMismatch,
    #[error("Dropbox could not start the upload session")]
    #[serde(other)]
    Other,
}

impl RouteError for UploadSessionStartError {}

/// An upload session could not be used (inside `upload_session/finish`'s `lookup_failed`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum UploadSessionLookupError {
    #[error("the upload session is unknown or has expired (sessions last 7 days)")]
    NotFound,
    /// The session holds `correct_offset` bytes, not what the cursor said.
    #[error("the upload session holds {correct_offset} bytes, not the number sent")]
    IncorrectOffset { correct_offset: u64 },
    #[error("the upload session is already closed")]
    Closed,
    #[error("the upload session must be closed first")]
    NotClosed,
    #[error("the file is larger than Dropbox allows")]
    TooLarge,
    #[error("a concurrent upload session's offset must be a multiple of 4 MiB")]
    ConcurrentSessionInvalidOffset,
    #[error("a concurrent upload session's chunks must be multiples of 4 MiB")]
    ConcurrentSessionInvalidDataSize,
    #[error("the upload is too large for one request (over 150 MiB)")]
    PayloadTooLarge,
    #[error("the upload session cannot be used")]
    #[serde(other)]
    Other,
}

/// `files/upload_session/append_v2`. Unlike `finish`, its session errors are not wrapped in
/// `lookup_failed`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum UploadSessionAppendError {
    #[error("the upload session is unknown or has expired (sessions last 7 days)")]
    NotFound,
    /// The session holds `correct_offset` bytes. If that is the sent offset plus this body's
    /// length, an earlier attempt whose reply was lost already landed.
    #[error("the upload session holds {correct_offset} bytes, not the number sent")]
    IncorrectOffset { correct_offset: u64 },
    #[error("the upload session is already closed")]
    Closed,
    #[error("the upload session must be closed first")]
    NotClosed,
    #[error("the file is larger than Dropbox allows")]
    TooLarge,
    #[error("a concurrent upload session's offset must be a multiple of 4 MiB")]
    ConcurrentSessionInvalidOffset,
    #[error("a concurrent upload session's chunks must be multiples of 4 MiB")]
    ConcurrentSessionInvalidDataSize,
    #[error("the upload is too large for one request (over 150 MiB)")]
    PayloadTooLarge,
    #[error("the data Dropbox received does not match its content hash")]
    ContentHashMismatch,
    #[error("Dropbox refused the upload data")]
    #[serde(other)]
    Other,
}

impl RouteError for UploadSessionAppendError {}

/// `files/upload_session/finish`, and each failed entry of `finish_batch_v2`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum UploadSessionFinishError {
    #[error("{0}")]
    LookupFailed(UploadSessionLookupError),
    /// The data stays in the session: the commit can be retried with an empty body.
    #[error("{0}")]
    Path(WriteError),
    #[error("Dropbox rejected the file's properties")]
    PropertiesError,
    #[error("too many shared folders as targets")]
    TooManySharedFolderTargets,
    #[error("too many writes at once in this Dropbox; retrying later")]
    TooManyWriteOperations,
    #[error("a concurrent upload session cannot take data when it finishes")]
    ConcurrentSessionDataNotAllowed,
    #[error("the concurrent upload session must be closed before it finishes")]
    ConcurrentSessionNotClosed,
    #[error("the concurrent upload session is missing data")]
    ConcurrentSessionMissingData,
    #[error("the upload is too large for one request (over 150 MiB)")]
    PayloadTooLarge,
    #[error("the data Dropbox received does not match its content hash")]
    ContentHashMismatch,
    #[error("this Dropbox folder requires encryption, which uploads through the API cannot do")]
    EncryptionNotSupported,
    #[error("Dropbox could not commit the upload")]
    Other,
}

impl<'de> Deserialize<'de> for UploadSessionFinishError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use UploadSessionFinishError as F;
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "lookup_failed" => F::LookupFailed(u.nested()?),
            "path" => F::Path(u.nested()?),
            "properties_error" => F::PropertiesError,
            "too_many_shared_folder_targets" => F::TooManySharedFolderTargets,
            "too_many_write_operations" => F::TooManyWriteOperations,
            "concurrent_session_data_not_allowed" => F::ConcurrentSessionDataNotAllowed,
            "concurrent_session_not_closed" => F::ConcurrentSessionNotClosed,
            "concurrent_session_missing_data" => F::ConcurrentSessionMissingData,
            "payload_too_large" => F::PayloadTooLarge,
            "content_hash_mismatch" => F::ContentHashMismatch,
            "encryption_not_supported" => F::EncryptionNotSupported,
            _ => F::Other,
        })
    }
}

impl RouteError for UploadSessionFinishError {
    fn is_transient(&self) -> bool {
        match self {
            UploadSessionFinishError::TooManyWriteOperations => true,
            UploadSessionFinishError::Path(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// `files/list_folder`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ListFolderError {
    #[error("{0}")]
    Path(LookupError),
    #[error("Dropbox rejected a property template")]
    TemplateError,
    #[error("Dropbox cannot list this folder")]
    Other,
}

impl<'de> Deserialize<'de> for ListFolderError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => ListFolderError::Path(u.nested()?),
            "template_error" => ListFolderError::TemplateError,
            _ => ListFolderError::Other,
        })
    }
}

impl RouteError for ListFolderError {}

/// `files/list_folder/continue`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ListFolderContinueError {
    #[error("{0}")]
    Path(LookupError),
    /// The cursor is no longer valid: list the folder again from the start.
    #[error("the folder listing expired; it must start over")]
    Reset,
    #[error("Dropbox cannot continue listing this folder")]
    Other,
}

impl<'de> Deserialize<'de> for ListFolderContinueError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => ListFolderContinueError::Path(u.nested()?),
            "reset" => ListFolderContinueError::Reset,
            _ => ListFolderContinueError::Other,
        })
    }
}

impl RouteError for ListFolderContinueError {}

/// `files/create_folder_v2`. The spec closes this union; `Other` is here anyway, so that a tag
/// added later is reported as a refusal rather than as an unreadable reply.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CreateFolderError {
    /// `Path(Conflict(Folder))` means the folder already exists, which callers usually treat
    /// as success.
    #[error("{0}")]
    Path(WriteError),
    #[error("Dropbox cannot create this folder")]
    Other,
}

impl<'de> Deserialize<'de> for CreateFolderError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => CreateFolderError::Path(u.nested()?),
            _ => CreateFolderError::Other,
        })
    }
}

impl RouteError for CreateFolderError {
    fn is_transient(&self) -> bool {
        matches!(self, CreateFolderError::Path(e) if e.is_transient())
    }
}

/// `files/get_metadata` (closed in the spec; `Other` as for [`CreateFolderError`]).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum GetMetadataError {
    #[error("{0}")]
    Path(LookupError),
    #[error("Dropbox cannot look up this path")]
    Other,
}

impl<'de> Deserialize<'de> for GetMetadataError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => GetMetadataError::Path(u.nested()?),
            _ => GetMetadataError::Other,
        })
    }
}

impl RouteError for GetMetadataError {}

/// `files/delete_v2`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DeleteError {
    #[error("{0}")]
    PathLookup(LookupError),
    #[error("{0}")]
    PathWrite(WriteError),
    #[error("too many writes at once in this Dropbox; retrying later")]
    TooManyWriteOperations,
    #[error("too many files to delete at once")]
    TooManyFiles,
    #[error("Dropbox cannot delete this path")]
    Other,
}

impl<'de> Deserialize<'de> for DeleteError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path_lookup" => DeleteError::PathLookup(u.nested()?),
            "path_write" => DeleteError::PathWrite(u.nested()?),
            "too_many_write_operations" => DeleteError::TooManyWriteOperations,
            "too_many_files" => DeleteError::TooManyFiles,
            _ => DeleteError::Other,
        })
    }
}

impl RouteError for DeleteError {
    fn is_transient(&self) -> bool {
        match self {
            DeleteError::TooManyWriteOperations => true,
            DeleteError::PathWrite(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Why Dropbox refused a shared link's settings (closed in the spec; `Other` as for
/// [`CreateFolderError`]).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SharedLinkSettingsError {
    #[error(
        "Dropbox refuses these shared link settings as invalid; check the audience and access asked for"
    )]
    InvalidSettings,
    /// rclone's answer: ask again without the setting (e.g. the expiry).
    #[error(
        "this Dropbox account may not use these shared link settings: expiry, passwords, links that are not public and links without downloads need a paid plan or the team's permission"
    )]
    NotAuthorized,
    #[error("Dropbox refuses these shared link settings")]
    #[serde(other)]
    Other,
}

/// `sharing/create_shared_link_with_settings` (closed in the spec; `Other` as for
/// [`CreateFolderError`]).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CreateSharedLinkWithSettingsError {
    #[error("{0}")]
    Path(LookupError),
    #[error(
        "Dropbox makes shared links only for accounts with a verified email address; verify it on dropbox.com, then try again"
    )]
    EmailNotVerified,
    /// The existing link, when Dropbox sends it. It leaves it out when settings were given
    /// (they might not match the existing link); `sharing/list_shared_links` with
    /// `direct_only` then finds it. Boxed: a link is large next to the other members.
    #[error("a shared link to this item already exists in Dropbox")]
    SharedLinkAlreadyExists(Option<Box<SharedLinkMetadata>>),
    #[error("{0}")]
    SettingsError(SharedLinkSettingsError),
    #[error(
        "Dropbox does not allow a shared link to this item: the content may be restricted, or the account's shared links banned"
    )]
    AccessDenied,
    #[error("Dropbox has banned this account from creating shared links")]
    BannedMember,
    #[error("this Dropbox account has too many shared folders to share another item")]
    TooManySharedFolders,
    #[error("Dropbox cannot create a shared link to this item")]
    Other,
}

impl<'de> Deserialize<'de> for CreateSharedLinkWithSettingsError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use CreateSharedLinkWithSettingsError as C;
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => C::Path(u.nested()?),
            "email_not_verified" => C::EmailNotVerified,
            "shared_link_already_exists" => C::SharedLinkAlreadyExists(
                u.nested_opt::<AlreadyExistsMetadata, D::Error>()?
                    .and_then(|m| m.0)
                    .map(Box::new),
            ),
            "settings_error" => C::SettingsError(u.nested()?),
            "access_denied" => C::AccessDenied,
            "banned_member" => C::BannedMember,
            "too_many_shared_folders" => C::TooManySharedFolders,
            _ => C::Other,
        })
    }
}

/// `SharedLinkAlreadyExistsMetadata`, an open union whose one known member, `metadata`, holds the
/// existing link (nested with its own `.tag`, since SharedLinkMetadata has subtypes). A link that
/// does not decode is dropped rather than failing the whole error: it is only a shortcut, and
/// without it the caller looks the link up instead.
struct AlreadyExistsMetadata(Option<SharedLinkMetadata>);

impl<'de> Deserialize<'de> for AlreadyExistsMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(AlreadyExistsMetadata(match u.tag() {
            "metadata" => u.nested::<SharedLinkMetadata, D::Error>().ok(),
            _ => None,
        }))
    }
}

impl RouteError for CreateSharedLinkWithSettingsError {}

/// `sharing/list_shared_links`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ListSharedLinksError {
    #[error("{0}")]
    Path(LookupError),
    /// The cursor is no longer valid: list again without it.
    #[error("the shared link listing expired; it must start over")]
    Reset,
    #[error("Dropbox cannot list the shared links")]
    Other,
}

impl<'de> Deserialize<'de> for ListSharedLinksError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let u = Union::deserialize(deserializer)?;
        Ok(match u.tag() {
            "path" => ListSharedLinksError::Path(u.nested()?),
            "reset" => ListSharedLinksError::Reset,
            _ => ListSharedLinksError::Other,
        })
    }
}

impl RouteError for ListSharedLinksError {}

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
    // A plain-text (or unreadable) 429 counts as too_many_requests (dropbox-api.md §4).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn route<E: RouteError>(body: &str) -> E {
        match decode_error::<E>(409, None, body.as_bytes(), &[]) {
            Error::Route(e) => e,
            other => panic!("not a route error: {other:?}"),
        }
    }

    #[test]
    fn upload_conflict_is_flattened_under_path() {
        // §3.2: `reason` and `upload_session_id` sit beside `.tag`.
        let e: UploadError = route(
            r#"{"error_summary": "path/conflict/file/..", "error": {".tag": "path", "reason": {".tag": "conflict", "conflict": {".tag": "file"}}, "upload_session_id": "pid_upload_session:ABC"}}"#,
        );
        assert_eq!(
            e,
            UploadError::Path(UploadWriteFailed {
                reason: WriteError::Conflict(WriteConflictError::File),
                upload_session_id: "pid_upload_session:ABC".into(),
            })
        );
        assert_eq!(
            e.to_string(),
            "a different file already exists at this path in Dropbox"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn upload_malformed_path_without_value() {
        let e: UploadError = route(
            r#"{"error_summary": "path/malformed_path/...", "error": {".tag": "path", "reason": {".tag": "malformed_path"}, "upload_session_id": "pid_upload_session:…"}}"#,
        );
        assert!(matches!(
            e,
            UploadError::Path(UploadWriteFailed {
                reason: WriteError::MalformedPath(None),
                ..
            })
        ));
    }

    #[test]
    fn upload_simple_members_and_busy_reason() {
        let e: UploadError = route(
            r#"{"error_summary": "payload_too_large/", "error": {".tag": "payload_too_large"}}"#,
        );
        assert_eq!(e, UploadError::PayloadTooLarge);
        let e: UploadError = route(
            r#"{"error_summary": "content_hash_mismatch/", "error": {".tag": "content_hash_mismatch"}}"#,
        );
        assert_eq!(e, UploadError::ContentHashMismatch);
        let busy = decode_error::<UploadError>(
            409,
            None,
            br#"{"error": {".tag": "path", "reason": {".tag": "too_many_write_operations"}, "upload_session_id": "s"}}"#,
            &[],
        );
        assert!(busy.is_transient());
        let full: UploadError = route(
            r#"{"error": {".tag": "path", "reason": {".tag": "insufficient_space"}, "upload_session_id": "s"}}"#,
        );
        assert_eq!(
            full.to_string(),
            "Dropbox is full: no space left in the account"
        );
        let name: UploadError = route(
            r#"{"error": {".tag": "path", "reason": {".tag": "disallowed_name"}, "upload_session_id": "s"}}"#,
        );
        assert_eq!(name.to_string(), "Dropbox refuses this file name");
    }

    #[test]
    fn append_errors_are_top_level() {
        // §3.4.
        let e: UploadSessionAppendError = route(
            r#"{"error_summary": "incorrect_offset/", "error": {".tag": "incorrect_offset", "correct_offset": 4194304}}"#,
        );
        assert_eq!(
            e,
            UploadSessionAppendError::IncorrectOffset {
                correct_offset: 4194304
            }
        );
        let e: UploadSessionAppendError =
            route(r#"{"error_summary": "closed/..", "error": {".tag": "closed"}}"#);
        assert_eq!(e, UploadSessionAppendError::Closed);
        let e: UploadSessionAppendError = route(r#"{"error": {".tag": "not_found"}}"#);
        assert_eq!(e, UploadSessionAppendError::NotFound);
        let e: UploadSessionAppendError = route(r#"{"error": {".tag": "too_large"}}"#);
        assert_eq!(e, UploadSessionAppendError::TooLarge);
    }

    #[test]
    fn finish_errors_nest() {
        // §3.5: lookup errors under `lookup_failed`, the WriteError under `path`.
        let e: UploadSessionFinishError = route(
            r#"{"error_summary": "lookup_failed/incorrect_offset/", "error": {".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 1252}}}"#,
        );
        assert_eq!(
            e,
            UploadSessionFinishError::LookupFailed(UploadSessionLookupError::IncorrectOffset {
                correct_offset: 1252
            })
        );
        let e: UploadSessionFinishError = route(
            r#"{"error_summary": "path/conflict/file/..", "error": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}}"#,
        );
        assert_eq!(
            e,
            UploadSessionFinishError::Path(WriteError::Conflict(WriteConflictError::File))
        );
        assert!(!e.is_transient());
        let e: UploadSessionFinishError = route(
            r#"{"error_summary": "too_many_write_operations/.", "error": {".tag": "too_many_write_operations"}}"#,
        );
        assert_eq!(e, UploadSessionFinishError::TooManyWriteOperations);
        assert!(
            Error::Route(e).is_transient(),
            "409 too_many_write_operations is transient"
        );
        let e: UploadSessionFinishError =
            route(r#"{"error": {".tag": "path", "path": {".tag": "too_many_write_operations"}}}"#);
        assert!(e.is_transient());
        let e: UploadSessionFinishError = route(
            r#"{"error": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_closed"}}}"#,
        );
        assert_eq!(
            e,
            UploadSessionFinishError::LookupFailed(UploadSessionLookupError::NotClosed)
        );
    }

    #[test]
    fn start_errors() {
        let e: UploadSessionStartError =
            route(r#"{"error": {".tag": "concurrent_session_data_not_allowed"}}"#);
        assert_eq!(e, UploadSessionStartError::ConcurrentSessionDataNotAllowed);
    }

    #[test]
    fn list_folder_errors() {
        let e: ListFolderError = route(
            r#"{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, ListFolderError::Path(LookupError::NotFound));
        let e: ListFolderError =
            route(r#"{"error": {".tag": "path", "path": {".tag": "not_folder"}}}"#);
        assert_eq!(e, ListFolderError::Path(LookupError::NotFolder));
        let e: ListFolderContinueError =
            route(r#"{"error_summary": "reset/...", "error": {".tag": "reset"}}"#);
        assert_eq!(e, ListFolderContinueError::Reset);
    }

    #[test]
    fn create_folder_existing_folder() {
        // §3.10.
        let e: CreateFolderError = route(
            r#"{"error_summary": "path/conflict/folder/..", "error": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}}}"#,
        );
        assert_eq!(
            e,
            CreateFolderError::Path(WriteError::Conflict(WriteConflictError::Folder))
        );
        assert_eq!(
            e.to_string(),
            "a folder already exists at this path in Dropbox"
        );
    }

    #[test]
    fn get_metadata_not_found() {
        // §3.11 (observed body).
        let e: GetMetadataError = route(
            r#"{"error_summary": "path/not_found/.", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, GetMetadataError::Path(LookupError::NotFound));
        let e: GetMetadataError = route(
            r#"{"error": {".tag": "path", "path": {".tag": "malformed_path", "malformed_path": "trailing slash"}}}"#,
        );
        assert_eq!(
            e,
            GetMetadataError::Path(LookupError::MalformedPath(Some("trailing slash".into())))
        );
    }

    #[test]
    fn delete_errors() {
        // §3.12.
        let e: DeleteError = route(
            r#"{"error_summary": "path_lookup/not_found/..", "error": {".tag": "path_lookup", "path_lookup": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, DeleteError::PathLookup(LookupError::NotFound));
        let e: DeleteError = route(r#"{"error": {".tag": "too_many_write_operations"}}"#);
        assert!(e.is_transient());
        let e: DeleteError = route(
            r#"{"error": {".tag": "path_write", "path_write": {".tag": "no_write_permission"}}}"#,
        );
        assert_eq!(e, DeleteError::PathWrite(WriteError::NoWritePermission));
    }

    /// §3.14's example, byte for byte.
    const ALREADY_EXISTS: &str = r#"{"error_summary": "shared_link_already_exists/metadata/..",
 "error": {".tag": "shared_link_already_exists",
           "shared_link_already_exists": {".tag": "metadata",
              "metadata": {".tag": "file", "url": "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0",
                           "id": "id:a4ayc_80_OEAAAAAAAAAXw", "name": "a.jpg", "path_lower": "/photos/a.jpg",
                           "link_permissions": {"resolved_visibility": {".tag": "public"}, "can_revoke": true, "visibility_policies": [],
                                                "can_set_expiry": false, "can_remove_expiry": false, "allow_download": true,
                                                "can_allow_download": true, "can_disallow_download": false,
                                                "allow_comments": true, "team_restricts_comments": false},
                           "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
                           "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212}}}}"#;

    #[test]
    fn shared_link_already_exists_nests_the_link() {
        use CreateSharedLinkWithSettingsError as C;
        let e: C = route(ALREADY_EXISTS);
        let C::SharedLinkAlreadyExists(Some(link)) = &e else {
            panic!("{e:?}")
        };
        let SharedLinkMetadata::File(file) = link.as_ref() else {
            panic!("{link:?}")
        };
        assert_eq!(
            link.url(),
            "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0"
        );
        assert_eq!(link.path_lower(), Some("/photos/a.jpg"));
        assert_eq!(file.rev, "015f1a2b3c4d5e600000001a2b3c4d0");
        assert_eq!(
            e.to_string(),
            "a shared link to this item already exists in Dropbox"
        );
        assert!(!Error::Route(e).is_transient());

        // §3.14's body without metadata.
        let e: C = route(
            r#"{"error_summary": "shared_link_already_exists/..", "error": {".tag": "shared_link_already_exists"}}"#,
        );
        assert_eq!(e, C::SharedLinkAlreadyExists(None));
        // A null value, a member added later, or a link that does not decode: no link, but
        // still the same error, so that callers look the link up.
        for value in [
            "null",
            r#"{".tag": "other"}"#,
            r#"{".tag": "metadata", "metadata": {".tag": "file", "name": "no url"}}"#,
        ] {
            let e: C = route(&format!(
                r#"{{"error": {{".tag": "shared_link_already_exists", "shared_link_already_exists": {value}}}}}"#
            ));
            assert_eq!(e, C::SharedLinkAlreadyExists(None), "{value}");
        }
        // A flattened link (the mistake many mocks make) is not taken for the link either.
        let flattened = r#"{"error": {".tag": "shared_link_already_exists", "url": "https://x", "name": "a.jpg"}}"#;
        assert_eq!(route::<C>(flattened), C::SharedLinkAlreadyExists(None));
    }

    #[test]
    fn create_shared_link_other_errors() {
        use CreateSharedLinkWithSettingsError as C;
        let e: C = route(
            r#"{"error_summary": "settings_error/not_authorized/..", "error": {".tag": "settings_error", "settings_error": {".tag": "not_authorized"}}}"#,
        );
        assert_eq!(e, C::SettingsError(SharedLinkSettingsError::NotAuthorized));
        assert!(e.to_string().contains("paid plan"), "{e}");
        let e: C = route(
            r#"{"error": {".tag": "settings_error", "settings_error": {".tag": "invalid_settings"}}}"#,
        );
        assert_eq!(
            e,
            C::SettingsError(SharedLinkSettingsError::InvalidSettings)
        );
        let e: C = route(
            r#"{"error": {".tag": "settings_error", "settings_error": {".tag": "brand_new"}}}"#,
        );
        assert_eq!(e, C::SettingsError(SharedLinkSettingsError::Other));
        let e: C = route(
            r#"{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, C::Path(LookupError::NotFound));
        assert_eq!(e.to_string(), "nothing exists at this path in Dropbox");
        for (tag, expected) in [
            ("email_not_verified", C::EmailNotVerified),
            ("access_denied", C::AccessDenied),
            ("banned_member", C::BannedMember),
            ("too_many_shared_folders", C::TooManySharedFolders),
            ("quantum_link", C::Other),
        ] {
            let e: C = route(&format!(r#"{{"error": {{".tag": "{tag}"}}}}"#));
            assert_eq!(e, expected, "{tag}");
            assert!(!e.is_transient());
        }
        assert!(C::EmailNotVerified.to_string().contains("verify"));
    }

    #[test]
    fn list_shared_links_errors() {
        let e: ListSharedLinksError = route(
            r#"{"error_summary": "path/not_found/.", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, ListSharedLinksError::Path(LookupError::NotFound));
        let e: ListSharedLinksError =
            route(r#"{"error_summary": "reset/..", "error": {".tag": "reset"}}"#);
        assert_eq!(e, ListSharedLinksError::Reset);
        let e: ListSharedLinksError = route(r#"{"error": {".tag": "brand_new"}}"#);
        assert_eq!(e, ListSharedLinksError::Other);
    }

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
        // §4: the write-contention capture (header 1, no retry_after in the body).
        let e = decode_error::<VoidError>(
            429,
            Some("1"),
            br#"{"error_summary": "too_many_write_operations/.", "error": {"reason": {".tag": "too_many_write_operations"}}}"#,
            &[],
        );
        assert!(matches!(
            e,
            Error::RateLimited { reason: RateLimitReason::TooManyWriteOperations, retry_after }
                if retry_after == Duration::from_secs(1)
        ));
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        // The rate limit with retry_after in the body and no header.
        let e = decode_error::<VoidError>(
            429,
            None,
            br#"{"error_summary": "too_many_requests/...", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 15}}"#,
            &[],
        );
        assert!(matches!(
            e,
            Error::RateLimited { reason: RateLimitReason::TooManyRequests, retry_after }
                if retry_after == Duration::from_secs(15)
        ));
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
        assert!(matches!(
            e,
            Error::RateLimited { reason: RateLimitReason::TooManyRequests, retry_after }
                if retry_after == Duration::from_secs(1)
        ));
        let e = decode_error::<VoidError>(
            429,
            Some("7"),
            br#"{"error": {"reason": {".tag": "new_reason"}}}"#,
            &[],
        );
        assert!(matches!(
            e,
            Error::RateLimited {
                reason: RateLimitReason::Other,
                ..
            }
        ));
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

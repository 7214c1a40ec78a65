//! Upload sessions (`files/upload_session/start`, `append_v2`, `finish`), their batch forms
//! (`start_batch`, `append_batch`) and their batch commit (`finish_batch_v2`): a file larger
//! than one request, many small files sent in one request, or many files committed under one
//! namespace lock, and how each step fails.
//!
//! `append_batch` (the spec's `files.stone`, `upload_session/append_batch`) fails in two
//! layers: the whole request (a 409 [`UploadSessionAppendBatchError`]: the body's length or
//! content hash does not match the argument, or it is too large), or each entry on its own
//! ([`AppendBatchResult::Failure`], HTTP 200), where a failed entry leaves its session as it was
//! and the others land.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::commit::{CommitInfo, WriteError};
use super::metadata::FileMetadata;
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError, VoidError};
use crate::dropbox::http::{Progress, parse_json, parse_void};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

/// The largest file an upload session takes (2^41 − 2^22 bytes, about 2 TiB).
pub const MAX_FILE_SIZE: u64 = (1 << 41) - (1 << 22);

/// Most entries `upload_session/finish_batch_v2` accepts.
pub const MAX_BATCH_ENTRIES: usize = 1000;

/// Most entries one `append_batch` takes (the spec says 1000; the Python SDK 12.2.5 refuses
/// more than 500, and a 1000-entry Dropbox-API-Arg header is ~130 KB, so 500).
pub const MAX_APPEND_BATCH_ENTRIES: usize = 500;

/// Most sessions one `start_batch` starts (the spec's `num_sessions` is 1..=1000).
pub const MAX_START_BATCH_SESSIONS: usize = 1000;

/// Largest body of any one request (150 MiB).
pub const MAX_REQUEST_BODY: u64 = 150 * 1024 * 1024;

/// How an upload session accepts data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SessionType {
    /// Appends strictly in order (the default).
    Sequential,
    /// Appends in any order, in 4 MiB multiples.
    Concurrent,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionStartArg {
    /// No more data will follow: the session can only be finished.
    #[serde(default)]
    pub close: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// Content hash of this request's body only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionStartResult {
    pub session_id: String,
}

/// A position in an upload session: `offset` is the number of bytes already in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionCursor {
    pub session_id: String,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionAppendArg {
    pub cursor: UploadSessionCursor,
    /// This is the last append.
    #[serde(default)]
    pub close: bool,
    /// Content hash of this request's body only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionFinishArg {
    /// `offset` = bytes in the session before this call's body.
    pub cursor: UploadSessionCursor,
    pub commit: CommitInfo,
    /// Content hash of this call's body only; leave it out in `finish_batch_v2` entries, which
    /// carry no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// One entry of `upload_session/append_batch` (the spec's `UploadSessionAppendBatchArgEntry`):
/// the next `length` bytes of the request body go to `cursor.session_id` at `cursor.offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendBatchEntry {
    pub cursor: UploadSessionCursor,
    pub length: u64,
    /// This is the session's last append.
    pub close: bool,
}

/// Why one entry of `upload_session/append_batch` was not applied (the spec's
/// `UploadSessionAppendBatchEntryError`): the lookup members of `append_v2`'s error, without
/// `not_closed`, `payload_too_large` or `content_hash_mismatch`, which concern the whole
/// request here. All members are void or structs, so serde's tagging reads it (see `union`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum AppendBatchEntryError {
    #[error("the upload session is unknown or has expired (sessions last 7 days)")]
    NotFound,
    /// The session holds `correct_offset` bytes, not what the cursor said: if that is the sent
    /// offset plus this entry's length, an earlier attempt whose reply was lost already landed.
    #[error("the upload session holds {correct_offset} bytes, not the number sent")]
    IncorrectOffset { correct_offset: u64 },
    #[error("the upload session is already closed")]
    Closed,
    #[error("the file is larger than Dropbox allows")]
    TooLarge,
    #[error("a concurrent upload session's offset must be a multiple of 4 MiB")]
    ConcurrentSessionInvalidOffset,
    #[error("a concurrent upload session's chunks must be multiples of 4 MiB")]
    ConcurrentSessionInvalidDataSize,
    #[error("Dropbox could not append to the upload session")]
    #[serde(other)]
    Other,
}

/// None of an entry's failures goes away by sending the same piece again unchanged: the
/// offset must change (`incorrect_offset`) or the session is unusable. The default answer
/// (not transient) is the right one.
impl RouteError for AppendBatchEntryError {}

/// The same failure as `append_v2` reports it, so an entry's failure can be handled where a
/// single append's is.
impl From<AppendBatchEntryError> for UploadSessionLookupError {
    fn from(error: AppendBatchEntryError) -> Self {
        match error {
            AppendBatchEntryError::NotFound => UploadSessionLookupError::NotFound,
            AppendBatchEntryError::IncorrectOffset { correct_offset } => {
                UploadSessionLookupError::IncorrectOffset { correct_offset }
            }
            AppendBatchEntryError::Closed => UploadSessionLookupError::Closed,
            AppendBatchEntryError::TooLarge => UploadSessionLookupError::TooLarge,
            AppendBatchEntryError::ConcurrentSessionInvalidOffset => {
                UploadSessionLookupError::ConcurrentSessionInvalidOffset
            }
            AppendBatchEntryError::ConcurrentSessionInvalidDataSize => {
                UploadSessionLookupError::ConcurrentSessionInvalidDataSize
            }
            AppendBatchEntryError::Other => UploadSessionLookupError::Other,
        }
    }
}

stone_union! {
    /// `files/upload_session/append_batch`'s error (409): the whole request was refused and no
    /// entry was applied.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum UploadSessionAppendBatchError {
        #[error("the upload is too large for one request (over 150 MiB)")]
        "payload_too_large" => PayloadTooLarge,
        #[error("the data Dropbox received does not match its content hash")]
        "content_hash_mismatch" => ContentHashMismatch,
        #[error("the request body's length is not the sum of the entries' lengths")]
        "length_mismatch" => LengthMismatch,
        #[error("Dropbox could not append the batch")]
        _ => Other,
    }
}

impl RouteError for UploadSessionAppendBatchError {}

stone_union! {
    /// One result of `upload_session/append_batch`, in request order (the spec's closed union
    /// `UploadSessionAppendBatchResultEntry`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum AppendBatchResult {
        "success" => Success,
        "failure" => Failure(AppendBatchEntryError) as nested,
    }
}

stone_union! {
    /// One result of `upload_session/finish_batch_v2`, in request order (a closed union).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum FinishBatchEntry {
        "success" => Success(FileMetadata) as flattened,
        "failure" => Failure(UploadSessionFinishError) as nested,
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

/// An upload session could not be used: the error of `files/upload_session/append_v2`, and
/// what `upload_session/finish` wraps in `lookup_failed`. Dropbox's `UploadSessionAppendError`
/// is the lookup union plus `content_hash_mismatch`, so one enum serves both (a
/// `content_hash_mismatch` never arrives inside `lookup_failed`: `finish` reports it at its top
/// level). Unlike `finish`, append's session errors are not wrapped in `lookup_failed`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum UploadSessionLookupError {
    #[error("the upload session is unknown or has expired (sessions last 7 days)")]
    NotFound,
    /// The session holds `correct_offset` bytes, not what the cursor said. After an append, if
    /// that is the sent offset plus this body's length, an earlier attempt whose reply was lost
    /// already landed.
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
    #[error("the upload session cannot be used")]
    #[serde(other)]
    Other,
}

/// `files/upload_session/append_v2`'s error: the lookup union itself (see above).
pub type UploadSessionAppendError = UploadSessionLookupError;

impl RouteError for UploadSessionLookupError {}

stone_union! {
    /// `files/upload_session/finish`, and each failed entry of `finish_batch_v2`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum UploadSessionFinishError {
        #[error("{0}")]
        "lookup_failed" => LookupFailed(UploadSessionLookupError) as nested,
        /// The data stays in the session: the commit can be retried with an empty body.
        #[error("{0}")]
        "path" => Path(WriteError) as nested,
        #[error("Dropbox rejected the file's properties")]
        "properties_error" => PropertiesError,
        #[error("too many shared folders as targets")]
        "too_many_shared_folder_targets" => TooManySharedFolderTargets,
        #[error("too many writes at once in this Dropbox; retrying later")]
        "too_many_write_operations" => TooManyWriteOperations,
        #[error("a concurrent upload session cannot take data when it finishes")]
        "concurrent_session_data_not_allowed" => ConcurrentSessionDataNotAllowed,
        #[error("the concurrent upload session must be closed before it finishes")]
        "concurrent_session_not_closed" => ConcurrentSessionNotClosed,
        #[error("the concurrent upload session is missing data")]
        "concurrent_session_missing_data" => ConcurrentSessionMissingData,
        #[error("the upload is too large for one request (over 150 MiB)")]
        "payload_too_large" => PayloadTooLarge,
        #[error("the data Dropbox received does not match its content hash")]
        "content_hash_mismatch" => ContentHashMismatch,
        #[error("this Dropbox folder requires encryption, which uploads through the API cannot do")]
        "encryption_not_supported" => EncryptionNotSupported,
        #[error("Dropbox could not commit the upload")]
        _ => Other,
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

impl Client {
    /// `files/upload_session/start`; the body (possibly empty) is the first chunk.
    pub async fn upload_session_start(
        &self,
        token: &Secret,
        arg: &UploadSessionStartArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<UploadSessionStartResult, Error<UploadSessionStartError>> {
        self.upload_route(
            token,
            "2/files/upload_session/start",
            arg,
            body,
            progress,
            parse_json,
        )
        .await
    }

    /// `files/upload_session/append_v2`.
    pub async fn upload_session_append(
        &self,
        token: &Secret,
        arg: &UploadSessionAppendArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<(), Error<UploadSessionAppendError>> {
        self.upload_route(
            token,
            "2/files/upload_session/append_v2",
            arg,
            body,
            progress,
            parse_void,
        )
        .await
    }

    /// `files/upload_session/finish`; the body is the last chunk, or empty.
    pub async fn upload_session_finish(
        &self,
        token: &Secret,
        arg: &UploadSessionFinishArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<FileMetadata, Error<UploadSessionFinishError>> {
        self.upload_route(
            token,
            "2/files/upload_session/finish",
            arg,
            body,
            progress,
            parse_json,
        )
        .await
    }

    /// `files/upload_session/finish_batch_v2`: commits closed sessions under one namespace
    /// lock. HTTP 200 even when entries fail; the result has one entry per argument, in order.
    pub async fn upload_session_finish_batch(
        &self,
        token: &Secret,
        entries: &[UploadSessionFinishArg],
    ) -> Result<Vec<FinishBatchEntry>, Error<VoidError>> {
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(Error::BadInput(format!(
                "a batch commit takes at most {MAX_BATCH_ENTRIES} files, not {}",
                entries.len()
            )));
        }
        #[derive(Serialize)]
        struct Arg<'a> {
            entries: &'a [UploadSessionFinishArg],
        }
        #[derive(serde::Deserialize)]
        struct Result {
            entries: Vec<FinishBatchEntry>,
        }
        let result: Result = self
            .rpc(
                token,
                "2/files/upload_session/finish_batch_v2",
                &Arg { entries },
            )
            .await?;
        check_count(result.entries.len(), entries.len(), "entries")?;
        Ok(result.entries)
    }

    /// `files/upload_session/start_batch`: `num_sessions` empty sequential sessions.
    pub async fn upload_session_start_batch(
        &self,
        token: &Secret,
        num_sessions: usize,
    ) -> Result<Vec<String>, Error<VoidError>> {
        if !(1..=MAX_START_BATCH_SESSIONS).contains(&num_sessions) {
            return Err(Error::BadInput(format!(
                "a batch start makes 1 to {MAX_START_BATCH_SESSIONS} upload sessions, not \
                 {num_sessions}"
            )));
        }
        #[derive(Serialize)]
        struct Arg {
            num_sessions: usize,
        }
        #[derive(Deserialize)]
        struct Result {
            session_ids: Vec<String>,
        }
        let result: Result = self
            .rpc(
                token,
                "2/files/upload_session/start_batch",
                &Arg { num_sessions },
            )
            .await?;
        check_count(result.session_ids.len(), num_sessions, "sessions")?;
        Ok(result.session_ids)
    }

    /// `files/upload_session/append_batch`: `body` is the entries' pieces in order;
    /// `content_hash` the content hash of the whole body. One result per entry, in order.
    pub async fn upload_session_append_batch(
        &self,
        token: &Secret,
        entries: &[AppendBatchEntry],
        body: Bytes,
        content_hash: Option<String>,
        progress: Option<Progress>,
    ) -> Result<Vec<AppendBatchResult>, Error<UploadSessionAppendBatchError>> {
        check_append_batch(entries, body.len() as u64)?;
        #[derive(Serialize)]
        struct Arg<'a> {
            entries: &'a [AppendBatchEntry],
            #[serde(skip_serializing_if = "Option::is_none")]
            content_hash: Option<String>,
        }
        #[derive(Deserialize)]
        struct Result {
            entries: Vec<AppendBatchResult>,
        }
        let result: Result = self
            .upload_route(
                token,
                "2/files/upload_session/append_batch",
                &Arg {
                    entries,
                    content_hash,
                },
                body,
                progress,
                parse_json,
            )
            .await?;
        check_count(result.entries.len(), entries.len(), "entries")?;
        Ok(result.entries)
    }
}

/// What the spec's validators and the route's own errors would refuse, refused before a byte
/// is sent: an empty or too long entry list, lengths that do not add up to the body
/// (`length_mismatch`), or a body over the limit (`payload_too_large`).
fn check_append_batch<E>(entries: &[AppendBatchEntry], body_len: u64) -> Result<(), Error<E>> {
    if entries.is_empty() || entries.len() > MAX_APPEND_BATCH_ENTRIES {
        return Err(Error::BadInput(format!(
            "a batch append takes 1 to {MAX_APPEND_BATCH_ENTRIES} pieces, not {}",
            entries.len()
        )));
    }
    let total = entries
        .iter()
        .try_fold(0u64, |sum, entry| sum.checked_add(entry.length));
    if total != Some(body_len) {
        return Err(Error::BadInput(format!(
            "a batch append's pieces must add up to its body ({body_len} bytes); they add up \
             to {}",
            total.map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string())
        )));
    }
    if body_len > MAX_REQUEST_BODY {
        return Err(Error::BadInput(format!(
            "a batch append's body is {body_len} bytes, over Dropbox's 150 MiB per request"
        )));
    }
    Ok(())
}

/// A batch route's result must have one item per item asked for.
fn check_count<E>(got: usize, sent: usize, what: &str) -> Result<(), Error<E>> {
    if got == sent {
        return Ok(());
    }
    Err(Error::Decode {
        status: 200,
        message: format!("{got} results for {sent} {what}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::http::status::route;
    use crate::dropbox::{WriteConflictError, WriteMode};
    use serde_json::json;

    #[test]
    fn session_args() {
        let start = UploadSessionStartArg {
            close: false,
            session_type: Some(SessionType::Concurrent),
            content_hash: None,
        };
        assert_eq!(
            serde_json::to_value(&start).unwrap(),
            json!({"close": false, "session_type": {".tag": "concurrent"}})
        );
        let append = UploadSessionAppendArg {
            cursor: UploadSessionCursor {
                session_id: "pid_upload_session:XYZ".into(),
                offset: 8388608,
            },
            close: false,
            content_hash: None,
        };
        // §3.4's header example.
        assert_eq!(
            serde_json::to_value(&append).unwrap(),
            json!({"cursor": {"session_id": "pid_upload_session:XYZ", "offset": 8388608}, "close": false})
        );
        let finish = UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id: "s".into(),
                offset: 10,
            },
            commit: CommitInfo {
                mode: WriteMode::Overwrite,
                ..CommitInfo::new("/b.jpg")
            },
            content_hash: None,
        };
        assert_eq!(
            serde_json::to_value(&finish).unwrap(),
            json!({"cursor": {"session_id": "s", "offset": 10},
                   "commit": {"path": "/b.jpg", "mode": {".tag": "overwrite"}, "autorename": false,
                              "mute": false, "strict_conflict": false}})
        );
    }

    #[test]
    fn finish_batch_entries_from_reference() {
        // §3.7.
        let body = r#"{"entries": [
  {".tag": "success", "name": "a.jpg", "path_lower": "/photos/a.jpg", "path_display": "/Photos/a.jpg", "id": "id:a4ayc_80_OEAAAAAAAAAXw",
   "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z", "rev": "015f1a2b3c4d5e600000001a2b3c4d0",
   "size": 7212, "is_downloadable": true, "content_hash": "9eb62f609dee341fdcc4521fd6d5a78d9e5c5bb36d844618d9e8d1b32f28ba95"},
  {".tag": "failure", "failure": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}},
  {".tag": "failure", "failure": {".tag": "too_many_write_operations"}}
]}"#;
        #[derive(Deserialize)]
        struct Entries {
            entries: Vec<FinishBatchEntry>,
        }
        use crate::dropbox::{RouteError, WriteConflictError, WriteError};
        let entries = serde_json::from_str::<Entries>(body).unwrap().entries;
        assert_eq!(entries.len(), 3);
        match &entries[0] {
            FinishBatchEntry::Success(m) => {
                assert_eq!(m.path_display.as_deref(), Some("/Photos/a.jpg"));
                assert_eq!(m.size, 7212);
                assert_eq!(
                    m.content_hash.as_deref(),
                    Some("9eb62f609dee341fdcc4521fd6d5a78d9e5c5bb36d844618d9e8d1b32f28ba95")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            entries[1],
            FinishBatchEntry::Failure(UploadSessionFinishError::Path(WriteError::Conflict(
                WriteConflictError::File
            )))
        );
        assert_eq!(
            entries[2],
            FinishBatchEntry::Failure(UploadSessionFinishError::TooManyWriteOperations)
        );
        let FinishBatchEntry::Failure(busy) = &entries[2] else {
            unreachable!()
        };
        assert!(busy.is_transient());
        // The union is closed: an unknown entry tag is a decode error, not a silent success.
        assert!(serde_json::from_str::<FinishBatchEntry>(r#"{".tag": "pending"}"#).is_err());
    }

    #[test]
    fn append_errors_are_top_level() {
        // §3.4.
        let cases = [
            (
                r#"{"error_summary": "incorrect_offset/", "error": {".tag": "incorrect_offset", "correct_offset": 4194304}}"#,
                UploadSessionAppendError::IncorrectOffset {
                    correct_offset: 4194304,
                },
            ),
            (
                r#"{"error_summary": "closed/..", "error": {".tag": "closed"}}"#,
                UploadSessionAppendError::Closed,
            ),
            (
                r#"{"error": {".tag": "not_found"}}"#,
                UploadSessionAppendError::NotFound,
            ),
            (
                r#"{"error": {".tag": "too_large"}}"#,
                UploadSessionAppendError::TooLarge,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(route::<UploadSessionAppendError>(body), want, "{body}");
        }
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
    fn append_batch_entry_arg() {
        // The spec's `UploadSessionAppendBatchArgEntry`: cursor, length, close.
        let entry = AppendBatchEntry {
            cursor: UploadSessionCursor {
                session_id: "pid_upload_session:A".into(),
                offset: 12,
            },
            length: 12345,
            close: true,
        };
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({"cursor": {"session_id": "pid_upload_session:A", "offset": 12},
                   "length": 12345, "close": true})
        );
    }

    #[test]
    fn append_batch_results_decode_per_entry() {
        #[derive(Deserialize)]
        struct Entries {
            entries: Vec<AppendBatchResult>,
        }
        let body = r#"{"entries": [
            {".tag": "success"},
            {".tag": "failure", "failure": {".tag": "incorrect_offset", "correct_offset": 4096}},
            {".tag": "failure", "failure": {".tag": "closed"}},
            {".tag": "failure", "failure": {".tag": "not_found"}},
            {".tag": "failure", "failure": {".tag": "too_large"}},
            {".tag": "failure", "failure": {".tag": "concurrent_session_invalid_offset"}},
            {".tag": "failure", "failure": {".tag": "concurrent_session_invalid_data_size"}},
            {".tag": "failure", "failure": {".tag": "a_future_reason"}},
            "success"
        ]}"#;
        let entries = serde_json::from_str::<Entries>(body).unwrap().entries;
        use AppendBatchEntryError as E;
        let failure = AppendBatchResult::Failure;
        assert_eq!(
            entries,
            [
                AppendBatchResult::Success,
                failure(E::IncorrectOffset {
                    correct_offset: 4096
                }),
                failure(E::Closed),
                failure(E::NotFound),
                failure(E::TooLarge),
                failure(E::ConcurrentSessionInvalidOffset),
                failure(E::ConcurrentSessionInvalidDataSize),
                // The entry union is open: a reason added later is still a failure.
                failure(E::Other),
                AppendBatchResult::Success,
            ]
        );
        // The result union is closed: an unknown tag is a decode error, not a silent success.
        assert!(serde_json::from_str::<AppendBatchResult>(r#"{".tag": "pending"}"#).is_err());
        // `incorrect_offset` without its offset is not a usable answer.
        assert!(
            serde_json::from_str::<AppendBatchResult>(
                r#"{".tag": "failure", "failure": {".tag": "incorrect_offset"}}"#
            )
            .is_err()
        );
        // None is transient: an entry is never worth resending unchanged.
        assert!(entries.iter().all(|e| match e {
            AppendBatchResult::Failure(e) => !e.is_transient(),
            AppendBatchResult::Success => true,
        }));
    }

    #[test]
    fn append_batch_entry_errors_read_as_append_errors() {
        let pairs = [
            (
                AppendBatchEntryError::IncorrectOffset { correct_offset: 9 },
                UploadSessionLookupError::IncorrectOffset { correct_offset: 9 },
            ),
            (
                AppendBatchEntryError::NotFound,
                UploadSessionLookupError::NotFound,
            ),
            (
                AppendBatchEntryError::Closed,
                UploadSessionLookupError::Closed,
            ),
            (
                AppendBatchEntryError::TooLarge,
                UploadSessionLookupError::TooLarge,
            ),
            (
                AppendBatchEntryError::Other,
                UploadSessionLookupError::Other,
            ),
        ];
        for (entry, lookup) in pairs {
            assert_eq!(UploadSessionLookupError::from(entry), lookup);
        }
    }

    #[test]
    fn append_batch_errors_are_whole_request() {
        // The spec's `UploadSessionAppendBatchError`, an open union of void members.
        let cases = [
            (
                r#"{"error_summary": "length_mismatch/..", "error": {".tag": "length_mismatch"}}"#,
                UploadSessionAppendBatchError::LengthMismatch,
            ),
            (
                r#"{"error_summary": "content_hash_mismatch/", "error": {".tag": "content_hash_mismatch"}}"#,
                UploadSessionAppendBatchError::ContentHashMismatch,
            ),
            (
                r#"{"error": {".tag": "payload_too_large"}}"#,
                UploadSessionAppendBatchError::PayloadTooLarge,
            ),
            (
                r#"{"error": "length_mismatch"}"#,
                UploadSessionAppendBatchError::LengthMismatch,
            ),
            (
                r#"{"error": {".tag": "future_error"}}"#,
                UploadSessionAppendBatchError::Other,
            ),
        ];
        for (body, want) in cases {
            let e = route::<UploadSessionAppendBatchError>(body);
            assert_eq!(e, want, "{body}");
            assert!(!Error::Route(e).is_transient(), "{body}");
        }
    }

    #[test]
    fn start_errors() {
        let e: UploadSessionStartError =
            route(r#"{"error": {".tag": "concurrent_session_data_not_allowed"}}"#);
        assert_eq!(e, UploadSessionStartError::ConcurrentSessionDataNotAllowed);
    }
}

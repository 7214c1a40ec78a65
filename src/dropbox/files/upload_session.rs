//! Upload sessions (`files/upload_session/start`, `append_v2`, `finish`) and their batch commit
//! (`finish_batch_v2`): a file larger than one request, or many files committed under one
//! namespace lock, and how each step fails.

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
        if result.entries.len() != entries.len() {
            return Err(Error::Decode {
                status: 200,
                message: format!(
                    "{} results for {} entries",
                    result.entries.len(),
                    entries.len()
                ),
            });
        }
        Ok(result.entries)
    }
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
    fn start_errors() {
        let e: UploadSessionStartError =
            route(r#"{"error": {".tag": "concurrent_session_data_not_allowed"}}"#);
        assert_eq!(e, UploadSessionStartError::ConcurrentSessionDataNotAllowed);
    }
}

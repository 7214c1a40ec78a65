//! `files/upload`: a whole file in one request (up to 150 MiB), its argument and its errors.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::commit::{CommitInfo, WriteError};
use super::metadata::FileMetadata;
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError};
use crate::dropbox::http::{Progress, parse_json};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

/// `files/upload`: the commit plus the content hash of this request's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadArg {
    #[serde(flatten)]
    pub commit: CommitInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// `files/upload`'s commit failed; the bytes were kept in an upload session, so the commit can
/// be retried with `upload_session/finish` at offset = body length.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadWriteFailed {
    pub reason: WriteError,
    pub upload_session_id: String,
}

stone_union! {
    /// `files/upload`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum UploadError {
        #[error("{}", .0.reason)]
        // UploadWriteFailed is a plain struct, so its fields sit beside `.tag`.
        "path" => Path(UploadWriteFailed) as flattened,
        #[error("Dropbox rejected the file's properties")]
        "properties_error" => PropertiesError,
        #[error("the upload is too large for one request (over 150 MiB)")]
        "payload_too_large" => PayloadTooLarge,
        #[error("the data Dropbox received does not match its content hash")]
        "content_hash_mismatch" => ContentHashMismatch,
        #[error("this Dropbox folder requires encryption, which uploads through the API cannot do")]
        "encryption_not_supported" => EncryptionNotSupported,
        #[error("Dropbox refused the upload")]
        _ => Other,
    }
}

impl RouteError for UploadError {
    fn is_transient(&self) -> bool {
        matches!(self, UploadError::Path(failed) if failed.reason.is_transient())
    }
}

impl Client {
    /// `files/upload`: one request, up to 150 MiB.
    pub async fn upload(
        &self,
        token: &Secret,
        arg: &UploadArg,
        body: Bytes,
        progress: Option<Progress>,
    ) -> Result<FileMetadata, Error<UploadError>> {
        self.upload_route(token, "2/files/upload", arg, body, progress, parse_json)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::http::status::{decode_error, route};
    use crate::dropbox::{WriteConflictError, WriteError};
    use serde_json::json;

    #[test]
    fn upload_arg_flattens_commit_info() {
        let arg = UploadArg {
            commit: CommitInfo {
                client_modified: Some("2024-05-01T12:00:00Z".into()),
                ..CommitInfo::new("/Photos/IMG_0001.jpg")
            },
            content_hash: Some("e3b0".into()),
        };
        assert_eq!(
            serde_json::to_value(&arg).unwrap(),
            json!({"path": "/Photos/IMG_0001.jpg", "mode": {".tag": "add"}, "autorename": false,
                   "client_modified": "2024-05-01T12:00:00Z", "mute": false, "strict_conflict": false,
                   "content_hash": "e3b0"})
        );
        let bare = UploadArg {
            commit: CommitInfo::new("/a"),
            content_hash: None,
        };
        let value = serde_json::to_value(&bare).unwrap();
        assert!(value.get("content_hash").is_none() && value.get("client_modified").is_none());
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
}

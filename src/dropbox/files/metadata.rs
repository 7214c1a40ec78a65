//! `files/get_metadata`, and the metadata every `files` route answers with: a file, a folder or
//! a deleted entry, and why a path could not be looked up.

use serde::{Deserialize, Serialize};

use super::PathArg;
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError, detail};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

fn yes() -> bool {
    true
}

/// A file as Dropbox stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// Last path component, in its original case.
    pub name: String,
    /// The whole path in lower case: the key to compare paths by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
    pub id: String,
    pub client_modified: String,
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
    /// Hash of the whole file (see [`super::content_hash`]); optional in the spec, present for
    /// files in practice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(default = "yes")]
    pub is_downloadable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
    pub id: String,
}

/// An entry that was deleted (only from `list_folder` with `include_deleted`, or its changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
}

/// Metadata where the declared type is the parent: it carries `.tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum Metadata {
    File(FileMetadata),
    Folder(FolderMetadata),
    Deleted(DeletedMetadata),
}

impl Metadata {
    pub fn name(&self) -> &str {
        match self {
            Metadata::File(m) => &m.name,
            Metadata::Folder(m) => &m.name,
            Metadata::Deleted(m) => &m.name,
        }
    }

    pub fn path_lower(&self) -> Option<&str> {
        match self {
            Metadata::File(m) => m.path_lower.as_deref(),
            Metadata::Folder(m) => m.path_lower.as_deref(),
            Metadata::Deleted(m) => m.path_lower.as_deref(),
        }
    }

    pub fn path_display(&self) -> Option<&str> {
        match self {
            Metadata::File(m) => m.path_display.as_deref(),
            Metadata::Folder(m) => m.path_display.as_deref(),
            Metadata::Deleted(m) => m.path_display.as_deref(),
        }
    }
}

stone_union! {
    /// Why a path could not be looked up.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum LookupError {
        #[error("Dropbox refuses this path as malformed{}", detail(.0))]
        "malformed_path" => MalformedPath(Option<String>) as nested_opt,
        #[error("nothing exists at this path in Dropbox")]
        "not_found" => NotFound,
        #[error("this path in Dropbox is a folder, not a file")]
        "not_file" => NotFile,
        #[error("this path in Dropbox is a file, not a folder")]
        "not_folder" => NotFolder,
        #[error("Dropbox restricts this content")]
        "restricted_content" => RestrictedContent,
        #[error("Dropbox does not support this content type")]
        "unsupported_content_type" => UnsupportedContentType,
        #[error("this path is locked in Dropbox")]
        "locked" => Locked,
        #[error("Dropbox cannot look up this path")]
        _ => Other,
    }
}

stone_union! {
    /// `files/get_metadata` (closed in the spec; `Other` as for
    /// [`CreateFolderError`](super::CreateFolderError)).
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum GetMetadataError {
        #[error("{0}")]
        "path" => Path(LookupError) as nested,
        #[error("Dropbox cannot look up this path")]
        _ => Other,
    }
}

impl RouteError for GetMetadataError {}

impl Client {
    /// `files/get_metadata` (not for the root, which Dropbox refuses).
    pub async fn get_metadata(
        &self,
        token: &Secret,
        path: &str,
    ) -> Result<Metadata, Error<GetMetadataError>> {
        self.rpc(token, "2/files/get_metadata", &PathArg { path })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::fixtures::FILE_METADATA;
    use crate::dropbox::http::status::route;

    #[test]
    fn file_metadata_from_reference() {
        let m: FileMetadata = serde_json::from_str(FILE_METADATA).unwrap();
        assert_eq!(m.name, "IMG_0001.jpg");
        assert_eq!(m.path_lower.as_deref(), Some("/photos/2024/img_0001.jpg"));
        assert_eq!(m.size, 7212);
        assert_eq!(m.rev, "015f1a2b3c4d5e600000001a2b3c4d0");
        assert_eq!(
            m.content_hash.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert!(m.is_downloadable);
        // Declared as Metadata, the same object carries `.tag` (get_metadata, §3.11).
        let tagged = FILE_METADATA.replacen('{', r#"{".tag": "file", "#, 1);
        assert_eq!(
            serde_json::from_str::<Metadata>(&tagged).unwrap(),
            Metadata::File(m)
        );
    }

    #[test]
    fn unknown_fields_and_defaults() {
        let m: FileMetadata = serde_json::from_str(
            r#"{"name": "a", "id": "id:1", "client_modified": "2024-05-01T12:00:00Z",
                "server_modified": "2024-05-01T12:00:00Z", "rev": "0123456789", "size": 1,
                "media_info": {".tag": "pending"}, "sharing_info": {"read_only": false}, "new_field": [1]}"#,
        )
        .unwrap();
        assert!(m.is_downloadable, "is_downloadable defaults to true");
        assert_eq!(m.path_lower, None);
        assert_eq!(m.content_hash, None);
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
}

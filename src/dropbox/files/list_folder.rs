//! `files/list_folder` and `files/list_folder/continue`: a folder's entries page by page, and
//! later its changes. One call per page; paging is the caller's.

use serde::{Deserialize, Serialize};

use super::metadata::{LookupError, Metadata};
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

/// `Default` lists the root, non-recursively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFolderArg {
    /// The folder; the root is `""` (Dropbox refuses `"/"`).
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default)]
    pub include_deleted: bool,
    /// Approximate page size, 1..=2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl ListFolderArg {
    pub fn new(path: impl Into<String>) -> ListFolderArg {
        ListFolderArg {
            path: path.into(),
            recursive: false,
            include_deleted: false,
            limit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFolderResult {
    pub entries: Vec<Metadata>,
    /// Pass to `list_folder/continue` for the next page, or later for changes.
    pub cursor: String,
    pub has_more: bool,
}

stone_union! {
    /// `files/list_folder`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum ListFolderError {
        #[error("{0}")]
        "path" => Path(LookupError) as nested,
        #[error("Dropbox rejected a property template")]
        "template_error" => TemplateError,
        #[error("Dropbox cannot list this folder")]
        _ => Other,
    }
}

impl RouteError for ListFolderError {}

stone_union! {
    /// `files/list_folder/continue`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum ListFolderContinueError {
        #[error("{0}")]
        "path" => Path(LookupError) as nested,
        /// The cursor is no longer valid: list the folder again from the start.
        #[error("the folder listing expired; it must start over")]
        "reset" => Reset,
        #[error("Dropbox cannot continue listing this folder")]
        _ => Other,
    }
}

impl RouteError for ListFolderContinueError {}

impl Client {
    /// `files/list_folder`; continue with [`Client::list_folder_continue`] while `has_more`.
    pub async fn list_folder(
        &self,
        token: &Secret,
        arg: &ListFolderArg,
    ) -> Result<ListFolderResult, Error<ListFolderError>> {
        self.rpc(token, "2/files/list_folder", arg).await
    }

    /// `files/list_folder/continue`: the next page, or the changes since `cursor`.
    pub async fn list_folder_continue(
        &self,
        token: &Secret,
        cursor: &str,
    ) -> Result<ListFolderResult, Error<ListFolderContinueError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            cursor: &'a str,
        }
        self.rpc(token, "2/files/list_folder/continue", &Arg { cursor })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::http::status::route;
    use crate::dropbox::{DeletedMetadata, FolderMetadata};
    use serde_json::json;

    #[test]
    fn list_folder_result_from_reference() {
        // §3.9.
        let r: ListFolderResult = serde_json::from_str(
            r#"{"entries": [{".tag": "folder", "name": "Photos", "path_lower": "/photos", "path_display": "/Photos", "id": "id:abc"},
             {".tag": "deleted", "name": "x.jpg", "path_lower": "/x.jpg", "path_display": "/x.jpg"}],
 "cursor": "AAE…", "has_more": false}"#,
        )
        .unwrap();
        assert_eq!(r.cursor, "AAE…");
        assert!(!r.has_more);
        assert_eq!(
            r.entries,
            vec![
                Metadata::Folder(FolderMetadata {
                    name: "Photos".into(),
                    path_lower: Some("/photos".into()),
                    path_display: Some("/Photos".into()),
                    id: "id:abc".into(),
                }),
                Metadata::Deleted(DeletedMetadata {
                    name: "x.jpg".into(),
                    path_lower: Some("/x.jpg".into()),
                    path_display: Some("/x.jpg".into()),
                }),
            ]
        );
        assert_eq!(r.entries[1].path_lower(), Some("/x.jpg"));
        let arg = serde_json::to_value(ListFolderArg::new("")).unwrap();
        assert_eq!(
            arg,
            json!({"path": "", "recursive": false, "include_deleted": false})
        );
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
}

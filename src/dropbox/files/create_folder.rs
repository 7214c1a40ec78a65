//! `files/create_folder_v2`: a folder, and why it could not be made (an existing folder among
//! the reasons, which callers usually take as success).

use serde::Serialize;

use super::commit::WriteError;
use super::metadata::FolderMetadata;
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

stone_union! {
    /// `files/create_folder_v2`. The spec closes this union; `Other` is here anyway, so that a tag
    /// added later is reported as a refusal rather than as an unreadable reply.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum CreateFolderError {
        /// `Path(Conflict(Folder))` means the folder already exists, which callers usually treat
        /// as success.
        #[error("{0}")]
        "path" => Path(WriteError) as nested,
        #[error("Dropbox cannot create this folder")]
        _ => Other,
    }
}

impl RouteError for CreateFolderError {
    fn is_transient(&self) -> bool {
        matches!(self, CreateFolderError::Path(e) if e.is_transient())
    }
}

impl Client {
    /// `files/create_folder_v2`. An existing folder is
    /// `Route(Path(Conflict(WriteConflictError::Folder)))`.
    pub async fn create_folder(
        &self,
        token: &Secret,
        path: &str,
        autorename: bool,
    ) -> Result<FolderMetadata, Error<CreateFolderError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            path: &'a str,
            autorename: bool,
        }
        #[derive(serde::Deserialize)]
        struct Result {
            metadata: FolderMetadata,
        }
        let result: Result = self
            .rpc(token, "2/files/create_folder_v2", &Arg { path, autorename })
            .await?;
        Ok(result.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::WriteConflictError;
    use crate::dropbox::http::status::route;

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
}

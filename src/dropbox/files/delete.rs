//! `files/delete_v2`: a file or folder (with its contents) deleted, and why it could not be.

use super::PathArg;
use super::commit::WriteError;
use super::metadata::{LookupError, Metadata};
use crate::dropbox::Client;
use crate::dropbox::error::{Error, RouteError};
use crate::dropbox::union::stone_union;
use crate::secret::Secret;

stone_union! {
    /// `files/delete_v2`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum DeleteError {
        #[error("{0}")]
        "path_lookup" => PathLookup(LookupError) as nested,
        #[error("{0}")]
        "path_write" => PathWrite(WriteError) as nested,
        #[error("too many writes at once in this Dropbox; retrying later")]
        "too_many_write_operations" => TooManyWriteOperations,
        #[error("too many files to delete at once")]
        "too_many_files" => TooManyFiles,
        #[error("Dropbox cannot delete this path")]
        _ => Other,
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

impl Client {
    /// `files/delete_v2`: the item as it was. Folders are deleted with their contents.
    pub async fn delete(&self, token: &Secret, path: &str) -> Result<Metadata, Error<DeleteError>> {
        #[derive(serde::Deserialize)]
        struct Result {
            metadata: Metadata,
        }
        let result: Result = self
            .rpc(token, "2/files/delete_v2", &PathArg { path })
            .await?;
        Ok(result.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::http::status::route;

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
}

//! The `files` namespace of the API (the spec's `files.stone`), one module per route family:
//! each holds the route's argument, result, error union and [`Client`](super::Client) method.
//!
//! - `commit`: where and how a file is written (`CommitInfo`, `WriteMode`) and why a write
//!   fails (`WriteError`), shared by the routes that write.
//! - `metadata`: files, folders and deleted entries as Dropbox describes them, why a path could
//!   not be looked up (`LookupError`), and `get_metadata`.
//! - `upload`: `files/upload`, a whole file in one request.
//! - `upload_session`: `upload_session/start`, `append_v2`, `finish`, `start_batch`,
//!   `append_batch` and `finish_batch_v2`.
//! - `list_folder`: `list_folder` and `list_folder/continue`.
//! - `create_folder`, `delete`: `create_folder_v2` and `delete_v2`.

mod commit;
mod create_folder;
mod delete;
mod list_folder;
mod metadata;
mod upload;
mod upload_session;

use serde::Serialize;

pub use commit::{CommitInfo, WriteConflictError, WriteError, WriteMode, timestamp};
pub use create_folder::CreateFolderError;
pub use delete::DeleteError;
pub use list_folder::{ListFolderArg, ListFolderContinueError, ListFolderError, ListFolderResult};
pub use metadata::{
    DeletedMetadata, FileMetadata, FolderMetadata, GetMetadataError, LookupError, Metadata,
};
pub use upload::{UploadArg, UploadError, UploadWriteFailed};
pub use upload_session::{
    AppendBatchEntry, AppendBatchEntryError, AppendBatchResult, FinishBatchEntry,
    MAX_APPEND_BATCH_ENTRIES, MAX_BATCH_ENTRIES, MAX_FILE_SIZE, MAX_REQUEST_BODY,
    MAX_START_BATCH_SESSIONS, SessionType, UploadSessionAppendArg, UploadSessionAppendBatchError,
    UploadSessionAppendError, UploadSessionCursor, UploadSessionFinishArg,
    UploadSessionFinishError, UploadSessionLookupError, UploadSessionStartArg,
    UploadSessionStartError, UploadSessionStartResult,
};

/// The argument of the routes that take a path alone (`get_metadata`, `delete_v2`).
#[derive(Serialize)]
struct PathArg<'a> {
    path: &'a str,
}

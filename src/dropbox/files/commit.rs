//! Where and how a file is committed, and why a write fails: the parts of the `files`
//! namespace that `files/upload`, the upload sessions, `create_folder_v2` and `delete_v2` share.

use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::dropbox::error::detail;
use crate::dropbox::union::stone_union;

/// A Dropbox timestamp (`2024-05-01T12:00:00Z`): UTC, whole seconds. Dropbox rejects fractions
/// and offsets, so `client_modified` must be written this way.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

stone_union! {
    /// What to do when the target path exists (a closed union).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub enum WriteMode {
        /// Never overwrite; an existing different file is a conflict.
        #[default]
        "add" => Add,
        /// Replace whatever file is there.
        "overwrite" => Overwrite,
        /// Replace the file only if its current revision is this one.
        "update" => Update(String) as nested,
    }
}

impl Serialize for WriteMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            WriteMode::Add => map.serialize_entry(".tag", "add")?,
            WriteMode::Overwrite => map.serialize_entry(".tag", "overwrite")?,
            WriteMode::Update(rev) => {
                map.serialize_entry(".tag", "update")?;
                map.serialize_entry("update", rev)?;
            }
        }
        map.end()
    }
}

/// Where and how a file is committed (`files/upload`, `upload_session/finish`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub path: String,
    #[serde(default)]
    pub mode: WriteMode,
    /// Pick a free name instead of failing on a conflict.
    #[serde(default)]
    pub autorename: bool,
    /// Shown by Dropbox as the file's modification time; see [`timestamp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_modified: Option<String>,
    /// Don't notify the user's devices.
    #[serde(default)]
    pub mute: bool,
    /// Treat identical content at the path as a conflict too.
    #[serde(default)]
    pub strict_conflict: bool,
}

impl CommitInfo {
    /// A commit to `path` with Dropbox's defaults (`add`, no autorename).
    pub fn new(path: impl Into<String>) -> CommitInfo {
        CommitInfo {
            path: path.into(),
            mode: WriteMode::Add,
            autorename: false,
            client_modified: None,
            mute: false,
            strict_conflict: false,
        }
    }
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

stone_union! {
    /// Why a write to a path failed.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum WriteError {
        /// Dropbox's detail text, if it gave one.
        #[error("Dropbox refuses this path as malformed (it must start with / and not end with / or a space){}", detail(.0))]
        "malformed_path" => MalformedPath(Option<String>) as nested_opt,
        #[error("{0}")]
        "conflict" => Conflict(WriteConflictError) as nested,
        #[error("no permission to write here in Dropbox")]
        "no_write_permission" => NoWritePermission,
        #[error("Dropbox is full: no space left in the account")]
        "insufficient_space" => InsufficientSpace,
        #[error("Dropbox refuses this file name")]
        "disallowed_name" => DisallowedName,
        #[error("Dropbox does not allow this change to a team folder")]
        "team_folder" => TeamFolder,
        #[error("Dropbox does not allow this operation at this path")]
        "operation_suppressed" => OperationSuppressed,
        #[error("too many writes at once in this Dropbox; retrying later")]
        "too_many_write_operations" => TooManyWriteOperations,
        #[error("access to this path is restricted in Dropbox")]
        "access_restricted" => AccessRestricted,
        #[error("Dropbox cannot write to this path")]
        _ => Other,
    }
}

impl WriteError {
    /// Write-lock contention: the same request may succeed later.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, WriteError::TooManyWriteOperations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_mode_shapes() {
        assert_eq!(
            serde_json::to_value(WriteMode::Add).unwrap(),
            json!({".tag": "add"})
        );
        assert_eq!(
            serde_json::to_value(WriteMode::Overwrite).unwrap(),
            json!({".tag": "overwrite"})
        );
        assert_eq!(
            serde_json::to_value(WriteMode::Update("a1c10ce0dd78".into())).unwrap(),
            json!({".tag": "update", "update": "a1c10ce0dd78"})
        );
        // Dropbox accepts a bare string for a void member; so do we.
        assert_eq!(
            serde_json::from_str::<WriteMode>(r#""overwrite""#).unwrap(),
            WriteMode::Overwrite
        );
        assert_eq!(
            serde_json::from_str::<WriteMode>(r#"{".tag": "update", "update": "abc123456"}"#)
                .unwrap(),
            WriteMode::Update("abc123456".into())
        );
        assert!(serde_json::from_str::<WriteMode>(r#"{".tag": "update"}"#).is_err());
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_750);
        assert_eq!(timestamp(t), "2024-05-01T12:00:00Z");
    }
}

//! Arguments and results of the Dropbox routes dbxport uses, in Dropbox's JSON shapes.
//!
//! Field names follow the API spec exactly (dropbox-api.md §3). Responses are decoded
//! leniently: unknown fields are ignored everywhere, because Dropbox adds fields over time.
//! Unions use Dropbox's Stone conventions (§1.5): the member name in `.tag`, a struct member's
//! fields flattened beside it, any other member's value nested under a key named after it.

use std::time::SystemTime;

use serde::de::{self, DeserializeOwned};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::UploadSessionFinishError;

/// A Dropbox timestamp (`2024-05-01T12:00:00Z`): UTC, whole seconds. Dropbox rejects fractions
/// and offsets, so `client_modified` must be written this way.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// What to do when the target path exists (a closed union).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Never overwrite; an existing different file is a conflict.
    #[default]
    Add,
    /// Replace whatever file is there.
    Overwrite,
    /// Replace the file only if its current revision is this one.
    Update(String),
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

impl<'de> Deserialize<'de> for WriteMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let union = Union::deserialize(deserializer)?;
        match union.tag() {
            "add" => Ok(WriteMode::Add),
            "overwrite" => Ok(WriteMode::Overwrite),
            "update" => Ok(WriteMode::Update(union.nested()?)),
            other => Err(de::Error::unknown_variant(
                other,
                &["add", "overwrite", "update"],
            )),
        }
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

/// `files/upload`: the commit plus the content hash of this request's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadArg {
    #[serde(flatten)]
    pub commit: CommitInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

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

/// One result of `upload_session/finish_batch_v2`, in request order (a closed union).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishBatchEntry {
    Success(FileMetadata),
    Failure(UploadSessionFinishError),
}

impl<'de> Deserialize<'de> for FinishBatchEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let union = Union::deserialize(deserializer)?;
        match union.tag() {
            "success" => Ok(FinishBatchEntry::Success(union.flattened()?)),
            "failure" => Ok(FinishBatchEntry::Failure(union.nested()?)),
            other => Err(de::Error::unknown_variant(other, &["success", "failure"])),
        }
    }
}

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

/// The user's name parts; only `display_name` is needed for a status line, the rest may be
/// missing without failing the decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub surname: String,
    #[serde(default)]
    pub familiar_name: String,
    pub display_name: String,
    #[serde(default)]
    pub abbreviated_name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum AccountType {
    Basic,
    Pro,
    Business,
    #[default]
    #[serde(other)]
    Other,
}

/// The linked account (`users/get_current_account`), reduced to what dbxport shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullAccount {
    pub account_id: String,
    pub name: Name,
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default)]
    pub locale: String,
    #[serde(default)]
    pub account_type: AccountType,
}

/// What a team member may do once over the team's per-member quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum MemberSpaceLimitType {
    Off,
    AlertOnly,
    StopSync,
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SpaceAllocation {
    /// A personal account: `allocated` bytes in total.
    Individual { allocated: u64 },
    /// A team account: the team's shared quota, and this member's share of it.
    Team {
        used: u64,
        allocated: u64,
        #[serde(default)]
        user_within_team_space_allocated: u64,
        #[serde(default)]
        user_within_team_space_limit_type: MemberSpaceLimitType,
        #[serde(default)]
        user_within_team_space_used_cached: u64,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceUsage {
    /// Bytes used by this user.
    pub used: u64,
    pub allocation: SpaceAllocation,
}

/// A Stone union as it arrives, before it is matched to a Rust enum: the tag, and the other
/// fields of its object. Member values are taken from it by shape: [`Union::nested`] for a
/// value under the key named after the tag, [`Union::flattened`] for a struct member whose
/// fields sit beside `.tag`. A bare string is accepted as a void member, as Dropbox does.
pub(crate) struct Union {
    tag: String,
    fields: Map<String, Value>,
}

impl Union {
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// The member's value, nested under the tag's name.
    pub(crate) fn nested<T: DeserializeOwned, E: de::Error>(&self) -> Result<T, E> {
        match self.fields.get(&self.tag) {
            Some(value) => T::deserialize(value).map_err(E::custom),
            None => Err(E::custom(format_args!("missing field `{}`", self.tag))),
        }
    }

    /// A nullable nested member value: absent and `null` are both `None`.
    pub(crate) fn nested_opt<T: DeserializeOwned, E: de::Error>(&self) -> Result<Option<T>, E> {
        match self.fields.get(&self.tag) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(E::custom),
        }
    }

    /// A struct member whose fields are flattened beside `.tag`.
    pub(crate) fn flattened<T: DeserializeOwned, E: de::Error>(&self) -> Result<T, E> {
        T::deserialize(&Value::Object(self.fields.clone())).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Union {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(tag) => Ok(Union {
                tag,
                fields: Map::new(),
            }),
            Value::Object(mut fields) => match fields.remove(".tag") {
                Some(Value::String(tag)) => Ok(Union { tag, fields }),
                _ => Err(de::Error::custom("missing field `.tag`")),
            },
            _ => Err(de::Error::custom(
                "expected a tagged union (an object with `.tag`)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `files/upload`'s FileMetadata example from the reference (§3.1).
    const FILE_METADATA: &str = r#"{"name": "IMG_0001.jpg", "path_lower": "/photos/2024/img_0001.jpg", "path_display": "/Photos/2024/IMG_0001.jpg",
 "id": "id:a4ayc_80_OEAAAAAAAAAXw", "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
 "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212, "is_downloadable": true,
 "content_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#;

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
        use super::super::error::{RouteError, WriteConflictError, WriteError};
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
    fn account_and_space_usage_from_reference() {
        // §3.13.
        let account: FullAccount = serde_json::from_str(
            r#"{"account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
 "name": {"given_name": "Franz", "surname": "Ferdinand", "familiar_name": "Franz", "display_name": "Franz Ferdinand", "abbreviated_name": "FF"},
 "email": "franz@example.com", "email_verified": true, "disabled": false, "country": "US", "locale": "en",
 "referral_link": "https://db.tt/ZITNuhtI", "is_paired": false, "account_type": {".tag": "basic"},
 "root_info": {".tag": "user", "root_namespace_id": "3235641", "home_namespace_id": "3235641"}}"#,
        )
        .unwrap();
        assert_eq!(
            account.account_id,
            "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
        );
        assert_eq!(account.name.display_name, "Franz Ferdinand");
        assert_eq!(account.email, "franz@example.com");
        assert_eq!(account.account_type, AccountType::Basic);
        assert_eq!(account.country.as_deref(), Some("US"));

        let usage: SpaceUsage = serde_json::from_str(
            r#"{"used": 314159265, "allocation": {".tag": "individual", "allocated": 2147483648}}"#,
        )
        .unwrap();
        assert_eq!(usage.used, 314159265);
        assert_eq!(
            usage.allocation,
            SpaceAllocation::Individual {
                allocated: 2147483648
            }
        );

        let team: SpaceUsage = serde_json::from_str(
            r#"{"used": 5, "allocation": {".tag": "team", "used": 10, "allocated": 100,
                "user_within_team_space_allocated": 0,
                "user_within_team_space_limit_type": {".tag": "alert_only"},
                "user_within_team_space_used_cached": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            team.allocation,
            SpaceAllocation::Team {
                used: 10,
                allocated: 100,
                user_within_team_space_allocated: 0,
                user_within_team_space_limit_type: MemberSpaceLimitType::AlertOnly,
                user_within_team_space_used_cached: 5,
            }
        );
        let future: SpaceUsage = serde_json::from_str(
            r#"{"used": 1, "allocation": {".tag": "galactic", "parsecs": 3}}"#,
        )
        .unwrap();
        assert_eq!(future.allocation, SpaceAllocation::Other);
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_750);
        assert_eq!(timestamp(t), "2024-05-01T12:00:00Z");
    }
}

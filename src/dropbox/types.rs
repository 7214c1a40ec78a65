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
use crate::secret::Secret;

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

/// Who may open a shared link, as requested (`requested_visibility`, a closed union the spec
/// keeps for older clients; [`SharedLinkSettings::audience`] replaces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum RequestedVisibility {
    Public,
    TeamOnly,
    Password,
}

/// Who can open a link once team and shared-folder policies are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum ResolvedVisibility {
    Public,
    TeamOnly,
    Password,
    TeamAndPassword,
    SharedFolderOnly,
    NoOne,
    OnlyYou,
    #[serde(other)]
    Other,
}

/// Who a link is for. `Other` decodes members Dropbox adds (and the deprecated `password`,
/// `members`); it is not meant to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum LinkAudience {
    Public,
    Team,
    NoOne,
    #[serde(other)]
    Other,
}

/// What a link lets its holder do. `Other` is a decode catch-all, not meant to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum RequestedLinkAccessLevel {
    Viewer,
    Editor,
    /// The most the account's policy allows.
    Max,
    /// The account's default.
    Default,
    #[serde(other)]
    Other,
}

/// `settings` of `sharing/create_shared_link_with_settings`. Only what is set is sent, since
/// Dropbox treats an absent field as "the default" and a basic account is refused
/// (`settings_error/not_authorized`) for anything but a public, viewer, downloadable link
/// without expiry or password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLinkSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_visibility: Option<RequestedVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<LinkAudience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<RequestedLinkAccessLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_download: Option<bool>,
    /// When the link stops working; see [`timestamp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_password: Option<bool>,
    /// A [`Secret`] so that a logged settings value does not show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_password: Option<Secret>,
}

impl SharedLinkSettings {
    /// A link anyone may open and only view: what every account may create.
    pub fn public_viewer() -> SharedLinkSettings {
        SharedLinkSettings {
            audience: Some(LinkAudience::Public),
            access: Some(RequestedLinkAccessLevel::Viewer),
            ..SharedLinkSettings::default()
        }
    }
}

/// What a link allows, reduced to what dbxport looks at. The spec has many more (required)
/// fields; none is needed here, so none is required and the rest are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_visibility: Option<ResolvedVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_audience: Option<LinkAudience>,
    #[serde(default)]
    pub can_revoke: bool,
    #[serde(default)]
    pub allow_download: bool,
}

/// The fields every shared link has, whatever it points to (the spec's `SharedLinkMetadata`
/// struct, which is also exactly its `folder` subtype).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLinkInfo {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The linked item's last path component.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Only when the item is in this user's Dropbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default)]
    pub link_permissions: LinkPermissions,
}

/// A link to a file: the common fields plus the file's revision as it was linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLinkMetadata {
    #[serde(flatten)]
    pub link: SharedLinkInfo,
    pub client_modified: String,
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
}

/// A shared link, as `create_shared_link_with_settings` and `list_shared_links` return it: the
/// declared type has subtypes, so it always carries `.tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedLinkMetadata {
    File(FileLinkMetadata),
    Folder(SharedLinkInfo),
    /// A kind of link Dropbox added later. The spec's subtypes are open, and such a link is
    /// still a link: its common fields are kept.
    Other(SharedLinkInfo),
}

impl SharedLinkMetadata {
    /// The fields common to every kind of link.
    pub fn info(&self) -> &SharedLinkInfo {
        match self {
            SharedLinkMetadata::File(m) => &m.link,
            SharedLinkMetadata::Folder(m) | SharedLinkMetadata::Other(m) => m,
        }
    }

    pub fn url(&self) -> &str {
        &self.info().url
    }

    pub fn name(&self) -> &str {
        &self.info().name
    }

    pub fn path_lower(&self) -> Option<&str> {
        self.info().path_lower.as_deref()
    }
}

impl<'de> Deserialize<'de> for SharedLinkMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let union = Union::deserialize(deserializer)?;
        Ok(match union.tag() {
            "file" => SharedLinkMetadata::File(union.flattened()?),
            "folder" => SharedLinkMetadata::Folder(union.flattened()?),
            _ => SharedLinkMetadata::Other(union.flattened()?),
        })
    }
}

/// `sharing/list_shared_links`. `Default` lists every link of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSharedLinksArg {
    /// Links to this item, and to the folders above it unless `direct_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// From a previous result's `cursor`, for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only links to `path` itself, not to its parent folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListSharedLinksResult {
    pub links: Vec<SharedLinkMetadata>,
    pub has_more: bool,
    /// Only when no `path` was given.
    #[serde(default)]
    pub cursor: Option<String>,
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

    /// The link inside §3.14's `shared_link_already_exists` example, byte for byte.
    const FILE_LINK: &str = r#"{".tag": "file", "url": "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0",
                           "id": "id:a4ayc_80_OEAAAAAAAAAXw", "name": "a.jpg", "path_lower": "/photos/a.jpg",
                           "link_permissions": {"resolved_visibility": {".tag": "public"}, "can_revoke": true, "visibility_policies": [],
                                                "can_set_expiry": false, "can_remove_expiry": false, "allow_download": true,
                                                "can_allow_download": true, "can_disallow_download": false,
                                                "allow_comments": true, "team_restricts_comments": false},
                           "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z",
                           "rev": "015f1a2b3c4d5e600000001a2b3c4d0", "size": 7212}"#;

    #[test]
    fn shared_link_metadata_from_reference() {
        let link: SharedLinkMetadata = serde_json::from_str(FILE_LINK).unwrap();
        let SharedLinkMetadata::File(file) = &link else {
            panic!("{link:?}")
        };
        assert_eq!(
            link.url(),
            "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0"
        );
        assert_eq!(link.name(), "a.jpg");
        assert_eq!(link.path_lower(), Some("/photos/a.jpg"));
        assert_eq!(file.link.id.as_deref(), Some("id:a4ayc_80_OEAAAAAAAAAXw"));
        assert_eq!(file.link.expires, None);
        assert_eq!(
            file.link.link_permissions,
            LinkPermissions {
                resolved_visibility: Some(ResolvedVisibility::Public),
                effective_audience: None,
                can_revoke: true,
                allow_download: true,
            }
        );
        assert_eq!(file.client_modified, "2024-05-01T12:00:00Z");
        assert_eq!(file.server_modified, "2024-05-01T12:00:05Z");
        assert_eq!(file.rev, "015f1a2b3c4d5e600000001a2b3c4d0");
        assert_eq!(file.size, 7212);
    }

    #[test]
    fn shared_link_kinds() {
        let folder: SharedLinkMetadata = serde_json::from_str(
            r#"{".tag": "folder", "url": "https://www.dropbox.com/scl/fo/x/Album?rlkey=k&dl=0", "name": "Album",
                "path_lower": "/album", "expires": "2030-01-01T00:00:00Z",
                "link_permissions": {"resolved_visibility": {".tag": "team_and_password"}, "effective_audience": {".tag": "team"},
                                     "can_revoke": false, "allow_download": false, "link_access_level": {".tag": "viewer"}}}"#,
        )
        .unwrap();
        let SharedLinkMetadata::Folder(info) = &folder else {
            panic!("{folder:?}")
        };
        assert_eq!(info.name, "Album");
        assert_eq!(info.id, None);
        assert_eq!(info.expires.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(
            info.link_permissions.resolved_visibility,
            Some(ResolvedVisibility::TeamAndPassword)
        );
        assert_eq!(
            info.link_permissions.effective_audience,
            Some(LinkAudience::Team)
        );
        // A kind of link added later keeps its common fields; visibilities too.
        let other: SharedLinkMetadata = serde_json::from_str(
            r#"{".tag": "paper", "url": "https://example.com/p", "name": "p",
                "link_permissions": {"resolved_visibility": {".tag": "galactic"}}, "pages": 3}"#,
        )
        .unwrap();
        let SharedLinkMetadata::Other(info) = &other else {
            panic!("{other:?}")
        };
        assert_eq!(other.url(), "https://example.com/p");
        assert_eq!(other.path_lower(), None);
        assert_eq!(
            info.link_permissions.resolved_visibility,
            Some(ResolvedVisibility::Other)
        );
        // The declared type has subtypes: `.tag` is required, as is a file link's revision.
        let untagged = FILE_LINK.replacen(r#"".tag": "file", "#, "", 1);
        assert!(serde_json::from_str::<SharedLinkMetadata>(&untagged).is_err());
        let no_rev = FILE_LINK.replacen(r#""rev": "015f1a2b3c4d5e600000001a2b3c4d0", "#, "", 1);
        assert!(serde_json::from_str::<SharedLinkMetadata>(&no_rev).is_err());
    }

    #[test]
    fn shared_link_settings_send_only_what_is_set() {
        assert_eq!(
            serde_json::to_value(SharedLinkSettings::default()).unwrap(),
            json!({})
        );
        // §3.14's example settings.
        let settings = SharedLinkSettings {
            allow_download: Some(true),
            ..SharedLinkSettings::public_viewer()
        };
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            json!({"audience": {".tag": "public"}, "access": {".tag": "viewer"}, "allow_download": true})
        );
        let all = SharedLinkSettings {
            requested_visibility: Some(RequestedVisibility::TeamOnly),
            audience: Some(LinkAudience::NoOne),
            access: Some(RequestedLinkAccessLevel::Max),
            allow_download: Some(false),
            expires: Some("2030-01-01T00:00:00Z".into()),
            require_password: Some(true),
            link_password: Some(Secret::new("hunter2")),
        };
        assert_eq!(
            serde_json::to_value(&all).unwrap(),
            json!({"requested_visibility": {".tag": "team_only"}, "audience": {".tag": "no_one"},
                   "access": {".tag": "max"}, "allow_download": false, "expires": "2030-01-01T00:00:00Z",
                   "require_password": true, "link_password": "hunter2"})
        );
        assert!(!format!("{all:?}").contains("hunter2"));
    }

    #[test]
    fn list_shared_links_shapes() {
        let arg = ListSharedLinksArg {
            path: Some("/Photos/a.jpg".into()),
            direct_only: Some(true),
            ..ListSharedLinksArg::default()
        };
        assert_eq!(
            serde_json::to_value(&arg).unwrap(),
            json!({"path": "/Photos/a.jpg", "direct_only": true})
        );
        assert_eq!(
            serde_json::to_value(ListSharedLinksArg::default()).unwrap(),
            json!({})
        );
        let body = format!(
            r#"{{"links": [{FILE_LINK}, {{".tag": "folder", "url": "https://www.dropbox.com/scl/fo/x/Photos?rlkey=k&dl=0", "name": "Photos", "path_lower": "/photos", "link_permissions": {{}}}}],
                "has_more": true, "cursor": "ZtkX9_EHj3x7PMkVuFIhwKYXEpwpLwyxp9vMKomUhllil9q7eWiAu"}}"#
        );
        let result: ListSharedLinksResult = serde_json::from_str(&body).unwrap();
        assert_eq!(result.links.len(), 2);
        assert!(matches!(&result.links[0], SharedLinkMetadata::File(f) if f.size == 7212));
        assert!(matches!(&result.links[1], SharedLinkMetadata::Folder(f) if f.name == "Photos"));
        assert!(result.has_more);
        assert_eq!(
            result.cursor.as_deref(),
            Some("ZtkX9_EHj3x7PMkVuFIhwKYXEpwpLwyxp9vMKomUhllil9q7eWiAu")
        );
        // With a path there is no cursor.
        let result: ListSharedLinksResult =
            serde_json::from_str(r#"{"links": [], "has_more": false}"#).unwrap();
        assert_eq!(result.cursor, None);
        assert!(result.links.is_empty() && !result.has_more);
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_750);
        assert_eq!(timestamp(t), "2024-05-01T12:00:00Z");
    }
}

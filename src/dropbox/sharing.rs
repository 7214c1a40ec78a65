//! The `sharing` namespace, shared links only: `sharing/create_shared_link_with_settings`,
//! `sharing/list_shared_links`, and [`Client::shared_link_for`] on top of them (a link to an
//! item, new or existing); the links' settings and metadata, and how each route fails.

use serde::de;
use serde::{Deserialize, Serialize};

use super::Client;
use super::error::{Error, RouteError};
use super::files::LookupError;
use super::union::{Union, stone_union};
use crate::secret::Secret;

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
stone_union! {

    /// A shared link, as `create_shared_link_with_settings` and `list_shared_links` return it: the
    /// declared type has subtypes, so it always carries `.tag`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SharedLinkMetadata {
        "file" => File(FileLinkMetadata) as flattened,
        "folder" => Folder(SharedLinkInfo) as flattened,
        /// A kind of link Dropbox added later. The spec's subtypes are open, and such a link is
        /// still a link: its common fields are kept.
        _ => Other(SharedLinkInfo) as flattened,
    }
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

/// Why Dropbox refused a shared link's settings (closed in the spec; `Other` as for
/// [`CreateFolderError`](super::CreateFolderError)).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SharedLinkSettingsError {
    #[error(
        "Dropbox refuses these shared link settings as invalid; check the audience and access asked for"
    )]
    InvalidSettings,
    /// rclone's answer: ask again without the setting (e.g. the expiry).
    #[error(
        "this Dropbox account may not use these shared link settings: expiry, passwords, links that are not public and links without downloads need a paid plan or the team's permission"
    )]
    NotAuthorized,
    #[error("Dropbox refuses these shared link settings")]
    #[serde(other)]
    Other,
}

stone_union! {
    /// `sharing/create_shared_link_with_settings` (closed in the spec; `Other` as for
    /// [`CreateFolderError`](super::CreateFolderError)).
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum CreateSharedLinkWithSettingsError {
        #[error("{0}")]
        "path" => Path(LookupError) as nested,
        #[error(
            "Dropbox makes shared links only for accounts with a verified email address; verify it on dropbox.com, then try again"
        )]
        "email_not_verified" => EmailNotVerified,
        /// The existing link, when Dropbox sends it. It leaves it out when settings were given
        /// (they might not match the existing link); `sharing/list_shared_links` with
        /// `direct_only` then finds it. Boxed: a link is large next to the other members.
        #[error("a shared link to this item already exists in Dropbox")]
        "shared_link_already_exists" => SharedLinkAlreadyExists(Option<Box<SharedLinkMetadata>>) as with already_exists_link,
        #[error("{0}")]
        "settings_error" => SettingsError(SharedLinkSettingsError) as nested,
        #[error(
            "Dropbox does not allow a shared link to this item: the content may be restricted, or the account's shared links banned"
        )]
        "access_denied" => AccessDenied,
        #[error("Dropbox has banned this account from creating shared links")]
        "banned_member" => BannedMember,
        #[error("this Dropbox account has too many shared folders to share another item")]
        "too_many_shared_folders" => TooManySharedFolders,
        #[error("Dropbox cannot create a shared link to this item")]
        _ => Other,
    }
}

stone_union! {
    /// `SharedLinkAlreadyExistsMetadata`, an open union whose one known member, `metadata`,
    /// holds the existing link (nested with its own `.tag`, since SharedLinkMetadata has
    /// subtypes).
    enum AlreadyExistsMetadata {
        "metadata" => Metadata(Option<Box<SharedLinkMetadata>>) as with decodable_link,
        _ => Other,
    }
}

/// A link that does not decode is dropped rather than failing the whole error: it is only a
/// shortcut, and without it the caller looks the link up instead.
fn decodable_link<E: de::Error>(u: &Union) -> Result<Option<Box<SharedLinkMetadata>>, E> {
    Ok(u.nested::<SharedLinkMetadata, E>().ok().map(Box::new))
}

/// `shared_link_already_exists`'s value: the existing link, when Dropbox sent one that decodes.
fn already_exists_link<E: de::Error>(u: &Union) -> Result<Option<Box<SharedLinkMetadata>>, E> {
    Ok(match u.nested_opt::<AlreadyExistsMetadata, E>()? {
        Some(AlreadyExistsMetadata::Metadata(link)) => link,
        Some(AlreadyExistsMetadata::Other) | None => None,
    })
}

impl RouteError for CreateSharedLinkWithSettingsError {}

stone_union! {
    /// `sharing/list_shared_links`.
    #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
    pub enum ListSharedLinksError {
        #[error("{0}")]
        "path" => Path(LookupError) as nested,
        /// The cursor is no longer valid: list again without it.
        #[error("the shared link listing expired; it must start over")]
        "reset" => Reset,
        #[error("Dropbox cannot list the shared links")]
        _ => Other,
    }
}

impl RouteError for ListSharedLinksError {}

impl Client {
    /// `sharing/create_shared_link_with_settings`: a new link to the file or folder at `path`.
    /// Without settings Dropbox makes its default link (public, unless a team policy says
    /// otherwise). An item has one link per settings: asking again is
    /// `Route(SharedLinkAlreadyExists(..))`; see [`Client::shared_link_for`].
    pub async fn create_shared_link(
        &self,
        token: &Secret,
        path: &str,
        settings: Option<&SharedLinkSettings>,
    ) -> Result<SharedLinkMetadata, Error<CreateSharedLinkWithSettingsError>> {
        #[derive(Serialize)]
        struct Arg<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            settings: Option<&'a SharedLinkSettings>,
        }
        self.rpc(
            token,
            "2/sharing/create_shared_link_with_settings",
            &Arg { path, settings },
        )
        .await
    }

    /// `sharing/list_shared_links`: the links to an item (and its parent folders unless
    /// `direct_only`), or every link of the account page by page when no path is given.
    pub async fn list_shared_links(
        &self,
        token: &Secret,
        arg: &ListSharedLinksArg,
    ) -> Result<ListSharedLinksResult, Error<ListSharedLinksError>> {
        self.rpc(token, "2/sharing/list_shared_links", arg).await
    }

    /// A link to share the item at `path`: a new public viewer link, or the item's existing
    /// link (as it is, whatever its visibility: check its `link_permissions` if that matters).
    ///
    /// Because settings are sent, Dropbox usually leaves the existing link out of
    /// `shared_link_already_exists`; it is then looked up with `list_shared_links`
    /// (`direct_only`), as rclone does. If no listed link is to this very item, the
    /// `SharedLinkAlreadyExists(None)` error is returned. Two calls at most, neither retried.
    pub async fn shared_link_for(
        &self,
        token: &Secret,
        path: &str,
    ) -> Result<SharedLinkMetadata, Error<CreateSharedLinkWithSettingsError>> {
        use CreateSharedLinkWithSettingsError as Create;
        let settings = SharedLinkSettings::public_viewer();
        match self.create_shared_link(token, path, Some(&settings)).await {
            Err(Error::Route(Create::SharedLinkAlreadyExists(None))) => {}
            Err(Error::Route(Create::SharedLinkAlreadyExists(Some(existing)))) => {
                return Ok(*existing);
            }
            other => return other,
        }
        let arg = ListSharedLinksArg {
            path: Some(path.to_owned()),
            cursor: None,
            direct_only: Some(true),
        };
        let listed = self.list_shared_links(token, &arg).await.map_err(|e| {
            e.map_route(|e| match e {
                // The item went away between the two calls.
                ListSharedLinksError::Path(lookup) => Create::Path(lookup),
                ListSharedLinksError::Reset | ListSharedLinksError::Other => {
                    Create::SharedLinkAlreadyExists(None)
                }
            })
        })?;
        listed
            .links
            .into_iter()
            .find(|link| links_to(link, path))
            .ok_or(Error::Route(Create::SharedLinkAlreadyExists(None)))
    }
}

/// Whether `link`, listed for `path` with `direct_only`, is to that very item. `direct_only`
/// should make every listed link one, but a parent folder's link taken for a photo's would
/// share the whole folder, so a `/` path is checked against `path_lower`. `id:`, `rev:` and
/// `ns:` references carry no path to compare; there `direct_only` is trusted.
fn links_to(link: &SharedLinkMetadata, path: &str) -> bool {
    if !path.starts_with('/') {
        return true;
    }
    link.path_lower() == Some(path.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::fixtures::{ALREADY_EXISTS, FILE_LINK};
    use crate::dropbox::http::status::route;
    use serde_json::json;

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
    fn shared_link_already_exists_nests_the_link() {
        use CreateSharedLinkWithSettingsError as C;
        let e: C = route(ALREADY_EXISTS);
        let C::SharedLinkAlreadyExists(Some(link)) = &e else {
            panic!("{e:?}")
        };
        let SharedLinkMetadata::File(file) = link.as_ref() else {
            panic!("{link:?}")
        };
        assert_eq!(
            link.url(),
            "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0"
        );
        assert_eq!(link.path_lower(), Some("/photos/a.jpg"));
        assert_eq!(file.rev, "015f1a2b3c4d5e600000001a2b3c4d0");
        assert_eq!(
            e.to_string(),
            "a shared link to this item already exists in Dropbox"
        );
        assert!(!Error::Route(e).is_transient());

        // §3.14's body without metadata.
        let e: C = route(
            r#"{"error_summary": "shared_link_already_exists/..", "error": {".tag": "shared_link_already_exists"}}"#,
        );
        assert_eq!(e, C::SharedLinkAlreadyExists(None));
        // A null value, a member added later, or a link that does not decode: no link, but
        // still the same error, so that callers look the link up.
        for value in [
            "null",
            r#"{".tag": "other"}"#,
            r#"{".tag": "metadata", "metadata": {".tag": "file", "name": "no url"}}"#,
        ] {
            let e: C = route(&format!(
                r#"{{"error": {{".tag": "shared_link_already_exists", "shared_link_already_exists": {value}}}}}"#
            ));
            assert_eq!(e, C::SharedLinkAlreadyExists(None), "{value}");
        }
        // A flattened link (the mistake many mocks make) is not taken for the link either.
        let flattened = r#"{"error": {".tag": "shared_link_already_exists", "url": "https://x", "name": "a.jpg"}}"#;
        assert_eq!(route::<C>(flattened), C::SharedLinkAlreadyExists(None));
    }

    #[test]
    fn create_shared_link_other_errors() {
        use CreateSharedLinkWithSettingsError as C;
        let e: C = route(
            r#"{"error_summary": "settings_error/not_authorized/..", "error": {".tag": "settings_error", "settings_error": {".tag": "not_authorized"}}}"#,
        );
        assert_eq!(e, C::SettingsError(SharedLinkSettingsError::NotAuthorized));
        assert!(e.to_string().contains("paid plan"), "{e}");
        let e: C = route(
            r#"{"error": {".tag": "settings_error", "settings_error": {".tag": "invalid_settings"}}}"#,
        );
        assert_eq!(
            e,
            C::SettingsError(SharedLinkSettingsError::InvalidSettings)
        );
        let e: C = route(
            r#"{"error": {".tag": "settings_error", "settings_error": {".tag": "brand_new"}}}"#,
        );
        assert_eq!(e, C::SettingsError(SharedLinkSettingsError::Other));
        let e: C = route(
            r#"{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, C::Path(LookupError::NotFound));
        assert_eq!(e.to_string(), "nothing exists at this path in Dropbox");
        for (tag, expected) in [
            ("email_not_verified", C::EmailNotVerified),
            ("access_denied", C::AccessDenied),
            ("banned_member", C::BannedMember),
            ("too_many_shared_folders", C::TooManySharedFolders),
            ("quantum_link", C::Other),
        ] {
            let e: C = route(&format!(r#"{{"error": {{".tag": "{tag}"}}}}"#));
            assert_eq!(e, expected, "{tag}");
            assert!(!e.is_transient());
        }
        assert!(C::EmailNotVerified.to_string().contains("verify"));
    }

    #[test]
    fn list_shared_links_errors() {
        let e: ListSharedLinksError = route(
            r#"{"error_summary": "path/not_found/.", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
        );
        assert_eq!(e, ListSharedLinksError::Path(LookupError::NotFound));
        let e: ListSharedLinksError =
            route(r#"{"error_summary": "reset/..", "error": {".tag": "reset"}}"#);
        assert_eq!(e, ListSharedLinksError::Reset);
        let e: ListSharedLinksError = route(r#"{"error": {".tag": "brand_new"}}"#);
        assert_eq!(e, ListSharedLinksError::Other);
    }
}

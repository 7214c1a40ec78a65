//! Shared links (`sharing/create_shared_link_with_settings`, `sharing/list_shared_links`): one
//! public link per item, kept with the tree (a deleted item loses its link). The emulated
//! account is a basic one, so like real Dropbox it may only make public, viewer, downloadable
//! links without expiry or password; anything else is `settings_error/not_authorized`, which
//! is exactly what clients such as rclone fall back from.

use rand::Rng;
use serde_json::{Value, json};

use super::tree::{Entry, State};
use crate::emulator::paths;
use crate::emulator::wire::{ApiError, nested, void};

/// A stored link.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Link {
    pub(crate) url: String,
}

/// What a create request asked for beyond the defaults, already read from its argument.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Any setting was given at all (Dropbox then leaves the existing link out of
    /// `shared_link_already_exists`, since it may not match).
    pub(crate) given: bool,
    /// Something a basic account may not ask for (expiry, password, non-public audience,
    /// disabled download).
    pub(crate) needs_paid_plan: bool,
    /// Something no account may ask for here (an editor link to a file).
    pub(crate) invalid: bool,
}

/// `CreateSharedLinkWithSettingsError` members the emulator produces (besides `path`).
#[derive(Clone, Debug)]
pub(crate) enum LinkRefusal {
    /// With the existing link's metadata, or without when the settings might not match.
    AlreadyExists(Option<Value>),
    NotAuthorized,
    InvalidSettings,
}

impl LinkRefusal {
    pub(crate) fn into_api(self) -> ApiError {
        match self {
            // The metadata's own `.tag` (file/folder) is a subtype, not part of the summary.
            LinkRefusal::AlreadyExists(Some(_)) => {
                ApiError::RouteWithChain("shared_link_already_exists/metadata", self.json())
            }
            _ => ApiError::Route(self.json()),
        }
    }

    fn json(self) -> Value {
        match self {
            LinkRefusal::AlreadyExists(Some(metadata)) => {
                nested("shared_link_already_exists", nested("metadata", metadata))
            }
            LinkRefusal::AlreadyExists(None) => void("shared_link_already_exists"),
            LinkRefusal::NotAuthorized => nested("settings_error", void("not_authorized")),
            LinkRefusal::InvalidSettings => nested("settings_error", void("invalid_settings")),
        }
    }
}

/// A new link URL in today's form: `https://www.dropbox.com/scl/fi/<id>/<name>?rlkey=…&dl=0`
/// (`/scl/fo/` for folders).
pub(crate) fn new_url(name: &str, folder: bool) -> String {
    let kind = if folder { "fo" } else { "fi" };
    let base = format!("https://www.dropbox.com/scl/{kind}/{}/", random_lower(25));
    let Ok(mut url) = url::Url::parse(&base) else {
        return base;
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(name);
    }
    url.query_pairs_mut()
        .append_pair("rlkey", &random_lower(25))
        .append_pair("dl", "0");
    url.into()
}

fn random_lower(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// SharedLinkMetadata with its `.tag` (`file` or `folder`): the declared type has subtypes.
pub(crate) fn link_json(key: &str, entry: &Entry, link: &Link) -> Value {
    let public = void("public");
    let mut value = json!({
        ".tag": if entry.file.is_some() { "file" } else { "folder" },
        "url": link.url,
        "id": entry.id,
        "name": paths::name_of(&entry.path_display),
        "path_lower": key,
        "link_permissions": {
            "resolved_visibility": public,
            "requested_visibility": public,
            "can_revoke": true,
            "visibility_policies": [],
            "can_set_expiry": false,
            "can_remove_expiry": false,
            "allow_download": true,
            "can_allow_download": true,
            "can_disallow_download": false,
            "allow_comments": true,
            "team_restricts_comments": false,
            "effective_audience": public,
            "link_access_level": void("viewer"),
            "can_set_password": false,
        },
    });
    if let (Some(file), Value::Object(map)) = (&entry.file, &mut value) {
        map.insert(
            "client_modified".into(),
            file.client_modified.clone().into(),
        );
        map.insert(
            "server_modified".into(),
            file.server_modified.clone().into(),
        );
        map.insert("rev".into(), file.rev.clone().into());
        map.insert("size".into(), file.size.into());
    }
    value
}

impl State {
    /// The link of the item at `key`, as metadata, if it has one.
    pub(super) fn link_metadata(&self, key: &str) -> Option<Value> {
        let link = self.links.get(key)?;
        let entry = self.entries.get(key)?;
        Some(link_json(key, entry, link))
    }

    /// Links to the item at `key`, and with `!direct_only` to its ancestors too.
    pub(super) fn links_for(&self, key: &str, direct_only: bool) -> Vec<Value> {
        self.links
            .keys()
            .filter(|linked| {
                linked.as_str() == key || (!direct_only && paths::is_under(key, linked, true))
            })
            .filter_map(|linked| self.link_metadata(linked))
            .collect()
    }

    pub(super) fn all_links(&self) -> Vec<Value> {
        self.links
            .keys()
            .filter_map(|key| self.link_metadata(key))
            .collect()
    }
}

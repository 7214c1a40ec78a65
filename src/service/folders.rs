//! `io.github.dbxport1.Folders`: the Dropbox folders a user picks from ("albums"), and "New
//! Album".
//!
//! A pure adapter: the listing, the paging and the "already exists" fallback are the library's
//! ([`crate::folders`]); this file turns its answers into D-Bus dictionaries and its errors
//! into the interface's named errors. Nothing is cached: every `ListFolders` asks Dropbox, one
//! level at a time, so "reload" is simply calling again.

use std::collections::HashMap;

use zbus::interface;
use zbus::zvariant::OwnedValue;

use super::{ServiceError, value};
use crate::dropbox::FolderMetadata;
use crate::folders::FolderError;

/// The interface over the library's [`crate::folders::Folders`].
pub struct Folders {
    pub(super) folders: crate::folders::Folders,
}

#[interface(
    name = "io.github.dbxport1.Folders",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Folders {
    /// The folders directly inside `path` (`""` or `"/"`: the top of the Dropbox), sorted by
    /// name; files are left out. Each is a dictionary: `name`, `path` (as Dropbox displays
    /// it), `path_lower`, `id`. Nothing is cached: every call asks Dropbox, so calling again is
    /// how to reload, and it shows changes made in the Dropbox web UI or elsewhere. Errors:
    /// `InvalidArgument` (a path Dropbox would refuse; nothing is sent), `NotFound`,
    /// `NotLoggedIn`, `Failed` (with the reason; transient ones say to try again).
    async fn list_folders(
        &self,
        path: String,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, ServiceError> {
        let folders = self.folders.list(&path).await?;
        Ok(folders.iter().map(folder_to_dict).collect())
    }

    /// Creates the folder `path` (and any missing parents); returns its path as Dropbox
    /// displays it. A folder that already exists is success, and its stored path (in its own
    /// letter case) is returned. Errors as for `ListFolders`; a file in the way is `Failed`.
    async fn create_folder(&self, path: String) -> Result<String, ServiceError> {
        Ok(self.folders.create(&path).await?)
    }
}

impl From<FolderError> for ServiceError {
    fn from(e: FolderError) -> ServiceError {
        let message = e.to_string();
        match e {
            FolderError::Invalid(_) => ServiceError::InvalidArgument(message),
            FolderError::NotLoggedIn { .. } | FolderError::LoginRefused { .. } => {
                ServiceError::NotLoggedIn(message)
            }
            FolderError::NotFound { .. } => ServiceError::NotFound(message),
            FolderError::NotAFolder { .. }
            | FolderError::FileInTheWay { .. }
            | FolderError::TokenRefused { .. }
            | FolderError::Unreachable { .. }
            | FolderError::Busy { .. }
            | FolderError::Failed { .. }
            | FolderError::Session(_) => ServiceError::Failed(message),
        }
    }
}

/// A folder as a D-Bus dictionary (`a{sv}`), so fields can be added without breaking callers.
fn folder_to_dict(meta: &FolderMetadata) -> HashMap<String, OwnedValue> {
    let path = meta
        .path_display
        .clone()
        .or_else(|| meta.path_lower.clone())
        .unwrap_or_else(|| meta.name.clone());
    let mut d = HashMap::new();
    d.insert("name".into(), value(meta.name.clone()));
    d.insert(
        "path_lower".into(),
        value(
            meta.path_lower
                .clone()
                .unwrap_or_else(|| path.to_lowercase()),
        ),
    );
    d.insert("path".into(), value(path));
    d.insert("id".into(), value(meta.id.clone()));
    d
}

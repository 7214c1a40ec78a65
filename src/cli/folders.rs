//! `dbxportctl folders` and `mkdir`: browsing the Dropbox folders uploads can go to, and making
//! a new one. Each run asks the daemon, which asks Dropbox, so the listing is always current.

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::OwnedValue;

use super::term::{outln, say};
use super::{Exit, describe, term};
use crate::service::FoldersProxy;

/// A folder as the daemon describes it (`ListFolders`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderView {
    pub name: String,
    pub path: String,
    pub path_lower: String,
    pub id: String,
}

impl FolderView {
    pub fn from_dict(d: &HashMap<String, OwnedValue>) -> FolderView {
        let s = |k: &str| {
            d.get(k)
                .and_then(|v| <&str>::try_from(&**v).ok().map(String::from))
                .unwrap_or_default()
        };
        FolderView {
            name: s("name"),
            path: s("path"),
            path_lower: s("path_lower"),
            id: s("id"),
        }
    }
}

/// Lists the folders in `path` (default: the top of the Dropbox), one name per line, so that
/// the output can be read by a script; `--json` gives every field.
pub async fn list(conn: &zbus::Connection, path: Option<&str>, json: bool) -> Result<Exit, String> {
    let proxy = FoldersProxy::new(conn).await.map_err(|e| describe(&e))?;
    let path = path.unwrap_or("/");
    let folders: Vec<FolderView> = proxy
        .list_folders(path.to_string())
        .await
        .map_err(|e| describe(&e))?
        .iter()
        .map(FolderView::from_dict)
        .collect();
    if json {
        term::print_json(&folders);
        return Ok(Exit::Ok);
    }
    if folders.is_empty() {
        // On stderr: a script reading names from stdout must not take this for a folder.
        say!("no folders in {path}");
    }
    for folder in &folders {
        outln!("{}", folder.name);
    }
    Ok(Exit::Ok)
}

/// Creates `path` (and missing parents); an existing folder is fine. Prints the folder's path
/// as Dropbox shows it.
pub async fn mkdir(conn: &zbus::Connection, path: &str) -> Result<Exit, String> {
    let proxy = FoldersProxy::new(conn).await.map_err(|e| describe(&e))?;
    let created = proxy
        .create_folder(path.to_string())
        .await
        .map_err(|e| describe(&e))?;
    outln!("{created}");
    Ok(Exit::Ok)
}

//! `dbxportctl profiles`: the named export profiles the daemon knows (`ListProfiles`), with
//! their settings as they apply (the config's defaults filled in).

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::OwnedValue;

use super::term::{self, outln};
use super::watch::WatchView;
use super::{Exit, describe};
use crate::service::UploaderProxy;

/// A profile as `profiles --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub folder: String,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dimension: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<u32>,
    pub strip_location: bool,
    pub conflict: String,
    pub share_link: bool,
}

impl ProfileView {
    /// A `ListProfiles` entry (also read by the export dialog).
    pub fn from_entry(name: String, d: &HashMap<String, OwnedValue>) -> ProfileView {
        // The settings are a watch's export options and folder, under the same keys.
        let w = WatchView::from_dict(d);
        let folder = d
            .get("folder")
            .and_then(|v| <&str>::try_from(&**v).ok())
            .unwrap_or_default()
            .to_string();
        ProfileView {
            name,
            folder,
            mode: w.mode,
            max_dimension: w.max_dimension,
            jpeg_quality: w.jpeg_quality,
            strip_location: w.strip_location,
            conflict: w.conflict,
            share_link: w.share_link,
        }
    }

    /// One line: `web  → /Web/{year}  (resize 2048 px q85, no location, overwrite)`.
    fn line(&self, name_width: usize) -> String {
        let mut what = match (self.mode.as_str(), self.max_dimension) {
            ("resize", Some(px)) => format!("resize {px} px q{}", self.jpeg_quality.unwrap_or(0)),
            _ => "original".to_string(),
        };
        if self.strip_location {
            what.push_str(", no location");
        }
        what.push_str(", ");
        what.push_str(&self.conflict);
        if self.share_link {
            what.push_str(", shared link");
        }
        format!(
            "{:<name_width$}  → {}  ({what})",
            self.name,
            term::clean(&self.folder)
        )
    }
}

pub async fn list(conn: &zbus::Connection, json: bool) -> Result<Exit, String> {
    let proxy = UploaderProxy::new(conn).await.map_err(|e| describe(&e))?;
    let profiles: Vec<ProfileView> = proxy
        .list_profiles()
        .await
        .map_err(|e| describe(&e))?
        .into_iter()
        .map(|(name, d)| ProfileView::from_entry(name, &d))
        .collect();
    if json {
        term::print_json(&profiles);
        return Ok(Exit::Ok);
    }
    if profiles.is_empty() {
        outln!(
            "no export profiles (add [profiles.NAME] to the config: see `dbxportctl config path`)"
        );
    }
    let width = profiles.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for profile in &profiles {
        outln!("{}", profile.line(width));
    }
    Ok(Exit::Ok)
}

//! `dbxportctl watch add|rm|ls`: folders whose new photos export themselves.

use std::collections::HashMap;

use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::term::outln;
use super::{Exit, WatchAddArgs, WatchCommand, describe, term};
use crate::service::WatchesProxy;

/// A watch as the daemon describes it (`ListWatches`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchView {
    pub id: u64,
    pub local_dir: String,
    pub remote_folder: String,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub state: String,
    pub reason: String,
    pub uploaded: u64,
    pub mode: String,
    pub max_dimension: Option<u32>,
    pub jpeg_quality: Option<u32>,
    pub strip_location: bool,
    pub conflict: String,
    pub share_link: bool,
    /// The export profile it was added with (`""`: none).
    pub profile: String,
}

impl WatchView {
    pub fn from_dict(d: &HashMap<String, OwnedValue>) -> WatchView {
        let s = |k: &str| {
            d.get(k)
                .and_then(|v| <&str>::try_from(&**v).ok().map(String::from))
                .unwrap_or_default()
        };
        let b = |k: &str| {
            d.get(k)
                .and_then(|v| bool::try_from(&**v).ok())
                .unwrap_or(false)
        };
        let list = |k: &str| {
            d.get(k)
                .and_then(|v| v.try_clone().ok())
                .and_then(|v| <Vec<String>>::try_from(v).ok())
                .unwrap_or_default()
        };
        let u32_of = |k: &str| d.get(k).and_then(|v| u32::try_from(&**v).ok());
        WatchView {
            id: d
                .get("id")
                .and_then(|v| u64::try_from(&**v).ok())
                .unwrap_or(0),
            local_dir: s("local_dir"),
            remote_folder: s("remote_folder"),
            recursive: b("recursive"),
            include: list("include"),
            exclude: list("exclude"),
            state: s("state"),
            reason: s("reason"),
            uploaded: d
                .get("uploaded")
                .and_then(|v| u64::try_from(&**v).ok())
                .unwrap_or(0),
            mode: s("mode"),
            max_dimension: u32_of("max_dimension"),
            jpeg_quality: u32_of("jpeg_quality"),
            strip_location: b("strip_location"),
            conflict: s("conflict"),
            share_link: b("share_link"),
            profile: s("profile"),
        }
    }
}

pub async fn run(conn: &zbus::Connection, command: WatchCommand) -> Result<Exit, String> {
    let proxy = WatchesProxy::new(conn).await.map_err(|e| describe(&e))?;
    match command {
        WatchCommand::Add(args) => add(&proxy, args).await,
        WatchCommand::Rm { watch } => {
            let id = match watch.parse::<u64>() {
                Ok(id) => id,
                Err(_) => watch_id_for(&proxy, &watch).await?,
            };
            proxy.remove_watch(id).await.map_err(|e| describe(&e))?;
            outln!("watch {id} removed");
            Ok(Exit::Ok)
        }
        WatchCommand::Ls { json } => ls(&proxy, json).await,
    }
}

/// The id of the watch on the folder `path` (as given, relative to here, or with a trailing
/// slash).
async fn watch_id_for(proxy: &WatchesProxy<'_>, path: &str) -> Result<u64, String> {
    let given = std::path::Path::new(path);
    let absolute = std::path::absolute(given).unwrap_or_else(|_| given.to_path_buf());
    let canonical = std::fs::canonicalize(&absolute).ok();
    let watches = proxy.list_watches().await.map_err(|e| describe(&e))?;
    watches
        .iter()
        .map(WatchView::from_dict)
        .find(|w| {
            let dir = std::path::Path::new(&w.local_dir);
            dir == absolute || Some(dir) == canonical.as_deref()
        })
        .map(|w| w.id)
        .ok_or_else(|| {
            format!(
                "no watch on {}: `dbxportctl watch ls` lists the watches and their ids",
                absolute.display()
            )
        })
}

async fn add(proxy: &WatchesProxy<'_>, args: WatchAddArgs) -> Result<Exit, String> {
    super::check_folder(args.to.as_deref(), args.export.profile.as_deref())?;
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let mut options = args.export.to_options();
    let mut put = |key: &str, value: Value<'_>| {
        options.insert(key.to_string(), value.try_to_owned().expect("plain value"));
    };
    if args.recursive {
        put("recursive", Value::from(true));
    }
    if !args.include.is_empty() {
        put("include", Value::from(args.include.clone()));
    }
    if !args.exclude.is_empty() {
        put("exclude", Value::from(args.exclude.clone()));
    }
    let id = proxy
        .add_watch(
            dir.to_string_lossy().into_owned(),
            args.to.unwrap_or_default(),
            options,
        )
        .await
        .map_err(|e| describe(&e))?;
    outln!("watch {id}: {}", dir.display());
    Ok(Exit::Ok)
}

async fn ls(proxy: &WatchesProxy<'_>, json: bool) -> Result<Exit, String> {
    let watches: Vec<WatchView> = proxy
        .list_watches()
        .await
        .map_err(|e| describe(&e))?
        .iter()
        .map(WatchView::from_dict)
        .collect();
    if json {
        term::print_json(&watches);
        return Ok(Exit::Ok);
    }
    if watches.is_empty() {
        outln!("no watched folders");
    }
    for w in &watches {
        let mut profile = match (w.mode.as_str(), w.max_dimension) {
            ("resize", Some(px)) => format!("resize {px} px q{}", w.jpeg_quality.unwrap_or(0)),
            _ => "original".to_string(),
        };
        if !w.profile.is_empty() {
            profile = format!("profile {}: {profile}", w.profile);
        }
        outln!(
            "{:>6}  {:<8} {} → {}  ({profile}, {}{}; {} handled){}",
            w.id,
            w.state,
            w.local_dir,
            w.remote_folder,
            w.conflict,
            if w.recursive { ", recursive" } else { "" },
            w.uploaded,
            if w.reason.is_empty() {
                String::new()
            } else {
                format!("\n        {}", w.reason)
            }
        );
    }
    Ok(Exit::Ok)
}

//! `io.github.dbxport1.Watches`: folders whose new photos export themselves (see
//! [`crate::watch`]).
//!
//! A watch's options are `Upload`'s export options (`resize`, `max_dimension`,
//! `jpeg_quality`, `strip_location`, `conflict`, `share_link`, `original`) plus `recursive`
//! (b), `include` and `exclude` (as: file-name globs). Its state (`active`, `missing`, `error`)
//! and the reason come with `ListWatches` and the `WatchChanged` signal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use super::options::{export_overrides, flag, kind_of};
use super::{ServiceError, value};
use crate::export::ExportOptions;
use crate::intake::checked_folder;
use crate::prepare::Mode;
use crate::watch::{NewWatch, WatchError, WatchInfo, Watcher};

pub struct Watches {
    pub(super) watcher: Arc<Watcher>,
    pub(super) default_folder: String,
    pub(super) defaults: ExportOptions,
}

impl From<WatchError> for ServiceError {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::Invalid(message) => ServiceError::InvalidArgument(message),
            WatchError::NotFound(id) => ServiceError::NotFound(format!("no watch with id {id}")),
            WatchError::Queue(e) => e.into(),
        }
    }
}

fn strings(key: &str, v: &OwnedValue) -> Result<Vec<String>, ServiceError> {
    <Vec<String>>::try_from(
        v.try_clone()
            .map_err(|e| ServiceError::Failed(e.to_string()))?,
    )
    .map_err(|_| {
        ServiceError::InvalidArgument(format!(
            "option {key} must be a list of strings (as), not {}",
            kind_of(v)
        ))
    })
}

/// A watch as a D-Bus dictionary.
pub fn watch_to_dict(info: &WatchInfo) -> HashMap<String, OwnedValue> {
    let spec = &info.spec;
    let mut d = HashMap::new();
    d.insert("id".into(), value(spec.id));
    d.insert(
        "local_dir".into(),
        value(spec.local_dir.to_string_lossy().into_owned()),
    );
    d.insert("remote_folder".into(), value(spec.remote_folder.clone()));
    d.insert("recursive".into(), value(spec.recursive));
    d.insert("include".into(), value(spec.include.clone()));
    d.insert("exclude".into(), value(spec.exclude.clone()));
    d.insert("state".into(), value(info.state.name()));
    d.insert("reason".into(), value(info.state.reason().to_string()));
    d.insert("uploaded".into(), value(info.recorded as u64));
    let options = &spec.options;
    match options.prepare.mode {
        Mode::Original => {
            d.insert("mode".into(), value("original"));
        }
        Mode::Resize {
            max_dimension,
            jpeg_quality,
        } => {
            d.insert("mode".into(), value("resize"));
            d.insert("max_dimension".into(), value(max_dimension));
            d.insert("jpeg_quality".into(), value(u32::from(jpeg_quality)));
        }
    }
    d.insert(
        "strip_location".into(),
        value(options.prepare.strip_location),
    );
    d.insert("conflict".into(), value(options.conflict.name()));
    d.insert("share_link".into(), value(options.share_link));
    d
}

#[interface(
    name = "io.github.dbxport1.Watches",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Watches {
    /// Watches `local_dir` (absolute; must be a folder) and exports every photo that lands
    /// there to `remote_folder` (`""`: the default folder), with `options` (see the interface
    /// comment; `conflict` defaults to the config's `watch.conflict`, `replace`). What the
    /// folder already holds is exported too. Returns the watch's id.
    async fn add_watch(
        &self,
        local_dir: String,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<u64, ServiceError> {
        let mut recursive = false;
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        let mut export = HashMap::new();
        for (key, v) in options {
            match key.as_str() {
                "recursive" => recursive = flag(&key, &v).map_err(ServiceError::InvalidArgument)?,
                "include" => include = strings(&key, &v)?,
                "exclude" => exclude = strings(&key, &v)?,
                _ => {
                    export.insert(key, v);
                }
            }
        }
        let overrides = export_overrides(&export).map_err(ServiceError::InvalidArgument)?;
        let options = self
            .defaults
            .clone()
            .with_overrides(&overrides)
            .map_err(ServiceError::InvalidArgument)?;
        let folder = checked_folder(&remote_folder, &self.default_folder)?;
        Ok(self
            .watcher
            .add(NewWatch {
                local_dir: PathBuf::from(local_dir),
                remote_folder: if folder.is_empty() {
                    "/".into()
                } else {
                    folder
                },
                recursive,
                include,
                exclude,
                options,
            })
            .await?)
    }

    /// Stops watching; jobs the watch already queued go on. Its record of uploaded files is
    /// forgotten, so adding the folder again exports what it holds again (skip-identical
    /// then sends nothing for files already in Dropbox).
    async fn remove_watch(&self, id: u64) -> Result<(), ServiceError> {
        Ok(self.watcher.remove(id).await?)
    }

    /// Every watch: `id`, `local_dir`, `remote_folder`, `recursive`, `include`, `exclude`,
    /// `state` (`active`, `missing`, `error`), `reason`, `uploaded` (files recorded as handled),
    /// and the export options (`mode`, `max_dimension`, `jpeg_quality`, `strip_location`,
    /// `conflict`, `share_link`).
    async fn list_watches(&self) -> Vec<HashMap<String, OwnedValue>> {
        self.watcher.list().iter().map(watch_to_dict).collect()
    }

    /// A watch's state changed (`active`, `missing`, `error`), with the reason in words.
    #[zbus(signal)]
    pub async fn watch_changed(
        emitter: &SignalEmitter<'_>,
        id: u64,
        state: &str,
        reason: &str,
    ) -> zbus::Result<()>;
}

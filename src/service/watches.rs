//! `io.github.dbxport1.Watches`: folders whose new photos export themselves (see
//! [`crate::watch`]).
//!
//! A watch's options are `Upload`'s export options (`profile`, `resize`, `max_dimension`,
//! `jpeg_quality`, `strip_location`, `conflict`, `share_link`, `original`) plus `recursive`
//! (b), `include` and `exclude` (as: file-name globs). Its state (`active`, `missing`, `error`)
//! and the reason come with `ListWatches` and the `WatchChanged` signal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use super::options::{export_overrides, flag, strings, take_profile};
use super::{ServiceError, options_to_dict, value};
use crate::export::ExportOptions;
use crate::intake::checked_template;
use crate::profile::Profiles;
use crate::watch::{NewWatch, WatchError, WatchInfo, Watcher};

pub struct Watches {
    pub(super) watcher: Arc<Watcher>,
    pub(super) default_folder: String,
    pub(super) defaults: ExportOptions,
    pub(super) profiles: Profiles,
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
    d.insert(
        "profile".into(),
        value(spec.profile.clone().unwrap_or_default()),
    );
    d.extend(options_to_dict(&spec.options));
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
    /// there to `remote_folder` (`""`: the profile's folder, else the default folder; it may be
    /// a template, expanded per photo), with `options` (see the interface comment; `conflict`
    /// defaults to the config's `watch.conflict`, `replace`). A watch with a `profile` keeps
    /// its name and reads the profile when its jobs are made, so an edited profile applies from
    /// the daemon's next start. What the folder already holds is exported too. Returns the
    /// watch's id.
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
                "include" => {
                    include = strings(&key, &v).map_err(ServiceError::InvalidArgument)?;
                }
                "exclude" => {
                    exclude = strings(&key, &v).map_err(ServiceError::InvalidArgument)?;
                }
                _ => {
                    export.insert(key, v);
                }
            }
        }
        let profile = take_profile(&mut export).map_err(ServiceError::InvalidArgument)?;
        let overrides = export_overrides(&export).map_err(ServiceError::InvalidArgument)?;
        let profile = profile
            .map(|name| self.profiles.get(&name).cloned())
            .transpose()
            .map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let options = match &profile {
            Some(profile) => profile.options(self.defaults.clone(), &overrides),
            None => self.defaults.clone().with_overrides(&overrides),
        }
        .map_err(ServiceError::InvalidArgument)?;
        let name = profile.as_ref().map(|p| p.name.clone());
        let folder_from_profile =
            remote_folder.is_empty() && profile.as_ref().is_some_and(|p| p.folder.is_some());
        let folder = crate::profile::folder(&remote_folder, profile.as_ref(), &self.default_folder);
        let template = checked_template(folder, &self.default_folder, name.as_deref())?;
        // Each of the watch's batches would end with a link Dropbox cannot make.
        if options.share_link && template.may_be_top() {
            return Err(ServiceError::InvalidArgument(
                crate::intake::TOP_LINK.replace("these files' folder", "the watch's folder"),
            ));
        }
        Ok(self
            .watcher
            .add(NewWatch {
                local_dir: PathBuf::from(local_dir),
                remote_folder: match template.text() {
                    "" => "/".into(),
                    text => text.into(),
                },
                recursive,
                include,
                exclude,
                options,
                profile: name,
                overrides,
                folder_from_profile,
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
    /// `profile` (s, `""` for none), and the export options (for a watch with a profile, the
    /// folder and options as the profile gives them now) (`mode`, `max_dimension`, `jpeg_quality`, `strip_location`,
    /// `conflict`, `share_link`).
    async fn list_watches(&self) -> Vec<HashMap<String, OwnedValue>> {
        self.watcher
            .list()
            .into_iter()
            .map(|mut info| {
                // A watch with a profile shows the folder and options its jobs are made with
                // now: the profile as this daemon read it.
                let (folder, options, _) = info.spec.current(&self.defaults, &self.profiles);
                info.spec.remote_folder = folder;
                info.spec.options = options;
                watch_to_dict(&info)
            })
            .collect()
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

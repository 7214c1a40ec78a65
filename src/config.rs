//! `config.toml` and the XDG directories dbxport uses.
//!
//! Everything a test or a second instance needs to isolate itself comes from `XDG_CONFIG_HOME`,
//! `XDG_STATE_HOME` and `XDG_CACHE_HOME` (the README, "Every key"). A missing config
//! file means defaults; an unknown key is an error, so a typo is never silently ignored.

pub mod edit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Dropbox's largest `list_folder` page (`limit`), and the default page size.
pub const MAX_LIST_PAGE_SIZE: u32 = 2000;

/// One MiB; chunk sizes are written in bytes but checked against 4 MiB multiples.
pub const MIB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot find a home directory: set HOME or the XDG_* variables")]
    NoHome,
}

/// Where dbxport keeps its files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `$XDG_CONFIG_HOME/dbxport/config.toml`.
    pub config_file: PathBuf,
    /// `$XDG_STATE_HOME/dbxport/`: the sled database and the credentials file.
    pub state: PathBuf,
    /// `$XDG_CACHE_HOME/dbxport/`: prepared files.
    pub cache: PathBuf,
}

impl Dirs {
    /// The XDG locations, read from the environment now.
    pub fn from_env() -> Result<Dirs, ConfigError> {
        let project = directories::ProjectDirs::from("io.github", "dbxport", "dbxport")
            .ok_or(ConfigError::NoHome)?;
        let state = project
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| project.data_local_dir().to_path_buf());
        Ok(Dirs {
            config_file: project.config_dir().join("config.toml"),
            state,
            cache: project.cache_dir().to_path_buf(),
        })
    }

    /// The sled database.
    pub fn queue_db(&self) -> PathBuf {
        self.state.join("queue.sled")
    }

    /// Copies of files handed over as open descriptors, until their job is done
    /// (`crate::spool`).
    pub fn spool(&self) -> PathBuf {
        self.state.join("spool")
    }

    /// Prepared (resized) files live here until their job ends.
    pub fn prepared(&self) -> PathBuf {
        self.cache.join("prepared")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dropbox: DropboxConfig,
    pub upload: UploadConfig,
    pub credentials: CredentialsConfig,
    pub export: ExportConfig,
    pub watch: WatchConfig,
    pub notifications: NotificationsConfig,
    pub policy: PolicyConfig,
    pub history: HistoryConfig,
    pub spool: SpoolConfig,
    /// Named export profiles, `[profiles.NAME]` (`crate::profile`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// A named export profile: a folder (may be a template) and export options, each left out
/// to take `upload.remote_folder` and `[export]`'s. A caller's explicit options go over it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// `true`: originals; `false`: resize (with `max_dimension`/`jpeg_quality` or `[export]`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dimension: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_location: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<crate::export::Conflict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_link: Option<bool>,
}

/// The keys of a `[profiles.NAME]` table, in the order `ProfileConfig` declares them.
pub const PROFILE_KEYS: [&str; 7] = [
    "folder",
    "original",
    "max_dimension",
    "jpeg_quality",
    "strip_location",
    "conflict",
    "share_link",
];

impl ProfileConfig {
    /// Its export values as a caller's overrides.
    pub fn overrides(&self) -> crate::export::ExportOverrides {
        crate::export::ExportOverrides {
            original: self.original,
            max_dimension: self.max_dimension,
            jpeg_quality: self.jpeg_quality.map(u32::from),
            strip_location: self.strip_location,
            conflict: self.conflict,
            share_link: self.share_link,
            ..Default::default()
        }
    }

    /// Why `[profiles.name]` cannot be used, naming the key; `export` is `[export]`.
    fn check(&self, name: &str, export: &ExportConfig) -> Result<(), String> {
        crate::profile::check_name(name).map_err(|e| format!("[profiles.{name}]: {e}"))?;
        if let Some(folder) = &self.folder {
            crate::template::Template::parse(folder)
                .map_err(|e| format!("profiles.{name}.folder: {e}"))?;
        }
        if self.original == Some(true)
            && (self.max_dimension.is_some() || self.jpeg_quality.is_some())
        {
            return Err(format!(
                "profiles.{name}.original = true cannot be combined with max_dimension or \
                 jpeg_quality: remove original, or the size and quality"
            ));
        }
        export
            .options()
            .with_overrides(&self.overrides())
            .map(|_| ())
            .map_err(|e| format!("profiles.{name}.{e}"))
    }
}

/// How long finished jobs stay listed (`dbxportctl jobs --all`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// The daemon forgets finished jobs (done, failed, cancelled) this many days after they
    /// ended, at start and once a day; 0 keeps them forever. A watch's record of the files it
    /// sent is kept regardless, so nothing is sent twice.
    pub keep_finished_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            keep_finished_days: 30,
        }
    }
}

/// Files handed over as open descriptors (`UploadFds`, `dbxportctl upload --spool`) are
/// copied into the spool under the state folder until they are uploaded (`crate::spool`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// The most bytes the spool holds: copies waiting to go up and those kept for failed
    /// jobs. A hand-over that would pass it is refused whole; 0 refuses every hand-over.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: crate::spool::DEFAULT_MAX_BYTES,
        }
    }
}

/// When automatic (watch-folder) uploads wait. Uploads a caller asked for never do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Hold them while NetworkManager says the connection is metered (or guesses so: a phone's
    /// hotspot). On by default: a card of raw photos can eat a month's mobile data unasked.
    pub pause_watch_on_metered: bool,
    /// Hold them while UPower says the machine runs on battery. Off by default: sending a few
    /// photos costs little power, and a laptop importing a card away from its charger is the
    /// case auto-export is for.
    pub pause_watch_on_battery: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            pause_watch_on_metered: true,
            pause_watch_on_battery: false,
        }
    }
}

/// Desktop notifications when a batch ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Show one (through org.freedesktop.Notifications) when a batch ends; batches from watched
    /// folders only when something failed.
    pub enabled: bool,
    /// Show transfers in Plasma's job tray (org.kde.JobViewServer), one entry per batch, with
    /// progress and a cancel button.
    pub job_tray: bool,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            job_tray: true,
        }
    }
}

/// Watch folders. Watches are added over D-Bus (`dbxportctl watch add`) and kept in the state
/// database; `[[watch.folders]]` declares some in the config too, added at start if not there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// How long a new file's size and mtime must stay the same, after its writer closed it,
    /// before it is exported.
    pub settle_ms: u64,
    /// A file opened for writing and left without a change this long is looked at again; it
    /// is exported only once no program has it open for writing.
    pub writer_idle_ms: u64,
    /// The conflict policy of a watch that does not choose one (`watch add` without
    /// `--conflict`, a `[[watch.folders]]` entry without `conflict`): `replace`, so an edited
    /// photo takes the place of the copy sent before. A watch keeps the policy it was added
    /// with.
    pub conflict: crate::export::Conflict,
    pub folders: Vec<WatchFolderConfig>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            settle_ms: 2000,
            writer_idle_ms: 60_000,
            conflict: crate::export::Conflict::Replace,
            folders: Vec::new(),
        }
    }
}

/// A watch declared in the config. Export options not given are `[export]`'s.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchFolderConfig {
    /// The local folder; `~/` is the home directory.
    pub local_dir: String,
    /// The Dropbox folder; empty: `upload.remote_folder`.
    #[serde(default)]
    pub remote_folder: String,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// An export profile (`[profiles.NAME]`), read when the watch's jobs are made; the
    /// watch's own keys below go over it, and its folder is used when `remote_folder` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ExportMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dimension: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_location: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<crate::export::Conflict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_link: Option<bool>,
}

impl WatchFolderConfig {
    /// The local folder with `~/` expanded.
    pub fn local_path(&self) -> PathBuf {
        match (self.local_dir.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(&self.local_dir),
        }
    }

    /// This watch's own export keys, as a caller's explicit options (over its profile's).
    pub fn overrides(&self) -> crate::export::ExportOverrides {
        crate::export::ExportOverrides {
            original: self.mode.map(|m| m == ExportMode::Original),
            max_dimension: self.max_dimension,
            jpeg_quality: self.jpeg_quality.map(u32::from),
            strip_location: self.strip_location,
            conflict: self.conflict,
            share_link: self.share_link,
            ..Default::default()
        }
    }

    /// The export options: `[export]`'s, with this watch's own on top.
    pub fn options(&self, defaults: &ExportConfig) -> crate::export::ExportOptions {
        let mut export = defaults.clone();
        // A size or quality means resizing, as with `Upload`'s options.
        if self.max_dimension.is_some() || self.jpeg_quality.is_some() {
            export.mode = ExportMode::Resize;
        }
        if let Some(mode) = self.mode {
            export.mode = mode;
        }
        if let Some(px) = self.max_dimension {
            export.max_dimension = px;
        }
        if let Some(q) = self.jpeg_quality {
            export.jpeg_quality = q;
        }
        if let Some(strip) = self.strip_location {
            export.strip_location = strip;
        }
        if let Some(conflict) = self.conflict {
            export.conflict = conflict;
        }
        if let Some(link) = self.share_link {
            export.share_link = link;
        }
        export.options()
    }
}

/// Default export options; each `Upload` call may override them for its batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `original` (bytes untouched) or `resize`.
    pub mode: ExportMode,
    /// Long edge in pixels, when resizing (never upscaled).
    pub max_dimension: u32,
    /// JPEG quality 1–100, when resizing.
    pub jpeg_quality: u8,
    /// Remove GPS tags from what is uploaded (originals too, without re-encoding).
    pub strip_location: bool,
    /// `skip-identical`, `rename`, `overwrite` or `replace`.
    pub conflict: crate::export::Conflict,
    /// End each batch with a shared link to its folder.
    pub share_link: bool,
    /// Use the options of the last `Upload` that chose any as the defaults (as the export
    /// dialog remembers its settings), instead of the values above.
    pub remember_last_choice: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExportMode {
    #[default]
    Original,
    Resize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            mode: ExportMode::Original,
            max_dimension: crate::export::DEFAULT_MAX_DIMENSION,
            jpeg_quality: crate::export::DEFAULT_JPEG_QUALITY,
            strip_location: false,
            conflict: Default::default(),
            share_link: false,
            remember_last_choice: false,
        }
    }
}

impl ExportConfig {
    pub fn options(&self) -> crate::export::ExportOptions {
        use crate::prepare::{Mode, PrepareOptions};
        let mode = match self.mode {
            ExportMode::Original => Mode::Original,
            ExportMode::Resize => Mode::Resize {
                max_dimension: self.max_dimension,
                jpeg_quality: self.jpeg_quality,
            },
        };
        crate::export::ExportOptions {
            prepare: PrepareOptions {
                mode,
                strip_location: self.strip_location,
            },
            conflict: self.conflict,
            share_link: self.share_link,
        }
    }
}

impl Config {
    /// The export defaults of a watch: `[export]`, with `watch.conflict` as the policy.
    pub fn watch_export(&self) -> ExportConfig {
        ExportConfig {
            conflict: self.watch.conflict,
            ..self.export.clone()
        }
    }
}

/// Where the Dropbox login rests.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStoreKind {
    /// The Secret Service (GNOME Keyring, KWallet, KeePassXC…) on the session bus.
    Keyring,
    /// A 0600 file in the state directory: for machines without a keyring.
    File,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    pub store: CredentialStoreKind,
    /// With `store = "keyring"`: when no Secret Service answers (or it is locked), keep the
    /// login in the 0600 file instead of waiting for one. Off by default: never a silent
    /// plaintext fallback.
    pub file_fallback: bool,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        Self {
            store: CredentialStoreKind::Keyring,
            file_fallback: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DropboxConfig {
    /// The user's Dropbox app key (no secret: PKCE). Needed to refresh tokens and to log in.
    pub app_key: Option<String>,
    /// RPC routes, `/oauth2/token` and `/2/auth/token/revoke`.
    pub api_url: String,
    /// Upload routes.
    pub content_url: String,
    /// The browser authorize page.
    pub authorize_url: String,
    /// Loopback port of the OAuth redirect; must match the app's registration.
    pub redirect_port: u16,
    /// An extra CA certificate (PEM) to trust, for test servers.
    pub ca_file: Option<PathBuf>,
    /// Entries asked for per `list_folder` page (Dropbox takes 1..=2000 and treats it as a
    /// hint). Smaller pages mean more requests; tests lower it to exercise paging.
    pub list_page_size: u32,
    /// Longest wait for Dropbox to make progress: for an answer, for the connection to take
    /// more of an upload, and for a whole RPC answer to arrive. A stalled server costs at
    /// most this much before the request is retried.
    pub read_timeout_secs: u64,
}

/// An app key compiled in by a release or a distribution (`DBXPORT_APP_KEY=… cargo build`),
/// so that users of a packaged build never register an app. Not a secret: with PKCE the key
/// only names the app, and every login is still approved by the user at Dropbox.
pub const BUILT_IN_APP_KEY: Option<&str> = option_env!("DBXPORT_APP_KEY");

impl DropboxConfig {
    /// The app key in use: the config's when it names one (a user's own app wins), else the
    /// one compiled in, if any.
    pub fn effective_app_key(&self) -> Option<String> {
        self.app_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .or_else(|| BUILT_IN_APP_KEY.filter(|k| !k.is_empty()).map(String::from))
    }
}

impl Default for DropboxConfig {
    fn default() -> Self {
        Self {
            app_key: None,
            api_url: "https://api.dropboxapi.com".into(),
            content_url: "https://content.dropboxapi.com".into(),
            authorize_url: "https://www.dropbox.com/oauth2/authorize".into(),
            redirect_port: 53682,
            ca_file: None,
            list_page_size: MAX_LIST_PAGE_SIZE,
            read_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Where uploads go when a caller names no folder.
    pub remote_folder: String,
    /// Files up to this size go up in one `files/upload` request; larger ones use an upload
    /// session, so an interruption costs at most one chunk.
    pub session_threshold: u64,
    /// Bytes per upload-session request; a multiple of 4 MiB (Dropbox's block size) and at
    /// most 148 MiB (the 150 MiB request limit, rounded down to a block).
    pub chunk_size: u64,
    /// The most requests carrying file data at once. The engine finds the number that pays
    /// by itself (`engine::concurrency`: from 2, one more per round of requests that went
    /// well, halved when Dropbox throttles, a tenth less when requests slow down), never
    /// more than this.
    pub transfers: usize,
    /// Upload bandwidth in bytes per second across all transfers; 0 = no limit. The D-Bus
    /// property `BandwidthLimit` (and `dbxportctl limit`) overrides it until changed again.
    pub bandwidth_limit: u64,
    /// Commit files up to `session_threshold` together with `finish_batch_v2` (one namespace
    /// lock for many files, as Dropbox's performance guide asks) instead of one commit each.
    pub batch_commit: bool,
    /// Most files in one batch commit (Dropbox takes at most 1000).
    pub batch_size: usize,
    /// Longest a sent file waits for its batch to fill before the batch is committed anyway.
    /// A batch is also committed as soon as nothing else is being sent.
    pub batch_wait_ms: u64,
    /// Longest a small file's bytes wait for more to go up with them in one `append_batch`
    /// (a pack also goes when full, or as soon as nothing more is being prepared or read).
    /// Photos being resized arrive a few a second: a longer wait means fewer requests.
    pub pack_wait_ms: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            remote_folder: "/Photos".into(),
            session_threshold: 16 * MIB,
            chunk_size: 8 * MIB,
            // A ceiling, not a setting: 16 photos of a few MB in flight fill a link of several
            // hundred Mbit/s at 80–150 ms a request (Dropbox's distance from most users), and
            // the adaptive limit only climbs there while that pays. It bounds memory too (a
            // request holds at most one chunk): 16 × 8 MiB at worst.
            transfers: 16,
            bandwidth_limit: 0,
            batch_commit: true,
            batch_size: crate::dropbox::MAX_BATCH_ENTRIES,
            batch_wait_ms: 1000,
            pack_wait_ms: 5000,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let up = &self.upload;
        let block = 4 * MIB;
        if up.chunk_size == 0 || !up.chunk_size.is_multiple_of(block) || up.chunk_size > 148 * MIB {
            return Err(format!(
                "upload.chunk_size = {} must be a multiple of 4 MiB (4194304) between 4 MiB and 148 MiB",
                up.chunk_size
            ));
        }
        if up.session_threshold > 148 * MIB {
            return Err("upload.session_threshold must be at most 148 MiB (Dropbox takes at most 150 MiB per request)".into());
        }
        let resize = crate::prepare::PrepareOptions {
            mode: crate::prepare::Mode::Resize {
                max_dimension: self.export.max_dimension,
                jpeg_quality: self.export.jpeg_quality,
            },
            strip_location: false,
        };
        resize.validate().map_err(|e| format!("export.{e}"))?;
        if up.transfers == 0 || up.transfers > 64 {
            return Err(format!(
                "upload.transfers = {} must be between 1 and 64",
                up.transfers
            ));
        }
        if !(1..=crate::dropbox::MAX_BATCH_ENTRIES).contains(&up.batch_size) {
            return Err(format!(
                "upload.batch_size = {} must be between 1 and {}",
                up.batch_size,
                crate::dropbox::MAX_BATCH_ENTRIES
            ));
        }
        crate::template::Template::parse(&up.remote_folder)
            .map_err(|e| format!("upload.remote_folder: {e}"))?;
        for (name, profile) in &self.profiles {
            profile.check(name, &self.export)?;
        }
        let profiles = self.profiles();
        for (i, folder) in self.watch.folders.iter().enumerate() {
            if !folder.local_path().is_absolute() {
                return Err(format!(
                    "watch.folders[{i}].local_dir = {:?} must be an absolute path (or start with ~/)",
                    folder.local_dir
                ));
            }
            let resize = crate::prepare::PrepareOptions {
                mode: crate::prepare::Mode::Resize {
                    max_dimension: folder.max_dimension.unwrap_or(self.export.max_dimension),
                    jpeg_quality: folder.jpeg_quality.unwrap_or(self.export.jpeg_quality),
                },
                strip_location: false,
            };
            resize
                .validate()
                .map_err(|e| format!("watch.folders[{i}].{e}"))?;
            let profile = match &folder.profile {
                Some(name) => Some(
                    profiles
                        .get(name)
                        .map_err(|e| format!("watch.folders[{i}].profile: {e}"))?,
                ),
                None => None,
            };
            let remote = crate::profile::folder(&folder.remote_folder, profile, &up.remote_folder);
            let template = crate::template::Template::parse(remote)
                .and_then(|t| t.check_profile(folder.profile.as_deref()).map(|()| t))
                .map_err(|e| format!("watch.folders[{i}].remote_folder: {e}"))?;
            // As AddWatch refuses it: each of the watch's batches would end with a link to
            // the whole Dropbox, which Dropbox will not make.
            let options = match profile {
                Some(profile) => profile.options(self.export.options(), &folder.overrides()),
                None => self.export.options().with_overrides(&folder.overrides()),
            }
            .map_err(|e| format!("watch.folders[{i}]: {e}"))?;
            if options.share_link && template.may_be_top() {
                return Err(format!(
                    "watch.folders[{i}].share_link: {}",
                    crate::intake::TOP_LINK.replace("these files' folder", "the watch's folder")
                ));
            }
            for pattern in folder.include.iter().chain(&folder.exclude) {
                crate::watch::rules::check_pattern(pattern)
                    .map_err(|e| format!("watch.folders[{i}]: {e}"))?;
            }
        }
        if !(1..=MAX_LIST_PAGE_SIZE).contains(&self.dropbox.list_page_size) {
            return Err(format!(
                "dropbox.list_page_size = {} must be between 1 and {MAX_LIST_PAGE_SIZE}",
                self.dropbox.list_page_size
            ));
        }
        if !(1..=3600).contains(&self.dropbox.read_timeout_secs) {
            return Err(format!(
                "dropbox.read_timeout_secs = {} must be between 1 and 3600",
                self.dropbox.read_timeout_secs
            ));
        }
        for (key, value) in [
            ("dropbox.api_url", &self.dropbox.api_url),
            ("dropbox.content_url", &self.dropbox.content_url),
        ] {
            url::Url::parse(value).map_err(|e| format!("{key} = {value:?} is not a URL: {e}"))?;
        }
        Ok(())
    }

    /// The named profiles, as the library uses them.
    pub fn profiles(&self) -> crate::profile::Profiles {
        crate::profile::Profiles::new(self.profiles.iter().map(|(name, p)| {
            crate::profile::Profile {
                name: name.clone(),
                folder: p.folder.clone(),
                overrides: p.overrides(),
            }
        }))
    }

    /// The config as TOML text (for `dbxportctl demo` and tests that write one).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_app_key_wins_over_the_built_in_one() {
        let mut dropbox = DropboxConfig {
            app_key: Some("users-own".into()),
            ..DropboxConfig::default()
        };
        assert_eq!(dropbox.effective_app_key().as_deref(), Some("users-own"));
        dropbox.app_key = None;
        assert_eq!(
            dropbox.effective_app_key().as_deref(),
            BUILT_IN_APP_KEY.filter(|k| !k.is_empty())
        );
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&dir.path().join("nope.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.dropbox.redirect_port, 53682);
    }

    #[test]
    fn contract_keys_parse() {
        let text = r#"
            [dropbox]
            app_key = "abc"
            api_url = "http://127.0.0.1:9"
            content_url = "http://127.0.0.1:9"
            authorize_url = "http://127.0.0.1:9/oauth2/authorize"
            redirect_port = 1234
            ca_file = "/tmp/ca.pem"
            list_page_size = 100
            [upload]
            chunk_size = 16777216
            [credentials]
            store = "file"
        "#;
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.dropbox.app_key.as_deref(), Some("abc"));
        assert_eq!(config.upload.chunk_size, 16 * MIB);
        assert_eq!(config.upload.transfers, 16);
        assert_eq!(config.credentials.store, CredentialStoreKind::File);
        assert!(!config.credentials.file_fallback);
        assert_eq!(config.dropbox.list_page_size, 100);
        // Round trip through to_toml.
        assert_eq!(
            Config::parse(&config.to_toml(), Path::new("x")).unwrap(),
            config
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors_naming_the_file() {
        let err =
            Config::parse("[dropbox]\napp_kye = \"x\"\n", Path::new("/etc/c.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/etc/c.toml") && text.contains("app_kye"),
            "{text}"
        );
        let err =
            Config::parse("[upload]\nchunk_size = 5000000\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("multiple of 4 MiB"), "{err}");
        for bad in ["0", "2001"] {
            let err = Config::parse(
                &format!("[dropbox]\nlist_page_size = {bad}\n"),
                Path::new("c.toml"),
            )
            .unwrap_err();
            assert!(err.to_string().contains("list_page_size"), "{err}");
        }
        assert_eq!(Config::default().dropbox.list_page_size, 2000);
    }

    #[test]
    fn policies_default_to_holding_on_metered_only_and_refuse_typos() {
        let config = Config::default();
        assert!(config.policy.pause_watch_on_metered);
        assert!(!config.policy.pause_watch_on_battery);
        assert!(config.notifications.job_tray);
        let text = "[policy]\npause_watch_on_metered = false\npause_watch_on_battery = true\n[notifications]\njob_tray = false\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert!(!config.policy.pause_watch_on_metered);
        assert!(config.policy.pause_watch_on_battery);
        assert!(!config.notifications.job_tray);
        let err =
            Config::parse("[policy]\npause_on_metered = true\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("pause_on_metered"), "{err}");
        let err = Config::parse(
            "[policy]\npause_watch_on_battery = 1\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("pause_watch_on_battery"), "{err}");
    }

    #[test]
    fn profiles_and_templates_are_checked_at_load_naming_the_key() {
        let text = r#"
[upload]
remote_folder = "/Photos/{year}/{date}"

[profiles.web]
folder = "/Web/{year}"
max_dimension = 2048
strip_location = true
conflict = "overwrite"

[profiles.archive]
original = true
"#;
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        let profiles = config.profiles();
        let web = profiles.get("web").unwrap();
        assert_eq!(web.folder.as_deref(), Some("/Web/{year}"));
        assert_eq!(web.overrides.max_dimension, Some(2048));
        assert_eq!(
            web.overrides.conflict,
            Some(crate::export::Conflict::Overwrite)
        );
        assert_eq!(
            profiles.get("archive").unwrap().overrides.original,
            Some(true)
        );
        assert_eq!(
            Config::parse(&config.to_toml(), Path::new("x")).unwrap(),
            config
        );
        for (bad, names) in [
            (
                "[upload]\nremote_folder = \"/P/{yaer}\"\n",
                "upload.remote_folder",
            ),
            (
                "[profiles.web]\nfolder = \"/P//{year}\"\n",
                "profiles.web.folder",
            ),
            (
                "[profiles.web]\nmax_dimension = 3\n",
                "profiles.web.max_dimension",
            ),
            (
                "[profiles.web]\njpeg_quality = 0\n",
                "profiles.web.jpeg_quality",
            ),
            (
                "[profiles.web]\noriginal = true\nmax_dimension = 800\n",
                "profiles.web.original",
            ),
            ("[profiles.web]\nsize = 3\n", "size"),
            ("[profiles.\"a b\"]\n", "[profiles.a b]"),
            (
                "[[watch.folders]]\nlocal_dir = \"/p\"\nremote_folder = \"/C/{nope}\"\n",
                "watch.folders[0].remote_folder",
            ),
            (
                "[[watch.folders]]\nlocal_dir = \"/p\"\nremote_folder = \"/\"\nshare_link = true\n",
                "watch.folders[0].share_link: a shared link needs a folder",
            ),
            (
                "[export]\nshare_link = true\n[[watch.folders]]\nlocal_dir = \"/p\"\nremote_folder = \"/{year}\"\n",
                "watch.folders[0].share_link",
            ),
            (
                "[profiles.s]\nshare_link = true\n[[watch.folders]]\nlocal_dir = \"/p\"\nremote_folder = \"/\"\nprofile = \"s\"\n",
                "watch.folders[0].share_link",
            ),
        ] {
            let err = Config::parse(bad, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(names), "{bad}: {err}");
        }
    }

    #[test]
    fn watch_folders_in_the_config() {
        let text = r#"
[export]
mode = "resize"
max_dimension = 1600

[[watch.folders]]
local_dir = "/media/card/DCIM"
remote_folder = "/Camera"
recursive = true
max_dimension = 1024
conflict = "overwrite"

[[watch.folders]]
local_dir = "~/Pictures/Exports"
"#;
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        let folders = &config.watch.folders;
        assert_eq!(folders.len(), 2);
        let options = folders[0].options(&config.export);
        assert_eq!(options.conflict, crate::export::Conflict::Overwrite);
        assert!(matches!(
            options.prepare.mode,
            crate::prepare::Mode::Resize {
                max_dimension: 1024,
                ..
            }
        ));
        assert!(folders[1].local_path().is_absolute() || std::env::var_os("HOME").is_none());
        // A profile: known, and `{profile}` only with one.
        let with = "[profiles.web]\nfolder = \"/W/{profile}\"\n[[watch.folders]]\nlocal_dir = \"/p\"\nprofile = \"web\"\nmax_dimension = 800\n";
        let config = Config::parse(with, Path::new("c.toml")).unwrap();
        assert_eq!(config.watch.folders[0].profile.as_deref(), Some("web"));
        assert_eq!(config.watch.folders[0].overrides().max_dimension, Some(800));
        let unknown = "[[watch.folders]]\nlocal_dir = \"/p\"\nprofile = \"web\"\n";
        let err = Config::parse(unknown, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("watch.folders[0].profile") && err.contains("\"web\""),
            "{err}"
        );
        let without = "[[watch.folders]]\nlocal_dir = \"/p\"\nremote_folder = \"/W/{profile}\"\n";
        let err = Config::parse(without, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no export profile is in use"), "{err}");
        let relative = "[[watch.folders]]\nlocal_dir = \"Pictures\"\n";
        assert!(Config::parse(relative, Path::new("c.toml")).is_err());
        let bad = "[[watch.folders]]\nlocal_dir = \"/p\"\ninclude = [\"a/b\"]\n";
        assert!(Config::parse(bad, Path::new("c.toml")).is_err());
    }
}

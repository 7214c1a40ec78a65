//! `dbxportctl install` / `uninstall`: puts dbxport into the current user's desktop — the
//! systemd unit, the D-Bus activation file, the file-manager menus (Dolphin, Nautilus, Nemo,
//! Thunar), shell completions and the man page — in the XDG places each reader looks, and takes
//! exactly that out again. `completions` and `man` print the generated files for packagers.
//! Photo applications (KDE's Share menu, darktable, gThumb, elementary's Contractor) are
//! plugged in when they are installed, or when named with `--only` (`integrations`).
//!
//! The files are the ones in the source tree (`systemd/`, `dbus/`, `desktop/`), embedded at
//! build time, so what is tested is what is installed. Only the program paths change: menus and
//! activation run the binaries this `dbxportctl` was started from, because `~/.cargo/bin` is
//! rarely on the PATH a graphical session gives file managers and the D-Bus daemon. Thunar keeps
//! all custom actions in one file, so ours are merged into it by their `dbxport-` unique ids.
//! Both commands are idempotent; neither touches the queue, the config or the login.

mod files;
mod integrations;
mod thunar;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Exit;
use super::term::outln;
use files::{Places, Planned, Programs, plan, program_word};
pub use integrations::{HostEnv, Integration};
use thunar::{THUNAR_MARK, thunar_actions, thunar_with_ours, without_ours};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the home directory (is HOME set?)")]
    NoHome,
    #[error("cannot tell where this dbxportctl is: {0}")]
    NoExe(std::io::Error),
    #[error("dbxportd is neither next to {0} nor on PATH; install both (cargo install --path .)")]
    NoDaemon(PathBuf),
    #[error(
        "{0}: menus and units cannot name a program whose path holds quotes, '\\', '$', '%', '`' or a newline; install dbxport elsewhere"
    )]
    UnsafePath(PathBuf),
    #[error("{0}: not a Thunar actions file (no </actions>); left as it is")]
    NotThunarActions(PathBuf),
    #[error("{0}: not a gThumb scripts file (no </scripts>); left as it is")]
    NotScriptsFile(PathBuf),
    #[error(
        "no integration called \"{0}\": --only takes a comma-separated list of purpose, darktable, gthumb, contractor"
    )]
    UnknownIntegration(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Wrote,
    Unchanged,
    Removed,
    Absent,
}

/// Writes `contents` to `path` with `mode` unless it already is exactly that.
fn put(path: &Path, contents: &str, mode: u32, dry_run: bool) -> Result<Change, InstallError> {
    let current = std::fs::read(path).ok();
    let current_mode = std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    if current.as_deref() == Some(contents.as_bytes()) && current_mode == Some(mode) {
        return Ok(Change::Unchanged);
    }
    if dry_run {
        return Ok(Change::Wrote);
    }
    // A file kept elsewhere and linked here (dotfile managers do that) is written where it is.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Written beside and renamed over: a file manager reading it meanwhile sees old or new.
    let temp = path.with_file_name(format!(
        ".{}.dbxport-new",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut out = std::fs::File::create(&temp).map_err(io_err(&temp))?;
    out.write_all(contents.as_bytes()).map_err(io_err(&temp))?;
    out.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(&temp))?;
    drop(out);
    std::fs::rename(&temp, path).map_err(io_err(path))?;
    Ok(Change::Wrote)
}

fn remove(path: &Path, dry_run: bool) -> Result<Change, InstallError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(Change::Absent);
    }
    if !dry_run {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    Ok(Change::Removed)
}

/// Installs everything; returns each path with what happened to it.
pub fn install(
    places: &Places,
    programs: &Programs,
    profiles: &[String],
    chosen: &[Integration],
    dry_run: bool,
) -> Result<Vec<(PathBuf, Change)>, InstallError> {
    // Everything is worked out before anything is written: a Thunar or gThumb file that
    // cannot be merged stops the install before it starts, not halfway.
    let mut files = plan(places, programs, profiles)?;
    let thunar = places.thunar();
    let existing = read_optional(&thunar)?;
    let ours = thunar_actions(
        &program_word(&programs.dbxportctl)?,
        &program_word(&programs.export)?,
        profiles,
    );
    files.push(Planned {
        contents: thunar_with_ours(existing.as_deref(), &ours, &thunar)?,
        mode: std::fs::metadata(&thunar).map_or(0o644, |m| m.permissions().mode() & 0o7777),
        path: thunar,
    });
    for &integration in chosen {
        files.extend(integrations::whole_files(integration, places, programs)?);
        let merged = match integration {
            Integration::Darktable => Some(integrations::luarc(places)),
            Integration::Gthumb => Some(integrations::gthumb_scripts(places)),
            Integration::Purpose | Integration::Contractor => None,
        };
        if let Some(path) = merged {
            let existing = read_optional(&path)?;
            let contents = if integration == Integration::Darktable {
                integrations::luarc_with_ours(existing.as_deref())
            } else {
                integrations::gthumb_with_ours(
                    existing.as_deref(),
                    &program_word(&programs.dbxportctl)?,
                    &path,
                )?
            };
            files.push(Planned {
                contents,
                mode: std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode() & 0o7777),
                path,
            });
        }
    }
    let mut done = Vec::new();
    // Entries of profiles no longer in the config go: installing again refreshes the menus.
    for stale in profile_menus(places) {
        if !files.iter().any(|f| f.path == stale) {
            done.push((stale.clone(), remove(&stale, dry_run)?));
        }
    }
    for file in files {
        let change = put(&file.path, &file.contents, file.mode, dry_run)?;
        done.push((file.path, change));
    }
    Ok(done)
}

/// The text of `path`, or None when there is no such file.
fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Takes our part out of a file the user's things share (darktable's `luarc`, gThumb's
/// `scripts.xml`): `ours` says whether the text holds it, `without` removes it, `empty` says
/// whether what is left is nothing of the user's (the file install created), which goes.
fn unmerge(
    path: &Path,
    ours: impl Fn(&str) -> bool,
    without: impl Fn(&str) -> String,
    empty: impl Fn(&str) -> bool,
    dry_run: bool,
) -> Result<Option<Change>, InstallError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    if !ours(&text) {
        return Ok(None);
    }
    let rest = without(&text);
    if empty(&rest) {
        return remove(path, dry_run).map(Some);
    }
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    put(path, &rest, mode, dry_run)?;
    Ok(Some(Change::Wrote))
}

/// The menu files made for export profiles that are there now (Nautilus scripts, Nemo
/// actions), whatever the profiles.
fn profile_menus(places: &Places) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (dir, prefix) in [
        ("nautilus/scripts", files::NAUTILUS_PROFILE_PREFIX),
        ("nemo/actions", files::NEMO_PROFILE_PREFIX),
    ] {
        let dir = places.data.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// The export profiles' names in the user's config, for their menu entries. A config that
/// does not load gives none, said once: the menus without profiles still install.
fn configured_profiles() -> Vec<String> {
    let loaded = crate::config::Dirs::from_env()
        .map_err(|e| e.to_string())
        .and_then(|dirs| crate::config::Config::load(&dirs.config_file).map_err(|e| e.to_string()));
    match loaded {
        Ok(config) => config.profiles.keys().cloned().collect(),
        Err(e) => {
            super::term::warnln!("dbxportctl: no profile menus: {e}");
            Vec::new()
        }
    }
}

/// Removes what `install` put; the user's own Thunar actions stay.
pub fn uninstall(places: &Places, dry_run: bool) -> Result<Vec<(PathBuf, Change)>, InstallError> {
    // The paths do not depend on the programs; any will do to list them.
    let programs = Programs {
        dbxportctl: "dbxportctl".into(),
        dbxportd: "dbxportd".into(),
        export: "dbxport-export".into(),
    };
    let mut done = Vec::new();
    for file in plan(places, &programs, &[])? {
        let change = remove(&file.path, dry_run)?;
        done.push((file.path, change));
    }
    for path in profile_menus(places) {
        let change = remove(&path, dry_run)?;
        done.push((path, change));
    }
    let link = places.enabled_link();
    if std::fs::symlink_metadata(&link).is_ok() {
        done.push((link.clone(), remove(&link, dry_run)?));
    }
    // Every integration's files, whichever were placed: the paths are ours alone.
    for path in integrations::all_whole_files(places)? {
        let change = remove(&path, dry_run)?;
        done.push((path, change));
    }
    let luarc = integrations::luarc(places);
    if let Some(change) = unmerge(
        &luarc,
        |t| t.contains(integrations::LUARC_LINE.trim_end()),
        integrations::luarc_without_ours,
        |rest| rest.is_empty(),
        dry_run,
    )? {
        done.push((luarc, change));
    }
    let scripts = integrations::gthumb_scripts(places);
    if let Some(change) = unmerge(
        &scripts,
        |t| t != integrations::gthumb_without_ours(t),
        integrations::gthumb_without_ours,
        |rest| !integrations::gthumb_has_scripts(rest),
        dry_run,
    )? {
        done.push((scripts, change));
    }
    let thunar = places.thunar();
    let folders: Vec<PathBuf> = done
        .iter()
        .chain([&(thunar.clone(), Change::Absent)])
        .filter_map(|(path, _)| path.parent().map(Path::to_path_buf))
        .collect();
    if let Ok(text) = std::fs::read_to_string(&thunar)
        && text.contains(THUNAR_MARK)
    {
        let rest = without_ours(&text);
        // A file that holds no action any more is the one install created.
        let change = if rest.contains("<action>") {
            let mode =
                std::fs::metadata(&thunar).map_or(0o644, |m| m.permissions().mode() & 0o7777);
            put(&thunar, &rest, mode, dry_run)?;
            Change::Wrote
        } else {
            remove(&thunar, dry_run)?
        };
        done.push((thunar, change));
    }
    if !dry_run {
        remove_empty_folders(places, folders);
    }
    Ok(done)
}

/// Removes the folders install made that are empty now (e.g. `kio/servicemenus`), up to the
/// XDG base directories; a folder holding anything of the user's stays.
fn remove_empty_folders(places: &Places, folders: Vec<PathBuf>) {
    for folder in folders {
        let mut dir = folder.as_path();
        while dir != places.config
            && dir != places.data
            && (dir.starts_with(&places.config) || dir.starts_with(&places.data))
            // remove_dir fails on a folder that is not empty: that is the check.
            && std::fs::remove_dir(dir).is_ok()
        {
            let Some(parent) = dir.parent() else { break };
            dir = parent;
        }
    }
}

/// Runs `systemctl --user ARGS`; what to tell the user when it did not work.
fn systemctl(args: &[&str]) -> Result<(), String> {
    match std::process::Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("systemctl is not installed".into())
        }
        Err(e) => Err(format!("cannot run systemctl: {e}")),
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "no systemd user manager answered ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn print_changes(changes: &[(PathBuf, Change)], dry_run: bool) {
    for (path, change) in changes {
        let what = match (change, dry_run) {
            (Change::Wrote, false) => "wrote    ",
            (Change::Wrote, true) => "would write",
            (Change::Unchanged, _) => "unchanged",
            (Change::Removed, false) => "removed  ",
            (Change::Removed, true) => "would remove",
            (Change::Absent, _) => continue,
        };
        outln!("{what} {}", path.display());
    }
}

/// The integrations chosen, each with why, and those left out.
type Chosen = (Vec<(Integration, String)>, Vec<Integration>);

/// The integrations to place: those named with `--only`, else those whose host is found.
fn choose(places: &Places, only: Option<&str>) -> Result<Chosen, InstallError> {
    if let Some(list) = only {
        let named = Integration::parse_list(list)?;
        let left: Vec<Integration> = Integration::ALL
            .into_iter()
            .filter(|i| !named.contains(i))
            .collect();
        return Ok((
            named
                .into_iter()
                .map(|i| (i, "named with --only".to_string()))
                .collect(),
            left,
        ));
    }
    let env = HostEnv::from_env();
    let mut chosen = Vec::new();
    let mut left = Vec::new();
    for integration in Integration::ALL {
        match integration.host_found(places, &env) {
            Some(why) => chosen.push((integration, why)),
            None => left.push(integration),
        }
    }
    Ok((chosen, left))
}

/// `dbxportctl install [--dry-run] [--only LIST]`.
pub fn run_install(dry_run: bool, only: Option<&str>) -> Result<Exit, String> {
    let places = Places::from_env().map_err(|e| e.to_string())?;
    let programs = Programs::find().map_err(|e| e.to_string())?;
    let profiles = configured_profiles();
    let (chosen, left) = choose(&places, only).map_err(|e| e.to_string())?;
    let integrations: Vec<Integration> = chosen.iter().map(|(i, _)| *i).collect();
    let changes = install(&places, &programs, &profiles, &integrations, dry_run)
        .map_err(|e| e.to_string())?;
    print_changes(&changes, dry_run);
    let placed = if dry_run { "would place" } else { "placed" };
    for (integration, why) in &chosen {
        outln!(
            "{placed} {}: {} ({why})",
            integration.name(),
            integration.label()
        );
    }
    for integration in &left {
        if only.is_none() {
            outln!(
                "not placed {}: not installed here (`dbxportctl install --only {}` places it anyway)",
                integration.name(),
                integration.name()
            );
        }
    }
    if dry_run {
        return Ok(Exit::Ok);
    }
    match systemctl(&["daemon-reload"]) {
        Ok(()) => outln!("systemd: user units reloaded"),
        Err(why) => outln!(
            "systemd: not reloaded: {why}; the unit is read at the next login (D-Bus activation works without it)"
        ),
    }
    outln!(
        "dbxportd starts on first use; `systemctl --user enable --now dbxport` starts it at login.\n\
         Menus: Dolphin, Nautilus (Scripts), Nemo and Thunar, for photos and videos, with \
         \"Send to Dropbox…\" opening the export dialog; restart an open file manager to see them. zsh: add {} to fpath.",
        places.data.join("zsh/site-functions").display()
    );
    Ok(Exit::Ok)
}

/// `dbxportctl uninstall [--dry-run]`.
pub fn run_uninstall(dry_run: bool) -> Result<Exit, String> {
    let places = Places::from_env().map_err(|e| e.to_string())?;
    if !dry_run && places.unit().exists() {
        // Stops it and drops the login link; without a user manager the link goes below.
        let _ = systemctl(&["disable", "--now", "dbxport.service"]);
    }
    let changes = uninstall(&places, dry_run).map_err(|e| e.to_string())?;
    print_changes(&changes, dry_run);
    if !dry_run && let Err(why) = systemctl(&["daemon-reload"]) {
        outln!("systemd: not reloaded: {why}");
    }
    outln!(
        "Kept: the queue and state in $XDG_STATE_HOME/dbxport (~/.local/state/dbxport), the \
         config in $XDG_CONFIG_HOME/dbxport, prepared files in $XDG_CACHE_HOME/dbxport, and the \
         Dropbox login (keyring item \"dbxport: Dropbox login\"; `dbxportctl logout` revokes it)."
    );
    Ok(Exit::Ok)
}

//! `dbxportctl install` / `uninstall`: puts dbxport into the current user's desktop — the
//! systemd unit, the D-Bus activation file, the file-manager menus (Dolphin, Nautilus, Nemo,
//! Thunar), shell completions and the man page — in the XDG places each reader looks, and takes
//! exactly that out again. `completions` and `man` print the generated files for packagers.
//!
//! The files are the ones in the source tree (`systemd/`, `dbus/`, `desktop/`), embedded at
//! build time, so what is tested is what is installed. Only the program paths change: menus and
//! activation run the binaries this `dbxportctl` was started from, because `~/.cargo/bin` is
//! rarely on the PATH a graphical session gives file managers and the D-Bus daemon. Thunar keeps
//! all custom actions in one file, so ours are merged into it by their `dbxport-` unique ids.
//! Both commands are idempotent; neither touches the queue, the config or the login.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::term::outln;
use super::{Cli, Exit};

const UNIT: &str = include_str!("../../systemd/dbxport.service");
const ACTIVATION: &str = include_str!("../../dbus/io.github.dbxport1.service");
const DOLPHIN: &str = include_str!("../../desktop/dolphin/dbxport.desktop");
const NAUTILUS: [(&str, &str); 3] = [
    (
        "Send to Dropbox",
        include_str!("../../desktop/nautilus/Send to Dropbox"),
    ),
    (
        "Send to Dropbox (resized)",
        include_str!("../../desktop/nautilus/Send to Dropbox (resized)"),
    ),
    (
        "Copy Dropbox link",
        include_str!("../../desktop/nautilus/Copy Dropbox link"),
    ),
];
const NEMO: [(&str, &str); 3] = [
    (
        "dbxport-send.nemo_action",
        include_str!("../../desktop/nemo/dbxport-send.nemo_action"),
    ),
    (
        "dbxport-send-resized.nemo_action",
        include_str!("../../desktop/nemo/dbxport-send-resized.nemo_action"),
    ),
    (
        "dbxport-copy-link.nemo_action",
        include_str!("../../desktop/nemo/dbxport-copy-link.nemo_action"),
    ),
];
const THUNAR: &str = include_str!("../../desktop/thunar/uca.xml");

/// What marks our Thunar actions among the user's.
const THUNAR_MARK: &str = "<unique-id>dbxport-";

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

/// Where the files go: the XDG base directories of the current user.
#[derive(Debug, Clone)]
pub struct Places {
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub config: PathBuf,
    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub data: PathBuf,
}

impl Places {
    pub fn from_env() -> Result<Places, InstallError> {
        let base = directories::BaseDirs::new().ok_or(InstallError::NoHome)?;
        Ok(Places {
            config: base.config_dir().to_path_buf(),
            data: base.data_dir().to_path_buf(),
        })
    }

    pub fn unit(&self) -> PathBuf {
        self.config.join("systemd/user/dbxport.service")
    }

    /// Where `systemctl --user enable` links the unit.
    fn enabled_link(&self) -> PathBuf {
        self.config
            .join("systemd/user/default.target.wants/dbxport.service")
    }

    pub fn thunar(&self) -> PathBuf {
        self.config.join("Thunar/uca.xml")
    }
}

/// The programs the installed files run.
#[derive(Debug, Clone)]
pub struct Programs {
    pub dbxportctl: PathBuf,
    pub dbxportd: PathBuf,
}

impl Programs {
    /// This `dbxportctl`, and the `dbxportd` beside it (as `cargo install` and packages put
    /// them), else the first on PATH.
    pub fn find() -> Result<Programs, InstallError> {
        let dbxportctl = std::env::current_exe().map_err(InstallError::NoExe)?;
        let beside = dbxportctl.with_file_name("dbxportd");
        let dbxportd = if beside.is_file() {
            beside
        } else {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(|dir| dir.join("dbxportd"))
                .find(|p| p.is_file())
                .ok_or_else(|| InstallError::NoDaemon(dbxportctl.clone()))?
        };
        Ok(Programs {
            dbxportctl,
            dbxportd,
        })
    }
}

/// A program's path as one word of a command line, in the syntax the desktop-entry `Exec=`
/// key, systemd's `ExecStart=`, D-Bus's `Exec=` and GLib's shell parsing (Nemo, Thunar) share:
/// bare when plain, else in double quotes. Characters one of them would read specially are
/// refused rather than escaped four different ways.
fn program_word(path: &Path) -> Result<String, InstallError> {
    let text = path.to_string_lossy();
    if text.contains(['"', '\'', '\\', '$', '%', '`', '\n']) || text.contains('\u{FFFD}') {
        return Err(InstallError::UnsafePath(path.to_path_buf()));
    }
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-@,:~".contains(c));
    Ok(if plain {
        text.into_owned()
    } else {
        format!("\"{text}\"")
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` with the value of every line starting with `key` replaced by `program` followed by
/// whatever came after the value's first word (the arguments).
fn rewrite_command(text: &str, key: &str, program: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        match line.strip_prefix(key) {
            Some(value) => {
                let rest = value.split_once(' ').map_or("\n", |(_, rest)| rest);
                out.push_str(key);
                out.push_str(program);
                if !rest.starts_with('\n') {
                    out.push(' ');
                }
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Our Thunar actions (each `<action>…</action>` block of the shipped file), their commands
/// running `dbxportctl`.
fn thunar_actions(dbxportctl: &str) -> Vec<String> {
    action_blocks(THUNAR)
        .into_iter()
        .map(|(start, end)| {
            THUNAR[start..end].replace(
                "<command>dbxportctl ",
                &format!("<command>{} ", xml_escape(dbxportctl)),
            )
        })
        .collect()
}

/// The byte ranges of the `<action>…</action>` blocks in `text` (they do not nest), each
/// from the start of its line to the end of the line that closes it.
fn action_blocks(text: &str) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("<action>").map(|i| from + i) {
        // Comments may mention actions.
        if let Some(comment) = text[from..open].find("<!--").map(|i| from + i) {
            match text[comment..].find("-->") {
                Some(end) => {
                    from = comment + end + "-->".len();
                    continue;
                }
                None => break,
            }
        }
        let Some(close) = text[open..]
            .find("</action>")
            .map(|i| open + i + "</action>".len())
        else {
            break;
        };
        let start = text[..open].rfind('\n').map_or(0, |i| i + 1);
        let end = text[close..]
            .find('\n')
            .map_or(text.len(), |i| close + i + 1);
        blocks.push((start, end));
        from = end;
    }
    blocks
}

/// `text` without our actions.
fn without_ours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in action_blocks(text) {
        if text[start..end].contains(THUNAR_MARK) {
            out.push_str(&text[last..start]);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The user's Thunar actions file with ours in it (replacing any earlier copy of ours).
fn thunar_with_ours(
    existing: Option<&str>,
    ours: &[String],
    path: &Path,
) -> Result<String, InstallError> {
    let base = match existing {
        Some(text) => without_ours(text),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<actions>\n</actions>\n".into(),
    };
    let close = base
        .rfind("</actions>")
        .ok_or_else(|| InstallError::NotThunarActions(path.to_path_buf()))?;
    let at = base[..close].rfind('\n').map_or(0, |i| i + 1);
    let at = if base[at..close].trim().is_empty() {
        at
    } else {
        close
    };
    let mut merged = String::with_capacity(base.len() + 2048);
    merged.push_str(&base[..at]);
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    for action in ours {
        merged.push_str(action);
    }
    merged.push_str(&base[at..]);
    Ok(merged)
}

/// One file `install` writes whole.
#[derive(Debug, Clone)]
pub struct Planned {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
}

/// Every file `install` writes whole, with its contents and mode.
pub fn plan(places: &Places, programs: &Programs) -> Result<Vec<Planned>, InstallError> {
    let ctl = program_word(&programs.dbxportctl)?;
    let daemon = program_word(&programs.dbxportd)?;
    let data = &places.data;
    let file = |path: PathBuf, contents: String, mode: u32| Planned {
        path,
        contents,
        mode,
    };
    let mut files = vec![
        file(
            places.unit(),
            rewrite_command(UNIT, "ExecStart=", &daemon),
            0o644,
        ),
        file(
            data.join("dbus-1/services/io.github.dbxport1.service"),
            rewrite_command(ACTIVATION, "Exec=", &daemon),
            0o644,
        ),
        // Plasma 6 lists a service menu only when it is executable.
        file(
            data.join("kio/servicemenus/dbxport.desktop"),
            rewrite_command(DOLPHIN, "Exec=", &ctl),
            0o755,
        ),
    ];
    for (name, script) in NAUTILUS {
        // The scripts name the program in a shell assignment: single quotes hold any path
        // program_word accepted.
        let program = format!("'{}'", programs.dbxportctl.display());
        files.push(file(
            data.join("nautilus/scripts").join(name),
            rewrite_command(script, "dbxportctl=", &program),
            0o755,
        ));
    }
    for (name, action) in NEMO {
        files.push(file(
            data.join("nemo/actions").join(name),
            rewrite_command(action, "Exec=", &ctl),
            0o644,
        ));
    }
    files.push(file(
        data.join("bash-completion/completions/dbxportctl"),
        completion(clap_complete::Shell::Bash),
        0o644,
    ));
    // zsh reads these only when the directory is on its fpath (see the README).
    files.push(file(
        data.join("zsh/site-functions/_dbxportctl"),
        completion(clap_complete::Shell::Zsh),
        0o644,
    ));
    files.push(file(
        places.config.join("fish/completions/dbxportctl.fish"),
        completion(clap_complete::Shell::Fish),
        0o644,
    ));
    files.push(file(data.join("man/man1/dbxportctl.1"), man_page(), 0o644));
    Ok(files)
}

/// The completion script for `shell`, from the argument definitions.
pub fn completion(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dbxportctl", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page (roff), from the argument definitions: one page with everything. clap_mangen
/// lists subcommands as pages of their own (`dbxportctl-upload(1)`), which are not shipped:
/// the list points to the COMMANDS section instead, which holds each subcommand's full help
/// (options included), followed by the exit status, files, environment and examples.
pub fn man_page() -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("rendering into memory does not fail");
    let mut page = String::from_utf8_lossy(&out).into_owned();
    let mut fixed = String::with_capacity(page.len());
    for line in page.lines() {
        match line
            .strip_prefix("dbxportctl\\-")
            .and_then(|rest| rest.strip_suffix("(1)"))
        {
            Some(name) => fixed.push_str(&format!("\\fBdbxportctl {name}\\fR (see COMMANDS)")),
            None => fixed.push_str(line),
        }
        fixed.push('\n');
    }
    page = fixed;
    page.push_str(".SH COMMANDS\n");
    let mut cli = Cli::command();
    cli.build();
    for sub in cli.get_subcommands() {
        commands_section(&mut page, sub, "dbxportctl");
    }
    page.push_str(MAN_TAIL);
    page
}

/// A subcommand's full help, as `dbxportctl help CMD` shows it, kept as preformatted text.
fn commands_section(page: &mut String, cmd: &clap::Command, parent: &str) {
    if cmd.get_name() == "help" {
        return;
    }
    let name = format!("{parent} {}", cmd.get_name());
    page.push_str(&format!(".SS \"{}\"\n.nf\n", roff_text(&name)));
    let help = cmd.clone().bin_name(&name).render_long_help().to_string();
    for line in help.lines() {
        page.push_str(&roff_text(line));
        page.push('\n');
    }
    page.push_str(".fi\n");
    for sub in cmd.get_subcommands() {
        commands_section(page, sub, &name);
    }
}

/// Text safe in roff: backslashes doubled, a leading dot or quote kept from being a request.
fn roff_text(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The sections after the commands, which the argument definitions do not hold.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
.TP
0
Everything asked for was done; also when stdout was closed early (\fBdbxportctl jobs | head \-1\fR).
.TP
1
The request could not be made: the daemon is unreachable, the call was refused, a configuration error.
.TP
2
Wrong usage, including option values checked before asking the daemon (\fB\-\-quality 150\fR).
.TP
3
Some files were refused or some jobs failed; the rest were handled.
.TP
4
Jobs were cancelled while waiting for them.
.TP
5
\fBaccount\fR: no Dropbox account is linked.
.TP
130
Ctrl\-C while waiting: the uploads go on in the daemon.
.SH FILES
.TP
\fI$XDG_CONFIG_HOME/dbxport/config.toml\fR
The daemon's settings (\fBdbxportctl config\fR); read when the daemon starts (\fBdbxportctl restart\fR applies a change).
.TP
\fI$XDG_STATE_HOME/dbxport/queue.sled\fR
The queue: jobs, batches, watches and what each watch has sent.
.TP
\fI$XDG_STATE_HOME/dbxport/credentials.json\fR
The login, when \fBcredentials.store = "file"\fR (mode 0600); otherwise it is in the keyring.
.TP
\fI$XDG_CACHE_HOME/dbxport\fR
Resized copies being sent.
.SH ENVIRONMENT
.TP
\fBDBUS_SESSION_BUS_ADDRESS\fR
The session bus on which \fBdbxportctl\fR finds \fBdbxportd\fR.
.TP
\fBXDG_CONFIG_HOME\fR, \fBXDG_STATE_HOME\fR, \fBXDG_CACHE_HOME\fR
Where the files above are.
.TP
\fBNO_COLOR\fR
No colour in the daemon's log, even on a terminal.
.TP
\fBRUST_LOG\fR
The daemon's log level (default \fBinfo\fR).
.SH EXAMPLES
.nf
dbxportctl login
dbxportctl upload ~/Pictures/2024/*.jpg \-\-to /Photos/2024 \-\-wait
batch=$(dbxportctl upload \-\-resize 2048 IMG_*.JPG)
dbxportctl jobs \-\-batch "$batch" \-\-state failed
dbxportctl retry "$batch"
dbxportctl watch add ~/Camera \-\-to /Camera \-\-recursive
dbxportctl status
dbxportctl jobs clean \-\-older\-than 7d
.fi
.SH "SEE ALSO"
\fBdbxportd\fR(1), the README (https://github.com/dbxport/dbxport)
"#;

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
    dry_run: bool,
) -> Result<Vec<(PathBuf, Change)>, InstallError> {
    // Everything is worked out before anything is written: a Thunar file that cannot be merged
    // stops the install before it starts, not halfway.
    let mut files = plan(places, programs)?;
    let thunar = places.thunar();
    let existing = match std::fs::read_to_string(&thunar) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&thunar)(e)),
    };
    let ours = thunar_actions(&program_word(&programs.dbxportctl)?);
    files.push(Planned {
        contents: thunar_with_ours(existing.as_deref(), &ours, &thunar)?,
        mode: std::fs::metadata(&thunar).map_or(0o644, |m| m.permissions().mode() & 0o7777),
        path: thunar,
    });
    let mut done = Vec::new();
    for file in files {
        let change = put(&file.path, &file.contents, file.mode, dry_run)?;
        done.push((file.path, change));
    }
    Ok(done)
}

/// Removes what `install` put; the user's own Thunar actions stay.
pub fn uninstall(places: &Places, dry_run: bool) -> Result<Vec<(PathBuf, Change)>, InstallError> {
    // The paths do not depend on the programs; any will do to list them.
    let programs = Programs {
        dbxportctl: "dbxportctl".into(),
        dbxportd: "dbxportd".into(),
    };
    let mut done = Vec::new();
    for file in plan(places, &programs)? {
        let change = remove(&file.path, dry_run)?;
        done.push((file.path, change));
    }
    let link = places.enabled_link();
    if std::fs::symlink_metadata(&link).is_ok() {
        done.push((link.clone(), remove(&link, dry_run)?));
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

/// `dbxportctl install [--dry-run]`.
pub fn run_install(dry_run: bool) -> Result<Exit, String> {
    let places = Places::from_env().map_err(|e| e.to_string())?;
    let programs = Programs::find().map_err(|e| e.to_string())?;
    let changes = install(&places, &programs, dry_run).map_err(|e| e.to_string())?;
    print_changes(&changes, dry_run);
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
         Menus: Dolphin, Nautilus (Scripts), Nemo and Thunar, for photos and videos; restart an open \
         file manager to see them. zsh: add {} to fpath.",
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

/// `dbxportctl completions SHELL`.
pub fn print_completion(shell: clap_complete::Shell) -> Exit {
    super::term::write_stdout_raw(completion(shell).as_bytes());
    Exit::Ok
}

/// `dbxportctl man`.
pub fn print_man() -> Exit {
    super::term::write_stdout_raw(man_page().as_bytes());
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_holds_every_command_and_points_to_no_missing_page() {
        let page = man_page();
        for section in [
            ".SH COMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "{section}");
        }
        for command in ["upload", "jobs clean", "watch rm", "config set", "restart"] {
            assert!(
                page.contains(&format!(".SS \"dbxportctl {command}\"")),
                "{command}"
            );
        }
        assert!(page.contains("\\-\\-quality"), "options are in");
        assert!(
            !page.contains("dbxportctl\\-upload(1)"),
            "no page that is not shipped"
        );
    }

    #[test]
    fn commands_keep_their_arguments() {
        let text = "a\nExec=dbxportctl upload --notify %F\nExec=x\n";
        assert_eq!(
            rewrite_command(text, "Exec=", "\"/opt/my bin/dbxportctl\""),
            "a\nExec=\"/opt/my bin/dbxportctl\" upload --notify %F\nExec=\"/opt/my bin/dbxportctl\"\n"
        );
    }

    #[test]
    fn program_paths_are_quoted_or_refused() {
        assert_eq!(
            program_word(Path::new("/usr/bin/dbxportctl")).unwrap(),
            "/usr/bin/dbxportctl"
        );
        assert_eq!(
            program_word(Path::new("/my bin/x")).unwrap(),
            "\"/my bin/x\""
        );
        for bad in ["/a\"b", "/a$b", "/a%b", "/a\\b", "/a'b"] {
            assert!(program_word(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn thunar_merge_keeps_the_users_actions_and_is_idempotent() {
        let user = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- an <action> -->\n<actions>\n<action>\n\t<name>Mine</name>\n\t<unique-id>1-1</unique-id>\n</action>\n</actions>\n";
        let ours = thunar_actions("/bin/dbxportctl");
        assert_eq!(ours.len(), 3);
        let once = thunar_with_ours(Some(user), &ours, Path::new("u")).unwrap();
        let twice = thunar_with_ours(Some(&once), &ours, Path::new("u")).unwrap();
        assert_eq!(once, twice);
        assert!(once.contains("<name>Mine</name>"));
        assert_eq!(once.matches(THUNAR_MARK).count(), 3);
        assert!(once.contains("<command>/bin/dbxportctl upload --notify %F</command>"));
        assert_eq!(without_ours(&once), user);
    }
}

//! `dbxportctl`: the command line over the daemon's D-Bus API.
//!
//! Each subcommand lives in its own module (`follow`, for `upload --wait`, and `install` are
//! folders of a few files; `manpage` makes the completions and the man page: see
//! ARCHITECTURE.md, "Inside `cli`"); this one holds the argument definitions, the exit codes
//! scripts can rely on, and the connection to the daemon.

mod config;
mod folders;
mod follow;
pub mod handover;
mod install;
mod jobs;
mod login;
mod manpage;
pub mod profiles;
mod purpose;
mod restart;
mod stalls;
pub mod term;
mod testkit;
mod upload;
mod watch;

pub use watch::WatchView;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zbus::zvariant::{OwnedValue, Value};

/// Exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Ok = 0,
    /// The request could not be made: daemon unreachable, refused call, bad configuration.
    Error = 1,
    /// Wrong command-line usage (clap's own code).
    Usage = 2,
    /// Some files were refused or some jobs failed; the rest were handled.
    JobsFailed = 3,
    /// Jobs were cancelled while waiting for them.
    Cancelled = 4,
    /// `account`: no Dropbox account is linked.
    NotLoggedIn = 5,
    /// Ctrl-C while waiting: the jobs go on in the daemon.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Parser)]
#[command(
    name = "dbxportctl",
    version,
    about = "Send photos to Dropbox through the dbxport service (dbxportd)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Say less: only results, warnings and errors (no progress bars, no "queued" lines).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more: what is asked of the daemon and how long it takes.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Queue files for upload to a Dropbox folder.
    Upload(UploadArgs),
    /// List jobs: unfinished ones and those of the last 24 hours (`--all`: every job), or
    /// `jobs clean` to forget finished ones.
    #[command(args_conflicts_with_subcommands = true)]
    Jobs(JobsArgs),
    /// Account, queue and transfer summary.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job, or every unfinished job of a batch.
    Cancel {
        /// A job id or a batch id (as printed by `upload` and `jobs`).
        id: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Send again: failed and cancelled jobs are queued again, waiting ones try now; a job, or
    /// every such job of a batch.
    Retry {
        /// A job id or a batch id.
        id: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the upload bandwidth limit, e.g. `limit 2M` (bytes/s; K, M, G = 1000s,
    /// KiB, MiB = 1024s) or `limit off`. Applies at once, to transfers under way too.
    Limit {
        /// The new limit; without it, the current one is shown.
        #[arg(value_parser = parse_rate_arg)]
        rate: Option<String>,
    },
    /// Stop starting transfers (persisted across restarts).
    Pause,
    /// Restart dbxportd so that it reads config.toml again (queued uploads resume).
    Restart,
    /// Start transfers again after `pause`.
    Resume,
    /// Link a Dropbox account: in the browser (default), by pasting a code, or with a token.
    Login(LoginArgs),
    /// Revoke the login at Dropbox and forget it.
    Logout,
    /// The linked account: name, email, space used.
    Account {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the folders in a Dropbox folder (asks Dropbox each time).
    Folders {
        /// The Dropbox folder to look in, e.g. /Photos (default: the top of the Dropbox).
        path: Option<String>,
        /// Machine-readable output: name, path, path_lower and id of each folder.
        #[arg(long)]
        json: bool,
    },
    /// Watched folders: add, remove, list.
    #[command(subcommand)]
    Watch(WatchCommand),
    /// The named export profiles ([profiles.NAME] in the config) and their settings.
    Profiles {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The daemon's settings (config.toml): show, set or reset a key.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create a Dropbox folder (and missing parents); an existing one is fine.
    Mkdir {
        /// The folder to create, e.g. /Photos/2024.
        path: String,
    },
    /// Install for the current user: the systemd unit, D-Bus activation, file-manager menus
    /// (Dolphin, Nautilus, Nemo, Thunar), shell completions and the man page, and the photo
    /// applications found here (KDE Share menu, darktable, gThumb, elementary Contractor).
    Install {
        /// Print what would be written, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Place these integrations, whether their application is found or not, and no
        /// others: a comma-separated list of purpose, darktable, gthumb, contractor.
        #[arg(long, value_name = "LIST")]
        only: Option<String>,
    },
    /// Remove what `install` put (the queue, config and login stay).
    Uninstall {
        /// Print what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the shell completion script for SHELL (for packagers; `install` puts them in place).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; for packagers; `install` puts it in place).
    Man,
    /// Run the Dropbox API emulator on 127.0.0.1 (for trying dbxport or another client).
    ///
    /// Runs the test kit's binary, dbxport-testkit: `dbxportctl emulator --help` for its flags.
    #[command(disable_help_flag = true)]
    Emulator(TestkitArgs),
    /// Watch real photos go through a private daemon into an emulated Dropbox.
    ///
    /// Runs the test kit's binary, dbxport-testkit: `dbxportctl demo --help` for its flags.
    #[command(disable_help_flag = true)]
    Demo(TestkitArgs),
    /// KDE's Share menu runs this (the Purpose plugin `install` puts in place): it reads the
    /// shared photos from Purpose's socket and answers there.
    #[command(hide = true)]
    Purpose(purpose::PurposeArgs),
}

#[derive(Args)]
pub struct UploadArgs {
    /// Photos to upload (relative paths are taken from the current directory).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Dropbox folder, e.g. /Photos/2024, or a template such as '/Photos/{year}/{date}'
    /// ({year} {month} {day} {date} {camera} {folder} {profile}; default: the profile's
    /// folder, else upload.remote_folder from the config).
    #[arg(long = "to", visible_alias = "folder", value_name = "FOLDER")]
    pub to: Option<String>,
    #[command(flatten)]
    pub export: ExportArgs,
    /// Stay until every file is done, with progress bars; the exit code tells the outcome.
    #[arg(long)]
    pub wait: bool,
    /// Also tell the outcome as desktop notifications, for callers without a terminal (file
    /// manager menus): problems (daemon unreachable, files refused), "N photos queued", and
    /// with --wait how the batch ended.
    #[arg(long)]
    pub notify: bool,
    /// Wait for the batch and put its folder's shared link on the clipboard (wl-copy, xclip or
    /// xsel); implies --share-link and --wait.
    #[arg(long)]
    pub copy_link: bool,
    /// Machine-readable output: one JSON object on stdout (the batch, its job ids, the files
    /// refused, and with --wait the outcome), instead of lines and bars.
    #[arg(long)]
    pub json: bool,
    /// Hand the files over as open files: the daemon copies them into its spool before this
    /// returns, so they may be deleted at once, and files it cannot see (a private /tmp, a
    /// sandbox) go too. Without it, paths are sent, and the same hand-over is made when the
    /// daemon cannot see them.
    #[arg(long)]
    pub spool: bool,
}

/// Export options, as for `upload` (and a watch's profile). Only what is given goes to the
/// daemon; the rest are its configured defaults.
#[derive(Args)]
pub struct ExportArgs {
    /// A named export profile ([profiles.NAME] in the config, `dbxportctl profiles` lists
    /// them): its folder and options, with the options given here over them.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Upload the files' bytes untouched.
    #[arg(long, conflicts_with_all = ["resize", "quality"])]
    pub original: bool,
    /// Resize so the long edge is at most PX pixels, 16 to 20000 (never upscaled; aspect
    /// ratio kept; EXIF orientation applied; metadata kept; PNG/WebP/TIFF become .jpg).
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u32).range(
        crate::prepare::MIN_DIMENSION as i64..=crate::prepare::MAX_DIMENSION as i64))]
    pub resize: Option<u32>,
    /// JPEG quality 1-100 for resized photos.
    #[arg(long, value_name = "Q", requires = "resize", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,
    /// Remove the GPS location from what is uploaded (originals too, pixels untouched).
    #[arg(long)]
    pub strip_location: bool,
    /// When the name is taken in Dropbox: skip-identical (same content counts as done,
    /// different content is kept beside it under a new name), rename (always keep both),
    /// overwrite (replace whatever file has the name) or replace (replace only the copy
    /// dbxport sent of this file before, and only if nobody changed it since). Default:
    /// export.conflict from the daemon's config; for `watch add`, watch.conflict (replace).
    #[arg(long, value_parser = ["skip-identical", "rename", "overwrite", "replace"])]
    pub conflict: Option<String>,
    /// When the batch ends, create (or reuse) a shared link to the folder and print it.
    #[arg(long)]
    pub share_link: bool,
}

impl ExportArgs {
    /// The options as `Upload`/`AddWatch` take them (`a{sv}`).
    pub fn to_options(&self) -> HashMap<String, OwnedValue> {
        let mut options: HashMap<String, OwnedValue> = HashMap::new();
        let mut put = |key: &str, value: Value<'_>| {
            options.insert(key.to_string(), value.try_to_owned().expect("plain value"));
        };
        if let Some(profile) = &self.profile {
            put("profile", Value::from(profile.as_str()));
        }
        if self.original {
            put("original", Value::from(true));
        }
        if let Some(px) = self.resize {
            put("max_dimension", Value::from(px));
        }
        if let Some(quality) = self.quality {
            put("jpeg_quality", Value::from(u32::from(quality)));
        }
        if self.strip_location {
            put("strip_location", Value::from(true));
        }
        if let Some(conflict) = &self.conflict {
            put("conflict", Value::from(conflict.as_str()));
        }
        if self.share_link {
            put("share_link", Value::from(true));
        }
        options
    }
}

#[derive(Subcommand)]
pub enum WatchCommand {
    /// Watch a folder: every photo that lands in it (and what it holds now) is exported.
    Add(WatchAddArgs),
    /// Stop watching (jobs already queued go on).
    Rm {
        /// The watch's id, as `watch ls` shows it, or the watched folder's path.
        watch: String,
    },
    /// The watched folders, their state and profile.
    Ls {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Every key with its value (defaults filled in), or one key's bare value.
    Get {
        /// A dotted key, e.g. upload.transfers.
        key: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set a key in config.toml. The whole config is checked before it is written; comments
    /// and layout are kept. Sizes take units: 8MiB, 2M.
    Set {
        /// A dotted key, e.g. upload.transfers.
        key: String,
        value: String,
    },
    /// Remove a key from config.toml, so it has its default again.
    Unset {
        /// A dotted key.
        key: String,
    },
    /// Print the config file's path.
    Path,
}

#[derive(Args)]
pub struct WatchAddArgs {
    /// The folder to watch (a camera import, phone sync or photo-tool export folder).
    pub dir: PathBuf,
    /// Dropbox folder, e.g. /Camera, or a template such as '/Camera/{year}/{date}'
    /// (default: the profile's folder, else upload.remote_folder from the config).
    #[arg(long = "to", visible_alias = "folder", value_name = "FOLDER")]
    pub to: Option<String>,
    /// Watch subfolders too (mirrored under the Dropbox folder).
    #[arg(long)]
    pub recursive: bool,
    /// Only files matching this name pattern, e.g. "*.jpg" (repeatable; default: photo and
    /// video extensions).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Leave out files matching this name pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub export: ExportArgs,
}

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    action: Option<JobsAction>,
    /// Only jobs in this state; combines with --batch and --all.
    #[arg(long, default_value = "all", value_parser = ["all", "active", "queued", "preparing", "uploading", "committing", "waiting", "done", "failed", "cancelled"])]
    state: String,
    /// Only the jobs of this batch (all of them, however old).
    #[arg(long)]
    batch: Option<u64>,
    /// Every job the queue remembers, not only unfinished ones and those of the last 24 hours.
    #[arg(long)]
    all: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum JobsAction {
    /// Forget finished jobs (done, failed, cancelled); unfinished ones stay. The daemon also
    /// does it by itself after `history.keep_finished_days`.
    Clean {
        /// Only those that ended longer ago than this, e.g. 7d, 12h, 30days (default: all).
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

#[derive(Args)]
#[group(multiple = false)]
pub struct LoginArgs {
    /// Show the login page's address and read the code Dropbox shows from stdin, instead of
    /// opening a browser on this machine (for SSH sessions and headless machines).
    #[arg(long)]
    no_browser: bool,
    /// Read an access token (e.g. one generated in the Dropbox app console) from stdin.
    #[arg(long)]
    access_token_stdin: bool,
    /// Read an offline refresh token from stdin (needs dropbox.app_key in the daemon's config).
    #[arg(long)]
    refresh_token_stdin: bool,
}

/// The arguments of a command the test kit's binary runs (`demo`, `emulator`), passed to it
/// unread: it owns their flags, help and checks.
#[derive(Args)]
pub struct TestkitArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<std::ffi::OsString>,
}

/// A rate is checked here, so a typo is a usage error (exit 2) before the daemon is asked.
fn parse_rate_arg(text: &str) -> Result<String, String> {
    jobs::parse_rate(text).map(|_| text.to_string())
}

/// Prints an error the way every subcommand does.
fn report(error: impl std::fmt::Display) {
    term::warnln!("dbxportctl: {error}");
}

/// A failure from the daemon or the bus, in the user's terms.
pub trait Explain {
    fn explain(&self) -> String;
}

impl Explain for zbus::Error {
    fn explain(&self) -> String {
        match self {
            zbus::Error::MethodError(name, text, _) => {
                let text = text.clone().unwrap_or_default();
                match name.as_str() {
                    "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                        "dbxportd is not running: start it with `systemctl --user start dbxport` or run `dbxportd`".into()
                    }
                    n if n.starts_with("io.github.dbxport1.Error.") => text,
                    n => format!("{n}: {text}"),
                }
            }
            zbus::Error::InputOutput(e) => {
                format!("cannot reach the session bus: {e} (is DBUS_SESSION_BUS_ADDRESS set?)")
            }
            e => e.to_string(),
        }
    }
}

impl Explain for crate::service::ServiceError {
    fn explain(&self) -> String {
        use crate::service::ServiceError::*;
        match self {
            ZBus(e) => e.explain(),
            InvalidPath(m) | InvalidArgument(m) | NotFound(m) | LoginRefused(m)
            | NotLoggedIn(m) | Failed(m) => m.clone(),
        }
    }
}

/// A folder (template) given on the command line, checked before the daemon is asked, with
/// the daemon's own rules (`crate::template`): a typo never reaches the queue.
pub(crate) fn check_folder(folder: Option<&str>, profile: Option<&str>) -> Result<(), String> {
    let Some(folder) = folder else {
        return Ok(());
    };
    crate::template::Template::parse(folder)
        .and_then(|t| t.check_profile(profile))
        .map_err(|e| e.to_string())
}

pub fn describe(error: &impl Explain) -> String {
    error.explain()
}

async fn session_bus() -> Result<zbus::Connection, String> {
    zbus::Connection::session().await.map_err(|e| {
        format!(
            "cannot connect to the D-Bus session bus: {} (is DBUS_SESSION_BUS_ADDRESS set?)",
            describe(&e)
        )
    })
}

/// Runs `dbxportctl` with the given arguments.
pub async fn run(cli: Cli) -> Exit {
    term::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => term::Verbosity::Quiet,
        (_, true) => term::Verbosity::Verbose,
        _ => term::Verbosity::Normal,
    });
    let result = match cli.command {
        // The test kit's commands, in its own binary: the product does not link the emulator.
        Command::Emulator(args) => return testkit::run("emulator", args.args),
        Command::Demo(args) => return testkit::run("demo", args.args),
        // Its answers go to the Share menu's socket; the host forwards stdout and stderr to
        // its own, where progress bars would be noise.
        Command::Purpose(args) => {
            term::set_verbosity(term::Verbosity::Quiet);
            return purpose::run(args).await;
        }
        // The file is the user's: no daemon or bus needed to read or change it.
        Command::Config(command) => config::run(command).await,
        // These work on files only: no bus needed.
        Command::Install { dry_run, only } => install::run_install(dry_run, only.as_deref()),
        Command::Uninstall { dry_run } => install::run_uninstall(dry_run),
        Command::Completions { shell } => return manpage::print_completion(shell),
        Command::Man => return manpage::print_man(),
        command => match session_bus().await {
            Ok(conn) => dispatch(&conn, command).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(exit) => exit,
        Err(message) => {
            report(message);
            Exit::Error
        }
    }
}

async fn dispatch(conn: &zbus::Connection, command: Command) -> Result<Exit, String> {
    match command {
        Command::Upload(args) => upload::run(conn, args).await,
        Command::Jobs(JobsArgs {
            action: Some(JobsAction::Clean { older_than }),
            ..
        }) => jobs::clean(conn, older_than).await,
        Command::Jobs(args) => jobs::list(conn, &args).await,
        Command::Status { json } => jobs::status(conn, json).await,
        Command::Cancel { id, json } => jobs::cancel(conn, id, json).await,
        Command::Retry { id, json } => jobs::retry(conn, id, json).await,
        Command::Limit { rate } => jobs::limit(conn, rate.as_deref()).await,
        Command::Pause => jobs::pause(conn, true).await,
        Command::Restart => restart::run(conn).await,
        Command::Resume => jobs::pause(conn, false).await,
        Command::Login(args) => login::run(conn, &args).await,
        Command::Logout => login::logout(conn).await,
        Command::Account { json } => login::account(conn, json).await,
        Command::Folders { path, json } => folders::list(conn, path.as_deref(), json).await,
        Command::Mkdir { path } => folders::mkdir(conn, &path).await,
        Command::Watch(command) => watch::run(conn, command).await,
        Command::Profiles { json } => profiles::list(conn, json).await,
        Command::Config(_) => unreachable!("handled before connecting"),
        Command::Install { .. }
        | Command::Uninstall { .. }
        | Command::Completions { .. }
        | Command::Man => unreachable!("handled before connecting"),
        Command::Emulator(_) | Command::Demo(_) | Command::Purpose(_) => {
            unreachable!("handled before connecting")
        }
    }
}

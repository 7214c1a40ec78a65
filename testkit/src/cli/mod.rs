//! The `dbxport-testkit` command line: `demo` and `emulator`, which users reach as
//! `dbxportctl demo` and `dbxportctl emulator` (dbxportctl runs this binary, named
//! `dbxportctl` in argv[0], so messages read as the command typed).
//!
//! Output goes through the product's terminal rules (`dbxport::cli::term`): control characters
//! in names made visible, `-q`/`-v` honoured, a reader that went away ends quietly.

mod demo;
mod emulator;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
pub use dbxport::cli::Exit;
use dbxport::cli::term::{self, Verbosity};

/// `println!` for results, as dbxportctl writes them.
macro_rules! outln {
    () => { dbxport::cli::term::write_stdout("") };
    ($($arg:tt)*) => { dbxport::cli::term::write_stdout(&format!($($arg)*)) };
}

/// `eprintln!` for what the user is told along the way; silent under `-q`.
macro_rules! say {
    ($($arg:tt)*) => {
        if dbxport::cli::term::verbosity() >= dbxport::cli::term::Verbosity::Normal {
            dbxport::cli::term::write_stderr(&format!($($arg)*))
        }
    };
}
pub(crate) use {outln, say};

#[derive(Parser)]
#[command(
    name = "dbxport-testkit",
    version,
    about = "dbxport's test kit: the Dropbox API emulator and a demo in a private sandbox"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Say less: only results, warnings and errors (no progress bars).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Dropbox API emulator on 127.0.0.1 (for trying dbxport or another client).
    Emulator(EmulatorArgs),
    /// Watch real photos go through a private daemon into an emulated Dropbox.
    Demo(DemoArgs),
}

#[derive(Args)]
pub struct EmulatorArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory holding the emulated Dropbox's files.
    #[arg(long)]
    root: PathBuf,
    /// Accept this access token instead of minting one.
    #[arg(long)]
    token: Option<String>,
    /// Require this app key (client_id) on the OAuth routes.
    #[arg(long)]
    app_key: Option<String>,
    /// Milliseconds added to every request's answer (real Dropbox: 50–150).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        help_heading = "Network model"
    )]
    latency_ms: u64,
    /// Up to this many milliseconds more per request, drawn uniformly.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        help_heading = "Network model"
    )]
    jitter_ms: u64,
    /// Seed of the jitter's draws, so a run can be replayed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Network model"
    )]
    seed: u64,
    /// Upload bandwidth across all connections, in bytes/s (10MB, 500K, 1.5MiB, or off).
    #[arg(
        long,
        value_name = "RATE",
        value_parser = parse_bandwidth,
        help_heading = "Network model"
    )]
    bandwidth: Option<u64>,
    /// At most this many requests per second per access token; more get 429 too_many_requests
    /// with Retry-After.
    #[arg(long, value_name = "N", help_heading = "Network model")]
    rate_limit: Option<u32>,
    /// Commits take the namespace lock for this many milliseconds (plus --commit-entry-ms per
    /// file); a commit meeting it held gets 429 too_many_write_operations.
    #[arg(long, value_name = "MS", help_heading = "Network model")]
    commit_lock_ms: Option<u64>,
    /// Milliseconds more of the namespace lock per file a commit writes (each finish_batch_v2
    /// entry); turns the lock on.
    #[arg(long, value_name = "MS", help_heading = "Network model")]
    commit_entry_ms: Option<u64>,
}

/// `10MB`, `500K`, `1.5MiB`, `off`: read as `dbxportctl limit` reads rates; `off` (0) is no cap.
fn parse_bandwidth(text: &str) -> Result<u64, String> {
    dbxport::config::edit::parse_bytes(text)
        .ok_or_else(|| format!("{text:?} is not a rate: try 10MB, 500K, 1.5MiB or off"))
}

#[derive(Args)]
pub struct DemoArgs {
    /// Photos to upload (default: the sample photos shipped in tests/data/photos).
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Keep the demo's directory (emulated Dropbox, daemon log) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Exit {
    term::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    });
    match cli.command {
        Command::Emulator(args) => emulator::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

/// Prints an error as dbxportctl does, named as this program was called.
fn report(error: impl std::fmt::Display) {
    let program = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dbxport-testkit".into());
    term::write_stderr(&format!("{program}: {error}"));
}

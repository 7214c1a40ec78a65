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

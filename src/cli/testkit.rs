//! `dbxportctl demo` and `dbxportctl emulator`: the test kit's commands, run as its own binary.
//!
//! The emulator and the sandbox are test infrastructure (crate `dbxport-testkit`), and the
//! product never links them (ARCHITECTURE.md, "Module layers"). As git and cargo do with their
//! subcommands, `dbxportctl` replaces itself with the `dbxport-testkit` binary found next to
//! it, so the command keeps its output, its exit code and its Ctrl-C. A packaged dbxportctl
//! ships without that binary; the error then says how to get it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use super::term::{self, Verbosity};
use super::{Exit, report};

/// The test kit's binary, as `cargo build --bins` names it.
const TESTKIT_BINARY: &str = "dbxport-testkit";

/// Runs `dbxport-testkit SUBCOMMAND ARGS…` in place of this process; returns only if it
/// cannot.
pub fn run(subcommand: &str, args: Vec<OsString>) -> Exit {
    let binary = match sibling() {
        Ok(binary) => binary,
        Err(e) => {
            report(format!("cannot find dbxportctl's own path: {e}"));
            return Exit::Error;
        }
    };
    if !binary.exists() {
        report(format!(
            "`dbxportctl {subcommand}` needs the test kit's binary {TESTKIT_BINARY}, which is \
             not installed next to dbxportctl ({}); packaged builds leave it out. Build it from \
             the source tree with `cargo build --release --bins` and run \
             target/release/dbxportctl {subcommand}",
            binary.display()
        ));
        return Exit::Error;
    }
    let mut command = std::process::Command::new(&binary);
    // Named dbxportctl in its messages, as the command was typed.
    command.arg0("dbxportctl");
    match term::verbosity() {
        Verbosity::Quiet => {
            command.arg("--quiet");
        }
        Verbosity::Verbose => {
            command.arg("--verbose");
        }
        Verbosity::Normal => {}
    }
    let error = command.arg(subcommand).args(args).exec();
    report(format!("cannot run {}: {error}", binary.display()));
    Exit::Error
}

fn sibling() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(TESTKIT_BINARY))
}

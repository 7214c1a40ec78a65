//! dbxport-testkit: the test kit's commands (`demo`, `emulator`); `dbxportctl demo` and
//! `dbxportctl emulator` run this binary. See `dbxport_testkit::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = dbxport_testkit::cli::Cli::parse();
    dbxport_testkit::cli::run(cli).await.into()
}

//! dbxportctl: the command line for dbxportd. See `dbxport::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = dbxport::cli::Cli::parse();
    dbxport::cli::run(cli).await.into()
}

//! dbxportd: the dbxport user service. See `dbxport::daemon`.

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Exports photos to Dropbox: owns the upload queue and serves io.github.dbxport1 on the
/// session bus.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Config file (default: $XDG_CONFIG_HOME/dbxport/config.toml).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what is wrong and what to do, for the journal and the
            // terminal (both read stderr: a log line as well would say it twice); no
            // backtrace, whatever RUST_BACKTRACE says.
            eprintln!("dbxportd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    dbxport::daemon::tune_allocator();
    dbxport::logging::init();
    let mut dirs = dbxport::config::Dirs::from_env()?;
    if let Some(path) = args.config {
        dirs.config_file = path;
    }
    let config = dbxport::config::Config::load(&dirs.config_file)?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping: finishing or abandoning in-flight requests");
        on_signal.cancel();
    });
    let conn = dbxport::daemon::connect_session(&dirs).await?;
    dbxport::daemon::run(conn, dirs, config, shutdown).await?;
    Ok(())
}

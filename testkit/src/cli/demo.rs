//! `dbxportctl demo` (`dbxport-testkit demo`): the whole path on one machine, with nothing to
//! set up but `dbus-daemon`.
//!
//! It starts a private session bus (never the user's, so a real dbxportd and its queue are
//! left alone), the Dropbox emulator on a free loopback port, and the real `dbxportd` with its
//! own XDG directories; uploads the sample photos with progress bars by running `dbxportctl
//! upload --wait` (the binary next to this one) on the private bus; lists what the emulated
//! Dropbox now holds with sizes and content hashes; and stops everything it started.

use std::path::{Path, PathBuf};

use dbxport::config::{Config, MIB};
use dbxport::dropbox::content_hash::content_hash_file;
use dbxport::dropbox::{self, ListFolderArg, Metadata};
use dbxport::secret::Secret;

use super::{DemoArgs, Exit, outln, report, say};
use crate::sandbox::{Sandbox, SandboxOptions};

const REMOTE_FOLDER: &str = "/dbxport-demo";

fn sample_photos() -> PathBuf {
    // The samples are the product's test data, one level up from this crate; shown without
    // the `..` when the source tree is still there.
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/photos"));
    path.canonicalize().unwrap_or(path)
}

/// A binary of the product, next to this one (`cargo build --bins` puts them together).
fn sibling(name: &str) -> Result<PathBuf, String> {
    let path = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build the binaries (cargo build --bins)",
            path.display()
        ))
    }
}

pub async fn run(args: DemoArgs) -> Exit {
    match demo(args).await {
        Ok(exit) => exit,
        Err(e) => {
            report(e);
            Exit::Error
        }
    }
}

async fn demo(args: DemoArgs) -> Result<Exit, String> {
    let photos_dir = args.photos.unwrap_or_else(sample_photos);
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&photos_dir)
        .map_err(|e| format!("{}: {e}", photos_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| {
                let e = e.to_string_lossy().to_lowercase();
                ["jpg", "jpeg", "png", "webp", "tif", "tiff", "heic"].contains(&e.as_str())
            })
        })
        .collect();
    photos.sort();
    if photos.is_empty() {
        return Err(format!("no photos in {}", photos_dir.display()));
    }
    let dbxportd = sibling("dbxportd")?;
    let dbxportctl = sibling("dbxportctl")?;
    let dir = tempfile::Builder::new()
        .prefix("dbxport-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let mut options = SandboxOptions::new(dbxportd);
    // Small thresholds so that the larger sample photos go through upload sessions.
    options.config.upload = Config::default().upload;
    options.config.upload.session_threshold = 2 * MIB;
    options.config.upload.chunk_size = 4 * MIB;
    options.config.upload.remote_folder = REMOTE_FOLDER.into();
    options.drop_root_file_access = false;
    options.log_filter = "info".into();
    say!(
        "Starting a private D-Bus, the Dropbox emulator and dbxportd in {}",
        dir.path().display()
    );
    let mut sandbox = Sandbox::start(dir.path(), options)
        .await
        .map_err(|e| e.to_string())?;
    sandbox.start_daemon().await.map_err(|e| e.to_string())?;
    let account = sandbox.login().await.map_err(|e| e.to_string())?;
    say!(
        "Emulated Dropbox at {} — logged in as {account}",
        sandbox.emulator.base_url()
    );
    say!(
        "Uploading {} photos from {} to {REMOTE_FOLDER}",
        photos.len(),
        photos_dir.display()
    );

    let outcome = upload(&dbxportctl, sandbox.bus.address(), &photos).await;
    let listing = list_remote(&sandbox, &photos).await;

    let log = sandbox.daemon_log();
    sandbox.shutdown().await;
    if args.keep {
        let kept = dir.keep();
        say!(
            "Kept {} (emulated Dropbox under dropbox/, daemon log {})",
            kept.display(),
            log.display()
        );
    }
    let exit = outcome?;
    listing?;
    Ok(exit)
}

/// `dbxportctl upload --wait --to REMOTE_FOLDER PHOTOS…` on the private bus, its output and
/// progress bars on this terminal; its exit code is the demo's.
async fn upload(dbxportctl: &Path, bus: &str, photos: &[PathBuf]) -> Result<Exit, String> {
    let mut command = tokio::process::Command::new(dbxportctl);
    match dbxport::cli::term::verbosity() {
        dbxport::cli::term::Verbosity::Quiet => {
            command.arg("--quiet");
        }
        dbxport::cli::term::Verbosity::Verbose => {
            command.arg("--verbose");
        }
        dbxport::cli::term::Verbosity::Normal => {}
    }
    command
        .args(["upload", "--wait", "--to", REMOTE_FOLDER])
        .args(photos)
        .env("DBUS_SESSION_BUS_ADDRESS", bus);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", dbxportctl.display()))?;
    // Ctrl-C reaches the upload too (one process group): it says the jobs go on and ends
    // with 130, and the demo, which must not die with it, then stops what it started.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot follow Ctrl-C: {e}"))?;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = interrupt.recv() => {}
        }
    }
    .map_err(|e| format!("{}: {e}", dbxportctl.display()))?;
    Ok(match status.code() {
        Some(0) => Exit::Ok,
        Some(3) => Exit::JobsFailed,
        Some(4) => Exit::Cancelled,
        Some(130) => Exit::Interrupted,
        _ => Exit::Error,
    })
}

/// Prints the remote folder as the emulated Dropbox reports it, through the same client the
/// daemon uses.
async fn list_remote(sandbox: &Sandbox, photos: &[PathBuf]) -> Result<(), String> {
    let mut config = Config::default();
    config.dropbox.api_url = sandbox.emulator.base_url();
    config.dropbox.content_url = sandbox.emulator.base_url();
    let client = dbxport::daemon::client_for(&config).map_err(|e| e.to_string())?;
    let token = Secret::new(sandbox.emulator.access_token());
    let arg = ListFolderArg {
        path: REMOTE_FOLDER.into(),
        ..Default::default()
    };
    let mut page = client
        .list_folder(&token, &arg)
        .await
        .map_err(|e| format!("list_folder: {e}"))?;
    let mut entries = std::mem::take(&mut page.entries);
    while page.has_more {
        page = client
            .list_folder_continue(&token, &page.cursor)
            .await
            .map_err(|e| format!("list_folder/continue: {e}"))?;
        entries.append(&mut page.entries);
    }
    // The local files hashed the same way, off the async runtime: what "verified" means.
    let paths = photos.to_vec();
    let local_hashes: std::collections::HashMap<String, String> =
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .filter_map(|p| {
                    Some((
                        p.file_name()?.to_string_lossy().into_owned(),
                        content_hash_file(p).ok()?,
                    ))
                })
                .collect()
        })
        .await
        .map_err(|e| e.to_string())?;
    outln!();
    outln!("Dropbox now holds in {REMOTE_FOLDER}:");
    outln!(
        "{:>12}  {:<64}  {:<8}  NAME",
        "SIZE",
        "CONTENT HASH",
        "LOCAL"
    );
    let mut files: Vec<dropbox::FileMetadata> = entries
        .into_iter()
        .filter_map(|e| match e {
            Metadata::File(f) => Some(f),
            _ => None,
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    for file in &files {
        let local = local_hashes.get(&file.name);
        let check = match (&local, &file.content_hash) {
            (Some(l), Some(r)) if *l == r => "same",
            (Some(_), _) => "DIFFERS",
            (None, _) => "-",
        };
        outln!(
            "{:>12}  {:<64}  {:<8}  {}",
            file.size,
            file.content_hash.as_deref().unwrap_or("-"),
            check,
            file.name
        );
    }
    Ok(())
}

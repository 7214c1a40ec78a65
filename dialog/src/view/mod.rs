//! The window: GTK 4 + libadwaita, thin. It renders the model (`crate::model`) and forwards
//! what the user does to it and to the daemon.
//!
//! D-Bus runs on zbus's async proxies awaited on the GTK main loop
//! (`glib::MainContext::spawn_local`). The product library's zbus is built for tokio (its
//! connections read their sockets on tokio's reactor and spawn their tasks there), so a
//! one-worker tokio runtime runs beside GTK and its context is entered on the main thread:
//! the futures are polled by GLib, woken by tokio's reactor, and nothing needs to move
//! between threads or be Send. (Building zbus for async-io instead would change the daemon's
//! build too, since Cargo unifies features across the workspace.)

mod bus;
mod thumbs;
mod timing;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use adw::prelude::*;

/// The application id: the desktop file's name, and the icon's.
pub const APP_ID: &str = "io.github.dbxport1.Export";

/// `dbxport-export [FILE…]`: the window with these photos.
pub fn run() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: dbxport-export [FILE…]\n\nThe export dialog: sends the photos to Dropbox through dbxportd (\"Send to Dropbox…\")."
        );
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version") {
        println!("dbxport-export {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let files: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
    // `RUST_LOG` (default info) to stderr, as the daemon's; debug adds the timing lines.
    dbxport::logging::init();
    tracing::debug!(unix_us = timing::unix_us() as u64, "started");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dbxport-export: cannot start the D-Bus runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _context = runtime.enter();
    let app = adw::Application::builder()
        .application_id(APP_ID)
        // One window per invocation: each file-manager selection is its own export.
        .flags(gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    app.connect_activate(move |app| window::open(app, files.clone()));
    // The files were read above: GApplication must not parse them as its own arguments.
    let status = app.run_with_args(&["dbxport-export"]);
    ExitCode::from(u8::try_from(status.value()).unwrap_or(1))
}

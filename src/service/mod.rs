//! The D-Bus face of the daemon: `io.github.dbxport1` on the session bus, one object at
//! `/io/github/dbxport1` carrying the `Uploader`, `Account`, `Folders` and `Watches`
//! interfaces.
//!
//! Methods stay thin: check the arguments, hand the work to the queue or the session, return.
//! Long work happens in the engine and comes back as signals: `JobStateChanged` on every state
//! change and `JobProgress` (throttled by the engine) for bytes. Byte progress is deliberately
//! not a property: properties are for slow-changing state (`QueueLength`, `Paused`, the
//! account's `State`).
//!
//! The `#[interface]` blocks also generate the client proxies (`UploaderProxy`,
//! `AccountProxy`, `FoldersProxy`, `WatchesProxy`) that `dbxportctl` and the tests use, so both sides share one definition.
//! `dbus/io.github.dbxport1.xml` is the published form; a test compares it with what the
//! running daemon introspects.

mod account;
mod folders;
mod options;
mod uploader;
mod watches;

pub use account::{Account, AccountProxy};
pub use folders::{Folders, FoldersProxy};
pub use uploader::{
    BatchFinished, BatchFinishedStream, JobProgress, JobProgressStream, JobStateChanged,
    JobStateChangedStream, Uploader, UploaderProxy,
};
pub use watches::{Watches, WatchesProxy, watch_to_dict};

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use zbus::zvariant::{OwnedValue, Value};

use crate::credentials::Session;
use crate::dropbox::Client;
use crate::engine::Engine;
use crate::queue::{Job, JobState, Queue, QueueError};

pub const BUS_NAME: &str = "io.github.dbxport1";
pub const OBJECT_PATH: &str = "/io/github/dbxport1";

/// Errors callers see, as named D-Bus errors (`io.github.dbxport1.Error.InvalidPath`, …).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.github.dbxport1.Error")]
pub enum ServiceError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// One or more paths cannot be uploaded; the message names each and why.
    InvalidPath(String),
    /// An option or argument is unknown, of the wrong type, or out of range.
    InvalidArgument(String),
    /// No job or batch with that id, or no such folder in Dropbox.
    NotFound(String),
    /// Dropbox refused the login.
    LoginRefused(String),
    /// The request needs Dropbox, and no account is linked or Dropbox no longer accepts it.
    NotLoggedIn(String),
    /// Something failed inside the daemon; the message says what.
    Failed(String),
}

impl From<crate::intake::IntakeError> for ServiceError {
    fn from(e: crate::intake::IntakeError) -> Self {
        use crate::intake::IntakeError;
        match e {
            IntakeError::Invalid(message) => ServiceError::InvalidArgument(message),
            e @ IntakeError::Refused(_) => ServiceError::InvalidPath(e.to_string()),
            IntakeError::Queue(e) => e.into(),
        }
    }
}

impl From<crate::spool::SpoolError> for ServiceError {
    fn from(e: crate::spool::SpoolError) -> Self {
        use crate::spool::SpoolError;
        match e {
            // About one file the caller handed over, named.
            e @ (SpoolError::BadName { .. }
            | SpoolError::NotRegular { .. }
            | SpoolError::Unreadable { .. }
            | SpoolError::Changed { .. }) => ServiceError::InvalidPath(e.to_string()),
            e @ SpoolError::Invalid(_) => ServiceError::InvalidArgument(e.to_string()),
            // No room (the bound or the disk), or the daemon's own write failed.
            e @ (SpoolError::Full { .. }
            | SpoolError::DiskFull { .. }
            | SpoolError::Write { .. }) => ServiceError::Failed(e.to_string()),
        }
    }
}

impl From<QueueError> for ServiceError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(id) => {
                ServiceError::NotFound(format!("no job or batch with id {id}"))
            }
            e => ServiceError::Failed(e.to_string()),
        }
    }
}

fn value<'a>(v: impl Into<Value<'a>>) -> OwnedValue {
    v.into()
        .try_to_owned()
        .expect("plain values carry no file descriptors")
}

/// Export options as D-Bus dictionary entries: `mode` (`original`, `resize`), with
/// `max_dimension` and `jpeg_quality` when resizing, `strip_location`, `conflict`, `share_link`.
pub fn options_to_dict(options: &crate::export::ExportOptions) -> HashMap<String, OwnedValue> {
    use crate::prepare::Mode;
    let mut d = HashMap::new();
    match options.prepare.mode {
        Mode::Original => {
            d.insert("mode".into(), value("original"));
        }
        Mode::Resize {
            max_dimension,
            jpeg_quality,
        } => {
            d.insert("mode".into(), value("resize"));
            d.insert("max_dimension".into(), value(max_dimension));
            d.insert("jpeg_quality".into(), value(u32::from(jpeg_quality)));
        }
    }
    d.insert(
        "strip_location".into(),
        value(options.prepare.strip_location),
    );
    d.insert("conflict".into(), value(options.conflict.name()));
    d.insert("share_link".into(), value(options.share_link));
    d
}

/// A job as a D-Bus dictionary (`a{sv}`), so fields can be added without breaking callers.
pub fn job_to_dict(job: &Job) -> HashMap<String, OwnedValue> {
    let mut d = HashMap::new();
    d.insert("id".into(), value(job.id));
    d.insert("batch".into(), value(job.batch));
    // A spooled job's source is the caller's name: its copy in the spool is the daemon's
    // business (`crate::spool`).
    let source = match job.access.spooled_name() {
        Some(name) => name.to_string(),
        None => job.source.to_string_lossy().into_owned(),
    };
    d.insert("source".into(), value(source));
    d.insert("spooled".into(), value(job.access.spooled_name().is_some()));
    d.insert("remote_path".into(), value(job.remote_path.clone()));
    d.insert("state".into(), value(job.state.name()));
    d.insert("message".into(), value(job_message(job)));
    d.insert("size".into(), value(job.source_size));
    d.insert("sent".into(), value(job.bytes_sent));
    d.insert("attempts".into(), value(job.attempts));
    d.insert("created_ms".into(), value(job.created_ms));
    let warnings: Vec<String> = job.warnings.iter().map(|w| job.shown(w)).collect();
    d.insert("warnings".into(), value(warnings));
    match &job.state {
        JobState::Done {
            content_hash,
            rev,
            skipped,
            remote_path,
        } => {
            d.insert("content_hash".into(), value(content_hash.clone()));
            d.insert("rev".into(), value(rev.clone()));
            d.insert("skipped".into(), value(*skipped));
            // Where the file is, if Dropbox gave it another name than asked.
            d.insert("stored_path".into(), value(remote_path.clone()));
        }
        JobState::Waiting { retry_at_ms, .. } => {
            d.insert("retry_at_ms".into(), value(*retry_at_ms));
        }
        JobState::Failed { kind, .. } => {
            let kind = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            d.insert("failure".into(), value(kind));
        }
        _ => {}
    }
    d
}

/// A job's state message as callers see it: a spooled job's copy (named in a failure by its
/// path in the spool) named by the caller's name instead.
pub fn job_message(job: &Job) -> String {
    job.shown(&job.state.message())
}

/// A batch's summary as a D-Bus dictionary (`a{sv}`).
pub fn summary_to_dict(summary: &crate::queue::BatchSummary) -> HashMap<String, OwnedValue> {
    let mut d = HashMap::new();
    d.insert("done".into(), value(summary.done));
    d.insert("skipped".into(), value(summary.skipped));
    d.insert("failed".into(), value(summary.failed));
    d.insert("cancelled".into(), value(summary.cancelled));
    d.insert("failures".into(), value(summary.failures.clone()));
    d.insert("warnings".into(), value(summary.warnings.clone()));
    if let Some(link) = &summary.link {
        d.insert("link".into(), value(link.clone()));
    }
    if let Some(error) = &summary.link_error {
        d.insert("link_error".into(), value(error.clone()));
    }
    d
}

/// A batch's summary from its D-Bus dictionary (what a client of `BatchFinished` reads back);
/// missing or mistyped entries read as zero or absent.
pub fn summary_from_dict(d: &HashMap<String, OwnedValue>) -> crate::queue::BatchSummary {
    let count = |k: &str| d.get(k).and_then(|v| u32::try_from(&**v).ok()).unwrap_or(0);
    let text = |k: &str| {
        d.get(k)
            .and_then(|v| <&str>::try_from(&**v).ok())
            .map(String::from)
    };
    let list = |k: &str| {
        d.get(k)
            .and_then(|v| Vec::<String>::try_from(v.try_clone().ok()?).ok())
            .unwrap_or_default()
    };
    crate::queue::BatchSummary {
        done: count("done"),
        skipped: count("skipped"),
        failed: count("failed"),
        cancelled: count("cancelled"),
        failures: list("failures"),
        warnings: list("warnings"),
        link: text("link"),
        link_error: text("link_error"),
        finished_ms: 0,
    }
}

/// Serves the interfaces on `conn` and, on a bus, takes the well-known name — after the
/// handlers are in place, so a D-Bus-activated first call is not lost. On a peer-to-peer
/// connection there is no name to take: the peer talks to the object directly.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    conn: &zbus::Connection,
    queue: Queue,
    session: Arc<Session>,
    client: Client,
    engine: Arc<Engine>,
    watcher: Arc<crate::watch::Watcher>,
    policy: Arc<crate::policy::Policy>,
    spool: Arc<crate::spool::Spool>,
    config: &crate::config::Config,
) -> Result<(), zbus::Error> {
    let server = conn.object_server();
    server
        .at(
            OBJECT_PATH,
            Uploader {
                intake: crate::intake::Intake {
                    queue: queue.clone(),
                    default_folder: config.upload.remote_folder.clone(),
                    defaults: config.export.options(),
                    remember_last_choice: config.export.remember_last_choice,
                    profiles: config.profiles(),
                },
                queue,
                spool,
                client: client.clone(),
                engine,
                policy,
                config_loaded_ms: crate::queue::now_ms(),
                parts: Default::default(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            Account {
                session: session.clone(),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            Folders {
                folders: crate::folders::Folders::new(
                    session,
                    client,
                    config.dropbox.list_page_size,
                ),
            },
        )
        .await?;
    server
        .at(
            OBJECT_PATH,
            Watches {
                watcher,
                default_folder: config.upload.remote_folder.clone(),
                // `[export]`, with `watch.conflict` (`replace` unless changed) as the policy.
                defaults: config.watch_export().options(),
                profiles: config.profiles(),
            },
        )
        .await?;
    if conn.unique_name().is_some() {
        // Fails when another connection owns it (never queued behind it, never replacing it).
        conn.request_name(BUS_NAME).await?;
    }
    Ok(())
}

/// How often coalesced `JobProgress` signals go out.
const PROGRESS_FLUSH: std::time::Duration = std::time::Duration::from_millis(250);

/// Forwards queue, engine, account and watch changes to D-Bus signals until `shutdown`.
pub async fn forward_signals(
    conn: zbus::Connection,
    queue: Queue,
    engine: Arc<Engine>,
    session: Arc<Session>,
    watcher: Arc<crate::watch::Watcher>,
    policy: Arc<crate::policy::Policy>,
    shutdown: CancellationToken,
) -> zbus::Result<()> {
    let server = conn.object_server();
    let uploader = server.interface::<_, Uploader>(OBJECT_PATH).await?;
    let account = server.interface::<_, Account>(OBJECT_PATH).await?;
    let mut events = queue.subscribe();
    let mut progress = engine.subscribe_progress();
    let mut batches = engine.subscribe_batches();
    let mut status = session.status();
    let mut info = session.info();
    let mut store_status = session.store_status();
    let mut logins = session.logins();
    let mut watch_changes = watcher.subscribe();
    let mut auto_hold = policy.subscribe();
    // The one place `Paused` is announced: whoever flips the switch (Pause, Resume, the job
    // tray's buttons), the queue's watch says so.
    let mut paused = queue.watch_paused();
    let watches = server.interface::<_, Watches>(OBJECT_PATH).await?;
    let mut last_len = queue.active_len();
    // Progress goes out in flushes a few times a second, the latest figure of each job that
    // moved: a thousand small files do not become a thousand signals a second.
    let mut pending_progress: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    let mut progress_tick = tokio::time::interval(PROGRESS_FLUSH);
    progress_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    let job = &event.job;
                    Uploader::job_state_changed(uploader.signal_emitter(), job.id, job.batch, job.state.name(), &job_message(job)).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} job state signals were dropped: the bus is slower than the queue");
                }
                Err(_) => return Ok(()),
            },
            p = progress.recv() => match p {
                Ok(p) => {
                    pending_progress.insert(p.job, (p.sent, p.total));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Ok(()),
            },
            change = watch_changes.recv() => match change {
                Ok(change) => Watches::watch_changed(watches.signal_emitter(), change.id, change.state.name(), change.state.reason()).await?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Ok(()),
            },
            _ = progress_tick.tick(), if !pending_progress.is_empty() => {
                for (job, (sent, total)) in std::mem::take(&mut pending_progress) {
                    Uploader::job_progress(uploader.signal_emitter(), job, sent, total).await?;
                }
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let iface = account.get().await;
                let emitter = account.signal_emitter();
                // LoggedIn last: a client that acts on it (the dialog lists folders) finds
                // the state, name and message it reads next already changed.
                iface.state_changed(emitter).await?;
                iface.account_name_changed(emitter).await?;
                iface.status_message_changed(emitter).await?;
                iface.logged_in_changed(emitter).await?;
            }
            changed = info.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let iface = account.get().await;
                let emitter = account.signal_emitter();
                iface.email_changed(emitter).await?;
                iface.used_bytes_changed(emitter).await?;
                iface.allocated_bytes_changed(emitter).await?;
            }
            changed = auto_hold.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                uploader.get().await.auto_uploads_held_changed(uploader.signal_emitter()).await?;
            }
            changed = paused.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let iface = uploader.get().await;
                iface.paused_changed(uploader.signal_emitter()).await?;
                iface.paused_since_ms_changed(uploader.signal_emitter()).await?;
            }
            changed = store_status.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                account.get().await.credential_store_changed(account.signal_emitter()).await?;
            }
            finished = batches.recv() => {
                if let Ok(finished) = finished {
                    Uploader::batch_finished(uploader.signal_emitter(), finished.batch, summary_to_dict(&finished.summary)).await?;
                }
            }
            login = logins.recv() => {
                if let Ok(login) = login {
                    Account::login_finished(account.signal_emitter(), login.ok, &login.account, &login.error).await?;
                }
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
        let len = queue.active_len();
        if len != last_len {
            if len == 0 {
                // The queue ran empty: a batch ended and the quota moved.
                let session = session.clone();
                tokio::spawn(async move { session.refresh_info().await });
            }
            last_len = len;
            uploader
                .get()
                .await
                .queue_length_changed(uploader.signal_emitter())
                .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_as_it_was_sent() {
        let summary = crate::queue::BatchSummary {
            done: 3,
            skipped: 1,
            failed: 2,
            cancelled: 1,
            failures: vec!["/a.jpg: permission denied".into()],
            warnings: vec!["/b.heic: sent as it is".into()],
            link: Some("https://www.dropbox.com/scl/fo/x".into()),
            link_error: None,
            finished_ms: 0,
        };
        assert_eq!(summary_from_dict(&summary_to_dict(&summary)), summary);
        assert_eq!(
            summary_from_dict(&HashMap::new()),
            crate::queue::BatchSummary::default()
        );
    }
}

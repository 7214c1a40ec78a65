//! The D-Bus face of the daemon: `io.github.dbxport1` on the session bus, one object at
//! `/io/github/dbxport1` carrying the `Uploader` and `Account` interfaces.
//!
//! Methods stay thin: check the arguments, hand the work to the queue or the session, return.
//! Long work happens in the engine and comes back as signals: `JobStateChanged` on every state
//! change and `JobProgress` (throttled by the engine) for bytes. Byte progress is deliberately
//! not a property: properties are for slow-changing state (`QueueLength`, `Paused`, the
//! account's `State`).
//!
//! The `#[interface]` blocks also generate the client proxies (`UploaderProxy`,
//! `AccountProxy`) that `dbxportctl` and the tests use, so both sides share one definition.
//! `dbus/io.github.dbxport1.xml` is the published form; a test compares it with what the
//! running daemon introspects.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};

use crate::credentials::{AccountStatus, Session, TokenKind};
use crate::engine::Engine;
use crate::prepare;
use crate::queue::{Filter, Job, JobState, NewJob, Queue, QueueError};
use crate::secret::Secret;

pub const BUS_NAME: &str = "io.github.dbxport1";
pub const OBJECT_PATH: &str = "/io/github/dbxport1";

/// At most this many bad paths are listed in one error; the count says how many more.
const MAX_LISTED_ERRORS: usize = 20;

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
    /// No job or batch with that id.
    NotFound(String),
    /// Dropbox refused the login.
    LoginRefused(String),
    /// Something failed inside the daemon; the message says what.
    Failed(String),
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

/// A job as a D-Bus dictionary (`a{sv}`), so fields can be added without breaking callers.
pub fn job_to_dict(job: &Job) -> HashMap<String, OwnedValue> {
    let mut d = HashMap::new();
    d.insert("id".into(), value(job.id));
    d.insert("batch".into(), value(job.batch));
    d.insert(
        "source".into(),
        value(job.source.to_string_lossy().into_owned()),
    );
    d.insert("remote_path".into(), value(job.remote_path.clone()));
    d.insert("state".into(), value(job.state.name()));
    d.insert("message".into(), value(job.state.message()));
    d.insert("size".into(), value(job.source_size));
    d.insert("sent".into(), value(job.bytes_sent));
    d.insert("attempts".into(), value(job.attempts));
    match &job.state {
        JobState::Done {
            content_hash, rev, ..
        } => {
            d.insert("content_hash".into(), value(content_hash.clone()));
            d.insert("rev".into(), value(rev.clone()));
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

/// Checks a Dropbox folder path given by a caller; `""` means the configured default.
fn checked_folder(requested: &str, default: &str) -> Result<String, ServiceError> {
    let folder = if requested.is_empty() {
        default
    } else {
        requested
    };
    if folder == "/" {
        return Ok(String::new());
    }
    if !folder.starts_with('/') || folder.ends_with('/') || folder.ends_with(char::is_whitespace) {
        return Err(ServiceError::InvalidArgument(format!(
            "remote folder {folder:?}: must start with '/' and not end with '/' or a space (e.g. /Photos/2024)"
        )));
    }
    Ok(folder.to_string())
}

pub struct Uploader {
    queue: Queue,
    default_folder: String,
}

#[interface(
    name = "io.github.dbxport1.Uploader",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Uploader {
    /// Queues files for upload into `remote_folder` (`""`: the configured default). Returns
    /// once the jobs are on disk. Options (`a{sv}`): `original` (b, true: upload the bytes as
    /// they are; the only mode for now). Every path must be absolute and name an existing
    /// file; otherwise nothing is queued and the error names each bad path.
    async fn upload(
        &self,
        paths: Vec<String>,
        remote_folder: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(u64, Vec<u64>), ServiceError> {
        for (key, v) in &options {
            match key.as_str() {
                "original" => match bool::try_from(&**v) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(ServiceError::InvalidArgument(
                            "option original=false: resizing is not available yet; only originals are uploaded".into(),
                        ));
                    }
                    Err(_) => {
                        return Err(ServiceError::InvalidArgument(format!(
                            "option original must be a boolean, not {}",
                            v.value_signature()
                        )));
                    }
                },
                other => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "unknown option {other:?}"
                    )));
                }
            }
        }
        if paths.is_empty() {
            return Err(ServiceError::InvalidArgument("no files given".into()));
        }
        let folder = checked_folder(&remote_folder, &self.default_folder)?;
        // Stat every path off the runtime: 10,000 stats are fast but still blocking calls.
        let checked = tokio::task::spawn_blocking(move || {
            paths
                .into_iter()
                .map(|p| {
                    let path = PathBuf::from(&p);
                    prepare::check_source(&path).map(|stamp| (path, stamp))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ServiceError::Failed(e.to_string()))?;
        let (good, bad): (Vec<_>, Vec<_>) = checked.into_iter().partition(Result::is_ok);
        if !bad.is_empty() {
            let count = bad.len();
            let mut lines: Vec<String> = bad
                .into_iter()
                .filter_map(Result::err)
                .take(MAX_LISTED_ERRORS)
                .map(|e| e.to_string())
                .collect();
            if count > MAX_LISTED_ERRORS {
                lines.push(format!("… and {} more", count - MAX_LISTED_ERRORS));
            }
            return Err(ServiceError::InvalidPath(lines.join("\n")));
        }
        let jobs = good
            .into_iter()
            .filter_map(Result::ok)
            .map(|(path, stamp)| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                NewJob {
                    remote_path: format!("{folder}/{name}"),
                    source: path,
                    source_size: stamp.size,
                    source_mtime_ms: stamp.mtime_ms,
                }
            })
            .collect();
        let (batch, jobs) = self
            .queue
            .enqueue(if folder.is_empty() { "/" } else { &folder }, jobs)
            .await?;
        Ok((batch, jobs.iter().map(|j| j.id).collect()))
    }

    /// Cancels a job, or every unfinished job of a batch. Returns the ids cancelled.
    async fn cancel(&self, id: u64) -> Result<Vec<u64>, ServiceError> {
        Ok(self.queue.cancel(id).await?)
    }

    /// Jobs as dictionaries. Filter keys: `state` (s: `all`, `active`, `done`, `failed`) and
    /// `batch` (t).
    async fn list_jobs(
        &self,
        filter: HashMap<String, OwnedValue>,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, ServiceError> {
        let mut which = Filter::All;
        for (key, v) in &filter {
            match key.as_str() {
                "state" => {
                    let s = <&str>::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("filter state must be a string".into())
                    })?;
                    which = match s {
                        "all" => Filter::All,
                        "active" => Filter::Active,
                        "done" => Filter::Done,
                        "failed" => Filter::Failed,
                        other => {
                            return Err(ServiceError::InvalidArgument(format!(
                                "filter state {other:?}: expected all, active, done or failed"
                            )));
                        }
                    }
                }
                "batch" => {
                    let id = u64::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("filter batch must be a uint64".into())
                    })?;
                    which = Filter::Batch(id);
                }
                other => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "unknown filter {other:?}"
                    )));
                }
            }
        }
        let jobs = self.queue.list(which)?;
        Ok(jobs.iter().map(job_to_dict).collect())
    }

    /// Stops starting new transfers (running ones finish their current step). Persisted.
    async fn pause(
        &self,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), ServiceError> {
        self.queue.set_paused(true).await?;
        self.paused_changed(&emitter).await?;
        Ok(())
    }

    async fn resume(
        &self,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), ServiceError> {
        self.queue.set_paused(false).await?;
        self.paused_changed(&emitter).await?;
        Ok(())
    }

    /// Unfinished jobs.
    #[zbus(property)]
    async fn queue_length(&self) -> u32 {
        self.queue.active_len() as u32
    }

    #[zbus(property)]
    async fn paused(&self) -> bool {
        self.queue.paused()
    }

    /// A job moved to `state` (see ListJobs); `message` says why for failed and waiting jobs.
    #[zbus(signal)]
    async fn job_state_changed(
        emitter: &SignalEmitter<'_>,
        job: u64,
        batch: u64,
        state: &str,
        message: &str,
    ) -> zbus::Result<()>;

    /// Bytes of a job confirmed sent, out of `total`; a few per second per job at most.
    #[zbus(signal)]
    async fn job_progress(
        emitter: &SignalEmitter<'_>,
        job: u64,
        sent: u64,
        total: u64,
    ) -> zbus::Result<()>;
}

pub struct Account {
    session: Arc<Session>,
}

#[interface(
    name = "io.github.dbxport1.Account",
    proxy(
        default_service = "io.github.dbxport1",
        default_path = "/io/github/dbxport1",
        gen_blocking = false
    )
)]
impl Account {
    /// Links an account from a token the user already has: `kind` is `access` (a token
    /// generated in the Dropbox app console) or `refresh` (an offline refresh token; needs
    /// `dropbox.app_key`). The token is checked with Dropbox and stored; returns the account's
    /// display name.
    async fn login_with_token(&self, kind: String, token: String) -> Result<String, ServiceError> {
        let kind = match kind.as_str() {
            "access" => TokenKind::Access,
            "refresh" => TokenKind::Refresh,
            other => {
                return Err(ServiceError::InvalidArgument(format!(
                    "token kind {other:?}: expected access or refresh"
                )));
            }
        };
        let token = Secret::new(token.trim());
        if token.is_empty() {
            return Err(ServiceError::InvalidArgument("the token is empty".into()));
        }
        self.session
            .login_with_token(kind, token)
            .await
            .map_err(|e| match e {
                e if e.is_transient() => ServiceError::Failed(e.to_string()),
                e => ServiceError::LoginRefused(e.to_string()),
            })
    }

    /// `logged_in` or `logged_out`.
    #[zbus(property)]
    async fn state(&self) -> String {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedIn { .. } => "logged_in".into(),
            AccountStatus::LoggedOut { .. } => "logged_out".into(),
        }
    }

    /// The linked account's display name, or empty.
    #[zbus(property)]
    async fn account_name(&self) -> String {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedIn { account } => account.clone(),
            AccountStatus::LoggedOut { .. } => String::new(),
        }
    }

    /// Why the account is logged out, or empty.
    #[zbus(property)]
    async fn status_message(&self) -> String {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedOut { reason } => reason.clone(),
            AccountStatus::LoggedIn { .. } => String::new(),
        }
    }

    /// Where the token is kept (never the token itself).
    #[zbus(property)]
    async fn credential_store(&self) -> String {
        self.session.store_description()
    }
}

/// Connects to the session bus, serves both interfaces and takes the well-known name (after
/// the handlers are in place, so a D-Bus-activated first call is not lost).
pub async fn serve(
    queue: Queue,
    session: Arc<Session>,
    default_folder: String,
) -> Result<zbus::Connection, zbus::Error> {
    zbus::connection::Builder::session()?
        .serve_at(
            OBJECT_PATH,
            Uploader {
                queue,
                default_folder,
            },
        )?
        .serve_at(OBJECT_PATH, Account { session })?
        .name(BUS_NAME)?
        .build()
        .await
}

/// Forwards queue, engine and account changes to D-Bus signals until `shutdown`.
pub async fn forward_signals(
    conn: zbus::Connection,
    queue: Queue,
    engine: Arc<Engine>,
    session: Arc<Session>,
    shutdown: CancellationToken,
) -> zbus::Result<()> {
    let server = conn.object_server();
    let uploader = server.interface::<_, Uploader>(OBJECT_PATH).await?;
    let account = server.interface::<_, Account>(OBJECT_PATH).await?;
    let mut events = queue.subscribe();
    let mut progress = engine.subscribe_progress();
    let mut status = session.status();
    let mut last_len = queue.active_len();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    let job = &event.job;
                    Uploader::job_state_changed(uploader.signal_emitter(), job.id, job.batch, job.state.name(), &job.state.message()).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} job state signals were dropped: the bus is slower than the queue");
                }
                Err(_) => return Ok(()),
            },
            p = progress.recv() => match p {
                Ok(p) => Uploader::job_progress(uploader.signal_emitter(), p.job, p.sent, p.total).await?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Ok(()),
            },
            changed = status.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let iface = account.get().await;
                let emitter = account.signal_emitter();
                iface.state_changed(emitter).await?;
                iface.account_name_changed(emitter).await?;
                iface.status_message_changed(emitter).await?;
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
        let len = queue.active_len();
        if len != last_len {
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
    fn remote_folders_are_checked() {
        assert_eq!(checked_folder("", "/Photos").unwrap(), "/Photos");
        assert_eq!(checked_folder("/", "/Photos").unwrap(), "");
        assert_eq!(checked_folder("/A/B", "/Photos").unwrap(), "/A/B");
        for bad in ["A", "/A/", "/A "] {
            assert!(
                matches!(
                    checked_folder(bad, "/P"),
                    Err(ServiceError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }
}

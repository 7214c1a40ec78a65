//! `dbxportd` as a library function, so tests and the demo start exactly what systemd starts.
//!
//! [`run`] serves on the D-Bus connection it is given: the session bus for `dbxportd`
//! ([`connect_session`]), or one end of a peer-to-peer socket, where a test talks to the
//! interfaces with no bus daemon at all.
//!
//! Order matters: the queue opens first (a second daemon fails here, on sled's lock, before it
//! touches the bus), then the Dropbox session, then the engine, and the D-Bus name is taken
//! last, once every handler is ready to answer.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::CredentialStoreKind;
use crate::config::{Config, Dirs};
use crate::credentials::{CredentialError, Session, StorePolicy};
use crate::dropbox::{Client, ClientOptions, Endpoints};
use crate::engine::Engine;
use crate::queue::{Queue, QueueError};
use crate::service;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("dropbox.{key} = {value:?} is not a valid URL: {message}")]
    Url {
        key: &'static str,
        value: String,
        message: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(
        "cannot serve on the session bus: {0}. Is DBUS_SESSION_BUS_ADDRESS set, and is no other dbxportd running?"
    )]
    Bus(zbus::Error),
    /// Another daemon serves this session (or holds the queue database).
    #[error("dbxportd is already running{}: `dbxportctl status` talks to it; `dbxportctl restart` restarts it", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { pid: Option<u32> },
}

/// Makes freed chunk buffers go back to the system. glibc serves large allocations with mmap
/// only up to a threshold that grows each time such a block is freed (up to 32 MiB), after
/// which 8 MiB chunk buffers come from per-thread arenas and stay there: with the blocking
/// pool's many threads each reading chunks, the daemon's RSS grew to 150 MB during one large
/// upload. A fixed threshold keeps memory at about chunk size × transfers. Call it once, at
/// start, in the daemon process only.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; M_MMAP_THRESHOLD takes a size in bytes.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Creates a private directory (0700) and its parents; an existing one that others can read
/// (made by hand, or by an older version under a loose umask) is made private too.
fn private_dir(path: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |source| DaemonError::Dir {
        path: path.into(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(fail)?;
    let mode = std::fs::metadata(path).map_err(fail)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700 | 0o700))
            .map_err(fail)?;
    }
    Ok(())
}

fn parse_url(key: &'static str, value: &str) -> Result<url::Url, DaemonError> {
    url::Url::parse(value).map_err(|e| DaemonError::Url {
        key,
        value: value.into(),
        message: e.to_string(),
    })
}

/// The HTTP client for the configured Dropbox (or Dropbox-compatible) servers.
pub fn client_for(config: &Config) -> Result<Client, DaemonError> {
    Client::new(ClientOptions {
        endpoints: Endpoints {
            api: parse_url("api_url", &config.dropbox.api_url)?,
            content: parse_url("content_url", &config.dropbox.content_url)?,
        },
        ca_file: config.dropbox.ca_file.clone(),
        user_agent: format!("dbxport/{}", env!("CARGO_PKG_VERSION")),
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(config.dropbox.read_timeout_secs),
    })
    .map_err(|e| DaemonError::Http(e.to_string()))
}

/// The pid of the daemon that owns the bus name in this session, if one does.
/// The session bus, where `dbxportd` serves. Without one, a daemon of another session that
/// holds this user's queue is the thing to report (it is why this one could not run anyway).
pub async fn connect_session(dirs: &Dirs) -> Result<zbus::Connection, DaemonError> {
    match zbus::Connection::session().await {
        Ok(conn) => Ok(conn),
        Err(_) if queue_in_use(&dirs.queue_db()) => Err(DaemonError::AlreadyRunning { pid: None }),
        Err(e) => Err(DaemonError::Bus(e)),
    }
}

/// Whether another process holds the queue database: the lock sled takes (an exclusive
/// `flock` on its `db` file), tried and let go at once — asking needs no bus, and unlike
/// opening the database it changes nothing.
fn queue_in_use(db: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(db.join("db")) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; closing it (drop) lets go of a lock
    // taken here.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0;
    taken && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// The pid of the daemon that owns the name on `conn`'s bus, if one does (a peer-to-peer
/// connection has no bus, hence no other daemon to find).
async fn running_daemon(conn: &zbus::Connection) -> Option<u32> {
    conn.unique_name()?;
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    let name = zbus::names::BusName::try_from(service::BUS_NAME).ok()?;
    dbus.get_connection_unix_process_id(name).await.ok()
}

/// Forgets finished jobs older than `days`, now and then once a day, until `shutdown`.
async fn prune_history(
    queue: Queue,
    spool: std::sync::Arc<crate::spool::Spool>,
    days: u32,
    shutdown: CancellationToken,
) {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    loop {
        let before =
            crate::queue::now_ms().saturating_sub(u64::from(days) * DAY.as_millis() as u64);
        match queue.prune(before).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    "forgot {n} finished job(s) older than {days} days (history.keep_finished_days)"
                );
                // Copies kept for failed hand-overs that were among them go too.
                let (spool, queue) = (spool.clone(), queue.clone());
                let _ = tokio::task::spawn_blocking(move || spool.sweep_against(&queue)).await;
            }
            Err(e) => tracing::warn!("cannot prune finished jobs: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(DAY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    conn: zbus::Connection,
    dirs: Dirs,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    private_dir(&dirs.state)?;
    private_dir(&dirs.cache)?;
    private_dir(&dirs.prepared())?;
    private_dir(&dirs.spool())?;
    // A second daemon stops here, saying which one runs, before it touches the queue
    // (whose lock would otherwise be its only, cryptic, complaint).
    // Answer from now on: on a peer-to-peer connection the peer may call before the
    // interfaces are in place, and must hear "unknown object" (and ask again), not silence.
    // (On a bus nobody calls before the name is taken, which comes last.)
    let _ = conn.object_server();
    if let Some(pid) = running_daemon(&conn).await {
        return Err(DaemonError::AlreadyRunning { pid: Some(pid) });
    }
    let db_path = dirs.queue_db();
    let queue = match tokio::task::spawn_blocking(move || Queue::open(&db_path))
        .await
        .map_err(|e| DaemonError::Http(e.to_string()))?
    {
        // sled words its lock failure as an I/O error of its own making, text only.
        Err(QueueError::Open { error, .. })
            if error.to_string().contains("could not acquire lock") =>
        {
            // Locked by a daemon of another session (or one not on the bus yet).
            return Err(DaemonError::AlreadyRunning { pid: None });
        }
        other => other?,
    };
    let client = client_for(&config)?;
    let policy = StorePolicy {
        keyring: config.credentials.store == CredentialStoreKind::Keyring,
        file_fallback: config.credentials.file_fallback,
        state_dir: dirs.state.clone(),
    };
    let session = Session::open(client.clone(), &config.dropbox, policy).await?;
    tokio::spawn(session.clone().watch_store(shutdown.clone()));
    if session.is_logged_in() {
        // Email and quota for the Account properties, without delaying start-up.
        let session = session.clone();
        tokio::spawn(async move { session.refresh_info().await });
    }
    // A limit set over D-Bus outlives restarts; otherwise the config's.
    client.set_bandwidth_limit(
        queue
            .bandwidth_limit()
            .unwrap_or(config.upload.bandwidth_limit),
    );
    let policy = crate::policy::Policy::new(config.policy.clone());
    let engine = Engine::new(
        queue.clone(),
        session.clone(),
        client.clone(),
        config.upload.clone(),
        dirs.prepared(),
        policy.subscribe(),
    );
    let settle = Duration::from_millis(config.watch.settle_ms);
    let writer_idle = Duration::from_millis(config.watch.writer_idle_ms);
    let watcher = {
        let queue = queue.clone();
        tokio::task::spawn_blocking(move || crate::watch::Watcher::open(queue, settle, writer_idle))
            .await
            .map_err(|e| DaemonError::Http(e.to_string()))??
    };
    // Watches export with `[export]` and `watch.conflict` (`replace` unless changed) as the
    // policy; a watch's profile goes over both.
    watcher.set_profiles(crate::watch::ProfileSettings {
        defaults: config.watch_export().options(),
        profiles: config.profiles(),
    });
    let profiles = config.profiles();
    for (i, folder) in config.watch.folders.iter().enumerate() {
        // Checked at load: a profile named here exists.
        let profile = folder
            .profile
            .as_deref()
            .and_then(|name| profiles.get(name).ok());
        let remote =
            crate::profile::folder(&folder.remote_folder, profile, &config.upload.remote_folder)
                .to_string();
        let overrides = folder.overrides();
        let watch_export = config.watch_export();
        let options = match profile {
            Some(profile) => profile
                .options(watch_export.options(), &overrides)
                .unwrap_or_else(|_| folder.options(&watch_export)),
            None => folder.options(&watch_export),
        };
        let declared = crate::watch::NewWatch {
            local_dir: folder.local_path(),
            remote_folder: remote,
            recursive: folder.recursive,
            include: folder.include.clone(),
            exclude: folder.exclude.clone(),
            options,
            profile: profile.map(|p| p.name.clone()),
            overrides,
            folder_from_profile: folder.remote_folder.is_empty()
                && profile.is_some_and(|p| p.folder.is_some()),
        };
        if let Err(e) = watcher.ensure(declared).await {
            tracing::warn!("watch.folders[{i}] ({}): {e}", folder.local_dir);
        }
    }
    // Copies no job needs any more (a crash between a hand-over's copy and its queueing, or
    // between a Done and the removal) go before `UploadFds` can be called.
    let spool = crate::spool::Spool::new(dirs.spool(), config.spool.max_bytes);
    {
        let (spool, queue) = (spool.clone(), queue.clone());
        tokio::task::spawn_blocking(move || spool.sweep_against(&queue))
            .await
            .map_err(|e| DaemonError::Http(e.to_string()))?;
    }
    tokio::spawn(spool.clone().run(queue.clone(), shutdown.clone()));
    service::serve(
        &conn,
        queue.clone(),
        session.clone(),
        client,
        engine.clone(),
        watcher.clone(),
        policy.clone(),
        spool.clone(),
        &config,
    )
    .await
    .map_err(DaemonError::Bus)?;
    tracing::info!(
        queued = queue.active_len(),
        paused = queue.paused(),
        api = %config.dropbox.api_url,
        credentials = %session.store_status().borrow().clone(),
        "dbxportd is serving {} on the session bus",
        service::BUS_NAME
    );
    let signals = tokio::spawn(service::forward_signals(
        conn.clone(),
        queue.clone(),
        engine.clone(),
        session.clone(),
        watcher.clone(),
        policy.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(policy.clone().run(shutdown.clone()));
    if config.history.keep_finished_days > 0 {
        tokio::spawn(prune_history(
            queue.clone(),
            spool.clone(),
            config.history.keep_finished_days,
            shutdown.clone(),
        ));
    }
    let watching = tokio::spawn(watcher.run(shutdown.clone()));
    if config.notifications.enabled {
        tokio::spawn(crate::notifications::run(
            conn.clone(),
            queue.clone(),
            engine.clone(),
            shutdown.clone(),
        ));
    }
    if config.notifications.job_tray {
        tokio::spawn(crate::jobtray::run(
            conn.clone(),
            queue.clone(),
            engine.clone(),
            policy.subscribe(),
            shutdown.clone(),
        ));
    }
    engine.run(shutdown.clone()).await;
    let _ = watching.await;
    match signals.await {
        Ok(Err(e)) => tracing::warn!("signal forwarding stopped: {e}"),
        Err(e) => tracing::warn!("signal forwarding task failed: {e}"),
        Ok(Ok(())) => {}
    }
    // Whatever sled has not flushed yet (progress notes) goes to disk before exit, with the
    // seal that lets the next start tell an intact database from a damaged one.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = queue.seal() {
            tracing::warn!("the queue database was not sealed: {e}");
        }
        drop(queue)
    })
    .await
    .ok();
    drop(conn);
    tracing::info!("dbxportd stopped");
    Ok(())
}

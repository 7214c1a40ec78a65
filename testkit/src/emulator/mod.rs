//! A Dropbox API v2 emulator: an HTTP/1.1 server on 127.0.0.1 that answers the routes dbxport
//! uses with the same JSON shapes, headers, error envelopes and limits as real Dropbox
//! (Dropbox's HTTP documentation and the official spec, `dropbox/dropbox-api-spec`), so the client, the tests and `dbxportctl demo` can run where
//! Dropbox cannot be reached. Nothing in the daemon knows it talks to an emulator: only the base
//! URL differs.
//!
//! The parts:
//!
//! - `server`: the accept loop, one task per connection, graceful shutdown. Each request is
//!   carried out in a task of its own: a client that goes away once its body has arrived (a
//!   daemon killed) loses the answer, not the rest of the work, as with a real server.
//! - `routes`: dispatch, authentication and Content-Type rules, then one file per route family
//!   (`upload`, `batch` for `start_batch`/`append_batch`, `files`, `sharing`, `users`, `oauth`,
//!   and `control` for `/__emulator/*`).
//! - `store`: files, folders and shared links on disk, with a case-insensitive index and a
//!   change sequence; `listing` turns that sequence into list_folder cursors.
//! - `sessions`: upload sessions, kept on disk part by part (the routes that fill them,
//!   `append_batch` included, are in `routes`).
//! - `auth`: access and refresh tokens, authorization codes.
//! - `faults`: fault injection (5xx, 429, resets, lost answers, expiry, delays, per-entry
//!   failures of the batch routes).
//! - `wire`, `args`, `paths`, `body`: how requests are read and answers are written.
//!
//! The network model, off by default ([`NetworkModel`]): `network` (latency, an upload
//! bandwidth cap) and `throttle` (a per-token rate limit, the namespace lock commits take).
//!
//! State lives under [`EmulatorConfig::root`], so a standalone emulator restarted on the same
//! root keeps its files, sessions and tokens.

mod args;
mod auth;
mod body;
pub mod content_hash;
mod faults;
mod listing;
mod network;
pub(crate) mod paths;
mod routes;
mod server;
mod sessions;
mod store;
mod throttle;
mod wire;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, Faults};
pub use network::{CommitLock, NetworkModel};
pub use throttle::{COMMIT_ROUTES, IN_FLIGHT, NetworkStats};

/// How to start an [`Emulator`].
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Directory where files, sessions and the index live (created if missing).
    pub root: PathBuf,
    /// Port to bind on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// Accept this access token (it never expires unless [`Emulator::expire_access_tokens`]);
    /// `None` mints one.
    pub access_token: Option<String>,
    /// If set, `/oauth2/token` and `/oauth2/authorize` require this `client_id`.
    pub app_key: Option<String>,
}

// By hand, so a logged config never shows the token (ARCHITECTURE.md, invariant 7 holds for test
// tokens too: they end up in the same logs).
impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("root", &self.root)
            .field("port", &self.port)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("app_key", &self.app_key)
            .finish()
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("emulator: I/O error at {path:?} while {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("emulator: cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("emulator: the index at {path:?} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One request as the emulator saw it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RequestRecord {
    /// The URL path, e.g. `/2/files/upload`.
    pub route: String,
    /// When the request head arrived.
    #[serde(skip)]
    pub received: Instant,
    /// The HTTP status answered; 0 if the connection was dropped (or the answer is not out yet).
    pub status: u16,
    /// When the answer's head went out (`None` while it has not, or if the connection was
    /// dropped): with `received`, how many requests were in flight at once.
    #[serde(skip)]
    pub answered: Option<Instant>,
    /// The name of the fault applied (`server_error`, `lose_answer`, …), if any.
    pub fault: Option<String>,
    /// The latency the network model added before the answer (zero when it is off).
    #[serde(skip)]
    pub latency: std::time::Duration,
    /// How much sooner than a Retry-After told to its token this request arrived, if it did
    /// (see [`NetworkStats::early_requests`]).
    #[serde(skip)]
    pub early: Option<std::time::Duration>,
    /// Request-body bytes the emulator has read so far: the whole body once the request was
    /// processed, what arrived before the drop for a connection cut mid-body (a
    /// `ResetMidBody` fault, or a client that went away), and less than the body while it is
    /// still arriving.
    pub body_bytes: u64,
    /// The upload session the request refers to: the cursor's `session_id` of `append_v2` and
    /// `finish`, the id `upload_session/start` created (once it answered). `None` for other
    /// routes, including the batch routes (see `pieces`, `started` and
    /// [`Emulator::session_commits`]).
    pub session: Option<String>,
    /// `append_batch`: each entry of its `Dropbox-API-Arg`, in request order, recorded when
    /// the request arrived (so also for a request cut off or refused), with whether it was
    /// applied. Empty for other routes.
    pub pieces: Vec<RequestPiece>,
    /// `start_batch`: the sessions it created, once it answered. Empty for other routes.
    pub started: Vec<String>,
}

/// One entry of an `append_batch` request: `length` bytes for `session` at `offset`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestPiece {
    pub session: String,
    pub offset: u64,
    pub length: u64,
    pub close: bool,
    /// The piece was stored in its session (false for an entry that failed, and for every
    /// entry of a request refused as a whole or cut off).
    pub applied: bool,
}

/// A session committed to a file (by `finish` or an entry of `finish_batch_v2`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionCommit {
    pub session: String,
    /// The committed file's `path_lower` (after any autorename).
    pub path_lower: String,
}

/// A file currently stored by the emulator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredFile {
    pub path_display: String,
    pub path_lower: String,
    pub size: u64,
    pub content_hash: String,
    pub rev: String,
}

/// A running emulator. Dropping it stops the server too, but only [`Emulator::shutdown`] waits
/// for the connections to finish and for the token file to be written.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
}

/// Everything a request handler needs, shared by all connections.
pub(crate) struct Shared {
    pub(crate) store: store::Store,
    pub(crate) sessions: sessions::Sessions,
    pub(crate) auth: auth::Auth,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    pub(crate) limits: Limits,
    pub(crate) network: network::Network,
    pub(crate) throttle: throttle::Throttle,
}

/// Limits that tests may lower so that "too large" paths can be exercised without 150 MiB bodies.
pub(crate) struct Limits {
    /// Largest request body for upload-style routes.
    pub(crate) max_body: std::sync::atomic::AtomicU64,
}

/// Dropbox's limit for one upload-style request body: 150 MiB.
pub const MAX_BODY: u64 = 150 * 1024 * 1024;

/// The log behind [`Emulator::requests`]. A std mutex: nothing awaits while holding it.
#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<Vec<Logged>>,
    commits: Mutex<Vec<SessionCommit>>,
}

/// A record plus the live counter its body is read through.
struct Logged {
    record: RequestRecord,
    body_bytes: Arc<AtomicU64>,
}

impl RequestLog {
    /// Records an arrival and returns its index, so the status can be filled in later while
    /// the log stays in arrival order, and the counter the request's body is read through.
    pub(crate) fn arrive(
        &self,
        route: &str,
        fault: Option<&Fault>,
        session: Option<String>,
        pieces: Vec<RequestPiece>,
    ) -> (usize, Arc<AtomicU64>) {
        let body_bytes = Arc::new(AtomicU64::new(0));
        let mut records = lock(&self.records);
        records.push(Logged {
            record: RequestRecord {
                route: route.to_owned(),
                received: Instant::now(),
                status: 0,
                answered: None,
                fault: fault.map(|f| f.name().to_owned()),
                latency: std::time::Duration::ZERO,
                early: None,
                body_bytes: 0,
                session,
                pieces,
                started: Vec::new(),
            },
            body_bytes: body_bytes.clone(),
        });
        (records.len() - 1, body_bytes)
    }

    pub(crate) fn answered(&self, index: usize, status: u16) {
        if let Some(logged) = lock(&self.records).get_mut(index) {
            logged.record.status = status;
            logged.record.answered = Some(Instant::now());
        }
    }

    /// Notes the latency the network model added to a request's answer.
    pub(crate) fn delayed(&self, index: usize, latency: std::time::Duration) {
        if let Some(logged) = lock(&self.records).get_mut(index) {
            logged.record.latency = latency;
        }
    }

    /// Notes that a request came sooner than its token was told to, and by how much.
    pub(crate) fn early(&self, index: usize, by: std::time::Duration) {
        if let Some(logged) = lock(&self.records).get_mut(index) {
            logged.record.early = Some(by);
        }
    }

    /// Notes the session a request created (`upload_session/start`).
    pub(crate) fn started(&self, index: usize, session: &str) {
        if let Some(logged) = lock(&self.records).get_mut(index) {
            logged.record.session = Some(session.to_owned());
        }
    }

    /// Notes the sessions a request created (`upload_session/start_batch`).
    pub(crate) fn started_batch(&self, index: usize, sessions: &[String]) {
        if let Some(logged) = lock(&self.records).get_mut(index) {
            logged.record.started = sessions.to_vec();
        }
    }

    /// Notes that entry `entry` of an `append_batch` request was stored.
    pub(crate) fn applied(&self, index: usize, entry: usize) {
        if let Some(piece) = lock(&self.records)
            .get_mut(index)
            .and_then(|logged| logged.record.pieces.get_mut(entry))
        {
            piece.applied = true;
        }
    }

    pub(crate) fn committed(&self, session: &str, path_lower: &str) {
        lock(&self.commits).push(SessionCommit {
            session: session.to_owned(),
            path_lower: path_lower.to_owned(),
        });
    }

    pub(crate) fn all(&self) -> Vec<RequestRecord> {
        lock(&self.records)
            .iter()
            .map(|logged| RequestRecord {
                body_bytes: logged.body_bytes.load(Ordering::Relaxed),
                ..logged.record.clone()
            })
            .collect()
    }

    pub(crate) fn commits(&self) -> Vec<SessionCommit> {
        lock(&self.commits).clone()
    }
}

/// Which entry of the request log a request is; carried in the request's extensions so a
/// handler can add to its record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogIndex(pub(crate) usize);

/// Locks a std mutex, shrugging off poisoning: every critical section here leaves the data
/// consistent before anything that could panic, and one panicked handler must not take the
/// whole emulator down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Emulator {
    /// Opens (or creates) the state under `config.root`, binds 127.0.0.1 and starts serving.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let root = config.root.clone();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|source| EmulatorError::Io {
                path: root.clone(),
                action: "creating the root",
                source,
            })?;
        let store = store::Store::open(&root).await?;
        let sessions = sessions::Sessions::open(&root).await?;
        let auth = auth::Auth::open(&root, config.app_key.clone()).await?;
        let access_token = config
            .access_token
            .unwrap_or_else(auth::new_long_lived_token);
        auth.register_long_lived(&access_token);
        let shared = Arc::new(Shared {
            store,
            sessions,
            auth,
            faults: Faults::default(),
            log: RequestLog::default(),
            limits: Limits {
                max_body: std::sync::atomic::AtomicU64::new(MAX_BODY),
            },
            network: network::Network::default(),
            throttle: throttle::Throttle::default(),
        });
        shared.auth.set_primary(&access_token);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| EmulatorError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                port: config.port,
                source,
            })?;
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::run(listener, shared.clone(), stop.clone()));
        tracing::debug!(%addr, root = %root.display(), "emulator listening");
        Ok(Emulator {
            shared,
            addr,
            stop,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT`: serves the api and content routes and `/oauth2/*` alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configured or minted long-lived access token.
    pub fn access_token(&self) -> String {
        self.shared.auth.primary()
    }

    /// A new refresh token, valid for `grant_type=refresh_token`.
    pub fn mint_refresh_token(&self) -> String {
        self.shared.auth.mint_refresh_token()
    }

    /// Every access token issued so far now answers 401 `expired_access_token`.
    pub fn expire_access_tokens(&self) {
        self.shared.auth.expire_all();
    }

    /// Access tokens minted from now on live this long (default 4 h, like Dropbox's), so tests
    /// can make them expire in seconds.
    pub fn set_access_token_lifetime(&self, lifetime: std::time::Duration) {
        self.shared.auth.set_lifetime(lifetime);
    }

    /// Revokes every refresh token and the access tokens minted from them, as removing the
    /// app's access in the Dropbox web UI does.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.auth.revoke_refresh_tokens();
    }

    /// The fault injector shared with the server.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.all()
    }

    /// Every session committed so far, in commit order: which upload session became which
    /// file, whichever route committed it.
    pub fn session_commits(&self) -> Vec<SessionCommit> {
        self.shared.log.commits()
    }

    /// Every file currently stored, ordered by `path_lower`.
    pub fn files(&self) -> Vec<StoredFile> {
        self.shared.store.files()
    }

    /// The space allocation reported by `users/get_space_usage` and enforced on uploads
    /// (default 2 TiB).
    pub fn set_space_allocated(&self, bytes: u64) {
        self.shared.store.set_allocated(bytes);
    }

    /// Lowers (or raises) the per-request body limit of the upload routes (default 150 MiB), so
    /// that `payload_too_large` can be exercised cheaply.
    pub fn set_max_body(&self, bytes: u64) {
        self.shared
            .limits
            .max_body
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the network model (latency, bandwidth, rate limit, namespace lock); it applies to
    /// requests from now on, and to bodies being read. [`NetworkModel::default`] turns it off.
    pub fn set_network(&self, model: NetworkModel) {
        self.shared.network.set(model);
    }

    /// The network model in force.
    pub fn network(&self) -> NetworkModel {
        self.shared.network.model()
    }

    /// The 429s sent so far and the requests that came sooner than one allowed.
    pub fn network_stats(&self) -> NetworkStats {
        self.shared.throttle.stats()
    }

    /// Requests that arrived sooner than a Retry-After told to their token allowed
    /// ([`NetworkStats::early_requests`]).
    pub fn early_requests(&self) -> u64 {
        self.network_stats().early_requests
    }

    /// Stops accepting, lets in-flight requests finish (for a bounded time), and writes the
    /// token file.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.shared.auth.flush().await;
        tracing::debug!(addr = %self.addr, "emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

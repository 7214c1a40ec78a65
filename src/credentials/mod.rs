//! The Dropbox session: where the login rests, the access token in use, and the account's
//! state as D-Bus shows it.
//!
//! - [`store`]: the [`CredentialStore`] trait and the 0600 file store; [`keyring`]: the Secret
//!   Service store. Which one is used is the config's choice (`credentials.store`); when the
//!   keyring is chosen but not reachable, the session waits for it (and says so), or — only if
//!   `credentials.file_fallback` allows — uses the file, announced loudly (`opening`).
//! - [`oauth`]: the browser login (PKCE) and its loopback redirect listener; `login`: the
//!   session's side of logging in and out.
//! - `tokens`: the access token in use, refreshed and dropped.
//! - `info`: the account's email and quota.
//!
//! [`Session`] hands out access tokens. With a refresh token it refreshes ahead of expiry and
//! when Dropbox says `expired_access_token`, once for all concurrent callers: the refresh runs
//! under one async mutex, and callers queued behind it find the new token. A refused refresh
//! token logs the account out; queued jobs then wait for a new login.

mod info;
pub mod keyring;
mod keyring_changes;
mod login;
pub mod oauth;
mod opening;
pub mod store;
mod tokens;

pub use info::AccountInfo;
pub use store::{CredentialError, CredentialStore, FileStore, StoredCredentials, TokenKind};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, broadcast, watch};

use crate::dropbox::Client;
use crate::secret::Secret;
use login::Pending;
use opening::open_store;

/// What D-Bus and `dbxportctl status` show about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatus {
    LoggedOut { reason: String },
    LoggedIn { account: String },
}

/// The outcome of a browser or pasted-code login, for the `LoginFinished` signal.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub ok: bool,
    pub account: String,
    pub error: String,
}

/// Which store the config asks for.
#[derive(Debug, Clone)]
pub struct StorePolicy {
    pub keyring: bool,
    pub file_fallback: bool,
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not logged in to Dropbox: {0}")]
    NotLoggedIn(String),
    #[error("a refresh token needs the Dropbox app key: set dropbox.app_key in the config")]
    NoAppKey,
    #[error("Dropbox refused the login: {0}")]
    Refused(String),
    /// A token handed over to log in with was refused; the login in use (if any) is kept.
    #[error(
        "Dropbox refused the {kind} token you gave ({why}); {kept}. Check that the whole token \
         was copied, and that a refresh token belongs to this app (dropbox.app_key)",
        kept = if *.logged_in { "the login in use is unchanged" } else { "no account is linked" }
    )]
    NewTokenRefused {
        kind: &'static str,
        why: String,
        logged_in: bool,
    },
    #[error("cannot reach Dropbox: {0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] CredentialError),
    #[error(transparent)]
    Login(#[from] oauth::LoginError),
}

impl SessionError {
    /// Whether waiting and retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, SessionError::Transient(_))
    }
}

struct State {
    credentials: Option<StoredCredentials>,
    /// The access token in use and when it stops working (None: unknown, long-lived).
    access: Option<(Secret, Option<Instant>)>,
}

pub struct Session {
    client: Client,
    app_key: Option<String>,
    authorize_url: String,
    redirect_port: u16,
    policy: StorePolicy,
    store: std::sync::RwLock<Option<Arc<dyn CredentialStore>>>,
    state: Mutex<State>,
    pending: std::sync::Mutex<Option<Pending>>,
    status: watch::Sender<AccountStatus>,
    info: watch::Sender<AccountInfo>,
    /// Where the login rests, or why it cannot be read, in words.
    store_status: watch::Sender<String>,
    logins: broadcast::Sender<LoginOutcome>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("credential store task panicked")
}

impl Session {
    /// Opens the credential store and loads the login. When the keyring is not reachable the
    /// session starts logged out and [`Session::watch_store`] keeps looking for it.
    pub async fn open(
        client: Client,
        config: &crate::config::DropboxConfig,
        policy: StorePolicy,
    ) -> Result<Arc<Session>, CredentialError> {
        let opened = {
            let policy = policy.clone();
            blocking(move || open_store(&policy)).await
        };
        let (store, credentials, store_status, status) = match opened {
            Ok((store, credentials)) => {
                let status = match &credentials {
                    Some(c) => AccountStatus::LoggedIn {
                        account: c.account_name.clone().unwrap_or_default(),
                    },
                    None => AccountStatus::LoggedOut {
                        reason: "no account has been linked yet".into(),
                    },
                };
                let description = store.describe();
                (Some(store), credentials, description, status)
            }
            Err(e @ (CredentialError::Unavailable(_) | CredentialError::Locked(_))) => {
                let reason = format!("waiting for the keyring: {e}");
                tracing::warn!(
                    "{reason}. Start or unlock it, or set credentials.file_fallback = true"
                );
                (
                    None,
                    None,
                    reason.clone(),
                    AccountStatus::LoggedOut { reason },
                )
            }
            Err(e) => return Err(e),
        };
        let (logins, _) = broadcast::channel(16);
        Ok(Arc::new(Session {
            client,
            app_key: config.effective_app_key(),
            authorize_url: config.authorize_url.clone(),
            redirect_port: config.redirect_port,
            policy,
            store: std::sync::RwLock::new(store),
            state: Mutex::new(State {
                credentials,
                access: None,
            }),
            pending: std::sync::Mutex::new(None),
            status: watch::Sender::new(status),
            info: watch::Sender::new(AccountInfo::default()),
            store_status: watch::Sender::new(store_status),
            logins,
        }))
    }

    fn current_store(&self) -> Option<Arc<dyn CredentialStore>> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where the login rests (never the token), or why it cannot be read.
    pub fn store_status(&self) -> watch::Receiver<String> {
        self.store_status.subscribe()
    }

    pub fn status(&self) -> watch::Receiver<AccountStatus> {
        self.status.subscribe()
    }

    pub fn info(&self) -> watch::Receiver<AccountInfo> {
        self.info.subscribe()
    }

    pub fn logins(&self) -> broadcast::Receiver<LoginOutcome> {
        self.logins.subscribe()
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(*self.status.borrow(), AccountStatus::LoggedIn { .. })
    }
}

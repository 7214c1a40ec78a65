//! Where the Dropbox token lives, and the short-lived access token's refresh.
//!
//! Storage sits behind [`CredentialStore`] so that the Secret Service (keyring) can replace the
//! file store without the rest of the daemon noticing. Store calls are blocking (the keyring
//! crates block on D-Bus) and always run on the blocking pool.
//!
//! [`Session`] hands out access tokens. With a refresh token it refreshes ahead of expiry and
//! when Dropbox says `expired_access_token`, once for all concurrent callers: the refresh runs
//! under one async mutex, and callers queued behind it find the new token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::dropbox::{self, AuthError, Client, OAuthError};
use crate::secret::Secret;

/// Refresh this long before the access token's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A long-lived or generated access token, used as it is.
    Access,
    /// An offline refresh token; access tokens are minted from it with the app key.
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCredentials {
    pub kind: TokenKind,
    pub token: Secret,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read credentials from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write credentials to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is unreadable ({message}); log in again")]
    Corrupt { path: PathBuf, message: String },
}

/// Keeps one account's credentials. Blocking; call from the blocking pool.
pub trait CredentialStore: Send + Sync + 'static {
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError>;
    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError>;
    fn delete(&self) -> Result<(), CredentialError>;
    /// Where the credentials are, in words, for logs and status.
    fn describe(&self) -> String;
}

/// A 0600 file in the state directory. Until the keyring store lands this is the only store;
/// the daemon says where the token is kept when it starts.
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(state_dir: &Path) -> FileStore {
        FileStore {
            path: state_dir.join("credentials.json"),
        }
    }
}

impl CredentialStore for FileStore {
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| CredentialError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write_err = |source| CredentialError::Write {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        let json = serde_json::to_vec(credentials).expect("credentials serialize");
        file.write_all(&json)
            .and_then(|_| file.sync_all())
            .map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)?;
        Ok(())
    }

    fn delete(&self) -> Result<(), CredentialError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CredentialError::Write {
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("file {} (mode 0600)", self.path.display())
    }
}

/// What D-Bus and `dbxportctl status` show about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatus {
    LoggedOut { reason: String },
    LoggedIn { account: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not logged in to Dropbox: {0}")]
    NotLoggedIn(String),
    #[error("a refresh token needs the Dropbox app key: set dropbox.app_key in the config")]
    NoAppKey,
    #[error("Dropbox refused the token: {0}")]
    Refused(String),
    #[error("cannot reach Dropbox to refresh the token: {0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] CredentialError),
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
    store: Arc<dyn CredentialStore>,
    state: Mutex<State>,
    status: watch::Sender<AccountStatus>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("credential store task panicked")
}

impl Session {
    /// Loads stored credentials (if any).
    pub async fn load(
        client: Client,
        app_key: Option<String>,
        store: Arc<dyn CredentialStore>,
    ) -> Result<Session, CredentialError> {
        let loader = store.clone();
        let credentials = blocking(move || loader.load()).await?;
        let status = match &credentials {
            Some(c) => AccountStatus::LoggedIn {
                account: c.account_name.clone().unwrap_or_default(),
            },
            None => AccountStatus::LoggedOut {
                reason: "no account has been linked yet".into(),
            },
        };
        Ok(Session {
            client,
            app_key,
            store,
            state: Mutex::new(State {
                credentials,
                access: None,
            }),
            status: watch::Sender::new(status),
        })
    }

    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    pub fn status(&self) -> watch::Receiver<AccountStatus> {
        self.status.subscribe()
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(*self.status.borrow(), AccountStatus::LoggedIn { .. })
    }

    /// A usable access token, refreshed first if it is about to expire.
    pub async fn access_token(&self) -> Result<Secret, SessionError> {
        let mut state = self.state.lock().await;
        if let Some((token, expiry)) = &state.access
            && expiry.is_none_or(|at| Instant::now() + REFRESH_MARGIN < at)
        {
            return Ok(token.clone());
        }
        let credentials = state
            .credentials
            .clone()
            .ok_or_else(|| SessionError::NotLoggedIn("no account has been linked yet".into()))?;
        let access = match credentials.kind {
            TokenKind::Access => (credentials.token.clone(), None),
            TokenKind::Refresh => self.refresh(&credentials.token).await?,
        };
        state.access = Some(access.clone());
        Ok(access.0)
    }

    async fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> Result<(Secret, Option<Instant>), SessionError> {
        let app_key = self.app_key.as_deref().ok_or(SessionError::NoAppKey)?;
        match self
            .client
            .refresh_access_token(app_key, refresh_token)
            .await
        {
            Ok(response) => {
                let expiry = response
                    .expires_in
                    .map(|s| Instant::now() + Duration::from_secs(s));
                tracing::info!("refreshed the Dropbox access token");
                Ok((response.access_token, expiry))
            }
            Err(OAuthError::InvalidGrant(why) | OAuthError::InvalidClient(why)) => {
                let reason =
                    format!("Dropbox no longer accepts the stored login ({why}); log in again");
                self.status.send_replace(AccountStatus::LoggedOut {
                    reason: reason.clone(),
                });
                Err(SessionError::Refused(reason))
            }
            Err(e) => Err(SessionError::Transient(e.to_string())),
        }
    }

    /// Runs one Dropbox request with a usable access token and returns its result. On
    /// `expired_access_token` the token is dropped, refreshed once (shared with every concurrent
    /// caller, see [`Session::token_expired`]) and the request sent once more; a second expiry
    /// is the caller's to handle. The outer error means no token could be had at all.
    ///
    /// The token is handed over by value, so the request's future owns it: a closure taking
    /// `&Secret` (an async closure) cannot yet promise a `Send` future, and the engine's
    /// futures must be `Send`. Callers write `|token| async { let token = token; … }`.
    pub async fn with_token<T, E, F, Fut>(
        &self,
        mut request: F,
    ) -> Result<Result<T, dropbox::Error<E>>, SessionError>
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<T, dropbox::Error<E>>>,
    {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let result = request(token.clone()).await;
            if !refreshed
                && matches!(
                    result,
                    Err(dropbox::Error::Auth(AuthError::ExpiredAccessToken))
                )
            {
                refreshed = true;
                self.token_expired(&token).await;
                continue;
            }
            return Ok(result);
        }
    }

    /// Dropbox said `expired_access_token` for `stale`: drop it so the next
    /// [`Session::access_token`] refreshes (unless a concurrent caller already did).
    pub async fn token_expired(&self, stale: &Secret) {
        let mut state = self.state.lock().await;
        if state
            .access
            .as_ref()
            .is_some_and(|(token, _)| token == stale)
        {
            state.access = None;
        }
    }

    /// Dropbox refused the token for good (`invalid_access_token`): the account is logged out
    /// until someone logs in again. Queued jobs wait; they are not failed.
    pub async fn refused(&self, why: &AuthError) {
        let mut state = self.state.lock().await;
        state.access = None;
        let reason = format!("Dropbox refused the stored token ({why}); log in again");
        tracing::warn!("{reason}");
        self.status
            .send_replace(AccountStatus::LoggedOut { reason });
    }

    /// Links an account from a token handed over by the user, after checking it with Dropbox.
    /// Returns the account's display name.
    pub async fn login_with_token(
        &self,
        kind: TokenKind,
        token: Secret,
    ) -> Result<String, SessionError> {
        let mut state = self.state.lock().await;
        let access = match kind {
            TokenKind::Access => (token.clone(), None),
            TokenKind::Refresh => self.refresh(&token).await?,
        };
        let account = match self.client.get_current_account(&access.0).await {
            Ok(account) => account,
            Err(dropbox::Error::Auth(e)) => return Err(SessionError::Refused(e.to_string())),
            Err(e) => return Err(SessionError::Transient(e.to_string())),
        };
        let name = account.name.display_name.clone();
        let credentials = StoredCredentials {
            kind,
            token,
            account_id: Some(account.account_id.clone()),
            account_name: Some(name.clone()),
        };
        let (store, saved) = (self.store.clone(), credentials.clone());
        blocking(move || store.save(&saved)).await?;
        state.credentials = Some(credentials);
        state.access = Some(access);
        tracing::info!(account = %name, store = %self.store.describe(), "linked a Dropbox account");
        self.status.send_replace(AccountStatus::LoggedIn {
            account: name.clone(),
        });
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_store_round_trip_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        assert!(store.load().unwrap().is_none());
        let creds = StoredCredentials {
            kind: TokenKind::Refresh,
            token: Secret::new("r-123"),
            account_id: Some("dbid:x".into()),
            account_name: None,
        };
        store.save(&creds).unwrap();
        let mode = std::fs::metadata(dir.path().join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.token.expose(), "r-123");
        assert_eq!(back.kind, TokenKind::Refresh);
        store.delete().unwrap();
        assert!(store.load().unwrap().is_none());
        assert!(!store.describe().contains("r-123"));
    }
}

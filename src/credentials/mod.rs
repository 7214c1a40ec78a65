//! The Dropbox session: where the login rests, the access token in use, and the account's
//! state as D-Bus shows it.
//!
//! - [`store`]: the [`CredentialStore`] trait and the 0600 file store; [`keyring`]: the Secret
//!   Service store. Which one is used is the config's choice (`credentials.store`); when the
//!   keyring is chosen but not reachable, the session waits for it (and says so), or — only if
//!   `credentials.file_fallback` allows — uses the file, announced loudly.
//! - [`oauth`]: the browser login (PKCE) and its loopback redirect listener.
//!
//! [`Session`] hands out access tokens. With a refresh token it refreshes ahead of expiry and
//! when Dropbox says `expired_access_token`, once for all concurrent callers: the refresh runs
//! under one async mutex, and callers queued behind it find the new token. A refused refresh
//! token logs the account out; queued jobs then wait for a new login.

pub mod keyring;
mod keyring_changes;
pub mod oauth;
pub mod store;

pub use store::{CredentialError, CredentialStore, FileStore, StoredCredentials, TokenKind};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::dropbox::{self, AuthError, Client, OAuthError, SpaceAllocation};
use crate::secret::Secret;

/// Refresh this long before the access token's stated expiry (at most a quarter of its life).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// What D-Bus and `dbxportctl status` show about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatus {
    LoggedOut { reason: String },
    LoggedIn { account: String },
}

/// Account details shown by `dbxportctl account`, refreshed on login and after batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInfo {
    pub email: String,
    pub used_bytes: u64,
    pub allocated_bytes: u64,
}

impl AccountInfo {
    /// Bytes still free, when the allocation is known.
    pub fn free_bytes(&self) -> Option<u64> {
        (self.allocated_bytes > 0).then(|| self.allocated_bytes.saturating_sub(self.used_bytes))
    }
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

/// Why a refresh gave no access token.
enum Refresh {
    /// Dropbox refused the refresh token (`invalid_grant`, `invalid_client`): the reason.
    Refused(String),
    Other(SessionError),
}

impl From<Refresh> for SessionError {
    fn from(e: Refresh) -> SessionError {
        match e {
            Refresh::Refused(why) => SessionError::Refused(why),
            Refresh::Other(e) => e,
        }
    }
}

struct State {
    credentials: Option<StoredCredentials>,
    /// The access token in use and when it stops working (None: unknown, long-lived).
    access: Option<(Secret, Option<Instant>)>,
}

/// A browser login waiting for its code.
struct Pending {
    request: oauth::LoginRequest,
    /// The redirect listener's task, stopped when a newer login replaces this one.
    listener: Option<tokio::task::JoinHandle<()>>,
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

/// Opens the configured store and reads the login from it. Blocking.
fn open_store(
    policy: &StorePolicy,
) -> Result<(Arc<dyn CredentialStore>, Option<StoredCredentials>), CredentialError> {
    let file = Arc::new(FileStore::new(&policy.state_dir));
    if !policy.keyring {
        let credentials = file.load()?;
        return Ok((file, credentials));
    }
    let keyring = Arc::new(keyring::KeyringStore::new());
    match keyring.load() {
        Ok(Some(credentials)) => Ok((keyring, Some(credentials))),
        Ok(None) => {
            // A login kept in the file (an earlier set-up) moves into the keyring.
            if let Ok(Some(credentials)) = file.load() {
                keyring.save(&credentials)?;
                file.delete()?;
                tracing::info!(
                    "moved the stored Dropbox login from {} into the keyring",
                    file.describe()
                );
                return Ok((keyring, Some(credentials)));
            }
            Ok((keyring, None))
        }
        Err(e @ (CredentialError::Unavailable(_) | CredentialError::Locked(_)))
            if policy.file_fallback =>
        {
            tracing::warn!(
                "{e}. credentials.file_fallback is on, so the Dropbox login is kept in {} instead: \
                 readable by any program running as you",
                file.describe()
            );
            let credentials = file.load()?;
            Ok((file, credentials))
        }
        Err(e) => Err(e),
    }
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

    /// While the keyring is not reachable, looks for it again whenever the Secret Service
    /// appears or changes on the session bus (no polling); once it answers, the stored login
    /// (if any) is used. Returns when the store is open or on `shutdown`.
    pub async fn watch_store(self: Arc<Self>, shutdown: CancellationToken) {
        if self.current_store().is_some() {
            return;
        }
        let mut changes = keyring_changes::KeyringChanges::listen().await;
        // The keyring may have come between the look at start and the subscription: one look
        // now, then one per change.
        let mut looked_since_subscribing = false;
        while self.current_store().is_none() {
            if looked_since_subscribing {
                tokio::select! {
                    _ = changes.next() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            looked_since_subscribing = true;
            let policy = self.policy.clone();
            match blocking(move || open_store(&policy)).await {
                Ok((store, credentials)) => {
                    tracing::info!("the keyring is available: {}", store.describe());
                    // The store first, then the status: whoever sees the new status can use it.
                    let description = store.describe();
                    *self.store.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
                    self.store_status.send_replace(description);
                    let mut state = self.state.lock().await;
                    if state.credentials.is_none() {
                        if let Some(c) = credentials {
                            self.status.send_replace(AccountStatus::LoggedIn {
                                account: c.account_name.clone().unwrap_or_default(),
                            });
                            state.credentials = Some(c);
                        } else {
                            self.status.send_replace(AccountStatus::LoggedOut {
                                reason: "no account has been linked yet".into(),
                            });
                        }
                    }
                }
                Err(e) => {
                    let reason = format!("waiting for the keyring: {e}");
                    if *self.store_status.borrow() != reason {
                        tracing::warn!("{reason}");
                        self.store_status.send_replace(reason.clone());
                        self.status
                            .send_replace(AccountStatus::LoggedOut { reason });
                    }
                }
            }
        }
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

    /// A usable access token, refreshed first if it is about to expire.
    pub async fn access_token(&self) -> Result<Secret, SessionError> {
        let mut state = self.state.lock().await;
        if let Some((token, expiry)) = &state.access
            && expiry.is_none_or(|at| Instant::now() < at)
        {
            return Ok(token.clone());
        }
        let credentials = state.credentials.clone().ok_or_else(|| {
            let reason = match &*self.status.borrow() {
                AccountStatus::LoggedOut { reason } => reason.clone(),
                AccountStatus::LoggedIn { .. } => "no account has been linked yet".into(),
            };
            SessionError::NotLoggedIn(reason)
        })?;
        let access = match credentials.kind {
            TokenKind::Access => (credentials.token.clone(), None),
            TokenKind::Refresh => match self.refresh(&credentials.token).await {
                Err(Refresh::Refused(why)) => {
                    // The stored login itself no longer works: log out; jobs wait for a login.
                    let reason =
                        format!("Dropbox no longer accepts the stored login ({why}); log in again");
                    tracing::warn!("{reason}");
                    self.status.send_replace(AccountStatus::LoggedOut {
                        reason: reason.clone(),
                    });
                    return Err(SessionError::Refused(reason));
                }
                other => other.map_err(SessionError::from)?,
            },
        };
        state.access = Some(access.clone());
        Ok(access.0)
    }

    /// A new access token; its expiry is moved forward by a margin so it is replaced before
    /// Dropbox stops taking it. Changes nothing in the session: what a refusal means depends
    /// on whose token it was (the stored login's, or one handed over to log in with).
    async fn refresh(&self, refresh_token: &Secret) -> Result<(Secret, Option<Instant>), Refresh> {
        let app_key = self
            .app_key
            .as_deref()
            .ok_or(Refresh::Other(SessionError::NoAppKey))?;
        match self
            .client
            .refresh_access_token(app_key, refresh_token)
            .await
        {
            Ok(response) => {
                let expiry = response.expires_in.map(|secs| {
                    let life = Duration::from_secs(secs);
                    Instant::now() + life - REFRESH_MARGIN.min(life / 4)
                });
                tracing::debug!("refreshed the Dropbox access token");
                Ok((response.access_token, expiry))
            }
            Err(OAuthError::InvalidGrant(why) | OAuthError::InvalidClient(why)) => {
                Err(Refresh::Refused(why.to_string()))
            }
            Err(e) => Err(Refresh::Other(SessionError::Transient(e.to_string()))),
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

    /// Runs one Dropbox request with a usable access token and returns its result. On
    /// `expired_access_token` the token is dropped, refreshed once (shared with every concurrent
    /// caller, see [`Session::token_expired`]) and the request sent once more; a second expiry
    /// is the caller's to handle. Any other refusal of the token logs the account out — unless
    /// a newer login replaced that token meanwhile. The outer error means no token could be had.
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
        Fut: std::future::Future<Output = Result<T, dropbox::Error<E>>>,
    {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let result = request(token.clone()).await;
            match &result {
                Err(dropbox::Error::Auth(AuthError::ExpiredAccessToken)) if !refreshed => {
                    refreshed = true;
                    self.token_expired(&token).await;
                    continue;
                }
                Err(dropbox::Error::Auth(why)) if !matches!(why, AuthError::ExpiredAccessToken) => {
                    self.refused(&token, why).await;
                }
                _ => {}
            }
            return Ok(result);
        }
    }

    /// Dropbox refused `stale` for good (`invalid_access_token`, revoked): the account is
    /// logged out until someone logs in again, and queued jobs wait (they are not failed). A
    /// request that was already on its way with an older token does not log out a newer login.
    pub async fn refused(&self, stale: &Secret, why: &AuthError) {
        let mut state = self.state.lock().await;
        let current = match (&state.access, &state.credentials) {
            (Some((token, _)), _) => token == stale,
            (None, Some(c)) => c.kind == TokenKind::Refresh || c.token == *stale,
            (None, None) => false,
        };
        if !current {
            return;
        }
        state.access = None;
        let reason = format!("Dropbox refused the stored login ({why}); log in again");
        tracing::warn!("{reason}");
        self.status
            .send_replace(AccountStatus::LoggedOut { reason });
    }

    /// Links an account from a token handed over by the user, after checking it with Dropbox.
    /// Returns the account's display name.
    /// Nothing of the session changes until the new token has proved itself: a refused one
    /// leaves the login in use (and the queued jobs running on it) as it was, and the error
    /// says it was the new token that was refused.
    pub async fn login_with_token(
        &self,
        kind: TokenKind,
        token: Secret,
    ) -> Result<String, SessionError> {
        let refused = |why: String| SessionError::NewTokenRefused {
            kind: match kind {
                TokenKind::Access => "access",
                TokenKind::Refresh => "refresh",
            },
            why,
            logged_in: self.is_logged_in(),
        };
        let access = match kind {
            TokenKind::Access => (token.clone(), None),
            TokenKind::Refresh => match self.refresh(&token).await {
                Ok(access) => access,
                Err(Refresh::Refused(why)) => return Err(refused(why)),
                Err(Refresh::Other(e)) => return Err(e),
            },
        };
        match self.link(kind, token, access).await {
            Err(SessionError::Refused(why)) => Err(refused(why)),
            other => other,
        }
    }

    /// Checks the account behind `access`, stores the login and makes it current.
    async fn link(
        &self,
        kind: TokenKind,
        token: Secret,
        access: (Secret, Option<Instant>),
    ) -> Result<String, SessionError> {
        let store = self.current_store().ok_or_else(|| {
            SessionError::Store(CredentialError::Unavailable(
                "no place to keep the login yet; start or unlock the keyring, or set credentials.file_fallback = true"
                    .into(),
            ))
        })?;
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
        let saved = credentials.clone();
        blocking(move || store.save(&saved)).await?;
        {
            let mut state = self.state.lock().await;
            state.credentials = Some(credentials);
            state.access = Some(access.clone());
        }
        self.info
            .send_modify(|info| info.email = account.email.clone());
        tracing::info!(account = %name, "linked a Dropbox account");
        self.status.send_replace(AccountStatus::LoggedIn {
            account: name.clone(),
        });
        self.refresh_info().await;
        Ok(name)
    }

    /// Starts a login: returns the page to open. With `redirect`, a one-shot listener on
    /// 127.0.0.1 receives the browser and completes the login by itself (the result comes
    /// through [`Session::logins`]); without it, the user pastes the code shown by Dropbox
    /// into [`Session::finish_login`].
    pub async fn begin_login(self: &Arc<Self>, redirect: bool) -> Result<String, SessionError> {
        let app_key = self.app_key.clone().ok_or(oauth::LoginError::NoAppKey)?;
        let redirect_uri = redirect.then(|| oauth::redirect_uri(self.redirect_port));
        let request = oauth::authorize(&self.authorize_url, &app_key, redirect_uri)?;
        let url = request.url.clone();
        // A newer login replaces an older one, and its listener must be gone (the port free)
        // before binding: awaiting an aborted task waits until its future is dropped.
        let old = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(listener) = old.and_then(|old| old.listener) {
            listener.abort();
            let _ = listener.await;
        }
        let listener = if redirect {
            let socket = oauth::listen(self.redirect_port).await?;
            let state = request.state.clone();
            let session = self.clone();
            let task = tokio::spawn(async move {
                let outcome = match oauth::receive_code(socket, &state).await {
                    Ok(code) => session.finish_login(code).await.map_err(|e| e.to_string()),
                    Err(e) => {
                        session
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .take();
                        Err(e.to_string())
                    }
                };
                if let Err(error) = outcome {
                    tracing::warn!("login failed: {error}");
                    let _ = session.logins.send(LoginOutcome {
                        ok: false,
                        account: String::new(),
                        error,
                    });
                }
            });
            Some(task)
        } else {
            None
        };
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Pending { request, listener });
        Ok(url)
    }

    /// Completes the pending login with an authorization code (pasted by the user, or
    /// delivered by the redirect listener). Returns the account's display name and announces
    /// the outcome through [`Session::logins`].
    pub async fn finish_login(&self, code: Secret) -> Result<String, SessionError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or(oauth::LoginError::NotStarted)?;
        let app_key = self.app_key.clone().ok_or(oauth::LoginError::NoAppKey)?;
        let request = pending.request;
        let result = async {
            let tokens = self
                .client
                .exchange_code(
                    &app_key,
                    &code,
                    &request.verifier,
                    request.redirect_uri.as_deref(),
                )
                .await
                .map_err(|e| match e {
                    OAuthError::InvalidGrant(why) | OAuthError::InvalidClient(why) => {
                        SessionError::Refused(why)
                    }
                    e => SessionError::Transient(e.to_string()),
                })?;
            let expiry = tokens.expires_in.map(|secs| {
                let life = Duration::from_secs(secs);
                Instant::now() + life - REFRESH_MARGIN.min(life / 4)
            });
            let (kind, token) = match tokens.refresh_token {
                Some(refresh) => (TokenKind::Refresh, refresh),
                None => (TokenKind::Access, tokens.access_token.clone()),
            };
            self.link(kind, token, (tokens.access_token, expiry)).await
        }
        .await;
        let outcome = match &result {
            Ok(account) => LoginOutcome {
                ok: true,
                account: account.clone(),
                error: String::new(),
            },
            Err(e) => LoginOutcome {
                ok: false,
                account: String::new(),
                error: e.to_string(),
            },
        };
        let _ = self.logins.send(outcome);
        result
    }

    /// Revokes the login at Dropbox and deletes it from the store. The local copy goes even if
    /// Dropbox cannot be reached; the returned text says whether the revocation happened.
    pub async fn logout(&self) -> Result<String, SessionError> {
        let had = self.state.lock().await.credentials.is_some();
        if !had {
            return Ok("no account was linked".into());
        }
        let revoked = match self.access_token().await {
            Ok(token) => match self.client.revoke(&token).await {
                Ok(()) | Err(dropbox::Error::Auth(_)) => {
                    "the token was revoked at Dropbox".to_string()
                }
                Err(e) => format!(
                    "the token could not be revoked at Dropbox ({e}); remove the app's access in the Dropbox web UI"
                ),
            },
            Err(SessionError::Refused(_)) => "Dropbox had already revoked the token".to_string(),
            Err(e) => format!(
                "the token could not be revoked at Dropbox ({e}); remove the app's access in the Dropbox web UI"
            ),
        };
        if let Some(store) = self.current_store() {
            blocking(move || store.delete()).await?;
        }
        {
            let mut state = self.state.lock().await;
            state.credentials = None;
            state.access = None;
        }
        self.info.send_replace(AccountInfo::default());
        self.status.send_replace(AccountStatus::LoggedOut {
            reason: "logged out".into(),
        });
        tracing::info!("logged out: {revoked}");
        Ok(revoked)
    }

    /// Reads the account's email and quota from Dropbox (on login and after batches).
    pub async fn refresh_info(&self) {
        let Ok(token) = self.access_token().await else {
            return;
        };
        let account = self.client.get_current_account(&token).await;
        let usage = self.client.get_space_usage(&token).await;
        self.info.send_modify(|info| {
            if let Ok(account) = &account {
                info.email = account.email.clone();
            }
            if let Ok(usage) = &usage {
                info.used_bytes = usage.used;
                info.allocated_bytes = match &usage.allocation {
                    SpaceAllocation::Individual { allocated } => *allocated,
                    SpaceAllocation::Team { allocated, .. } => *allocated,
                    _ => 0,
                };
            }
        });
    }
}

//! Logging in and out: with a token handed over by the user, or through the browser (PKCE,
//! the code pasted or received by the loopback listener); the new login is checked with
//! Dropbox before it replaces the one in use. Logging out revokes the token and deletes it.

use std::sync::Arc;
use std::time::Instant;

use super::tokens::{Refresh, expiry};
use super::{
    AccountInfo, AccountStatus, CredentialError, LoginOutcome, Session, SessionError,
    StoredCredentials, TokenKind, blocking, oauth,
};
use crate::dropbox::{self, OAuthError};
use crate::secret::Secret;

/// A browser login waiting for its code.
pub(super) struct Pending {
    request: oauth::LoginRequest,
    /// The redirect listener's task, stopped when a newer login replaces this one.
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
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
            let expiry = expiry(tokens.expires_in);
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
}

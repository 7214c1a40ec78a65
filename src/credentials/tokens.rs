//! The access token in use: handed out, refreshed ahead of its expiry or when Dropbox says it
//! expired (once for all concurrent callers), and dropped when Dropbox refuses it for good.

use std::time::{Duration, Instant};

use super::{AccountStatus, Session, SessionError, TokenKind};
use crate::dropbox::{self, AuthError, OAuthError};
use crate::secret::Secret;

/// Refresh this long before the access token's stated expiry (at most a quarter of its life).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// When a token Dropbox says lives `expires_in` seconds is to be replaced: a margin before its
/// stated end, so it is never sent after Dropbox stops taking it.
pub(super) fn expiry(expires_in: Option<u64>) -> Option<Instant> {
    expires_in.map(|secs| {
        let life = Duration::from_secs(secs);
        Instant::now() + life - REFRESH_MARGIN.min(life / 4)
    })
}

/// Why a refresh gave no access token.
/// Why a refresh gave no access token.
pub(super) enum Refresh {
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

impl Session {
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
    pub(super) async fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> Result<(Secret, Option<Instant>), Refresh> {
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
                let expiry = expiry(response.expires_in);
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
}

//! `io.github.dbxport1.Account`: linking a Dropbox account and showing its state.

use std::sync::Arc;

use zbus::interface;

use super::ServiceError;
use crate::credentials::{AccountStatus, Session, TokenKind};
use crate::secret::Secret;

pub struct Account {
    pub(super) session: Arc<Session>,
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

//! `io.github.dbxport1.Account`: linking a Dropbox account (browser login with PKCE, a pasted
//! code, or a token handed over), logging out, and the account's state and quota.
//!
//! No reply or signal ever carries a token: logins return the account's display name, and
//! `LoginFinished` says only whether it worked and why not.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use super::ServiceError;
use crate::credentials::{AccountStatus, Session, SessionError, TokenKind};
use crate::secret::Secret;

pub struct Account {
    pub(super) session: Arc<Session>,
}

/// The properties that follow the login status, read from it in one place.
struct StatusProperties {
    state: &'static str,
    account_name: String,
    status_message: String,
}

impl Account {
    fn status_properties(&self) -> StatusProperties {
        match &*self.session.status().borrow() {
            AccountStatus::LoggedIn { account } => StatusProperties {
                state: "logged_in",
                account_name: account.clone(),
                status_message: String::new(),
            },
            AccountStatus::LoggedOut { reason } => StatusProperties {
                state: "logged_out",
                account_name: String::new(),
                status_message: reason.clone(),
            },
        }
    }
}

fn login_error(e: SessionError) -> ServiceError {
    match e {
        e if e.is_transient() => ServiceError::Failed(e.to_string()),
        SessionError::Login(e) => ServiceError::Failed(e.to_string()),
        SessionError::Store(e) => ServiceError::Failed(e.to_string()),
        e => ServiceError::LoginRefused(e.to_string()),
    }
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
    /// Starts a browser login and returns the page to open. Options: `no_redirect` (b): the
    /// page then shows a code to paste into FinishLogin (for machines where the browser runs
    /// elsewhere). Otherwise a one-shot listener on 127.0.0.1:`redirect_port` receives the
    /// browser, and LoginFinished tells the outcome. A new call replaces a pending login.
    async fn begin_login(
        &self,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String, ServiceError> {
        let mut redirect = true;
        for (key, v) in &options {
            match key.as_str() {
                "no_redirect" => {
                    redirect = !bool::try_from(&**v).map_err(|_| {
                        ServiceError::InvalidArgument("option no_redirect must be a boolean".into())
                    })?;
                }
                other => {
                    return Err(ServiceError::InvalidArgument(format!(
                        "unknown option {other:?}"
                    )));
                }
            }
        }
        self.session
            .begin_login(redirect)
            .await
            .map_err(login_error)
    }

    /// Completes a pending login with the code Dropbox showed; returns the account's display
    /// name.
    async fn finish_login(&self, code: String) -> Result<String, ServiceError> {
        let code = code.trim();
        if code.is_empty() {
            return Err(ServiceError::InvalidArgument("the code is empty".into()));
        }
        self.session
            .finish_login(Secret::new(code))
            .await
            .map_err(login_error)
    }

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
            .map_err(login_error)
    }

    /// Revokes the login at Dropbox and deletes it from the keyring (or file). Returns what
    /// happened, e.g. whether Dropbox could be told.
    async fn logout(&self) -> Result<String, ServiceError> {
        self.session
            .logout()
            .await
            .map_err(|e| ServiceError::Failed(e.to_string()))
    }

    /// A login started by BeginLogin ended: `ok`, the account's display name, or why not.
    #[zbus(signal)]
    pub async fn login_finished(
        emitter: &SignalEmitter<'_>,
        ok: bool,
        account: &str,
        error: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    async fn logged_in(&self) -> bool {
        self.session.is_logged_in()
    }

    /// `logged_in` or `logged_out`.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.status_properties().state.into()
    }

    /// The linked account's display name, or empty.
    #[zbus(property)]
    async fn account_name(&self) -> String {
        self.status_properties().account_name
    }

    #[zbus(property)]
    async fn email(&self) -> String {
        self.session.info().borrow().email.clone()
    }

    /// Bytes used in the account (0 until known).
    #[zbus(property)]
    async fn used_bytes(&self) -> u64 {
        self.session.info().borrow().used_bytes
    }

    /// The account's quota in bytes (0 until known).
    #[zbus(property)]
    async fn allocated_bytes(&self) -> u64 {
        self.session.info().borrow().allocated_bytes
    }

    /// Why the account is logged out (including "waiting for the keyring: …"), or empty.
    #[zbus(property)]
    async fn status_message(&self) -> String {
        self.status_properties().status_message
    }

    /// Where the login is kept (never the token), or why it cannot be read.
    #[zbus(property)]
    async fn credential_store(&self) -> String {
        self.session.store_status().borrow().clone()
    }
}

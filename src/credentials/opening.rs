//! Which store holds the login: the configured one opened (a login left in the file by an
//! earlier set-up moves into the keyring), the file when the keyring cannot be reached and
//! `credentials.file_fallback` allows it, and the keyring waited for when it does not.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{
    AccountStatus, CredentialError, CredentialStore, FileStore, Session, StorePolicy,
    StoredCredentials, blocking, keyring, keyring_changes,
};

/// Opens the configured store and reads the login from it. Blocking.
pub(super) fn open_store(
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
}

//! The Secret Service store (GNOME Keyring, KWallet, KeePassXC…), through `keyring-core` and
//! the zbus-based Secret Service store, which runs on the same zbus 5 as the rest of the
//! daemon.
//!
//! The store's calls block on D-Bus (zbus's blocking API over a private runtime) and panic if
//! made on a tokio worker thread, so they only ever run on the blocking pool, like every
//! [`CredentialStore`] call. The connection is made on first use and made again after a
//! failure, so a keyring that starts after the daemon (at login) is picked up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyring_core::{CredentialStore as KeyringApi, Entry, Error};

use super::store::{CredentialError, CredentialStore, StoredCredentials};

/// The item's attributes in the keyring: `service` = this, `username` = [`ACCOUNT`].
pub const SERVICE: &str = "io.github.dbxport1";
pub const ACCOUNT: &str = "dropbox";
/// What the user sees in Seahorse or KWallet.
const LABEL: &str = "dbxport: Dropbox login (refresh token)";

#[derive(Default)]
pub struct KeyringStore {
    store: Mutex<Option<Arc<KeyringApi>>>,
}

impl KeyringStore {
    pub fn new() -> KeyringStore {
        KeyringStore::default()
    }

    fn entry(&self) -> Result<Entry, CredentialError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if store.is_none() {
            let connected: Arc<KeyringApi> =
                zbus_secret_service_keyring_store::Store::new().map_err(classify)?;
            *store = Some(connected);
        }
        let modifiers = HashMap::from([("label", LABEL)]);
        Entry::new_in_store_with_modifiers(
            store.as_ref().expect("just set"),
            SERVICE,
            ACCOUNT,
            &modifiers,
        )
        .map_err(classify)
    }

    /// Forgets the connection after a failure, so the next call connects again.
    fn reset_on<T>(&self, result: Result<T, CredentialError>) -> Result<T, CredentialError> {
        if matches!(
            result,
            Err(CredentialError::Unavailable(_) | CredentialError::Keyring(_))
        ) {
            *self.store.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }
}

/// A missing bus or provider means "not available"; a locked keyring is said as such, never
/// taken as a reason to fall back silently.
fn classify(error: Error) -> CredentialError {
    match error {
        Error::PlatformFailure(e) => CredentialError::Unavailable(plain(&e.to_string())),
        Error::NoStorageAccess(e) => CredentialError::Locked(plain(&e.to_string())),
        e => CredentialError::Keyring(plain(&e.to_string())),
    }
}

/// The keyring library's words, as a person reads them: its "SS error:" prefix (Secret
/// Service) dropped, and the one message people meet most said plainly.
fn plain(detail: &str) -> String {
    let detail = detail.trim();
    let detail = detail.strip_prefix("SS error:").unwrap_or(detail).trim();
    if detail.contains("prompt dismissed") {
        return "its unlock prompt was dismissed".into();
    }
    detail.to_string()
}

impl CredentialStore for KeyringStore {
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError> {
        let result = self.entry().and_then(|entry| match entry.get_password() {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                CredentialError::Keyring(format!(
                    "the stored login is unreadable ({e}); log in again"
                ))
            }),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        });
        self.reset_on(result)
    }

    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError> {
        let json = serde_json::to_string(credentials).expect("credentials serialize");
        let result = self
            .entry()
            .and_then(|entry| entry.set_password(&json).map_err(classify));
        self.reset_on(result)
    }

    fn delete(&self) -> Result<(), CredentialError> {
        let result = self
            .entry()
            .and_then(|entry| match entry.delete_credential() {
                Ok(()) | Err(Error::NoEntry) => Ok(()),
                Err(e) => Err(classify(e)),
            });
        self.reset_on(result)
    }

    fn describe(&self) -> String {
        format!("the Secret Service (keyring), item \"{LABEL}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_errors_are_said_plainly_with_the_way_out() {
        let err = CredentialError::Locked(plain("SS error: prompt dismissed"));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the keyring is locked or refused access (its unlock prompt was dismissed)"
            ),
            "{text}"
        );
        assert!(!text.contains("SS error"), "{text}");
        assert!(
            text.contains("dbxportctl config set credentials.store file"),
            "{text}"
        );
        let err = CredentialError::Unavailable(plain("SS error: no result found"));
        assert!(
            err.to_string()
                .starts_with("no keyring answers in this session (no result found)")
        );
    }
}

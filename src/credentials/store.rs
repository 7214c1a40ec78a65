//! Where credentials rest: the [`CredentialStore`] trait, and the 0600 file store used when
//! the configuration asks for it (or allows it as a fallback when no Secret Service runs).
//!
//! Only the refresh token (or a long-lived access token the user generated) is stored; access
//! tokens minted from a refresh token live in memory only. Store calls are blocking and always
//! run on the blocking pool.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

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
    /// No Secret Service answers on the session bus (none installed, or not started yet).
    #[error(
        "no keyring answers in this session ({0}). Start one (GNOME Keyring, KWallet, \
         KeePassXC), or keep the login in a private file instead: dbxportctl config set \
         credentials.store file"
    )]
    Unavailable(String),
    /// The Secret Service answered but refused access (locked, no default collection).
    #[error(
        "the keyring is locked or refused access ({0}). Unlock it (log in to the desktop, or \
         open your keyring app), or keep the login in a private file instead: dbxportctl \
         config set credentials.store file"
    )]
    Locked(String),
    #[error("the keyring failed: {0}")]
    Keyring(String),
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

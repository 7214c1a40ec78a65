//! Tokens: the long-lived access token tests hand to clients, short-lived access tokens minted
//! by `/oauth2/token` (4 h, like Dropbox's), refresh tokens (never expire, not rotated),
//! single-use authorization codes with their PKCE challenge. A token can be unknown or revoked
//! (401 `invalid_access_token`) or expired (401 `expired_access_token`); the client must tell
//! the two apart, so the emulator keeps expired tokens around instead of forgetting them.
//!
//! Tokens are written to `auth.json` (mode 0600) so a restarted standalone emulator still
//! honours a login; codes live in memory only, as they are short-lived anyway. Token values
//! never go into logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{EmulatorError, lock};

/// Lifetime of access tokens from `/oauth2/token`.
pub(crate) const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(14400);

/// Lifetime of an authorization code.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// The scopes a token is granted when the client asks for none.
pub(crate) const ALL_SCOPES: &str = "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AccessToken {
    /// Seconds since the epoch; `None` for long-lived tokens.
    expires_at: Option<u64>,
    /// Expired on purpose (expire_access_tokens, the ExpireToken fault).
    expired: bool,
    /// The refresh token it was minted from, for revocation.
    refresh: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RefreshToken {
    scope: String,
    client_id: Option<String>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Tokens {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

/// A PKCE challenge as sent to `/oauth2/authorize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    S256(String),
    Plain(String),
}

impl Challenge {
    pub(crate) fn verify(&self, verifier: &str) -> bool {
        if !valid_verifier(verifier) {
            return false;
        }
        match self {
            Challenge::Plain(challenge) => challenge == verifier,
            Challenge::S256(challenge) => {
                let digest = Sha256::digest(verifier.as_bytes());
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == *challenge
            }
        }
    }
}

/// RFC 7636: 43–128 characters of `[A-Za-z0-9-._~]`.
pub(crate) fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What `/oauth2/authorize` approved.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) challenge: Option<Challenge>,
    /// `token_access_type=offline`: the exchange also returns a refresh token.
    pub(crate) offline: bool,
    pub(crate) scope: String,
}

struct Code {
    grant: Grant,
    created: Instant,
}

/// The answer of a successful `/oauth2/token` call.
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: String,
    /// Minted from a refresh token: the answer then carries only the access token.
    pub(crate) from_refresh: bool,
}

/// How a presented access token fares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid,
    Expired,
    Invalid,
}

pub(crate) struct Auth {
    path: PathBuf,
    app_key: Option<String>,
    tokens: Mutex<Tokens>,
    codes: Mutex<HashMap<String, Code>>,
    primary: Mutex<String>,
    /// Set when `tokens` changed since the last write of `auth.json`.
    dirty: AtomicBool,
    /// Serializes writes of `auth.json`, so the newest snapshot is written last.
    writing: tokio::sync::Mutex<()>,
    /// Lifetime of newly minted access tokens, in seconds (tests shorten it).
    lifetime_secs: std::sync::atomic::AtomicU64,
}

impl Auth {
    pub(crate) async fn open(root: &Path, app_key: Option<String>) -> Result<Auth, EmulatorError> {
        let path = root.join("auth.json");
        let tokens = match tokio::fs::read(&path).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| EmulatorError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tokens::default(),
            Err(source) => {
                return Err(EmulatorError::Io {
                    path,
                    action: "reading the tokens",
                    source,
                });
            }
        };
        Ok(Auth {
            path,
            app_key,
            tokens: Mutex::new(tokens),
            codes: Mutex::new(HashMap::new()),
            primary: Mutex::new(String::new()),
            dirty: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
            lifetime_secs: std::sync::atomic::AtomicU64::new(ACCESS_TOKEN_LIFETIME.as_secs()),
        })
    }

    pub(crate) fn app_key(&self) -> Option<&str> {
        self.app_key.as_deref()
    }

    /// Accepts `token` as a never-expiring access token.
    pub(crate) fn register_long_lived(&self, token: &str) {
        lock(&self.tokens).access.insert(
            token.to_owned(),
            AccessToken {
                expires_at: None,
                expired: false,
                refresh: None,
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_primary(&self, token: &str) {
        *lock(&self.primary) = token.to_owned();
    }

    pub(crate) fn primary(&self) -> String {
        lock(&self.primary).clone()
    }

    pub(crate) fn check(&self, token: &str) -> TokenState {
        match lock(&self.tokens).access.get(token) {
            None => TokenState::Invalid,
            Some(t) if t.expired || t.expires_at.is_some_and(|at| at <= now_secs()) => {
                TokenState::Expired
            }
            Some(_) => TokenState::Valid,
        }
    }

    pub(crate) fn expire_all(&self) {
        for token in lock(&self.tokens).access.values_mut() {
            token.expired = true;
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub(crate) fn expire(&self, token: &str) {
        if let Some(token) = lock(&self.tokens).access.get_mut(token) {
            token.expired = true;
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Revokes an access token; one minted from a refresh token takes the refresh token and
    /// all its other access tokens with it.
    pub(crate) fn revoke(&self, token: &str) {
        let mut tokens = lock(&self.tokens);
        if let Some(revoked) = tokens.access.remove(token)
            && let Some(refresh) = revoked.refresh
        {
            tokens.refresh.remove(&refresh);
            tokens
                .access
                .retain(|_, t| t.refresh.as_deref() != Some(refresh.as_str()));
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Lifetime of access tokens minted from now on.
    pub(crate) fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_secs
            .store(lifetime.as_secs().max(1), Ordering::Relaxed);
    }

    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs.load(Ordering::Relaxed))
    }

    /// Revokes every refresh token and every access token minted from one, as when the user
    /// removes the app's access in the Dropbox web UI.
    pub(crate) fn revoke_refresh_tokens(&self) {
        let mut tokens = lock(&self.tokens);
        tokens.refresh.clear();
        tokens.access.retain(|_, t| t.refresh.is_none());
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub(crate) fn mint_refresh_token(&self) -> String {
        self.new_refresh_token(ALL_SCOPES.to_owned(), None)
    }

    fn new_refresh_token(&self, scope: String, client_id: Option<String>) -> String {
        let token = random_token(48);
        lock(&self.tokens)
            .refresh
            .insert(token.clone(), RefreshToken { scope, client_id });
        self.dirty.store(true, Ordering::Relaxed);
        token
    }

    fn new_access_token(&self, refresh: Option<String>) -> String {
        let token = format!("sl.u.{}", random_token(96));
        let expires_at = now_secs() + self.lifetime().as_secs();
        lock(&self.tokens).access.insert(
            token.clone(),
            AccessToken {
                expires_at: Some(expires_at),
                expired: false,
                refresh,
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
        token
    }

    /// Records an approved authorization and returns its single-use code.
    pub(crate) fn new_code(&self, grant: Grant) -> String {
        let code = random_token(32);
        let mut codes = lock(&self.codes);
        codes.retain(|_, c| c.created.elapsed() < CODE_LIFETIME);
        codes.insert(
            code.clone(),
            Code {
                grant,
                created: Instant::now(),
            },
        );
        code
    }

    /// Takes a code out (it is single-use, whatever the outcome of the exchange).
    pub(crate) fn take_code(&self, code: &str) -> Option<Grant> {
        lock(&self.codes)
            .remove(code)
            .filter(|c| c.created.elapsed() < CODE_LIFETIME)
            .map(|c| c.grant)
    }

    /// The tokens for an approved grant.
    pub(crate) fn issue_for_grant(&self, grant: &Grant) -> Issued {
        let refresh_token = grant
            .offline
            .then(|| self.new_refresh_token(grant.scope.clone(), Some(grant.client_id.clone())));
        Issued {
            access_token: self.new_access_token(refresh_token.clone()),
            refresh_token,
            scope: grant.scope.clone(),
            from_refresh: false,
        }
    }

    /// A new access token from a refresh token, or `None` if it is unknown or revoked. A
    /// refresh token bound to an app only works for that app.
    pub(crate) fn refresh(&self, refresh_token: &str, client_id: Option<&str>) -> Option<Issued> {
        let scope = {
            let tokens = lock(&self.tokens);
            let known = tokens.refresh.get(refresh_token)?;
            if let (Some(bound), Some(asked)) = (&known.client_id, client_id)
                && bound != asked
            {
                return None;
            }
            known.scope.clone()
        };
        Some(Issued {
            access_token: self.new_access_token(Some(refresh_token.to_owned())),
            refresh_token: None,
            scope,
            from_refresh: true,
        })
    }

    /// Writes `auth.json` if anything changed.
    pub(crate) async fn flush(&self) {
        let _writing = self.writing.lock().await;
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let bytes = match serde_json::to_vec(&*lock(&self.tokens)) {
            Ok(bytes) => bytes,
            Err(_) => return,
        };
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_private(&path, &bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!(path = %self.path.display(), "emulator: could not write the tokens");
            self.dirty.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes a file readable by its owner only, through a temporary file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

/// A fresh long-lived access token (no `sl.` prefix: long-lived tokens never had one).
pub(crate) fn new_long_lived_token() -> String {
    random_token(48)
}

/// `bytes` random bytes, url-safe base64 without padding.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Whether a bearer token is shaped like one at all (else Dropbox answers 400 "malformed").
pub(crate) fn well_formed(token: &str) -> bool {
    !token.is_empty()
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = Challenge::S256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into());
        assert!(challenge.verify(verifier));
        assert!(!challenge.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        assert!(Challenge::Plain(verifier.into()).verify(verifier));
        assert!(!Challenge::Plain("short".into()).verify("short"));
    }
}

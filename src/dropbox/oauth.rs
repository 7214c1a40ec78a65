//! The OAuth 2 token endpoint (`POST {api}/oauth2/token`): what it returns and how it fails.
//!
//! The request is a plain form POST made by [`super::Client`] (its HTTP side is `http`'s
//! `token_request`); the oauth2 crate is not used, because its parse errors carry the raw
//! response body, tokens included (`oauth2::RequestTokenError::Parse` keeps it).
//! Nothing in this file puts response text into an error unless it is Dropbox's own
//! `error_description`, scrubbed of the secrets that were sent.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::Client;
use super::http::status::{describe_json_error, scrub};
use crate::secret::Secret;

/// A successful token response. A refresh response carries no `refresh_token`: keep the old one.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: Secret,
    /// Seconds until `access_token` expires (14400 in practice); `None` for long-lived tokens.
    pub expires_in: Option<u64>,
    /// Only from the authorization-code grant with `token_access_type=offline`.
    pub refresh_token: Option<Secret>,
    pub account_id: Option<String>,
    pub uid: Option<String>,
    /// Space-separated scopes granted.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("account_id", &self.account_id)
            .field("uid", &self.uid)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A failed token request.
#[derive(thiserror::Error, Debug)]
pub enum OAuthError {
    /// The code, verifier or refresh token is invalid, used, expired or revoked: log in again.
    #[error("Dropbox refused the authorization: {0}")]
    InvalidGrant(String),
    /// Dropbox does not accept this app key.
    #[error("Dropbox does not accept this app key: {0}")]
    InvalidClient(String),
    /// Any other OAuth error code (`invalid_request`, ...), or an unexpected status.
    #[error("Dropbox's token endpoint said {error}: {description}")]
    Other { error: String, description: String },
    /// HTTP 5xx.
    #[error("Dropbox's token endpoint had a server error (HTTP {status}); try again later")]
    Server { status: u16 },
    /// HTTP 429.
    #[error("Dropbox's token endpoint asks to slow down; retry in {}", humantime::format_duration(*.retry_after))]
    RateLimited { retry_after: Duration },
    #[error("cannot reach Dropbox: {0}")]
    Transport(String),
    /// A reply that did not parse. The message never quotes the body, which may hold tokens.
    #[error("unexpected reply from Dropbox's token endpoint: {0}")]
    Decode(String),
}

impl OAuthError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OAuthError::Server { .. } | OAuthError::RateLimited { .. } | OAuthError::Transport(_)
        )
    }
}

impl Client {
    /// A new short-lived access token from a refresh token (PKCE app: no secret).
    pub async fn refresh_access_token(
        &self,
        app_key: &str,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", app_key),
        ];
        self.token_request(&form, &[refresh_token.expose()]).await
    }

    /// Trades an authorization code for tokens (PKCE). `redirect_uri` must be the one given to
    /// the authorize page, if one was.
    pub async fn exchange_code(
        &self,
        app_key: &str,
        code: &Secret,
        code_verifier: &Secret,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("client_id", app_key),
            ("code_verifier", code_verifier.expose()),
        ];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        self.token_request(&form, &[code.expose(), code_verifier.expose()])
            .await
    }
}

/// The token endpoint's reply (`status`, `Retry-After`, body) as a result. `secrets` are the
/// values sent in the form, removed from any text that is kept.
pub(crate) fn decode_token_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Result<TokenResponse, OAuthError> {
    match status {
        200..=299 => parse_success(body),
        429 => {
            let seconds = retry_after
                .and_then(|h| h.trim().parse::<u64>().ok())
                .unwrap_or(1);
            Err(OAuthError::RateLimited {
                retry_after: Duration::from_secs(seconds),
            })
        }
        500..=599 => Err(OAuthError::Server { status }),
        _ => Err(parse_failure(status, body, secrets)),
    }
}

fn parse_success(body: &[u8]) -> Result<TokenResponse, OAuthError> {
    #[derive(Deserialize)]
    struct Raw {
        access_token: Secret,
        #[serde(default)]
        expires_in: Option<u64>,
        #[serde(default)]
        refresh_token: Option<Secret>,
        #[serde(default)]
        account_id: Option<String>,
        /// A string in practice; a number is tolerated.
        #[serde(default)]
        uid: Option<serde_json::Value>,
        #[serde(default)]
        scope: Option<String>,
    }
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| OAuthError::Decode(describe_json_error(&e)))?;
    if raw.access_token.is_empty() {
        return Err(OAuthError::Decode(
            "the reply has an empty access_token".into(),
        ));
    }
    let uid = match raw.uid {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: raw.access_token,
        expires_in: raw.expires_in,
        refresh_token: raw.refresh_token,
        account_id: raw.account_id,
        uid,
        scope: raw.scope,
    })
}

fn parse_failure(status: u16, body: &[u8], secrets: &[&str]) -> OAuthError {
    #[derive(Deserialize)]
    struct Raw {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Raw>(body) {
        Ok(raw) => {
            let description = scrub(raw.error_description.as_deref().unwrap_or(""), secrets);
            let error = scrub(&raw.error, secrets);
            match error.as_str() {
                "invalid_grant" => OAuthError::InvalidGrant(description),
                "invalid_client" => OAuthError::InvalidClient(description),
                _ => OAuthError::Other { error, description },
            }
        }
        Err(_) => OAuthError::Other {
            error: format!("HTTP {status}"),
            description: scrub(&String::from_utf8_lossy(body), secrets),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_response_from_reference() {
        // §2.2 success.
        let body = br#"{"access_token": "sl.u.AF...", "token_type": "bearer", "expires_in": 14400,
 "refresh_token": "nlB8...", "scope": "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write",
 "uid": "123456789", "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"}"#;
        let t = decode_token_response(200, None, body, &[]).unwrap();
        assert_eq!(t.access_token.expose(), "sl.u.AF...");
        assert_eq!(t.expires_in, Some(14400));
        assert_eq!(
            t.refresh_token.as_ref().map(Secret::expose),
            Some("nlB8...")
        );
        assert_eq!(t.uid.as_deref(), Some("123456789"));
        assert_eq!(
            t.account_id.as_deref(),
            Some("dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc")
        );
        assert!(t.scope.unwrap().contains("files.content.write"));
        let shown = format!("{:?}", decode_token_response(200, None, body, &[]).unwrap());
        assert!(
            !shown.contains("sl.u.AF") && !shown.contains("nlB8"),
            "{shown}"
        );
    }

    #[test]
    fn refresh_response_has_no_refresh_token() {
        let body = br#"{"access_token": "sl.B2M8", "token_type": "bearer", "expires_in": 14400}"#;
        let t = decode_token_response(200, None, body, &[]).unwrap();
        assert_eq!(t.access_token.expose(), "sl.B2M8");
        assert!(t.refresh_token.is_none());
    }

    #[test]
    fn errors_by_code() {
        let e = decode_token_response(
            400,
            None,
            br#"{"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}"#,
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&e, OAuthError::InvalidGrant(d) if d == "refresh token is invalid or revoked")
        );
        assert!(!e.is_transient());
        let e = decode_token_response(
            400,
            None,
            br#"{"error": "invalid_client", "error_description": "bad app"}"#,
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, OAuthError::InvalidClient(_)));
        let e =
            decode_token_response(400, None, br#"{"error": "invalid_request"}"#, &[]).unwrap_err();
        assert!(matches!(&e, OAuthError::Other { error, .. } if error == "invalid_request"));
        let e = decode_token_response(
            500,
            None,
            br#"{"error": "The server has either erred or is incapable of performing the requested operation."}"#,
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, OAuthError::Server { status: 500 }));
        assert!(e.is_transient());
        let e = decode_token_response(429, Some("30"), b"", &[]).unwrap_err();
        assert!(
            matches!(e, OAuthError::RateLimited { retry_after } if retry_after == Duration::from_secs(30))
        );
    }

    #[test]
    fn no_token_text_in_errors() {
        // A success-shaped reply that does not parse must not be quoted (the oauth2 crate's trap).
        let body = br#"{"access_token": "sl.ACCESS-SECRET", "expires_in": "sl.ACCESS-SECRET2", "refresh_token": "R-SECRET"}"#;
        let e = decode_token_response(200, None, body, &[]).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(matches!(e, OAuthError::Decode(_)));
        assert!(!shown.contains("SECRET"), "{shown}");
        // A description that echoes what was sent is scrubbed.
        let e = decode_token_response(
            400,
            None,
            br#"{"error": "invalid_grant", "error_description": "refresh token R-SECRET is malformed"}"#,
            &["R-SECRET"],
        )
        .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("R-SECRET"));
        let e =
            decode_token_response(401, None, b"R-SECRET unauthorized", &["R-SECRET"]).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("R-SECRET"), "{e:?}");
    }
}

//! The browser login: an authorization-code request with PKCE (S256), and the one-shot
//! loopback listener that receives the browser's redirect.
//!
//! Dropbox matches redirect URIs exactly, port included, so the listener binds the configured
//! port (registered with the app) on 127.0.0.1 only. It answers exactly one request, and a
//! request whose `state` is not ours is refused: it cannot be the browser we sent.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::secret::Secret;

/// How long a started login waits for the browser.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one connection may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head read from the browser.
const MAX_REQUEST: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "dropbox.app_key is not set: create a Dropbox app and put its key in the config (see the README)"
    )]
    NoAppKey,
    #[error("dropbox.authorize_url {0:?} is not a valid URL")]
    BadUrl(String),
    #[error(
        "cannot listen on 127.0.0.1:{port} for the browser's redirect ({reason}); another login may be running, \
         or set dropbox.redirect_port (and register http://127.0.0.1:PORT/ with the app)"
    )]
    Listen { port: u16, reason: String },
    #[error("no login is in progress: start one first")]
    NotStarted,
    #[error("the browser's answer did not come within {} minutes", LOGIN_TIMEOUT.as_secs() / 60)]
    TimedOut,
    #[error(
        "the redirect did not carry this login's state: it was refused (possible cross-site request)"
    )]
    WrongState,
    #[error("Dropbox did not authorize dbxport: {0}")]
    Denied(String),
    #[error("the browser's redirect was not understood: {0}")]
    BadRedirect(String),
    #[error("a newer login replaced this one")]
    Superseded,
}

/// A login waiting for its code: what is needed to exchange it.
#[derive(Debug)]
pub struct LoginRequest {
    /// The page to open in a browser.
    pub url: String,
    pub state: Secret,
    pub verifier: Secret,
    /// `http://127.0.0.1:PORT/`, or None for the paste-the-code flow.
    pub redirect_uri: Option<String>,
}

/// The redirect URI registered with the app for a given port.
pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// Builds the authorize URL: code flow, PKCE S256, offline access (a refresh token), a random
/// state.
pub fn authorize(
    authorize_url: &str,
    app_key: &str,
    redirect_uri: Option<String>,
) -> Result<LoginRequest, LoginError> {
    let auth = AuthUrl::new(authorize_url.to_string())
        .map_err(|_| LoginError::BadUrl(authorize_url.into()))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = BasicClient::new(ClientId::new(app_key.to_string())).set_auth_uri(auth);
    let (url, state) = match &redirect_uri {
        Some(uri) => {
            let redirect =
                RedirectUrl::new(uri.clone()).map_err(|_| LoginError::BadUrl(uri.clone()))?;
            client
                .set_redirect_uri(redirect)
                .authorize_url(CsrfToken::new_random)
                .set_pkce_challenge(challenge)
                .add_extra_param("token_access_type", "offline")
                .url()
        }
        None => client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_extra_param("token_access_type", "offline")
            .url(),
    };
    Ok(LoginRequest {
        url: url.to_string(),
        state: Secret::new(state.secret().clone()),
        verifier: Secret::new(verifier.secret().clone()),
        redirect_uri,
    })
}

/// Binds the redirect listener (loopback only).
pub async fn listen(port: u16) -> Result<TcpListener, LoginError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| LoginError::Listen {
            port,
            reason: e.to_string(),
        })
}

const PAGE_OK: &str = "<!doctype html><meta charset=utf-8><title>dbxport</title>\
<h1>dbxport is linked to your Dropbox</h1><p>You can close this tab.</p>";
const PAGE_FAILED: &str = "<!doctype html><meta charset=utf-8><title>dbxport</title>\
<h1>dbxport was not linked</h1><p>The login did not complete; see dbxportctl for why, and try again.</p>";

/// Answers the one request the browser sends and returns the authorization code. Whatever the
/// request, the listener is closed afterwards.
pub async fn receive_code(listener: TcpListener, state: &Secret) -> Result<Secret, LoginError> {
    let (mut socket, _) = tokio::time::timeout(LOGIN_TIMEOUT, listener.accept())
        .await
        .map_err(|_| LoginError::TimedOut)?
        .map_err(|e| LoginError::BadRedirect(e.to_string()))?;
    drop(listener);
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut socket))
        .await
        .map_err(|_| LoginError::BadRedirect("the browser sent no request".into()))??;
    let outcome = parse_redirect(&head, state);
    let (status, page) = if outcome.is_ok() {
        ("200 OK", PAGE_OK)
    } else {
        ("400 Bad Request", PAGE_FAILED)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{page}",
        page.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
    outcome
}

async fn read_head(socket: &mut tokio::net::TcpStream) -> Result<String, LoginError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST {
            return Err(LoginError::BadRedirect("request too long".into()));
        }
        let n = socket
            .read(&mut chunk)
            .await
            .map_err(|e| LoginError::BadRedirect(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `GET /?code=…&state=… HTTP/1.1` → the code, if the state is ours.
fn parse_redirect(head: &str, state: &Secret) -> Result<Secret, LoginError> {
    let target = head
        .lines()
        .next()
        .and_then(|line| {
            let mut parts = line.split(' ');
            (parts.next() == Some("GET"))
                .then(|| parts.next())
                .flatten()
        })
        .ok_or_else(|| LoginError::BadRedirect("not a GET request".into()))?;
    let url = url::Url::parse(&format!("http://127.0.0.1{target}"))
        .map_err(|e| LoginError::BadRedirect(e.to_string()))?;
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    if query.get("state").map(String::as_str) != Some(state.expose()) {
        return Err(LoginError::WrongState);
    }
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").cloned().unwrap_or_default();
        return Err(LoginError::Denied(
            format!("{error} {description}").trim().to_string(),
        ));
    }
    query
        .get("code")
        .filter(|c| !c.is_empty())
        .map(|c| Secret::new(c.clone()))
        .ok_or_else(|| LoginError::BadRedirect("no code in the redirect".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_asks_for_pkce_and_offline_access() {
        let login = authorize(
            "https://www.dropbox.com/oauth2/authorize",
            "appkey",
            Some(redirect_uri(53682)),
        )
        .unwrap();
        let url = url::Url::parse(&login.url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "appkey");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["token_access_type"], "offline");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:53682/");
        assert_eq!(q["state"], login.state.expose());
        // The challenge is base64url(SHA-256(verifier)), unpadded.
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(login.verifier.expose().as_bytes());
        assert_eq!(
            q["code_challenge"],
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert!((43..=128).contains(&login.verifier.expose().len()));
        let paste = authorize("https://www.dropbox.com/oauth2/authorize", "appkey", None).unwrap();
        assert!(!paste.url.contains("redirect_uri"));
    }

    #[test]
    fn redirects_are_checked() {
        let state = Secret::new("s1");
        let ok = parse_redirect(
            "GET /?code=abc&state=s1 HTTP/1.1\r\nHost: x\r\n\r\n",
            &state,
        )
        .unwrap();
        assert_eq!(ok.expose(), "abc");
        assert!(matches!(
            parse_redirect("GET /?code=abc&state=s2 HTTP/1.1\r\n\r\n", &state),
            Err(LoginError::WrongState)
        ));
        assert!(matches!(
            parse_redirect("GET /?code=abc HTTP/1.1\r\n\r\n", &state),
            Err(LoginError::WrongState)
        ));
        assert!(matches!(
            parse_redirect(
                "GET /?error=access_denied&state=s1 HTTP/1.1\r\n\r\n",
                &state
            ),
            Err(LoginError::Denied(_))
        ));
        assert!(matches!(
            parse_redirect("POST /?code=a&state=s1 HTTP/1.1\r\n\r\n", &state),
            Err(LoginError::BadRedirect(_))
        ));
    }

    #[tokio::test]
    async fn the_listener_answers_one_request_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Secret::new("xyz");
        let server = tokio::spawn(async move { receive_code(listener, &state).await });
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        socket
            .write_all(b"GET /?code=C0DE&state=xyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(server.await.unwrap().unwrap().expose(), "C0DE");
        // Closed after one request.
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        );
    }
}

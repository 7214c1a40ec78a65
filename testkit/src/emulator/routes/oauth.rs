//! OAuth 2: `GET /oauth2/authorize` (approves at once, as if the user clicked Allow, after the
//! checks Dropbox makes on its parameters) and `POST /oauth2/token` (authorization_code with
//! PKCE or a secret, refresh_token). Token errors are 400 JSON `{"error",
//! "error_description"}`, not the API's envelopes.

use std::collections::HashMap;

use super::super::body::Counted;
use base64::Engine;
use hyper::header::{AUTHORIZATION, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::super::Shared;
use super::super::auth::{self, ALL_SCOPES, Challenge, Grant, Issued};
use super::super::body;
use super::super::wire::{self, Body};

/// Longest `state` Dropbox accepts.
const MAX_STATE: usize = 500;

/// Form fields, where a field may repeat only with the same value (the Rust SDK sends
/// `code_verifier` twice, and Dropbox accepts it).
fn form(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut fields = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        match fields.get(key.as_ref()) {
            Some(seen) if *seen != value => {
                return Err(format!("conflicting values for parameter '{key}'"));
            }
            Some(_) => {}
            None => {
                fields.insert(key.into_owned(), value.into_owned());
            }
        }
    }
    Ok(fields)
}

/// `client_id` from the form, or from HTTP Basic `app_key:app_secret`.
fn client_id(
    request_auth: Option<&HeaderValue>,
    fields: &HashMap<String, String>,
) -> Option<String> {
    if let Some(id) = fields.get("client_id") {
        return Some(id.clone());
    }
    let value = request_auth?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(id, _)| id.to_owned())
}

pub(crate) async fn token(shared: &Shared, request: Request<Counted>) -> Response<Body> {
    if request.method() != Method::POST {
        return wire::oauth_error("invalid_request", "the token endpoint only accepts POST");
    }
    let basic = request.headers().get(AUTHORIZATION).cloned();
    let bytes = match body::read_small(request.into_body(), 64 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return wire::oauth_error("invalid_request", "unreadable request body"),
    };
    let fields = match form(&bytes) {
        Ok(fields) => fields,
        Err(description) => return wire::oauth_error("invalid_request", &description),
    };
    let Some(client_id) = client_id(basic.as_ref(), &fields) else {
        return wire::oauth_error("invalid_request", "No client_id provided");
    };
    if shared.auth.app_key().is_some_and(|key| key != client_id) {
        return wire::oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    let issued = match fields.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(shared, &client_id, &fields),
        Some("refresh_token") => match fields.get("refresh_token") {
            None => Err(("invalid_request", "No refresh_token provided")),
            Some(refresh) => shared
                .auth
                .refresh(refresh, Some(&client_id))
                .ok_or(("invalid_grant", "refresh token is invalid or revoked")),
        },
        Some(_) => Err(("unsupported_grant_type", "grant_type is not supported")),
        None => Err(("invalid_request", "No grant_type provided")),
    };
    shared.auth.flush().await;
    match issued {
        Ok(issued) => token_response(shared, issued),
        Err((code, description)) => wire::oauth_error(code, description),
    }
}

fn exchange_code(
    shared: &Shared,
    client_id: &str,
    fields: &HashMap<String, String>,
) -> Result<Issued, (&'static str, &'static str)> {
    let code = fields
        .get("code")
        .ok_or(("invalid_request", "No code provided"))?;
    let grant = shared
        .auth
        .take_code(code)
        .ok_or(("invalid_grant", "code doesn't exist or has expired"))?;
    if grant.client_id != client_id {
        return Err(("invalid_grant", "code was issued to another client"));
    }
    if let Some(redirect) = &grant.redirect_uri
        && fields.get("redirect_uri") != Some(redirect)
    {
        return Err(("invalid_grant", "redirect_uri mismatch"));
    }
    if let Some(challenge) = &grant.challenge {
        let verified = fields
            .get("code_verifier")
            .is_some_and(|verifier| challenge.verify(verifier));
        if !verified {
            return Err(("invalid_grant", "invalid code verifier"));
        }
    }
    Ok(shared.auth.issue_for_grant(&grant))
}

/// §2.2: access token, `bearer`, 14400 s; the refresh token only from an offline code
/// exchange; `scope`, `uid` and `account_id` only from the code exchange.
fn token_response(shared: &Shared, issued: Issued) -> Response<Body> {
    let mut body = Map::new();
    body.insert("access_token".into(), issued.access_token.into());
    body.insert("token_type".into(), "bearer".into());
    body.insert("expires_in".into(), shared.auth.lifetime().as_secs().into());
    if let Some(refresh) = issued.refresh_token {
        body.insert("refresh_token".into(), refresh.into());
    }
    if !issued.from_refresh {
        let identity = shared.store.identity();
        body.insert("scope".into(), issued.scope.into());
        body.insert("uid".into(), identity.uid.into());
        body.insert("account_id".into(), identity.account_id.into());
    }
    wire::json_response(StatusCode::OK, &Value::Object(body))
}

/// Query parameters; a repeated one counts with its first value.
fn query(request: &Request<Counted>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    if let Some(query) = request.uri().query() {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            params
                .entry(key.into_owned())
                .or_insert_with(|| value.into_owned());
        }
    }
    params
}

/// Dropbox requires HTTPS redirect URIs, except on the loopback interface.
fn acceptable_redirect(uri: &str) -> Option<url::Url> {
    let url = url::Url::parse(uri).ok()?;
    let loopback = matches!(
        url.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    );
    (url.scheme() == "https" || (url.scheme() == "http" && loopback)).then_some(url)
}

fn page(status: StatusCode, text: &str) -> Response<Body> {
    wire::text_response(status, text)
}

fn redirect(mut to: url::Url, pairs: &[(&str, &str)]) -> Response<Body> {
    {
        let mut query = to.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
    }
    let mut response = page(StatusCode::FOUND, "");
    if let Ok(location) = HeaderValue::from_str(to.as_str()) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// Approves the authorization at once: a 302 to `redirect_uri?code=…&state=…`, or without a
/// redirect URI a page showing the code to paste.
pub(crate) fn authorize(shared: &Shared, request: Request<Counted>) -> Response<Body> {
    let params = query(&request);
    let get = |key: &str| params.get(key).map(String::as_str);
    // Errors Dropbox shows on its own page: the app or the redirect target cannot be trusted.
    let Some(client_id) = get("client_id").filter(|id| !id.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "Invalid client_id: missing");
    };
    if shared.auth.app_key().is_some_and(|key| key != client_id) {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid client_id: this app does not exist",
        );
    }
    let redirect_to = match get("redirect_uri") {
        None => None,
        Some(uri) => match acceptable_redirect(uri) {
            Some(url) => Some(url),
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Invalid redirect_uri. It must exactly match one of the redirect URIs you've pre-configured for your app (including the path).",
                );
            }
        },
    };
    let state = get("state").unwrap_or("");
    // Other errors go back to the app, as RFC 6749 §4.1.2.1 says.
    let fail = |error: &str, description: &str| match &redirect_to {
        Some(url) => {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if !state.is_empty() {
                pairs.push(("state", state));
            }
            redirect(url.clone(), &pairs)
        }
        None => page(StatusCode::BAD_REQUEST, &format!("{error}: {description}")),
    };
    match get("response_type") {
        Some("code") => {}
        Some("token") => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        _ => return fail("invalid_request", "response_type must be code"),
    }
    if state.len() > MAX_STATE {
        return fail("invalid_request", "state is longer than 500 bytes");
    }
    let offline = match get("token_access_type") {
        None | Some("online") | Some("legacy") => false,
        Some("offline") => true,
        Some(_) => return fail("invalid_request", "unknown token_access_type"),
    };
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
        (Some(challenge), Some("S256")) => {
            let shaped = challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !shaped {
                return fail(
                    "invalid_request",
                    "code_challenge is not a base64url SHA-256",
                );
            }
            Some(Challenge::S256(challenge.to_owned()))
        }
        (Some(challenge), Some("plain") | None) => {
            if !auth::valid_verifier(challenge) {
                return fail("invalid_request", "code_challenge is not a valid verifier");
            }
            Some(Challenge::Plain(challenge.to_owned()))
        }
        (Some(_), Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256 or plain",
            );
        }
    };
    let scope = get("scope")
        .filter(|s| !s.is_empty())
        .unwrap_or(ALL_SCOPES)
        .to_owned();
    let code = shared.auth.new_code(Grant {
        client_id: client_id.to_owned(),
        redirect_uri: get("redirect_uri").map(str::to_owned),
        challenge,
        offline,
        scope,
    });
    match redirect_to {
        Some(url) => {
            let mut pairs = vec![("code", code.as_str())];
            if !state.is_empty() {
                pairs.push(("state", state));
            }
            redirect(url, &pairs)
        }
        None => page(
            StatusCode::OK,
            &format!(
                "Dropbox API emulator: access approved.\n\nEnter this code into your app to finish linking:\n\n{code}\n"
            ),
        ),
    }
}

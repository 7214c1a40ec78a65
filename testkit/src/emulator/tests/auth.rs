//! Tokens and OAuth: the 400/401 envelopes, expiry and refresh, revocation, and the PKCE
//! authorize → token exchange.

use std::collections::HashMap;

use serde_json::json;

use super::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:53682/";

async fn account_with(h: &Harness, authorization: Option<&str>) -> Answer {
    let mut request = h.http.post(h.url("/2/users/get_current_account"));
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    Answer::of(request.send().await.expect("send")).await
}

async fn token_form(h: &Harness, form: &[(&str, &str)]) -> Answer {
    let response = h
        .http
        .post(h.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .expect("send");
    Answer::of(response).await
}

async fn refresh_with(h: &Harness, refresh: &str) -> Answer {
    token_form(
        h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "app"),
        ],
    )
    .await
}

fn oauth_error(answer: &Answer, code: &str) {
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.content_type, "application/json");
    let body = answer.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn credentials_problems_are_400_texts_and_401s() {
    let h = start().await;
    let text = account_with(&h, None).await.bad_request();
    assert!(
        text.starts_with("Error in call to API function \"users/get_current_account\": "),
        "{text}"
    );
    let text = account_with(&h, Some("Basic abc")).await.bad_request();
    assert!(
        text.contains("Expecting \"Bearer <oauth2-access-token>\""),
        "{text}"
    );
    let text = account_with(&h, Some("Bearer not a token!"))
        .await
        .bad_request();
    assert!(
        text.ends_with("The given OAuth 2 access token is malformed."),
        "{text}"
    );
    let error = account_with(&h, Some("Bearer sl.unknown"))
        .await
        .route_error(401, "invalid_access_token/");
    assert_eq!(error, json!({".tag": "invalid_access_token"}));
    let bearer = format!("Bearer {}", h.token);
    account_with(&h, Some(&bearer)).await.ok();
    h.emu.expire_access_tokens();
    let error = account_with(&h, Some(&bearer))
        .await
        .route_error(401, "expired_access_token/");
    assert_eq!(error, json!({".tag": "expired_access_token"}));
    // Every API route checks, upload routes included.
    let answer = h.upload_with(json!({"path": "/a"}), b"a").await;
    answer.route_error(401, "expired_access_token/");
}

#[tokio::test]
async fn expired_token_then_refresh() {
    let mut h = start().await;
    let refresh = h.emu.mint_refresh_token();
    h.emu.expire_access_tokens();
    h.upload_with(json!({"path": "/a"}), b"a")
        .await
        .route_error(401, "expired_access_token/");
    let answer = token_form(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "app"),
        ],
    )
    .await;
    let body = answer.ok();
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "only access_token, token_type, expires_in: {body}"
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 14400);
    assert!(body.get("refresh_token").is_none());
    h.token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert!(h.token.starts_with("sl."));
    h.upload("/after-refresh.txt", b"ok").await;
    // A second refresh works as well: refresh tokens are not rotated.
    token_form(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "app"),
        ],
    )
    .await
    .ok();
    let bad = token_form(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", "app"),
        ],
    )
    .await;
    oauth_error(&bad, "invalid_grant");
}

#[tokio::test]
async fn revoking_a_refreshed_token_revokes_its_family() {
    let h = start().await;
    let refresh = h.emu.mint_refresh_token();
    let mint = || refresh_with(&h, &refresh);
    let first = mint().await.ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let second = mint().await.ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let primary = h.token.clone();
    let response = h
        .http
        .post(h.url("/2/auth/token/revoke"))
        .bearer_auth(&first)
        .send()
        .await
        .expect("send");
    let answer = Answer::of(response).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.body, b"null");
    for token in [&first, &second] {
        let answer = account_with(&h, Some(&format!("Bearer {token}"))).await;
        answer.route_error(401, "invalid_access_token/");
    }
    oauth_error(&mint().await, "invalid_grant");
    // Unrelated tokens are untouched.
    account_with(&h, Some(&format!("Bearer {primary}")))
        .await
        .ok();
}

fn location_params(answer: &Answer) -> (String, HashMap<String, String>) {
    assert_eq!(answer.status, 302, "{}", answer.text());
    let location = answer.headers["location"].to_str().expect("location");
    let url = url::Url::parse(location).expect("url");
    let params = url.query_pairs().into_owned().collect();
    (
        format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        params,
    )
}

async fn authorize(h: &Harness, params: &[(&str, &str)]) -> Answer {
    let response = h
        .http
        .get(url::Url::parse_with_params(&h.url("/oauth2/authorize"), params).expect("url"))
        .send()
        .await
        .expect("send");
    Answer::of(response).await
}

async fn pkce_code(h: &Harness) -> String {
    let answer = authorize(
        h,
        &[
            ("client_id", "my-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("state", "xyz 123"),
            ("token_access_type", "offline"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (target, params) = location_params(&answer);
    assert_eq!(target, "http://127.0.0.1:53682/");
    assert_eq!(params["state"], "xyz 123");
    params["code"].clone()
}

#[tokio::test]
async fn pkce_authorize_then_exchange() {
    let h = start_with(Some("my-app")).await;
    let code = pkce_code(&h).await;
    // The Rust SDK sends code_verifier twice; identical repeats are fine.
    let body = format!(
        "grant_type=authorization_code&code={code}&client_id=my-app&code_verifier={VERIFIER}&code_verifier={VERIFIER}&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let response = h
        .http
        .post(h.url("/oauth2/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    let tokens = Answer::of(response).await.ok();
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 14400);
    assert!(tokens["refresh_token"].is_string());
    assert!(
        tokens["scope"]
            .as_str()
            .expect("scope")
            .contains("files.content.write")
    );
    assert!(tokens["uid"].is_string());
    let account = account_with(
        &h,
        Some(&format!(
            "Bearer {}",
            tokens["access_token"].as_str().expect("token")
        )),
    )
    .await
    .ok();
    assert_eq!(account["account_id"], tokens["account_id"]);
    // Codes are single use.
    let response = h
        .http
        .post(h.url("/oauth2/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    oauth_error(&Answer::of(response).await, "invalid_grant");
    // The refresh token from the exchange works.
    let refreshed = token_form(
        &h,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", "my-app"),
        ],
    )
    .await
    .ok();
    assert!(refreshed["access_token"].is_string());
}

#[tokio::test]
async fn token_exchange_refusals() {
    let h = start_with(Some("my-app")).await;
    let exchange =
        |code: String, verifier: &'static str, redirect: &'static str, client: &'static str| {
            let h = &h;
            async move {
                token_form(
                    h,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("client_id", client),
                        ("code_verifier", verifier),
                        ("redirect_uri", redirect),
                    ],
                )
                .await
            }
        };
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
    oauth_error(
        &exchange(pkce_code(&h).await, wrong, REDIRECT, "my-app").await,
        "invalid_grant",
    );
    oauth_error(
        &exchange(
            pkce_code(&h).await,
            VERIFIER,
            "http://127.0.0.1:9999/",
            "my-app",
        )
        .await,
        "invalid_grant",
    );
    oauth_error(
        &exchange(pkce_code(&h).await, VERIFIER, REDIRECT, "other-app").await,
        "invalid_client",
    );
    oauth_error(
        &exchange("made-up".into(), VERIFIER, REDIRECT, "my-app").await,
        "invalid_grant",
    );
    let conflicting = token_form(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "my-app"),
            ("code_verifier", VERIFIER),
            ("code_verifier", wrong),
        ],
    )
    .await;
    oauth_error(&conflicting, "invalid_request");
    oauth_error(
        &token_form(&h, &[("grant_type", "password"), ("client_id", "my-app")]).await,
        "unsupported_grant_type",
    );
}

#[tokio::test]
async fn authorize_checks_and_paste_page() {
    let h = start_with(Some("my-app")).await;
    let page = authorize(&h, &[("client_id", "my-app"), ("response_type", "code")]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/plain; charset=utf-8");
    let code = page
        .text()
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .expect("code")
        .to_owned();
    // A code without PKCE or redirect URI is exchanged with the client id alone.
    let tokens = token_form(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "my-app"),
        ],
    )
    .await
    .ok();
    assert!(
        tokens.get("refresh_token").is_none(),
        "online access has no refresh token"
    );
    let bad_client = authorize(&h, &[("client_id", "nope"), ("response_type", "code")]).await;
    assert_eq!(bad_client.status, 400);
    let bad_redirect = authorize(
        &h,
        &[
            ("client_id", "my-app"),
            ("response_type", "code"),
            ("redirect_uri", "http://evil.example/cb"),
        ],
    )
    .await;
    assert_eq!(bad_redirect.status, 400);
    let denied = authorize(
        &h,
        &[
            ("client_id", "my-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S512"),
        ],
    )
    .await;
    let (_, params) = location_params(&denied);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "s");
    assert!(!params.contains_key("code"));
}

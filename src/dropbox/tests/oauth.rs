//! The token endpoint on the wire: refresh, code exchange, and errors that leak nothing.

use super::*;

#[tokio::test]
async fn refresh_token_request_and_response() {
    let (api, server) = serve_once(json_ok(
        r#"{"access_token": "sl.NEW-ACCESS", "token_type": "bearer", "expires_in": 14400}"#,
    ))
    .await;
    let refresh = Secret::new("R-REFRESH/+ &=");
    let response = client(api, dead_url().await)
        .refresh_access_token("appkey123", &refresh)
        .await
        .unwrap();
    assert_eq!(response.access_token.expose(), "sl.NEW-ACCESS");
    assert_eq!(response.expires_in, Some(14400));
    assert!(response.refresh_token.is_none());
    assert!(!format!("{response:?}").contains("NEW-ACCESS"));

    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /oauth2/token HTTP/1.1");
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        seen.form_body(),
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), "R-REFRESH/+ &=".into()),
            ("client_id".into(), "appkey123".into()),
        ]
    );
}

#[tokio::test]
async fn exchange_code_request() {
    let (api, server) = serve_once(json_ok(
        r#"{"access_token": "sl.A", "token_type": "bearer", "expires_in": 14400, "refresh_token": "R1",
            "scope": "files.content.write", "uid": "123456789", "account_id": "dbid:x"}"#,
    ))
    .await;
    let response = client(api, dead_url().await)
        .exchange_code(
            "appkey123",
            &Secret::new("CODE-1"),
            &Secret::new("VERIFIER-1"),
            Some("http://localhost:53682/"),
        )
        .await
        .unwrap();
    assert_eq!(
        response.refresh_token.as_ref().map(Secret::expose),
        Some("R1")
    );
    assert_eq!(response.account_id.as_deref(), Some("dbid:x"));
    let seen = server.await.unwrap();
    let form = seen.form_body();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("grant_type"), Some("authorization_code"));
    assert_eq!(field("code"), Some("CODE-1"));
    assert_eq!(field("code_verifier"), Some("VERIFIER-1"));
    assert_eq!(field("client_id"), Some("appkey123"));
    assert_eq!(field("redirect_uri"), Some("http://localhost:53682/"));
}

#[tokio::test]
async fn token_endpoint_invalid_grant_leaks_nothing() {
    let (api, _server) = serve_once(Then::Reply(response(
        "400 Bad Request",
        &[("Content-Type", "application/json")],
        r#"{"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}"#,
    )))
    .await;
    let refresh = Secret::new("R-SECRET-REFRESH");
    let e = client(api, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OAuthError::InvalidGrant(d) if d == "refresh token is invalid or revoked"),
        "{e:?}"
    );
    assert!(!shown(&e).contains("R-SECRET"));

    // A success-shaped reply that fails to parse holds tokens: none may surface.
    let (api, _server) = serve_once(json_ok(
        r#"{"access_token": "sl.LEAKED-ACCESS", "expires_in": "sl.LEAKED-ACCESS", "refresh_token": "R-LEAKED"}"#,
    ))
    .await;
    let e = client(api, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Decode(_)), "{e:?}");
    assert!(
        !shown(&e).contains("LEAKED") && !shown(&e).contains("R-SECRET"),
        "{}",
        shown(&e)
    );

    // A transport failure neither.
    let e = client(dead_url().await, dead_url().await)
        .refresh_access_token("appkey", &refresh)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Transport(_)) && e.is_transient());
    assert!(
        !shown(&e).contains("R-SECRET") && !shown(&e).contains("127.0.0.1"),
        "{}",
        shown(&e)
    );
}

//! Shared links on the wire: create, list, and `shared_link_for` reusing a link.

use super::*;
use crate::dropbox::fixtures::ALREADY_EXISTS;

const ALREADY_EXISTS_BARE: &str = r#"{"error_summary": "shared_link_already_exists/..", "error": {".tag": "shared_link_already_exists"}}"#;

/// A link as `list_shared_links` would list it.
fn listed_link(tag: &str, name: &str, path_lower: &str) -> String {
    let file_fields = if tag == "file" {
        r#", "client_modified": "2024-05-01T12:00:00Z", "server_modified": "2024-05-01T12:00:05Z", "rev": "0123456789", "size": 1"#
    } else {
        ""
    };
    format!(
        r#"{{".tag": "{tag}", "url": "https://www.dropbox.com/scl/x/{name}?dl=0", "name": "{name}", "path_lower": "{path_lower}", "link_permissions": {{"can_revoke": true}}{file_fields}}}"#
    )
}

#[tokio::test]
async fn create_shared_link_request_and_result() {
    let link = r#"{".tag": "folder", "url": "https://www.dropbox.com/scl/fo/abc/Photos?rlkey=xyz&dl=0", "id": "id:f",
                   "name": "Photos", "path_lower": "/photos", "link_permissions": {"resolved_visibility": {".tag": "public"}}}"#;
    let (api, server) = serve_once(json_ok(link)).await;
    let settings = SharedLinkSettings {
        allow_download: Some(true),
        ..SharedLinkSettings::public_viewer()
    };
    let created = client(api, dead_url().await)
        .create_shared_link(&token(), "/Photos", Some(&settings))
        .await
        .unwrap();
    assert!(matches!(&created, SharedLinkMetadata::Folder(f) if f.id.as_deref() == Some("id:f")));
    assert_eq!(
        created.url(),
        "https://www.dropbox.com/scl/fo/abc/Photos?rlkey=xyz&dl=0"
    );
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/sharing/create_shared_link_with_settings HTTP/1.1"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // §3.14's example argument.
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos", "settings": {"audience": {".tag": "public"}, "access": {".tag": "viewer"}, "allow_download": true}})
    );

    // Without settings, none are sent: Dropbox's default link.
    let (api, server) = serve_once(Then::Reply(conflict(ALREADY_EXISTS))).await;
    let e = client(api, dead_url().await)
        .create_shared_link(&token(), "/Photos/a.jpg", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Route(CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(Some(link)))
            if link.path_lower() == Some("/photos/a.jpg")),
        "{e:?}"
    );
    assert_eq!(
        server.await.unwrap().json_body(),
        json!({"path": "/Photos/a.jpg"})
    );
}

#[tokio::test]
async fn list_shared_links_request_and_result() {
    let body = format!(
        r#"{{"links": [{}], "has_more": false}}"#,
        listed_link("file", "a.jpg", "/photos/a.jpg")
    );
    let (api, server) = serve_once(json_ok(&body)).await;
    let arg = ListSharedLinksArg {
        path: Some("/Photos/a.jpg".into()),
        cursor: None,
        direct_only: Some(true),
    };
    let listed = client(api, dead_url().await)
        .list_shared_links(&token(), &arg)
        .await
        .unwrap();
    assert_eq!(listed.links.len(), 1);
    assert_eq!(listed.links[0].name(), "a.jpg");
    let seen = server.await.unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2/sharing/list_shared_links HTTP/1.1"
    );
    assert_eq!(
        seen.json_body(),
        json!({"path": "/Photos/a.jpg", "direct_only": true})
    );

    let (api, _server) = serve_once(Then::Reply(conflict(
        r#"{"error_summary": "reset/.", "error": {".tag": "reset"}}"#,
    )))
    .await;
    let e = client(api, dead_url().await)
        .list_shared_links(
            &token(),
            &ListSharedLinksArg {
                cursor: Some("old".into()),
                ..ListSharedLinksArg::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Route(ListSharedLinksError::Reset)),
        "{e:?}"
    );
}

/// `shared_link_for(path)` against a server that answers with `replies` in turn (and refuses
/// any request beyond them): its result, and the requests the server saw.
async fn shared_link_for(
    replies: Vec<Vec<u8>>,
    path: &str,
) -> (
    Result<SharedLinkMetadata, Error<CreateSharedLinkWithSettingsError>>,
    Vec<Seen>,
) {
    let (api, server) = serve_replies(replies).await;
    let result = client(api, dead_url().await)
        .shared_link_for(&token(), path)
        .await;
    (result, server.await.unwrap())
}

#[tokio::test]
async fn shared_link_for_takes_the_link_from_the_error() {
    // One reply only: a second request (a listing) could not connect and would fail the call.
    let (link, seen) = shared_link_for(vec![conflict(ALREADY_EXISTS)], "/Photos/a.jpg").await;
    assert_eq!(
        link.unwrap().url(),
        "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=xyz&dl=0"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].request_line,
        "POST /2/sharing/create_shared_link_with_settings HTTP/1.1"
    );
    assert_eq!(
        seen[0].json_body(),
        json!({"path": "/Photos/a.jpg", "settings": {"audience": {".tag": "public"}, "access": {".tag": "viewer"}}})
    );
}

#[tokio::test]
async fn shared_link_for_lists_when_the_error_has_no_link() {
    // The parent folder's link comes first: it must not be taken for the file's.
    let listing = format!(
        r#"{{"links": [{}, {}], "has_more": false}}"#,
        listed_link("folder", "Photos", "/photos"),
        listed_link("file", "A.jpg", "/photos/a.jpg")
    );
    let (link, seen) = shared_link_for(
        vec![conflict(ALREADY_EXISTS_BARE), ok_json(&listing)],
        "/Photos/A.jpg",
    )
    .await;
    let link = link.unwrap();
    assert_eq!(link.url(), "https://www.dropbox.com/scl/x/A.jpg?dl=0");
    assert!(matches!(link, SharedLinkMetadata::File(_)));
    assert_eq!(
        seen[1].request_line,
        "POST /2/sharing/list_shared_links HTTP/1.1"
    );
    assert_eq!(
        seen[1].json_body(),
        json!({"path": "/Photos/A.jpg", "direct_only": true})
    );

    let not_found = conflict(
        r#"{"error_summary": "path/not_found/", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#,
    );
    let others_only = format!(
        r#"{{"links": [{}], "has_more": false}}"#,
        listed_link("folder", "Photos", "/photos")
    );
    for (listed, expected) in [
        // Only other items' links: the original error.
        (
            ok_json(&others_only),
            "Route(SharedLinkAlreadyExists(None))",
        ),
        // The item went away in between: that is what is reported.
        (not_found, "Route(Path(NotFound))"),
        // A transient failure of the listing stays transient.
        (
            response("503 Service Unavailable", &[], ""),
            "Server { status: 503 }",
        ),
    ] {
        let (e, _) =
            shared_link_for(vec![conflict(ALREADY_EXISTS_BARE), listed], "/Photos/A.jpg").await;
        let e = e.unwrap_err();
        assert_eq!(format!("{e:?}"), expected);
        assert_eq!(e.is_transient(), expected.starts_with("Server"), "{e:?}");
    }
}

#[tokio::test]
async fn shared_link_for_returns_other_errors_without_listing() {
    let (e, seen) = shared_link_for(
        vec![conflict(
            r#"{"error_summary": "settings_error/not_authorized/", "error": {".tag": "settings_error", "settings_error": {".tag": "not_authorized"}}}"#,
        )],
        "/a.jpg",
    )
    .await;
    let e = e.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Route(CreateSharedLinkWithSettingsError::SettingsError(
                SharedLinkSettingsError::NotAuthorized
            ))
        ),
        "{e:?}"
    );
    assert!(!shown(&e).contains(TOKEN));
    assert_eq!(seen.len(), 1);
}

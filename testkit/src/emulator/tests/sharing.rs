//! Shared links: creation, the nested `shared_link_already_exists`, settings a basic account
//! may not have, and listing.

use serde_json::json;

use super::*;

#[tokio::test]
async fn create_then_already_exists_nests_tagged_metadata() {
    let h = start().await;
    let file = h.upload("/Photos/a b.jpg", b"a").await;
    let link = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/photos/A B.jpg"}),
        )
        .await
        .ok();
    assert_eq!(link[".tag"], "file");
    let url = link["url"].as_str().expect("url");
    assert!(url.starts_with("https://www.dropbox.com/scl/fi/"), "{url}");
    assert!(
        url.contains("/a%20b.jpg?rlkey=") && url.ends_with("&dl=0"),
        "{url}"
    );
    assert_eq!(link["name"], "a b.jpg");
    assert_eq!(link["path_lower"], "/photos/a b.jpg");
    assert_eq!(link["id"], file["id"]);
    assert_eq!(link["rev"], file["rev"]);
    assert_eq!(link["size"], 1);
    let permissions = &link["link_permissions"];
    assert_eq!(
        permissions["resolved_visibility"],
        json!({".tag": "public"})
    );
    for key in [
        "can_revoke",
        "can_set_expiry",
        "can_remove_expiry",
        "allow_download",
        "can_allow_download",
        "can_disallow_download",
        "allow_comments",
        "team_restricts_comments",
    ] {
        assert!(permissions[key].is_boolean(), "{key}");
    }
    assert!(permissions["visibility_policies"].is_array());

    let error = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/Photos/a b.jpg"}),
        )
        .await
        .route_error(409, "shared_link_already_exists/metadata/");
    assert_eq!(
        error,
        json!({".tag": "shared_link_already_exists",
               "shared_link_already_exists": {".tag": "metadata", "metadata": link}})
    );
    // With settings, the existing link may not match, so it is left out.
    let error = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/Photos/a b.jpg", "settings": {"audience": {".tag": "public"}, "access": "viewer"}}),
        )
        .await
        .route_error(409, "shared_link_already_exists/");
    assert_eq!(error, json!({".tag": "shared_link_already_exists"}));
}

#[tokio::test]
async fn settings_a_basic_account_may_not_have() {
    let h = start().await;
    h.upload("/a.jpg", b"a").await;
    for settings in [
        json!({"expires": "2030-01-01T00:00:00Z"}),
        json!({"audience": "team"}),
        json!({"requested_visibility": {".tag": "password"}}),
        json!({"require_password": true, "link_password": "x"}),
        json!({"allow_download": false}),
    ] {
        let error = h
            .rpc(
                "/2/sharing/create_shared_link_with_settings",
                json!({"path": "/a.jpg", "settings": settings}),
            )
            .await
            .route_error(409, "settings_error/not_authorized/");
        assert_eq!(
            error,
            json!({".tag": "settings_error", "settings_error": {".tag": "not_authorized"}})
        );
    }
    h.rpc(
        "/2/sharing/create_shared_link_with_settings",
        json!({"path": "/a.jpg", "settings": {"audience": "galaxy"}}),
    )
    .await
    .bad_request();
    let error = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/missing.jpg"}),
        )
        .await
        .route_error(409, "path/not_found/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );
    // Public viewer settings are fine.
    let link = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/a.jpg", "settings": {"audience": {".tag": "public"}, "access": {".tag": "viewer"}, "allow_download": true}}),
        )
        .await
        .ok();
    assert_eq!(link[".tag"], "file");
}

#[tokio::test]
async fn list_shared_links_by_path_and_all() {
    let h = start().await;
    h.upload("/Album/a.jpg", b"a").await;
    h.upload("/Album/b.jpg", b"b").await;
    let folder = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/Album"}),
        )
        .await
        .ok();
    assert_eq!(folder[".tag"], "folder");
    assert!(
        folder["url"]
            .as_str()
            .expect("url")
            .starts_with("https://www.dropbox.com/scl/fo/")
    );
    let a = h
        .rpc(
            "/2/sharing/create_shared_link_with_settings",
            json!({"path": "/Album/a.jpg"}),
        )
        .await
        .ok();
    let direct = h
        .rpc(
            "/2/sharing/list_shared_links",
            json!({"path": "/album/a.jpg", "direct_only": true}),
        )
        .await
        .ok();
    assert_eq!(direct, json!({"links": [a], "has_more": false}));
    let with_parents = h
        .rpc(
            "/2/sharing/list_shared_links",
            json!({"path": "/Album/a.jpg"}),
        )
        .await
        .ok();
    assert_eq!(with_parents["links"].as_array().expect("links").len(), 2);
    let none = h
        .rpc(
            "/2/sharing/list_shared_links",
            json!({"path": "/Album/b.jpg", "direct_only": true}),
        )
        .await
        .ok();
    assert_eq!(none["links"], json!([]));
    let all = h.rpc("/2/sharing/list_shared_links", json!({})).await.ok();
    assert_eq!(all["links"].as_array().expect("links").len(), 2);
    let cursor = all["cursor"].as_str().expect("cursor");
    h.rpc("/2/sharing/list_shared_links", json!({"cursor": cursor}))
        .await
        .ok();
    h.rpc("/2/sharing/list_shared_links", json!({"cursor": "bogus"}))
        .await
        .route_error(409, "reset/");
    h.rpc("/2/sharing/list_shared_links", json!({"path": "/nope.jpg"}))
        .await
        .route_error(409, "path/not_found/");
    // A deleted item loses its link.
    h.rpc("/2/files/delete_v2", json!({"path": "/Album/a.jpg"}))
        .await
        .ok();
    h.upload("/Album/a.jpg", b"a2").await;
    let after = h
        .rpc(
            "/2/sharing/list_shared_links",
            json!({"path": "/Album/a.jpg", "direct_only": true}),
        )
        .await
        .ok();
    assert_eq!(after["links"], json!([]));
}

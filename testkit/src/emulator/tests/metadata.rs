//! The metadata routes: get_metadata, create_folder_v2, delete_v2, list_folder (+ continue),
//! and the account routes.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

fn names(page: &Value) -> BTreeSet<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e[".tag"].as_str().unwrap_or("?"),
                e["path_display"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn get_metadata_tags_files_and_folders() {
    let h = start().await;
    let uploaded = h.upload("/Photos/a.jpg", b"a").await;
    let m = h.metadata("/photos/A.JPG").await.ok();
    assert_file_metadata(&m, "/Photos/a.jpg", b"a", true);
    let mut untagged = m.clone();
    untagged.as_object_mut().expect("object").remove(".tag");
    assert_eq!(untagged, uploaded);
    let folder = h.metadata("/Photos").await.ok();
    assert_eq!(
        folder
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&[".tag", "name", "path_lower", "path_display", "id"])
    );
    assert_eq!(folder[".tag"], "folder");
    // By id, and by rev.
    let by_id = h.metadata(uploaded["id"].as_str().expect("id")).await.ok();
    assert_eq!(by_id["path_display"], "/Photos/a.jpg");
    let by_rev = h
        .metadata(&format!("rev:{}", uploaded["rev"].as_str().expect("rev")))
        .await
        .ok();
    assert_eq!(by_rev["path_display"], "/Photos/a.jpg");
}

#[tokio::test]
async fn get_metadata_errors() {
    let h = start().await;
    let error = h
        .metadata("/nothing/here.jpg")
        .await
        .route_error(409, "path/not_found/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );
    let text = h.metadata("").await.bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/get_metadata\": request body: path: The root folder is unsupported."
    );
    let error = h
        .metadata("/Photos/")
        .await
        .route_error(409, "path/malformed_path/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "malformed_path"}})
    );
    let text = h.metadata("Photos").await.bad_request();
    assert!(text.contains("did not match pattern"), "{text}");
    // include_deleted shows what was removed.
    h.upload("/gone.txt", b"g").await;
    h.rpc("/2/files/delete_v2", json!({"path": "/gone.txt"}))
        .await
        .ok();
    h.metadata("/gone.txt")
        .await
        .route_error(409, "path/not_found/");
    let deleted = h
        .rpc(
            "/2/files/get_metadata",
            json!({"path": "/gone.txt", "include_deleted": true}),
        )
        .await
        .ok();
    assert_eq!(
        deleted,
        json!({".tag": "deleted", "name": "gone.txt", "path_lower": "/gone.txt", "path_display": "/gone.txt"})
    );
}

#[tokio::test]
async fn rpc_content_type_rules() {
    let h = start().await;
    h.upload("/a.txt", b"a").await;
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain; charset=dropbox-cors-hack",
    ] {
        let response = h
            .http
            .post(h.url("/2/files/get_metadata"))
            .bearer_auth(&h.token)
            .header(CONTENT_TYPE, content_type)
            .body(json!({"path": "/a.txt"}).to_string())
            .send()
            .await
            .expect("send");
        Answer::of(response).await.ok();
    }
    let response = h
        .http
        .post(h.url("/2/files/get_metadata"))
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(json!({"path": "/a.txt"}).to_string())
        .send()
        .await
        .expect("send");
    let text = Answer::of(response).await.bad_request();
    assert!(text.starts_with("Error in call to API function \"files/get_metadata\": Bad HTTP \"Content-Type\" header: \"application/x-www-form-urlencoded\"."), "{text}");
    let response = h
        .http
        .post(h.url("/2/files/get_metadata"))
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    let text = Answer::of(response).await.bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/get_metadata\": request body: could not decode input as JSON"
    );
}

#[tokio::test]
async fn create_folder_v2_shapes() {
    let h = start().await;
    let result = h
        .rpc(
            "/2/files/create_folder_v2",
            json!({"path": "/Photos/2024", "autorename": false}),
        )
        .await
        .ok();
    let metadata = &result["metadata"];
    assert!(
        metadata.get(".tag").is_none(),
        "FolderMetadata has no .tag: {metadata}"
    );
    assert_eq!(metadata["name"], "2024");
    assert_eq!(metadata["path_display"], "/Photos/2024");
    assert_eq!(metadata["path_lower"], "/photos/2024");
    assert!(metadata["id"].as_str().expect("id").starts_with("id:"));
    assert_eq!(
        h.metadata("/photos").await.ok()[".tag"],
        "folder",
        "parents are created"
    );
    let error = h
        .rpc("/2/files/create_folder_v2", json!({"path": "/photos/2024"}))
        .await
        .route_error(409, "path/conflict/folder/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}})
    );
    let renamed = h
        .rpc(
            "/2/files/create_folder_v2",
            json!({"path": "/photos/2024", "autorename": true}),
        )
        .await
        .ok();
    assert_eq!(renamed["metadata"]["path_display"], "/Photos/2024 (1)");
    h.upload("/file.txt", b"f").await;
    let error = h
        .rpc(
            "/2/files/create_folder_v2",
            json!({"path": "/file.txt/sub"}),
        )
        .await
        .route_error(409, "path/conflict/file_ancestor/");
    assert_eq!(error["path"]["conflict"][".tag"], "file_ancestor");
    let error = h
        .rpc("/2/files/create_folder_v2", json!({"path": "/desktop.ini"}))
        .await
        .route_error(409, "path/disallowed_name/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "disallowed_name"}})
    );
    h.rpc("/2/files/create_folder_v2", json!({"path": "id:abc"}))
        .await
        .bad_request();
}

#[tokio::test]
async fn delete_v2_shapes() {
    let h = start().await;
    let uploaded = h.upload("/Old/x.jpg", b"x").await;
    h.upload("/Old/sub/y.jpg", b"y").await;
    let result = h
        .rpc("/2/files/delete_v2", json!({"path": "/old/X.jpg"}))
        .await
        .ok();
    let mut expected = uploaded.clone();
    expected[".tag"] = json!("file");
    assert_eq!(result, json!({"metadata": expected}));
    let error = h
        .rpc("/2/files/delete_v2", json!({"path": "/old/x.jpg"}))
        .await
        .route_error(409, "path_lookup/not_found/");
    assert_eq!(
        error,
        json!({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
    );
    let error = h
        .rpc("/2/files/delete_v2", json!({"path": "/old/"}))
        .await
        .route_error(409, "path_lookup/malformed_path/");
    assert_eq!(error["path_lookup"], json!({".tag": "malformed_path"}));
    // A stale parent_rev refuses; a folder goes with everything in it.
    let y = h.metadata("/old/sub/y.jpg").await.ok();
    let error = h
        .rpc(
            "/2/files/delete_v2",
            json!({"path": "/old/sub/y.jpg", "parent_rev": "0123456789abcdef"}),
        )
        .await
        .route_error(409, "path_write/conflict/file/");
    assert_eq!(error[".tag"], "path_write");
    let result = h
        .rpc("/2/files/delete_v2", json!({"path": "/Old"}))
        .await
        .ok();
    assert_eq!(result["metadata"][".tag"], "folder");
    assert!(h.emu.files().is_empty());
    h.metadata(y["id"].as_str().expect("id"))
        .await
        .route_error(409, "path/not_found/");
}

#[tokio::test]
async fn list_folder_pages_and_recursion() {
    let h = start().await;
    for name in ["a", "b", "c", "d", "e"] {
        h.upload(&format!("/Photos/{name}.jpg"), name.as_bytes())
            .await;
    }
    h.upload("/Photos/Deep/z.jpg", b"z").await;
    h.upload("/top.txt", b"t").await;
    let root = h
        .rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .ok();
    assert_eq!(names(&root), set(&["folder:/Photos", "file:/top.txt"]));
    assert_eq!(root["has_more"], false);
    assert!(root["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    // Pages of 2 cover the folder exactly once.
    let mut seen = BTreeSet::new();
    let mut page = h
        .rpc(
            "/2/files/list_folder",
            json!({"path": "/photos", "limit": 2}),
        )
        .await
        .ok();
    let mut pages = 1;
    loop {
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= 2);
        for e in entries {
            assert!(
                seen.insert(e["path_display"].as_str().expect("path").to_owned()),
                "twice: {e}"
            );
            assert!(e[".tag"] == "file" || e[".tag"] == "folder");
        }
        if page["has_more"] == false {
            break;
        }
        page = h
            .rpc(
                "/2/files/list_folder/continue",
                json!({"cursor": page["cursor"]}),
            )
            .await
            .ok();
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 6);
    let recursive = h
        .rpc(
            "/2/files/list_folder",
            json!({"path": "/Photos", "recursive": true}),
        )
        .await
        .ok();
    assert_eq!(
        names(&recursive).len(),
        8,
        "the folder itself, 5 files, Deep and z.jpg"
    );
    assert!(names(&recursive).contains("file:/Photos/Deep/z.jpg"));
    let everything = h
        .rpc(
            "/2/files/list_folder",
            json!({"path": "", "recursive": true}),
        )
        .await
        .ok();
    assert_eq!(names(&everything).len(), 9);
}

#[tokio::test]
async fn list_folder_errors() {
    let h = start().await;
    h.upload("/file.txt", b"f").await;
    let text = h
        .rpc("/2/files/list_folder", json!({"path": "/"}))
        .await
        .bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/list_folder\": request body: path: Specify the root folder as an empty string rather than as \"/\"."
    );
    for limit in [0, 2001] {
        h.rpc("/2/files/list_folder", json!({"path": "", "limit": limit}))
            .await
            .bad_request();
    }
    let error = h
        .rpc("/2/files/list_folder", json!({"path": "/file.txt"}))
        .await
        .route_error(409, "path/not_folder/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "not_folder"}})
    );
    let error = h
        .rpc("/2/files/list_folder", json!({"path": "/missing"}))
        .await
        .route_error(409, "path/not_found/");
    assert_eq!(
        error,
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );
    for cursor in ["garbage!", "AAAAAAAA", "eyJ4IjoxfQ"] {
        let error = h
            .rpc("/2/files/list_folder/continue", json!({"cursor": cursor}))
            .await
            .route_error(409, "reset/");
        assert_eq!(error, json!({".tag": "reset"}));
    }
}

#[tokio::test]
async fn continue_returns_only_changes() {
    let h = start().await;
    h.upload("/Photos/keep.jpg", b"k").await;
    h.upload("/Photos/change.jpg", b"c1").await;
    h.upload("/Photos/remove.jpg", b"r").await;
    h.upload("/Elsewhere/x.jpg", b"x").await;
    let first = h
        .rpc("/2/files/list_folder", json!({"path": "/Photos"}))
        .await
        .ok();
    assert_eq!(names(&first).len(), 3);
    let cursor = first["cursor"].clone();
    let none = h
        .rpc("/2/files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(none["entries"], json!([]));
    assert_eq!(none["has_more"], false);
    h.upload("/Photos/new.jpg", b"n").await;
    h.upload_with(
        json!({"path": "/Photos/change.jpg", "mode": "overwrite"}),
        b"c2",
    )
    .await
    .ok();
    h.upload_with(
        json!({"path": "/Photos/keep.jpg", "mode": "overwrite"}),
        b"k",
    )
    .await
    .ok();
    h.rpc("/2/files/delete_v2", json!({"path": "/Photos/remove.jpg"}))
        .await
        .ok();
    h.upload("/Elsewhere/y.jpg", b"y").await;
    let changes = h
        .rpc("/2/files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(
        names(&changes),
        set(&[
            "file:/Photos/new.jpg",
            "file:/Photos/change.jpg",
            "deleted:/Photos/remove.jpg"
        ])
    );
    let deleted = changes["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e[".tag"] == "deleted")
        .cloned();
    assert_eq!(
        deleted,
        Some(
            json!({".tag": "deleted", "name": "remove.jpg", "path_lower": "/photos/remove.jpg", "path_display": "/Photos/remove.jpg"})
        )
    );
    // The newest cursor has nothing more.
    let after = h
        .rpc(
            "/2/files/list_folder/continue",
            json!({"cursor": changes["cursor"]}),
        )
        .await
        .ok();
    assert_eq!(after["entries"], json!([]));
    // include_deleted lists what was removed in the first page too.
    let with_deleted = h
        .rpc(
            "/2/files/list_folder",
            json!({"path": "/Photos", "include_deleted": true}),
        )
        .await
        .ok();
    assert!(names(&with_deleted).contains("deleted:/Photos/remove.jpg"));
}

#[tokio::test]
async fn current_account_and_void_arguments() {
    let h = start().await;
    // No body and no Content-Type (Go SDK, curl)…
    let response = h
        .http
        .post(h.url("/2/users/get_current_account"))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("send");
    let account = Answer::of(response).await.ok();
    // …or `null` as JSON (Python and Rust SDKs).
    assert_eq!(
        h.rpc("/2/users/get_current_account", Value::Null)
            .await
            .ok(),
        account
    );
    let id = account["account_id"].as_str().expect("account_id");
    assert!(id.starts_with("dbid:") && id.len() == 40, "{id}");
    assert_eq!(account["account_type"], json!({".tag": "basic"}));
    assert_eq!(account["root_info"][".tag"], "user");
    assert!(account["root_info"]["root_namespace_id"].is_string());
    for key in [
        "given_name",
        "surname",
        "familiar_name",
        "display_name",
        "abbreviated_name",
    ] {
        assert!(account["name"][key].is_string(), "{key}");
    }
    assert!(account["email"].is_string() && account["email_verified"].is_boolean());
    assert_eq!(account["disabled"], false);
    let text = h
        .rpc("/2/users/get_current_account", json!({"x": 1}))
        .await
        .bad_request();
    assert!(
        text.starts_with("Error in call to API function \"users/get_current_account\""),
        "{text}"
    );
    // The namespace id works as a path root.
    h.upload("/ns.txt", b"n").await;
    let ns = account["root_info"]["root_namespace_id"]
        .as_str()
        .expect("ns");
    let m = h.metadata(&format!("ns:{ns}/ns.txt")).await.ok();
    assert_eq!(m["path_display"], "/ns.txt");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = start().await;
    let answer = h.rpc("/2/files/no_such_route", json!({})).await;
    assert_eq!(answer.status, 404);
    let response = h
        .http
        .get(h.url("/2/files/list_folder"))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 405);
}

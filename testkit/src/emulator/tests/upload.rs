//! `files/upload`: result shape, write modes, conflicts, the identical-content rule, paths and
//! the `Dropbox-API-Arg` header.

use serde_json::json;

use super::*;

#[tokio::test]
async fn upload_returns_untagged_file_metadata() {
    let h = start().await;
    let data = b"hello world";
    let m = h
        .upload_with(
            json!({"path": "/Photos/IMG_0001.jpg", "mode": "add", "autorename": false, "mute": false,
                   "strict_conflict": false, "client_modified": "2024-05-01T12:00:00Z"}),
            data,
        )
        .await
        .ok();
    assert_file_metadata(&m, "/Photos/IMG_0001.jpg", data, false);
    assert_eq!(
        m["content_hash"],
        "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
    );
    assert_eq!(m["client_modified"], "2024-05-01T12:00:00Z");
    let stored = h.stored("/photos/img_0001.jpg").expect("stored");
    assert_eq!(stored.rev, m["rev"]);
    assert_eq!(stored.size, 11);
    // The bytes on disk are the bytes sent.
    let blob = std::fs::read(h.dir.path().join("root/blobs").join(&stored.rev)).expect("blob");
    assert_eq!(blob, data);
}

#[tokio::test]
async fn client_modified_defaults_to_server_time() {
    let h = start().await;
    let m = h.upload("/a.txt", b"x").await;
    assert_eq!(m["client_modified"], m["server_modified"]);
}

#[tokio::test]
async fn conflict_under_add_flattens_reason_and_keeps_the_bytes_in_a_session() {
    let h = start().await;
    h.upload("/Photos/a.jpg", b"first").await;
    let answer = h
        .upload_with(json!({"path": "/photos/A.jpg"}), b"second")
        .await;
    let error = answer.route_error(409, "path/conflict/file/");
    assert_eq!(error[".tag"], "path");
    assert_eq!(
        error["reason"],
        json!({".tag": "conflict", "conflict": {".tag": "file"}})
    );
    let session = error["upload_session_id"]
        .as_str()
        .expect("upload_session_id");
    assert!(session.starts_with("pid_upload_session:"), "{session}");
    assert!(error.get("path").is_none());
    // Retrying the commit through the session, without resending the bytes, works.
    let m = h
        .content(
            "/2/files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": 6},
                   "commit": {"path": "/Photos/a.jpg", "mode": "overwrite"}}),
            Vec::new(),
        )
        .await
        .ok();
    assert_file_metadata(&m, "/Photos/a.jpg", b"second", false);
}

#[tokio::test]
async fn identical_content_writes_nothing_even_with_autorename() {
    let h = start().await;
    let first = h.upload("/same.bin", b"identical").await;
    for arg in [
        json!({"path": "/same.bin"}),
        json!({"path": "/SAME.bin", "autorename": true}),
        json!({"path": "/same.bin", "mode": "overwrite", "client_modified": "2020-01-01T00:00:00Z"}),
    ] {
        let again = h.upload_with(arg, b"identical").await.ok();
        assert_eq!(again, first, "metadata must come back unchanged");
    }
    assert_eq!(h.emu.files().len(), 1);
    // strict_conflict turns it into a conflict.
    let answer = h
        .upload_with(
            json!({"path": "/same.bin", "strict_conflict": true}),
            b"identical",
        )
        .await;
    answer.route_error(409, "path/conflict/file/");
}

#[tokio::test]
async fn autorename_numbers_before_the_extension() {
    let h = start().await;
    h.upload("/Docs/report.final.txt", b"v0").await;
    for (n, data) in [(1, b"v1"), (2, b"v2"), (3, b"v3")] {
        let m = h
            .upload_with(
                json!({"path": "/Docs/report.final.txt", "autorename": true}),
                data,
            )
            .await
            .ok();
        assert_eq!(m["name"], format!("report.final ({n}).txt"));
        assert_eq!(m["path_display"], format!("/Docs/report.final ({n}).txt"));
    }
    // A folder in the way is a conflict too, and autorename avoids it the same way.
    let answer = h.upload_with(json!({"path": "/docs"}), b"x").await;
    let error = answer.route_error(409, "path/conflict/folder/");
    assert_eq!(error["reason"]["conflict"][".tag"], "folder");
    let m = h
        .upload_with(json!({"path": "/docs", "autorename": true}), b"x")
        .await
        .ok();
    assert_eq!(m["path_display"], "/docs (1)");
}

#[tokio::test]
async fn overwrite_and_update_modes() {
    let h = start().await;
    let v1 = h.upload("/f.txt", b"one").await;
    let v2 = h
        .upload_with(
            json!({"path": "/f.txt", "mode": {".tag": "overwrite"}}),
            b"two",
        )
        .await
        .ok();
    assert_ne!(v2["rev"], v1["rev"]);
    assert_eq!(v2["id"], v1["id"], "an overwritten file keeps its id");
    let v3 = h
        .upload_with(
            json!({"path": "/f.txt", "mode": {".tag": "update", "update": v2["rev"]}}),
            b"three",
        )
        .await
        .ok();
    assert_eq!(v3["size"], 5);
    // A stale rev is a conflict; with autorename it becomes a conflicted copy.
    let stale = json!({".tag": "update", "update": v1["rev"]});
    let answer = h
        .upload_with(json!({"path": "/f.txt", "mode": stale}), b"four")
        .await;
    answer.route_error(409, "path/conflict/file/");
    let copy = h
        .upload_with(
            json!({"path": "/f.txt", "mode": stale, "autorename": true}),
            b"four",
        )
        .await
        .ok();
    assert_eq!(copy["path_display"], "/f (conflicted copy).txt");
    // update on a missing file writes it, unless strict_conflict.
    let rev = json!({".tag": "update", "update": "0123456789"});
    h.upload_with(json!({"path": "/new.txt", "mode": rev}), b"n")
        .await
        .ok();
    let answer = h
        .upload_with(
            json!({"path": "/new2.txt", "mode": rev, "strict_conflict": true}),
            b"n",
        )
        .await;
    answer.route_error(409, "path/conflict/file/");
    // "update" as a bare string has no rev: a 400.
    let text = h
        .upload_with(json!({"path": "/f.txt", "mode": "update"}), b"x")
        .await
        .bad_request();
    assert!(
        text.starts_with(
            "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": "
        ),
        "{text}"
    );
}

#[tokio::test]
async fn content_hash_argument_covers_the_body() {
    let h = start().await;
    let data = super::bytes(5 * 1024 * 1024, 3);
    let answer = h
        .upload_with(
            json!({"path": "/x.bin", "content_hash": content_hash(b"other")}),
            &data,
        )
        .await;
    let error = answer.route_error(409, "content_hash_mismatch/");
    assert_eq!(error, json!({".tag": "content_hash_mismatch"}));
    assert!(h.emu.files().is_empty());
    let m = h
        .upload_with(
            json!({"path": "/x.bin", "content_hash": content_hash(&data)}),
            &data,
        )
        .await
        .ok();
    assert_eq!(m["content_hash"], content_hash(&data));
    // Not 64 hex characters: the argument does not match its pattern.
    h.upload_with(json!({"path": "/y.bin", "content_hash": "abc"}), b"y")
        .await
        .bad_request();
}

#[tokio::test]
async fn paths_are_case_insensitive_and_case_preserving() {
    let h = start().await;
    h.upload("/Photos/2024/A.JPG", b"a").await;
    let m = h.upload("/PHOTOS/2024/b.jpg", b"b").await;
    assert_eq!(
        m["path_display"], "/Photos/2024/b.jpg",
        "ancestors keep their stored case"
    );
    assert_eq!(m["path_lower"], "/photos/2024/b.jpg");
    let m = h.metadata("/photos/2024/a.jpg").await.ok();
    assert_eq!(m["path_display"], "/Photos/2024/A.JPG");
    assert_eq!(m[".tag"], "file");
    // Overwriting under another case keeps the stored name.
    let m = h
        .upload_with(
            json!({"path": "/photos/2024/a.jpg", "mode": "overwrite"}),
            b"a2",
        )
        .await
        .ok();
    assert_eq!(m["path_display"], "/Photos/2024/A.JPG");
    assert_eq!(h.emu.files().len(), 2);
}

#[tokio::test]
async fn escaped_and_raw_non_ascii_arguments_round_trip() {
    let h = start().await;
    let path = "/Photos/2024/Café 😀.jpg";
    let escaped = header_safe(&json!({"path": path}));
    assert!(
        escaped.contains("Caf\\u00e9 \\ud83d\\ude00.jpg"),
        "{escaped}"
    );
    assert!(escaped.is_ascii());
    let answer = Answer::of(
        h.content_request("/2/files/upload", &escaped, b"emoji".to_vec())
            .send()
            .await
            .expect("send"),
    )
    .await;
    let m = answer.ok();
    assert_eq!(m["path_display"], path);
    assert_eq!(m["name"], "Café 😀.jpg");
    assert_eq!(m["path_lower"], "/photos/2024/café 😀.jpg");
    // Raw UTF-8 bytes in the header are accepted too, and name the same file.
    let raw = json!({"path": "/photos/2024/CAFÉ 😀.jpg", "mode": "overwrite"}).to_string();
    let response = h
        .http
        .post(h.url("/2/files/upload"))
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(
            "Dropbox-API-Arg",
            reqwest::header::HeaderValue::from_bytes(raw.as_bytes()).expect("header"),
        )
        .body(b"emoji2".to_vec())
        .send()
        .await
        .expect("send");
    let m = Answer::of(response).await.ok();
    assert_eq!(m["path_display"], path);
    assert_eq!(h.emu.files().len(), 1);
}

#[tokio::test]
async fn invalid_utf8_in_the_header_is_a_400() {
    let h = start().await;
    let response = h
        .http
        .post(h.url("/2/files/upload"))
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(
            "Dropbox-API-Arg",
            reqwest::header::HeaderValue::from_bytes(b"{\"path\": \"/caf\xe9.jpg\"}")
                .expect("header"),
        )
        .body(b"x".to_vec())
        .send()
        .await
        .expect("send");
    let text = Answer::of(response).await.bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": could not decode input as JSON"
    );
}

#[tokio::test]
async fn argument_errors_are_400_texts() {
    let h = start().await;
    let text = h
        .upload_with(json!({"path": "photo.jpg"}), b"x")
        .await
        .bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": path: 'photo.jpg' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'"
    );
    let text = h
        .upload_with(json!({"mode": "add"}), b"x")
        .await
        .bad_request();
    assert!(text.contains("missing required field 'path'"), "{text}");
    let text = h
        .upload_with(
            json!({"path": "/a", "client_modified": "2024-05-01T12:00:00.123Z"}),
            b"x",
        )
        .await
        .bad_request();
    assert!(text.contains("client_modified"), "{text}");
    // No argument at all.
    let response = h
        .http
        .post(h.url("/2/files/upload"))
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(b"x".to_vec())
        .send()
        .await
        .expect("send");
    let text = Answer::of(response).await.bad_request();
    assert!(text.contains("Dropbox-API-Arg"), "{text}");
    // The argument may come as the `arg` URL parameter instead.
    let arg = json!({"path": "/q.txt"}).to_string();
    let response = h
        .http
        .post(
            url::Url::parse_with_params(&h.url("/2/files/upload"), [("arg", arg.as_str())])
                .expect("url"),
        )
        .bearer_auth(&h.token)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(b"q".to_vec())
        .send()
        .await
        .expect("send");
    assert_file_metadata(&Answer::of(response).await.ok(), "/q.txt", b"q", false);
}

#[tokio::test]
async fn upload_content_type_rules() {
    let h = start().await;
    let arg = header_safe(&json!({"path": "/ct.txt"}));
    let send = |content_type: Option<&'static str>| {
        let mut request = h
            .http
            .post(h.url("/2/files/upload"))
            .bearer_auth(&h.token)
            .header("Dropbox-API-Arg", &arg)
            .body(b"x".to_vec());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        async move { Answer::of(request.send().await.expect("send")).await }
    };
    let text = send(Some("application/json")).await.bad_request();
    assert_eq!(
        text,
        "Error in call to API function \"files/upload\": Bad HTTP \"Content-Type\" header: \"application/json\".  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
    );
    send(None).await.bad_request();
    send(Some("text/plain")).await.bad_request();
    assert!(h.emu.files().is_empty());
    send(Some("text/plain; charset=dropbox-cors-hack"))
        .await
        .ok();
}

#[tokio::test]
async fn malformed_and_refused_paths_are_the_routes_409() {
    let h = start().await;
    for (path, summary, tag) in [
        ("/Photos/", "path/malformed_path/", "malformed_path"),
        ("/Photos/a.jpg ", "path/malformed_path/", "malformed_path"),
        ("/a//b.jpg", "path/malformed_path/", "malformed_path"),
        (
            "/Photos/Thumbs.db",
            "path/disallowed_name/",
            "disallowed_name",
        ),
        ("/.DS_Store", "path/disallowed_name/", "disallowed_name"),
    ] {
        let answer = h.upload_with(json!({"path": path}), b"x").await;
        let error = answer.route_error(409, summary);
        assert_eq!(error[".tag"], "path");
        assert_eq!(error["reason"], json!({".tag": tag}), "{path:?}");
        assert!(error["upload_session_id"].is_string());
    }
    assert!(h.emu.files().is_empty());
}

#[tokio::test]
async fn uploads_create_parents_but_not_through_a_file() {
    let h = start().await;
    h.upload("/A/B/c.txt", b"c").await;
    let folder = h.metadata("/a/b").await.ok();
    assert_eq!(folder[".tag"], "folder");
    assert_eq!(folder["path_display"], "/A/B");
    let answer = h
        .upload_with(json!({"path": "/A/B/c.txt/d.txt"}), b"d")
        .await;
    let error = answer.route_error(409, "path/conflict/file_ancestor/");
    assert_eq!(
        error["reason"],
        json!({".tag": "conflict", "conflict": {".tag": "file_ancestor"}})
    );
}

#[tokio::test]
async fn id_paths_name_existing_files() {
    let h = start().await;
    let m = h.upload("/by-id.txt", b"1").await;
    let id = m["id"].as_str().expect("id");
    let again = h
        .upload_with(json!({"path": id, "mode": "overwrite"}), b"22")
        .await
        .ok();
    assert_eq!(again["path_display"], "/by-id.txt");
    assert_eq!(again["size"], 2);
}

#[tokio::test]
async fn bodies_over_the_limit_are_payload_too_large() {
    let h = start().await;
    h.emu.set_max_body(1000);
    let answer = h
        .upload_with(json!({"path": "/big.bin"}), &super::bytes(5000, 1))
        .await;
    let error = answer.route_error(409, "payload_too_large/");
    assert_eq!(error, json!({".tag": "payload_too_large"}));
    assert!(h.emu.files().is_empty());
    h.upload("/small.bin", &super::bytes(1000, 1)).await;
}

#[tokio::test]
async fn space_is_enforced_and_reported() {
    let h = start().await;
    h.upload("/a.bin", &super::bytes(100, 0)).await;
    h.upload("/b.bin", &super::bytes(50, 0)).await;
    let usage = h
        .rpc("/2/users/get_space_usage", serde_json::Value::Null)
        .await
        .ok();
    assert_eq!(
        usage,
        json!({"used": 150, "allocation": {".tag": "individual", "allocated": 2u64 << 40}})
    );
    h.emu.set_space_allocated(200);
    let answer = h
        .upload_with(json!({"path": "/c.bin"}), &super::bytes(51, 0))
        .await;
    let error = answer.route_error(409, "path/insufficient_space/");
    assert_eq!(error["reason"], json!({".tag": "insufficient_space"}));
    // Replacing a file only needs the difference.
    h.upload_with(
        json!({"path": "/a.bin", "mode": "overwrite"}),
        &super::bytes(150, 9),
    )
    .await
    .ok();
}

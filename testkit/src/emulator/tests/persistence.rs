//! A standalone emulator restarted on the same root keeps its files, sessions and tokens.

use serde_json::json;

use super::super::{Emulator, EmulatorConfig};
use super::*;

#[tokio::test]
async fn restart_keeps_files_sessions_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EmulatorConfig {
        root: dir.path().join("root"),
        port: 0,
        access_token: Some("configured-token".into()),
        app_key: None,
    };
    let emu = Emulator::start(config.clone()).await.expect("start");
    let refresh = emu.mint_refresh_token();
    let h = Harness {
        base: emu.base_url(),
        token: emu.access_token(),
        emu,
        dir,
        http: client(),
    };
    assert_eq!(h.token, "configured-token");
    let m = h.upload("/Keep/Me.txt", b"kept").await;
    let session = h.session(b"part one, ", false).await;
    let cursor = h
        .rpc(
            "/2/files/list_folder",
            json!({"path": "", "recursive": true}),
        )
        .await
        .ok()["cursor"]
        .clone();
    let Harness { emu, dir, .. } = h;
    let before = emu.files();
    emu.shutdown().await;

    let emu = Emulator::start(config).await.expect("restart");
    assert_eq!(emu.files(), before);
    let h = Harness {
        base: emu.base_url(),
        token: emu.access_token(),
        emu,
        dir,
        http: client(),
    };
    assert_eq!(h.metadata("/keep/me.txt").await.ok()["rev"], m["rev"]);
    assert!(
        h.content(
            "/2/files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 10}}),
            b"part two".to_vec()
        )
        .await
        .status
            == 200
    );
    let done = h
        .content(
            "/2/files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": 18}, "commit": {"path": "/Keep/session.txt"}}),
            Vec::new(),
        )
        .await
        .ok();
    assert_file_metadata(&done, "/Keep/session.txt", b"part one, part two", false);
    // Cursors from before the restart still work, and see the new file.
    let changes = h
        .rpc("/2/files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .ok();
    assert_eq!(changes["entries"][0]["path_display"], "/Keep/session.txt");
    // A refresh token minted before the restart still works.
    let response = h
        .http
        .post(h.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", "app"),
        ])
        .send()
        .await
        .expect("send");
    Answer::of(response).await.ok();
    h.emu.shutdown().await;
}

#[tokio::test]
async fn a_cursor_from_another_root_is_reset() {
    let a = start().await;
    let b = start().await;
    let cursor = a
        .rpc("/2/files/list_folder", json!({"path": ""}))
        .await
        .ok()["cursor"]
        .clone();
    b.rpc("/2/files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .route_error(409, "reset/");
}

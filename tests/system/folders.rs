//! The Folders interface: listings page through `list_folder/continue`, always show what is in
//! Dropbox now (also what was changed behind the daemon's back), refused names fail before any
//! request, and `dbxportctl folders` / `mkdir` drive it.

use std::path::PathBuf;

use bytes::Bytes;
use dbxport::dropbox;
use dbxport::service::{FoldersProxy, ServiceError};
use dbxport_testkit::emulator::Fault;
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};

use crate::helper::*;

impl World {
    async fn folders(&self) -> FoldersProxy<'static> {
        FoldersProxy::new(&self.conn).await.expect("folders proxy")
    }
}

async fn put_file(w: &World, path: &str) {
    let (client, token) = elsewhere(w);
    let arg = dropbox::UploadArg {
        commit: dropbox::CommitInfo {
            path: path.into(),
            mode: dropbox::WriteMode::Add,
            autorename: false,
            client_modified: None,
            mute: false,
            strict_conflict: false,
        },
        content_hash: None,
    };
    client
        .upload(&token, &arg, Bytes::from_static(b"not a folder"), None)
        .await
        .unwrap();
}

/// The `name`s of a ListFolders answer, in its order.
async fn names(folders: &FoldersProxy<'_>, path: &str) -> Vec<String> {
    folders
        .list_folders(path.into())
        .await
        .unwrap_or_else(|e| panic!("ListFolders({path:?}): {e:?}"))
        .iter()
        .map(|d| <&str>::try_from(&*d["name"]).unwrap().to_string())
        .collect()
}

#[system_test]
async fn listings_page_through_continue_and_show_changes_made_elsewhere() {
    let mut config = small_config();
    config.dropbox.list_page_size = 2;
    let w = world(config).await;
    let folders = w.folders().await;
    let mut expected: Vec<String> = (1..=7).map(|i| format!("Album {i}")).collect();
    for name in &expected {
        let created = folders
            .create_folder(format!("/Albums/{name}"))
            .await
            .unwrap();
        assert_eq!(created, format!("/Albums/{name}"));
    }
    // Files are not albums.
    put_file(&w, "/Albums/loose.jpg").await;

    let continues = w.requests_to("/2/files/list_folder/continue");
    let listing = folders.list_folders("/Albums".into()).await.unwrap();
    let got: Vec<&str> = listing
        .iter()
        .map(|d| <&str>::try_from(&*d["name"]).unwrap())
        .collect();
    assert_eq!(got, expected, "every folder, once, sorted, and no file");
    let first = &listing[0];
    assert_eq!(
        <&str>::try_from(&*first["path"]).unwrap(),
        "/Albums/Album 1"
    );
    assert_eq!(
        <&str>::try_from(&*first["path_lower"]).unwrap(),
        "/albums/album 1"
    );
    assert!(<&str>::try_from(&*first["id"]).unwrap().starts_with("id:"));
    // Eight entries two at a time: the first page and at least three more.
    assert!(
        w.requests_to("/2/files/list_folder/continue") - continues >= 3,
        "the listing did not page through list_folder/continue"
    );

    // Changed behind the daemon's back, as in the Dropbox web UI: the next call shows it.
    let (client, token) = elsewhere(&w);
    client
        .create_folder(&token, "/Albums/From The Web", false)
        .await
        .unwrap();
    client.delete(&token, "/Albums/Album 3").await.unwrap();
    expected.retain(|n| n != "Album 3");
    expected.push("From The Web".into());
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names(&folders, "/Albums").await, expected);

    // The root, written either way.
    assert_eq!(names(&folders, "").await, ["Albums"]);
    assert_eq!(names(&folders, "/").await, ["Albums"]);
}

#[system_test]
async fn refused_names_fail_before_any_request() {
    let w = world(small_config()).await;
    let folders = w.folders().await;
    let before = w.sandbox.emulator.requests().len();
    for (bad, named) in [
        ("/Photos/desktop.ini", "desktop.ini"),
        ("/Photos/", "trailing slash"),
        ("/a/../b", "\"..\""),
        ("Photos", "must start with '/'"),
        ("/Photos//2024", "empty name"),
        ("/Photos /2024", "\"Photos \""),
        ("/x/.DS_Store", ".DS_Store"),
    ] {
        for result in [
            folders.create_folder(bad.into()).await.map(drop),
            folders.list_folders(bad.into()).await.map(drop),
        ] {
            match result {
                Err(ServiceError::InvalidArgument(text)) => {
                    assert!(text.contains(named), "{bad:?}: {text}")
                }
                other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
    assert!(matches!(
        folders.create_folder("/".into()).await,
        Err(ServiceError::InvalidArgument(_))
    ));
    assert_eq!(
        w.sandbox.emulator.requests().len(),
        before,
        "a refused name reached Dropbox"
    );
}

#[system_test]
async fn existing_folders_are_success_and_dropbox_errors_are_clear() {
    let w = world(small_config()).await;
    let folders = w.folders().await;
    assert_eq!(
        folders.create_folder("/Trips/2024".into()).await.unwrap(),
        "/Trips/2024"
    );
    // Again, and in another letter case: the folder exists, as stored.
    assert_eq!(
        folders.create_folder("/Trips/2024".into()).await.unwrap(),
        "/Trips/2024"
    );
    assert_eq!(
        folders.create_folder("/trips/2024".into()).await.unwrap(),
        "/Trips/2024"
    );
    assert_eq!(names(&folders, "/Trips").await, ["2024"]);

    match folders.list_folders("/Nowhere".into()).await {
        Err(ServiceError::NotFound(text)) => assert!(text.contains("/Nowhere"), "{text}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    put_file(&w, "/Trips/notes.txt").await;
    match folders.list_folders("/Trips/notes.txt".into()).await {
        Err(ServiceError::Failed(text)) => assert!(text.contains("not a folder"), "{text}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    match folders.create_folder("/Trips/notes.txt".into()).await {
        Err(ServiceError::Failed(text)) => {
            assert!(text.contains("a file with this name"), "{text}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // Transient failures are reported with their reason, not retried, and not remembered.
    let faults = w.sandbox.emulator.faults();
    faults.inject(
        "/2/files/list_folder",
        Fault::ServerError { status: 503 },
        1,
    );
    match folders.list_folders("/Trips".into()).await {
        Err(ServiceError::Failed(text)) => assert!(text.contains("HTTP 503"), "{text}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(names(&folders, "/Trips").await, ["2024"]);
    faults.inject(
        "/2/files/create_folder_v2",
        Fault::TooManyRequests { retry_after: 15 },
        1,
    );
    match folders.create_folder("/Trips/2025".into()).await {
        Err(ServiceError::Failed(text)) => assert!(text.contains("retry in 15s"), "{text}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    folders.create_folder("/Trips/2025".into()).await.unwrap();
}

#[system_test]
async fn an_expired_token_is_refreshed_and_the_listing_goes_on() {
    let w = world(small_config()).await;
    let account = dbxport::service::AccountProxy::new(&w.conn).await.unwrap();
    account
        .login_with_token("refresh".into(), w.sandbox.emulator.mint_refresh_token())
        .await
        .unwrap();
    let folders = w.folders().await;
    folders.create_folder("/Kept".into()).await.unwrap();
    let refreshes = w.requests_to("/oauth2/token");
    w.sandbox.emulator.expire_access_tokens();
    assert_eq!(names(&folders, "").await, ["Kept"]);
    assert_eq!(w.requests_to("/oauth2/token"), refreshes + 1);
    assert!(
        w.saw_status(401),
        "the expiry was never seen, so this test proved nothing"
    );
}

#[system_test]
async fn logged_out_is_a_clear_error_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config = small_config();
    let mut sandbox = Sandbox::start(dir.path(), options).await.unwrap();
    sandbox.start_daemon().await.unwrap();
    let conn = sandbox.bus.connect().await.unwrap();
    let folders = FoldersProxy::new(&conn).await.unwrap();
    for result in [
        folders.list_folders("/".into()).await.map(drop),
        folders.create_folder("/New".into()).await.map(drop),
    ] {
        match result {
            Err(ServiceError::NotLoggedIn(text)) => {
                assert!(text.contains("not logged in"), "{text}")
            }
            other => panic!("expected NotLoggedIn, got {other:?}"),
        }
    }
    assert!(sandbox.emulator.requests().is_empty());
}

#[system_test]
async fn ctl_lists_and_makes_folders() {
    let w = world(small_config()).await;
    let text = |out: &std::process::Output| {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for folder in ["/Ctl/Summer", "/Ctl/Winter"] {
        let out = w.ctl(&["mkdir", folder]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), folder);
    }
    let out = w.ctl(&["folders", "/Ctl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Summer\nWinter\n");
    let out = w.ctl(&["folders"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Ctl\n",
        "{}",
        text(&out)
    );
    let out = w.ctl(&["folders", "/Ctl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.len(), 2);
    assert_eq!(json[0]["name"], "Summer");
    assert_eq!(json[0]["path"], "/Ctl/Summer");
    assert_eq!(json[0]["path_lower"], "/ctl/summer");
    assert!(json[0]["id"].as_str().unwrap().starts_with("id:"));
    // An empty folder lists nothing on stdout.
    let out = w.ctl(&["folders", "/Ctl/Summer"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));

    let out = w.ctl(&["mkdir", "/Ctl/Thumbs.db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Thumbs.db"),
        "{}",
        text(&out)
    );
    let out = w.ctl(&["folders", "/Nowhere"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such folder"),
        "{}",
        text(&out)
    );
}

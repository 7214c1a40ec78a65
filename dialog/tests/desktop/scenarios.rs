//! The scenarios, each from the window's side: what a person presses, what the
//! emulated Dropbox holds afterwards.

use dbxport::service::FoldersProxy;

use crate::helper::*;

/// Open with 3 photos; go two folder levels down; create a folder; choose 1600 px; Start; the
/// progress reaches the end; the emulator holds 3 resized JPEGs in the new folder.
#[system_test]
async fn three_photos_resized_into_a_new_folder_two_levels_down() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    let folders = FoldersProxy::new(&conn).await.unwrap();
    folders.create_folder("/Albums/2026".into()).await.unwrap();
    folders.create_folder("/Other".into()).await.unwrap();
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop
        .drive("export-resized", &["Albums", "2026", "Trip"])
        .await;
    for i in 0..3 {
        let path = format!("/Albums/2026/Trip/photo-{i}.jpg");
        let (w, h) = wait_for(&path, || stored_dimensions(&sandbox, &path)).await;
        assert_eq!(w.max(h), 1600, "{path} is {w}×{h}");
    }
    // The choices are kept for next time, the folder with them.
    let kept =
        std::fs::read_to_string(dir.path().join("config/dbxport/export-dialog.toml")).unwrap();
    assert!(kept.contains("folder = \"/Albums/2026/Trip\""), "{kept}");
    assert!(kept.contains("max_dimension = 1600"), "{kept}");
}

/// Logged out → Log in → the account row fills in (the test plays the browser).
#[system_test]
async fn logged_out_log_in_fills_the_account_row() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), false).await;
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos[..1], &dir.path().join("dialog.log"));
    desktop.drive("log-in", &[]).await;
}

/// Daemon not running → the dialog's first call starts it through D-Bus activation; a login
/// made meanwhile shows up in the open window.
#[system_test]
async fn the_dialog_starts_the_daemon_by_activation() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = bare_sandbox(dir.path(), config()).await;
    make_activatable(&sandbox);
    assert_eq!(daemon_pid(&sandbox).await, None, "nothing runs yet");
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos[..1], &dir.path().join("dialog.log"));
    desktop.drive("not-logged-in", &[]).await;
    let pid = daemon_pid(&sandbox)
        .await
        .expect("the bus started dbxportd");
    let _reap = Reap(pid);
    sandbox
        .login()
        .await
        .expect("login with the emulator's token");
    desktop.drive("account-filled", &[]).await;
}

/// A failing folder listing → its reason and Retry; Retry lists the folders.
#[system_test]
async fn a_failed_listing_is_said_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    FoldersProxy::new(&conn)
        .await
        .unwrap()
        .create_folder("/Albums".into())
        .await
        .unwrap();
    sandbox.emulator.faults().inject(
        "/2/files/list_folder",
        dbxport_testkit::emulator::Fault::ServerError { status: 503 },
        1,
    );
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos[..1], &dir.path().join("dialog.log"));
    desktop.drive("listing-retry", &["Albums"]).await;
}

/// A file that cannot be handed over is named and left out; one the daemon cannot prepare
/// fails with its reason; the others are sent.
#[system_test]
async fn a_refused_file_is_named_and_the_others_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let mut photos = large_photos(&dir.path().join("photos"));
    photos.truncate(2);
    let broken = dir.path().join("photos/broken.jpg");
    std::fs::copy(
        samples().join("broken/IMG_20200124_231153-truncated-in-scan.jpg"),
        &broken,
    )
    .unwrap();
    photos.push(broken);
    photos.push(dir.path().join("photos/missing.jpg"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop
        .drive("refused-and-failed", &["missing.jpg", "broken.jpg"])
        .await;
    let mut stored: Vec<String> = sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_display)
        .collect();
    stored.sort();
    assert_eq!(stored, ["/photo-0.jpg", "/photo-1.jpg"]);
}

/// Close during an upload → the window goes, and the upload finishes in the daemon.
#[system_test]
async fn close_during_an_upload_leaves_it_to_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    // Slow enough that Close comes while the files are still being sent.
    config.upload.bandwidth_limit = 500_000;
    let sandbox = sandbox_with(dir.path(), config, true).await;
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let mut dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop.drive("close-during-upload", &[]).await;
    wait_for("the dialog's process to end", || {
        dialog.exited().then_some(())
    })
    .await;
    assert!(
        sandbox.emulator.files().len() < 3,
        "the batch was still running when the window closed"
    );
    for photo in &photos {
        let hash = dbxport::dropbox::content_hash::content_hash_file(photo).unwrap();
        wait_for("every photo in Dropbox, sent by the daemon alone", || {
            sandbox
                .emulator
                .files()
                .iter()
                .any(|f| f.content_hash == hash)
                .then_some(())
        })
        .await;
    }
}

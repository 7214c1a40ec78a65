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

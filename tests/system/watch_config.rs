//! Watches declared in `config.toml` (`[[watch.folders]]`): added at start with their own
//! export profile, once — a restart does not add them again.

use dbxport::config::WatchFolderConfig;

use crate::helper::*;

#[system_test]
async fn a_folder_declared_in_the_config_is_watched_once() {
    let folder = tempfile::tempdir().unwrap();
    make_photos(folder.path(), 2);
    let mut config = small_config();
    config.watch.settle_ms = 300;
    config.watch.folders.push(WatchFolderConfig {
        local_dir: folder.path().to_string_lossy().into_owned(),
        remote_folder: "/Declared".into(),
        max_dimension: Some(640),
        ..Default::default()
    });
    let mut w = world(config).await;
    let uploader = w.uploader().await;
    let done = wait_for("the declared folder's photos", || async {
        let jobs = jobs(&uploader, &[]).await;
        (jobs.len() == 2 && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    assert!(done.iter().all(|j| j.remote_path.starts_with("/Declared/")));

    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let listed: Vec<_> = w
        .watches()
        .await
        .list_watches()
        .await
        .unwrap()
        .iter()
        .map(dbxport::cli::WatchView::from_dict)
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].remote_folder, "/Declared");
    assert_eq!(listed[0].mode, "resize");
    assert_eq!(listed[0].max_dimension, Some(640));
}

//! The scenarios, each from the window's side: what a person presses, what the
//! emulated Dropbox holds afterwards.

use dbxport::service::{FoldersProxy, UploaderProxy};

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

/// The states of every job the daemon holds.
async fn job_states(sandbox: &dbxport_testkit::sandbox::Sandbox) -> Vec<(String, String)> {
    let conn = sandbox.bus.connect().await.unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let text = |d: &std::collections::HashMap<String, zbus::zvariant::OwnedValue>, k: &str| {
        d.get(k)
            .and_then(|v| <&str>::try_from(&**v).ok())
            .unwrap_or_default()
            .to_string()
    };
    uploader
        .list_jobs(Default::default())
        .await
        .unwrap()
        .iter()
        .map(|d| (text(d, "source"), text(d, "state")))
        .collect()
}

/// Cancel during an upload → the window says what was cancelled, and the batch is cancelled
/// in the daemon: no job left to run, the cancelled files not in Dropbox.
#[system_test]
async fn cancel_during_an_upload_cancels_the_batch_in_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    // Slow enough that Cancel comes while the files are still being sent.
    config.upload.bandwidth_limit = 500_000;
    let sandbox = sandbox_with(dir.path(), config, true).await;
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop.drive("cancel-during-upload", &[]).await;
    let states = job_states(&sandbox).await;
    assert_eq!(states.len(), 3, "{states:?}");
    let cancelled: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s == "cancelled")
        .map(|(f, _)| f)
        .collect();
    assert!(!cancelled.is_empty(), "nothing cancelled: {states:?}");
    assert!(
        states.iter().all(|(_, s)| s == "cancelled" || s == "done"),
        "a job still to run after Cancel: {states:?}"
    );
    let stored: Vec<String> = sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_display)
        .collect();
    for source in cancelled {
        let name = std::path::Path::new(source).file_name().unwrap();
        let path = format!("/{}", name.to_string_lossy());
        assert!(!stored.contains(&path), "{path} cancelled, yet in Dropbox");
    }
}

/// A file fails (the daemon cannot read it); the person fixes it and presses "Retry failed":
/// it is sent again and ends Done.
#[system_test]
async fn a_failure_then_retry_failed_sends_it_again() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let photos = large_photos(&dir.path().join("photos"));
    let unreadable = &photos[1];
    std::fs::set_permissions(unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop
        .drive("retry-failed", &[unreadable.to_str().unwrap(), "3"])
        .await;
    let states = job_states(&sandbox).await;
    assert_eq!(
        states.len(),
        3,
        "one job per photo, the retried one too: {states:?}"
    );
    assert!(states.iter().all(|(_, s)| s == "done"), "{states:?}");
    let hash = dbxport::dropbox::content_hash::content_hash_file(unreadable).unwrap();
    assert!(
        sandbox
            .emulator
            .files()
            .iter()
            .any(|f| f.path_display == "/photo-1.jpg" && f.content_hash == hash),
        "the retried photo is in Dropbox"
    );
}

/// With a shared link, the link's Copy button puts the emulator's link on the X clipboard.
#[system_test]
async fn copy_puts_the_shared_link_on_the_clipboard() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    // A folder: Dropbox shares folders, never the top of the Dropbox.
    FoldersProxy::new(&conn)
        .await
        .unwrap()
        .create_folder("/Albums".into())
        .await
        .unwrap();
    let uploader = UploaderProxy::new(&conn).await.unwrap();
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    let out = desktop.drive("copy-link", &["Albums"]).await;
    let said = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    // The link the emulator made, as the daemon's BatchFinished carried it.
    let summary = futures_util::StreamExt::next(&mut finished).await.unwrap();
    let link = dbxport::service::summary_from_dict(&summary.args().unwrap().summary)
        .link
        .expect("the batch has a link");
    assert!(
        link.starts_with("https://www.dropbox.com/scl/fo/"),
        "{link}"
    );
    assert_eq!(said("shown="), link);
    assert_eq!(said("clipboard="), link);
}

/// Keyboard alone: Tab reaches Start and Enter sends; every control in the AT-SPI tree has
/// an accessible name, before and after.
#[system_test]
async fn keyboard_alone_reaches_start_and_every_control_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    FoldersProxy::new(&conn)
        .await
        .unwrap()
        .create_folder("/Albums".into())
        .await
        .unwrap();
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos[..1], &dir.path().join("dialog.log"));
    let out = desktop.drive("keyboard-only", &["Albums"]).await;
    assert!(out.contains("Start reached with"), "{out}");
    wait_for("the photo in Dropbox", || {
        sandbox
            .emulator
            .files()
            .iter()
            .any(|f| f.path_display == "/photo-0.jpg")
            .then_some(())
    })
    .await;
}

/// The dialog with `extra` environment, once its thumbnails are in (its debug log says so),
/// then `drive.py style-shot NAME Albums`: the screenshot, the luminance, the window's size.
async fn style_shot(
    desktop: &Desktop,
    photos: &[std::path::PathBuf],
    name: &str,
    extra: &[(&str, &str)],
) -> String {
    let log = desktop.shots.join(format!("{name}.log"));
    let mut env = vec![("RUST_LOG", "dbxport_export=debug")];
    env.extend_from_slice(extra);
    let _dialog = desktop.dialog_with(photos, &log, &env);
    wait_for("the thumbnails", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("thumbnails done")
            .then_some(())
    })
    .await;
    desktop.drive("style-shot", &[name, "Albums"]).await
}

/// The screen's mean luminance and the window's size, from `drive.py style-shot`.
fn luminance_and_size(out: &str) -> (f64, (u32, u32)) {
    let luminance = out
        .lines()
        .find_map(|l| l.strip_prefix("luminance="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no luminance in {out}"));
    let size = out
        .lines()
        .find_map(|l| l.strip_prefix("window="))
        .and_then(|v| v.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or_else(|| panic!("no window size in {out}"));
    (luminance, size)
}

/// The dark style: asked for through libadwaita, the window is dark (screenshot
/// `dark.png`); the same window without it is light.
#[system_test]
async fn the_dark_style_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    FoldersProxy::new(&conn)
        .await
        .unwrap()
        .create_folder("/Albums".into())
        .await
        .unwrap();
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let light = style_shot(&desktop, &photos, "light", &[]).await;
    let dark = style_shot(
        &desktop,
        &photos,
        "dark",
        &[("ADW_DEBUG_COLOR_SCHEME", "prefer-dark")],
    )
    .await;
    let (light, _) = luminance_and_size(&light);
    let (dark, _) = luminance_and_size(&dark);
    assert!(light > 0.7, "the default style is light: {light}");
    assert!(dark < 0.3, "the dark style is dark: {dark}");
}

/// HiDPI: at a scale of 2 the window has twice the pixels each way (screenshot `hidpi.png`).
#[system_test]
async fn hidpi_doubles_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    FoldersProxy::new(&conn)
        .await
        .unwrap()
        .create_folder("/Albums".into())
        .await
        .unwrap();
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start_sized(&sandbox, 1240, 1640).await;
    let one = style_shot(&desktop, &photos, "scale-1", &[]).await;
    let two = style_shot(&desktop, &photos, "hidpi", &[("GDK_SCALE", "2")]).await;
    let (_, (w1, h1)) = luminance_and_size(&one);
    let (_, (w2, h2)) = luminance_and_size(&two);
    assert_eq!((w1, h1), (620, 820), "the window's default size at scale 1");
    assert_eq!((w2, h2), (2 * w1, 2 * h1), "twice the pixels at scale 2");
}

/// An export profile from the config, chosen in the dialog's drop-down: its size, and its
/// folder (a template the daemon expands per photo), are what the photos get; the choice is
/// kept for next time.
#[system_test]
async fn a_profile_chosen_in_the_dialog_sets_the_size_and_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.profiles.insert(
        "web".into(),
        dbxport::config::ProfileConfig {
            folder: Some("/Web/{year}".into()),
            original: Some(false),
            max_dimension: Some(1024),
            strip_location: Some(true),
            ..Default::default()
        },
    );
    let sandbox = sandbox_with(dir.path(), config, true).await;
    let photos = large_photos(&dir.path().join("photos"));
    let desktop = Desktop::start(&sandbox).await;
    let _dialog = desktop.dialog(&photos, &dir.path().join("dialog.log"));
    desktop
        .drive("profile-export", &["web → /Web/{year}", "/Web/{year}", "3"])
        .await;
    let stored: Vec<String> = sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_display)
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    for path in &stored {
        // /Web/YYYY/photo-N.jpg: the year from each photo's own date.
        let parts: Vec<&str> = path.split('/').collect();
        assert!(
            parts.len() == 4
                && parts[1] == "Web"
                && parts[2].len() == 4
                && parts[2].chars().all(|c| c.is_ascii_digit())
                && parts[3].starts_with("photo-"),
            "{path} is not in the profile's folder"
        );
        let (w, h) = stored_dimensions(&sandbox, path).unwrap();
        assert_eq!(w.max(h), 1024, "{path} is {w}×{h}");
    }
    let kept =
        std::fs::read_to_string(dir.path().join("config/dbxport/export-dialog.toml")).unwrap();
    assert!(kept.contains("profile = \"web\""), "{kept}");
}

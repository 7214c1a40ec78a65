//! Photo preparation through the whole path: resized photos arrive at the asked size under the
//! name they were queued with (a PNG as `.jpg`), small photos go up untouched, a truncated JPEG
//! fails its own job with a message naming it while the batch goes on, and prepared files are
//! gone from the cache when their jobs end.

use std::path::Path;

use crate::helper::*;

fn data(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/photos")
        .join(relative)
}

#[system_test]
async fn resized_batches_arrive_resized_and_a_truncated_photo_fails_alone() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let mut files = Vec::new();
    for relative in [
        "IMG_20200608_111614.jpg",
        "formats/flower-crop.png",
        "broken/IMG_20200124_231153-truncated-in-scan.jpg",
        "flower.jpg",
        "formats/pug-head.heic",
    ] {
        let to = dir.join(Path::new(relative).file_name().unwrap());
        std::fs::copy(data(relative), &to).unwrap();
        files.push(to);
    }
    let mut args = vec![
        "upload",
        "--to",
        "/Resized",
        "--resize",
        "800",
        "--quality",
        "80",
        "--wait",
    ];
    let names = paths(&files);
    args.extend(names.iter().map(String::as_str));
    let out = w.ctl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "one job failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 uploaded, 0 already there, 1 failed"),
        "{stdout}"
    );
    // HEIC cannot be resized here: it went up as it is, and the user is told.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("pug-head.heic")),
        "{stderr}"
    );
    let heic = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .find(|f| f.path_display == "/Resized/pug-head.heic")
        .unwrap();
    assert_eq!(heic.content_hash, hash(&files[4]));
    let failed_line = stdout.lines().find(|l| l.starts_with("failed")).unwrap();
    assert!(
        failed_line.contains("truncated-in-scan.jpg"),
        "{failed_line}"
    );

    let stored = w.sandbox.emulator.files();
    let blob = |path: &str| {
        let file = stored
            .iter()
            .find(|f| f.path_display == path)
            .unwrap_or_else(|| panic!("{path} missing: {stored:?}"));
        w.dir.path().join("dropbox/blobs").join(&file.rev)
    };
    // 4000×3000 → 800×600, a JPEG.
    let (width, height) = image::ImageReader::open(blob("/Resized/IMG_20200608_111614.jpg"))
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap();
    assert_eq!((width, height), (800, 600));
    // The PNG was converted and renamed.
    assert!(stored.iter().all(|f| !f.path_lower.ends_with(".png")));
    let png_as_jpeg = std::fs::read(blob("/Resized/flower-crop.jpg")).unwrap();
    assert_eq!(&png_as_jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    // Within the limit: the original bytes, not re-encoded.
    assert_eq!(
        stored
            .iter()
            .find(|f| f.path_display == "/Resized/flower.jpg")
            .unwrap()
            .content_hash,
        hash(&files[3])
    );
    // The cache holds nothing once the jobs are over.
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path().join("cache/dbxport/prepared"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[system_test]
async fn the_last_choice_is_remembered_only_when_configured() {
    for remember in [true, false] {
        let mut config = small_config();
        config.export.remember_last_choice = remember;
        let w = world(config).await;
        let dir = w.photo_dir();
        let first = dir.join("first.jpg");
        let second = dir.join("second.jpg");
        std::fs::copy(data("IMG_20200608_111614.jpg"), &first).unwrap();
        std::fs::copy(data("IMG_20200608_111614.jpg"), &second).unwrap();
        let uploader = w.uploader().await;
        let (batch, _) = uploader
            .upload(
                paths(&[first]),
                "/M".into(),
                dict(&[("max_dimension", zbus::zvariant::Value::from(400u32))]),
            )
            .await
            .unwrap();
        batch_final(&uploader, batch).await;
        // No options: the config's defaults (original), or the last choice (400 px).
        let (batch, _) = uploader
            .upload(paths(std::slice::from_ref(&second)), "/M".into(), dict(&[]))
            .await
            .unwrap();
        batch_final(&uploader, batch).await;
        let stored = w.sandbox.emulator.files();
        let second_remote = stored
            .iter()
            .find(|f| f.path_display == "/M/second.jpg")
            .unwrap();
        let resized = second_remote.content_hash != hash(&second);
        assert_eq!(resized, remember, "remember_last_choice = {remember}");
    }
}

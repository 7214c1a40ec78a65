//! Bad input fails one file with a clear error naming it; the rest of the batch goes on.

use std::os::unix::fs::PermissionsExt;

use zbus::zvariant::Value;

use crate::helper::*;

use dbxport::service::ServiceError;

/// The D-Bus error's name (after `io.github.dbxport1.Error.`) and text.
fn method_error(result: Result<(u64, Vec<u64>), ServiceError>) -> (&'static str, String) {
    match result {
        Err(ServiceError::InvalidPath(text)) => ("InvalidPath", text),
        Err(ServiceError::InvalidArgument(text)) => ("InvalidArgument", text),
        other => panic!("expected an InvalidPath or InvalidArgument error, got {other:?}"),
    }
}

#[system_test]
async fn upload_refuses_bad_paths_naming_each() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let good = make_photos(&dir, 1).remove(0);
    let missing = dir.join("missing.jpg");
    let uploader = w.uploader().await;
    for (bad, reason) in [
        (missing.to_string_lossy().into_owned(), "no such file"),
        (dir.to_string_lossy().into_owned(), "is a directory"),
        ("relative/photo.jpg".to_string(), "not an absolute path"),
        ("/dev/null".to_string(), "not a regular file"),
    ] {
        let result = uploader
            .upload(
                vec![good.to_string_lossy().into_owned(), bad.clone()],
                "/Bad".into(),
                dict(&[]),
            )
            .await;
        let (name, text) = method_error(result);
        assert_eq!(name, "InvalidPath");
        assert!(
            text.contains(&bad) && text.contains(reason),
            "{text:?} should name {bad} and say {reason}"
        );
        assert!(
            !text.contains(&*good.to_string_lossy()),
            "the good file is not an error: {text}"
        );
    }
    // Options are checked too.
    let result = uploader
        .upload(
            vec![good.to_string_lossy().into_owned()],
            "/Bad".into(),
            dict(&[("colour", Value::from(true))]),
        )
        .await;
    let (name, text) = method_error(result);
    assert_eq!(name, "InvalidArgument");
    assert!(text.contains("colour"), "{text}");
    let result = uploader
        .upload(
            vec![good.to_string_lossy().into_owned()],
            "Photos/".into(),
            dict(&[]),
        )
        .await;
    assert_eq!(method_error(result).0, "InvalidArgument");
    // Nothing was queued by the refused calls.
    assert!(jobs(&uploader, &[]).await.is_empty());
}

#[system_test]
async fn ctl_reports_each_bad_file_and_uploads_the_rest() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let good = make_photos(&dir, 3);
    let missing = dir.join("missing.jpg");
    let subdir = dir.join("a-folder");
    std::fs::create_dir(&subdir).unwrap();
    let unreadable = dir.join("locked.jpg");
    std::fs::copy(&good[0], &unreadable).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();

    let mut args = vec!["upload", "--to", "/Mixed", "--wait"];
    let all: Vec<String> = paths(
        &[
            good.clone(),
            vec![missing.clone(), subdir.clone(), unreadable.clone()],
        ]
        .concat(),
    );
    args.extend(all.iter().map(String::as_str));
    let out = w.ctl(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code 3 = some files failed\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: no such file", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: is a directory", subdir.display())),
        "{stderr}"
    );
    // The failure is told once, by the file's name (the folder is the user's own).
    let name = unreadable.file_name().unwrap().to_string_lossy();
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("failed    {name}: permission denied")))
            .count(),
        1,
        "{stdout}\n{}",
        w.daemon_log()
    );
    assert!(
        stdout.contains("3 uploaded, 0 already there, 1 failed"),
        "{stdout}"
    );

    let stored = w.sandbox.emulator.files();
    assert_eq!(stored.len(), 3);
    for file in &good {
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        assert!(
            stored
                .iter()
                .any(|f| f.path_lower == format!("/mixed/{name}") && f.content_hash == hash(file))
        );
    }
    let failed = jobs(&w.uploader().await, &[("state", Value::from("failed"))]).await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].message.contains("locked.jpg"), "{failed:?}");
}

/// A file whose name Dropbox refuses (a backslash in it) fails with the reason in its name, not
/// with the text about a malformed folder path that Dropbox's refusal gives; the rest go up, and
/// nothing is sent for it.
#[system_test]
async fn a_backslash_in_a_file_name_fails_as_a_bad_name() {
    let w = world(small_config()).await;
    let dir = w.photo_dir();
    let good = make_photos(&dir, 1).remove(0);
    let bad = dir.join("IMG\\0001.jpg");
    std::fs::copy(&good, &bad).unwrap();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[good.clone(), bad.clone()]),
            "/Names".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let done = batch_final(&uploader, batch).await;
    let failed = done
        .iter()
        .find(|j| j.source == bad.to_string_lossy())
        .unwrap();
    assert_eq!(failed.state, "failed", "{failed:?}");
    let text = &failed.message;
    assert!(
        text.contains(&*bad.to_string_lossy())
            && text.contains("file name")
            && text.contains("backslash")
            && text.contains("rename the file"),
        "{text}"
    );
    assert!(
        !text.contains("malformed") && !text.contains("folder"),
        "{text}"
    );
    let ok = done
        .iter()
        .find(|j| j.source == good.to_string_lossy())
        .unwrap();
    assert_jobs_verified(&w, std::slice::from_ref(ok));
    assert_eq!(uploads_started(&w), 1, "nothing was sent for the bad name");
}

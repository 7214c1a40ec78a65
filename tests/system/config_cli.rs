//! `dbxportctl config`: a change is checked before it is written, keeps the user's comments,
//! reaches the running daemon where it can (the bandwidth limit) and the restarted daemon
//! otherwise; a refused value leaves the file as it was.

use crate::helper::*;

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[system_test]
async fn config_set_is_checked_keeps_comments_and_reaches_the_daemon() {
    let mut w = world(small_config()).await;
    let file = w.sandbox.root.join("config/dbxport/config.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("# my settings, keep this\n{original}")).unwrap();

    // A value the daemon would refuse: refused here, naming the key, the file untouched.
    let before = std::fs::read(&file).unwrap();
    let out = w.ctl(&["config", "set", "upload.transfers", "0"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("upload.transfers"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "a refused value changed the file"
    );
    let out = w.ctl(&["config", "set", "upload.chunksize", "8MiB"]);
    assert!(
        text(&out).1.contains("upload.chunk_size"),
        "{:?}",
        text(&out)
    );

    // The bandwidth limit applies at once, in the file and in the running daemon.
    let out = w.ctl(&["config", "set", "upload.bandwidth_limit", "3M"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("applies it now"), "{:?}", text(&out));
    let uploader = w.uploader().await;
    wait_for("the daemon to take the new limit", || async {
        (uploader.bandwidth_limit().await.ok() == Some(3_000_000)).then_some(())
    })
    .await;

    // Other keys at the next start.
    let out = w.ctl(&["config", "set", "upload.remote_folder", "/Elsewhere"]);
    let (said, _) = text(&out);
    assert!(out.status.success() && said.contains("restart"), "{said}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.starts_with("# my settings, keep this\n"),
        "{written}"
    );
    let out = w.ctl(&["config", "get", "upload.remote_folder"]);
    assert_eq!(text(&out).0, "/Elsewhere\n");

    w.sandbox.stop_daemon().expect("it was running");
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    let photo = make_photos(&w.photo_dir(), 1);
    let (batch, _) = uploader
        .upload(paths(&photo), String::new(), dict(&[]))
        .await
        .unwrap();
    let jobs = batch_final(&uploader, batch).await;
    assert_eq!(jobs[0].state, "done", "{:?}", jobs[0]);
    assert!(
        jobs[0].remote_path.starts_with("/Elsewhere/"),
        "the restarted daemon used {:?}",
        jobs[0].remote_path
    );
    assert_eq!(uploader.bandwidth_limit().await.unwrap(), 3_000_000);

    // Back to the default.
    let out = w.ctl(&["config", "unset", "upload.remote_folder"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = w.ctl(&["config", "get", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["upload.remote_folder"], "/Photos");
    assert_eq!(all["upload.bandwidth_limit"], 3_000_000);
}

//! What `dbxportctl` writes: a closed stdout (`| head -1`) ends every command quietly, control
//! characters in file names never reach the terminal, and lines fit an 80-column terminal.

use std::process::{Output, Stdio};

use crate::helper::*;

/// `dbxportctl ARGS` with its stdout a pipe whose reader has already gone, as in
/// `dbxportctl jobs | head -1` once `head` has its line.
fn ctl_into_closed_pipe(w: &World, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    w.sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("dbxportctl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_every_command_quietly() {
    let w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(paths(&files), "/Pipe".into(), dict(&[]))
        .await
        .unwrap();
    batch_final(&uploader, batch).await;
    let batch = batch.to_string();
    let first = files[0].to_string_lossy().into_owned();
    for args in [
        vec!["jobs"],
        vec!["jobs", "--json"],
        vec!["jobs", "--batch", &batch],
        vec!["status"],
        vec!["status", "--json"],
        vec!["config", "get"],
        vec!["config", "get", "--json"],
        vec!["config", "path"],
        vec!["account"],
        vec!["watch", "ls"],
        vec!["limit"],
        vec!["man"],
        vec!["completions", "bash"],
    ] {
        let out = ctl_into_closed_pipe(&w, &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `upload` tells on stderr what it queued before its first result line; the closed
    // stdout then ends it quietly too (the batch goes on in the daemon).
    let out = ctl_into_closed_pipe(&w, &["upload", "--to", "/Pipe2", "--wait", &first]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.lines().count() == 1 && stderr.starts_with("queued 1 file(s) as batch "),
        "{stderr}"
    );
}

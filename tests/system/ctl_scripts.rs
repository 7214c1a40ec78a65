//! `dbxportctl` in scripts and over time: the batch id on stdout, `--json` on upload, cancel
//! and retry, usage errors checked locally, `account`'s exit code; and the history: `jobs`
//! recent by default, `--batch` with `--state`, small ids across restarts, `retry` of cancelled
//! jobs, and `jobs clean`.

use std::process::Output;

use zbus::zvariant::Value;

use crate::helper::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[system_test]
async fn scripts_get_ids_json_and_exit_codes() {
    let w = world_with(small_config(), Setup::default()).await;
    // Logged out: `account` says so with a non-zero exit, and how to log in.
    let out = w.ctl(&["account"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        stdout(&out).contains("dbxportctl login"),
        "{}",
        stdout(&out)
    );
    assert_eq!(w.ctl(&["account", "--json"]).status.code(), Some(5));
    w.sandbox.login().await.unwrap();
    assert_eq!(w.ctl(&["account"]).status.code(), Some(0));

    let files = make_photos(&w.photo_dir(), 2);
    let file = files[0].to_string_lossy().into_owned();
    // Values checkable here are usage errors (2), and nothing is queued.
    for args in [
        vec!["upload", "--resize", "100", "--quality", "150", &file],
        vec!["upload", "--resize", "5", &file],
        vec!["limit", "fast"],
        vec!["jobs", "--state", "finished"],
    ] {
        let out = w.ctl(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    assert!(
        jobs(&w.uploader().await, &[("state", Value::from("all"))])
            .await
            .is_empty()
    );

    // The batch id alone on stdout.
    let out = w.ctl(&["upload", "--to", "/Ids", &file]);
    assert!(out.status.success(), "{out:?}");
    let batch: u64 = stdout(&out).trim().parse().expect("a batch id on stdout");
    batch_final(&w.uploader().await, batch).await;

    // --json: one object.
    let out = w.ctl(&[
        "upload",
        "--to",
        "/Ids",
        "--wait",
        "--json",
        &files[1].to_string_lossy(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(v["outcome"]["uploaded"], 1);
    let second = v["batch"].as_u64().unwrap();
    let out = w.ctl(&["cancel", &second.to_string(), "--json"]);
    assert_eq!(json(&out)["cancelled"].as_array().unwrap().len(), 0);
    let out = w.ctl(&["retry", &second.to_string(), "--json"]);
    assert_eq!(json(&out)["retried"].as_array().unwrap().len(), 0);
}

#[system_test]
async fn history_small_ids_filters_retry_and_clean() {
    let mut w = world(small_config()).await;
    let files = make_photos(&w.photo_dir(), 3);
    let uploader = w.uploader().await;
    let (first, _) = uploader
        .upload(paths(&files[..2]), "/Hist".into(), dict(&[]))
        .await
        .unwrap();
    batch_final(&uploader, first).await;
    // Small ids that do not jump at a restart.
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let uploader = w.uploader().await;
    assert!(w.ctl(&["pause"]).status.success());
    let (second, ids) = uploader
        .upload(paths(&files[2..]), "/Hist".into(), dict(&[]))
        .await
        .unwrap();
    assert!(
        first < 10 && second == first + 3 && ids == vec![second + 1],
        "{first} {second} {ids:?}"
    );

    // `--batch` and `--state` combine.
    let out = w.ctl(&["jobs", "--batch", &first.to_string(), "--state", "queued"]);
    assert_eq!(stdout(&out).trim(), "no jobs", "{}", stdout(&out));
    let out = w.ctl(&[
        "jobs",
        "--batch",
        &second.to_string(),
        "--state",
        "queued",
        "--json",
    ]);
    assert_eq!(json(&out).as_array().unwrap().len(), 1);
    let out = w.ctl(&["jobs", "--state", "done", "--json"]);
    let done = json(&out);
    assert_eq!(done.as_array().unwrap().len(), 2);
    assert!(
        done[0]["stored_path"]
            .as_str()
            .unwrap()
            .starts_with("/Hist/"),
        "{done}"
    );

    // A cancelled batch can be sent again, and retry says what it did.
    assert!(w.ctl(&["cancel", &second.to_string()]).status.success());
    let out = w.ctl(&["retry", &second.to_string()]);
    assert!(
        stdout(&out).contains("queued 1 cancelled job(s) again"),
        "{}",
        stdout(&out)
    );
    assert!(w.ctl(&["resume"]).status.success());
    batch_final(&uploader, second).await;

    // `jobs` lists by batch, the folder once; `jobs clean` forgets finished jobs.
    let listed = stdout(&w.ctl(&["jobs"]));
    assert_eq!(
        listed.matches(&*w.photo_dir().to_string_lossy()).count(),
        2,
        "{listed}"
    );
    let out = w.ctl(&["jobs", "clean", "--older-than", "1h"]);
    assert!(
        stdout(&out).contains("forgot 0 finished job(s)"),
        "{}",
        stdout(&out)
    );
    let out = w.ctl(&["jobs", "clean"]);
    assert!(
        stdout(&out).contains("forgot 3 finished job(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stdout(&w.ctl(&["jobs", "--all"])).trim(), "no jobs");
}

//! Files that Dropbox would store as one: `cam1/IMG_0001.JPG` and `cam2/IMG_0001.JPG` sent to
//! one folder, and `a.jpg` and `A.JPG` (Dropbox does not tell letter case apart). Never does one
//! silently replace the other: under `overwrite` one call holding both is refused, and across
//! calls the last one handed over wins and says so; under `rename` and `skip-identical` both
//! are kept and each job reports where it landed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dbxport::dropbox::content_hash::content_hash;
use dbxport_testkit::emulator::Fault;
use zbus::zvariant::Value;

use crate::helper::*;

/// Two files of the same name in two camera folders, and a pair differing only in case.
struct Pairs {
    cam1: PathBuf,
    cam2: PathBuf,
    lower: PathBuf,
    upper: PathBuf,
}

fn pairs(dir: &Path) -> Pairs {
    let write = |rel: &str, data: &[u8]| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    };
    Pairs {
        cam1: write("cam1/IMG_0001.JPG", b"the first camera's photo"),
        cam2: write("cam2/IMG_0001.JPG", b"the second camera's photo, different"),
        lower: write("case/a.jpg", b"lower-case a"),
        upper: write("case/A.JPG", b"upper-case A, other bytes"),
    }
}

/// `(source, stored_path, message, warnings)` of each job of `batch`, once all are final.
async fn outcomes(
    uploader: &dbxport::service::UploaderProxy<'_>,
    batch: u64,
) -> Vec<(String, String, String, Vec<String>)> {
    let done = batch_final(uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    let listed = uploader
        .list_jobs(dict(&[("batch", Value::from(batch))]))
        .await
        .unwrap();
    listed
        .iter()
        .map(|d| {
            let s = |k: &str| {
                d.get(k)
                    .and_then(|v| <&str>::try_from(&**v).ok())
                    .map(String::from)
                    .unwrap_or_default()
            };
            let warnings = d
                .get("warnings")
                .and_then(|v| Vec::<String>::try_from(v.try_clone().unwrap()).ok())
                .unwrap_or_default();
            (s("source"), s("stored_path"), s("message"), warnings)
        })
        .collect()
}

fn stored(w: &World) -> HashMap<String, String> {
    w.sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| (f.path_lower, f.content_hash))
        .collect()
}

fn hash_of(path: &Path) -> String {
    content_hash(&std::fs::read(path).unwrap())
}

#[system_test]
async fn overwrite_refuses_one_call_with_two_files_for_one_path() {
    let w = world(small_config()).await;
    let p = pairs(&w.photo_dir());
    let uploader = w.uploader().await;
    let options = || dict(&[("conflict", Value::from("overwrite"))]);
    for (first, second, path) in [
        (&p.cam1, &p.cam2, "/Same/IMG_0001.JPG"),
        (&p.lower, &p.upper, "/Same/A.JPG"),
    ] {
        let err = uploader
            .upload(
                paths(&[first.clone(), second.clone()]),
                "/Same".into(),
                options(),
            )
            .await
            .expect_err("two files for one Dropbox path under overwrite are refused");
        let text = err.to_string();
        assert!(text.contains("InvalidPath"), "{text}");
        for named in [first.display().to_string(), second.display().to_string()] {
            assert!(text.contains(&named), "{named} not named: {text}");
        }
        assert!(text.contains(path), "{text}");
        assert!(text.contains("conflict = rename"), "{text}");
    }
    assert!(jobs(&uploader, &[]).await.is_empty(), "nothing was queued");
    assert_eq!(uploads_started(&w), 0);
}

#[system_test]
async fn overwrite_across_calls_the_last_handed_over_wins_and_says_so() {
    let w = world(small_config()).await;
    let p = pairs(&w.photo_dir());
    // The first file is large (chunks appended, slowly, then a commit of its own); the second
    // small (no appends, a quick batched commit). Run side by side, the first would land last
    // and win.
    crate::helper::write_random_file(&p.cam1, 5 * 1024 * 1024, 1);
    w.sandbox.emulator.faults().inject(
        "/2/files/upload_session/append_v2",
        Fault::Delay { millis: 3000 },
        10,
    );
    let uploader = w.uploader().await;
    let overwrite = || dict(&[("conflict", Value::from("overwrite"))]);
    let (first, _) = uploader
        .upload(
            paths(std::slice::from_ref(&p.cam1)),
            "/Over".into(),
            overwrite(),
        )
        .await
        .unwrap();
    let (second, _) = uploader
        .upload(
            paths(std::slice::from_ref(&p.cam2)),
            "/Over".into(),
            overwrite(),
        )
        .await
        .unwrap();
    let first = outcomes(&uploader, first).await;
    let second = outcomes(&uploader, second).await;
    assert_eq!(
        stored(&w).get("/over/img_0001.jpg"),
        Some(&hash_of(&p.cam2)),
        "the file handed over last is the one in Dropbox"
    );
    assert_eq!(w.sandbox.emulator.files().len(), 1);
    assert_eq!(first[0].1, "/Over/IMG_0001.JPG");
    let warnings = &second[0].3;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&p.cam1.display().to_string()) && w.contains("replaced")),
        "the later job names the file it replaced: {warnings:?}"
    );
}

#[system_test]
async fn rename_keeps_both_and_each_job_says_where_it_landed() {
    let w = world(small_config()).await;
    let p = pairs(&w.photo_dir());
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[
                p.cam1.clone(),
                p.cam2.clone(),
                p.lower.clone(),
                p.upper.clone(),
            ]),
            "/Ren".into(),
            dict(&[("conflict", Value::from("rename"))]),
        )
        .await
        .unwrap();
    let jobs = outcomes(&uploader, batch).await;
    let files = stored(&w);
    assert_eq!(files.len(), 4, "{files:?}");
    let mut landed = std::collections::HashSet::new();
    for (source, stored_path, message, _) in &jobs {
        assert_eq!(
            files.get(&stored_path.to_lowercase()),
            Some(&hash_of(Path::new(source))),
            "{source} reports {stored_path}"
        );
        assert!(message.contains(stored_path.as_str()), "{message}");
        assert!(landed.insert(stored_path.to_lowercase()), "{jobs:?}");
    }
}

#[system_test]
async fn skip_identical_keeps_different_files_and_skips_a_same_one() {
    let w = world(small_config()).await;
    let p = pairs(&w.photo_dir());
    // A third camera holding the very bytes of the first.
    let cam3 = w.photo_dir().join("cam3/IMG_0001.JPG");
    std::fs::create_dir_all(cam3.parent().unwrap()).unwrap();
    std::fs::copy(&p.cam1, &cam3).unwrap();
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&[
                p.cam1.clone(),
                p.cam2.clone(),
                cam3.clone(),
                p.lower,
                p.upper,
            ]),
            "/Skip".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let jobs = outcomes(&uploader, batch).await;
    let files = stored(&w);
    assert_eq!(files.len(), 4, "{files:?}");
    for (source, stored_path, message, _) in &jobs {
        assert_eq!(
            files.get(&stored_path.to_lowercase()),
            Some(&hash_of(Path::new(source))),
            "{source} reports {stored_path}"
        );
        if Path::new(source) == cam3 {
            assert!(message.contains("already in Dropbox"), "{message}");
        }
    }
}

//! Where photos land (issue 17): folder templates expanded per photo from its capture date
//! (or its modification time, said in the job), fixed when the job is made so a restart keeps
//! them, refused before anything is queued when they are wrong; named export profiles used by
//! the CLI, a watch and D-Bus, with explicit options over them, listed, and given menu entries.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use dbxport::service::ServiceError;
use zbus::zvariant::Value;

use crate::helper::*;

/// 2026-11-03 12:00 UTC: that day in every time zone from -11 to +11.
const NOON_NOV_3: u64 = 1_793_707_200;

fn photo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/photos")
        .join(name)
}

/// A JPEG's bytes without its EXIF (every APP1 segment left out).
fn without_exif(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    let mut out = jpeg[..2].to_vec();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        if marker != 0xE1 {
            out.extend_from_slice(&jpeg[at..at + 2 + len]);
        }
        at += 2 + len;
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Three photos taken on different days, and one without EXIF last modified on 2026-11-03.
fn dated_photos(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut files = Vec::new();
    for (name, day) in [
        ("IMG_20200608_111614.jpg", "2020/2020-06-08"),
        ("canon-sx530-o6.jpg", "2020/2020-09-12"),
        ("flower.jpg", "2003/2003-12-14"),
    ] {
        let to = dir.join(name);
        std::fs::copy(photo(name), &to).unwrap();
        files.push((to, day));
    }
    let plain = dir.join("no-exif.jpg");
    std::fs::write(
        &plain,
        without_exif(&std::fs::read(photo("flower.jpg")).unwrap()),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&plain)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(NOON_NOV_3))
        .unwrap();
    files.push((plain, "2026/2026-11-03"));
    files
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `jobs --batch ID --json`: each job's source and remote path, and its warnings.
fn jobs_json(w: &World, batch: &str) -> Vec<(String, String, Vec<String>)> {
    let out = w.ctl(&["jobs", "--batch", batch, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["source"].as_str().unwrap().to_string(),
                j["remote_path"].as_str().unwrap().to_string(),
                j["warnings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[system_test]
async fn a_template_puts_each_photo_in_its_day_s_folder_and_a_restart_keeps_the_paths() {
    let mut w = world(small_config()).await;
    let files = dated_photos(&w.photo_dir());
    // Held, so the batch is still queued when the daemon is killed.
    assert!(w.ctl(&["pause"]).status.success());
    let mut args = vec!["upload", "--folder", "/Photos/{year}/{date}"];
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = w.ctl(&args);
    assert!(out.status.success(), "{out:?}");
    let batch = stdout(&out).trim().lines().last().unwrap().to_string();

    let expected: Vec<(String, String)> = files
        .iter()
        .map(|(path, day)| {
            let name = path.file_name().unwrap().to_string_lossy();
            (path.display().to_string(), format!("/Photos/{day}/{name}"))
        })
        .collect();
    let listed = jobs_json(&w, &batch);
    let paths: Vec<(String, String)> = listed
        .iter()
        .map(|(s, r, _)| (s.clone(), r.clone()))
        .collect();
    assert_eq!(paths, expected);
    // Only the photo without a capture date carries the note, with the day it used.
    for (source, _, warnings) in &listed {
        if source.ends_with("no-exif.jpg") {
            assert_eq!(
                warnings,
                &vec![format!(
                    "{source}: no capture date in the photo: used its modification time 2026-11-03"
                )]
            );
        } else {
            assert!(warnings.is_empty(), "{source}: {warnings:?}");
        }
    }
    // `jobs` shows them: the folders a template made below the batch's, and the note.
    let shown = stdout(&w.ctl(&["jobs", "--batch", &batch]));
    assert!(shown.contains("batch"), "{shown}");
    assert!(
        shown.contains("→ /Photos\n"),
        "the batch's folder holds them all: {shown}"
    );
    assert!(
        shown.contains("IMG_20200608_111614.jpg → 2020/2020-06-08/IMG_20200608_111614.jpg"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "no-exif.jpg: no capture date in the photo: used its modification time 2026-11-03"
        ),
        "{shown}"
    );

    // kill -9 after Upload returned, start again: the same paths, nothing read again.
    w.sandbox.kill_daemon();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;
    let again: Vec<(String, String)> = jobs_json(&w, &batch)
        .into_iter()
        .map(|(s, r, _)| (s, r))
        .collect();
    assert_eq!(again, expected);

    assert!(w.ctl(&["resume"]).status.success());
    let uploader = w.uploader().await;
    let done = batch_final(&uploader, batch.parse().unwrap()).await;
    assert_jobs_verified(&w, &done);
    let stored = w.stored_paths();
    for (_, remote) in &expected {
        assert!(stored.contains(remote), "{remote} not in {stored:?}");
    }
    // The folders come with the files' commits: no request makes a folder, per photo or per
    // batch.
    assert_eq!(w.requests_to("/2/files/create_folder_v2"), 0);
}

#[system_test]
async fn a_bad_template_is_refused_before_anything_is_queued() {
    let w = world(small_config()).await;
    let file = w.photo_dir().join("a.jpg");
    std::fs::copy(photo("flower.jpg"), &file).unwrap();
    let file = file.display().to_string();
    for (folder, says) in [
        ("/Photos/{yaer}", "unknown placeholder {yaer}"),
        ("/Photos//{year}", "empty name"),
        ("/Photos/{year", "is not closed"),
        ("/Photos/{profile}", "no export profile is in use"),
    ] {
        let out = w.ctl(&["upload", "--folder", folder, &file]);
        assert_eq!(out.status.code(), Some(1), "{folder}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(folder) && err.contains(says),
            "{folder}: {err}"
        );
        // The daemon refuses it too, for callers that do not check first.
        let refused = w
            .uploader()
            .await
            .upload(vec![file.clone()], folder.into(), dict(&[]))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ServiceError::InvalidArgument(m) if m.contains(says)),
            "{refused:?}"
        );
        let refused = w
            .watches()
            .await
            .add_watch(
                w.photo_dir().display().to_string(),
                folder.into(),
                dict(&[]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ServiceError::InvalidArgument(m) if m.contains(says)),
            "{refused:?}"
        );
    }
    assert!(w.all_jobs().await.is_empty(), "nothing was queued");
    assert!(w.watches().await.list_watches().await.unwrap().is_empty());
}

/// A config with two profiles: `web` resizes into a templated folder, `archive` keeps
/// originals.
fn profiled_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.profiles.insert(
        "web".into(),
        dbxport::config::ProfileConfig {
            folder: Some("/Web/{profile}".into()),
            max_dimension: Some(64),
            strip_location: Some(true),
            ..Default::default()
        },
    );
    config.profiles.insert(
        "archive".into(),
        dbxport::config::ProfileConfig {
            folder: Some("/Archive/{year}".into()),
            original: Some(true),
            conflict: Some(dbxport::export::Conflict::Rename),
            ..Default::default()
        },
    );
    config
}

/// The content hash Dropbox holds at `path`.
fn stored_hash(w: &World, path: &str) -> Option<String> {
    w.sandbox
        .emulator
        .files()
        .into_iter()
        .find(|f| f.path_display == path)
        .map(|f| f.content_hash)
}

#[system_test]
async fn a_profile_is_used_by_the_cli_a_watch_and_d_bus_and_explicit_options_go_over_it() {
    let mut w = world(profiled_config()).await;
    let dir = w.photo_dir();
    let a = dir.join("a.jpg");
    std::fs::copy(photo("flower.jpg"), &a).unwrap();
    let original = hash(&a);
    let a_text = a.display().to_string();

    // The CLI: the profile's folder and size.
    let out = w.ctl(&["upload", "--profile", "web", "--wait", &a_text]);
    assert!(out.status.success(), "{out:?}");
    let resized = stored_hash(&w, "/Web/web/a.jpg").expect("in the profile's folder");
    assert_ne!(resized, original, "resized by the profile");
    // Explicit options over it: another folder, the original bytes.
    let out = w.ctl(&[
        "upload",
        "--profile",
        "web",
        "--original",
        "--to",
        "/Mine",
        "--wait",
        &a_text,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stored_hash(&w, "/Mine/a.jpg"), Some(original.clone()));

    // D-Bus: the option `profile`, and an explicit one over it.
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            vec![a_text.clone()],
            String::new(),
            dict(&[("profile", Value::from("archive"))]),
        )
        .await
        .expect("Upload with a profile");
    let done = batch_final(&uploader, batch).await;
    assert_eq!(done[0].state, "done", "{done:?}");
    assert_eq!(done[0].remote_path, "/Archive/2003/a.jpg");
    assert_eq!(
        stored_hash(&w, "/Archive/2003/a.jpg"),
        Some(original.clone())
    );
    let (batch, _) = uploader
        .upload(
            vec![a_text.clone()],
            "/Over".into(),
            dict(&[
                ("profile", Value::from("web")),
                ("original", Value::from(true)),
            ]),
        )
        .await
        .unwrap();
    batch_final(&uploader, batch).await;
    assert_eq!(stored_hash(&w, "/Over/a.jpg"), Some(original.clone()));
    let err = uploader
        .upload(
            vec![a_text.clone()],
            String::new(),
            dict(&[("profile", Value::from("wbe"))]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::InvalidArgument(m)
            if m.contains("\"wbe\"") && m.contains("archive, web")),
        "{err:?}"
    );

    // `profiles` lists them with their settings.
    let listed = stdout(&w.ctl(&["profiles"]));
    assert!(
        listed.contains("archive  → /Archive/{year}  (original, rename)"),
        "{listed}"
    );
    assert!(
        listed
            .contains("web      → /Web/{profile}  (resize 64 px q85, no location, skip-identical)"),
        "{listed}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&w.ctl(&["profiles", "--json"]).stdout).unwrap();
    assert_eq!(json[1]["name"], "web");
    assert_eq!(json[1]["max_dimension"], 64);

    // A watch with the profile: its folder and size.
    let watched = w.dir.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    let out = w.ctl(&[
        "watch",
        "add",
        &watched.display().to_string(),
        "--profile",
        "web",
    ]);
    assert!(out.status.success(), "{out:?}");
    let ls = stdout(&w.ctl(&["watch", "ls"]));
    assert!(ls.contains("profile web: resize 64 px"), "{ls}");
    std::fs::copy(photo("IMG_20200608_111614.jpg"), watched.join("w1.jpg")).unwrap();
    let w1 = wait_for("the watch's photo in the profile's folder", || async {
        stored_hash(&w, "/Web/web/w1.jpg")
    })
    .await;
    assert_ne!(w1, hash(&watched.join("w1.jpg")), "resized by the profile");

    // The profile edited, the daemon restarted: the watch makes its jobs with it as it is now.
    let out = w.ctl(&["config", "set", "profiles.web.folder", "/Web2/{year}"]);
    assert!(out.status.success(), "{out:?}");
    w.sandbox.kill_daemon();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;
    let listed = w.watches().await.list_watches().await.unwrap();
    let view = dbxport::cli::WatchView::from_dict(&listed[0]);
    assert_eq!(
        (view.remote_folder.as_str(), view.profile.as_str()),
        ("/Web2/{year}", "web")
    );
    std::fs::copy(photo("canon-sx530-o6.jpg"), watched.join("w2.jpg")).unwrap();
    wait_for(
        "the watch's photo in the edited profile's folder",
        || async { stored_hash(&w, "/Web2/2020/w2.jpg") },
    )
    .await;
}

#[system_test]
async fn install_gives_each_profile_a_menu_entry() {
    let w = world(profiled_config()).await;
    let out = w.ctl(&["install"]);
    assert!(out.status.success(), "{out:?}");
    let data = w.dir.path().join("home/.local/share");
    let dolphin = std::fs::read_to_string(data.join("kio/servicemenus/dbxport.desktop")).unwrap();
    assert!(
        dolphin.contains("Actions=send;sendResized;copyLink;profile_archive;profile_web;"),
        "{dolphin}"
    );
    assert!(
        dolphin.contains("upload --notify --profile web %F"),
        "{dolphin}"
    );
    for name in ["archive", "web"] {
        let script = data.join(format!("nautilus/scripts/Send to Dropbox (profile {name})"));
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .contains(&format!("upload --notify --profile {name} --")),
        );
        assert!(
            data.join(format!("nemo/actions/dbxport-profile-{name}.nemo_action"))
                .exists()
        );
    }
    let thunar = std::fs::read_to_string(w.dir.path().join("config/Thunar/uca.xml")).unwrap();
    assert!(
        thunar.contains("<unique-id>dbxport-profile-web</unique-id>"),
        "{thunar}"
    );

    // A profile removed from the config: installing again takes its entries out.
    let config_file = w.dir.path().join("config/dbxport/config.toml");
    let mut config = dbxport::config::Config::load(&config_file).unwrap();
    config.profiles.remove("archive");
    std::fs::write(&config_file, config.to_toml()).unwrap();
    assert!(w.ctl(&["install"]).status.success());
    assert!(
        !data
            .join("nautilus/scripts/Send to Dropbox (profile archive)")
            .exists()
    );
    assert!(
        !data
            .join("nemo/actions/dbxport-profile-archive.nemo_action")
            .exists()
    );
    assert!(
        data.join("nemo/actions/dbxport-profile-web.nemo_action")
            .exists()
    );
    let dolphin = std::fs::read_to_string(data.join("kio/servicemenus/dbxport.desktop")).unwrap();
    assert!(!dolphin.contains("profile_archive"), "{dolphin}");
    assert!(w.ctl(&["uninstall"]).status.success());
    assert!(
        !data
            .join("nemo/actions/dbxport-profile-web.nemo_action")
            .exists()
    );
}

#[system_test]
async fn a_watch_declared_in_the_config_uses_its_profile_and_stays_one_watch_as_it_changes() {
    let watched = tempfile::tempdir().unwrap();
    let mut config = profiled_config();
    config
        .watch
        .folders
        .push(dbxport::config::WatchFolderConfig {
            local_dir: watched.path().display().to_string(),
            profile: Some("web".into()),
            ..Default::default()
        });
    let mut w = world(config).await;
    std::fs::copy(photo("flower.jpg"), watched.path().join("c1.jpg")).unwrap();
    let c1 = wait_for(
        "the declared watch's photo in its profile's folder",
        || async { stored_hash(&w, "/Web/web/c1.jpg") },
    )
    .await;
    assert_ne!(
        c1,
        hash(&watched.path().join("c1.jpg")),
        "resized by the profile"
    );

    // The profile's folder edited: after a restart the same watch follows it (no second watch
    // for the same folder appears).
    let out = w.ctl(&["config", "set", "profiles.web.folder", "/Web3"]);
    assert!(out.status.success(), "{out:?}");
    w.sandbox.kill_daemon();
    w.sandbox.start_daemon().await.expect("restart");
    w.reconnect().await;
    std::fs::copy(photo("canon-sx530-o6.jpg"), watched.path().join("c2.jpg")).unwrap();
    wait_for(
        "the declared watch's photo in the edited profile's folder",
        || async { stored_hash(&w, "/Web3/c2.jpg") },
    )
    .await;
    assert_eq!(w.watches().await.list_watches().await.unwrap().len(), 1);
}

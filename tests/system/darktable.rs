//! darktable's export storage (`integrations/darktable/dbxport.lua`, as `dbxportctl install`
//! writes it) run under lua5.4 with a stand-in for darktable's Lua API
//! (`tests/system/darktable/`), driven as darktable drives a storage: initialize, store per
//! exported file, finalize. The exported files (names with spaces and quotes) reach the
//! emulator and darktable's temporary copies are gone; a file Dropbox refuses is reported in
//! darktable's message and kept by the daemon for Retry; a daemon that is not there leaves the
//! exports where they are, said so. And once in darktable itself (4.2, under Xvfb,
//! `darktable/host.lua`): a photo exported with the export module's button goes up, into a
//! folder template's `{folder}` = its film roll's folder.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helper::*;
use crate::purpose::Installed;

/// Runs the installed storage on `files` with `folder` and a shared link asked for, in
/// `command`'s environment (the sandbox's bus).
fn export(
    mut command: std::process::Command,
    installed: &Installed,
    folder: &str,
    files: &[PathBuf],
) -> Output {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/system/darktable/export.lua");
    command
        .arg(driver)
        .arg(installed.path("config/darktable/lua/dbxport.lua"))
        .arg(folder)
        .arg("true")
        .args(files)
        .output()
        .expect("lua5.4 is needed (Debian package lua5.4)")
}

/// darktable's temporary exports: copies of sample photos with awkward names.
fn exports(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let samples = sample_photos();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = dir.join(name);
            std::fs::copy(&samples[2 + i], &path).unwrap();
            path
        })
        .collect()
}

fn printed(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[system_test]
async fn darktable_exports_go_up_and_its_temporary_files_go() {
    let w = world(small_config()).await;
    let installed = Installed::new("darktable");
    let tmp = tempfile::tempdir().unwrap();
    let files = exports(
        tmp.path(),
        &["DSC 0001 'best'.jpg", "a \"quoted\" $name.jpg"],
    );
    let hashes: Vec<String> = files.iter().map(|f| hash(f)).collect();

    let out = export(
        w.sandbox.command("lua5.4"),
        &installed,
        "/Darktable Export",
        &files,
    );
    let said = printed(&out);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("dt.print: Dropbox: 2 photos uploaded — https://"),
        "{said}"
    );
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    let stored = w.sandbox.emulator.files();
    for (file, hash) in files.iter().zip(&hashes) {
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        assert!(
            stored
                .iter()
                .any(|s| s.path_lower == format!("/darktable export/{name}")
                    && &s.content_hash == hash),
            "{name} not in the emulator: {stored:?}"
        );
    }
}

#[system_test]
async fn a_failed_darktable_upload_is_reported_and_kept_for_retry() {
    let w = world(small_config()).await;
    let installed = Installed::new("darktable");
    let tmp = tempfile::tempdir().unwrap();
    // Dropbox refuses this name: that file fails, the other goes up.
    let files = exports(tmp.path(), &["good one.jpg", "desktop.ini"]);

    let out = export(
        w.sandbox.command("lua5.4"),
        &installed,
        "/Darktable",
        &files,
    );
    let said = printed(&out);
    assert!(
        said.contains("dt.print: Dropbox: 1 uploaded, 1 failed: ") && said.contains("desktop.ini"),
        "{said}"
    );
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    // Nothing is lost: the daemon keeps its own copy of the failed file for Retry.
    let failed: Vec<JobInfo> = w
        .all_jobs()
        .await
        .into_iter()
        .filter(|j| j.state == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].source.ends_with("desktop.ini"), "{failed:?}");
    let spool = w.dir.path().join("state/dbxport/spool");
    let copies: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .flat_map(|d| {
            std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .map(|f| f.path())
        })
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0].to_string_lossy().ends_with("desktop.ini"),
        "{copies:?}"
    );
    // Retry sends it from that copy (and Dropbox refuses the name again: it fails again).
    let out = w.ctl(&["retry", &failed[0].id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[system_test]
async fn with_no_daemon_darktable_says_so_and_keeps_its_exports() {
    let (_dir, sandbox) = bare_sandbox().await;
    let installed = Installed::new("darktable");
    let tmp = tempfile::tempdir().unwrap();
    let files = exports(tmp.path(), &["kept 1.jpg", "kept 2.jpg"]);

    let out = export(sandbox.command("lua5.4"), &installed, "/Darktable", &files);
    let said = printed(&out);
    assert!(said.contains("dt.print: Dropbox: nothing sent: "), "{said}");
    assert!(said.contains("dbxportd is not running"), "{said}");
    assert!(said.contains(&tmp.path().display().to_string()), "{said}");
    for file in &files {
        assert!(file.exists(), "{} was removed", file.display());
    }
}

/// The script as shipped parses: `luac -p`, as a packager or darktable's own loader would
/// first find a syntax error.
#[test]
fn the_storage_script_parses_with_luac() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/darktable/dbxport.lua");
    let out = std::process::Command::new("luac5.4")
        .arg("-p")
        .arg(&script)
        .output()
        .expect("luac5.4 is needed (Debian package lua5.4)");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[system_test]
async fn darktable_itself_exports_a_photo_through_the_storage() {
    // darktable 4.2 (Lua API 9) under Xvfb, with the storage `install` placed: a photo
    // imported, selected and exported with the export module's own button goes up (into its
    // roll's folder by the template), darktable shows the outcome, and its temporary export
    // and the storage's links are removed.
    let w = world(small_config()).await;
    let installed = Installed::new("darktable");
    let config = installed.path("config/darktable");
    // The export module opens on the storage, as for a user who chose it once, and its folder
    // is a template with the photo's folder (the film roll) in it.
    std::fs::write(
        config.join("darktablerc"),
        "plugins/lighttable/export/storage_name=dbxport\nlua/dbxport/folder=/Rolls/{folder}\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // darktable exports it as /tmp/<its name>: a name of this run's own.
    let tag = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let name = format!("darktable export {}.jpg", tag.trim_start_matches('.'));
    let roll = dir.path().join("Summer Roll");
    std::fs::create_dir(&roll).unwrap();
    let photo = roll.join(&name);
    std::fs::copy(&sample_photos()[2], &photo).unwrap();
    let script = dir.path().join("host.lua");
    let quoted = serde_json::to_string(&photo.to_string_lossy()).unwrap();
    std::fs::write(
        &script,
        include_str!("darktable/host.lua").replace("PHOTO", &quoted),
    )
    .unwrap();
    // Bounded: a darktable that never shows the outcome would hold the test for ever.
    let out = w
        .sandbox
        .command("timeout")
        .args(["300", "xvfb-run", "-a", "darktable", "--configdir"])
        .arg(&config)
        .arg("--cachedir")
        .arg(dir.path().join("cache"))
        .args(["--library", ":memory:", "--luacmd"])
        .arg(format!(
            "dofile({})",
            serde_json::to_string(&script.to_string_lossy()).unwrap()
        ))
        .output()
        .expect("darktable runs (tests/deps installs it)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("SHOWN Dropbox: 1 photos uploaded"),
        "{:?}\n{shown}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        w.daemon_log()
    );
    let stored = w.sandbox.emulator.files();
    let file = stored
        .iter()
        .find(|f| f.path_lower == format!("/rolls/summer roll/{}", name.to_lowercase()))
        .unwrap_or_else(|| panic!("not in Dropbox: {stored:?}"));
    assert!(file.size > 1000, "{file:?}");
    let jobs = w.all_jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].state.as_str(), jobs[0].source.as_str()),
        ("done", name.as_str())
    );
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "darktable's temporary export is left"
    );
    let links: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.path()
                .join("Summer Roll")
                .join(&name)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
        .collect();
    assert!(links.is_empty(), "the storage's links are left: {links:?}");
}

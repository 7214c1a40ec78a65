//! gThumb's Tools → Scripts entry and elementary's Contractor entry, as `dbxportctl install`
//! writes them, run the way each host runs them: gThumb expands `%F` to every file put
//! through `g_shell_quote` and splits the line with `g_shell_parse_argv` (its
//! `gth-script.c`, `gth-script-task.c`, for a script with `shell-script="false"`); Contractor
//! reads the entry as a desktop entry and launches it with GLib's `GDesktopAppInfo` (here
//! `gio launch`), `%F` being one argument per file. Two photos with spaces, quotes and `$` in
//! their names each time: both end Done in the emulator. The README's digiKam recipe runs as
//! digiKam's Batch Queue Manager runs a Custom Script: `$INPUT` and `$OUTPUT` replaced by the
//! quoted file names, `/bin/sh -c`, once per photo, the output file taken away after it.

use std::path::{Path, PathBuf};

use crate::helper::*;
use crate::purpose::Installed;

/// Two photos named to trip a careless quoting.
fn awkward_photos(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let samples = sample_photos();
    let files = vec![
        dir.join(format!("{tag} it's a photo.jpg")),
        dir.join(format!("{tag} two  spaces \"q\" $HOME.jpg")),
    ];
    std::fs::copy(&samples[2], &files[0]).unwrap();
    std::fs::copy(&samples[3], &files[1]).unwrap();
    files
}

/// `g_shell_quote`: single quotes, a single quote inside as `'\''`.
fn g_shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// An attribute's value in an XML element, unescaped.
fn attribute(element: &str, name: &str) -> String {
    let start = element
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {element}"))
        + name.len()
        + 3;
    let end = start + element[start..].find('"').unwrap();
    element[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Waits until every job the daemon holds for `files` is Done.
async fn all_done(w: &World, files: &[PathBuf]) {
    let wanted: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    let jobs = wait_for("both photos Done", || async {
        let jobs: Vec<JobInfo> = w
            .all_jobs()
            .await
            .into_iter()
            .filter(|j| wanted.contains(&j.source))
            .collect();
        (jobs.len() == files.len() && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    assert_jobs_verified(w, &jobs);
}

#[system_test]
async fn gthumb_and_contractor_entries_send_two_photos_as_their_hosts_run_them() {
    let w = world(small_config()).await;
    let installed = Installed::new("gthumb,contractor");

    // gThumb: the script element, its %F expanded and the line split as gThumb does.
    let scripts = std::fs::read_to_string(installed.path("config/gthumb/scripts.xml")).unwrap();
    let element = scripts
        .lines()
        .find(|l| l.contains("id=\"dbxport-send\""))
        .unwrap_or_else(|| panic!("{scripts}"));
    assert_eq!(attribute(element, "shell-script"), "false");
    assert_eq!(attribute(element, "for-each-file"), "false");
    let command = attribute(element, "command");
    let files = awkward_photos(&w.photo_dir(), "gthumb");
    let list: Vec<String> = files
        .iter()
        .map(|f| g_shell_quote(&f.to_string_lossy()))
        .collect();
    let line = command.replace("%F", &list.join(" "));
    // g_shell_parse_argv splits as sh does, with no expansion: the same argv as `sh -c` gets
    // for this line (quoted words only, nothing for sh to expand outside single quotes).
    let out = w
        .sandbox
        .command("sh")
        .arg("-c")
        .arg(format!("exec {line}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    all_done(&w, &files).await;

    // Contractor: the entry as the desktop entry it reads it as, launched with the files.
    let contract =
        std::fs::read_to_string(installed.path("data/contractor/dbxport-send.contract")).unwrap();
    assert!(contract.contains("[Contractor Entry]"));
    let entries = tempfile::tempdir().unwrap();
    let desktop = entries.path().join("dbxport-send.desktop");
    std::fs::write(
        &desktop,
        contract.replace("[Contractor Entry]", "[Desktop Entry]\nType=Application"),
    )
    .unwrap();
    let files = awkward_photos(&w.photo_dir(), "contractor");
    let out = w
        .sandbox
        .command("gio")
        .arg("launch")
        .arg(&desktop)
        .args(&files)
        .output()
        .expect("gio (libglib2.0-bin) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    all_done(&w, &files).await;
}

#[system_test]
async fn the_readmes_digikam_recipe_sends_each_photo_of_a_queue() {
    let w = world(small_config()).await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let recipe = readme
        .lines()
        .find(|l| l.starts_with("cp $INPUT $OUTPUT"))
        .expect("the digiKam recipe in the README");
    let queue = w.photo_dir().join("queue");
    let work = w.photo_dir().join("work");
    std::fs::create_dir_all(&queue).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let samples = sample_photos();
    let mut sent = Vec::new();
    // The session's PATH holds dbxportctl (the README says to write its full path otherwise).
    let bin = Path::new(env!("CARGO_BIN_EXE_dbxportctl"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Nothing is sent before the queue has taken its files away: what is sent is the copy.
    assert!(w.ctl(&["pause"]).status.success());
    for (i, name) in ["IMG 0001 it's.jpg", "IMG 0002 two  spaces.jpg"]
        .iter()
        .enumerate()
    {
        let input = queue.join(name);
        std::fs::copy(&samples[4 + i], &input).unwrap();
        let output = work.join(format!("BatchTool-{i}.jpg"));
        // digiKam's UserScript: each keyword becomes the file name in double quotes.
        let script = recipe
            .replace("$INPUT", &format!("\"{}\"", input.display()))
            .replace("$OUTPUT", &format!("\"{}\"", output.display()));
        let out = w
            .sandbox
            .command("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sent.push((output.clone(), hash(&input)));
        // The queue takes its output file away (into the album) once the script has run.
        std::fs::remove_file(&output).unwrap();
    }
    assert!(w.ctl(&["resume"]).status.success());
    let jobs = wait_for("both photos Done", || async {
        let jobs = w.all_jobs().await;
        (jobs.len() == 2 && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    // Spooled: each job's source is its name, and the emulator holds the queue's bytes.
    assert!(jobs.iter().all(|j| j.content_hash.is_some()), "{jobs:?}");
    let stored = w.sandbox.emulator.files();
    for (output, hash) in &sent {
        let name = output.file_name().unwrap().to_string_lossy().to_lowercase();
        assert!(
            stored
                .iter()
                .any(|s| s.path_lower == format!("/photos/digikam/{name}")
                    && &s.content_hash == hash),
            "{name}: {stored:?}"
        );
    }
}

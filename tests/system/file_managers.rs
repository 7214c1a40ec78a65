//! The file-manager menus in `desktop/`: each file is valid as far as the format's own checker
//! goes (`desktop-file-validate`, `xmllint`), and each menu action, run the way its file
//! manager runs it with two photos whose names hold spaces, hands both to the daemon — into
//! the configured default folder, since the menus name none. `--notify` tells a user without a
//! terminal what went wrong, through the session bus's notification server (a fake one here).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helper::*;
use crate::notices::fake_server;

fn desktop(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("desktop")
        .join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(desktop(relative)).unwrap()
}

/// The `[group]`s of a key file with their `key=value` lines, in order.
fn groups(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut groups: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            groups.push((name.to_string(), Vec::new()));
        } else if let Some((key, value)) = line.split_once('=') {
            groups
                .last_mut()
                .expect("a key before any group")
                .1
                .push((key.into(), value.into()));
        }
    }
    groups
}

fn value<'a>(group: &'a [(String, String)], key: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `desktop-file-validate`'s error lines for `path`, without the file name in front.
fn validation_errors(path: &Path) -> Vec<String> {
    let out = Command::new("desktop-file-validate")
        .arg(path)
        .output()
        .expect("desktop-file-validate is needed (Debian package desktop-file-utils; .ci/run installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let errors: Vec<String> = text
        .lines()
        .filter(|l| l.contains("error:"))
        .map(|l| l.split_once("error: ").unwrap().1.to_string())
        .collect();
    assert_eq!(out.status.success(), errors.is_empty(), "{text}");
    errors
}

/// Dolphin's service menu. `desktop-file-validate` follows the freedesktop specification, where
/// `Type=Service` is a KDE-reserved type on which `MimeType` and `Actions` are "only valid for
/// type Application" — yet KDE's service menus are exactly `Type=Service` with `MimeType` (which
/// files) and `Actions` (the entries). So the real file is validated and must produce those two
/// errors and nothing else: the tool still checks every other key, the action groups and each
/// `Exec` line's quoting and field codes. A copy turned into an Application (the one change:
/// Type, plus the main-group Exec an Application needs) must then pass with no error at all.
#[test]
fn the_dolphin_service_menu_is_valid_as_kde_reads_it() {
    let path = desktop("dolphin/dbxport.desktop");
    assert_eq!(
        validation_errors(&path),
        [
            "key \"MimeType\" is present in group \"Desktop Entry\", but the type is \"Service\" while this key is only valid for type \"Application\"",
            "key \"Actions\" is present in group \"Desktop Entry\", but the type is \"Service\" while this key is only valid for type \"Application\"",
        ]
    );
    let text = read("dolphin/dbxport.desktop");
    let dir = tempfile::tempdir().unwrap();
    let application = dir.path().join("dbxport.desktop");
    std::fs::write(
        &application,
        text.replace("\nType=Service\n", "\nType=Application\nExec=true\n"),
    )
    .unwrap();
    assert_eq!(validation_errors(&application), Vec::<String>::new());

    let groups = groups(&text);
    let (name, entry) = &groups[0];
    assert_eq!(name, "Desktop Entry");
    assert_eq!(value(entry, "Type"), Some("Service"));
    assert_eq!(
        value(entry, "X-KDE-ServiceTypes"),
        Some("KonqPopupMenu/Plugin")
    );
    assert_eq!(value(entry, "MimeType"), Some("image/*;video/*;"));
    assert_eq!(value(entry, "Actions"), Some("send;sendResized;copyLink;"));
    for action in ["send", "sendResized", "copyLink"] {
        let (_, group) = groups
            .iter()
            .find(|(g, _)| *g == format!("Desktop Action {action}"))
            .unwrap_or_else(|| panic!("no group for {action}"));
        assert!(value(group, "Name").is_some() && value(group, "Icon").is_some());
        let exec = value(group, "Exec").unwrap();
        assert!(exec.starts_with("dbxportctl upload --notify "), "{exec}");
        assert!(exec.ends_with(" %F") && !exec.contains("--to"), "{exec}");
    }
}

/// Nemo's actions are key files of their own (`[Nemo Action]`, `.nemo_action`), which
/// `desktop-file-validate` refuses outright (first group not "Desktop Entry", wrong extension).
/// What it can check is the desktop-entry part: as a `[Desktop Entry]` Application, with
/// Nemo's own keys under `X-Nemo-`, `Name`, `Comment` and `Exec` (quoting, field codes) must
/// pass without an error.
#[test]
fn the_nemo_actions_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dbxport-send", "dbxport-send-resized", "dbxport-copy-link"] {
        let text = read(&format!("nemo/{name}.nemo_action"));
        let groups = groups(&text);
        assert_eq!(groups.len(), 1);
        let (group, keys) = &groups[0];
        assert_eq!(group, "Nemo Action");
        let mut entry = String::from("[Desktop Entry]\nType=Application\n");
        for (key, value) in keys {
            let key = match key.as_str() {
                "Name" | "Comment" | "Exec" => key.clone(),
                nemo => format!("X-Nemo-{nemo}"),
            };
            entry.push_str(&format!("{key}={value}\n"));
        }
        let path = dir.path().join(format!("{name}.desktop"));
        std::fs::write(&path, entry).unwrap();
        assert_eq!(validation_errors(&path), Vec::<String>::new(), "{name}");

        assert_eq!(value(keys, "Selection"), Some("notnone"));
        assert_eq!(value(keys, "Mimetypes"), Some("image/*;video/*;"));
        // Nemo shows an action when the extension OR the type matches: Extensions would widen it.
        assert_eq!(value(keys, "Extensions"), None);
        let exec = value(keys, "Exec").unwrap();
        assert!(exec.starts_with("dbxportctl upload --notify ") && exec.ends_with(" %F"));
        assert!(!exec.contains("--to"), "{exec}");
    }
}

/// The `<command>` of each of our Thunar actions.
fn thunar_commands(text: &str) -> Vec<String> {
    text.split("<command>")
        .skip(1)
        .map(|rest| rest.split_once("</command>").unwrap().0.to_string())
        .collect()
}

#[test]
fn the_thunar_actions_are_well_formed() {
    let path = desktop("thunar/uca.xml");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg(&path)
        .output()
        .expect("xmllint is needed (Debian package libxml2-utils; .ci/run installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("thunar/uca.xml");
    let actions: Vec<&str> = text.split("<action>").skip(1).collect();
    assert_eq!(
        actions.len(),
        4,
        "three direct actions and the export dialog"
    );
    for action in actions {
        assert!(action.contains("<unique-id>dbxport-"), "{action}");
        assert!(action.contains("<image-files/>"), "{action}");
        // The dialog is for photos; the direct actions take videos too.
        let dialog = action.contains("<command>dbxport-export %F</command>");
        assert_eq!(action.contains("<video-files/>"), !dialog, "{action}");
    }
    for command in thunar_commands(&text).iter().filter(|c| !is_dialog(c)) {
        assert!(command.starts_with("dbxportctl upload --notify ") && command.ends_with(" %F"));
        assert!(!command.contains("--to"), "{command}");
    }
}

/// A menu command that opens the export dialog (its own tests drive it under Xvfb:
/// `dialog/tests/desktop/`), rather than sending directly.
fn is_dialog(command: &str) -> bool {
    command.starts_with("dbxport-export ")
}

/// "Send to Dropbox…" in every file manager opens the export dialog with the selection (%F,
/// or Nautilus's list), for photos; each file is valid as its own format's checker reads it.
#[test]
fn send_to_dropbox_opens_the_export_dialog_in_every_file_manager() {
    let dolphin = desktop("dolphin/dbxport-export.desktop");
    // As for dbxport.desktop: KDE's Service type with MimeType and Actions, nothing else.
    assert_eq!(validation_errors(&dolphin).len(), 2);
    let text = read("dolphin/dbxport-export.desktop");
    let groups_ = groups(&text);
    assert_eq!(value(&groups_[0].1, "MimeType"), Some("image/*;"));
    assert_eq!(value(&groups_[0].1, "Actions"), Some("dialog;"));
    let (_, action) = groups_
        .iter()
        .find(|(g, _)| g == "Desktop Action dialog")
        .unwrap();
    assert_eq!(value(action, "Name"), Some("Send to Dropbox…"));
    assert_eq!(value(action, "Exec"), Some("dbxport-export %F"));

    let nemo = read("nemo/dbxport-export.nemo_action");
    let keys = &groups(&nemo)[0].1;
    assert_eq!(value(keys, "Exec"), Some("dbxport-export %F"));
    assert_eq!(value(keys, "Mimetypes"), Some("image/*;"));
    assert_eq!(value(keys, "Quote"), Some("double"));

    let script = desktop("nautilus/Send to Dropbox…");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "not executable");
    let out = Command::new("sh").arg("-n").arg(&script).output().unwrap();
    assert!(out.status.success());
    // Run with a stand-in for the dialog: it is handed the selection, names with spaces whole.
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("args");
    let stand_in = dir.path().join("dbxport-export");
    std::fs::write(
        &stand_in,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", got.display()),
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&script).unwrap().replace(
        "\ndbxport_export=dbxport-export\n",
        &format!("\ndbxport_export='{}'\n", stand_in.display()),
    );
    let runnable = dir.path().join("script");
    std::fs::write(&runnable, text).unwrap();
    let status = Command::new("sh")
        .arg(&runnable)
        .env(
            "NAUTILUS_SCRIPT_SELECTED_FILE_PATHS",
            "/p/a flower.jpg\n/p/the sea.jpg\n",
        )
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&got).unwrap(),
        "/p/a flower.jpg\n/p/the sea.jpg\n"
    );
}

const NAUTILUS: [&str; 3] = [
    "Send to Dropbox",
    "Send to Dropbox (resized)",
    "Copy Dropbox link",
];

#[test]
fn the_nautilus_scripts_are_executable_shell() {
    for name in NAUTILUS {
        let path = desktop(&format!("nautilus/{name}"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is not executable");
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!read(&format!("nautilus/{name}")).contains("--to"));
    }
}

/// Splits a desktop-entry `Exec` value into arguments as the specification says (spaces
/// separate; double quotes group, with `\` escaping inside them), putting `files` for `%F`.
fn exec_argv(exec: &str, files: &[PathBuf]) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = exec.chars();
    let mut current: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' => args.extend(current.take()),
            '"' => {
                let arg = current.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => arg.extend(chars.next()),
                        c => arg.push(c),
                    }
                }
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    args.extend(current);
    args.into_iter()
        .flat_map(|arg| {
            if arg == "%F" {
                files.iter().map(|f| f.display().to_string()).collect()
            } else {
                vec![arg]
            }
        })
        .collect()
}

/// Each menu action of each file manager, as the command its file manager would run for
/// `files`: the label and the command, in the sandbox's environment with `path` as PATH.
fn menu_commands(w: &World, files: &[PathBuf], path: &str) -> Vec<(String, Command)> {
    let command = |program: &str| {
        let mut c = w.sandbox.command(program);
        c.env("PATH", path);
        c
    };
    let mut commands = Vec::new();

    // Dolphin (KIO) expands %F into one argument per file and runs the program directly.
    let dolphin = groups(&read("dolphin/dbxport.desktop"));
    for (group, keys) in dolphin
        .iter()
        .filter(|(g, _)| g.starts_with("Desktop Action "))
    {
        let argv = exec_argv(value(keys, "Exec").unwrap(), files);
        let mut c = command(&argv[0]);
        c.args(&argv[1..]);
        commands.push((format!("Dolphin: {group}"), c));
    }

    // Nautilus runs the script in the folder, the selection in the environment, one per line.
    for name in NAUTILUS {
        let mut c = command(desktop(&format!("nautilus/{name}")).to_str().unwrap());
        let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
        c.env("NAUTILUS_SCRIPT_SELECTED_FILE_PATHS", list)
            .current_dir(files[0].parent().unwrap());
        commands.push((format!("Nautilus: {name}"), c));
    }

    // Nemo puts each path in place of %F — in double quotes with Quote=double, as it is
    // without — then splits the line as a shell does (g_spawn_command_line_async).
    for name in ["dbxport-send", "dbxport-send-resized", "dbxport-copy-link"] {
        let text = read(&format!("nemo/{name}.nemo_action"));
        let keys = &groups(&text)[0].1;
        let quote = if value(keys, "Quote") == Some("double") {
            "\""
        } else {
            ""
        };
        let quoted: Vec<String> = files
            .iter()
            .map(|f| format!("{quote}{}{quote}", f.display()))
            .collect();
        let line = value(keys, "Exec")
            .unwrap()
            .replace("%F", &quoted.join(" "));
        let mut c = command("sh");
        c.arg("-c").arg(line);
        commands.push((format!("Nemo: {name}"), c));
    }

    // Thunar puts each path shell-quoted (g_shell_quote: single quotes) and splits likewise.
    for line in thunar_commands(&read("thunar/uca.xml"))
        .into_iter()
        .filter(|c| !is_dialog(c))
    {
        let quoted: Vec<String> = files.iter().map(|f| format!("'{}'", f.display())).collect();
        let line = line.replace("%F", &quoted.join(" "));
        let mut c = command("sh");
        c.arg("-c").arg(&line);
        commands.push((format!("Thunar: {line}"), c));
    }
    commands
}

/// A photo with spaces in its name, copied from a small sample.
fn spaced_photo(w: &World, sample: &str, name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/photos")
        .join(sample);
    let dir = w.photo_dir().join("Summer 2024");
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

#[system_test]
async fn every_menu_action_sends_both_selected_photos() {
    let w = world(small_config()).await;
    let (_server, shown) = fake_server(w.sandbox.bus.address()).await;
    let files = vec![
        spaced_photo(&w, "flower.jpg", "a flower.jpg"),
        spaced_photo(&w, "sample1.jpg", "the sea at dawn.jpg"),
    ];
    // The built dbxportctl first on PATH, after a stand-in for wl-copy that keeps what it is
    // given (there is no display to hold a clipboard here).
    let tools = w.dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let clipboard = w.dir.path().join("clipboard");
    let wl_copy = tools.join("wl-copy");
    std::fs::write(
        &wl_copy,
        format!("#!/bin/sh\ncat > '{}'\n", clipboard.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wl_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_dbxportctl"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}:{}",
        tools.display(),
        built.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let uploader = w.uploader().await;
    let commands = menu_commands(&w, &files, &path);
    assert_eq!(commands.len(), 12, "3 actions for each of 4 file managers");
    let mut copied = 0;
    for (label, mut command) in commands {
        let before = jobs(&uploader, &[])
            .await
            .iter()
            .map(|j| j.id)
            .max()
            .unwrap_or(0);
        let _ = std::fs::remove_file(&clipboard);
        let out: Output = command.output().unwrap();
        assert!(
            out.status.success(),
            "{label}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let new: Vec<JobInfo> = jobs(&uploader, &[])
            .await
            .into_iter()
            .filter(|j| j.id > before)
            .collect();
        let mut sources: Vec<&str> = new.iter().map(|j| j.source.as_str()).collect();
        sources.sort();
        assert_eq!(
            sources,
            [files[0].to_str().unwrap(), files[1].to_str().unwrap()],
            "{label}"
        );
        for job in &new {
            assert!(job.remote_path.starts_with("/Default/"), "{label}: {job:?}");
        }
        if label.contains("copy") || label.contains("Copy") {
            // It waited for the batch; the link is on the clipboard and the user was told.
            assert!(new.iter().all(|j| j.state == "done"), "{label}: {new:?}");
            let link = std::fs::read_to_string(&clipboard)
                .unwrap_or_else(|_| panic!("{label}: nothing was copied"));
            assert!(
                link.starts_with("https://www.dropbox.com/scl/fo/"),
                "{label}: {link}"
            );
            copied += 1;
            let told = wait_for("the link's notice", || async {
                let shown = shown.lock().unwrap();
                let told: Vec<_> = shown
                    .iter()
                    .filter(|n| n.body.contains(&format!("Link copied: {link}")))
                    .collect();
                (told.len() == copied).then(|| told[copied - 1].clone())
            })
            .await;
            assert_eq!(told.summary, "2 photos sent to Dropbox", "{label}");
        }
    }
    let all = wait_for("every job to end", || async {
        let all = jobs(&uploader, &[]).await;
        all.iter()
            .all(|j| matches!(j.state.as_str(), "done" | "failed" | "cancelled"))
            .then_some(all)
    })
    .await;
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|j| j.state == "done"), "{all:#?}");
    // Each click was confirmed at once, naming the folder the daemon chose.
    let queued = shown
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.summary == "2 photos queued for /Default")
        .count();
    assert_eq!(queued, 12);
}

#[system_test]
async fn a_waited_upload_tells_how_the_batch_ended() {
    let w = world(small_config()).await;
    let (_server, shown) = fake_server(w.sandbox.bus.address()).await;
    let good = spaced_photo(&w, "flower.jpg", "a flower.jpg");
    // The daemon cannot read this one (it runs without root's file access); dbxportctl can.
    let locked = spaced_photo(&w, "sample1.jpg", "locked photo.jpg");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let missing = w.photo_dir().join("gone.jpg");
    let out = w.ctl(&[
        "upload",
        "--notify",
        "--wait",
        "--to",
        "/Told",
        good.to_str().unwrap(),
        locked.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Vec<_> = shown
        .lock()
        .unwrap()
        .iter()
        // The daemon's own batch notice carries actions; dbxportctl's do not.
        .filter(|n| n.actions.is_empty())
        .cloned()
        .collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert_eq!(shown[0].summary, "2 photos queued for /Told");
    assert!(
        shown[0].body.starts_with("Not sent:\n"),
        "{}",
        shown[0].body
    );
    assert!(shown[0].body.contains("gone.jpg"), "{}", shown[0].body);
    assert_eq!(
        shown[1].summary,
        "1 of 2 photos could not be sent to Dropbox"
    );
    for line in ["1 photo in /Told", "locked photo.jpg", "gone.jpg"] {
        assert!(shown[1].body.contains(line), "{line}: {}", shown[1].body);
    }
}

#[system_test]
async fn notify_tells_what_went_wrong_without_a_terminal() {
    // No daemon on the bus (and no activation file to start one).
    let (dir, sandbox) = bare_sandbox().await;
    let (_server, shown) = fake_server(sandbox.bus.address()).await;
    let photo = dir.path().join("a photo.jpg");
    std::fs::copy(&sample_photos()[0], &photo).unwrap();
    let out = sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["upload", "--notify"])
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dbxportd is not running"), "{stderr}");
    let notice = wait_for("the failure's notice", || async {
        shown.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(notice.app_name, "dbxport");
    assert_eq!(notice.summary, "Photos not sent to Dropbox");
    assert!(
        notice.body.starts_with("dbxportd is not running"),
        "{}",
        notice.body
    );

    // Nothing that can go: told too, with each file's reason.
    let missing = dir.path().join("gone.jpg");
    let out = sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["upload", "--notify"])
        .arg(&missing)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let notice = wait_for("the refusal's notice", || async {
        shown.lock().unwrap().get(1).cloned()
    })
    .await;
    assert_eq!(notice.summary, "Nothing sent to Dropbox");
    assert!(notice.body.contains("gone.jpg"), "{}", notice.body);
    assert_eq!(notice.body.lines().count(), 3, "{}", notice.body);

    // Without --notify, stderr only.
    let out = sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .arg("upload")
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(shown.lock().unwrap().len(), 2);
}

#[system_test]
async fn a_link_that_cannot_be_copied_fails_and_says_so() {
    let w = world(small_config()).await;
    let (_server, shown) = fake_server(w.sandbox.bus.address()).await;
    let photo = spaced_photo(&w, "flower.jpg", "a flower.jpg");
    // No clipboard tool on PATH.
    let empty = tempfile::tempdir().unwrap();
    let out = w
        .sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .env("PATH", empty.path())
        .args(["upload", "--notify", "--copy-link"])
        .arg(&photo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot copy the link"), "{stderr}");
    let outcome = shown
        .lock()
        .unwrap()
        .iter()
        .rfind(|n| n.actions.is_empty())
        .cloned()
        .expect("dbxportctl's outcome notice");
    assert!(outcome.body.contains("Link: https://"), "{}", outcome.body);
    assert!(outcome.body.contains("Not copied"), "{}", outcome.body);
}

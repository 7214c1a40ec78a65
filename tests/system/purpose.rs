//! KDE's Share menu (Purpose) running dbxport's plugin: a host that does what Purpose's
//! `ProcessJob` does (listen on a local socket, start the kpackage's `contents/code/main.*`
//! with `--server SOCKET --pluginType Export --pluginPath MAIN`, write the byte count line and
//! the CBOR map of `urls` and `mimeType`, read JSON lines until the process exits), against the
//! plugin `dbxportctl install` put in place. The shared photos reach the emulator with rising
//! percentages and the folder's link as output (the user's photos by path, a screenshot in a
//! temporary folder as a copy the daemon holds before its host deletes it); a daemon that is
//! not there and a user who is not logged in are told as Purpose errors, with nothing sent.
//! And once in KDE Purpose itself (`purpose_host/share.qml`): its model offers the plugin for
//! photos, its job runs it, and the link or the reason comes back as Purpose's result.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use ciborium::Value as Cbor;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helper::*;

/// A home of its own with what `dbxportctl install --only WHICH` put there.
pub struct Installed {
    pub dir: tempfile::TempDir,
}

impl Installed {
    pub fn new(which: &str) -> Installed {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbxportctl"))
            .args(["install", "--only", which])
            .env("HOME", dir.path().join("home"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", dir.path())
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", dir.path().join("no-bus").display()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Installed { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The kpackage's folder.
    fn package(&self) -> PathBuf {
        self.path("data/kpackage/Purpose/io.github.dbxport1")
    }

    /// The executable as Purpose finds it (`Purpose::createMetaData`): the first `main.*` in
    /// `contents/code`.
    fn main(&self) -> PathBuf {
        let code = self.package().join("contents/code");
        let mut mains: Vec<PathBuf> = std::fs::read_dir(&code)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("main.")
            })
            .collect();
        assert_eq!(mains.len(), 1, "{mains:?}");
        mains.remove(0)
    }
}

/// What the host saw: the JSON lines and how the process ended.
struct Shared {
    lines: Vec<serde_json::Value>,
    status: ExitStatus,
}

impl Shared {
    fn percents(&self) -> Vec<i64> {
        self.lines
            .iter()
            .filter_map(|l| l.get("percent"))
            .map(|p| {
                p.as_i64()
                    .expect("percent is an integer (Purpose reads toInt)")
            })
            .collect()
    }

    fn error(&self) -> Option<(i64, String)> {
        let line = self.lines.iter().find(|l| l.get("error").is_some())?;
        Some((
            line["error"].as_i64().unwrap(),
            line["errorText"].as_str().unwrap_or_default().to_string(),
        ))
    }
}

/// The Export job's data as Qt sends it: `QCborValue::fromJsonValue(QJsonObject)`, a map with
/// text keys in the object's (sorted) order.
fn export_data(urls: &[String], mime: &str) -> Vec<u8> {
    let map = Cbor::Map(vec![
        (Cbor::Text("mimeType".into()), Cbor::Text(mime.into())),
        (
            Cbor::Text("urls".into()),
            Cbor::Array(urls.iter().map(|u| Cbor::Text(u.clone())).collect()),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&map, &mut bytes).unwrap();
    bytes
}

/// `QUrl::fromLocalFile(path).toString()`: spaces stay as they are.
fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Shares `files` as Purpose does, with the plugin running in `command`'s environment.
async fn share(command: std::process::Command, main: &Path, files: &[PathBuf]) -> Shared {
    share_with(command, main, files, false).await
}

/// `share`; with `delete`, the host deletes the files as soon as the plugin says the upload
/// has started (its first percentage), as Spectacle may with a screenshot.
async fn share_with(
    mut command: std::process::Command,
    main: &Path,
    files: &[PathBuf],
    delete: bool,
) -> Shared {
    let sockets = tempfile::tempdir().unwrap();
    let server = sockets.path().join("randomname-1234567");
    let listener = tokio::net::UnixListener::bind(&server).unwrap();
    command
        .arg("--server")
        .arg(&server)
        .args(["--pluginType", "Export", "--pluginPath"])
        .arg(main);
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut socket, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("the plugin connects")
        .unwrap();
    let urls: Vec<String> = files.iter().map(|f| file_url(f)).collect();
    let data = export_data(&urls, "image/jpeg");
    socket
        .write_all(format!("{}\n", data.len()).as_bytes())
        .await
        .unwrap();
    socket.write_all(&data).await.unwrap();
    socket.flush().await.unwrap();
    // Purpose reads lines as they come and once more after the process has exited.
    let mut reader = BufReader::new(socket);
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
            .await
            .expect("the plugin answers or closes")
            .unwrap();
        if n == 0 {
            break;
        }
        assert!(line.ends_with('\n'), "a line cut short: {line:?}");
        if delete && lines.is_empty() {
            for file in files {
                std::fs::remove_file(file).unwrap();
            }
        }
        lines.push(
            serde_json::from_str::<serde_json::Value>(&line)
                .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}")),
        );
    }
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the plugin exits")
        .unwrap();
    Shared { lines, status }
}

/// Two photos whose names (and folder) hold spaces, one large enough to show progress.
fn two_photos(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.join("My Trip");
    std::fs::create_dir_all(&dir).unwrap();
    let samples = sample_photos();
    let files = vec![
        dir.join("beach day 1.jpg"),
        dir.join("the old  harbour.jpg"),
    ];
    std::fs::copy(&samples[0], &files[0]).unwrap();
    std::fs::copy(&samples[1], &files[1]).unwrap();
    files
}

/// Whether the daemon holds its own (spooled) copy of each job's file.
async fn spooled(w: &World) -> Vec<bool> {
    w.uploader()
        .await
        .list_jobs(dict(&[]))
        .await
        .unwrap()
        .iter()
        .map(|job| {
            job.get("spooled")
                .and_then(|v| bool::try_from(&**v).ok())
                .unwrap()
        })
        .collect()
}

#[system_test]
async fn the_share_menu_sends_the_photos_and_gets_the_folders_link() {
    let w = world(small_config()).await;
    let installed = Installed::new("purpose");
    // The user's own photos (Dolphin, Gwenview): not in a temporary folder, so sent by path.
    // The build's scratch folder, unless the checkout itself is under /tmp (a CI clone): then
    // /dev/shm, which no host uses for what it shares.
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let own = if [
        std::env::temp_dir().as_path(),
        Path::new("/tmp"),
        Path::new("/var/tmp"),
    ]
    .iter()
    .any(|t| scratch.starts_with(t))
    {
        Path::new("/dev/shm")
    } else {
        scratch
    };
    let home = tempfile::tempdir_in(own).unwrap();
    let files = two_photos(home.path());
    // Slow enough that the batch's bytes are seen going, not only their end.
    w.uploader()
        .await
        .set_bandwidth_limit(3_000_000)
        .await
        .unwrap();

    let shared = share(
        w.sandbox.command(installed.main()),
        &installed.main(),
        &files,
    )
    .await;

    assert!(
        shared.status.success(),
        "{:?}: {:?}",
        shared.status,
        shared.lines
    );
    assert_eq!(shared.error(), None, "{:?}", shared.lines);
    let percents = shared.percents();
    assert!(
        percents.windows(2).all(|w| w[0] < w[1]),
        "percentages must rise: {percents:?}"
    );
    assert_eq!(percents.first(), Some(&0), "{percents:?}");
    assert_eq!(percents.last(), Some(&100), "{percents:?}");
    assert!(
        percents.iter().any(|p| (1..100).contains(p)),
        "no progress between the start and the end: {percents:?}"
    );
    // The last line is the output, with the link the emulator made for the folder.
    let last = shared.lines.last().unwrap();
    let url = last["output"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{last}"));
    let (client, token) = elsewhere(&w);
    let links = client
        .list_shared_links(
            &token,
            &dbxport::dropbox::ListSharedLinksArg {
                path: Some("/Default".into()),
                direct_only: Some(true),
                cursor: None,
            },
        )
        .await
        .unwrap();
    let made: Vec<&str> = links.links.iter().map(|l| l.url()).collect();
    assert_eq!(made, vec![url], "the output is not the folder's link");
    assert_one_copy_each(&w, &files, "/default");
    assert_eq!(spooled(&w).await, vec![false, false]);
}

#[system_test]
async fn a_shared_screenshot_is_copied_before_its_host_deletes_it() {
    let w = world(small_config()).await;
    let installed = Installed::new("purpose");
    // Spectacle shares a screenshot from a temporary folder and may delete it at once.
    let shots = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let files = two_photos(shots.path());
    let hashes: Vec<String> = files.iter().map(|f| hash(f)).collect();

    let shared = share_with(
        w.sandbox.command(installed.main()),
        &installed.main(),
        &files,
        true,
    )
    .await;

    assert!(
        shared.status.success(),
        "{:?}: {:?}",
        shared.status,
        shared.lines
    );
    assert!(shared.lines.last().unwrap()["output"]["url"].is_string());
    assert!(files.iter().all(|f| !f.exists()));
    assert_eq!(spooled(&w).await, vec![true, true]);
    let stored = w.sandbox.emulator.files();
    for hash in hashes {
        assert!(stored.iter().any(|s| s.content_hash == hash), "{stored:?}");
    }
}

#[system_test]
async fn the_share_menu_is_told_when_dbxportd_is_not_there() {
    // A bus, but no daemon and no activation file for it.
    let (_dir, sandbox) = bare_sandbox().await;
    let installed = Installed::new("purpose");
    let photos = tempfile::tempdir().unwrap();
    let files = two_photos(photos.path());

    let shared = share(sandbox.command(installed.main()), &installed.main(), &files).await;

    assert_eq!(shared.status.code(), Some(1), "{:?}", shared.lines);
    let (code, text) = shared
        .error()
        .unwrap_or_else(|| panic!("{:?}", shared.lines));
    assert_eq!(code, 100, "{text}");
    assert!(text.contains("dbxportd is not running"), "{text}");
    assert_eq!(shared.lines.len(), 1, "only the error: {:?}", shared.lines);
    assert!(sandbox.emulator.files().is_empty());
}

#[system_test]
async fn the_share_menu_is_told_to_log_in_and_nothing_is_queued() {
    let w = world_with(small_config(), Setup::default()).await;
    let installed = Installed::new("purpose");
    let files = two_photos(&w.photo_dir());

    let shared = share(
        w.sandbox.command(installed.main()),
        &installed.main(),
        &files,
    )
    .await;

    assert_eq!(shared.status.code(), Some(5), "{:?}", shared.lines);
    let (code, text) = shared
        .error()
        .unwrap_or_else(|| panic!("{:?}", shared.lines));
    assert_eq!(code, 101, "{text}");
    assert!(text.contains("dbxportctl login"), "{text}");
    assert!(
        w.all_jobs().await.is_empty(),
        "nothing may wait for a login"
    );
    assert!(w.sandbox.emulator.files().is_empty());
}

#[system_test]
async fn the_share_menu_is_told_which_photos_are_refused_and_none_go() {
    let w = world(small_config()).await;
    let installed = Installed::new("purpose");
    let mut files = two_photos(&w.photo_dir());
    files.push(w.photo_dir().join("gone already.jpg"));

    let shared = share(
        w.sandbox.command(installed.main()),
        &installed.main(),
        &files,
    )
    .await;

    assert_eq!(shared.status.code(), Some(3), "{:?}", shared.lines);
    let (code, text) = shared
        .error()
        .unwrap_or_else(|| panic!("{:?}", shared.lines));
    assert_eq!(code, 102, "{text}");
    assert!(text.contains("gone already.jpg"), "{text}");
    assert!(w.all_jobs().await.is_empty(), "all or nothing");
}

/// What Purpose reads of the kpackage, checked as its code reads it: `KPlugin` (Id, Name,
/// Icon), `X-Purpose-PluginTypes` holding the type (`AlternativesModel::isPluginAcceptable`),
/// every `X-Purpose-Constraints` entry in `name:value` form with a matcher Purpose has, and
/// matching photos but not other files (`constraintMatches`, `mimeTypeMatch`), no
/// `X-Purpose-Configuration` argument nobody would supply (`Configuration::isReady`), and one
/// executable `contents/code/main.*` (`createMetaData`, `ProcessJob`).
#[test]
fn the_kpackage_is_what_purpose_reads() {
    let installed = Installed::new("purpose");
    let text = std::fs::read_to_string(installed.package().join("metadata.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["Id", "Name", "Icon"] {
        assert!(
            meta["KPlugin"][key].as_str().is_some_and(|v| !v.is_empty()),
            "KPlugin.{key}"
        );
    }
    assert_eq!(meta["KPlugin"]["Id"], "io.github.dbxport1");
    assert!(
        meta["X-Purpose-PluginTypes"]
            .as_array()
            .unwrap()
            .contains(&"Export".into())
    );
    assert!(meta.get("X-Purpose-Configuration").is_none());
    let constraints = meta["X-Purpose-Constraints"].as_array().unwrap();
    assert!(!constraints.is_empty());
    // All constraints must match (an array among them is an OR), as Purpose evaluates them.
    let accepts = |mime: &str| constraints.iter().all(|c| constraint_matches(c, mime));
    for mime in ["image/jpeg", "image/png", "image/heic", "IMAGE/TIFF"] {
        assert!(accepts(mime), "{mime}");
    }
    for mime in ["application/pdf", "text/plain", "*/*", "inode/directory"] {
        assert!(!accepts(mime), "{mime}");
    }
    use std::os::unix::fs::PermissionsExt;
    let main = installed.main();
    assert!(std::fs::metadata(&main).unwrap().permissions().mode() & 0o111 != 0);
    let script = std::fs::read_to_string(&main).unwrap();
    assert!(
        script.contains(&format!(
            "\ndbxportctl='{}'\n",
            env!("CARGO_BIN_EXE_dbxportctl")
        )),
        "{script}"
    );
    let check = std::process::Command::new("sh")
        .arg("-n")
        .arg(&main)
        .output()
        .unwrap();
    assert!(check.status.success());
}

/// Purpose's `constraintMatches` for a `mimeType:` constraint (the only kind used here):
/// `(\w+):(.*)`, a value with `*` as a case-insensitive wildcard over the whole type.
fn constraint_matches(constraint: &serde_json::Value, mime: &str) -> bool {
    if let Some(options) = constraint.as_array() {
        return options.iter().any(|o| constraint_matches(o, mime));
    }
    let text = constraint.as_str().expect("a constraint is a string");
    let (name, value) = text.split_once(':').expect("name:value");
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'),
        "{text}"
    );
    assert!(
        ["mimeType", "dbus", "application", "exec"].contains(&name),
        "Purpose has no matcher for {name}"
    );
    assert_eq!(name, "mimeType", "an unexpected constraint: {text}");
    assert!(
        value.contains('*'),
        "without a wildcard Purpose asks QMimeDatabase: {text}"
    );
    wildcard(&value.to_lowercase(), &mime.to_lowercase())
}

/// `QRegularExpression::wildcardToRegularExpression`, anchored: `*` is any run of characters
/// but `/`, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => {
            let rest = &pattern[1..];
            let mut candidates = vec![text];
            for (i, c) in text.char_indices() {
                if c == '/' {
                    break;
                }
                candidates.push(&text[i + c.len_utf8()..]);
            }
            candidates.into_iter().any(|t| wildcard(rest, t))
        }
        Some(p) => {
            let mut chars = text.chars();
            chars.next().is_some_and(|c| {
                (p == '?' || c == p) && wildcard(&pattern[p.len_utf8()..], chars.as_str())
            })
        }
    }
}

/// Shares `files` through KDE Purpose's own model and job (`purpose_host/share.qml` in
/// qmlscene, without a window), with the kpackage `installed` placed; returns what Purpose
/// printed and the job's result (`error`, `text`, `output`).
fn share_in_purpose(
    w: &World,
    installed: &Installed,
    files: &[PathBuf],
) -> (String, serde_json::Value) {
    let urls: Vec<String> = files.iter().map(|f| file_url(f)).collect();
    let qml = include_str!("purpose_host/share.qml")
        .replace("URLS", &serde_json::to_string(&urls).unwrap());
    let script = installed.path("share.qml");
    std::fs::write(&script, qml).unwrap();
    // Bounded: a host that never ends the job would otherwise hold the test for ever.
    let out = w
        .sandbox
        .command("timeout")
        .args(["120", "qmlscene"])
        .arg(&script)
        // Where `install` put the kpackage; the daemon's bus and the rest are the sandbox's.
        .env("XDG_DATA_HOME", installed.path("data"))
        .env("XDG_DATA_DIRS", "/usr/local/share:/usr/share")
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QT_QUICK_BACKEND", "software")
        .output()
        .expect("qmlscene runs (tests/deps installs it)");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains("OFFERED io.github.dbxport1 Dropbox (dbxport)"),
        "Purpose did not offer the plugin:\n{said}"
    );
    let result: serde_json::Value = said
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_else(|| panic!("no result ({:?}):\n{said}", out.status));
    // qmlscene's status says the same as the result: 0 done, 1 failed.
    let expected = if result["error"] == 0 { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expected), "{result}\n{said}");
    (said, result)
}

#[system_test]
async fn kdes_own_share_menu_offers_the_plugin_and_runs_it() {
    // Not a host written for the test: KDE Purpose's own model and job (its QML module, as
    // Plasma's share dialogs use it) find the kpackage `install` placed and run it.
    let w = world(small_config()).await;
    let installed = Installed::new("purpose");
    let home = tempfile::tempdir().unwrap();
    let files = two_photos(home.path());
    let (said, result) = share_in_purpose(&w, &installed, &files);
    assert_eq!(result["error"], 0, "{result}\n{said}");
    let url = result["output"]["url"].as_str().unwrap_or_default();
    assert!(url.starts_with("https://www.dropbox.com/"), "{result}");
    assert_one_copy_each(&w, &files, "/default");
    // Logged out: Purpose shows the plugin's reason and what to do, and nothing more goes.
    let out = w.ctl(&["logout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = w.all_jobs().await.len();
    let (said, result) = share_in_purpose(&w, &installed, &files);
    assert_ne!(result["error"], 0, "{result}\n{said}");
    let text = result["text"].as_str().unwrap_or_default();
    assert!(text.contains("run `dbxportctl login`"), "{result}");
    assert_eq!(w.all_jobs().await.len(), jobs);
}

//! `dbxportctl install` / `uninstall` in a home of the test's own: every file lands in its XDG
//! place with the right mode, running the built binaries; the unit still verifies; the user's
//! own Thunar actions survive; a second install changes nothing; uninstall leaves the tree as
//! it was before install, the user's queue, config and Thunar actions included.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER_ACTIONS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<actions>
<action>
\t<icon>utilities-terminal</icon>
\t<name>Open Terminal Here</name>
\t<unique-id>1700000000000000-1</unique-id>
\t<command>exo-open --working-directory %f --launch TerminalEmulator</command>
\t<description>Example for a custom action</description>
\t<patterns>*</patterns>
\t<startup-notify/>
\t<directories/>
</action>
</actions>
";

/// Every file and folder under `root` (by relative path): contents (None for a folder) and mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                stack.push(path);
                all.insert(relative, (None, mode));
            } else {
                all.insert(relative, (Some(std::fs::read(&path).unwrap()), mode));
            }
        }
    }
    all
}

/// The paths where two snapshots differ (added, removed or changed), for a readable failure.
fn differences(
    now: &BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>,
    then: &BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>,
) -> Vec<String> {
    let mut paths: Vec<&PathBuf> = now.keys().chain(then.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| now.get(*p) != then.get(*p))
        .map(|p| match (now.get(p), then.get(p)) {
            (Some((Some(a), _)), Some((Some(b), _))) if a != b => format!(
                "{}: now\n{}\nwas\n{}",
                p.display(),
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ),
            (a, b) => format!(
                "{}: {:?} / {:?}",
                p.display(),
                a.map(|x| x.1),
                b.map(|x| x.1)
            ),
        })
        .collect()
}

fn assert_same(
    now: &BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>,
    then: &BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>,
    what: &str,
) {
    let differences = differences(now, then);
    assert!(
        differences.is_empty(),
        "{what}:\n{}",
        differences.join("\n")
    );
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "config", "data", "state/dbxport", "cache", "run"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Home { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `dbxportctl ARGS` with this home's XDG directories, and a runtime directory and session
    /// bus address where nothing answers, so `systemctl --user` cannot reach the real user
    /// manager.
    fn ctl(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dbxportctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `ctl` without the check that it succeeded.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// `run` with more environment variables (PATH, XDG_DATA_DIRS: where hosts are found).
    /// By default no photo application is found (no program on PATH, no system data dirs),
    /// whatever this machine has installed; `env` comes after and may say otherwise.
    fn run_with(&self, args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dbxportctl"))
            .args(args)
            .env("PATH", self.path("no-programs"))
            .env("XDG_DATA_DIRS", self.path("no-data-dirs"))
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.path("run/no-bus").display()),
            )
            .output()
            .unwrap()
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    fn mode(&self, relative: &str) -> u32 {
        std::fs::metadata(self.path(relative))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

/// What install writes: path under the test's root, mode.
const INSTALLED: [(&str, u32); 20] = [
    ("config/systemd/user/dbxport.service", 0o644),
    ("data/dbus-1/services/io.github.dbxport1.service", 0o644),
    ("data/kio/servicemenus/dbxport.desktop", 0o755),
    ("data/nautilus/scripts/Send to Dropbox", 0o755),
    ("data/nautilus/scripts/Send to Dropbox (resized)", 0o755),
    ("data/nautilus/scripts/Copy Dropbox link", 0o755),
    ("data/nemo/actions/dbxport-send.nemo_action", 0o644),
    ("data/nemo/actions/dbxport-send-resized.nemo_action", 0o644),
    ("data/nemo/actions/dbxport-copy-link.nemo_action", 0o644),
    ("data/applications/io.github.dbxport1.Export.desktop", 0o644),
    (
        "data/metainfo/io.github.dbxport1.Export.metainfo.xml",
        0o644,
    ),
    (
        "data/icons/hicolor/scalable/apps/io.github.dbxport1.Export.svg",
        0o644,
    ),
    ("data/kio/servicemenus/dbxport-export.desktop", 0o755),
    ("data/nautilus/scripts/Send to Dropbox…", 0o755),
    ("data/nemo/actions/dbxport-export.nemo_action", 0o644),
    ("config/Thunar/uca.xml", 0o644),
    ("data/bash-completion/completions/dbxportctl", 0o644),
    ("data/zsh/site-functions/_dbxportctl", 0o644),
    ("config/fish/completions/dbxportctl.fish", 0o644),
    ("data/man/man1/dbxportctl.1", 0o644),
];

/// The program each line starting with `key` runs (its first word).
fn programs(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key))
        .map(|v| v.split(' ').next().unwrap().to_string())
        .collect()
}

fn assert_runs(programs: &[String], binary: &str, what: &str) {
    assert!(!programs.is_empty(), "{what}: no command");
    for program in programs {
        assert_eq!(program, binary, "{what}");
    }
    let meta = std::fs::metadata(binary).unwrap();
    assert!(meta.is_file() && meta.permissions().mode() & 0o111 != 0);
}

#[test]
fn install_puts_everything_in_place_and_uninstall_takes_exactly_that_out() {
    let home = Home::new();
    std::fs::create_dir_all(home.path("config/Thunar")).unwrap();
    std::fs::write(home.path("config/Thunar/uca.xml"), USER_ACTIONS).unwrap();
    // The user's own things, which uninstall must leave.
    std::fs::create_dir_all(home.path("config/dbxport")).unwrap();
    std::fs::write(home.path("config/dbxport/config.toml"), "[upload]\n").unwrap();
    std::fs::write(home.path("state/dbxport/queue"), "jobs").unwrap();
    let before = snapshot(home.dir.path());

    let dry = home.ctl(&["install", "--dry-run"]);
    assert_eq!(
        snapshot(home.dir.path()),
        before,
        "--dry-run wrote something"
    );
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout)
            .matches("would write")
            .count(),
        INSTALLED.len()
    );

    let out = home.ctl(&["install"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (file, mode) in INSTALLED {
        assert!(
            stdout.contains(&format!("wrote     {}", home.path(file).display())),
            "{file} not reported: {stdout}"
        );
        assert_eq!(home.mode(file), mode, "{file}");
    }
    assert!(stdout.contains("systemd: not reloaded"), "{stdout}");

    // Everything runs the built binaries.
    let ctl = env!("CARGO_BIN_EXE_dbxportctl");
    let daemon = env!("CARGO_BIN_EXE_dbxportd");
    let unit = home.read("config/systemd/user/dbxport.service");
    assert_runs(&programs(&unit, "ExecStart="), daemon, "unit");
    let activation = home.read("data/dbus-1/services/io.github.dbxport1.service");
    assert_runs(&programs(&activation, "Exec="), daemon, "activation");
    let dolphin = home.read("data/kio/servicemenus/dbxport.desktop");
    assert_eq!(programs(&dolphin, "Exec=").len(), 3);
    assert_runs(&programs(&dolphin, "Exec="), ctl, "Dolphin");
    for script in [
        "Send to Dropbox",
        "Send to Dropbox (resized)",
        "Copy Dropbox link",
    ] {
        let text = home.read(&format!("data/nautilus/scripts/{script}"));
        assert!(
            text.contains(&format!("\ndbxportctl='{ctl}'\n")),
            "{script}: {text}"
        );
    }
    for action in ["dbxport-send", "dbxport-send-resized", "dbxport-copy-link"] {
        let text = home.read(&format!("data/nemo/actions/{action}.nemo_action"));
        assert_runs(&programs(&text, "Exec="), ctl, action);
    }
    // "Send to Dropbox…": the export dialog beside dbxportctl (where `cargo install` and
    // packages put it; built or not, the files are the same).
    let export = std::path::Path::new(ctl)
        .with_file_name("dbxport-export")
        .display()
        .to_string();
    let app = home.path("data/applications/io.github.dbxport1.Export.desktop");
    let entry = home.read("data/applications/io.github.dbxport1.Export.desktop");
    assert_eq!(programs(&entry, "Exec="), std::slice::from_ref(&export));
    assert_eq!(programs(&entry, "TryExec="), std::slice::from_ref(&export));
    assert!(entry.contains("%F") && entry.contains("image/jpeg;") && entry.contains("image/heic;"));
    let validate = Command::new("desktop-file-validate")
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        validate.status.success() && validate.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );
    let metainfo = Command::new("appstreamcli")
        .args(["validate", "--no-net"])
        .arg(home.path("data/metainfo/io.github.dbxport1.Export.metainfo.xml"))
        .output()
        .expect("appstreamcli is needed (Debian package appstream)");
    assert!(
        metainfo.status.success(),
        "{}",
        String::from_utf8_lossy(&metainfo.stdout)
    );
    let dolphin = home.read("data/kio/servicemenus/dbxport-export.desktop");
    assert_eq!(programs(&dolphin, "Exec="), std::slice::from_ref(&export));
    let nemo = home.read("data/nemo/actions/dbxport-export.nemo_action");
    assert_eq!(programs(&nemo, "Exec="), std::slice::from_ref(&export));
    let script = home.read("data/nautilus/scripts/Send to Dropbox…");
    assert!(
        script.contains(&format!("\ndbxport_export='{export}'\n")),
        "{script}"
    );
    let thunar = home.read("config/Thunar/uca.xml");
    let commands: Vec<String> = programs(&thunar.replace("\t<command>", "<command>"), "<command>");
    assert_eq!(commands.len(), 5, "the user's action and our four");
    assert_runs(&commands[1..4], ctl, "Thunar");
    assert_eq!(commands[4], export, "Thunar's Send to Dropbox…");
    assert!(thunar.starts_with(&USER_ACTIONS[..USER_ACTIONS.len() - "</actions>\n".len()]));
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg(home.path("config/Thunar/uca.xml"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );

    // The unit as written still verifies.
    let verify_runtime = tempfile::tempdir().unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(home.path("config/systemd/user/dbxport.service"))
        // Its own runtime directory: it leaves a folder there, which is not install's doing.
        .env("XDG_RUNTIME_DIR", verify_runtime.path())
        .env("HOME", home.path("home"))
        .output()
        .expect("systemd-analyze is needed (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );

    // Completions and the man page.
    let bash = home.path("data/bash-completion/completions/dbxportctl");
    let check = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in [
        "data/bash-completion/completions/dbxportctl",
        "data/zsh/site-functions/_dbxportctl",
        "config/fish/completions/dbxportctl.fish",
    ] {
        let text = home.read(shell);
        assert!(
            text.contains("upload") && text.contains("notify"),
            "{shell}"
        );
    }
    let man = home.read("data/man/man1/dbxportctl.1");
    assert!(
        man.lines().any(|l| l.starts_with(".TH dbxportctl 1")),
        "{man}"
    );
    // man-db renders it without a warning where it is installed (not needed in CI).
    if let Ok(out) = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(home.path("data/man/man1/dbxportctl.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("upload"));
    }

    // Again: nothing changes.
    let installed = snapshot(home.dir.path());
    let again = home.ctl(&["install"]);
    assert_same(
        &snapshot(home.dir.path()),
        &installed,
        "a second install changed files",
    );
    let again = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        again.matches("unchanged").count(),
        INSTALLED.len(),
        "{again}"
    );
    assert!(!again.contains("wrote"), "{again}");

    // Uninstall: back to the tree as it was, the user's actions, config and queue kept.
    home.ctl(&["uninstall", "--dry-run"]);
    assert_same(
        &snapshot(home.dir.path()),
        &installed,
        "--dry-run removed something",
    );
    let out = home.ctl(&["uninstall"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Kept: the queue"), "{stdout}");
    assert_same(&snapshot(home.dir.path()), &before, "after uninstall");
    let out = home.ctl(&["uninstall"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("removed"));
    assert_same(&snapshot(home.dir.path()), &before, "after uninstall");
}

#[test]
fn a_fresh_home_gets_a_thunar_file_of_its_own_and_loses_it_again() {
    let home = Home::new();
    let before = snapshot(home.dir.path());
    home.ctl(&["install"]);
    let thunar = home.read("config/Thunar/uca.xml");
    assert_eq!(thunar.matches("<unique-id>dbxport-").count(), 4);
    assert!(thunar.starts_with("<?xml") && thunar.trim_end().ends_with("</actions>"));
    home.ctl(&["uninstall"]);
    assert_same(&snapshot(home.dir.path()), &before, "traces left");
}

#[test]
fn completions_and_man_print_for_packagers() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = home.ctl(&["completions", shell]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("install"),
            "{shell}"
        );
    }
    let out = home.ctl(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH dbxportctl 1"));
}

#[test]
fn a_linked_thunar_file_is_written_through_and_a_foreign_one_stops_the_install() {
    let home = Home::new();
    // Kept in a dotfiles folder and linked into place.
    std::fs::create_dir_all(home.path("home/dotfiles")).unwrap();
    std::fs::write(home.path("home/dotfiles/uca.xml"), USER_ACTIONS).unwrap();
    std::fs::create_dir_all(home.path("config/Thunar")).unwrap();
    std::os::unix::fs::symlink(
        home.path("home/dotfiles/uca.xml"),
        home.path("config/Thunar/uca.xml"),
    )
    .unwrap();
    let before = snapshot(home.dir.path());
    home.ctl(&["install"]);
    let link = std::fs::symlink_metadata(home.path("config/Thunar/uca.xml")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let kept = home.read("home/dotfiles/uca.xml");
    assert_eq!(kept.matches("<unique-id>dbxport-").count(), 4);
    home.ctl(&["uninstall"]);
    assert_same(&snapshot(home.dir.path()), &before, "after uninstall");

    // Not Thunar's format: nothing at all is written.
    let home = Home::new();
    std::fs::create_dir_all(home.path("config/Thunar")).unwrap();
    std::fs::write(home.path("config/Thunar/uca.xml"), "not xml").unwrap();
    let before = snapshot(home.dir.path());
    let out = home.run(&["install"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a Thunar actions file"), "{stderr}");
    assert_same(
        &snapshot(home.dir.path()),
        &before,
        "a failed install wrote",
    );
}

/// The photo applications: placed when their host is found (a program on PATH, a settings
/// folder), or when named with `--only`; `--dry-run` says which and writes nothing; the
/// user's own darktable `luarc` and gThumb scripts keep their place; uninstall takes out
/// exactly what was placed.
#[test]
fn photo_apps_are_placed_when_found_or_named_and_uninstall_takes_them_out() {
    use std::ffi::OsString;
    let home = Home::new();
    // darktable and gThumb have run here (their settings folders, with the user's things);
    // Gwenview is on PATH (so KDE's Share menu is there); Contractor is nowhere.
    std::fs::create_dir_all(home.path("config/darktable")).unwrap();
    let luarc = "require \"tools/script_manager\"\n";
    std::fs::write(home.path("config/darktable/luarc"), luarc).unwrap();
    std::fs::create_dir_all(home.path("config/gthumb")).unwrap();
    let scripts = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scripts version=\"1.1\">\n<script id=\"1\" display-name=\"Mine\" command=\"echo %F\" shell-script=\"false\" for-each-file=\"false\" wait-command=\"false\"/>\n</scripts>\n";
    std::fs::write(home.path("config/gthumb/scripts.xml"), scripts).unwrap();
    let bin = home.path("home/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("gwenview"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(bin.join("gwenview"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = [
        ("PATH", path),
        ("XDG_DATA_DIRS", home.path("share").into_os_string()),
    ];
    let before = snapshot(home.dir.path());
    let run = |args: &[&str]| {
        let out = home.run_with(args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let dry = run(&["install", "--dry-run"]);
    assert_same(&snapshot(home.dir.path()), &before, "--dry-run wrote");
    assert!(dry.contains("would place purpose: KDE Share menu"), "{dry}");
    assert!(dry.contains("(gwenview is on PATH)"), "{dry}");
    assert!(dry.contains("would place darktable"), "{dry}");
    assert!(dry.contains("would place gthumb"), "{dry}");
    assert!(dry.contains("not placed contractor"), "{dry}");
    let plugin = "data/kpackage/Purpose/io.github.dbxport1";
    for file in [
        format!("{plugin}/metadata.json"),
        format!("{plugin}/contents/code/main.sh"),
        "config/darktable/lua/dbxport.lua".into(),
    ] {
        assert!(
            dry.contains(&format!("would write {}", home.path(&file).display())),
            "{file}: {dry}"
        );
    }

    let out = run(&["install"]);
    assert!(out.contains("placed purpose"), "{out}");
    assert_eq!(home.mode(&format!("{plugin}/contents/code/main.sh")), 0o755);
    assert_eq!(home.mode(&format!("{plugin}/metadata.json")), 0o644);
    let lua = home.read("config/darktable/lua/dbxport.lua");
    let ctl = env!("CARGO_BIN_EXE_dbxportctl");
    assert!(
        lua.contains(&format!("\nlocal dbxportctl = \"{ctl}\"\n")),
        "{lua}"
    );
    let luac = Command::new("luac5.4")
        .args(["-p"])
        .arg(home.path("config/darktable/lua/dbxport.lua"))
        .output()
        .expect("luac5.4 is needed (Debian package lua5.4)");
    assert!(
        luac.status.success(),
        "{}",
        String::from_utf8_lossy(&luac.stderr)
    );
    let merged = home.read("config/darktable/luarc");
    assert!(
        merged.starts_with(luarc) && merged.contains("require \"dbxport\""),
        "{merged}"
    );
    let merged = home.read("config/gthumb/scripts.xml");
    assert!(merged.contains("id=\"1\"") && merged.contains("id=\"dbxport-send\""));
    assert!(
        merged.contains(&format!("command=\"{ctl} upload --notify %F\"")),
        "{merged}"
    );
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg(home.path("config/gthumb/scripts.xml"))
        .output()
        .unwrap();
    assert!(lint.status.success());
    assert!(!home.path("data/contractor").exists());
    // Again: nothing changes.
    let installed = snapshot(home.dir.path());
    run(&["install"]);
    assert_same(&snapshot(home.dir.path()), &installed, "a second install");

    let out = run(&["uninstall"]);
    assert!(out.contains("removed"), "{out}");
    assert_same(&snapshot(home.dir.path()), &before, "after uninstall");

    // Named: placed though nothing shows its host, and only what was named.
    let out = run(&["install", "--only", "contractor"]);
    assert!(out.contains("placed contractor"), "{out}");
    assert!(!out.contains("placed darktable"), "{out}");
    let contract = home.read("data/contractor/dbxport-send.contract");
    assert!(contract.contains(&format!("\nExec={ctl} upload --notify %F\n")));
    assert!(!home.path("config/darktable/lua").exists());
    assert_eq!(home.read("config/darktable/luarc"), luarc);
    assert!(!home.path(plugin).exists());
    run(&["uninstall"]);
    assert_same(&snapshot(home.dir.path()), &before, "after uninstall");

    let out = home.run_with(&["install", "--only", "shotwell"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no integration called \"shotwell\""));
    assert_same(
        &snapshot(home.dir.path()),
        &before,
        "a refused --only wrote",
    );
}

//! The files `install` writes and how they are made: each shipped file (unit, D-Bus
//! activation, menus), completions and the man page, with the paths of the programs they run
//! written into their command lines, and where each goes in the user's XDG directories.

use std::path::{Path, PathBuf};

use super::InstallError;
use crate::cli::manpage::{completion, man_page};

const UNIT: &str = include_str!("../../../systemd/dbxport.service");
const ACTIVATION: &str = include_str!("../../../dbus/io.github.dbxport1.service");
const DOLPHIN: &str = include_str!("../../../desktop/dolphin/dbxport.desktop");
/// The export dialog (`dbxport-export`, the `dialog/` crate): its application entry, AppStream
/// metadata, icon, and a "Send to Dropbox…" entry in each file manager's menu.
const EXPORT_DESKTOP: &str =
    include_str!("../../../desktop/export/io.github.dbxport1.Export.desktop");
const EXPORT_METAINFO: &str =
    include_str!("../../../desktop/export/io.github.dbxport1.Export.metainfo.xml");
const EXPORT_ICON: &str = include_str!("../../../desktop/export/io.github.dbxport1.Export.svg");
const EXPORT_DOLPHIN: &str = include_str!("../../../desktop/dolphin/dbxport-export.desktop");
const EXPORT_NAUTILUS: &str = include_str!("../../../desktop/nautilus/Send to Dropbox…");
const EXPORT_NEMO: &str = include_str!("../../../desktop/nemo/dbxport-export.nemo_action");
const NAUTILUS: [(&str, &str); 3] = [
    (
        "Send to Dropbox",
        include_str!("../../../desktop/nautilus/Send to Dropbox"),
    ),
    (
        "Send to Dropbox (resized)",
        include_str!("../../../desktop/nautilus/Send to Dropbox (resized)"),
    ),
    (
        "Copy Dropbox link",
        include_str!("../../../desktop/nautilus/Copy Dropbox link"),
    ),
];
const NEMO: [(&str, &str); 3] = [
    (
        "dbxport-send.nemo_action",
        include_str!("../../../desktop/nemo/dbxport-send.nemo_action"),
    ),
    (
        "dbxport-send-resized.nemo_action",
        include_str!("../../../desktop/nemo/dbxport-send-resized.nemo_action"),
    ),
    (
        "dbxport-copy-link.nemo_action",
        include_str!("../../../desktop/nemo/dbxport-copy-link.nemo_action"),
    ),
];

/// Where the files go: the XDG base directories of the current user.
#[derive(Debug, Clone)]
pub struct Places {
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub config: PathBuf,
    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub data: PathBuf,
}

impl Places {
    pub fn from_env() -> Result<Places, InstallError> {
        let base = directories::BaseDirs::new().ok_or(InstallError::NoHome)?;
        Ok(Places {
            config: base.config_dir().to_path_buf(),
            data: base.data_dir().to_path_buf(),
        })
    }

    pub fn unit(&self) -> PathBuf {
        self.config.join("systemd/user/dbxport.service")
    }

    /// Where `systemctl --user enable` links the unit.
    pub(super) fn enabled_link(&self) -> PathBuf {
        self.config
            .join("systemd/user/default.target.wants/dbxport.service")
    }

    pub fn thunar(&self) -> PathBuf {
        self.config.join("Thunar/uca.xml")
    }
}

/// The programs the installed files run.
#[derive(Debug, Clone)]
pub struct Programs {
    pub dbxportctl: PathBuf,
    pub dbxportd: PathBuf,
    /// The export dialog. Its entries are installed whether it is there or not (so the
    /// installed files do not depend on what was built): the application entry's `TryExec=`
    /// hides it until the program exists.
    pub export: PathBuf,
}

impl Programs {
    /// This `dbxportctl`, and the `dbxportd` beside it (as `cargo install` and packages put
    /// them), else the first on PATH; the same for `dbxport-export`, which otherwise is
    /// expected beside `dbxportctl`.
    pub fn find() -> Result<Programs, InstallError> {
        let dbxportctl = std::env::current_exe().map_err(InstallError::NoExe)?;
        let dbxportd = beside_or_on_path(&dbxportctl, "dbxportd")
            .ok_or_else(|| InstallError::NoDaemon(dbxportctl.clone()))?;
        let export = beside_or_on_path(&dbxportctl, "dbxport-export")
            .unwrap_or_else(|| dbxportctl.with_file_name("dbxport-export"));
        Ok(Programs {
            dbxportctl,
            dbxportd,
            export,
        })
    }
}

/// `name` beside `program`, else the first on PATH.
fn beside_or_on_path(program: &Path, name: &str) -> Option<PathBuf> {
    let beside = program.with_file_name(name);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A program's path as one word of a command line, in the syntax the desktop-entry `Exec=`
/// key, systemd's `ExecStart=`, D-Bus's `Exec=` and GLib's shell parsing (Nemo, Thunar) share:
/// bare when plain, else in double quotes. Characters one of them would read specially are
/// refused rather than escaped four different ways.
pub(super) fn program_word(path: &Path) -> Result<String, InstallError> {
    let text = path.to_string_lossy();
    if text.contains(['"', '\'', '\\', '$', '%', '`', '\n']) || text.contains('\u{FFFD}') {
        return Err(InstallError::UnsafePath(path.to_path_buf()));
    }
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-@,:~".contains(c));
    Ok(if plain {
        text.into_owned()
    } else {
        format!("\"{text}\"")
    })
}

/// `text` with the value of every line starting with `key` replaced by `program` followed by
/// whatever came after the value's first word (the arguments).
pub(super) fn rewrite_command(text: &str, key: &str, program: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        match line.strip_prefix(key) {
            Some(value) => {
                let rest = value.split_once(' ').map_or("\n", |(_, rest)| rest);
                out.push_str(key);
                out.push_str(program);
                if !rest.starts_with('\n') {
                    out.push(' ');
                }
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// One file `install` writes whole.
#[derive(Debug, Clone)]
pub struct Planned {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
}

/// What names a Nautilus script or Nemo action made for an export profile: install removes
/// those of profiles no longer in the config, uninstall all of them.
pub(super) const NAUTILUS_PROFILE_PREFIX: &str = "Send to Dropbox (profile ";
pub(super) const NEMO_PROFILE_PREFIX: &str = "dbxport-profile-";

/// The menu entry's label for profile `name`.
pub(super) fn profile_label(name: &str) -> String {
    format!("{NAUTILUS_PROFILE_PREFIX}{name})")
}

/// The Dolphin service menu with one action per profile after the shipped ones. Profile names
/// are letters, digits, '-' and '_' (`crate::profile::check_name`): nothing to quote.
fn dolphin_with(profiles: &[String]) -> String {
    let mut text = String::with_capacity(DOLPHIN.len() + 200 * profiles.len());
    for line in DOLPHIN.split_inclusive('\n') {
        match line.strip_prefix("Actions=") {
            Some(list) => {
                text.push_str("Actions=");
                text.push_str(list.trim_end());
                for name in profiles {
                    text.push_str(&format!("profile_{name};"));
                }
                text.push('\n');
            }
            None => text.push_str(line),
        }
    }
    for name in profiles {
        text.push_str(&format!(
            "\n[Desktop Action profile_{name}]\nName={}\nIcon=folder-remote\n\
             Exec=dbxportctl upload --notify --profile {name} %F\n",
            profile_label(name)
        ));
    }
    text
}

/// Every file `install` writes whole, with its contents and mode; `profiles` (the config's
/// export profiles, by name) each get a menu entry.
pub fn plan(
    places: &Places,
    programs: &Programs,
    profiles: &[String],
) -> Result<Vec<Planned>, InstallError> {
    let ctl = program_word(&programs.dbxportctl)?;
    let daemon = program_word(&programs.dbxportd)?;
    let export = program_word(&programs.export)?;
    let data = &places.data;
    let file = |path: PathBuf, contents: String, mode: u32| Planned {
        path,
        contents,
        mode,
    };
    let mut files = vec![
        file(
            places.unit(),
            rewrite_command(UNIT, "ExecStart=", &daemon),
            0o644,
        ),
        file(
            data.join("dbus-1/services/io.github.dbxport1.service"),
            rewrite_command(ACTIVATION, "Exec=", &daemon),
            0o644,
        ),
        // Plasma 6 lists a service menu only when it is executable.
        file(
            data.join("kio/servicemenus/dbxport.desktop"),
            rewrite_command(&dolphin_with(profiles), "Exec=", &ctl),
            0o755,
        ),
    ];
    for (name, script) in NAUTILUS {
        // The scripts name the program in a shell assignment: single quotes hold any path
        // program_word accepted.
        let program = format!("'{}'", programs.dbxportctl.display());
        files.push(file(
            data.join("nautilus/scripts").join(name),
            rewrite_command(script, "dbxportctl=", &program),
            0o755,
        ));
    }
    for (name, action) in NEMO {
        files.push(file(
            data.join("nemo/actions").join(name),
            rewrite_command(action, "Exec=", &ctl),
            0o644,
        ));
    }
    // One entry per export profile: "Send to Dropbox" with --profile NAME.
    let (_, send_script) = NAUTILUS[0];
    let (_, send_action) = NEMO[0];
    for name in profiles {
        let program = format!("'{}'", programs.dbxportctl.display());
        let script = send_script.replace(
            "upload --notify --",
            &format!("upload --notify --profile {name} --"),
        );
        files.push(file(
            data.join("nautilus/scripts").join(profile_label(name)),
            rewrite_command(&script, "dbxportctl=", &program),
            0o755,
        ));
        let action = send_action
            .replace(
                "Exec=dbxportctl upload --notify %F",
                &format!("Exec=dbxportctl upload --notify --profile {name} %F"),
            )
            .replace(
                "Name=Send to Dropbox\n",
                &format!("Name={}\n", profile_label(name)),
            );
        files.push(file(
            data.join("nemo/actions")
                .join(format!("{NEMO_PROFILE_PREFIX}{name}.nemo_action")),
            rewrite_command(&action, "Exec=", &ctl),
            0o644,
        ));
    }
    let app = "io.github.dbxport1.Export";
    files.extend([
        file(
            data.join(format!("applications/{app}.desktop")),
            rewrite_command(
                &rewrite_command(EXPORT_DESKTOP, "Exec=", &export),
                "TryExec=",
                &export,
            ),
            0o644,
        ),
        file(
            data.join(format!("metainfo/{app}.metainfo.xml")),
            EXPORT_METAINFO.to_owned(),
            0o644,
        ),
        file(
            data.join(format!("icons/hicolor/scalable/apps/{app}.svg")),
            EXPORT_ICON.to_owned(),
            0o644,
        ),
        file(
            data.join("kio/servicemenus/dbxport-export.desktop"),
            rewrite_command(EXPORT_DOLPHIN, "Exec=", &export),
            0o755,
        ),
        file(
            data.join("nautilus/scripts/Send to Dropbox…"),
            rewrite_command(
                EXPORT_NAUTILUS,
                "dbxport_export=",
                &format!("'{}'", programs.export.display()),
            ),
            0o755,
        ),
        file(
            data.join("nemo/actions/dbxport-export.nemo_action"),
            rewrite_command(EXPORT_NEMO, "Exec=", &export),
            0o644,
        ),
    ]);
    files.push(file(
        data.join("bash-completion/completions/dbxportctl"),
        completion(clap_complete::Shell::Bash),
        0o644,
    ));
    // zsh reads these only when the directory is on its fpath (see the README).
    files.push(file(
        data.join("zsh/site-functions/_dbxportctl"),
        completion(clap_complete::Shell::Zsh),
        0o644,
    ));
    files.push(file(
        places.config.join("fish/completions/dbxportctl.fish"),
        completion(clap_complete::Shell::Fish),
        0o644,
    ));
    files.push(file(data.join("man/man1/dbxportctl.1"), man_page(), 0o644));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_keep_their_arguments() {
        let text = "a\nExec=dbxportctl upload --notify %F\nExec=x\n";
        assert_eq!(
            rewrite_command(text, "Exec=", "\"/opt/my bin/dbxportctl\""),
            "a\nExec=\"/opt/my bin/dbxportctl\" upload --notify %F\nExec=\"/opt/my bin/dbxportctl\"\n"
        );
    }

    #[test]
    fn each_profile_gets_an_entry_in_every_menu() {
        let places = Places {
            config: "/h/.config".into(),
            data: "/h/.local/share".into(),
        };
        let programs = Programs {
            dbxportctl: "/usr/bin/dbxportctl".into(),
            dbxportd: "/usr/bin/dbxportd".into(),
            export: "/usr/bin/dbxport-export".into(),
        };
        let base = plan(&places, &programs, &[]).unwrap();
        let profiles = ["web".to_string(), "archive".to_string()];
        let files = plan(&places, &programs, &profiles).unwrap();
        assert_eq!(files.len(), base.len() + 2 * profiles.len());
        let find = |end: &str| {
            files
                .iter()
                .find(|f| f.path.ends_with(end))
                .unwrap_or_else(|| panic!("no {end}"))
        };
        let dolphin = &find("kio/servicemenus/dbxport.desktop").contents;
        assert!(
            dolphin.contains("Actions=send;sendResized;copyLink;profile_web;profile_archive;\n"),
            "{dolphin}"
        );
        assert!(dolphin.contains(
            "[Desktop Action profile_web]\nName=Send to Dropbox (profile web)\nIcon=folder-remote\n\
             Exec=/usr/bin/dbxportctl upload --notify --profile web %F\n"
        ));
        let script = find("nautilus/scripts/Send to Dropbox (profile web)");
        assert_eq!(script.mode, 0o755);
        assert!(script.contents.contains("dbxportctl='/usr/bin/dbxportctl'"));
        assert!(
            script
                .contents
                .contains("exec \"$dbxportctl\" upload --notify --profile web -- \"$@\"")
        );
        let nemo = &find("nemo/actions/dbxport-profile-archive.nemo_action").contents;
        assert!(
            nemo.contains("Name=Send to Dropbox (profile archive)\n"),
            "{nemo}"
        );
        assert!(nemo.contains("Exec=/usr/bin/dbxportctl upload --notify --profile archive %F"));
    }

    #[test]
    fn program_paths_are_quoted_or_refused() {
        assert_eq!(
            program_word(Path::new("/usr/bin/dbxportctl")).unwrap(),
            "/usr/bin/dbxportctl"
        );
        assert_eq!(
            program_word(Path::new("/my bin/x")).unwrap(),
            "\"/my bin/x\""
        );
        for bad in ["/a\"b", "/a$b", "/a%b", "/a\\b", "/a'b"] {
            assert!(program_word(Path::new(bad)).is_err(), "{bad}");
        }
    }
}

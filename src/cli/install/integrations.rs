//! The photo applications `install` plugs dbxport into, beside the file managers: KDE's Share
//! menu (a Purpose kpackage), darktable (a Lua export storage), gThumb (Tools → Scripts) and
//! elementary's Contractor. Each is placed when its host is found (or when named with
//! `--only`), and `uninstall` takes out all of them.
//!
//! A host is found by what a user of it has: its program on `PATH`, or the settings folder it
//! makes on its first run. Purpose has no program of its own: its Share menu is there when one
//! of the KDE programs that show it is. darktable and gThumb keep every user script in one
//! file (`luarc`, `scripts.xml`), so ours is merged in and taken out again by its mark, as
//! Thunar's actions are.

use std::path::{Path, PathBuf};

use super::InstallError;
use super::files::{Places, Planned, Programs, program_word, rewrite_command};

const PURPOSE_METADATA: &str = include_str!("../../../integrations/purpose/metadata.json");
const PURPOSE_MAIN: &str = include_str!("../../../integrations/purpose/main.sh");
const DARKTABLE: &str = include_str!("../../../integrations/darktable/dbxport.lua");
const GTHUMB: &str = include_str!("../../../integrations/gthumb/scripts.xml");
const CONTRACT: &str = include_str!("../../../integrations/contractor/dbxport-send.contract");

/// The line that loads our storage from darktable's `luarc`.
pub(super) const LUARC_LINE: &str = "require \"dbxport\" -- added by dbxportctl install\n";

/// What marks our scripts among the user's in gThumb's `scripts.xml`.
const GTHUMB_MARK: &str = "id=\"dbxport-";

/// One application dbxport plugs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    Purpose,
    Darktable,
    Gthumb,
    Contractor,
}

impl Integration {
    pub const ALL: [Integration; 4] = [
        Integration::Purpose,
        Integration::Darktable,
        Integration::Gthumb,
        Integration::Contractor,
    ];

    /// The name `--only` takes.
    pub fn name(self) -> &'static str {
        match self {
            Integration::Purpose => "purpose",
            Integration::Darktable => "darktable",
            Integration::Gthumb => "gthumb",
            Integration::Contractor => "contractor",
        }
    }

    /// Where the user finds it.
    pub fn label(self) -> &'static str {
        match self {
            Integration::Purpose => {
                "KDE Share menu (Dolphin, Gwenview, Spectacle): Share → Send to Dropbox"
            }
            Integration::Darktable => {
                "darktable: export module, target storage \"Dropbox (dbxport)\""
            }
            Integration::Gthumb => "gThumb: Tools → Send to Dropbox",
            Integration::Contractor => {
                "elementary Files and Photos: context menu → Send to Dropbox"
            }
        }
    }

    /// `--only purpose,darktable`: the integrations named, each once.
    pub fn parse_list(text: &str) -> Result<Vec<Integration>, InstallError> {
        let mut chosen = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let found = Integration::ALL
                .into_iter()
                .find(|i| i.name().eq_ignore_ascii_case(word))
                .ok_or_else(|| InstallError::UnknownIntegration(word.to_string()))?;
            if !chosen.contains(&found) {
                chosen.push(found);
            }
        }
        if chosen.is_empty() {
            return Err(InstallError::UnknownIntegration(text.to_string()));
        }
        Ok(chosen)
    }

    /// Why the host counts as installed (what was found), or None.
    pub fn host_found(self, places: &Places, env: &HostEnv) -> Option<String> {
        let (programs, folders): (&[&str], Vec<PathBuf>) = match self {
            // Purpose's Share menu is a library: the programs that show it are what a user has.
            Integration::Purpose => (
                &["dolphin", "gwenview", "spectacle", "kphotoalbum", "okular"],
                vec![places.data.join("kpackage/Purpose")],
            ),
            Integration::Darktable => (&["darktable"], vec![places.config.join("darktable")]),
            Integration::Gthumb => (&["gthumb"], vec![places.config.join("gthumb")]),
            Integration::Contractor => (
                &["contractor", "io.elementary.contractor"],
                env.data_dirs.iter().map(|d| d.join("contractor")).collect(),
            ),
        };
        if let Some(program) = programs.iter().find(|p| env.on_path(p)) {
            return Some(format!("{program} is on PATH"));
        }
        folders
            .into_iter()
            .find(|f| f.is_dir())
            .map(|f| format!("{} exists", f.display()))
    }
}

/// What host detection looks at: `PATH` and `XDG_DATA_DIRS`.
#[derive(Debug, Clone, Default)]
pub struct HostEnv {
    pub path: Vec<PathBuf>,
    pub data_dirs: Vec<PathBuf>,
}

impl HostEnv {
    pub fn from_env() -> HostEnv {
        let split = |name: &str, default: &str| -> Vec<PathBuf> {
            let value = std::env::var_os(name).filter(|v| !v.is_empty());
            std::env::split_paths(&value.unwrap_or_else(|| default.into())).collect()
        };
        HostEnv {
            path: split("PATH", ""),
            data_dirs: split("XDG_DATA_DIRS", "/usr/local/share:/usr/share"),
        }
    }

    fn on_path(&self, program: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        self.path.iter().any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }
}

/// The Purpose kpackage's folder.
fn purpose_dir(places: &Places) -> PathBuf {
    places.data.join("kpackage/Purpose/io.github.dbxport1")
}

pub(super) fn luarc(places: &Places) -> PathBuf {
    places.config.join("darktable/luarc")
}

pub(super) fn gthumb_scripts(places: &Places) -> PathBuf {
    places.config.join("gthumb/scripts.xml")
}

/// The files an integration has to itself, written whole.
pub fn whole_files(
    integration: Integration,
    places: &Places,
    programs: &Programs,
) -> Result<Vec<Planned>, InstallError> {
    let ctl = program_word(&programs.dbxportctl)?;
    let file = |path: PathBuf, contents: String, mode: u32| Planned {
        path,
        contents,
        mode,
    };
    Ok(match integration {
        Integration::Purpose => vec![
            file(
                purpose_dir(places).join("metadata.json"),
                PURPOSE_METADATA.to_owned(),
                0o644,
            ),
            // Purpose runs `contents/code/main.*`, and only when it is executable.
            file(
                purpose_dir(places).join("contents/code/main.sh"),
                rewrite_command(
                    PURPOSE_MAIN,
                    "dbxportctl=",
                    &format!("'{}'", programs.dbxportctl.display()),
                ),
                0o755,
            ),
        ],
        Integration::Darktable => vec![file(
            places.config.join("darktable/lua/dbxport.lua"),
            // program_word refuses quotes and backslashes: the path is a plain Lua string.
            rewrite_command(
                DARKTABLE,
                "local dbxportctl = ",
                &format!("\"{}\"", programs.dbxportctl.display()),
            ),
            0o644,
        )],
        Integration::Gthumb => vec![],
        Integration::Contractor => vec![file(
            places.data.join("contractor/dbxport-send.contract"),
            rewrite_command(CONTRACT, "Exec=", &ctl),
            0o644,
        )],
    })
}

/// Every whole file of every integration (what uninstall removes), with their folders.
pub fn all_whole_files(places: &Places) -> Result<Vec<PathBuf>, InstallError> {
    let programs = Programs {
        dbxportctl: "dbxportctl".into(),
        dbxportd: "dbxportd".into(),
        export: "dbxport-export".into(),
    };
    let mut paths = Vec::new();
    for integration in Integration::ALL {
        paths.extend(
            whole_files(integration, places, &programs)?
                .into_iter()
                .map(|f| f.path),
        );
    }
    Ok(paths)
}

fn xml_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Our gThumb script elements, running `dbxportctl` (as one command-line word).
fn gthumb_scripts_ours(dbxportctl: &str) -> Vec<String> {
    script_elements(GTHUMB)
        .into_iter()
        .map(|(start, end)| {
            GTHUMB[start..end].replace(
                "command=\"dbxportctl ",
                &format!("command=\"{} ", xml_attribute(dbxportctl)),
            )
        })
        .collect()
}

/// The byte ranges of the `<script …/>` (or `<script …>…</script>`) elements in `text`, each
/// with its whole line when it stands alone on it.
fn script_elements(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("<script").map(|i| from + i) {
        let after = &text[open + "<script".len()..];
        if !after.starts_with([' ', '\t', '\n', '>', '/']) {
            // `<scripts …>`, the root.
            from = open + "<script".len();
            continue;
        }
        let tag_end = match after.find('>') {
            Some(i) => open + "<script".len() + i + 1,
            None => break,
        };
        let end = if text[..tag_end].ends_with("/>") {
            tag_end
        } else {
            match text[tag_end..].find("</script>") {
                Some(i) => tag_end + i + "</script>".len(),
                None => break,
            }
        };
        let line_start = text[..open].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        let alone =
            text[line_start..open].trim().is_empty() && text[end..line_end].trim().is_empty();
        found.push(if alone {
            (line_start, line_end)
        } else {
            (open, end)
        });
        from = end;
    }
    found
}

/// `text` without our gThumb scripts.
pub(super) fn gthumb_without_ours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in script_elements(text) {
        if text[start..end].contains(GTHUMB_MARK) {
            out.push_str(&text[last..start]);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Whether `text` holds any script (ours or the user's).
pub(super) fn gthumb_has_scripts(text: &str) -> bool {
    !script_elements(text).is_empty()
}

/// gThumb's scripts file with ours in it (replacing any earlier copy of ours), the user's
/// scripts kept; a new file when there was none.
pub(super) fn gthumb_with_ours(
    existing: Option<&str>,
    dbxportctl: &str,
    path: &Path,
) -> Result<String, InstallError> {
    let ours: String = gthumb_scripts_ours(dbxportctl)
        .into_iter()
        .map(|s| if s.ends_with('\n') { s } else { s + "\n" })
        .collect();
    let Some(existing) = existing else {
        let (start, end) = (
            GTHUMB.find("<script ").unwrap_or(0),
            GTHUMB.find("</scripts>").unwrap_or(GTHUMB.len()),
        );
        let start = GTHUMB[..start].rfind('\n').map_or(0, |i| i + 1);
        return Ok(format!("{}{ours}{}", &GTHUMB[..start], &GTHUMB[end..]));
    };
    let rest = gthumb_without_ours(existing);
    let close = rest
        .rfind("</scripts>")
        .ok_or_else(|| InstallError::NotScriptsFile(path.to_path_buf()))?;
    let line_start = rest[..close].rfind('\n').map_or(0, |i| i + 1);
    // Ours on lines of their own, before the line that closes the root.
    let (insert_at, lead) = if rest[line_start..close].trim().is_empty() {
        (line_start, "")
    } else {
        (close, "\n")
    };
    Ok(format!(
        "{}{lead}{ours}{}",
        &rest[..insert_at],
        &rest[insert_at..]
    ))
}

/// darktable's `luarc` with our `require` line (once).
pub(super) fn luarc_with_ours(existing: Option<&str>) -> String {
    let existing = existing.unwrap_or("");
    if existing.lines().any(|l| format!("{l}\n") == LUARC_LINE) {
        return existing.to_string();
    }
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{existing}{sep}{LUARC_LINE}")
}

/// `luarc` without our line.
pub(super) fn luarc_without_ours(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| line.trim_end_matches('\n') != LUARC_LINE.trim_end_matches('\n'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_SCRIPTS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scripts version=\"1.1\">\n  <script id=\"1\" display-name=\"Mine\" command=\"echo %F\" shell-script=\"false\" for-each-file=\"false\" wait-command=\"false\"/>\n</scripts>\n";

    #[test]
    fn our_gthumb_script_joins_the_users_and_leaves_again() {
        let path = Path::new("/h/.config/gthumb/scripts.xml");
        let merged = gthumb_with_ours(Some(USER_SCRIPTS), "\"/my bin/dbxportctl\"", path).unwrap();
        assert!(merged.contains("id=\"1\""), "{merged}");
        assert!(
            merged.contains("command=\"&quot;/my bin/dbxportctl&quot; upload --notify %F\""),
            "{merged}"
        );
        assert_eq!(merged.matches("<script ").count(), 2);
        // Merging again replaces ours rather than adding a second.
        let again = gthumb_with_ours(Some(&merged), "\"/my bin/dbxportctl\"", path).unwrap();
        assert_eq!(again, merged);
        assert_eq!(gthumb_without_ours(&merged), USER_SCRIPTS);
        // A new file holds ours alone, and without ours holds no script.
        let new = gthumb_with_ours(None, "/usr/bin/dbxportctl", path).unwrap();
        assert!(new.starts_with("<?xml") && new.contains("<scripts version=\"1.1\">"));
        assert_eq!(new.matches("<script ").count(), 1, "{new}");
        assert!(!gthumb_has_scripts(&gthumb_without_ours(&new)));
        assert!(gthumb_with_ours(Some("<other/>"), "x", path).is_err());
    }

    #[test]
    fn a_gthumb_rewrite_of_our_script_is_still_found() {
        // gThumb writes the file again when the user edits scripts: same element, its layout.
        let rewritten = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<scripts version=\"1.1\"><script id=\"dbxport-send\" display-name=\"Send to Dropbox\" command=\"x upload --notify %F\" shell-script=\"false\" for-each-file=\"false\" wait-command=\"false\"></script><script id=\"2\" display-name=\"B\" command=\"b\"/></scripts>";
        let without = gthumb_without_ours(rewritten);
        assert!(!without.contains("dbxport-"), "{without}");
        assert!(without.contains("id=\"2\""), "{without}");
    }

    #[test]
    fn the_luarc_line_is_added_once_and_removed_exactly() {
        assert_eq!(luarc_with_ours(None), LUARC_LINE);
        let user = "require \"tools/script_manager\"\n";
        let ours = luarc_with_ours(Some(user));
        assert_eq!(ours, format!("{user}{LUARC_LINE}"));
        assert_eq!(luarc_with_ours(Some(&ours)), ours);
        assert_eq!(luarc_without_ours(&ours), user);
        assert_eq!(
            luarc_with_ours(Some("x = 1")),
            format!("x = 1\n{LUARC_LINE}")
        );
    }

    #[test]
    fn only_takes_known_names() {
        assert_eq!(
            Integration::parse_list("purpose, darktable,purpose").unwrap(),
            vec![Integration::Purpose, Integration::Darktable]
        );
        assert!(Integration::parse_list("shotwell").is_err());
        assert!(Integration::parse_list("").is_err());
    }

    #[test]
    fn hosts_are_found_on_path_or_by_their_settings_folder() {
        let root = tempfile::tempdir().unwrap();
        let places = Places {
            config: root.path().join("config"),
            data: root.path().join("data"),
        };
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let env = HostEnv {
            path: vec![bin.clone()],
            data_dirs: vec![root.path().join("share")],
        };
        for i in Integration::ALL {
            assert_eq!(i.host_found(&places, &env), None, "{i:?}");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(bin.join("gwenview"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("gwenview"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(places.config.join("darktable")).unwrap();
        std::fs::create_dir_all(root.path().join("share/contractor")).unwrap();
        assert!(
            Integration::Purpose
                .host_found(&places, &env)
                .unwrap()
                .contains("gwenview")
        );
        assert!(Integration::Darktable.host_found(&places, &env).is_some());
        assert!(Integration::Contractor.host_found(&places, &env).is_some());
        assert_eq!(Integration::Gthumb.host_found(&places, &env), None);
    }
}

//! Dropbox's path rules (Dropbox's HTTP documentation, "Path formats"), checked on this side before anything is sent.
//!
//! Dropbox reports a bad path late and vaguely: a 400 with a regular expression in it, or a 409
//! `malformed_path` / `disallowed_name` that does not say which part is wrong. Checking first
//! means a caller learns which name is refused and why, in words they can act on, and no
//! request (nor any retry) is spent on a path that cannot work.
//!
//! The rules are the ones the reference establishes, and no more: characters the API accepts
//! (`< > : " | ? *`, leading spaces, control characters, trailing dots) pass, even though some
//! desktop clients cannot sync them, because refusing them here would refuse what Dropbox
//! stores.

/// Longest name Dropbox accepts, in characters (rclone's limit, from Dropbox's help centre).
pub const MAX_NAME_CHARS: usize = 255;

/// Names Dropbox refuses to store (`disallowed_name`), compared case-insensitively. The
/// emulator keeps its own copy on purpose: it stands for the server, so a mistake here must
/// not be repeated there unnoticed (the test kit's `agrees_with_the_client` compares the two).
const DISALLOWED: [&str; 6] = [
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// Why a path or name cannot be used in Dropbox. `path` is what the caller gave (for
/// [`validate_name`], the name itself); texts quote with `{:?}` so that a control character or
/// a trailing space is visible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{path:?} is not a Dropbox path: it must start with '/' (for example /Photos/2024)")]
    Relative { path: String },
    #[error(
        "{path:?} ends with '/': write the folder without the trailing slash (for example /Photos/2024)"
    )]
    TrailingSlash { path: String },
    #[error(
        "{path:?} has an empty name in it ('//'): write each folder name once, separated by a single '/'"
    )]
    EmptyName { path: String },
    #[error("a name cannot be empty")]
    Empty,
    #[error(
        "{path:?}: {name:?} cannot be used as a name in Dropbox; write the folder's full path without '.' or '..'"
    )]
    DotName { path: String, name: String },
    #[error("{path:?}: the name {name:?} contains {what}, which Dropbox does not allow in names")]
    Character {
        path: String,
        name: String,
        what: &'static str,
    },
    #[error(
        "{path:?}: the name {name:?} ends with whitespace, which Dropbox does not allow; remove it"
    )]
    TrailingWhitespace { path: String, name: String },
    #[error(
        "{path:?}: the name {name:?}… is {chars} characters long; Dropbox allows at most {MAX_NAME_CHARS}"
    )]
    TooLong {
        path: String,
        /// The name's first characters, so a very long name does not flood the message.
        name: String,
        chars: usize,
    },
    #[error(
        "{path:?}: Dropbox refuses the name {name:?} (desktop.ini, thumbs.db, .ds_store, icon\\r, .dropbox and .dropbox.attr are reserved, in any letter case); choose another name"
    )]
    Disallowed { path: String, name: String },
}

/// The form in which Dropbox compares paths (its `path_lower`): letter case does not tell two
/// files apart, so `/C/a.jpg` and `/c/A.JPG` are one file. Two uploads whose keys are equal
/// write the same Dropbox file.
pub fn path_key(path: &str) -> String {
    path.to_lowercase()
}

/// Checks a folder path for `list_folder` and `create_folder_v2` and returns it in the form
/// Dropbox takes: `""` for the root (given as `""` or `"/"`), otherwise the path unchanged.
pub fn validate_folder(path: &str) -> Result<String, PathError> {
    if path.is_empty() || path == "/" {
        return Ok(String::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::Relative { path: path.into() });
    };
    if rest.ends_with('/') {
        return Err(PathError::TrailingSlash { path: path.into() });
    }
    for name in rest.split('/') {
        if name.is_empty() {
            return Err(PathError::EmptyName { path: path.into() });
        }
        check_name(path, name)?;
    }
    Ok(path.into())
}

/// Checks one name (a file or folder name, no `/`), e.g. a file about to be uploaded.
pub fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::Empty);
    }
    if name.contains('/') {
        return Err(PathError::Character {
            path: name.into(),
            name: name.into(),
            what: "a '/'",
        });
    }
    check_name(name, name)
}

/// `text` made a name Dropbox takes, for a value put into a path (a camera model, a folder
/// name): the characters a name cannot hold (`/`, `\\`, NUL, DEL and other control
/// characters) become `_`, surrounding whitespace goes; a result that is still no valid name
/// (empty, `.`, `..`, reserved, too long) is `fallback`.
pub fn sanitized_name(text: &str, fallback: &str) -> String {
    let replaced: String = text
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let name = replaced.trim();
    match validate_name(name) {
        Ok(()) => name.to_string(),
        Err(_) => fallback.to_string(),
    }
}

/// Why Dropbox would refuse the file name at the end of `remote_path`, in words about a file
/// name (None: it takes it). Dropbox's own refusal (`malformed_path`) says nothing of which
/// part is wrong and reads as if the folder were.
pub fn refused_file_name(remote_path: &str) -> Option<String> {
    let name = remote_path.rsplit_once('/').map_or(remote_path, |(_, n)| n);
    let why = match validate_name(name).err()? {
        PathError::Character { what, .. } => {
            format!("the file name {name:?} contains {what}, which Dropbox does not allow in names")
        }
        PathError::TrailingWhitespace { .. } => {
            format!("the file name {name:?} ends with whitespace, which Dropbox does not allow")
        }
        PathError::TooLong { chars, .. } => format!(
            "the file name is {chars} characters long; Dropbox allows at most {MAX_NAME_CHARS}"
        ),
        PathError::Disallowed { .. } => {
            format!("Dropbox refuses the file name {name:?} (a name it reserves)")
        }
        PathError::Empty => "the file has no name".to_string(),
        e => e.to_string(),
    };
    Some(why)
}

/// The rules for one non-empty component of `path`.
fn check_name(path: &str, name: &str) -> Result<(), PathError> {
    // Before the whitespace rule: "Icon\r" ends in whitespace, but what Dropbox says about it
    // (and what helps the user) is that the name is reserved.
    if DISALLOWED.contains(&name.to_lowercase().as_str()) {
        return Err(PathError::Disallowed {
            path: path.into(),
            name: name.into(),
        });
    }
    if name == "." || name == ".." {
        return Err(PathError::DotName {
            path: path.into(),
            name: name.into(),
        });
    }
    let forbidden = name.chars().find_map(|c| match c {
        '\0' => Some("a NUL character"),
        '\\' => Some("a backslash ('\\')"),
        '\u{7f}' => Some("a DEL character (0x7F)"),
        _ => None,
    });
    if let Some(what) = forbidden {
        return Err(PathError::Character {
            path: path.into(),
            name: name.into(),
            what,
        });
    }
    if name.ends_with(char::is_whitespace) {
        return Err(PathError::TrailingWhitespace {
            path: path.into(),
            name: name.into(),
        });
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(PathError::TooLong {
            path: shortened(path),
            name: name.chars().take(40).collect(),
            chars,
        });
    }
    Ok(())
}

/// A path with an over-long name in it, cut so that the message stays readable.
fn shortened(path: &str) -> String {
    const KEEP: usize = 80;
    if path.chars().count() <= KEEP {
        path.into()
    } else {
        let mut cut: String = path.chars().take(KEEP).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_names_dropbox_takes() {
        assert_eq!(sanitized_name("Canon EOS 5D", "x"), "Canon EOS 5D");
        assert_eq!(sanitized_name(" a/b\\c\u{7f}d\te ", "x"), "a_b_c_d_e");
        for junk in ["", " ", ".", "..", "Thumbs.db", &"y".repeat(300)] {
            assert_eq!(sanitized_name(junk, "fallback"), "fallback", "{junk:?}");
        }
    }

    #[test]
    fn root_is_the_empty_string() {
        assert_eq!(validate_folder("").unwrap(), "");
        assert_eq!(validate_folder("/").unwrap(), "");
    }

    #[test]
    fn ordinary_paths_pass_unchanged() {
        for good in [
            "/Photos",
            "/Photos/2024",
            "/Photos/Café 😀",
            "/ leading space",
            "/a.b./c:d?e*f|g<h>\"i\"",
            "/tab\tinside",
            "/.hidden",
            "/...",
            "/Desktop.ini.bak",
        ] {
            assert_eq!(validate_folder(good).as_deref(), Ok(good), "{good:?}");
        }
        let longest = format!("/{}", "é".repeat(MAX_NAME_CHARS));
        assert!(validate_folder(&longest).is_ok());
    }

    #[test]
    fn must_start_with_a_slash() {
        assert_eq!(
            validate_folder("Photos"),
            Err(PathError::Relative {
                path: "Photos".into()
            })
        );
        assert!(validate_folder("id:abc").is_err());
    }

    #[test]
    fn no_trailing_slash() {
        let e = validate_folder("/Photos/").unwrap_err();
        assert_eq!(
            e,
            PathError::TrailingSlash {
                path: "/Photos/".into()
            }
        );
        assert!(e.to_string().contains("trailing slash"), "{e}");
        assert!(validate_folder("//").is_err());
    }

    #[test]
    fn no_trailing_whitespace_on_any_name() {
        for (bad, name) in [
            ("/Photos ", "Photos "),
            ("/Photos\t", "Photos\t"),
            ("/Photos /2024", "Photos "),
            ("/a/b\n", "b\n"),
        ] {
            assert_eq!(
                validate_folder(bad),
                Err(PathError::TrailingWhitespace {
                    path: bad.into(),
                    name: name.into()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_empty_names() {
        assert_eq!(
            validate_folder("/a//b"),
            Err(PathError::EmptyName {
                path: "/a//b".into()
            })
        );
        assert_eq!(validate_name(""), Err(PathError::Empty));
    }

    #[test]
    fn no_dot_names() {
        for (bad, name) in [("/a/../b", ".."), ("/./a", "."), ("/a/..", "..")] {
            let e = validate_folder(bad).unwrap_err();
            assert_eq!(
                e,
                PathError::DotName {
                    path: bad.into(),
                    name: name.into()
                }
            );
            assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
        }
    }

    #[test]
    fn no_nul_backslash_or_del() {
        for (bad, what) in [
            ("/a\0b", "NUL"),
            ("/a\\b", "backslash"),
            ("/x/a\u{7f}", "DEL"),
        ] {
            let e = validate_folder(bad).unwrap_err();
            assert!(
                matches!(&e, PathError::Character { .. }) && e.to_string().contains(what),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn names_up_to_255_characters() {
        let long = "a".repeat(MAX_NAME_CHARS + 1);
        let e = validate_folder(&format!("/Photos/{long}")).unwrap_err();
        match &e {
            PathError::TooLong { chars, name, .. } => {
                assert_eq!(*chars, 256);
                assert!(name.len() < 50);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().len() < 300, "{e}");
        assert!(e.to_string().contains("at most 255"), "{e}");
        assert!(validate_name(&long).is_err());
    }

    #[test]
    fn reserved_names_in_any_case() {
        for name in [
            "desktop.ini",
            "Desktop.INI",
            "thumbs.db",
            "Thumbs.db",
            ".DS_Store",
            "Icon\r",
            ".dropbox",
            ".Dropbox.Attr",
        ] {
            let path = format!("/Photos/{name}");
            let e = validate_folder(&path).unwrap_err();
            assert_eq!(
                e,
                PathError::Disallowed {
                    path: path.clone(),
                    name: name.into()
                }
            );
            assert!(e.to_string().contains("choose another name"), "{e}");
            assert!(validate_name(name).is_err());
            // Anywhere in the path, not only at the end.
            assert!(validate_folder(&format!("/{name}/x")).is_err());
        }
    }

    #[test]
    fn refused_file_names_are_explained_as_names() {
        assert_eq!(refused_file_name("/Photos/IMG_1.jpg"), None);
        let why = refused_file_name("/Photos/IMG\\1.jpg").unwrap();
        assert!(
            why.contains("file name") && why.contains("backslash"),
            "{why}"
        );
        assert!(!why.contains("folder"), "{why}");
        let why = refused_file_name("/Photos/Thumbs.db").unwrap();
        assert!(
            why.contains("Thumbs.db") && why.contains("reserves"),
            "{why}"
        );
        assert!(refused_file_name("/Photos/a.jpg ").is_some());
    }

    #[test]
    fn names_are_single_components() {
        assert!(validate_name("IMG_0001.jpg").is_ok());
        assert!(validate_name("Café 😀.jpg").is_ok());
        let e = validate_name("a/b.jpg").unwrap_err();
        assert!(e.to_string().contains("'/'"), "{e}");
        assert!(validate_name("..").is_err());
        assert!(validate_name("a.jpg ").is_err());
    }

    #[test]
    fn messages_show_invisible_characters() {
        let e = validate_folder("/Photos/Icon\r").unwrap_err().to_string();
        assert!(e.contains(r#""Icon\r""#), "{e}");
        let e = validate_folder("/Photos ").unwrap_err().to_string();
        assert!(e.contains(r#""Photos ""#), "{e}");
    }
}

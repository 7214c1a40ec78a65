//! Dropbox's server-side path rules, in two layers, because Dropbox reports them two ways:
//! a path that does not match the route's argument pattern (no leading `/`) is a 400 before the
//! route runs, while a path that matches but is unusable (trailing `/` or whitespace, empty
//! components, names Dropbox refuses) is the route's own 409 (`malformed_path`,
//! `disallowed_name`).

/// `WritePathOrId` (upload/finish commit paths, delete_v2).
pub(crate) const WRITE_PATH_OR_ID: &str = r"(/(.|[\r\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)";
/// `WritePath` (create_folder_v2).
pub(crate) const WRITE_PATH: &str = r"(/(.|[\r\n])*)|(ns:[0-9]+(/.*)?)";
/// `ReadPath` (get_metadata).
pub(crate) const READ_PATH: &str = r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/.*)?)";
/// `PathROrId` (list_folder): the root is the empty string.
pub(crate) const LIST_PATH: &str = r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/.*)?)";

fn is_ns(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("ns:") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (digits == rest.len() || rest.as_bytes()[digits] == b'/')
}

fn is_rev(s: &str) -> bool {
    s.strip_prefix("rev:").is_some_and(|hex| {
        hex.len() >= 9
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(crate) fn matches_write_path_or_id(s: &str) -> bool {
    s.starts_with('/') || is_ns(s) || s.starts_with("id:")
}

pub(crate) fn matches_write_path(s: &str) -> bool {
    s.starts_with('/') || is_ns(s)
}

pub(crate) fn matches_read_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("id:") || is_rev(s) || is_ns(s)
}

pub(crate) fn matches_list_path(s: &str) -> bool {
    s.is_empty() || s.starts_with('/') || s.starts_with("id:") || is_ns(s)
}

/// What a path argument points at, once it matched its pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The empty string (list_folder only).
    Root,
    /// `/a/b`: the components in the case the client wrote them.
    Path(Vec<String>),
    /// `id:…`
    Id(String),
    /// `rev:…`
    Rev(String),
    /// `ns:<id>` plus the path below it (empty for the namespace root).
    Ns(String, String),
}

/// Why a pattern-valid path is still unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Malformed,
    DisallowedName,
}

/// Names Dropbox refuses to store, compared case-insensitively.
const DISALLOWED: [&str; 6] = [
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// Longest name component Dropbox is known to accept.
const MAX_NAME_CHARS: usize = 255;

/// Splits a pattern-valid path argument. `write` turns on the disallowed-name check, which
/// only matters when something would be created.
pub(crate) fn parse(s: &str, write: bool) -> Result<Target, PathProblem> {
    if s.is_empty() {
        return Ok(Target::Root);
    }
    if let Some(id) = s.strip_prefix("id:") {
        return Ok(Target::Id(format!("id:{id}")));
    }
    if let Some(rev) = s.strip_prefix("rev:") {
        return Ok(Target::Rev(rev.to_owned()));
    }
    if let Some(rest) = s.strip_prefix("ns:") {
        let (ns, below) = rest
            .split_once('/')
            .map_or((rest, ""), |(ns, _)| (ns, &rest[ns.len()..]));
        return Ok(Target::Ns(ns.to_owned(), below.to_owned()));
    }
    components(s, write).map(Target::Path)
}

/// The components of `/a/b/c`, checked one by one.
pub(crate) fn components(s: &str, write: bool) -> Result<Vec<String>, PathProblem> {
    let Some(rest) = s.strip_prefix('/') else {
        return Err(PathProblem::Malformed);
    };
    let mut out = Vec::new();
    for name in rest.split('/') {
        // Checked first: "Icon\r" ends in whitespace, yet Dropbox calls it a disallowed name.
        if write && DISALLOWED.contains(&name.to_lowercase().as_str()) {
            return Err(PathProblem::DisallowedName);
        }
        let bad = name.is_empty()
            || name == "."
            || name == ".."
            || name.ends_with(char::is_whitespace)
            || name.chars().any(|c| matches!(c, '\0' | '\\' | '\u{7f}'))
            || name.chars().count() > MAX_NAME_CHARS;
        if bad {
            return Err(PathProblem::Malformed);
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// `path_lower` for components: `/` + lowercased components joined by `/` (`""` for none).
pub(crate) fn lower_key(components: &[String]) -> String {
    components.iter().fold(String::new(), |mut key, c| {
        key.push('/');
        key.push_str(&c.to_lowercase());
        key
    })
}

/// The last component of a `path_display`.
pub(crate) fn name_of(display: &str) -> &str {
    display.rsplit('/').next().unwrap_or(display)
}

/// Whether `key` lies in the folder `base` (both `path_lower`), at any depth or directly.
pub(crate) fn is_under(key: &str, base: &str, recursive: bool) -> bool {
    let Some(rest) = key.strip_prefix(base) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

/// The name autorename picks for the `n`-th attempt: `a (n).txt`, or `a (conflicted copy).txt`
/// (then `a (conflicted copy n).txt`) for `update` conflicts. The number goes before the
/// extension; a leading dot does not start an extension.
pub(crate) fn renamed(name: &str, n: u32, conflicted_copy: bool) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    match (conflicted_copy, n) {
        (true, 1) => format!("{stem} (conflicted copy){ext}"),
        (true, n) => format!("{stem} (conflicted copy {n}){ext}"),
        (false, n) => format!("{stem} ({n}){ext}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches_write_path_or_id("/a"));
        assert!(matches_write_path_or_id("id:abc"));
        assert!(matches_write_path_or_id("ns:123/a"));
        assert!(!matches_write_path_or_id("a.jpg"));
        assert!(!matches_write_path_or_id(""));
        assert!(!matches_write_path("id:abc"));
        assert!(matches_read_path("rev:0123456789abcdef"));
        assert!(!matches_read_path("rev:0123"));
        assert!(!matches_read_path("ns:/a"));
        assert!(matches_list_path(""));
        assert!(!matches_list_path("photos"));
    }

    #[test]
    fn malformed_and_disallowed() {
        use PathProblem::*;
        assert_eq!(parse("/", true), Err(Malformed));
        assert_eq!(parse("/a/", true), Err(Malformed));
        assert_eq!(parse("/a ", true), Err(Malformed));
        assert_eq!(parse("/a\t", true), Err(Malformed));
        assert_eq!(parse("/a//b", true), Err(Malformed));
        assert_eq!(parse("/a/../b", true), Err(Malformed));
        assert_eq!(parse("/x/Desktop.INI", true), Err(DisallowedName));
        assert_eq!(parse("/Icon\r", true), Err(DisallowedName));
        assert_eq!(parse("/.DS_Store/x", true), Err(DisallowedName));
        assert!(parse("/x/Desktop.INI", false).is_ok());
        assert_eq!(
            parse("/Photos/a b.jpg", true),
            Ok(Target::Path(vec!["Photos".into(), "a b.jpg".into()]))
        );
        assert_eq!(
            parse("ns:12/a", false),
            Ok(Target::Ns("12".into(), "/a".into()))
        );
        assert_eq!(
            parse("ns:12", false),
            Ok(Target::Ns("12".into(), String::new()))
        );
    }

    #[test]
    fn keys() {
        let c = vec!["Photos".to_owned(), "IMG.JPG".to_owned()];
        assert_eq!(lower_key(&c), "/photos/img.jpg");
        assert!(is_under("/a/b", "/a", false));
        assert!(!is_under("/a/b/c", "/a", false));
        assert!(is_under("/a/b/c", "/a", true));
        assert!(!is_under("/ab", "/a", true));
        assert!(is_under("/a", "", false));
    }

    #[test]
    fn autorename_names() {
        assert_eq!(renamed("document.txt", 2, false), "document (2).txt");
        assert_eq!(renamed("archive.tar.gz", 1, false), "archive.tar (1).gz");
        assert_eq!(renamed(".bashrc", 1, false), ".bashrc (1)");
        assert_eq!(renamed("Photos", 3, false), "Photos (3)");
        assert_eq!(renamed("a.jpg", 1, true), "a (conflicted copy).jpg");
        assert_eq!(renamed("a.jpg", 2, true), "a (conflicted copy 2).jpg");
    }

    /// The emulator models what the server refuses; the client (the product's
    /// `validate_folder`) must refuse the same paths, no more (a folder Dropbox would take must
    /// not be refused there) and no fewer.
    #[test]
    fn agrees_with_the_client() {
        use dbxport::dropbox::path::{MAX_NAME_CHARS, validate_folder};
        let long = format!("/{}", "x".repeat(MAX_NAME_CHARS + 1));
        for path in [
            "/Photos",
            "/Photos/2024",
            "/Photos/Café 😀",
            "/ leading space",
            "/a.b./c:d?e*f",
            "/tab\tinside",
            "/...",
            "/Photos/",
            "/Photos ",
            "/Photos /x",
            "/a//b",
            "/a/../b",
            "/./a",
            "/a\\b",
            "/a\u{7f}",
            "/a\0",
            "/x/Desktop.INI",
            "/Icon\r",
            "/.dropbox.attr/x",
            long.as_str(),
        ] {
            assert_eq!(
                validate_folder(path).is_ok(),
                parse(path, true).is_ok(),
                "{path:?}"
            );
        }
    }
}

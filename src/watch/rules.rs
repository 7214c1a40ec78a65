//! Which files in a watched folder are worth exporting.
//!
//! Include patterns (default: photo and video extensions) say what a watch takes; exclude
//! patterns take files back out. Some names are never taken whatever the patterns say, because
//! they are never a finished photo: hidden files (editors' swap files, GNOME's
//! `.goutputstream-*` atomic-save temporaries, `.DS_Store`), partial downloads and temporary
//! files (`*.part`, `*.tmp`, `*.crdownload`, `*.partial`), and backups ending in `~`.
//!
//! Patterns are shell-style globs on the file name (`*` and `?`), compared case-insensitively
//! (`IMG_0001.JPG` is a `*.jpg`).

/// Extensions a watch takes by default: what cameras, phones and photo tools write.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "tif", "tiff", "heic", "heif", "avif", "dng", "cr2", "cr3",
    "nef", "arw", "orf", "rw2", "raf", "srw", "pef", "mp4", "mov", "m4v", "avi", "mkv", "3gp",
    "mts",
];

/// Name endings that mark a file still being written or a temporary copy.
const NEVER_SUFFIXES: &[&str] = &[".part", ".tmp", ".crdownload", ".partial", ".download", "~"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Rules {
    /// Rules from a watch's patterns; an empty include list means the default extensions.
    pub fn new(include: &[String], exclude: &[String]) -> Rules {
        let include = if include.is_empty() {
            DEFAULT_EXTENSIONS
                .iter()
                .map(|e| format!("*.{e}"))
                .collect()
        } else {
            include.iter().map(|p| p.to_lowercase()).collect()
        };
        Rules {
            include,
            exclude: exclude.iter().map(|p| p.to_lowercase()).collect(),
        }
    }

    /// Whether a file of this name is exported.
    pub fn takes(&self, name: &str) -> bool {
        if never(name) {
            return false;
        }
        let name = name.to_lowercase();
        self.include.iter().any(|p| glob(p, &name)) && !self.exclude.iter().any(|p| glob(p, &name))
    }
}

/// Names never taken (see the module comment); also used for directories a recursive watch
/// does not descend into (hidden ones).
pub fn never(name: &str) -> bool {
    let lower = name.to_lowercase();
    name.starts_with('.') || NEVER_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Checks that a pattern is usable, for a clear error when a watch is added.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.contains('/') {
        return Err(format!(
            "pattern {pattern:?} must be a non-empty file-name glob (no '/'), like \"*.jpg\""
        ));
    }
    Ok(())
}

/// Shell-style matching of `*` (any run) and `?` (one character).
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_take_photos_and_videos_in_any_case() {
        let rules = Rules::new(&[], &[]);
        for name in [
            "IMG_0001.JPG",
            "a.jpeg",
            "b.heic",
            "c.CR3",
            "clip.mov",
            "x.png",
        ] {
            assert!(rules.takes(name), "{name}");
        }
        for name in ["notes.txt", "a.jpg.xmp", "Thumbs.db", "jpg"] {
            assert!(!rules.takes(name), "{name}");
        }
    }

    #[test]
    fn temporaries_and_hidden_files_are_never_taken() {
        let rules = Rules::new(&["*".into()], &[]);
        for name in [
            ".a.jpg.swp",
            ".goutputstream-XYZ12",
            ".DS_Store",
            "photo.jpg.part",
            "photo.jpg.tmp",
            "photo.jpg~",
            "photo.jpg.crdownload",
        ] {
            assert!(!rules.takes(name), "{name}");
        }
        assert!(rules.takes("photo.jpg"));
    }

    #[test]
    fn patterns_include_and_exclude() {
        let rules = Rules::new(
            &["*.jpg".into(), "raw_??.dng".into()],
            &["*_thumb.*".into()],
        );
        assert!(rules.takes("a.JPG"));
        assert!(rules.takes("raw_01.dng"));
        assert!(!rules.takes("raw_001.dng"));
        assert!(!rules.takes("a_thumb.jpg"));
        assert!(!rules.takes("a.png"));
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob("*a*b", "xxaxxab"));
        assert!(glob("*", ""));
        assert!(!glob("a*", "b"));
        assert!(glob("a*b*c", "abbbc"));
    }

    #[test]
    fn patterns_are_file_name_globs() {
        assert!(check_pattern("*.jpg").is_ok());
        assert!(check_pattern("a/*.jpg").is_err());
        assert!(check_pattern("").is_err());
    }
}

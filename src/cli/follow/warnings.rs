//! A batch's warnings as `--wait` prints them at the end: one line per reason, naming the
//! files, rather than one line per file. A folder template over a card of scanned photos
//! warns for every photo ("no capture date…"), and forty two-line warnings buried the counts
//! in an 80-column terminal. A reason that only a file or two have is printed as before.

use crate::cli::term::unbroken;

/// How many files a grouped line names before "and N more".
const NAMED: usize = 5;

/// A reason shared by this many files or more gets one line.
const GROUP_FROM: usize = 3;

/// The lines to print for `warnings` (each `PATH: REASON`, as the daemon words them), in the
/// order their reasons first came; `batch` for the command that lists every file.
pub fn grouped(warnings: &[String], batch: u64) -> Vec<String> {
    // (reason, the files' paths), by first appearance.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for warning in warnings {
        // The path comes first; a path holding ": " itself only splits differently and so
        // gets a group of its own, printed whole below.
        let (path, reason) = warning.split_once(": ").unwrap_or(("", warning));
        match reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, paths)) => paths.push(path),
            None => reasons.push((reason, vec![path])),
        }
    }
    // Paths and names are kept whole when the line wraps (`term::unbroken`).
    let mut lines = Vec::new();
    for (reason, paths) in reasons {
        if paths.len() < GROUP_FROM {
            lines.extend(paths.iter().map(|p| match p.is_empty() {
                true => reason.to_string(),
                false => format!("{}: {reason}", unbroken(p)),
            }));
            continue;
        }
        let names: Vec<String> = paths
            .iter()
            .take(NAMED)
            .map(|p| {
                let name = std::path::Path::new(p)
                    .file_name()
                    .map_or_else(|| p.to_string(), |n| n.to_string_lossy().into_owned());
                unbroken(&name)
            })
            .collect();
        let more = match paths.len() {
            n if n > NAMED => format!(" and {} more", n - NAMED),
            _ => String::new(),
        };
        lines.push(format!(
            "{} files: {reason}: {}{more} (`{}` names each)",
            paths.len(),
            names.join(", "),
            unbroken(&format!("dbxportctl jobs --batch {batch}"))
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::term::hanging;

    #[test]
    fn a_reason_many_files_share_is_one_line_and_rare_ones_stay_whole() {
        let date = "no capture date in the photo: used its modification time 2026-12-03";
        let mut warnings: Vec<String> = (0..41)
            .map(|i| format!("/photos/IMG {i}.jpg: {date}"))
            .collect();
        warnings.insert(3, "/photos/a.heic: sent as it is".into());
        warnings.push("/odd/x: y.jpg: kept beside a changed copy".into());
        let lines: Vec<String> = grouped(&warnings, 122)
            .iter()
            .map(|l| hanging("", l, None))
            .collect();
        assert_eq!(
            lines,
            [
                format!(
                    "41 files: {date}: IMG 0.jpg, IMG 1.jpg, IMG 2.jpg, IMG 3.jpg, IMG 4.jpg \
                     and 36 more (`dbxportctl jobs --batch 122` names each)"
                ),
                "/photos/a.heic: sent as it is".to_string(),
                "/odd/x: y.jpg: kept beside a changed copy".to_string(),
            ]
        );
        // Exactly three: named all, no "more".
        let three: Vec<String> = (0..3).map(|i| format!("/p/{i}.jpg: r")).collect();
        assert_eq!(
            hanging("", &grouped(&three, 7)[0], None),
            "3 files: r: 0.jpg, 1.jpg, 2.jpg (`dbxportctl jobs --batch 7` names each)"
        );
    }

    #[test]
    fn names_with_spaces_are_not_broken_at_the_end_of_a_line() {
        let warnings: Vec<String> = (10..14)
            .map(|i| format!("/photos/Summer trip IMG {i}.jpg: no capture date in the photo"))
            .chain(["/photos/My odd photo.xyz: sent as it is".to_string()])
            .collect();
        let mut printed = String::new();
        for line in grouped(&warnings, 9) {
            printed.push_str(&hanging("warning: ", &line, Some(60)));
            printed.push('\n');
        }
        for i in 10..14 {
            assert!(
                printed.contains(&format!("Summer trip IMG {i}.jpg")),
                "{printed}"
            );
        }
        assert!(
            printed.contains("/photos/My odd photo.xyz: sent"),
            "{printed}"
        );
        assert!(printed.contains("`dbxportctl jobs --batch 9`"), "{printed}");
        assert!(
            printed.lines().all(|l| l.chars().count() <= 60),
            "{printed}"
        );
        // In a pipe, the same words, on one line each.
        let piped = hanging("", &grouped(&warnings, 9)[0], None);
        assert!(
            piped.starts_with("4 files: no capture date in the photo: Summer trip IMG 10.jpg,")
        );
    }
}

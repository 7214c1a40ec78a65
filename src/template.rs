//! Folder templates: a target folder that holds placeholders, expanded per photo when its job
//! is made (ARCHITECTURE.md, "How a photo travels": intake fixes the Dropbox path, so a
//! restart, `jobs` and the user all see the final one).
//!
//! The placeholders: `{year}`, `{month}`, `{day}`, `{date}` (YYYY-MM-DD), the day the photo was
//! taken as its camera recorded it (EXIF DateTimeOriginal), else the file's modification time
//! in local time (and the job says so); `{camera}` (EXIF Model, made a valid Dropbox name,
//! "Unknown camera" when absent); `{folder}` (the source's parent folder name, "Unknown folder"
//! for a file at `/`); `{profile}` (the export profile's name, refused where none is in use).
//! Every placeholder has a non-empty value, so no segment of a checked template can expand to
//! an empty name.
//!
//! A template is parsed and checked when it is given ([`Template::parse`]): an unknown
//! placeholder, an unclosed or stray brace, an empty segment (`/a//b`, a trailing `/`) or a
//! literal name Dropbox refuses are errors naming the template and the fix, before anything is
//! queued. Reading the facts a template needs ([`facts`]) is blocking: it opens the source
//! under its access rule (`prepare::capture`), on the blocking pool.

use std::path::Path;

use crate::dropbox::path::{sanitized_name, validate_folder};
use crate::prepare::{self, SourceFile};

/// What stands in for a camera model a photo does not record.
pub const UNKNOWN_CAMERA: &str = "Unknown camera";
/// What stands in for the parent folder name of a file at `/` (it has none).
pub const UNKNOWN_FOLDER: &str = "Unknown folder";
/// Longest camera model or folder name put into a path, in characters: a model string is
/// sometimes a firmware's whole description.
const MAX_VALUE_CHARS: usize = 64;

/// The placeholders a template may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Year,
    Month,
    Day,
    Date,
    Camera,
    Folder,
    Profile,
}

const NAMES: [(&str, Placeholder); 7] = [
    ("year", Placeholder::Year),
    ("month", Placeholder::Month),
    ("day", Placeholder::Day),
    ("date", Placeholder::Date),
    ("camera", Placeholder::Camera),
    ("folder", Placeholder::Folder),
    ("profile", Placeholder::Profile),
];

impl Placeholder {
    fn named(name: &str) -> Option<Placeholder> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    fn is_date(self) -> bool {
        matches!(
            self,
            Placeholder::Year | Placeholder::Month | Placeholder::Day | Placeholder::Date
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "folder template {template:?}: unknown placeholder {{{name}}}; the placeholders are \
         {{year}}, {{month}}, {{day}}, {{date}}, {{camera}}, {{folder}} and {{profile}}"
    )]
    Unknown { template: String, name: String },
    #[error(
        "folder template {template:?}: a '{{' is not closed; close the placeholder with '}}' \
         (for example /Photos/{{year}})"
    )]
    Unclosed { template: String },
    #[error(
        "folder template {template:?}: a '}}' has no '{{' before it; braces only surround a \
         placeholder (for example /Photos/{{year}})"
    )]
    StrayClose { template: String },
    #[error("folder template {0}")]
    Path(#[from] crate::dropbox::path::PathError),
    #[error(
        "folder template {template:?} uses {{profile}}, but no export profile is in use: \
         choose one (dbxportctl --profile NAME, option profile) or take {{profile}} out"
    )]
    NoProfile { template: String },
}

/// A checked folder template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// The folder's names after the leading '/', each made of pieces; empty for the root.
    segments: Vec<Vec<Piece>>,
}

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// What a photo's placeholders expand to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The day the photo was taken, as its camera recorded it (EXIF DateTimeOriginal).
    pub taken: Option<Day>,
    /// The file's modification day in local time: used (and said) when `taken` is None.
    pub modified: Option<Day>,
    /// EXIF Model, as recorded.
    pub camera: Option<String>,
    /// The source's parent folder name (lossy for names that are not UTF-8, as every name
    /// dbxport puts into a Dropbox path).
    pub folder: Option<String>,
    pub profile: Option<String>,
}

/// A template expanded for one photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The Dropbox folder, `""` for the root.
    pub folder: String,
    /// Said in the job when the date came from the file's modification time.
    pub note: Option<String>,
}

impl Template {
    /// Parses and checks `text` (a Dropbox folder, `"/"` or `""` for the root).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let template = text.to_string();
        // The literal parts and the shape (a leading '/', no empty or dot names, no name
        // Dropbox refuses) are Dropbox's folder rules, checked on the text itself so the
        // error quotes what the user wrote: braces are ordinary characters to Dropbox.
        validate_folder(text)?;
        let mut segments = Vec::new();
        let rest = text.strip_prefix('/').unwrap_or(text);
        if !rest.is_empty() {
            for segment in rest.split('/') {
                segments.push(pieces(&template, segment)?);
            }
        }
        Ok(Template {
            text: template,
            segments,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn fields(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.segments.iter().flatten().filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Text(_) => None,
        })
    }

    /// Whether the folders it makes can meet only at the top of the Dropbox: it is the top, or
    /// its first folder is already a placeholder (`/{year}`).
    pub fn may_be_top(&self) -> bool {
        self.segments
            .first()
            .is_none_or(|first| first.iter().any(|p| matches!(p, Piece::Field(_))))
    }

    /// Whether it holds any placeholder (a plain folder expands to itself).
    pub fn is_plain(&self) -> bool {
        self.fields().next().is_none()
    }

    /// Whether expanding it reads the photo's EXIF (a date or the camera).
    pub fn needs_exif(&self) -> bool {
        self.fields()
            .any(|f| f.is_date() || f == Placeholder::Camera)
    }

    /// Refuses `{profile}` where no profile is in use.
    pub fn check_profile(&self, profile: Option<&str>) -> Result<(), TemplateError> {
        if profile.is_none() && self.fields().any(|f| f == Placeholder::Profile) {
            return Err(TemplateError::NoProfile {
                template: self.text.clone(),
            });
        }
        Ok(())
    }

    /// The folder for a photo with these facts, checked against Dropbox's rules (a value is
    /// made a valid name before it is put in, so only a concatenation grown too long fails).
    pub fn expand(&self, facts: &Facts) -> Result<Expanded, TemplateError> {
        let mut note = None;
        let day = || match (facts.taken, facts.modified) {
            (Some(day), _) => (day, false),
            (None, Some(day)) => (day, true),
            // No time at all (a filesystem that keeps none): the epoch's day says so plainly.
            (None, None) => (
                Day {
                    year: 1970,
                    month: 1,
                    day: 1,
                },
                true,
            ),
        };
        let mut names = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let mut name = String::new();
            for piece in segment {
                match piece {
                    Piece::Text(text) => name.push_str(text),
                    Piece::Field(field) => {
                        if field.is_date() {
                            let (d, from_mtime) = day();
                            if from_mtime {
                                note = Some(format!(
                                    "no capture date in the photo: used its modification time {d}"
                                ));
                            }
                            name.push_str(&match field {
                                Placeholder::Year => format!("{:04}", d.year),
                                Placeholder::Month => format!("{:02}", d.month),
                                Placeholder::Day => format!("{:02}", d.day),
                                _ => d.to_string(),
                            });
                        } else {
                            let (value, fallback) = match field {
                                Placeholder::Camera => (facts.camera.as_deref(), UNKNOWN_CAMERA),
                                Placeholder::Folder => (facts.folder.as_deref(), UNKNOWN_FOLDER),
                                _ => (facts.profile.as_deref(), ""),
                            };
                            if *field == Placeholder::Profile && value.is_none() {
                                return Err(TemplateError::NoProfile {
                                    template: self.text.clone(),
                                });
                            }
                            let value: String = value
                                .unwrap_or_default()
                                .chars()
                                .take(MAX_VALUE_CHARS)
                                .collect();
                            name.push_str(&sanitized_name(&value, fallback));
                        }
                    }
                }
            }
            names.push(name);
        }
        let folder = if names.is_empty() {
            String::new()
        } else {
            format!("/{}", names.join("/"))
        };
        let folder = validate_folder(&folder)?;
        Ok(Expanded { folder, note })
    }
}

/// One segment's pieces: text and `{name}` placeholders.
fn pieces(template: &str, segment: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = segment;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                out.push(Piece::Text(rest.to_string()));
                break;
            }
            Some(at) if rest[at..].starts_with('}') => {
                return Err(TemplateError::StrayClose {
                    template: template.into(),
                });
            }
            Some(at) => {
                if at > 0 {
                    out.push(Piece::Text(rest[..at].to_string()));
                }
                let after = &rest[at + 1..];
                let Some(close) = after.find('}') else {
                    return Err(TemplateError::Unclosed {
                        template: template.into(),
                    });
                };
                let name = &after[..close];
                if name.contains('{') {
                    return Err(TemplateError::Unclosed {
                        template: template.into(),
                    });
                }
                let field = Placeholder::named(name).ok_or_else(|| TemplateError::Unknown {
                    template: template.into(),
                    name: name.into(),
                })?;
                out.push(Piece::Field(field));
                rest = &after[close + 1..];
            }
        }
    }
    Ok(out)
}

/// What `{folder}` is for a file at `path`: the name of the folder it is in (None at `/`).
pub fn folder_name(path: &Path) -> Option<String> {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
}

/// The facts `template` needs about `source` (found as `stamp`), for `profile`. Reads the
/// photo's EXIF only when a date or the camera is asked for; a photo without it (or that
/// cannot be read) gets the modification time and no camera. Blocking.
pub fn facts(template: &Template, source: &SourceFile, profile: Option<&str>) -> Facts {
    let path: &Path = &source.path;
    let capture = if template.needs_exif() {
        prepare::capture(source)
    } else {
        prepare::Capture::default()
    };
    let modified = source
        .expect
        .and_then(|s| s.mtime_ms)
        .and_then(|ms| local_day(ms / 1000));
    Facts {
        taken: capture
            .taken
            .map(|(year, month, day)| Day { year, month, day }),
        modified,
        camera: capture.model,
        folder: folder_name(path),
        profile: profile.map(str::to_string),
    }
}

/// The local calendar day of a time in seconds since the epoch (the machine's time zone, as
/// a file manager shows the file's date).
pub fn local_day(secs: u64) -> Option<Day> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the
    // call and localtime_r keeps neither.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe { libc::localtime_r(&t, &mut tm) };
    if filled.is_null() {
        return None;
    }
    Some(Day {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(year: i32, month: u32, day: u32) -> Day {
        Day { year, month, day }
    }

    #[test]
    fn a_template_may_be_the_top_when_its_first_folder_is_a_placeholder() {
        for (text, top) in [
            ("/", true),
            ("/{year}", true),
            ("/{year}/Trip", true),
            ("/Photos", false),
            ("/Photos/{year}", false),
            ("/Photos {year}/x", true),
        ] {
            assert_eq!(Template::parse(text).unwrap().may_be_top(), top, "{text}");
        }
    }

    #[test]
    fn templates_are_checked_when_given() {
        for good in [
            "",
            "/",
            "/Photos",
            "/Photos/{year}/{date}",
            "/Photos/{year}-{month}/{day} {camera}",
            "/{profile}/{folder}",
        ] {
            assert!(Template::parse(good).is_ok(), "{good}");
        }
        let cases: [(&str, &str); 9] = [
            ("/Photos/{yeer}", "unknown placeholder {yeer}"),
            ("/Photos/{}", "unknown placeholder {}"),
            ("/Photos/{year", "is not closed"),
            ("/Photos/{ye{ar}", "is not closed"),
            ("/Photos/year}", "has no '{'"),
            ("/Photos//{year}", "empty name"),
            ("/Photos/{year}/", "ends with '/'"),
            ("Photos/{year}", "must start with '/'"),
            ("/Photos/../{year}", "'.' or '..'"),
        ];
        for (bad, says) in cases {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains(bad),
                "{bad}: the error names the template: {err}"
            );
        }
        let t = Template::parse("/P/{profile}").unwrap();
        assert!(t.check_profile(Some("web")).is_ok());
        let err = t.check_profile(None).unwrap_err().to_string();
        assert!(err.contains("--profile"), "{err}");
        assert!(Template::parse("/P").unwrap().check_profile(None).is_ok());
        assert!(Template::parse("/P/{year}").unwrap().needs_exif());
        assert!(!Template::parse("/P/{folder}").unwrap().needs_exif());
    }

    #[test]
    fn expansion_takes_the_capture_day_else_the_modification_day_and_says_so() {
        let t = Template::parse("/Photos/{year}/{month}/{day}/{date}").unwrap();
        let shot = Facts {
            taken: Some(day(2025, 7, 4)),
            modified: Some(day(2026, 11, 3)),
            ..Facts::default()
        };
        assert_eq!(
            t.expand(&shot).unwrap(),
            Expanded {
                folder: "/Photos/2025/07/04/2025-07-04".into(),
                note: None
            }
        );
        let plain = Facts {
            taken: None,
            ..shot
        };
        let e = t.expand(&plain).unwrap();
        assert_eq!(e.folder, "/Photos/2026/11/03/2026-11-03");
        assert_eq!(
            e.note.as_deref(),
            Some("no capture date in the photo: used its modification time 2026-11-03")
        );
        // No date asked for: no note, whatever the photo holds.
        let f = Template::parse("/Photos/{folder}").unwrap();
        assert_eq!(f.expand(&plain).unwrap().note, None);
    }

    #[test]
    fn cameras_folders_and_profiles_become_valid_names() {
        let t = Template::parse("/P/{camera}/{folder}/{profile}").unwrap();
        let facts = Facts {
            camera: Some("EOS 5D/Mk IV\\ ".into()),
            folder: Some("Trip \u{FFFD}".into()),
            profile: Some("web".into()),
            ..Facts::default()
        };
        assert_eq!(
            t.expand(&facts).unwrap().folder,
            "/P/EOS 5D_Mk IV_/Trip \u{FFFD}/web"
        );
        let none = Facts {
            camera: None,
            folder: None,
            profile: Some("web".into()),
            ..Facts::default()
        };
        assert_eq!(
            t.expand(&none).unwrap().folder,
            "/P/Unknown camera/Unknown folder/web"
        );
        // A value that is no name at all falls back too.
        for junk in ["", "  ", "..", "desktop.ini"] {
            let facts = Facts {
                camera: Some(junk.into()),
                ..none.clone()
            };
            assert_eq!(
                t.expand(&facts).unwrap().folder,
                "/P/Unknown camera/Unknown folder/web",
                "{junk:?}"
            );
        }
        let long = Facts {
            camera: Some("x".repeat(300)),
            ..none.clone()
        };
        assert!(t.expand(&long).is_ok());
        let without = Facts {
            profile: None,
            ..none
        };
        assert!(matches!(
            t.expand(&without),
            Err(TemplateError::NoProfile { .. })
        ));
    }

    #[test]
    fn folder_names_that_are_not_utf8_come_out_as_the_rest_of_dbxport_writes_them() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"Urlaub \xe4"));
        std::fs::create_dir(&odd).unwrap();
        let photo = odd.join("a.jpg");
        std::fs::write(&photo, b"not a photo").unwrap();
        let stamp = prepare::check_source(&photo).unwrap();
        let source = SourceFile::given(&photo).expecting(stamp);
        let t = Template::parse("/P/{folder}/{year}").unwrap();
        let facts = facts(&t, &source, None);
        assert_eq!(facts.folder.as_deref(), Some("Urlaub \u{FFFD}"));
        assert_eq!(facts.taken, None);
        let mtime = stamp.mtime_ms.unwrap() / 1000;
        assert_eq!(facts.modified, local_day(mtime));
        let e = t.expand(&facts).unwrap();
        assert_eq!(
            e.folder,
            format!("/P/Urlaub \u{FFFD}/{}", local_day(mtime).unwrap().year)
        );
        assert!(e.note.is_some());
    }

    #[test]
    fn the_local_day_follows_the_time_zone() {
        // 2026-11-03 12:00 UTC is that day in every zone from -11 to +11.
        assert_eq!(local_day(1_793_707_200), Some(day(2026, 11, 3)));
    }
}

//! The export options — the seed dialog's choices as data: what happens when a file of the same
//! name is already in Dropbox, and whether the batch ends with a shared link. Every job carries
//! its batch's options, so a restart runs it exactly as it was asked for.
//!
//! Defaults come from the config (`[export]`); each caller may override any of them for its
//! batch ([`ExportOverrides`]; on D-Bus, `Upload`'s `a{sv}` options).

use serde::{Deserialize, Serialize};

use crate::prepare::{Mode, PrepareOptions};

/// Resize settings used when a batch asks for `resize` without saying how.
pub const DEFAULT_MAX_DIMENSION: u32 = 1600;
pub const DEFAULT_JPEG_QUALITY: u8 = 85;

/// What to do when the target name is taken in Dropbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conflict {
    /// The same content already there counts as done (nothing is sent); different content is
    /// kept beside it under a new name (`photo (1).jpg`), never overwritten.
    #[default]
    SkipIdentical,
    /// Always keep both: the upload gets a new name if the name is taken, even by identical
    /// content.
    Rename,
    /// Replace what is there.
    Overwrite,
    /// Replace only the copy this daemon sent of the same file into the same folder, and only
    /// if nobody changed it since: the upload is an `update` at the rev it had, so Dropbox
    /// keeps both ("photo (conflicted copy).jpg") when it changed. With nothing remembered it
    /// is `skip-identical`: a first export never overwrites anyone's file. The default for
    /// watches (config `watch.conflict`), where an edited photo is the common case.
    Replace,
}

impl Conflict {
    pub fn parse(text: &str) -> Result<Conflict, String> {
        match text {
            "skip-identical" => Ok(Conflict::SkipIdentical),
            "rename" => Ok(Conflict::Rename),
            "overwrite" => Ok(Conflict::Overwrite),
            "replace" => Ok(Conflict::Replace),
            other => Err(format!(
                "conflict {other:?}: expected skip-identical, rename, overwrite or replace"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Conflict::SkipIdentical => "skip-identical",
            Conflict::Rename => "rename",
            Conflict::Overwrite => "overwrite",
            Conflict::Replace => "replace",
        }
    }

    /// Whether Dropbox may store the file under another name than asked (`replace`: when the
    /// copy it updates changed, or when nothing is remembered and the name is taken).
    pub fn renames(self) -> bool {
        matches!(
            self,
            Conflict::SkipIdentical | Conflict::Rename | Conflict::Replace
        )
    }

    /// Whether the same content already at the name counts as done, with nothing sent.
    pub fn skips_identical(self) -> bool {
        matches!(self, Conflict::SkipIdentical | Conflict::Replace)
    }
}

/// A batch's options, stored with each of its jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    /// Original or resized, and whether the location goes.
    #[serde(default)]
    pub prepare: PrepareOptions,
    #[serde(default)]
    pub conflict: Conflict,
    /// Create (or reuse) a shared link to the folder when the batch ends.
    #[serde(default)]
    pub share_link: bool,
}

/// A caller's choices for one batch or watch, each overriding the defaults when given (the
/// D-Bus adapters read them from `Upload`'s and `AddWatch`'s `a{sv}` options; other callers
/// build them directly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOverrides {
    /// `true`: send the original bytes; `false`: resize.
    pub original: Option<bool>,
    /// The same switch, said the other way round (`resize = true` is `original = false`).
    pub resize: Option<bool>,
    /// Resize so the long edge fits (implies resizing).
    pub max_dimension: Option<u32>,
    /// JPEG quality of a resized photo, 1–100 (implies resizing).
    pub jpeg_quality: Option<u32>,
    pub strip_location: Option<bool>,
    pub conflict: Option<Conflict>,
    pub share_link: Option<bool>,
}

impl ExportOverrides {
    /// Whether the caller chose nothing (the defaults apply as they are).
    pub fn is_empty(&self) -> bool {
        *self == ExportOverrides::default()
    }
}

impl ExportOptions {
    /// These defaults with a caller's overrides applied; contradictory or out-of-range choices
    /// are errors naming the option.
    pub fn with_overrides(mut self, o: &ExportOverrides) -> Result<ExportOptions, String> {
        if o.original == Some(true) && (o.max_dimension.is_some() || o.jpeg_quality.is_some()) {
            return Err(
                "option original=true cannot be combined with max_dimension or jpeg_quality".into(),
            );
        }
        let (mut max_dimension, mut quality) = match self.prepare.mode {
            Mode::Resize {
                max_dimension,
                jpeg_quality,
            } => (max_dimension, jpeg_quality),
            Mode::Original => (DEFAULT_MAX_DIMENSION, DEFAULT_JPEG_QUALITY),
        };
        let mut resize = matches!(self.prepare.mode, Mode::Resize { .. });
        if let Some(original) = o.original {
            resize = !original;
        }
        if let Some(wanted) = o.resize {
            resize = wanted;
        }
        if let Some(dimension) = o.max_dimension {
            max_dimension = dimension;
            resize = true;
        }
        if let Some(q) = o.jpeg_quality {
            quality = u8::try_from(q)
                .map_err(|_| "jpeg_quality must be between 1 and 100".to_string())?;
            resize = true;
        }
        if let Some(strip) = o.strip_location {
            self.prepare.strip_location = strip;
        }
        if let Some(conflict) = o.conflict {
            self.conflict = conflict;
        }
        if let Some(link) = o.share_link {
            self.share_link = link;
        }
        self.prepare.mode = if resize {
            Mode::Resize {
                max_dimension,
                jpeg_quality: quality,
            }
        } else {
            Mode::Original
        };
        self.prepare.validate()?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_over_the_defaults() {
        let o = ExportOptions::default()
            .with_overrides(&ExportOverrides {
                conflict: Some(Conflict::Overwrite),
                share_link: Some(true),
                max_dimension: Some(2048),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(o.conflict, Conflict::Overwrite);
        assert!(o.share_link);
        assert_eq!(
            o.prepare.mode,
            Mode::Resize {
                max_dimension: 2048,
                jpeg_quality: DEFAULT_JPEG_QUALITY
            }
        );
        // Nothing chosen: the defaults as they are.
        let defaults = ExportOptions::default();
        assert_eq!(
            defaults
                .clone()
                .with_overrides(&ExportOverrides::default())
                .unwrap(),
            defaults
        );
    }

    #[test]
    fn contradictions_and_ranges_are_refused_by_name() {
        let both = ExportOverrides {
            original: Some(true),
            jpeg_quality: Some(80),
            ..Default::default()
        };
        let err = ExportOptions::default().with_overrides(&both).unwrap_err();
        assert!(err.contains("original=true"), "{err}");
        let err = ExportOptions::default()
            .with_overrides(&ExportOverrides {
                jpeg_quality: Some(300),
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.contains("jpeg_quality"), "{err}");
    }

    #[test]
    fn conflict_names_round_trip() {
        for c in [
            Conflict::SkipIdentical,
            Conflict::Rename,
            Conflict::Overwrite,
            Conflict::Replace,
        ] {
            assert_eq!(Conflict::parse(c.name()).unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
    }
}

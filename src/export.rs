//! The export options — the seed dialog's choices as data: what happens when a file of the same
//! name is already in Dropbox, and whether the batch ends with a shared link. Every job carries
//! its batch's options, so a restart runs it exactly as it was asked for.
//!
//! Defaults come from the config (`[export]`); each `Upload` call may override any of them for
//! its batch through its `a{sv}` options.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedValue, Value};

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
}

impl Conflict {
    pub fn parse(text: &str) -> Result<Conflict, String> {
        match text {
            "skip-identical" => Ok(Conflict::SkipIdentical),
            "rename" => Ok(Conflict::Rename),
            "overwrite" => Ok(Conflict::Overwrite),
            other => Err(format!(
                "conflict {other:?}: expected skip-identical, rename or overwrite"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Conflict::SkipIdentical => "skip-identical",
            Conflict::Rename => "rename",
            Conflict::Overwrite => "overwrite",
        }
    }

    /// Whether Dropbox may store the file under another name than asked.
    pub fn renames(self) -> bool {
        matches!(self, Conflict::SkipIdentical | Conflict::Rename)
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

/// What a caller sent, in words: "a string (s)", so an error says what was wrong without
/// assuming the reader knows D-Bus signatures.
pub fn kind_of(value: &Value<'_>) -> String {
    let sig = value.value_signature().to_string();
    let words = match sig.as_str() {
        "s" | "o" | "g" => "a string",
        "b" => "a boolean",
        "y" | "n" | "q" | "i" | "u" | "x" | "t" => "a whole number",
        "d" => "a fractional number",
        "v" => "a variant",
        _ if sig.starts_with("a{") => "a dictionary",
        _ if sig.starts_with('a') => "a list",
        _ if sig.starts_with('(') => "a structure",
        _ => "a value",
    };
    format!("{words} ({sig})")
}

impl ExportOptions {
    /// Applies `Upload`'s options to these defaults. Unknown keys and wrong types are errors
    /// naming the key.
    pub fn with_overrides(
        mut self,
        options: &HashMap<String, OwnedValue>,
    ) -> Result<ExportOptions, String> {
        let flag = |key: &str, value: &OwnedValue| {
            bool::try_from(&**value)
                .map_err(|_| format!("option {key} must be a boolean, not {}", kind_of(value)))
        };
        let number = |key: &str, value: &OwnedValue| {
            let n: Option<i128> = match &**value {
                Value::U8(v) => Some((*v).into()),
                Value::U16(v) => Some((*v).into()),
                Value::U32(v) => Some((*v).into()),
                Value::U64(v) => Some((*v).into()),
                Value::I16(v) => Some((*v).into()),
                Value::I32(v) => Some((*v).into()),
                Value::I64(v) => Some((*v).into()),
                _ => None,
            };
            match n {
                // Out of range above is still out of range: the range checks below say so.
                Some(n) if n >= 0 => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
                Some(n) => Err(format!("option {key} must be a positive number, not {n}")),
                None => Err(format!(
                    "option {key} must be a number, not {}",
                    kind_of(value)
                )),
            }
        };
        let (mut max_dimension, mut quality) = match self.prepare.mode {
            Mode::Resize {
                max_dimension,
                jpeg_quality,
            } => (max_dimension, jpeg_quality),
            Mode::Original => (DEFAULT_MAX_DIMENSION, DEFAULT_JPEG_QUALITY),
        };
        let mut resize = matches!(self.prepare.mode, Mode::Resize { .. });
        for (key, value) in options {
            match key.as_str() {
                "original" => resize = !flag(key, value)?,
                "resize" => resize = flag(key, value)?,
                "max_dimension" => {
                    max_dimension = number(key, value)?;
                    resize = true;
                }
                "jpeg_quality" => {
                    quality = u8::try_from(number(key, value)?)
                        .map_err(|_| "jpeg_quality must be between 1 and 100".to_string())?;
                    resize = true;
                }
                "strip_location" => self.prepare.strip_location = flag(key, value)?,
                "conflict" => {
                    let text = <&str>::try_from(&**value).map_err(|_| {
                        format!("option conflict must be a string, not {}", kind_of(value))
                    })?;
                    self.conflict = Conflict::parse(text)?;
                }
                "share_link" => self.share_link = flag(key, value)?,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if options
            .get("original")
            .is_some_and(|v| bool::try_from(&**v) == Ok(true))
            && (options.contains_key("max_dimension") || options.contains_key("jpeg_quality"))
        {
            return Err(
                "option original=true cannot be combined with max_dimension or jpeg_quality".into(),
            );
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
    use zbus::zvariant::Value;

    fn opts(pairs: &[(&str, Value<'_>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
            .collect()
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_named() {
        let base = ExportOptions::default();
        let o = base
            .clone()
            .with_overrides(&opts(&[
                ("conflict", Value::from("overwrite")),
                ("share_link", Value::from(true)),
            ]))
            .unwrap();
        assert_eq!(o.conflict, Conflict::Overwrite);
        assert!(o.share_link);
        let err = base
            .clone()
            .with_overrides(&opts(&[("conflict", Value::from("merge"))]))
            .unwrap_err();
        assert!(err.contains("merge"), "{err}");
        let err = base
            .clone()
            .with_overrides(&opts(&[("share_link", Value::from("yes"))]))
            .unwrap_err();
        assert!(err.contains("share_link"), "{err}");
        let err = base
            .with_overrides(&opts(&[("colour", Value::from(1u32))]))
            .unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn conflict_names_round_trip() {
        for c in [
            Conflict::SkipIdentical,
            Conflict::Rename,
            Conflict::Overwrite,
        ] {
            assert_eq!(Conflict::parse(c.name()).unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
    }
}

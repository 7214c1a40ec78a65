//! The export options — the seed dialog's choices as data: what happens when a file of the same
//! name is already in Dropbox, and whether the batch ends with a shared link. Every job carries
//! its batch's options, so a restart runs it exactly as it was asked for.
//!
//! Defaults come from the config (`[export]`); each `Upload` call may override any of them for
//! its batch through its `a{sv}` options.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::zvariant::OwnedValue;

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
    #[serde(default)]
    pub conflict: Conflict,
    /// Create (or reuse) a shared link to the folder when the batch ends.
    #[serde(default)]
    pub share_link: bool,
}

impl ExportOptions {
    /// Applies `Upload`'s options to these defaults. Unknown keys and wrong types are errors
    /// naming the key.
    pub fn with_overrides(
        mut self,
        options: &HashMap<String, OwnedValue>,
    ) -> Result<ExportOptions, String> {
        for (key, value) in options {
            match key.as_str() {
                "original" => match bool::try_from(&**value) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err("option original=false: resizing is not available yet; only originals are uploaded".into());
                    }
                    Err(_) => {
                        return Err(format!(
                            "option original must be a boolean, not {}",
                            value.value_signature()
                        ));
                    }
                },
                "conflict" => {
                    let text = <&str>::try_from(&**value).map_err(|_| {
                        format!(
                            "option conflict must be a string, not {}",
                            value.value_signature()
                        )
                    })?;
                    self.conflict = Conflict::parse(text)?;
                }
                "share_link" => {
                    self.share_link = bool::try_from(&**value).map_err(|_| {
                        format!(
                            "option share_link must be a boolean, not {}",
                            value.value_signature()
                        )
                    })?;
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
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

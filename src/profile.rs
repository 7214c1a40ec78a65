//! Named export profiles (`[profiles.NAME]` in the config): a folder (a template) and export
//! options under one name, chosen with `--profile NAME` or the D-Bus option `profile`.
//!
//! A request's options are, in order: the config's defaults (`[export]`), the profile's
//! values, then the caller's explicit options over them ([`Profile::options`]). Its folder is
//! the caller's, else the profile's, else `upload.remote_folder` ([`folder`]). A watch keeps
//! its profile's *name* and reads the profile when its jobs are made, so an edited profile
//! applies to it from the daemon's next start.

use std::collections::BTreeMap;

use crate::export::{ExportOptions, ExportOverrides};

/// Longest profile name: it becomes a menu entry and a file name.
pub const MAX_NAME_CHARS: usize = 40;

/// One named profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Its folder (may be a template); None: the caller's or the default.
    pub folder: Option<String>,
    /// Its export values, applied over the defaults like a caller's options.
    pub overrides: ExportOverrides,
}

impl Profile {
    /// `defaults`, then this profile's values, then the caller's `explicit` options over them.
    /// Applied one after the other, so an explicit `original` undoes the profile's resize and
    /// an explicit `max_dimension` resizes a profile of originals.
    pub fn options(
        &self,
        defaults: ExportOptions,
        explicit: &ExportOverrides,
    ) -> Result<ExportOptions, String> {
        defaults
            .with_overrides(&self.overrides)
            .map_err(|e| format!("profile {}: {e}", self.name))?
            .with_overrides(explicit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("there is no export profile {name:?}; {}", known_names(.known))]
    Unknown { name: String, known: Vec<String> },
}

fn known_names(names: &[String]) -> String {
    if names.is_empty() {
        "no profiles are configured: add a [profiles.NAME] table to config.toml (README, \
         \"Export profiles\") and restart the daemon"
            .into()
    } else {
        format!("the profiles are: {}", names.join(", "))
    }
}

/// The configured profiles, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    named: BTreeMap<String, Profile>,
}

impl Profiles {
    pub fn new(profiles: impl IntoIterator<Item = Profile>) -> Profiles {
        Profiles {
            named: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    /// The profile `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.named.get(name).ok_or_else(|| ProfileError::Unknown {
            name: name.into(),
            known: self.named.keys().cloned().collect(),
        })
    }

    /// By name, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.named.values()
    }
}

/// Where a request's files go: the folder the caller named, else the profile's, else
/// `default` (`upload.remote_folder`).
pub fn folder<'a>(requested: &'a str, profile: Option<&'a Profile>, default: &'a str) -> &'a str {
    match (requested, profile.and_then(|p| p.folder.as_deref())) {
        ("", Some(folder)) => folder,
        ("", None) => default,
        (requested, _) => requested,
    }
}

/// A profile name: letters, digits, `-` and `_`, at most [`MAX_NAME_CHARS`]. It is written
/// into menus and file names, so nothing there needs quoting.
pub fn check_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(format!(
            "the profile name {name:?} must be 1 to {MAX_NAME_CHARS} letters, digits, '-' or \
             '_' (for example web or archive-2026)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{Conflict, DEFAULT_JPEG_QUALITY};
    use crate::prepare::Mode;

    fn web() -> Profile {
        Profile {
            name: "web".into(),
            folder: Some("/Web/{year}".into()),
            overrides: ExportOverrides {
                max_dimension: Some(2048),
                strip_location: Some(true),
                conflict: Some(Conflict::Overwrite),
                ..Default::default()
            },
        }
    }

    #[test]
    fn explicit_options_go_over_the_profile_which_goes_over_the_defaults() {
        let defaults = ExportOptions::default();
        let o = web()
            .options(defaults.clone(), &ExportOverrides::default())
            .unwrap();
        assert_eq!(
            o.prepare.mode,
            Mode::Resize {
                max_dimension: 2048,
                jpeg_quality: DEFAULT_JPEG_QUALITY
            }
        );
        assert!(o.prepare.strip_location);
        assert_eq!(o.conflict, Conflict::Overwrite);
        assert!(!o.share_link, "not in the profile: the default");
        let explicit = ExportOverrides {
            max_dimension: Some(800),
            conflict: Some(Conflict::Rename),
            share_link: Some(true),
            ..Default::default()
        };
        let o = web().options(defaults.clone(), &explicit).unwrap();
        assert!(matches!(
            o.prepare.mode,
            Mode::Resize {
                max_dimension: 800,
                ..
            }
        ));
        assert_eq!(o.conflict, Conflict::Rename);
        assert!(o.share_link);
        assert!(o.prepare.strip_location, "not overridden: the profile's");
        // `original` over a resizing profile is not a contradiction: it wins.
        let original = ExportOverrides {
            original: Some(true),
            ..Default::default()
        };
        assert_eq!(
            web().options(defaults, &original).unwrap().prepare.mode,
            Mode::Original
        );
    }

    #[test]
    fn folders_and_names() {
        let web = web();
        assert_eq!(folder("", Some(&web), "/Photos"), "/Web/{year}");
        assert_eq!(folder("/Mine", Some(&web), "/Photos"), "/Mine");
        assert_eq!(folder("", None, "/Photos"), "/Photos");
        let profiles = Profiles::new([web.clone()]);
        assert_eq!(profiles.get("web").unwrap(), &web);
        let err = profiles.get("wbe").unwrap_err().to_string();
        assert!(err.contains("\"wbe\"") && err.contains("are: web"), "{err}");
        let err = Profiles::default().get("web").unwrap_err().to_string();
        assert!(err.contains("[profiles.NAME]"), "{err}");
        assert!(check_name("archive-2026_b").is_ok());
        for bad in ["", "with space", "a/b", "é", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

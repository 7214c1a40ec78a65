//! Export profiles in the dialog: the daemon's named profiles (`ListProfiles`, the README,
//! "Export profiles"), offered in a drop-down above the options.
//!
//! Choosing one fills the options in from it, and when it has a folder (often a template such
//! as `/Photos/{year}/{date}`, which the daemon expands per photo) the photos go there unless
//! the user turns "Use the profile's folder" off and picks a folder in the tree: a template
//! cannot be a place in a tree. The call names the profile and still says every option the
//! window shows, so what the user changed after choosing it wins (explicit options override a
//! profile's) and the job records which profile made it.

use std::collections::HashMap;

use dbxport::cli::profiles::ProfileView;
use dbxport::export::Conflict;
use zbus::zvariant::OwnedValue;

use super::options::Options;

/// One profile, as the daemon applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Where its photos go; `""` when it names no folder (the tree's folder is used).
    pub folder: String,
    /// Its settings as the options' controls show them.
    pub options: Options,
}

impl Profile {
    /// A `ListProfiles` entry (the config's defaults already filled in by the daemon).
    pub fn from_entry(name: String, d: &HashMap<String, OwnedValue>) -> Profile {
        let view = ProfileView::from_entry(name, d);
        let mut options = Options {
            strip_location: view.strip_location,
            conflict: Conflict::parse(&view.conflict).unwrap_or_default(),
            share_link: view.share_link,
            ..Options::default()
        };
        if let Some(px) = view.max_dimension {
            options.set_max_dimension(px);
        }
        if let Some(q) = view.jpeg_quality {
            options.set_jpeg_quality(q);
        }
        options.set_resized(view.mode == "resize");
        options.profile = Some(view.name.clone());
        Profile {
            name: view.name,
            folder: view.folder,
            options,
        }
    }

    /// The drop-down's words for it: its name and where it sends.
    pub fn label(&self) -> String {
        if self.folder.is_empty() {
            self.name.clone()
        } else {
            format!("{} → {}", self.name, self.folder)
        }
    }
}

/// The profiles offered and the one chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChoice {
    profiles: Vec<Profile>,
    chosen: Option<usize>,
    /// Send to the chosen profile's folder rather than the tree's.
    use_folder: bool,
}

impl ProfileChoice {
    /// The daemon's answer. A profile chosen last time (`options.profile`, remembered) stays
    /// chosen if the daemon still has it, with the options as the user left them; one the
    /// daemon no longer has is dropped from the options, so Start never names it.
    pub fn set_profiles(&mut self, profiles: Vec<Profile>, options: &mut Options) {
        self.chosen = options
            .profile
            .as_deref()
            .and_then(|name| profiles.iter().position(|p| p.name == name));
        if self.chosen.is_none() {
            options.profile = None;
        }
        self.use_folder = self.chosen.is_some_and(|i| !profiles[i].folder.is_empty());
        self.profiles = profiles;
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The drop-down's rows: "No profile", then one per profile.
    pub fn labels(&self) -> Vec<String> {
        std::iter::once(crate::i18n::tr("No profile"))
            .chain(self.profiles.iter().map(Profile::label))
            .collect()
    }

    /// The drop-down's position: 0 for none, then the profiles.
    pub fn selected(&self) -> u32 {
        self.chosen.map_or(0, |i| i as u32 + 1)
    }

    pub fn chosen(&self) -> Option<&Profile> {
        self.chosen.and_then(|i| self.profiles.get(i))
    }

    /// The user picked row `row`: a profile's settings replace the options (the resize size
    /// is kept for "Original" profiles, as the controls keep it), and its folder is used;
    /// "No profile" keeps the options as they are and goes back to the tree's folder.
    pub fn choose(&mut self, row: u32, options: &mut Options) {
        self.chosen = row
            .checked_sub(1)
            .map(|i| i as usize)
            .filter(|i| *i < self.profiles.len());
        match self.chosen() {
            Some(profile) => {
                let resize_memory = match profile.options.size {
                    super::options::Size::Original => options.resize_memory,
                    _ => profile.options.resize_memory,
                };
                *options = Options {
                    resize_memory,
                    ..profile.options.clone()
                };
                self.use_folder = !profile.folder.is_empty();
            }
            None => {
                options.profile = None;
                self.use_folder = false;
            }
        }
    }

    /// The chosen profile's folder, when it has one (the switch is shown only then).
    pub fn folder(&self) -> Option<&str> {
        self.chosen()
            .map(|p| p.folder.as_str())
            .filter(|f| !f.is_empty())
    }

    pub fn uses_folder(&self) -> bool {
        self.use_folder && self.folder().is_some()
    }

    /// "Use the profile's folder" turned on or off.
    pub fn set_use_folder(&mut self, on: bool) {
        self.use_folder = on;
    }

    /// Where Start sends the photos: the profile's folder when it is used, else the tree's.
    pub fn target<'a>(&'a self, tree_folder: &'a str) -> &'a str {
        match self.folder() {
            Some(folder) if self.use_folder => folder,
            _ => tree_folder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::options::Size;
    use zbus::zvariant::Value;

    fn entry(pairs: &[(&str, Value<'static>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
            .collect()
    }

    fn web() -> Profile {
        Profile::from_entry(
            "web".into(),
            &entry(&[
                ("folder", Value::from("/Web/{year}")),
                ("mode", Value::from("resize")),
                ("max_dimension", Value::from(1024u32)),
                ("jpeg_quality", Value::from(70u32)),
                ("strip_location", Value::from(true)),
                ("conflict", Value::from("replace")),
                ("share_link", Value::from(false)),
            ]),
        )
    }

    fn archive() -> Profile {
        Profile::from_entry(
            "archive".into(),
            &entry(&[
                ("folder", Value::from("")),
                ("mode", Value::from("original")),
                ("strip_location", Value::from(false)),
                ("conflict", Value::from("skip-identical")),
                ("share_link", Value::from(true)),
            ]),
        )
    }

    #[test]
    fn a_listed_profile_reads_as_the_controls_show_it() {
        let web = web();
        assert_eq!(web.folder, "/Web/{year}");
        assert_eq!(
            web.options.size,
            Size::Resized {
                max_dimension: 1024,
                jpeg_quality: 70
            }
        );
        assert!(web.options.strip_location);
        assert_eq!(web.options.conflict, Conflict::Replace);
        assert_eq!(web.options.profile.as_deref(), Some("web"));
        assert_eq!(web.label(), "web → /Web/{year}");
        assert_eq!(archive().options.size, Size::Original);
        assert_eq!(archive().label(), "archive");
    }

    #[test]
    fn choosing_a_profile_sets_the_options_and_the_folder_and_none_goes_back() {
        let mut choice = ProfileChoice::default();
        let mut options = Options::default();
        options.set_max_dimension(3200);
        choice.set_profiles(vec![web(), archive()], &mut options);
        assert_eq!(choice.labels().len(), 3);
        assert_eq!(choice.selected(), 0);
        assert_eq!(choice.target("/Tree"), "/Tree");

        choice.choose(1, &mut options);
        assert_eq!(options, web().options);
        assert_eq!(choice.target("/Tree"), "/Web/{year}");
        assert!(choice.uses_folder());
        // The user's own change after choosing stays (it overrides the profile's).
        options.set_max_dimension(2048);
        choice.set_use_folder(false);
        assert_eq!(choice.target("/Tree"), "/Tree");
        assert_eq!(options.profile.as_deref(), Some("web"));

        // A profile of originals keeps the size the controls had for resizing.
        choice.choose(2, &mut options);
        assert_eq!(options.size, Size::Original);
        assert_eq!(options.resize_memory.0, 2048);
        assert!(options.share_link);
        assert!(!choice.uses_folder(), "archive names no folder");
        assert_eq!(choice.target("/Tree"), "/Tree");

        choice.choose(0, &mut options);
        assert_eq!(choice.chosen(), None);
        assert_eq!(options.profile, None);
        assert!(
            options.share_link,
            "No profile keeps the options as they are"
        );
    }

    #[test]
    fn a_remembered_profile_stays_chosen_only_while_the_daemon_has_it() {
        let mut options = Options {
            profile: Some("web".into()),
            ..Options::default()
        };
        let mut choice = ProfileChoice::default();
        choice.set_profiles(vec![archive(), web()], &mut options);
        assert_eq!(choice.selected(), 2);
        assert_eq!(choice.target(""), "/Web/{year}");
        // The remembered options stay as the user left them.
        assert_eq!(options.size, Size::Original);

        let mut choice = ProfileChoice::default();
        choice.set_profiles(vec![archive()], &mut options);
        assert_eq!(choice.selected(), 0);
        assert_eq!(
            options.profile, None,
            "Start must not name a profile that is gone"
        );
    }
}

//! Options: original or resized (a preset or any maximum dimension, and the JPEG quality),
//! remove location, what to do when the name is taken, and a shared link — the `a{sv}` options
//! `Upload` takes (the README, "D-Bus API"), checked by the product's own rules.

use std::collections::HashMap;

use dbxport::export::{Conflict, DEFAULT_JPEG_QUALITY, DEFAULT_MAX_DIMENSION};
use dbxport::prepare::{MAX_DIMENSION, MIN_DIMENSION, Mode, PrepareOptions};
use zbus::zvariant::{OwnedValue, Value};

/// The maximum dimensions offered as presets (the spin button takes any other).
pub const PRESETS: [u32; 5] = [1024, 1600, 2048, 3200, 4096];

/// "When the name is taken", in the order the drop-down lists them: every policy the daemon
/// takes (the README, "Conflicts").
pub const CONFLICTS: [Conflict; 4] = [
    Conflict::SkipIdentical,
    Conflict::Rename,
    Conflict::Overwrite,
    Conflict::Replace,
];

/// A conflict policy as the drop-down says it.
pub fn conflict_label(conflict: Conflict) -> String {
    crate::i18n::tr(match conflict {
        Conflict::SkipIdentical => "Skip identical, keep both otherwise",
        Conflict::Rename => "Keep both (rename)",
        Conflict::Overwrite => "Overwrite",
        Conflict::Replace => "Replace what an earlier export sent",
    })
}

/// Where a policy sits in the drop-down.
pub fn conflict_index(conflict: Conflict) -> u32 {
    CONFLICTS
        .iter()
        .position(|c| *c == conflict)
        .map_or(0, |i| i as u32)
}

/// The policy at a drop-down position (out of range: the default).
pub fn conflict_at(index: u32) -> Conflict {
    CONFLICTS.get(index as usize).copied().unwrap_or_default()
}

/// Original bytes, or a resized JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Original,
    Resized {
        max_dimension: u32,
        jpeg_quality: u8,
    },
}

/// The Options group's choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub size: Size,
    pub strip_location: bool,
    pub conflict: Conflict,
    pub share_link: bool,
    /// The export profile chosen (`model::profiles`), named in the call so that the job
    /// records it; the options above are said too and override it.
    pub profile: Option<String>,
    /// The last resize settings, kept while "Original" is chosen so that switching back
    /// restores them.
    pub resize_memory: (u32, u8),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            size: Size::Original,
            strip_location: false,
            conflict: Conflict::SkipIdentical,
            share_link: false,
            profile: None,
            resize_memory: (DEFAULT_MAX_DIMENSION, DEFAULT_JPEG_QUALITY),
        }
    }
}

impl Options {
    /// Resizing on or off.
    pub fn set_resized(&mut self, resized: bool) {
        let (max_dimension, jpeg_quality) = self.resize_memory;
        self.size = if resized {
            Size::Resized {
                max_dimension,
                jpeg_quality,
            }
        } else {
            Size::Original
        };
    }

    /// A preset or the spin button; clamped to what the product accepts. Implies resizing.
    pub fn set_max_dimension(&mut self, pixels: u32) {
        self.resize_memory.0 = pixels.clamp(MIN_DIMENSION, MAX_DIMENSION);
        self.set_resized(true);
    }

    /// The JPEG quality, 1–100. Implies resizing.
    pub fn set_jpeg_quality(&mut self, quality: u32) {
        self.resize_memory.1 = quality.clamp(1, 100) as u8;
        self.set_resized(true);
    }

    /// Which preset the maximum dimension is, if any.
    pub fn preset_index(&self) -> Option<usize> {
        PRESETS.iter().position(|p| *p == self.resize_memory.0)
    }

    /// As the product's options, checked by its own rules.
    pub fn prepare(&self) -> Result<PrepareOptions, String> {
        let mode = match self.size {
            Size::Original => Mode::Original,
            Size::Resized {
                max_dimension,
                jpeg_quality,
            } => Mode::Resize {
                max_dimension,
                jpeg_quality,
            },
        };
        let prepare = PrepareOptions {
            mode,
            strip_location: self.strip_location,
        };
        prepare.validate()?;
        Ok(prepare)
    }

    /// `Upload`'s `a{sv}`: every choice said, so the config's `[export]` defaults never
    /// change what the window showed.
    pub fn to_dbus(&self) -> HashMap<String, OwnedValue> {
        let mut options: Vec<(&str, Value<'static>)> = vec![
            ("strip_location", Value::from(self.strip_location)),
            ("conflict", Value::from(self.conflict.name())),
            ("share_link", Value::from(self.share_link)),
        ];
        if let Some(profile) = &self.profile {
            options.push(("profile", Value::from(profile.clone())));
        }
        match self.size {
            Size::Original => options.push(("original", Value::from(true))),
            Size::Resized {
                max_dimension,
                jpeg_quality,
            } => {
                options.push(("original", Value::from(false)));
                options.push(("max_dimension", Value::from(max_dimension)));
                options.push(("jpeg_quality", Value::from(u32::from(jpeg_quality))));
            }
        }
        options
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v.try_to_owned().ok()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_keeps_its_settings_across_original_and_back() {
        let mut o = Options::default();
        assert_eq!(o.size, Size::Original);
        o.set_max_dimension(1600);
        assert_eq!(
            o.size,
            Size::Resized {
                max_dimension: 1600,
                jpeg_quality: DEFAULT_JPEG_QUALITY
            }
        );
        assert_eq!(o.preset_index(), Some(1));
        o.set_jpeg_quality(70);
        o.set_resized(false);
        assert_eq!(o.size, Size::Original);
        o.set_resized(true);
        assert_eq!(
            o.size,
            Size::Resized {
                max_dimension: 1600,
                jpeg_quality: 70
            }
        );
        // Out of range: clamped to what the product takes.
        o.set_max_dimension(5);
        o.set_jpeg_quality(400);
        assert_eq!(o.resize_memory, (MIN_DIMENSION, 100));
        assert!(o.prepare().is_ok());
        o.set_max_dimension(1234);
        assert_eq!(o.preset_index(), None);
    }

    #[test]
    fn the_drop_down_offers_every_conflict_policy_replace_included() {
        let offered: Vec<&str> = CONFLICTS.iter().map(|c| c.name()).collect();
        assert_eq!(
            offered,
            ["skip-identical", "rename", "overwrite", "replace"]
        );
        for (i, c) in CONFLICTS.iter().enumerate() {
            assert_eq!(conflict_at(i as u32), *c);
            assert_eq!(conflict_index(*c), i as u32);
            // Each its own words, so the drop-down's rows can be told apart.
            let label = conflict_label(*c);
            assert_eq!(
                CONFLICTS
                    .iter()
                    .filter(|o| conflict_label(**o) == label)
                    .count(),
                1,
                "{label}"
            );
        }
        assert_eq!(conflict_at(99), Conflict::SkipIdentical);
    }
}

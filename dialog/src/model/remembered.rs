//! The choices kept for next time: the options and the last folder used, in
//! `$XDG_CONFIG_HOME/dbxport/export-dialog.toml` beside `config.toml` (the same XDG folder,
//! found by the product's `config::Dirs`). Its keys are the config's `[export]` keys (the
//! README, "Every key"), with the same types, so one reads like the other. The daemon's own
//! `export.remember_last_choice` is separate: it changes the defaults of every caller, while
//! this file only fills in the dialog.

use std::path::{Path, PathBuf};

use dbxport::config::ExportMode;
use dbxport::export::Conflict;
use serde::{Deserialize, Serialize};

use super::options::{Options, Size};

/// The file's name in dbxport's config folder.
pub const FILE_NAME: &str = "export-dialog.toml";

#[derive(Debug, thiserror::Error)]
pub enum RememberedError {
    #[error("cannot read {path}: {source}; the dialog starts with its defaults")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid ({message}); the dialog starts with its defaults and rewrites it")]
    Parse { path: PathBuf, message: String },
    #[error("cannot save the dialog's choices to {path}: {source}; check the folder's permissions")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find a home directory: set HOME or XDG_CONFIG_HOME")]
    NoHome,
}

/// What is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Remembered {
    /// The Dropbox folder of the last export (`""`: the top).
    pub folder: String,
    pub mode: ExportMode,
    pub max_dimension: u32,
    pub jpeg_quality: u8,
    pub strip_location: bool,
    pub conflict: Conflict,
    pub share_link: bool,
    /// The export profile chosen last, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Default for Remembered {
    fn default() -> Remembered {
        Remembered::from_choices("", &Options::default())
    }
}

impl Remembered {
    pub fn from_choices(folder: &str, o: &Options) -> Remembered {
        Remembered {
            folder: folder.to_owned(),
            mode: match o.size {
                Size::Original => ExportMode::Original,
                Size::Resized { .. } => ExportMode::Resize,
            },
            max_dimension: o.resize_memory.0,
            jpeg_quality: o.resize_memory.1,
            strip_location: o.strip_location,
            conflict: o.conflict,
            share_link: o.share_link,
            profile: o.profile.clone(),
        }
    }

    /// The options these choices make (out-of-range numbers clamped, as the controls would).
    pub fn options(&self) -> Options {
        let mut o = Options {
            strip_location: self.strip_location,
            conflict: self.conflict,
            share_link: self.share_link,
            profile: self.profile.clone(),
            ..Options::default()
        };
        o.set_max_dimension(self.max_dimension);
        o.set_jpeg_quality(u32::from(self.jpeg_quality));
        o.set_resized(self.mode == ExportMode::Resize);
        o
    }

    /// Where the file lives for this user.
    pub fn path() -> Result<PathBuf, RememberedError> {
        let dirs = dbxport::config::Dirs::from_env().map_err(|_| RememberedError::NoHome)?;
        let folder = dirs
            .config_file
            .parent()
            .ok_or(RememberedError::NoHome)?
            .to_path_buf();
        Ok(folder.join(FILE_NAME))
    }

    /// The choices in `path`; none kept yet is the defaults.
    pub fn load(path: &Path) -> Result<Remembered, RememberedError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Remembered::default());
            }
            Err(source) => {
                return Err(RememberedError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| RememberedError::Parse {
            path: path.into(),
            message: e.message().to_owned(),
        })
    }

    /// Writes the choices (whole, through a temporary file, so a crash never leaves half).
    pub fn save(&self, path: &Path) -> Result<(), RememberedError> {
        let write = |source| RememberedError::Write {
            path: path.into(),
            source,
        };
        let text = toml::to_string(self).map_err(|e| write(std::io::Error::other(e)))?;
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(write)?;
        }
        let partial = path.with_extension("toml.partial");
        std::fs::write(&partial, text).map_err(write)?;
        std::fs::rename(&partial, path).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_survive_a_restart_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbxport").join(FILE_NAME);
        assert_eq!(Remembered::load(&path).unwrap(), Remembered::default());
        let mut o = Options::default();
        o.set_max_dimension(2048);
        o.set_jpeg_quality(72);
        o.conflict = Conflict::Rename;
        o.share_link = true;
        o.strip_location = true;
        o.profile = Some("web".into());
        Remembered::from_choices("/Photos/Trip", &o)
            .save(&path)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("mode = \"resize\""), "{text}");
        assert!(text.contains("conflict = \"rename\""), "{text}");
        assert!(text.contains("profile = \"web\""), "{text}");
        let back = Remembered::load(&path).unwrap();
        assert_eq!(back.folder, "/Photos/Trip");
        assert_eq!(back.options(), o);
        std::fs::write(&path, "colour = 3\n").unwrap();
        let err = Remembered::load(&path).unwrap_err().to_string();
        assert!(err.contains(FILE_NAME) && err.contains("colour"), "{err}");
    }
}

//! The export options that decide what `prepare` does to a photo, as they travel from the
//! D-Bus `Upload` call into a persisted job.

use serde::{Deserialize, Serialize};

/// Smallest long edge a resize may ask for: below this a "photo" is a thumbnail, and a typo
/// (`16` for `1600`) is more likely than intent.
pub const MIN_DIMENSION: u32 = 16;
/// Largest long edge a resize may ask for; also the decode limit on either side of a source.
pub const MAX_DIMENSION: u32 = 20_000;

/// What happens to the pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    /// The bytes go up untouched (unless `strip_location` has to cut the GPS tags out).
    #[default]
    Original,
    /// Fit the long edge into `max_dimension`, never upscaling, and encode as JPEG.
    Resize {
        max_dimension: u32,
        jpeg_quality: u8,
    },
}

/// Everything a job needs to know to prepare its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PrepareOptions {
    pub mode: Mode,
    /// Remove GPS tags (EXIF GPS IFD and XMP `exif:GPS*`) from what is uploaded.
    pub strip_location: bool,
}

impl PrepareOptions {
    /// Checks the values a client sent, with a message fit for a D-Bus `InvalidArgument`.
    pub fn validate(&self) -> Result<(), String> {
        if let Mode::Resize {
            max_dimension,
            jpeg_quality,
        } = self.mode
        {
            if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&max_dimension) {
                return Err(format!(
                    "max_dimension must be between {MIN_DIMENSION} and {MAX_DIMENSION} pixels, not {max_dimension}"
                ));
            }
            if !(1..=100).contains(&jpeg_quality) {
                return Err(format!(
                    "jpeg_quality must be between 1 and 100, not {jpeg_quality}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(max_dimension: u32, jpeg_quality: u8) -> PrepareOptions {
        PrepareOptions {
            mode: Mode::Resize {
                max_dimension,
                jpeg_quality,
            },
            strip_location: false,
        }
    }

    #[test]
    fn validation_bounds() {
        assert_eq!(PrepareOptions::default().mode, Mode::Original);
        assert!(!PrepareOptions::default().strip_location);
        assert!(PrepareOptions::default().validate().is_ok());
        assert!(resize(1600, 85).validate().is_ok());
        assert!(resize(16, 1).validate().is_ok());
        assert!(resize(20_000, 100).validate().is_ok());
        let err = resize(15, 85).validate().unwrap_err();
        assert!(err.contains("max_dimension") && err.contains("15"), "{err}");
        assert!(resize(20_001, 85).validate().is_err());
        let err = resize(1600, 0).validate().unwrap_err();
        assert!(err.contains("jpeg_quality"), "{err}");
        assert!(resize(1600, 101).validate().is_err());
    }

    #[test]
    fn options_round_trip_through_json() {
        let o = PrepareOptions {
            mode: Mode::Resize {
                max_dimension: 2048,
                jpeg_quality: 90,
            },
            strip_location: true,
        };
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<PrepareOptions>(&text).unwrap(), o);
    }
}

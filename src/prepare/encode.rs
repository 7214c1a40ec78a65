//! Encoding the output JPEG and writing the carried-over metadata into it.
//!
//! jpeg-encoder writes the APP segments itself (EXIF in APP1, the ICC profile split over APP2
//! chunks, XMP and IPTC as raw APP1/APP13), so no segment splicing is needed afterwards. Each
//! piece of metadata that cannot be carried (too large for one segment, or a colour profile
//! that does not fit the output's colours) is left out with a warning rather than failing the
//! photo.

use jpeg_encoder::{ColorType, Encoder};

use super::decode::{Metadata, Pixels};
use super::jpeg::XMP_ID;
use super::metadata::{self, exif_for_output, icc_colour_space, scrub_xmp_location};

/// The largest payload of one APP segment (65535 minus the length field).
const MAX_SEGMENT: usize = 65533;

/// Encodes `pixels` (already upright) at `quality`, carrying `meta`.
pub fn encode(
    pixels: &Pixels,
    quality: u8,
    meta: &Metadata,
    strip_location: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(pixels.data.len() / 8);
    let mut encoder = Encoder::new(&mut out, quality.clamp(1, 100));

    if let Some(exif) = &meta.exif {
        match exif_for_output(exif.clone(), pixels.width, pixels.height, strip_location) {
            Ok(blob) if blob.len() + 6 <= MAX_SEGMENT => {
                let _ = encoder.add_exif_metadata(&blob);
            }
            Ok(blob) => warnings.push(format!(
                "the EXIF block ({} bytes) is too large for a JPEG segment and was left out",
                blob.len()
            )),
            Err(metadata::BadExif(why)) => {
                warnings.push(format!("unreadable EXIF ({why}) was left out"))
            }
        }
    }

    if let Some(icc) = &meta.icc {
        let wanted: &[u8; 4] = if pixels.channels == 1 {
            b"GRAY"
        } else {
            b"RGB "
        };
        match icc_colour_space(icc) {
            Some(space) if &space == wanted => {
                if encoder.add_icc_profile(icc).is_err() {
                    warnings.push("the colour profile is too large and was left out".into());
                }
            }
            _ => warnings.push(
                "the colour profile does not describe the output's colours (it was for CMYK or \
                 another colour space) and was left out; colours are converted approximately"
                    .into(),
            ),
        }
    }

    if let Some(xmp) = &meta.xmp {
        let mut xmp = xmp.clone();
        if strip_location {
            scrub_xmp_location(&mut xmp);
        }
        let mut segment = XMP_ID.to_vec();
        segment.extend_from_slice(&xmp);
        if segment.len() <= MAX_SEGMENT {
            let _ = encoder.add_app_segment(1, segment);
        } else {
            warnings.push("the XMP packet is too large for a JPEG segment and was left out".into());
        }
    }

    if let Some(app13) = &meta.app13
        && app13.len() <= MAX_SEGMENT
    {
        let _ = encoder.add_app_segment(13, app13.clone());
    }

    let (w, h) = (
        u16::try_from(pixels.width).map_err(|_| "output too wide for JPEG")?,
        u16::try_from(pixels.height).map_err(|_| "output too tall for JPEG")?,
    );
    let color = if pixels.channels == 1 {
        ColorType::Luma
    } else {
        ColorType::Rgb
    };
    encoder
        .encode(&pixels.data, w, h, color)
        .map_err(|e| format!("cannot encode the JPEG: {e}"))?;
    Ok(out)
}

//! Decoding a source into 8-bit pixels plus the metadata to carry over, within limits.
//!
//! Hostile or merely huge files must fail one job, never the daemon: both sides are capped and
//! the decoded buffer is budgeted before anything is allocated. JPEG goes straight to zune-jpeg
//! (the decoder `image` uses anyway) in strict mode, after the container walk in `jpeg.rs` has
//! proved the file whole; the other formats go through `image` with its `Limits` set.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::containers;
use super::formats::Format;
use super::jpeg::Jpeg;
use super::metadata;
use super::options::MAX_DIMENSION;

/// Largest decoded buffer, in bytes: 512 MiB is a 178 MP RGB photo. Two of these can be in
/// flight (one per core), which a desktop can afford; a 20000x20000 RGB image (1.2 GB) cannot.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Why a decode failed, before it is given the file's path.
#[derive(Debug)]
pub enum DecodeError {
    Corrupt(String),
    TooLarge { width: u64, height: u64 },
}

/// 8-bit pixels, row-major, no padding.
pub struct Pixels {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
}

/// What is carried from the source into the output.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    /// EXIF as a TIFF blob (no `Exif\0\0` prefix).
    pub exif: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
    pub icc: Option<Vec<u8>>,
    /// A JPEG APP13 payload ("Photoshop 3.0" + IPTC), carried whole.
    pub app13: Option<Vec<u8>>,
    /// EXIF Orientation, 1–8.
    pub orientation: u16,
}

/// Checks the size before anything is allocated for it.
pub fn check_size(width: u64, height: u64, channels: u64) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt("the image has no size".into()));
    }
    let too_large = width > MAX_DIMENSION as u64
        || height > MAX_DIMENSION as u64
        || width * height * channels > MAX_DECODED_BYTES;
    if too_large {
        return Err(DecodeError::TooLarge { width, height });
    }
    Ok(())
}

/// The metadata of a JPEG whose container has been walked.
pub fn jpeg_metadata(data: &[u8], jpeg: &Jpeg) -> Metadata {
    let layout = &jpeg.layout;
    let exif = layout.exif_range(data).map(|r| data[r].to_vec());
    Metadata {
        orientation: exif.as_deref().map_or(1, metadata::exif_orientation),
        exif,
        xmp: layout.xmp_range(data).map(|r| data[r].to_vec()),
        icc: layout.icc_profile(data),
        app13: layout.iptc_segment(data).map(<[u8]>::to_vec),
    }
}

/// Decodes a JPEG to RGB (or grey for one-component files; CMYK/YCCK become RGB).
pub fn decode_jpeg(data: &[u8], jpeg: &Jpeg) -> Result<Pixels, DecodeError> {
    let grey = jpeg.frame.components == 1;
    let channels: u8 = if grey { 1 } else { 3 };
    check_size(
        jpeg.frame.width as u64,
        jpeg.frame.height as u64,
        channels as u64,
    )?;
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_DIMENSION as usize)
        .set_max_height(MAX_DIMENSION as usize)
        .jpeg_set_out_colorspace(if grey {
            ColorSpace::Luma
        } else {
            ColorSpace::RGB
        });
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder
        .decode()
        .map_err(|e| DecodeError::Corrupt(format!("the image data is damaged ({e:?})")))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| DecodeError::Corrupt("the image has no size".into()))?;
    if pixels.len() != width * height * channels as usize {
        return Err(DecodeError::Corrupt("the image data is incomplete".into()));
    }
    Ok(Pixels {
        data: pixels,
        width: width as u32,
        height: height as u32,
        channels,
    })
}

/// Decodes a PNG, WebP or TIFF through `image`, with its metadata.
pub fn decode_other(data: &[u8], format: Format) -> Result<(Pixels, Metadata), DecodeError> {
    let image_format = match format {
        Format::Png => ImageFormat::Png,
        Format::WebP => ImageFormat::WebP,
        Format::Tiff => ImageFormat::Tiff,
        _ => {
            return Err(DecodeError::Corrupt(
                "not an image format dbxport decodes".into(),
            ));
        }
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(data), image_format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64, 3)?;
    let mut meta = Metadata {
        icc: decoder.icc_profile().ok().flatten(),
        xmp: decoder.xmp_metadata().ok().flatten(),
        exif: decoder.exif_metadata().ok().flatten(),
        ..Metadata::default()
    };
    match format {
        Format::Png if meta.exif.is_none() => meta.exif = containers::png_legacy_exif(data),
        Format::Tiff => meta.exif = containers::tiff_exif(data),
        _ => {}
    }
    meta.orientation = match &meta.exif {
        Some(exif) => metadata::exif_orientation(exif),
        None => decoder
            .orientation()
            .map(|o| o.to_exif() as u16)
            .unwrap_or(1),
    };
    let image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    Ok((flatten(image), meta))
}

fn image_error(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Limits(_) => DecodeError::TooLarge {
            width: 0,
            height: 0,
        },
        e => DecodeError::Corrupt(format!("the image data is damaged ({e})")),
    }
}

/// 8-bit grey or RGB; transparency is flattened onto white, as a JPEG has none and a
/// transparent background shown as black surprises everyone.
fn flatten(image: DynamicImage) -> Pixels {
    let (width, height) = (image.width(), image.height());
    let grey = matches!(
        image.color(),
        image::ColorType::L8
            | image::ColorType::L16
            | image::ColorType::La8
            | image::ColorType::La16
    );
    let data = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        let channels = if grey { 1 } else { 3 };
        let mut out = Vec::with_capacity(width as usize * height as usize * channels);
        for px in rgba.pixels() {
            let a = px.0[3] as u32;
            let over = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
            if grey {
                out.push(over(px.0[0]));
            } else {
                out.extend_from_slice(&[over(px.0[0]), over(px.0[1]), over(px.0[2])]);
            }
        }
        out
    } else if grey {
        image.to_luma8().into_raw()
    } else {
        image.to_rgb8().into_raw()
    };
    Pixels {
        data,
        width,
        height,
        channels: if grey { 1 } else { 3 },
    }
}

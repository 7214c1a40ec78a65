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

/// Decodes a JPEG to RGB (or grey for one-component files; CMYK/YCCK become RGB), at a
/// reduced scale when the resize to `target` (the stored size) leaves room for it.
pub fn decode_jpeg(data: &[u8], jpeg: &Jpeg, target: (u32, u32)) -> Result<Pixels, DecodeError> {
    match decode_jpeg_scaled(data, jpeg, target) {
        Some(pixels) => Ok(pixels),
        None => decode_jpeg_full(data, jpeg),
    }
}

/// The DCT scaling denominator (2, 4 or 8) for a resize from `size` to `target`: the largest
/// that keeps the decoded image at least twice the target on both axes, so that the Lanczos
/// resize after it still has a 2x reduction to do. Measured (BENCHMARKS.md): scaling down to
/// just the target (1/2 for a 4000 px photo going to 1600) costs 0.0002–0.0006 SSIM at 1600 px
/// and up to 0.0023 at 700 px against an exact Lanczos resize, enough to fall behind
/// vipsthumbnail; with the 2x margin the scores stay within 0.0002 of a full decode's.
pub fn dct_scale(size: (u32, u32), target: (u32, u32)) -> Option<u32> {
    [8, 4, 2]
        .into_iter()
        .find(|s| size.0.div_ceil(*s) >= 2 * target.0 && size.1.div_ceil(*s) >= 2 * target.1)
}

/// DCT scaling: the inverse DCT of each 8x8 block is computed at 4x4, 2x2 or 1x1, so a
/// 1/2, 1/4 or 1/8 image comes out of the decoder without the full-size pixels ever
/// existing. That skips most of the IDCT, colour conversion and upsampling work and most of
/// the memory, and the resize then reads a fraction of the pixels. zune-jpeg has no such mode;
/// jpeg-decoder (image's previous JPEG decoder) has, and decodes colour components on their own
/// threads. Only plain YCbCr/grey 8-bit files go this way (CMYK, Adobe-transformed and 12-bit
/// files take the full path), and any failure, even a panic, falls back to the full, strict
/// decode, which then reports the error.
fn decode_jpeg_scaled(data: &[u8], jpeg: &Jpeg, target: (u32, u32)) -> Option<Pixels> {
    let frame = jpeg.frame;
    let plain = matches!(frame.components, 1 | 3)
        && frame.precision == 8
        && !jpeg.layout.segments.iter().any(|s| s.marker == 0xEE);
    let scale = dct_scale((frame.width, frame.height), target).filter(|_| plain)?;
    check_size(
        frame.width as u64,
        frame.height as u64,
        frame.components as u64,
    )
    .ok()?;
    let wanted = (frame.width.div_ceil(scale), frame.height.div_ceil(scale));
    let decoded = std::panic::catch_unwind(|| {
        let mut decoder = jpeg_decoder::Decoder::new(data);
        decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES as usize);
        let (w, h) = decoder
            .scale(u16::try_from(wanted.0).ok()?, u16::try_from(wanted.1).ok()?)
            .ok()?;
        if (w as u32, h as u32) != wanted {
            return None;
        }
        let pixels = decoder.decode().ok()?;
        let channels = match decoder.info()?.pixel_format {
            jpeg_decoder::PixelFormat::L8 => 1u8,
            jpeg_decoder::PixelFormat::RGB24 => 3,
            _ => return None,
        };
        (pixels.len() == w as usize * h as usize * channels as usize).then_some(Pixels {
            data: pixels,
            width: w as u32,
            height: h as u32,
            channels,
        })
    });
    decoded.ok().flatten()
}

fn decode_jpeg_full(data: &[u8], jpeg: &Jpeg) -> Result<Pixels, DecodeError> {
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

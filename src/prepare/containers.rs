//! Files read and rewritten without touching their pixels: taking the location out of an
//! original (JPEG segments, PNG chunks, WebP chunks, TIFF tags), and the metadata `image` does
//! not hand over (EXIF in a PNG's legacy text chunk, EXIF fields of a TIFF).
//!
//! An original with `strip_location` must stay the original in every other byte: the scan data
//! of a JPEG, a PNG's IDAT, are copied untouched. EXIF and XMP are edited in place (see
//! `metadata.rs`), so segment and chunk sizes mostly stay as they were.

use std::io::{Read, Write};
use std::ops::Range;

use super::formats::Format;
use super::jpeg::{self, XMP_EXT_ID};
use super::metadata::{Tiff, scrub_xmp_location};

/// The outcome of cutting the location out of an original.
pub struct Stripped {
    /// The new file, or `None` if there was no location to remove.
    pub data: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

fn is_tiff(head: &[u8]) -> bool {
    head.starts_with(b"II*\0") || head.starts_with(b"MM\0*")
}

/// Whether `strip_location` can edit this format (`head`: the file's first bytes). The error
/// is the reason, for the user.
pub fn check_strippable(format: Format, head: &[u8]) -> Result<(), String> {
    match format {
        Format::Jpeg | Format::Png | Format::WebP => Ok(()),
        Format::Tiff | Format::Raw if is_tiff(head) => Ok(()),
        other => Err(format!(
            "cannot remove the location from {} file here; send it without strip_location, \
             or remove the location with another tool first",
            match other {
                Format::Other => "this kind of".to_string(),
                f => format!("a {}", f.label()),
            }
        )),
    }
}

/// Removes GPS tags from an original without re-encoding it. The error is the reason it cannot
/// be done (the caller names the file).
pub fn strip_location(format: Format, mut data: Vec<u8>) -> Result<Stripped, String> {
    check_strippable(format, &data)?;
    match format {
        Format::Jpeg => strip_jpeg(data),
        Format::Png => strip_png(&data),
        Format::WebP => strip_webp(data),
        _ => {
            let changed = strip_tiff(&mut data)?;
            Ok(Stripped {
                data: changed.then_some(data),
                warnings: Vec::new(),
            })
        }
    }
}

fn strip_jpeg(mut data: Vec<u8>) -> Result<Stripped, String> {
    let layout = jpeg::readable_segments(&data)?;
    let mut changed = false;
    let mut cut: Vec<Range<usize>> = Vec::new();
    let mut warnings = Vec::new();
    for seg in layout.segments.iter().filter(|s| s.marker == 0xE1) {
        let payload = seg.data.clone();
        if data[payload.clone()].starts_with(b"Exif\0\0") {
            let blob = &mut data[payload.start + 6..payload.end];
            match Tiff::new(blob).and_then(|mut t| t.remove_gps()) {
                Ok(removed) => changed |= removed,
                Err(e) => {
                    // Cannot tell where the GPS tags are: the whole block goes.
                    warnings.push(format!("{e}; the EXIF block was left out"));
                    cut.push(seg.whole.clone());
                }
            }
        } else if data[payload.clone()].starts_with(jpeg::XMP_ID) {
            changed |=
                scrub_xmp_location(&mut data[payload.start + jpeg::XMP_ID.len()..payload.end]);
        } else if data[payload.clone()].starts_with(XMP_EXT_ID) {
            // Extended XMP is checksummed as a whole (MD5 in the main packet): it cannot be
            // edited, only dropped.
            if contains(&data[payload.clone()], b"GPS") {
                cut.push(seg.whole.clone());
            }
        }
    }
    if cut.is_empty() && !changed {
        return Ok(Stripped {
            data: None,
            warnings,
        });
    }
    Ok(Stripped {
        data: Some(without(&data, &cut)),
        warnings,
    })
}

fn without(data: &[u8], cut: &[Range<usize>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for r in cut {
        out.extend_from_slice(&data[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A whole TIFF file (or TIFF-based RAW): GPS IFD and XMP GPS properties, in place.
fn strip_tiff(data: &mut [u8]) -> Result<bool, String> {
    let unreadable = |e| format!("cannot read this file's tags to remove the location ({e})");
    let mut tiff = Tiff::new(data).map_err(unreadable)?;
    let mut changed = tiff.remove_gps().map_err(unreadable)?;
    if let Some(xmp) = tiff.ifd0_value(0x02BC) {
        changed |= scrub_xmp_location(&mut data[xmp]);
    }
    Ok(changed)
}

// ---- PNG ----

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const LEGACY_EXIF_KEYS: &[&[u8]] = &[b"Raw profile type exif", b"Raw profile type APP1"];
const XMP_KEY: &[u8] = b"XML:com.adobe.xmp";

struct Chunk {
    kind: [u8; 4],
    whole: Range<usize>,
    data: Range<usize>,
}

fn png_chunks(data: &[u8]) -> Result<Vec<Chunk>, String> {
    if !data.starts_with(PNG_SIGNATURE) {
        return Err("not a PNG file".into());
    }
    let mut chunks = Vec::new();
    let mut pos = PNG_SIGNATURE.len();
    while pos < data.len() {
        let header = data
            .get(pos..pos + 8)
            .ok_or("the file ends inside a chunk header")?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .filter(|&e| e <= data.len())
            .ok_or("the file ends inside a chunk")?;
        chunks.push(Chunk {
            kind,
            whole: pos..end,
            data: pos + 8..end - 4,
        });
        pos = end;
        if &kind == b"IEND" {
            break;
        }
    }
    Ok(chunks)
}

/// One PNG chunk: length, type, payload, CRC (also used by `prepare`'s tests to build PNGs).
pub(super) fn png_chunk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(payload);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    // Text chunks are small; a decompression bomb is cut at 16 MiB.
    flate2::read::ZlibDecoder::new(data)
        .take(16 << 20)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// A text chunk's keyword and text (decompressed), with what is needed to write it back.
struct Text {
    keyword: Vec<u8>,
    /// For iTXt: compression flag onwards up to the text (flag, method, language, key).
    itxt_header: Option<Vec<u8>>,
    compressed: bool,
    text: Vec<u8>,
}

fn read_text(kind: &[u8; 4], payload: &[u8]) -> Option<Text> {
    let nul = payload.iter().position(|&b| b == 0)?;
    let keyword = payload[..nul].to_vec();
    let rest = &payload[nul + 1..];
    match kind {
        b"tEXt" => Some(Text {
            keyword,
            itxt_header: None,
            compressed: false,
            text: rest.to_vec(),
        }),
        b"zTXt" => Some(Text {
            keyword,
            itxt_header: None,
            compressed: true,
            text: inflate(rest.get(1..)?)?,
        }),
        b"iTXt" => {
            let compressed = *rest.first()? == 1;
            let lang_end = 2 + rest.get(2..)?.iter().position(|&b| b == 0)?;
            let key_end = lang_end + 1 + rest.get(lang_end + 1..)?.iter().position(|&b| b == 0)?;
            let header = rest[..key_end + 1].to_vec();
            let body = &rest[key_end + 1..];
            Some(Text {
                keyword,
                itxt_header: Some(header),
                compressed,
                text: if compressed {
                    inflate(body)?
                } else {
                    body.to_vec()
                },
            })
        }
        _ => None,
    }
}

fn write_text(kind: &[u8; 4], t: &Text) -> Vec<u8> {
    let mut payload = t.keyword.clone();
    payload.push(0);
    match &t.itxt_header {
        Some(header) => payload.extend_from_slice(header),
        None if t.compressed => payload.push(0),
        None => {}
    }
    if t.compressed {
        payload.extend_from_slice(&deflate(&t.text));
    } else {
        payload.extend_from_slice(&t.text);
    }
    png_chunk(kind, &payload)
}

/// ImageMagick's "Raw profile" text: `\n<name>\n <length>\n<hex…>`.
fn raw_profile_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.trim_start_matches('\n').splitn(3, '\n');
    let _name = lines.next()?;
    let len: usize = lines.next()?.trim().parse().ok()?;
    let hex: Vec<u8> = lines
        .next()?
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if hex.len() < len * 2 {
        return None;
    }
    (0..len)
        .map(|i| {
            let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

fn raw_profile_encode(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("\n{name}\n{:8}\n", bytes.len()).into_bytes();
    for line in bytes.chunks(36) {
        for b in line {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn strip_exif_prefix(blob: &[u8]) -> &[u8] {
    blob.strip_prefix(b"Exif\0\0").unwrap_or(blob)
}

/// EXIF from a PNG's legacy "Raw profile type exif" text chunk (ImageMagick, GIMP, exiv2
/// write it; `image` only reads the newer eXIf chunk).
pub fn png_legacy_exif(data: &[u8]) -> Option<Vec<u8>> {
    png_chunks(data).ok()?.iter().find_map(|c| {
        let t = read_text(&c.kind, &data[c.data.clone()])?;
        if !LEGACY_EXIF_KEYS.contains(&t.keyword.as_slice()) {
            return None;
        }
        let blob = raw_profile_decode(&t.text)?;
        Some(strip_exif_prefix(&blob).to_vec())
    })
}

fn strip_png(data: &[u8]) -> Result<Stripped, String> {
    let chunks = png_chunks(data)?;
    let mut out = data[..PNG_SIGNATURE.len()].to_vec();
    let mut changed = false;
    let mut warnings = Vec::new();
    for c in &chunks {
        let payload = &data[c.data.clone()];
        let mut replacement: Option<Vec<u8>> = None;
        if &c.kind == b"eXIf" {
            let mut blob = payload.to_vec();
            match Tiff::new(&mut blob).and_then(|mut t| t.remove_gps()) {
                Ok(true) => replacement = Some(png_chunk(b"eXIf", &blob)),
                Ok(false) => {}
                Err(e) => {
                    warnings.push(format!("{e}; the EXIF chunk was left out"));
                    replacement = Some(Vec::new());
                }
            }
        } else if let Some(mut t) = read_text(&c.kind, payload) {
            if LEGACY_EXIF_KEYS.contains(&t.keyword.as_slice()) {
                let edited = raw_profile_decode(&t.text).and_then(|mut blob| {
                    let prefix = if blob.starts_with(b"Exif\0\0") { 6 } else { 0 };
                    let removed = Tiff::new(&mut blob[prefix..])
                        .and_then(|mut tiff| tiff.remove_gps())
                        .ok()?;
                    Some((removed, blob))
                });
                match edited {
                    Some((true, blob)) => {
                        t.text = raw_profile_encode("exif", &blob);
                        replacement = Some(write_text(&c.kind, &t));
                    }
                    Some((false, _)) => {}
                    None => {
                        warnings.push("unreadable EXIF text chunk; it was left out".into());
                        replacement = Some(Vec::new());
                    }
                }
            } else if t.keyword == XMP_KEY && scrub_xmp_location(&mut t.text) {
                replacement = Some(write_text(&c.kind, &t));
            }
        }
        match replacement {
            Some(bytes) => {
                changed = true;
                out.extend_from_slice(&bytes);
            }
            None => out.extend_from_slice(&data[c.whole.clone()]),
        }
    }
    if let Some(last) = chunks.last() {
        out.extend_from_slice(&data[last.whole.end..]);
    }
    Ok(Stripped {
        data: changed.then_some(out),
        warnings,
    })
}

// ---- WebP ----

fn strip_webp(mut data: Vec<u8>) -> Result<Stripped, String> {
    if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WEBP" {
        return Err("not a WebP file".into());
    }
    let mut changed = false;
    let mut pos = 12;
    while pos + 8 <= data.len() {
        let kind: [u8; 4] = [data[pos], data[pos + 1], data[pos + 2], data[pos + 3]];
        let len = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]])
            as usize;
        let start = pos + 8;
        let Some(end) = start.checked_add(len).filter(|&e| e <= data.len()) else {
            break;
        };
        match &kind {
            b"EXIF" => {
                let prefix = if data[start..end].starts_with(b"Exif\0\0") {
                    6
                } else {
                    0
                };
                let removed = Tiff::new(&mut data[start + prefix..end])
                    .and_then(|mut t| t.remove_gps())
                    .map_err(|e| format!("cannot remove the location: {e}"))?;
                changed |= removed;
            }
            b"XMP " => changed |= scrub_xmp_location(&mut data[start..end]),
            _ => {}
        }
        pos = end + (len & 1);
    }
    Ok(Stripped {
        data: changed.then_some(data),
        warnings: Vec::new(),
    })
}

// ---- TIFF sources ----

/// An EXIF blob for a JPEG made from a TIFF: the TIFF's descriptive tags and its EXIF/GPS
/// sub-IFDs, without the tags that describe the TIFF's own pixel layout.
pub fn tiff_exif(data: &[u8]) -> Option<Vec<u8>> {
    use exif::{Context, In, Tag, Value};
    const KEPT_TIFF_TAGS: &[u16] = &[
        0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x8298,
    ];
    let parsed = exif::Reader::new().read_raw(data.to_vec()).ok()?;
    let fields: Vec<&exif::Field> = parsed
        .fields()
        .filter(|f| f.ifd_num == In::PRIMARY)
        .filter(|f| !matches!(f.value, Value::Unknown(..)))
        .filter(|f| match f.tag.context() {
            Context::Tiff => KEPT_TIFF_TAGS.contains(&f.tag.number()),
            Context::Exif => f.tag != Tag::InteropIFDPointer,
            Context::Gps | Context::Interop => true,
            _ => false,
        })
        .collect();
    if fields.is_empty() {
        return None;
    }
    let mut writer = exif::experimental::Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    writer.write(&mut out, parsed.little_endian()).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_profile_round_trip() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..10).collect();
        let text = raw_profile_encode("exif", &bytes);
        assert_eq!(raw_profile_decode(&text).unwrap(), bytes);
    }

    #[test]
    fn png_chunks_survive_hostile_lengths() {
        let mut data = PNG_SIGNATURE.to_vec();
        data.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xF0, b'z', b'T', b'X', b't']);
        assert!(png_chunks(&data).is_err());
        assert!(png_legacy_exif(&data).is_none());
        assert!(strip_png(&data).is_err());
        assert!(strip_webp(b"RIFF\0\0\0\0WEBPEXIF\xff\xff\xff\xff".to_vec()).is_ok());
    }
}

//! The JPEG container, read without decoding: where the metadata segments are, what the frame
//! header says, and whether the compressed data really reaches its end-of-image marker.
//!
//! Decoders are lenient: `image` (zune-jpeg) turns a file cut inside its scan data into a
//! picture with a grey lower half, and zune-jpeg's strict mode only catches that for baseline
//! files. Walking the markers to EOI catches every truncation, and it stops at the first EOI, so
//! data appended after the image (motion-photo videos, vendor trailers) is no error.

use std::ops::Range;

/// One marker segment before or between scans (never entropy-coded data).
#[derive(Debug, Clone)]
pub struct Segment {
    pub marker: u8,
    /// From the `FF` of the marker to the end of the segment.
    pub whole: Range<usize>,
    /// The payload after the two length bytes.
    pub data: Range<usize>,
}

/// The frame header (SOFn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bits per sample (8 for nearly every photo; 12 exists).
    pub precision: u8,
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub progressive: bool,
}

/// The marker segments of a file, in order.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub segments: Vec<Segment>,
}

/// A whole JPEG: its segments, its frame, and where it ends.
#[derive(Debug, Clone)]
pub struct Jpeg {
    pub layout: Layout,
    pub frame: Frame,
}

const EXIF_ID: &[u8] = b"Exif\0\0";
pub const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
pub const XMP_EXT_ID: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";
const ICC_ID: &[u8] = b"ICC_PROFILE\0";
const IPTC_ID: &[u8] = b"Photoshop 3.0\0";

fn is_sof(m: u8) -> bool {
    matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// Walks the whole file. The error is a reason for a user ("the file ends …").
pub fn parse(data: &[u8]) -> Result<Jpeg, String> {
    let (segments, frame, end) = walk(data);
    end?;
    let frame = frame.ok_or("the file has no image frame")?;
    if !segments.iter().any(|s| s.marker == 0xDA) {
        return Err("the file has no image data".into());
    }
    Ok(Jpeg {
        layout: Layout { segments },
        frame,
    })
}

/// The segments that could be read, for edits that do not need the image to be whole
/// (cutting the location out of an original). Fails only if this is not a JPEG at all.
pub fn readable_segments(data: &[u8]) -> Result<Layout, String> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG file".into());
    }
    Ok(Layout {
        segments: walk(data).0,
    })
}

fn walk(data: &[u8]) -> (Vec<Segment>, Option<Frame>, Result<usize, String>) {
    const CUT_IN_HEADERS: &str = "the file ends inside its headers";
    const CUT_IN_IMAGE: &str = "the file ends before the end of the image data";
    let mut segments = Vec::new();
    let mut frame = None;
    if !data.starts_with(&[0xFF, 0xD8]) {
        return (segments, frame, Err("not a JPEG file".into()));
    }
    let len = data.len();
    let mut pos = 2;
    let mut scans = 0usize;
    let cut = |scans| {
        Err(if scans > 0 {
            CUT_IN_IMAGE
        } else {
            CUT_IN_HEADERS
        }
        .to_string())
    };
    loop {
        // Bytes between segments are garbage libjpeg skips with a warning; so do we.
        match data[pos.min(len)..].iter().position(|&b| b == 0xFF) {
            Some(skip) => pos += skip,
            None => return (segments, frame, cut(scans)),
        }
        while pos < len && data[pos] == 0xFF {
            pos += 1;
        }
        if pos >= len {
            return (segments, frame, cut(scans));
        }
        let marker = data[pos];
        let start = pos - 1;
        pos += 1;
        match marker {
            0xD9 => return (segments, frame, Ok(pos)),
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        if pos + 2 > len {
            return (segments, frame, cut(scans));
        }
        let seg_len = u16::from_be_bytes([data[pos], data[pos + 1]]) as usize;
        if seg_len < 2 {
            return (
                segments,
                frame,
                Err(format!("a damaged segment at byte {start}")),
            );
        }
        let end = pos + seg_len;
        if end > len {
            return (segments, frame, cut(scans));
        }
        let payload = pos + 2..end;
        if is_sof(marker) && frame.is_none() {
            let p = &data[payload.clone()];
            if p.len() < 6 {
                return (segments, frame, Err("a damaged frame header".into()));
            }
            frame = Some(Frame {
                precision: p[0],
                height: u16::from_be_bytes([p[1], p[2]]) as u32,
                width: u16::from_be_bytes([p[3], p[4]]) as u32,
                components: p[5],
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            });
        }
        segments.push(Segment {
            marker,
            whole: start..end,
            data: payload,
        });
        pos = end;
        if marker == 0xDA {
            scans += 1;
            match skip_entropy_coded(data, pos) {
                Some(next) => pos = next,
                None => return (segments, frame, cut(scans)),
            }
        }
    }
}

/// Returns the position of the marker that ends a scan's entropy-coded data.
fn skip_entropy_coded(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let at = pos + data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        match *data.get(at + 1)? {
            // A stuffed zero or a restart marker: still inside the scan.
            0x00 | 0xD0..=0xD7 => pos = at + 2,
            0xFF => pos = at + 1,
            _ => return Some(at),
        }
    }
}

impl Layout {
    fn app<'d>(&self, data: &'d [u8], marker: u8, id: &[u8]) -> Option<(&Segment, &'d [u8])> {
        self.segments
            .iter()
            .filter(|s| s.marker == marker)
            .find_map(|s| {
                let payload = &data[s.data.clone()];
                payload.starts_with(id).then(|| (s, &payload[id.len()..]))
            })
    }

    /// The EXIF TIFF blob (after `Exif\0\0`) and its range in the file.
    pub fn exif_range(&self, data: &[u8]) -> Option<Range<usize>> {
        self.app(data, 0xE1, EXIF_ID)
            .map(|(s, _)| s.data.start + EXIF_ID.len()..s.data.end)
    }

    /// The main XMP packet's range in the file.
    pub fn xmp_range(&self, data: &[u8]) -> Option<Range<usize>> {
        self.app(data, 0xE1, XMP_ID)
            .map(|(s, _)| s.data.start + XMP_ID.len()..s.data.end)
    }

    /// The ICC profile, reassembled from its APP2 chunks in sequence order; `None` if absent
    /// or if the chunks do not make a whole.
    pub fn icc_profile(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut chunks: Vec<(u8, u8, &[u8])> = self
            .segments
            .iter()
            .filter(|s| s.marker == 0xE2)
            .filter_map(|s| {
                let p = &data[s.data.clone()];
                (p.len() > ICC_ID.len() + 2 && p.starts_with(ICC_ID))
                    .then(|| (p[ICC_ID.len()], p[ICC_ID.len() + 1], &p[ICC_ID.len() + 2..]))
            })
            .collect();
        if chunks.is_empty() {
            return None;
        }
        chunks.sort_by_key(|c| c.0);
        let total = chunks[0].1 as usize;
        let complete = chunks.len() == total
            && chunks
                .iter()
                .enumerate()
                .all(|(i, c)| c.0 as usize == i + 1 && c.1 as usize == total);
        complete.then(|| chunks.iter().flat_map(|c| c.2.iter().copied()).collect())
    }

    /// The APP13 "Photoshop 3.0" payload (IPTC lives in it), whole.
    pub fn iptc_segment<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        self.app(data, 0xED, IPTC_ID)
            .map(|(s, _)| &data[s.data.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/photos/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_whole_file_parses_and_its_metadata_is_found() {
        let data = photo("xmp_test.jpg");
        let jpeg = parse(&data).unwrap();
        assert_eq!((jpeg.frame.width, jpeg.frame.height), (2000, 1072));
        let layout = jpeg.layout;
        assert!(layout.exif_range(&data).is_some());
        let xmp = layout.xmp_range(&data).unwrap();
        assert!(String::from_utf8_lossy(&data[xmp]).contains("x:xmpmeta"));
        let icc = layout.icc_profile(&data).unwrap();
        assert_eq!(&icc[16..20], b"RGB ");
    }

    #[test]
    fn progressive_and_trailing_data() {
        let mut data = photo("formats/video-001.progressive.jpeg");
        assert!(parse(&data).unwrap().frame.progressive);
        data.extend_from_slice(b"\0\0\0\x18ftypmp42 trailing video");
        assert!(parse(&data).is_ok());
    }

    #[test]
    fn every_truncation_is_found() {
        for name in [
            "Dragonfly_by_Bolly.jpg",
            "formats/video-001.progressive.jpeg",
        ] {
            let data = photo(name);
            let end = data.len();
            for cut in [3, 100, 2000, end / 3, end / 2, end - 2, end - 1] {
                let err = parse(&data[..cut]).unwrap_err();
                assert!(err.contains("the file ends"), "{name} cut at {cut}: {err}");
            }
        }
        let err = parse(&photo("broken/IMG_20200124_231153-truncated-in-scan.jpg")).unwrap_err();
        assert!(err.contains("before the end of the image data"), "{err}");
        let err = parse(&photo("broken/IMG_20200124_231153-truncated-in-exif.jpg")).unwrap_err();
        assert!(err.contains("inside its headers"), "{err}");
    }
}

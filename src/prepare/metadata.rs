//! Editing metadata in place: the EXIF (TIFF) structure, XMP packets, and a look at ICC profiles.
//!
//! EXIF is edited where it lies instead of being rebuilt. A rebuild (kamadak-exif's experimental
//! writer) refuses unknown field types and breaks maker notes that use absolute offsets, so a
//! faithful carry-over of a camera's EXIF means touching only what must change: the Orientation
//! value, the pixel dimensions, the GPS IFD and the stale thumbnail. Every edit keeps the blob's
//! length (values are overwritten, removed structures zeroed), which is also what lets
//! `strip_location` rewrite an original without moving any other byte of the file. Privacy
//! needs the GPS bytes gone, not just unreferenced, so they are zeroed, not unlinked.

use std::collections::HashSet;

const TAG_ORIENTATION: u16 = 0x0112;
const TAG_IMAGE_WIDTH: u16 = 0x0100;
const TAG_IMAGE_LENGTH: u16 = 0x0101;
const TAG_STRIP_OFFSETS: u16 = 0x0111;
const TAG_STRIP_BYTE_COUNTS: u16 = 0x0117;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_GPS_IFD: u16 = 0x8825;
const TAG_INTEROP_IFD: u16 = 0xA005;
const TAG_PIXEL_X: u16 = 0xA002;
const TAG_PIXEL_Y: u16 = 0xA003;
const TAG_THUMB_OFFSET: u16 = 0x0201;
const TAG_THUMB_LENGTH: u16 = 0x0202;

/// Hostile files can declare anything; real IFDs have a few hundred entries at most.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ifd0,
    Ifd1,
    Exif,
    Gps,
    Interop,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Offset of the 12-byte entry.
    pos: usize,
    tag: u16,
    typ: u16,
    count: u32,
}

#[derive(Debug, Clone)]
struct Ifd {
    kind: Kind,
    offset: usize,
    entries: Vec<Entry>,
}

impl Ifd {
    fn end(&self) -> usize {
        self.offset + 2 + 12 * self.entries.len() + 4
    }
    fn next_pos(&self) -> usize {
        self.offset + 2 + 12 * self.entries.len()
    }
    fn find(&self, tag: u16) -> Option<Entry> {
        self.entries.iter().copied().find(|e| e.tag == tag)
    }
}

/// The EXIF structure is unusable (a reason, for a warning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable EXIF: {0}")]
pub struct BadExif(pub &'static str);

fn type_size(typ: u16) -> Option<usize> {
    Some(match typ {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => return None,
    })
}

/// A TIFF structure (an EXIF blob, or a whole TIFF file) being edited in place.
pub struct Tiff<'a> {
    buf: &'a mut [u8],
    big_endian: bool,
}

impl<'a> Tiff<'a> {
    pub fn new(buf: &'a mut [u8]) -> Result<Self, BadExif> {
        let big_endian = match buf.get(..4) {
            Some(b"MM\0*") => true,
            Some(b"II*\0") => false,
            _ => return Err(BadExif("no TIFF header")),
        };
        Ok(Tiff { buf, big_endian })
    }

    /// `N` bytes at `at` in big-endian order, whatever the file's: the readers below then need
    /// only `from_be_bytes`.
    fn be_bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let mut b: [u8; N] = self.buf.get(at..at.checked_add(N)?)?.try_into().ok()?;
        if !self.big_endian {
            b.reverse();
        }
        Some(b)
    }

    /// Writes `b` (big-endian) at `at` in the file's byte order; out of range writes nothing.
    fn put_be_bytes<const N: usize>(&mut self, at: usize, mut b: [u8; N]) {
        if !self.big_endian {
            b.reverse();
        }
        if let Some(dst) = self.buf.get_mut(at..at + N) {
            dst.copy_from_slice(&b);
        }
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        self.be_bytes(at).map(u16::from_be_bytes)
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        self.be_bytes(at).map(u32::from_be_bytes)
    }

    fn put_u16(&mut self, at: usize, v: u16) {
        self.put_be_bytes(at, v.to_be_bytes());
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.put_be_bytes(at, v.to_be_bytes());
    }

    fn zero(&mut self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.buf.len());
        if range.start < end {
            self.buf[range.start..end].fill(0);
        }
    }

    fn read_ifd(&self, kind: Kind, offset: usize) -> Result<Ifd, BadExif> {
        let n = self
            .u16_at(offset)
            .ok_or(BadExif("an IFD lies outside the data"))? as usize;
        if n > MAX_ENTRIES {
            return Err(BadExif("an IFD has too many entries"));
        }
        if offset + 2 + 12 * n + 4 > self.buf.len() {
            return Err(BadExif("an IFD runs past the end of the data"));
        }
        let entries = (0..n)
            .map(|i| {
                let pos = offset + 2 + 12 * i;
                Entry {
                    pos,
                    tag: self.u16_at(pos).unwrap_or(0),
                    typ: self.u16_at(pos + 2).unwrap_or(0),
                    count: self.u32_at(pos + 4).unwrap_or(0),
                }
            })
            .collect();
        Ok(Ifd {
            kind,
            offset,
            entries,
        })
    }

    /// Where an entry's value lies (inline or out of line) and how long it is, if the type is
    /// known and the value fits in the data.
    fn value_range(&self, e: &Entry) -> Option<std::ops::Range<usize>> {
        let size = type_size(e.typ)?.checked_mul(e.count as usize)?;
        let start = if size <= 4 {
            e.pos + 8
        } else {
            self.u32_at(e.pos + 8)? as usize
        };
        let end = start.checked_add(size)?;
        (end <= self.buf.len()).then_some(start..end)
    }

    /// Values of a SHORT or LONG entry.
    fn numbers(&self, e: &Entry) -> Vec<u32> {
        let Some(range) = self.value_range(e) else {
            return Vec::new();
        };
        match e.typ {
            3 => range
                .step_by(2)
                .filter_map(|at| self.u16_at(at).map(u32::from))
                .collect(),
            4 | 13 => range.step_by(4).filter_map(|at| self.u32_at(at)).collect(),
            _ => Vec::new(),
        }
    }

    fn pointer(&self, ifd: &Ifd, tag: u16) -> Option<usize> {
        ifd.find(tag)
            .and_then(|e| self.numbers(&e).first().copied())
            .map(|v| v as usize)
            .filter(|&v| v >= 8)
    }

    /// IFD0 and everything it links to. A loop or an out-of-range sub-IFD is an error for IFD0
    /// only; broken sub-IFDs are left out (and so left alone).
    fn ifds(&self) -> Result<Vec<Ifd>, BadExif> {
        let first = self.u32_at(4).ok_or(BadExif("no first IFD"))? as usize;
        let ifd0 = self.read_ifd(Kind::Ifd0, first)?;
        let mut seen: HashSet<usize> = HashSet::from([first]);
        let mut out = Vec::new();
        let mut sub = |kind, offset: Option<usize>, out: &mut Vec<Ifd>| {
            if let Some(offset) = offset
                && seen.insert(offset)
                && let Ok(ifd) = self.read_ifd(kind, offset)
            {
                out.push(ifd);
            }
        };
        sub(Kind::Exif, self.pointer(&ifd0, TAG_EXIF_IFD), &mut out);
        sub(Kind::Gps, self.pointer(&ifd0, TAG_GPS_IFD), &mut out);
        let next = self.u32_at(ifd0.next_pos()).unwrap_or(0) as usize;
        sub(Kind::Ifd1, (next >= 8).then_some(next), &mut out);
        let interop = out
            .iter()
            .find(|i| i.kind == Kind::Exif)
            .and_then(|exif| self.pointer(exif, TAG_INTEROP_IFD));
        sub(Kind::Interop, interop, &mut out);
        out.insert(0, ifd0);
        Ok(out)
    }

    fn ifd(&self, kind: Kind) -> Option<Ifd> {
        self.ifds().ok()?.into_iter().find(|i| i.kind == kind)
    }

    /// Where the value of an IFD0 tag lies.
    pub fn ifd0_value(&self, tag: u16) -> Option<std::ops::Range<usize>> {
        let e = self.ifd(Kind::Ifd0)?.find(tag)?;
        self.value_range(&e)
    }

    /// The Orientation tag (1–8), if present and sane.
    pub fn orientation(&self) -> Option<u16> {
        let e = self.ifd(Kind::Ifd0)?.find(TAG_ORIENTATION)?;
        let v = *self.numbers(&e).first()?;
        (1..=8).contains(&v).then_some(v as u16)
    }

    fn set_number(&mut self, e: Entry, v: u32) {
        if let Some(range) = self.value_range(&e) {
            match e.typ {
                3 if v <= u16::MAX as u32 => self.put_u16(range.start, v as u16),
                4 => self.put_u32(range.start, v),
                _ => {}
            }
        }
    }

    /// Orientation := 1 (pixels have been turned upright).
    pub fn reset_orientation(&mut self) {
        if let Some(e) = self.ifd(Kind::Ifd0).and_then(|i| i.find(TAG_ORIENTATION)) {
            self.set_number(e, 1);
        }
    }

    /// Records the output's pixel size wherever the EXIF states one.
    pub fn set_dimensions(&mut self, width: u32, height: u32) {
        let Ok(ifds) = self.ifds() else { return };
        for ifd in ifds
            .iter()
            .filter(|i| matches!(i.kind, Kind::Ifd0 | Kind::Exif))
        {
            for e in &ifd.entries {
                match e.tag {
                    TAG_PIXEL_X | TAG_IMAGE_WIDTH => self.set_number(*e, width),
                    TAG_PIXEL_Y | TAG_IMAGE_LENGTH => self.set_number(*e, height),
                    _ => {}
                }
            }
        }
    }

    /// True if there is a GPS IFD with at least one entry.
    #[cfg(test)]
    pub fn has_gps(&self) -> bool {
        self.ifd(Kind::Gps).is_some_and(|g| !g.entries.is_empty())
            || self
                .ifd(Kind::Ifd0)
                .is_some_and(|i| i.find(TAG_GPS_IFD).is_some())
    }

    /// Removes the GPS IFD: its entries, their values and the IFD0 entry pointing at it.
    /// Returns true if anything was removed.
    pub fn remove_gps(&mut self) -> Result<bool, BadExif> {
        let ifds = self.ifds()?;
        let ifd0 = &ifds[0];
        let Some(index) = ifd0.entries.iter().position(|e| e.tag == TAG_GPS_IFD) else {
            return Ok(false);
        };
        if let Some(gps) = ifds.iter().find(|i| i.kind == Kind::Gps) {
            for e in &gps.entries {
                if let Some(r) = self.value_range(e) {
                    self.zero(r);
                }
            }
            self.zero(gps.offset..gps.end());
        }
        self.remove_entry(ifd0, index);
        Ok(true)
    }

    /// Drops IFD1 (the embedded thumbnail), which goes stale once pixels are resized or turned.
    pub fn drop_thumbnail(&mut self) {
        let Ok(ifds) = self.ifds() else { return };
        let Some(ifd1) = ifds.iter().find(|i| i.kind == Kind::Ifd1) else {
            if let Some(ifd0) = ifds.first() {
                let at = ifd0.next_pos();
                self.put_u32(at, 0);
            }
            return;
        };
        let offsets = ifd1.find(TAG_THUMB_OFFSET).map(|e| self.numbers(&e));
        let lengths = ifd1.find(TAG_THUMB_LENGTH).map(|e| self.numbers(&e));
        let strips = ifd1.find(TAG_STRIP_OFFSETS).map(|e| self.numbers(&e));
        let strip_lengths = ifd1.find(TAG_STRIP_BYTE_COUNTS).map(|e| self.numbers(&e));
        for (starts, lens) in [(offsets, lengths), (strips, strip_lengths)] {
            if let (Some(starts), Some(lens)) = (starts, lens) {
                for (s, l) in starts.iter().zip(lens.iter()) {
                    let s = *s as usize;
                    self.zero(s..s.saturating_add(*l as usize));
                }
            }
        }
        // Writers may share a value (a resolution) between IFD0 and IFD1: keep shared bytes.
        let kept: Vec<_> = ifds
            .iter()
            .filter(|i| i.kind != Kind::Ifd1)
            .flat_map(|i| i.entries.iter().filter_map(|e| self.value_range(e)))
            .collect();
        for e in &ifd1.entries {
            if let Some(r) = self.value_range(e)
                && !kept.iter().any(|k| k.start < r.end && r.start < k.end)
            {
                self.zero(r);
            }
        }
        self.zero(ifd1.offset..ifd1.end());
        let at = ifds[0].next_pos();
        self.put_u32(at, 0);
    }

    /// Removes entry `index` of `ifd`, shifting the later entries and the next-IFD pointer
    /// down, so that the IFD stays sorted and well formed.
    fn remove_entry(&mut self, ifd: &Ifd, index: usize) {
        let start = ifd.offset + 2 + 12 * index;
        let end = ifd.end();
        self.buf.copy_within(start + 12..end, start);
        self.zero(end - 12..end);
        self.put_u16(ifd.offset, (ifd.entries.len() - 1) as u16);
    }

    /// How much of the blob is still referenced: everything after it is unused (zeroed
    /// thumbnails, removed GPS) and may be cut off. `None` if the structure cannot be read.
    pub fn used_len(&self) -> Option<usize> {
        let ifds = self.ifds().ok()?;
        let mut end = 8;
        for ifd in &ifds {
            end = end.max(ifd.end());
            for e in &ifd.entries {
                if let Some(r) = self.value_range(e) {
                    end = end.max(r.end);
                }
            }
            if ifd.kind == Kind::Ifd1 {
                let start = ifd
                    .find(TAG_THUMB_OFFSET)
                    .and_then(|e| self.numbers(&e).first().copied());
                let len = ifd
                    .find(TAG_THUMB_LENGTH)
                    .and_then(|e| self.numbers(&e).first().copied());
                if let (Some(s), Some(l)) = (start, len) {
                    end = end.max((s as usize).saturating_add(l as usize));
                }
            }
        }
        Some(end.min(self.buf.len()))
    }
}

/// Prepares an EXIF blob for a re-encoded image: Orientation 1, the new size, no thumbnail,
/// no GPS if asked; trailing space freed by those edits is cut off.
pub fn exif_for_output(
    mut exif: Vec<u8>,
    width: u32,
    height: u32,
    strip_location: bool,
) -> Result<Vec<u8>, BadExif> {
    let mut tiff = Tiff::new(&mut exif)?;
    tiff.ifds()?;
    tiff.reset_orientation();
    tiff.set_dimensions(width, height);
    tiff.drop_thumbnail();
    if strip_location {
        tiff.remove_gps()?;
    }
    let used = tiff.used_len().unwrap_or(exif.len());
    if exif[used..].iter().all(|&b| b == 0) {
        exif.truncate(used);
    }
    Ok(exif)
}

/// What a photo's EXIF says about when and with what it was taken (folder templates:
/// `crate::template`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// DateTimeOriginal's calendar day (year, month, day).
    pub taken: Option<(i32, u32, u32)>,
    /// OffsetTimeOriginal in minutes east of UTC, when recorded.
    pub offset_minutes: Option<i16>,
    /// Model, as recorded (trailing NULs and spaces gone).
    pub model: Option<String>,
}

/// The capture facts of parsed EXIF. DateTimeOriginal is the camera's local time and
/// OffsetTimeOriginal only says how far that time is from UTC, so the day is
/// DateTimeOriginal's own: the day of the shot as the camera recorded it. Converting to UTC or
/// to this machine's zone would move an evening shot abroad to another day than the one on the
/// camera. An unset date ("0000:00:00 …", blanks) is no date.
pub fn capture_of(exif: &exif::Exif) -> Capture {
    use exif::{In, Tag, Value};
    let ascii = |tag: Tag| -> Option<Vec<u8>> {
        match &exif.get_field(tag, In::PRIMARY)?.value {
            Value::Ascii(parts) => parts.first().cloned(),
            _ => None,
        }
    };
    let mut taken = ascii(Tag::DateTimeOriginal).and_then(|t| exif::DateTime::from_ascii(&t).ok());
    if let (Some(t), Some(offset)) = (taken.as_mut(), ascii(Tag::OffsetTimeOriginal)) {
        let _ = t.parse_offset(&offset);
    }
    let model = ascii(Tag::Model)
        .map(|m| {
            String::from_utf8_lossy(&m)
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
        .filter(|m| !m.trim().is_empty());
    Capture {
        offset_minutes: taken.as_ref().and_then(|t| t.offset),
        taken: taken
            .filter(|t| t.year > 0 && (1..=12).contains(&t.month) && (1..=31).contains(&t.day))
            .map(|t| (i32::from(t.year), u32::from(t.month), u32::from(t.day))),
        model,
    }
}

/// The capture facts in a file's first bytes (`head`) or, for a container whose EXIF lies
/// further in, none: the caller reads more or goes without.
pub fn capture_in(data: &[u8]) -> Option<Capture> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(data))
        .ok()?;
    Some(capture_of(&exif))
}

/// The Orientation tag of an EXIF blob, 1 if absent or unreadable.
pub fn exif_orientation(exif: &[u8]) -> u16 {
    let mut copy = exif.to_vec();
    Tiff::new(&mut copy)
        .ok()
        .and_then(|t| t.orientation())
        .unwrap_or(1)
}

const EXIF_NS: &[u8] = b"http://ns.adobe.com/exif/1.0/";

/// Blanks (with spaces, keeping the length) every `exif:GPS…` property of an XMP packet, in
/// attribute form or element form, under whatever prefix the packet binds the EXIF namespace
/// to. Returns true if anything was blanked.
pub fn scrub_xmp_location(xmp: &mut [u8]) -> bool {
    let mut prefixes: Vec<Vec<u8>> = vec![b"exif".to_vec()];
    let mut at = 0;
    while let Some(i) = find(&xmp[at..], EXIF_NS) {
        let ns = at + i;
        // Back from `"http://…"` over `=` to the name `xmlns:PREFIX`.
        let before = &xmp[..ns.saturating_sub(1)];
        let name_end = before
            .iter()
            .rposition(|&b| b != b' ' && b != b'=' && b != b'\t' && b != b'\n')
            .map_or(0, |p| p + 1);
        let name_start = before[..name_end]
            .iter()
            .rposition(|b| b.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        if let Some(prefix) = before[name_start..name_end].strip_prefix(b"xmlns:")
            && !prefixes.iter().any(|p| p == prefix)
        {
            prefixes.push(prefix.to_vec());
        }
        at = ns + EXIF_NS.len();
    }
    let mut changed = false;
    for prefix in prefixes {
        let mut needle = prefix.clone();
        needle.extend_from_slice(b":GPS");
        let mut at = 0;
        while let Some(i) = find(&xmp[at..], &needle) {
            let start = at + i;
            at = start + needle.len();
            let Some(&before) = start.checked_sub(1).and_then(|p| xmp.get(p)) else {
                continue;
            };
            let name_end = start
                + xmp[start..]
                    .iter()
                    .position(|b| {
                        !(b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'))
                    })
                    .unwrap_or(xmp.len() - start);
            let range = if before == b'<' {
                element_extent(xmp, start - 1, &xmp[start..name_end])
            } else if before.is_ascii_whitespace() {
                attribute_extent(xmp, start, name_end)
            } else {
                None
            };
            if let Some(r) = range {
                xmp[r.clone()].fill(b' ');
                at = r.end;
                changed = true;
            }
        }
    }
    changed
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `name="value"` starting at `start`.
fn attribute_extent(xmp: &[u8], start: usize, name_end: usize) -> Option<std::ops::Range<usize>> {
    let mut i = name_end;
    while xmp.get(i)?.is_ascii_whitespace() {
        i += 1;
    }
    if *xmp.get(i)? != b'=' {
        return None;
    }
    i += 1;
    while xmp.get(i)?.is_ascii_whitespace() {
        i += 1;
    }
    let quote = *xmp.get(i)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let close = i + 1 + xmp.get(i + 1..)?.iter().position(|&b| b == quote)?;
    Some(start..close + 1)
}

/// `<name …>…</name>` or `<name …/>` starting at `lt`.
fn element_extent(xmp: &[u8], lt: usize, name: &[u8]) -> Option<std::ops::Range<usize>> {
    let gt = lt + xmp.get(lt..)?.iter().position(|&b| b == b'>')?;
    if xmp.get(gt - 1) == Some(&b'/') {
        return Some(lt..gt + 1);
    }
    let mut close = b"</".to_vec();
    close.extend_from_slice(name);
    let c = gt + find(xmp.get(gt..)?, &close)?;
    let end = c + xmp.get(c..)?.iter().position(|&b| b == b'>')?;
    Some(lt..end + 1)
}

/// The colour space an ICC profile converts from (`RGB `, `GRAY`, `CMYK`…).
pub fn icc_colour_space(icc: &[u8]) -> Option<[u8; 4]> {
    icc.get(16..20)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif_of(name: &str) -> Vec<u8> {
        let data = std::fs::read(format!(
            "{}/tests/data/photos/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let layout = super::super::jpeg::parse(&data).unwrap();
        data[layout.layout.exif_range(&data).unwrap()].to_vec()
    }

    fn parsed(blob: &[u8]) -> exif::Exif {
        exif::Reader::new().read_raw(blob.to_vec()).unwrap()
    }

    #[test]
    fn capture_facts_come_from_date_time_original_as_the_camera_recorded_it() {
        use exif::{Field, In, Tag, Value};
        let ascii = |tag, text: &str| Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![text.as_bytes().to_vec()]),
        };
        let blob = |fields: &[Field]| {
            let mut writer = exif::experimental::Writer::new();
            for f in fields {
                writer.push_field(f);
            }
            let mut out = std::io::Cursor::new(Vec::new());
            writer.write(&mut out, false).unwrap();
            parsed(&out.into_inner())
        };
        // 23:30 five hours west of UTC: 04:30 the next day in UTC, but the camera's day is
        // the 3rd, and so is the folder's.
        let evening = blob(&[
            ascii(Tag::DateTimeOriginal, "2026:11:03 23:30:00"),
            ascii(Tag::OffsetTimeOriginal, "-05:00"),
            ascii(Tag::Model, "Canon PowerShot SX530 HS"),
        ]);
        assert_eq!(
            capture_of(&evening),
            Capture {
                taken: Some((2026, 11, 3)),
                offset_minutes: Some(-300),
                model: Some("Canon PowerShot SX530 HS".into()),
            }
        );
        let unset = blob(&[ascii(Tag::DateTimeOriginal, "0000:00:00 00:00:00")]);
        assert_eq!(capture_of(&unset), Capture::default());
        // A real camera's JPEG.
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/photos/IMG_20200608_111614.jpg"
        ))
        .unwrap();
        let capture = capture_in(&data[..data.len().min(256 * 1024)]).unwrap();
        assert_eq!(capture.taken, Some((2020, 6, 8)));
    }

    #[test]
    fn gps_is_removed_with_its_bytes() {
        let original = exif_of("sample1.jpg");
        let before = parsed(&original);
        let lat = before
            .get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
            .expect("sample1.jpg has GPS");
        let lat_bytes = {
            let mut t = original.clone();
            let tiff = Tiff::new(&mut t).unwrap();
            let gps = tiff.ifd(Kind::Gps).unwrap();
            let e = gps.find(0x0002).unwrap();
            original[tiff.value_range(&e).unwrap()].to_vec()
        };
        assert_eq!(lat_bytes.len(), 24);
        assert!(find(&original, &lat_bytes).is_some());
        let _ = lat;

        let mut edited = original.clone();
        let mut tiff = Tiff::new(&mut edited).unwrap();
        assert!(tiff.has_gps());
        assert!(tiff.remove_gps().unwrap());
        assert!(!tiff.has_gps());
        assert!(!tiff.remove_gps().unwrap());
        assert_eq!(edited.len(), original.len());
        assert!(
            find(&edited, &lat_bytes).is_none(),
            "latitude bytes still there"
        );
        let after = parsed(&edited);
        assert!(
            after.fields().all(|f| f.ifd_num != exif::In::PRIMARY
                || !matches!(f.tag.context(), exif::Context::Gps))
        );
        for tag in [
            exif::Tag::Model,
            exif::Tag::DateTimeOriginal,
            exif::Tag::Make,
        ] {
            assert_eq!(
                after
                    .get_field(tag, exif::In::PRIMARY)
                    .map(|f| f.display_value().to_string()),
                before
                    .get_field(tag, exif::In::PRIMARY)
                    .map(|f| f.display_value().to_string()),
                "{tag}"
            );
        }
    }

    #[test]
    fn output_exif_is_upright_resized_and_without_thumbnail() {
        let original = exif_of("orientation/canon-sx530-crop-o6.jpg");
        assert_eq!(exif_orientation(&original), 6);
        let out = exif_for_output(original.clone(), 300, 400, false).unwrap();
        assert!(out.len() < original.len(), "the thumbnail space is cut off");
        let e = parsed(&out);
        let get = |tag| {
            e.get_field(tag, exif::In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
        };
        assert_eq!(get(exif::Tag::Orientation), Some(1));
        assert_eq!(get(exif::Tag::PixelXDimension), Some(300));
        assert_eq!(get(exif::Tag::PixelYDimension), Some(400));
        assert!(e.fields().all(|f| f.ifd_num == exif::In::PRIMARY));
        assert!(
            e.get_field(exif::Tag::MakerNote, exif::In::PRIMARY)
                .is_some()
        );
    }

    #[test]
    fn hostile_exif_is_an_error_not_a_panic() {
        for blob in [
            &b""[..],
            b"II*\0",
            b"II*\0\xff\xff\xff\xff",
            b"MM\0*\0\0\0\x08\xff\xff",
            b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\xff\xff\xff\xff\x09\0\0\0",
        ] {
            let _ = exif_for_output(blob.to_vec(), 10, 10, true);
            let mut b = blob.to_vec();
            if let Ok(mut t) = Tiff::new(&mut b) {
                let _ = t.remove_gps();
                t.drop_thumbnail();
                let _ = t.used_len();
            }
        }
        // An IFD that points at itself as IFD1.
        let mut looped = b"II*\0\x08\0\0\0\0\0\x08\0\0\0".to_vec();
        let out = exif_for_output(looped.clone(), 1, 1, true).unwrap();
        assert!(out.len() <= looped.len());
        assert!(Tiff::new(&mut looped).unwrap().used_len().is_some());
    }

    #[test]
    fn xmp_gps_is_blanked_in_both_forms() {
        let xmp = br#"<x:xmpmeta><rdf:RDF><rdf:Description xmlns:ex="http://ns.adobe.com/exif/1.0/"
 ex:GPSLatitude="32,39.2N" ex:GPSLongitude='16,55W' ex:ExposureTime="1/50">
<ex:GPSAltitude>12/1</ex:GPSAltitude><ex:GPSVersionID/><exif:GPSTimeStamp>
<rdf:Seq><rdf:li>x</rdf:li></rdf:Seq></exif:GPSTimeStamp><tiff:Model>Pixel</tiff:Model>
</rdf:Description></rdf:RDF></x:xmpmeta>"#;
        let mut edited = xmp.to_vec();
        assert!(scrub_xmp_location(&mut edited));
        assert_eq!(edited.len(), xmp.len());
        let text = String::from_utf8(edited.clone()).unwrap();
        assert!(!text.contains("GPS"), "{text}");
        assert!(!text.contains("32,39") && !text.contains("12/1"), "{text}");
        assert!(text.contains(r#"ex:ExposureTime="1/50""#), "{text}");
        assert!(text.contains("<tiff:Model>Pixel</tiff:Model>"), "{text}");
        assert!(!scrub_xmp_location(&mut edited));
    }
}

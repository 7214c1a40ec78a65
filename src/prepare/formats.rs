//! Which kind of file a source is, and the name it will have in Dropbox.
//!
//! Two questions with two sources of truth. The remote name must be known when the job is queued,
//! before the file is read, so it follows the file name's extension only. What `prepare` does
//! follows the content (magic bytes), because extensions lie: a PNG called `.jpg` is still
//! decoded as a PNG. The extension decides only where the content cannot: RAW formats are TIFF
//! inside, and must not be decoded as one.

use std::path::Path;

use super::options::{Mode, PrepareOptions};

/// A source's format, as far as `prepare` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Tiff,
    /// HEIC/HEIF/AVIF: ISO-BMFF stills; no decoder here.
    Heif,
    /// Camera RAW: decoding it means developing it, which is the user's job.
    Raw,
    Video,
    /// Anything else: uploaded as it is.
    Other,
}

impl Format {
    /// Formats that are decoded and re-encoded as JPEG in resize mode.
    pub fn convertible(self) -> bool {
        matches!(
            self,
            Format::Jpeg | Format::Png | Format::WebP | Format::Tiff
        )
    }

    /// A word for messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::WebP => "WebP",
            Format::Tiff => "TIFF",
            Format::Heif => "HEIC",
            Format::Raw => "RAW",
            Format::Video => "video",
            Format::Other => "this kind of",
        }
    }
}

const CONVERTED_EXTS: &[&str] = &["png", "webp", "tif", "tiff"];
const RAW_EXTS: &[&str] = &[
    "3fr", "ari", "arw", "bay", "cr2", "cr3", "crw", "dcr", "dng", "erf", "fff", "iiq", "k25",
    "kdc", "mef", "mos", "mrw", "nef", "nrw", "orf", "pef", "raf", "raw", "rw2", "rwl", "sr2",
    "srf", "srw", "x3f",
];
const VIDEO_EXTS: &[&str] = &[
    "3gp", "avi", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "webm", "wmv",
];

fn extension(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Recognises a format from the first bytes of a file (at least 16 are needed for the
/// ISO-BMFF brands), with the file name as the tie-breaker for RAW and video.
pub fn sniff(head: &[u8], name: &str) -> Format {
    let ext = extension(name);
    let ext = ext.as_deref().unwrap_or("");
    if RAW_EXTS.contains(&ext) {
        return Format::Raw;
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Format::Jpeg;
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Format::Png;
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Format::WebP;
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return Format::Tiff;
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        const STILL: &[&[u8; 4]] = &[
            b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif",
            b"avis", b"mif2",
        ];
        if STILL.iter().any(|b| &b[..] == brand) {
            return Format::Heif;
        }
        return Format::Video;
    }
    if VIDEO_EXTS.contains(&ext) {
        return Format::Video;
    }
    Format::Other
}

/// The name the file will have in Dropbox: unchanged, except that a PNG, WebP or TIFF sent
/// with `resize` becomes `<stem>.jpg`, because that is what `prepare` makes of it. JPEG names
/// keep their own extension (`.JPG`, `.jpeg`) whether or not the photo gets re-encoded.
pub fn remote_name(source_name: &str, options: &PrepareOptions) -> String {
    if matches!(options.mode, Mode::Original) {
        return source_name.to_string();
    }
    match extension(source_name) {
        Some(ext) if CONVERTED_EXTS.contains(&ext.as_str()) => {
            let stem = &source_name[..source_name.len() - ext.len() - 1];
            format!("{stem}.jpg")
        }
        _ => source_name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize() -> PrepareOptions {
        PrepareOptions {
            mode: Mode::Resize {
                max_dimension: 1600,
                jpeg_quality: 85,
            },
            strip_location: false,
        }
    }

    #[test]
    fn remote_names() {
        let original = PrepareOptions::default();
        assert_eq!(remote_name("IMG.PNG", &original), "IMG.PNG");
        assert_eq!(remote_name("IMG.PNG", &resize()), "IMG.jpg");
        assert_eq!(remote_name("a.b.tiff", &resize()), "a.b.jpg");
        assert_eq!(remote_name("rose.webp", &resize()), "rose.jpg");
        assert_eq!(remote_name("IMG_1.JPG", &resize()), "IMG_1.JPG");
        assert_eq!(remote_name("IMG_1.jpeg", &resize()), "IMG_1.jpeg");
        assert_eq!(remote_name("IMG_1.HEIC", &resize()), "IMG_1.HEIC");
        assert_eq!(remote_name("DSC_1.NEF", &resize()), "DSC_1.NEF");
        assert_eq!(remote_name("clip.mp4", &resize()), "clip.mp4");
        assert_eq!(remote_name("noext", &resize()), "noext");
        assert_eq!(remote_name(".png", &resize()), ".png");
        assert_eq!(remote_name("été.PNG", &resize()), "été.jpg");
    }

    #[test]
    fn sniffing_follows_content_but_raw_follows_the_name() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE1], "x.png"), Format::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....", "x.jpg"), Format::Png);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ", "x"), Format::WebP);
        assert_eq!(sniff(b"II*\0\x08\0\0\0", "x.tif"), Format::Tiff);
        assert_eq!(sniff(b"II*\0\x08\0\0\0", "x.NEF"), Format::Raw);
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0", "x.HEIC"), Format::Heif);
        assert_eq!(sniff(b"\0\0\0\x18ftypisom\0\0\0\0", "x.mp4"), Format::Video);
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0", "x.MOV"), Format::Video);
        assert_eq!(sniff(b"", "x.mkv"), Format::Video);
        assert_eq!(sniff(b"%PDF-1.4", "x.pdf"), Format::Other);
    }
}

//! Turns a source file into what is uploaded: the original, bytes untouched, or a resized JPEG
//! that keeps the photo's metadata; with `strip_location`, either one without its GPS tags.
//!
//! Everything here is blocking (disk and CPU) and runs on the blocking pool, never on the
//! async runtime. A prepared file is written under the cache directory as
//! `<job_id>-<remote name>` (through a `.part` file and a rename, so a crash never leaves a
//! half-written file under the final name) and removed by [`discard`] when its job ends.
//!
//! What `prepare` decides, in order:
//! - `original` without `strip_location`: the source itself, not even opened for reading.
//! - HEIC, RAW, video and unknown files are never decoded: the original goes up (with a
//!   warning if a resize was asked for).
//! - `strip_location` on an original (or on a JPEG that needs no resizing): the file is
//!   rewritten with its GPS tags removed and every other byte as it was (a JPEG's scan data, a
//!   PNG's IDAT); unchanged if it had no location; an error if the format cannot be edited
//!   (HEIC, video), because uploading a location the user asked to remove is worse than not
//!   uploading.
//! - `resize` on a JPEG within the limit: sent as it is (its Orientation tag intact, which
//!   every viewer honours); beyond the limit, decoded, resized, turned upright and re-encoded.
//! - `resize` on a PNG, WebP or TIFF: always converted to JPEG (even when small), because the
//!   remote name was already fixed as `.jpg` when the job was queued ([`remote_name`]).
//!
//! Files: `source` (reading sources), `options`, `formats` (sniffing, remote names), `jpeg` (the
//! container walk that catches truncation), `decode`, `resize`, `encode`, `metadata` (EXIF/XMP
//! edits in place), `containers` (originals without their location; PNG/TIFF metadata).

mod containers;
mod decode;
mod encode;
mod formats;
mod jpeg;
mod metadata;
mod options;
mod resize;
mod source;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use formats::{remote_name, sniff};
pub use metadata::Capture;
pub use options::{MAX_DIMENSION, MIN_DIMENSION, Mode, PrepareOptions};
pub use source::{
    Access, SourceError, SourceFile, Stamp, check_source, hash_first, hash_whole, read_chunk,
    read_range, read_whole, stat_beneath,
};

use decode::{DecodeError, Metadata, Pixels};
pub use formats::Format;

/// The first bytes read for a photo's capture facts: a JPEG's EXIF is in its first 64 KiB.
const CAPTURE_HEAD: usize = 256 * 1024;
/// Largest file read whole for its capture facts when the first bytes do not hold them.
const CAPTURE_WHOLE: u64 = 64 * 1024 * 1024;

/// When and with what a photo was taken, from the EXIF of the source itself (a resized or
/// converted copy may have lost it), read under the source's access rule. A container whose
/// EXIF lies beyond the first bytes (a TIFF's IFDs, some HEICs) is read whole when it is at
/// most [`CAPTURE_WHOLE`]. Nothing readable: no facts. Blocking.
pub fn capture(source: &SourceFile) -> Capture {
    let Ok(head) = source::read_head(source, CAPTURE_HEAD) else {
        return Capture::default();
    };
    if let Some(capture) = metadata::capture_in(&head) {
        return capture;
    }
    let size = source.expect.map_or(0, |s| s.size);
    if head.len() < CAPTURE_HEAD || size > CAPTURE_WHOLE {
        return Capture::default();
    }
    source::read_head(source, size as usize)
        .ok()
        .and_then(|all| metadata::capture_in(&all))
        .unwrap_or_default()
}

/// Sources larger than this are not read into memory for re-encoding or editing.
const MAX_SOURCE_BYTES: u64 = 512 * 1024 * 1024;

/// The file to upload for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The source itself, or a file under the cache directory.
    pub path: PathBuf,
    /// Of `path`.
    pub stamp: Stamp,
    /// True if `path` is a prepared file, to delete (with [`discard`]) when the job ends.
    pub temporary: bool,
    /// How `path` is opened: the source's own rule, or `Given` for a prepared file (ours).
    pub access: Access,
    /// Things the user should know, each naming the file, e.g.
    /// "IMG_1.HEIC: HEIC cannot be resized here; uploading the original".
    pub warnings: Vec<String>,
}

impl Prepared {
    /// The file to read, expected to be exactly what was prepared: every read checks it.
    pub fn file(&self) -> SourceFile {
        SourceFile {
            path: self.path.clone(),
            access: self.access.clone(),
            expect: Some(self.stamp),
        }
    }
}

/// Prepares `source` for upload. Blocking: run it on the blocking pool.
pub fn prepare(
    source: impl Into<SourceFile>,
    options: &PrepareOptions,
    cache_dir: &Path,
    job_id: u64,
) -> Result<Prepared, SourceError> {
    let source_file: SourceFile = source.into();
    let source = source_file.path.as_path();
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut file, stamp) = source_file.open()?;
    let mut head = [0u8; 32];
    let n = read_head(&mut file, &mut head).map_err(|e| SourceError::from_io(source, e))?;
    let format = formats::sniff(&head[..n], &name);
    let mut job = Job {
        source,
        access: &source_file.access,
        name: &name,
        options,
        cache_dir,
        job_id,
        stamp,
        warnings: Vec::new(),
    };

    let resize = match options.mode {
        Mode::Resize {
            max_dimension,
            jpeg_quality,
        } if format.convertible() => Some((max_dimension, jpeg_quality)),
        Mode::Resize { .. } => {
            job.warn(match format {
                Format::Other => {
                    "not a photo format dbxport can resize; uploading the original".into()
                }
                f => format!(
                    "{} files cannot be resized here; uploading the original",
                    f.label()
                ),
            });
            None
        }
        Mode::Original => None,
    };
    let Some((max_dimension, quality)) = resize else {
        if !options.strip_location {
            return Ok(job.original());
        }
        // Refuse before reading a whole video into memory.
        containers::check_strippable(format, &head[..n]).map_err(|reason| {
            SourceError::Unsupported {
                path: source.into(),
                reason,
            }
        })?;
        let data = read_all(file, &stamp, &source_file)?;
        return job.strip_original(format, data);
    };

    let data = read_all(file, &stamp, &source_file)?;
    let (pixels, meta, target) = match format {
        Format::Jpeg => {
            let parsed = jpeg::parse(&data).map_err(|reason| job.corrupt(reason))?;
            let meta = decode::jpeg_metadata(&data, &parsed);
            let (w, h) = (parsed.frame.width, parsed.frame.height);
            decode::check_size(w as u64, h as u64, 1).map_err(|e| job.decode_error(e))?;
            let Some(target) = resize::fit(w, h, max_dimension) else {
                // Within the limit and already a JPEG: nothing to do to the pixels.
                return if options.strip_location {
                    job.strip_original(format, data)
                } else {
                    Ok(job.original())
                };
            };
            let pixels =
                decode::decode_jpeg(&data, &parsed, target).map_err(|e| job.decode_error(e))?;
            (pixels, meta, target)
        }
        _ => {
            let (pixels, meta) =
                decode::decode_other(&data, format).map_err(|e| job.decode_error(e))?;
            // Converted even when small: the remote name already says `.jpg`.
            let target = resize::fit(pixels.width, pixels.height, max_dimension)
                .unwrap_or((pixels.width, pixels.height));
            (pixels, meta, target)
        }
    };
    drop(data);
    let output = job.resize_and_encode(pixels, meta, target, quality)?;
    job.write(&output)
}

/// Removes a job's prepared file(s), if any. Idempotent; errors are ignored, as the cache
/// directory is the daemon's own and a leftover file is harmless.
pub fn discard(cache_dir: &Path, job_id: u64) {
    let prefix = format!("{job_id}-");
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

struct Job<'a> {
    source: &'a Path,
    access: &'a Access,
    name: &'a str,
    options: &'a PrepareOptions,
    cache_dir: &'a Path,
    job_id: u64,
    stamp: Stamp,
    warnings: Vec<String>,
}

impl Job<'_> {
    fn warn(&mut self, what: String) {
        self.warnings.push(format!("{}: {what}", self.name));
    }

    fn original(self) -> Prepared {
        Prepared {
            path: self.source.to_path_buf(),
            stamp: self.stamp,
            temporary: false,
            access: self.access.clone(),
            warnings: self.warnings,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Corrupt {
            path: self.source.into(),
            reason: reason.into(),
        }
    }

    fn decode_error(&self, e: DecodeError) -> SourceError {
        match e {
            DecodeError::Corrupt(reason) => self.corrupt(reason),
            DecodeError::TooLarge { width, height } => SourceError::TooLarge {
                path: self.source.into(),
                detail: format!(
                    "{}the limit is {MAX_DIMENSION} pixels a side and {} MiB decoded",
                    if width > 0 {
                        format!("{width}x{height} pixels; ")
                    } else {
                        String::new()
                    },
                    decode::MAX_DECODED_BYTES >> 20
                ),
            },
        }
    }

    fn strip_original(mut self, format: Format, data: Vec<u8>) -> Result<Prepared, SourceError> {
        let stripped = containers::strip_location(format, data).map_err(|reason| {
            SourceError::Unsupported {
                path: self.source.into(),
                reason,
            }
        })?;
        for w in stripped.warnings {
            self.warn(w);
        }
        match stripped.data {
            Some(data) => self.write(&data),
            None => Ok(self.original()),
        }
    }

    /// `target` is the stored (not yet upright) size to resample to.
    fn resize_and_encode(
        &mut self,
        pixels: Pixels,
        meta: Metadata,
        target: (u32, u32),
        quality: u8,
    ) -> Result<Vec<u8>, SourceError> {
        let (sw, sh) = target;
        let failed = |reason: String| SourceError::Unsupported {
            path: self.source.into(),
            reason,
        };
        let resized = resize::resample(pixels, sw, sh).map_err(failed)?;
        let upright = resize::orient(resized, meta.orientation).map_err(failed)?;
        let mut warnings = Vec::new();
        let out = encode::encode(
            &upright,
            quality,
            &meta,
            self.options.strip_location,
            &mut warnings,
        )
        .map_err(failed)?;
        for w in warnings {
            self.warn(w);
        }
        Ok(out)
    }

    /// Writes the prepared bytes as `<cache>/<job>-<remote name>`, through a `.part` file.
    fn write(self, bytes: &[u8]) -> Result<Prepared, SourceError> {
        let cache_error = |source| SourceError::Cache {
            path: self.source.into(),
            dir: self.cache_dir.into(),
            source,
        };
        // Prepared copies are the user's photos, some with their location: private whatever
        // the umask (the unit sets 0077; a daemon started by hand may not).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.cache_dir)
            .map_err(cache_error)?;
        let mut remote = remote_name(self.name, self.options);
        // NAME_MAX is 255 bytes; the job id prefix and `.part` must fit too.
        if remote.len() > 200 || remote.is_empty() {
            remote = "prepared".into();
        }
        let path = self.cache_dir.join(format!("{}-{remote}", self.job_id));
        let part = self
            .cache_dir
            .join(format!("{}-{remote}.part", self.job_id));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&part)?;
            f.write_all(bytes)?;
            std::fs::rename(&part, &path)?;
            f.metadata()
        })();
        let meta = written.map_err(|e| {
            let _ = std::fs::remove_file(&part);
            cache_error(e)
        })?;
        Ok(Prepared {
            path,
            stamp: source::stamp_of(&meta),
            temporary: true,
            access: Access::Given,
            warnings: self.warnings,
        })
    }
}

fn read_head(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The rest of the file after `read_head`, as the whole file; checks that it is still the
/// version it was when opened.
fn read_all(
    mut file: std::fs::File,
    stamp: &Stamp,
    source: &SourceFile,
) -> Result<Vec<u8>, SourceError> {
    use std::io::Seek;
    let path = source.path.as_path();
    if stamp.size > MAX_SOURCE_BYTES {
        return Err(SourceError::TooLarge {
            path: path.into(),
            detail: format!(
                "{} MiB; the limit is {} MiB",
                stamp.size >> 20,
                MAX_SOURCE_BYTES >> 20
            ),
        });
    }
    let mut data = Vec::with_capacity(stamp.size as usize);
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut data))
        .map_err(|e| SourceError::from_io(path, e))?;
    if data.len() as u64 != stamp.size {
        return Err(SourceError::Changed(path.into()));
    }
    source.unchanged(&file, stamp)?;
    Ok(data)
}

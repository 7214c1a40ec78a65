//! Reading source files: the checks made when a path is handed over, and the reads that upload
//! the bytes (whole for small files, hashed and then chunk by chunk for large ones).
//!
//! Everything here touches the disk and runs on the blocking pool. Sources are opened with
//! `O_NONBLOCK` and checked with `fstat` on the open descriptor, so a FIFO or device handed in
//! by mistake (or swapped in after the check) is refused instead of hanging the daemon.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::dropbox::content_hash::ContentHasher;

/// Why a source file cannot be used, in words naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: not an absolute path")]
    Relative(PathBuf),
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error("{0}: is a directory; pass the photos inside it")]
    Directory(PathBuf),
    #[error("{0}: not a regular file")]
    NotRegular(PathBuf),
    #[error("{0}: a kernel pseudo-file (under /proc or /sys), not a photo")]
    Pseudo(PathBuf),
    #[error("{0}: symbolic links loop here (a link leads back to itself); fix or remove the link")]
    Loop(PathBuf),
    #[error("{0}: the path or a name in it is too long for the file system")]
    NameTooLong(PathBuf),
    #[error("{0}: permission denied; dbxport cannot read this file")]
    PermissionDenied(PathBuf),
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: the file changed while it was being read; it will be read again")]
    Changed(PathBuf),
    #[error(
        "{path}: cannot read this photo: {reason}. The file is truncated or damaged: copy it \
         again from the camera or phone, or send it as the original"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: image too large to resize ({detail}); send it as the original")]
    TooLarge { path: PathBuf, detail: String },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: cannot write the prepared copy into {dir}: {source}")]
    Cache {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
}

impl SourceError {
    pub(crate) fn from_io(path: &Path, e: io::Error) -> SourceError {
        match e.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound(path.into()),
            io::ErrorKind::PermissionDenied => SourceError::PermissionDenied(path.into()),
            _ if e.raw_os_error() == Some(libc::ELOOP) => SourceError::Loop(path.into()),
            _ if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                SourceError::NameTooLong(path.into())
            }
            _ => SourceError::Io {
                path: path.into(),
                source: e,
            },
        }
    }
}

/// Size and modification time of a source, to notice when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ms: Option<u64>,
}

pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    let mtime_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    Stamp {
        size: meta.len(),
        mtime_ms,
    }
}

/// Checks a path handed to `Upload` without opening it: absolute, present, a regular file
/// (symlinks followed). Readability is checked when the job runs, so that one unreadable file
/// fails its own job, not the batch.
pub fn check_source(path: &Path) -> Result<Stamp, SourceError> {
    if !path.is_absolute() {
        return Err(SourceError::Relative(path.into()));
    }
    let meta = std::fs::metadata(path).map_err(|e| SourceError::from_io(path, e))?;
    if meta.is_dir() {
        return Err(SourceError::Directory(path.into()));
    }
    if !meta.is_file() {
        return Err(SourceError::NotRegular(path.into()));
    }
    let c_path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| SourceError::NotFound(path.into()))?;
    // SAFETY: a valid NUL-terminated path and a zeroed struct for the kernel to fill.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut fs) } == 0 && is_pseudo(&fs) {
        return Err(SourceError::Pseudo(path.into()));
    }
    Ok(stamp_of(&meta))
}

/// A file system whose "files" are kernel interfaces: regular files by `stat`, but with a
/// size of 0 or of the whole address space, contents that change on every read, and reads
/// that can have side effects.
fn is_pseudo(fs: &libc::statfs) -> bool {
    const PSEUDO: [i64; 10] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0xcafe_4a11, // bpf
        0x6265_6570, // configfs
        0xde5e_81e4, // efivarfs
    ];
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets.
    PSEUDO.contains(&(fs.f_type as i64))
}

/// Opens a source for reading and returns it with its stamp.
pub fn open_source(path: &Path) -> Result<(File, Stamp), SourceError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| SourceError::from_io(path, e))?;
    let meta = file.metadata().map_err(|e| SourceError::from_io(path, e))?;
    if meta.is_dir() {
        return Err(SourceError::Directory(path.into()));
    }
    if !meta.is_file() {
        return Err(SourceError::NotRegular(path.into()));
    }
    // SAFETY: an open descriptor and a zeroed struct for the kernel to fill.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(std::os::fd::AsRawFd::as_raw_fd(&file), &mut fs) } == 0
        && is_pseudo(&fs)
    {
        return Err(SourceError::Pseudo(path.into()));
    }
    Ok((file, stamp_of(&meta)))
}

/// Reads a whole (small) source into memory and hashes it: the bytes returned are exactly the
/// bytes the hash covers. Blocking.
pub fn read_whole(source: &Path) -> Result<(bytes::Bytes, Stamp, String), SourceError> {
    use std::io::Read;
    let (mut file, stamp) = open_source(source)?;
    let mut data = Vec::with_capacity(stamp.size as usize);
    file.read_to_end(&mut data)
        .map_err(|e| SourceError::from_io(source, e))?;
    if data.len() as u64 != stamp.size {
        return Err(SourceError::Changed(source.into()));
    }
    let hash = crate::dropbox::content_hash::content_hash(&data);
    Ok((data.into(), stamp, hash))
}

/// Hashes a whole source without holding it in memory, and checks it did not change while
/// being read. Blocking.
pub fn hash_whole(source: &Path) -> Result<(Stamp, String), SourceError> {
    use std::io::Read;
    let (mut file, stamp) = open_source(source)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| SourceError::from_io(source, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total != stamp.size || check_source(source)? != stamp {
        return Err(SourceError::Changed(source.into()));
    }
    Ok((stamp, hasher.finish()))
}

/// Reads `len` bytes at `offset` (one upload-session chunk) and hashes them. Blocking.
pub fn read_range(
    source: &Path,
    offset: u64,
    len: usize,
) -> Result<(bytes::Bytes, String), SourceError> {
    let (data, digests) = read_chunk(source, offset, len)?;
    Ok((
        data,
        crate::dropbox::content_hash::from_block_digests(&digests),
    ))
}

/// Reads `len` bytes at `offset` and gives the digests of its 4 MiB blocks: for a chunk that
/// starts on a block boundary, the file's own block digests there. Blocking.
pub fn read_chunk(
    source: &Path,
    offset: u64,
    len: usize,
) -> Result<(bytes::Bytes, Vec<crate::dropbox::content_hash::BlockDigest>), SourceError> {
    use std::os::unix::fs::FileExt;
    let (file, _) = open_source(source)?;
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SourceError::Changed(source.into()),
            _ => SourceError::from_io(source, e),
        })?;
    let digests = crate::dropbox::content_hash::block_digests(&data);
    Ok((data.into(), digests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::content_hash::content_hash;

    #[test]
    fn originals_hash_to_the_file_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (stamp, hash) = hash_whole(&path).unwrap();
        assert_eq!(hash, content_hash(&data));
        assert_eq!(stamp.size, data.len() as u64);
        let (bytes, _, hash2) = read_whole(&path).unwrap();
        assert_eq!((bytes.as_ref(), hash2.as_str()), (&data[..], hash.as_str()));
        let (part, part_hash) = read_range(&path, 4_000_000, 1_000_000).unwrap();
        assert_eq!(part.as_ref(), &data[4_000_000..]);
        assert_eq!(part_hash, content_hash(&data[4_000_000..]));
        assert!(matches!(
            read_range(&path, 4_500_000, 1_000_000),
            Err(SourceError::Changed(_))
        ));
    }

    #[test]
    fn bad_sources_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.jpg");
        let err = check_source(&missing).unwrap_err();
        assert!(matches!(err, SourceError::NotFound(_)));
        assert!(err.to_string().contains("gone.jpg: no such file"), "{err}");
        assert!(matches!(
            check_source(dir.path()),
            Err(SourceError::Directory(_))
        ));
        assert!(matches!(
            check_source(Path::new("rel.jpg")),
            Err(SourceError::Relative(_))
        ));
        assert!(matches!(
            check_source(Path::new("/dev/null")),
            Err(SourceError::NotRegular(_))
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jpg");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            open_source(&fifo),
            Err(SourceError::NotRegular(_))
        ));
    }
}

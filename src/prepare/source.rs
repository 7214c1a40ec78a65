//! Reading source files: the checks made when a path is handed over, and the reads that upload
//! the bytes (whole for small files, hashed and then chunk by chunk for large ones).
//!
//! Everything here touches the disk and runs on the blocking pool. Sources are opened with
//! `O_NONBLOCK` and checked with `fstat` on the open descriptor, so a FIFO or device handed in
//! by mistake (or swapped in after the check) is refused instead of hanging the daemon.
//!
//! **The source-file rule**, enforced here and nowhere else:
//! - A file a caller handed over ([`Access::Given`]) is opened by its path as given: a symbolic
//!   link the caller named is followed, because the caller chose it.
//! - A file handed over as an open descriptor ([`Access::Spooled`]) is read from the daemon's
//!   own copy in the spool (`src/spool/`), by its path, as a given file is.
//! - A file a watch found ([`Access::Beneath`]) is opened beneath the watched folder one name
//!   at a time, each with `O_NOFOLLOW`: no symbolic link below the folder is followed, neither
//!   a file nor a directory. Anyone who can write into a watched folder can place links there;
//!   none of them makes dbxport read (and upload) what they point at.
//! - Every open of a job's source compares the file with what was queued ([`SourceFile`]'s
//!   expected [`Stamp`]): another file (device or inode) is refused; the same file in another
//!   version (size, mtime or ctime) is read again from the start. ctime matters because a tool
//!   that edits in place can put size and mtime back (`exiftool -P`); ctime it cannot.
//! - After the last byte of a read, the descriptor is looked at again: bytes read while the
//!   file changed are never used.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    #[error(
        "{0}: is a symbolic link, or lies in a linked folder, inside a watched folder; watches \
         never follow links, so it is not sent. To send what it points at, hand that file over \
         yourself (dbxportctl upload)"
    )]
    Symlink(PathBuf),
    #[error(
        "{0}: another file has taken this name since it was queued (it was replaced or swapped); \
         it is not sent. Hand it over again if this one should go"
    )]
    Replaced(PathBuf),
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

/// Which file a source is on disk (device and inode) and which version of it (size, mtime,
/// ctime), to notice when it is replaced or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ms: Option<u64>,
    #[serde(default)]
    pub ctime_ns: u64,
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
}

impl Stamp {
    /// The same file on disk (whatever its version).
    pub fn same_file(&self, other: &Stamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

fn mtime_ms(secs: i64, nsec: i64) -> Option<u64> {
    (secs >= 0).then(|| secs as u64 * 1000 + nsec as u64 / 1_000_000)
}

fn ctime_ns(secs: i64, nsec: i64) -> u64 {
    (secs.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec.max(0) as u64)
}

pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        size: meta.len(),
        mtime_ms: mtime_ms(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ctime_ns(meta.ctime(), meta.ctime_nsec()),
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

#[allow(clippy::unnecessary_cast)] // stat's field widths differ between targets.
fn stamp_of_stat(st: &libc::stat) -> Stamp {
    Stamp {
        size: st.st_size as u64,
        mtime_ms: mtime_ms(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ctime_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// How a source's path may be resolved when it is opened (see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Handed over by a caller: the path as given, symbolic links followed.
    #[default]
    Given,
    /// Found by a watch: beneath `root` (the watched folder, resolved as given), no symbolic
    /// link followed below it.
    Beneath {
        #[serde(with = "crate::os_path")]
        root: PathBuf,
    },
    /// Handed over as an open file (`UploadFds`) and copied into the daemon's spool
    /// (`src/spool/`): the path is that copy, the daemon's own file, opened as given; `name`
    /// is the caller's name for it, which the user sees and Dropbox gets; `folder`, the name
    /// of the folder it came from, if the caller said (a template's `{folder}`).
    Spooled {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        folder: Option<String>,
    },
}

impl Access {
    /// The caller's name of a spooled file; None for a file read where it lies.
    pub fn spooled_name(&self) -> Option<&str> {
        match self {
            Access::Spooled { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The caller's name for the folder a spooled file came from, if it gave one.
    pub fn spooled_folder(&self) -> Option<&str> {
        match self {
            Access::Spooled { folder, .. } => folder.as_deref(),
            _ => None,
        }
    }

    /// The source at `path` as messages name it: the caller's name for a spooled copy (its
    /// path in the spool means nothing to the user), else the path.
    pub fn shown(&self, path: &Path) -> String {
        match self.spooled_name() {
            Some(name) => name.to_string(),
            None => path.display().to_string(),
        }
    }
}

/// A file to read: where it is, how its path may be resolved, and (once known) which file
/// and version it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub access: Access,
    pub expect: Option<Stamp>,
}

impl SourceFile {
    /// A file of our own (a prepared copy in the cache), or a path a caller gave.
    pub fn given(path: impl Into<PathBuf>) -> SourceFile {
        SourceFile {
            path: path.into(),
            access: Access::Given,
            expect: None,
        }
    }

    /// The same file, expected to be exactly `stamp`.
    pub fn expecting(&self, stamp: Stamp) -> SourceFile {
        SourceFile {
            expect: Some(stamp),
            ..self.clone()
        }
    }

    /// Opens the file under its access rule and checks it is a regular file and, if a version
    /// is expected, that one.
    pub fn open(&self) -> Result<(File, Stamp), SourceError> {
        let path = &self.path;
        let file = match &self.access {
            Access::Given | Access::Spooled { .. } => std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .map_err(|e| SourceError::from_io(path, e))?,
            Access::Beneath { root } => open_beneath(root, path)?,
        };
        let stamp = check_open(&file, path)?;
        self.check_expected(&stamp)?;
        Ok((file, stamp))
    }

    /// What the file is now, under its access rule (opened, so the rule applies in full).
    pub fn stat(&self) -> Result<Stamp, SourceError> {
        SourceFile {
            expect: None,
            ..self.clone()
        }
        .open()
        .map(|(_, stamp)| stamp)
    }

    fn check_expected(&self, now: &Stamp) -> Result<(), SourceError> {
        match &self.expect {
            Some(expect) if !expect.same_file(now) => Err(SourceError::Replaced(self.path.clone())),
            Some(expect) if expect != now => Err(SourceError::Changed(self.path.clone())),
            _ => Ok(()),
        }
    }

    /// After a read: the open file is still the version it was when opened, so the bytes read
    /// are one version of it, not a mix.
    pub(crate) fn unchanged(&self, file: &File, opened: &Stamp) -> Result<(), SourceError> {
        let now = file
            .metadata()
            .map_err(|e| SourceError::from_io(&self.path, e))?;
        if stamp_of(&now) != *opened {
            return Err(SourceError::Changed(self.path.clone()));
        }
        Ok(())
    }
}

impl From<&Path> for SourceFile {
    fn from(path: &Path) -> SourceFile {
        SourceFile::given(path)
    }
}

impl From<&PathBuf> for SourceFile {
    fn from(path: &PathBuf) -> SourceFile {
        SourceFile::given(path.as_path())
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
    let c_path = CString::new(path.as_os_str().as_bytes())
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

/// An open source is a regular file on a real file system; returns its stamp.
fn check_open(file: &File, path: &Path) -> Result<Stamp, SourceError> {
    let meta = file.metadata().map_err(|e| SourceError::from_io(path, e))?;
    if meta.is_dir() {
        return Err(SourceError::Directory(path.into()));
    }
    if !meta.is_file() {
        return Err(SourceError::NotRegular(path.into()));
    }
    // SAFETY: an open descriptor and a zeroed struct for the kernel to fill.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } == 0 && is_pseudo(&fs) {
        return Err(SourceError::Pseudo(path.into()));
    }
    Ok(stamp_of(&meta))
}

fn c_string(bytes: &[u8], path: &Path) -> Result<CString, SourceError> {
    CString::new(bytes).map_err(|_| SourceError::NotFound(path.into()))
}

/// Takes ownership of a descriptor a libc call returned, or the call's error.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat_raw(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an open descriptor and a zeroed struct for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Opens the folder `path` is in, walking down from `root` one name at a time without
/// following a link; returns it with `path`'s own name.
fn open_parent_beneath(root: &Path, path: &Path) -> Result<(OwnedFd, CString), SourceError> {
    let relative = path
        .strip_prefix(root)
        .map_err(|_| SourceError::NotFound(path.into()))?;
    let names: Vec<&OsStr> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            // `..` or `.` could climb out of the folder; paths from a watch never have them.
            _ => Err(SourceError::NotFound(path.into())),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, folders)) = names.split_last() else {
        return Err(SourceError::Directory(path.into()));
    };
    let root_c = c_string(root.as_os_str().as_bytes(), path)?;
    // SAFETY: a valid NUL-terminated path.
    let mut dir = owned(unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| SourceError::from_io(path, e))?;
    for name in folders {
        let name_c = c_string(name.as_bytes(), path)?;
        // O_PATH with O_NOFOLLOW opens a link itself rather than what it points at; fstat
        // then tells a folder from a link.
        // SAFETY: an open directory descriptor and a valid NUL-terminated name.
        let next = owned(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name_c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| SourceError::from_io(path, e))?;
        let st = fstat_raw(&next).map_err(|e| SourceError::from_io(path, e))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => dir = next,
            libc::S_IFLNK => return Err(SourceError::Symlink(path.into())),
            _ => return Err(SourceError::NotFound(path.into())),
        }
    }
    Ok((dir, c_string(last.as_bytes(), path)?))
}

/// Opens `path` for reading beneath `root`, following no link below `root`.
fn open_beneath(root: &Path, path: &Path) -> Result<File, SourceError> {
    let (dir, name) = open_parent_beneath(root, path)?;
    // SAFETY: an open directory descriptor and a valid NUL-terminated name.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    });
    match fd {
        Ok(fd) => Ok(File::from(fd)),
        // With O_NOFOLLOW, ELOOP means the name itself is a link.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(SourceError::Symlink(path.into())),
        Err(e) => Err(SourceError::from_io(path, e)),
    }
}

/// What `path` is now, beneath `root`, without opening it and without following any link
/// below `root` (the watch looks at files this way before it takes them).
pub fn stat_beneath(root: &Path, path: &Path) -> Result<Stamp, SourceError> {
    let (dir, name) = open_parent_beneath(root, path)?;
    // SAFETY: an open directory descriptor, a valid name, a zeroed struct to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(SourceError::from_io(path, io::Error::last_os_error()));
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(stamp_of_stat(&st)),
        libc::S_IFLNK => Err(SourceError::Symlink(path.into())),
        libc::S_IFDIR => Err(SourceError::Directory(path.into())),
        _ => Err(SourceError::NotRegular(path.into())),
    }
}

/// Reads a whole (small) source into memory and hashes it: the bytes returned are exactly the
/// bytes the hash covers, all of one version of the file. Blocking.
pub fn read_whole(source: &SourceFile) -> Result<(bytes::Bytes, Stamp, String), SourceError> {
    use std::io::Read;
    let (mut file, stamp) = source.open()?;
    let mut data = Vec::with_capacity(stamp.size as usize);
    file.read_to_end(&mut data)
        .map_err(|e| SourceError::from_io(&source.path, e))?;
    if data.len() as u64 != stamp.size {
        return Err(SourceError::Changed(source.path.clone()));
    }
    source.unchanged(&file, &stamp)?;
    let hash = crate::dropbox::content_hash::content_hash(&data);
    Ok((data.into(), stamp, hash))
}

/// Hashes a whole source without holding it in memory, and checks it did not change while
/// being read. Blocking.
pub fn hash_whole(source: &SourceFile) -> Result<(Stamp, String), SourceError> {
    hash_first(source, u64::MAX)
}

/// Hashes the first `len` bytes of a source (all of it if shorter), checked like
/// [`hash_whole`]: does a file begin with what was sent of it before? Blocking.
pub fn hash_first(source: &SourceFile, len: u64) -> Result<(Stamp, String), SourceError> {
    use std::io::Read;
    let (file, stamp) = source.open()?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    let mut reader = (&file).take(len);
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| SourceError::from_io(&source.path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total != stamp.size.min(len) {
        return Err(SourceError::Changed(source.path.clone()));
    }
    source.unchanged(&file, &stamp)?;
    Ok((stamp, hasher.finish()))
}

/// Reads at most `len` bytes from the start (fewer if the file is shorter), checking as
/// every read does that the file is the one expected. Blocking.
pub fn read_head(source: &SourceFile, len: usize) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let (file, stamp) = source.open()?;
    let mut data = Vec::with_capacity(len.min(stamp.size as usize));
    (&file)
        .take(len as u64)
        .read_to_end(&mut data)
        .map_err(|e| SourceError::from_io(&source.path, e))?;
    source.unchanged(&file, &stamp)?;
    Ok(data)
}

/// Reads `len` bytes at `offset` (one upload-session chunk) and hashes them. Blocking.
pub fn read_range(
    source: &SourceFile,
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
    source: &SourceFile,
    offset: u64,
    len: usize,
) -> Result<(bytes::Bytes, Vec<crate::dropbox::content_hash::BlockDigest>), SourceError> {
    use std::os::unix::fs::FileExt;
    let (file, stamp) = source.open()?;
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SourceError::Changed(source.path.clone()),
            _ => SourceError::from_io(&source.path, e),
        })?;
    source.unchanged(&file, &stamp)?;
    let digests = crate::dropbox::content_hash::block_digests(&data);
    Ok((data.into(), digests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropbox::content_hash::content_hash;

    fn given(path: &Path) -> SourceFile {
        SourceFile::given(path)
    }

    #[test]
    fn originals_hash_to_the_file_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (stamp, hash) = hash_whole(&given(&path)).unwrap();
        assert_eq!(hash, content_hash(&data));
        let (_, first) = hash_first(&given(&path), 4_500_000).unwrap();
        assert_eq!(first, content_hash(&data[..4_500_000]));
        assert_eq!(stamp.size, data.len() as u64);
        let (bytes, _, hash2) = read_whole(&given(&path)).unwrap();
        assert_eq!((bytes.as_ref(), hash2.as_str()), (&data[..], hash.as_str()));
        let (part, part_hash) = read_range(&given(&path), 4_000_000, 1_000_000).unwrap();
        assert_eq!(part.as_ref(), &data[4_000_000..]);
        assert_eq!(part_hash, content_hash(&data[4_000_000..]));
        assert!(matches!(
            read_range(&given(&path), 4_500_000, 1_000_000),
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
            given(&fifo).open(),
            Err(SourceError::NotRegular(_))
        ));
        let beneath = SourceFile {
            path: fifo.clone(),
            access: Access::Beneath {
                root: dir.path().into(),
            },
            expect: None,
        };
        assert!(matches!(beneath.open(), Err(SourceError::NotRegular(_))));
        assert!(matches!(
            stat_beneath(dir.path(), &fifo),
            Err(SourceError::NotRegular(_))
        ));
    }

    /// A watched folder holding a link to a private file and a link to a private folder: from
    /// beneath the folder neither is opened nor even looked through; a caller naming the link
    /// itself gets what it points at.
    #[test]
    fn beneath_a_watched_folder_no_link_is_followed() {
        let home = tempfile::tempdir().unwrap();
        let private = home.path().join("ssh");
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("id_ed25519"), b"PRIVATE KEY").unwrap();
        let watched = home.path().join("Camera");
        std::fs::create_dir_all(watched.join("sub")).unwrap();
        std::fs::write(watched.join("sub/real.jpg"), b"photo").unwrap();
        std::os::unix::fs::symlink(private.join("id_ed25519"), watched.join("IMG_0001.jpg"))
            .unwrap();
        std::os::unix::fs::symlink(&private, watched.join("sshdir")).unwrap();
        std::os::unix::fs::symlink(&private, watched.join("sub/deeper")).unwrap();
        let beneath = |path: PathBuf| SourceFile {
            path,
            access: Access::Beneath {
                root: watched.clone(),
            },
            expect: None,
        };
        for link in [
            watched.join("IMG_0001.jpg"),
            watched.join("sshdir/id_ed25519"),
            watched.join("sub/deeper/id_ed25519"),
        ] {
            let err = beneath(link.clone()).open().unwrap_err();
            assert!(matches!(err, SourceError::Symlink(_)), "{link:?}: {err}");
            assert!(err.to_string().contains("watches never follow links"));
            assert!(matches!(
                stat_beneath(&watched, &link),
                Err(SourceError::Symlink(_))
            ));
            assert!(read_whole(&beneath(link.clone())).is_err());
        }
        let (bytes, _, _) = read_whole(&beneath(watched.join("sub/real.jpg"))).unwrap();
        assert_eq!(bytes.as_ref(), b"photo");
        assert!(stat_beneath(&watched, &watched.join("sub/real.jpg")).is_ok());
        // A caller that names the link chose it: followed, as before.
        let (bytes, _, _) = read_whole(&given(&watched.join("IMG_0001.jpg"))).unwrap();
        assert_eq!(bytes.as_ref(), b"PRIVATE KEY");
    }

    /// A queued file swapped for another (here a link to a private file) is refused at open,
    /// whatever the access rule; an in-place edit that puts size and mtime back is a change.
    #[test]
    fn every_open_checks_the_file_and_version_that_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("a.jpg");
        std::fs::write(&photo, b"version one").unwrap();
        let queued = check_source(&photo).unwrap();
        let file = given(&photo).expecting(queued);
        assert!(read_whole(&file).is_ok());

        // In place, same size, mtime restored (what `exiftool -P` does): ctime moved.
        let mtime = std::fs::metadata(&photo).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&photo, b"version two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&photo)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let now = check_source(&photo).unwrap();
        assert_eq!((now.size, now.mtime_ms), (queued.size, queued.mtime_ms));
        assert!(matches!(read_whole(&file), Err(SourceError::Changed(_))));

        // Swapped for a link to another file: another inode.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"version one").unwrap();
        std::fs::remove_file(&photo).unwrap();
        std::os::unix::fs::symlink(&secret, &photo).unwrap();
        let err = read_whole(&file).unwrap_err();
        assert!(matches!(err, SourceError::Replaced(_)), "{err}");
        assert!(
            err.to_string()
                .contains("a.jpg: another file has taken this name")
        );
    }
}

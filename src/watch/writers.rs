//! Is a file still open for writing? A watch never takes a file some program is still writing,
//! however long that program stalls (a slow MTP copy, a download paused half-way): a stalled
//! writer looks exactly like a finished one to inotify and to the file's size and mtime.
//!
//! Two ways to ask the kernel, the first where it answers:
//! - A read lease (`fcntl(F_SETLEASE, F_RDLCK)`) is refused with `EAGAIN` while any process of
//!   any user has the file open for writing. It is granted only to the file's owner (or with
//!   `CAP_LEASE`) and only on file systems that support leases; it is released at once.
//! - Otherwise `/proc/*/fd`: every descriptor this user may look at, matched by device and
//!   inode, its access mode read from `/proc/PID/fdinfo/FD`. Processes of other users are not
//!   visible there; for their files the lease is the answer, when the file is ours.
//!
//! Blocking (it reads `/proc`): run on the blocking pool.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::prepare::{Access, SourceFile};

/// What the lease said about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    Unwritten,
    Written,
    /// Not ours, no lease support, or it could not be opened: ask `/proc`.
    Unknown,
}

fn lease(root: &Path, path: &Path) -> Lease {
    let source = SourceFile {
        path: path.to_path_buf(),
        access: Access::Beneath {
            root: root.to_path_buf(),
        },
        expect: None,
    };
    let Ok((file, _)) = source.open() else {
        return Lease::Unknown;
    };
    let fd = file.as_raw_fd();
    // SAFETY: an open descriptor; F_SETLEASE takes an int argument.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
        // SAFETY: as above; gives the lease back before anyone has to wait for it.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Lease::Unwritten;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Lease::Written,
        _ => Lease::Unknown,
    }
}

/// Device and inode of every file some visible process has open for writing, among `wanted`.
fn written_in_proc(wanted: &HashSet<(u64, u64)>) -> HashSet<(u64, u64)> {
    let mut written = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return written;
    };
    for proc in procs.flatten() {
        let pid = proc.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Other users' processes refuse this: skipped (see the module comment).
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // The descriptor's link leads to the open file itself, wherever it is now.
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if !wanted.contains(&id) || written.contains(&id) {
                continue;
            }
            let info = proc.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|text| opened_for_writing(&text)) {
                written.insert(id);
            }
        }
    }
    written
}

/// Whether an fdinfo text's `flags:` (octal) has write access.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| i64::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| {
            let mode = flags & libc::O_ACCMODE as i64;
            mode == libc::O_WRONLY as i64 || mode == libc::O_RDWR as i64
        })
}

/// For each `(root, path, dev, ino)`, whether some process has it open for writing.
pub fn being_written(files: &[(&Path, &Path, u64, u64)]) -> Vec<bool> {
    let leases: Vec<Lease> = files
        .iter()
        .map(|(root, path, ..)| lease(root, path))
        .collect();
    let unknown: HashSet<(u64, u64)> = files
        .iter()
        .zip(&leases)
        .filter(|(_, l)| **l == Lease::Unknown)
        .map(|((.., dev, ino), _)| (*dev, *ino))
        .collect();
    let written = if unknown.is_empty() {
        HashSet::new()
    } else {
        written_in_proc(&unknown)
    };
    files
        .iter()
        .zip(leases)
        .map(|((.., dev, ino), lease)| match lease {
            Lease::Written => true,
            Lease::Unwritten => false,
            Lease::Unknown => written.contains(&(*dev, *ino)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ids(path: &Path) -> (u64, u64) {
        let meta = std::fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    #[test]
    fn a_file_open_for_writing_is_seen_and_one_closed_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.jpg");
        let mut writer = std::fs::File::create(&path).unwrap();
        writer.write_all(b"half a photo").unwrap();
        let (dev, ino) = ids(&path);
        let ask = || being_written(&[(dir.path(), &path, dev, ino)])[0];
        assert!(ask(), "a writer holding the file open");
        // Also through /proc alone (what a file of another user gets).
        assert!(written_in_proc(&HashSet::from([(dev, ino)])).contains(&(dev, ino)));
        drop(writer);
        assert!(!ask(), "the writer closed it");
        assert!(written_in_proc(&HashSet::from([(dev, ino)])).is_empty());
        // A reader is not a writer.
        let _reader = std::fs::File::open(&path).unwrap();
        assert!(!ask());
        assert!(written_in_proc(&HashSet::from([(dev, ino)])).is_empty());
    }

    #[test]
    fn fdinfo_flags_are_read_as_octal() {
        assert!(opened_for_writing("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(opened_for_writing("pos:\t0\nflags:\t02100002\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
        assert!(!opened_for_writing("garbage"));
    }
}

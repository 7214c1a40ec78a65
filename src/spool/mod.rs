//! The spool: files handed over as open descriptors (`UploadFds`), copied into a folder the
//! daemon owns (`$XDG_STATE_HOME/dbxport/spool/<hand-over>/<n>-<name>`) before the call
//! returns, so a caller whose files the daemon cannot see (a private `/tmp`, a sandboxed app)
//! or may not keep (a temporary export) can hand them over and delete them at once.
//!
//! - **Durable on ack** (ARCHITECTURE.md, invariant 1): every copy and its folder are fsynced
//!   before the jobs are queued, and the jobs are flushed before the caller hears back.
//! - **Bounded** (`spool.max_bytes`, and the free space of the state disk): a hand-over that
//!   would go over is refused whole, before anything is copied or queued ([`admit`]).
//! - **Kept as long as a job needs it**: a copy goes once its job is Done (after the Done is
//!   durable: the queue announces moves only after their flush) or Cancelled ([`Spool::run`]);
//!   a Failed job keeps it, so Retry works. At a start, and whenever an announcement was
//!   missed, copies no unfinished or failed job points at are removed ([`Spool::sweep`]): a
//!   crash between the copy and the queueing, or between a Done and the removal, leaves
//!   nothing behind for long.
//!
//! A job's source is its copy, read under [`Access::Spooled`], which also keeps the caller's
//! name: the name Dropbox gets and the one `jobs` and D-Bus show. Blocking functions here run on
//! the blocking pool (the callers use `spawn_blocking`); copies stream, whatever their size.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

pub mod parts;

use crate::prepare::Access;
use crate::queue::{Filter, JobState, Queue};

/// `spool.max_bytes` when the config says nothing: 4 GiB. Enough for a large export at once
/// (a hundred 40 MB TIFFs from darktable, a card's worth of RAWs), while a queue that cannot
/// move for days (logged out, offline) stops taking copies before it eats the home disk.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Room left free on the state disk after a hand-over's copies, so that the queue database
/// beside them can still be written (a full state disk stops the queue: `QueueError::Db`).
pub const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// Descriptors in one call: dbus-daemon passes at most 16 in one message (its default
/// `max_message_unix_fds`, which the stock session.conf keeps) and drops the connection of a
/// caller that sends more; dbus-broker takes more, but a caller cannot tell which bus it
/// has. More files go in parts (`parts`).
pub const MAX_FILES: usize = 16;

/// The longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;

/// Bytes read and written at a time while copying.
const COPY_BUFFER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A name the copy cannot carry (the caller can fix it).
    #[error("{name:?}: {why}; give the file's name only, e.g. \"IMG_0001.jpg\"")]
    BadName { name: String, why: &'static str },
    /// The call's shape: counts that do not match, too many files, none.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{name}: not a regular file ({kind}); hand over an open photo file, not a pipe, socket \
         or device"
    )]
    NotRegular { name: String, kind: &'static str },
    #[error(
        "{name}: cannot read the handed-over file: {source}. Open it for reading (O_RDONLY) \
         before handing it over"
    )]
    Unreadable { name: String, source: io::Error },
    #[error(
        "{name}: the file changed while it was copied ({before} bytes when handed over, \
         {after} copied); hand it over once it is completely written"
    )]
    Changed {
        name: String,
        before: u64,
        after: u64,
    },
    /// The configured bound would be passed.
    #[error(
        "the spool is full: these {files} file(s) take {incoming}, and the spool holds {used} \
         already (copies waiting to go up, or kept for failed jobs), which would pass \
         spool.max_bytes = {max}. Nothing was copied or queued. Let queued uploads finish \
         (dbxportctl status), retry or cancel failed ones (dbxportctl jobs --state failed), \
         hand over fewer files at once, or raise spool.max_bytes in the config (dbxportctl \
         config set spool.max_bytes 8GiB, then dbxportctl restart)"
    )]
    Full {
        files: usize,
        incoming: Size,
        used: Size,
        max: Size,
    },
    /// The state disk has no room for the copies.
    #[error(
        "the disk holding dbxport's state folder ({dir}) has {free} free; these {files} file(s) \
         take {incoming} and {reserve} must stay free for the queue database. Nothing was \
         copied or queued. Free some space there, or hand over fewer files at once"
    )]
    DiskFull {
        dir: PathBuf,
        files: usize,
        incoming: Size,
        free: Size,
        reserve: Size,
    },
    #[error("cannot write the spool copy {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// A byte count as users read it: `4294967296 bytes (4.0 GiB)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = None;
        for u in UNITS {
            if value < 1024.0 {
                break;
            }
            value /= 1024.0;
            unit = Some(u);
        }
        match unit {
            None => write!(f, "{} bytes", self.0),
            Some(u) => write!(f, "{} bytes ({value:.1} {u})", self.0),
        }
    }
}

/// A caller's name for a file is a name, not a path: it becomes the copy's name and the name
/// in Dropbox.
pub fn check_name(name: &str) -> Result<(), SpoolError> {
    let why = if name.is_empty() {
        "an empty name"
    } else if name.contains('/') {
        "a name cannot hold '/'"
    } else if name == "." || name == ".." {
        "not a file name"
    } else if name.contains('\0') {
        "a name cannot hold a NUL byte"
    } else {
        return Ok(());
    };
    Err(SpoolError::BadName {
        name: name.to_string(),
        why,
    })
}

/// The copy's file name: its place in the hand-over, then the caller's name, cut (at a
/// character boundary, before its extension) to what a file system takes. The caller's name
/// itself is kept whole in the job.
pub fn local_name(index: usize, name: &str) -> String {
    let prefix = format!("{index}-");
    let whole = format!("{prefix}{name}");
    if whole.len() <= NAME_MAX {
        return whole;
    }
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    let mut room = NAME_MAX - prefix.len() - ext.len();
    let stem = &name[..name.len() - ext.len()];
    while !stem.is_char_boundary(room) {
        room -= 1;
    }
    format!("{prefix}{}{ext}", &stem[..room])
}

/// Whether `incoming` more bytes fit beside `used` (copies on disk) and `reserved` (hand-overs
/// being copied) under `max`; the error names the sizes.
pub fn admit(
    files: usize,
    incoming: u64,
    used: u64,
    reserved: u64,
    max: u64,
) -> Result<(), SpoolError> {
    let after = used.saturating_add(reserved).saturating_add(incoming);
    if after <= max {
        return Ok(());
    }
    Err(SpoolError::Full {
        files,
        incoming: Size(incoming),
        used: Size(used.saturating_add(reserved)),
        max: Size(max),
    })
}

/// Whether the state disk keeps [`MIN_FREE_BYTES`] after `incoming` bytes.
pub fn room_on_disk(dir: &Path, files: usize, incoming: u64, free: u64) -> Result<(), SpoolError> {
    if incoming.saturating_add(MIN_FREE_BYTES) <= free {
        return Ok(());
    }
    Err(SpoolError::DiskFull {
        dir: dir.to_path_buf(),
        files,
        incoming: Size(incoming),
        free: Size(free),
        reserve: Size(MIN_FREE_BYTES),
    })
}

/// The spool folder, its bound, and the hand-overs being copied now.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<InFlight>,
    /// Signalled when a sweep ends.
    swept: std::sync::Condvar,
}

/// Hand-overs between their admission and their jobs' queueing: their bytes count against
/// the bound, and a sweep leaves their folders alone.
#[derive(Default)]
struct InFlight {
    reserved: u64,
    folders: HashSet<String>,
    /// A sweep against the queue is running: no hand-over is admitted until it ends.
    sweeping: bool,
}

/// Ends a sweep (however it returns) and lets waiting hand-overs in.
struct SweepDone<'a>(&'a Spool);

impl Drop for SweepDone<'_> {
    fn drop(&mut self) {
        self.0.in_flight().sweeping = false;
        self.0.swept.notify_all();
    }
}

/// One hand-over's copies, made and fsynced; [`Handover::finish`] keeps them (the jobs are
/// queued) or removes them (the call was refused after all).
pub struct Handover {
    spool: Arc<Spool>,
    folder: String,
    reserved: u64,
    /// Each copy and the caller's name for it, in the caller's order.
    pub files: Vec<(PathBuf, String)>,
    /// The name of the folder each file came from, as the caller told it (a template's
    /// `{folder}`); empty when it told none.
    pub folders: Vec<Option<String>>,
}

impl Spool {
    /// The spool in `dir` (created by the daemon at start, 0700), bounded by `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Arc<Spool> {
        Arc::new(Spool {
            dir,
            max_bytes,
            state: Mutex::new(InFlight::default()),
            swept: std::sync::Condvar::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        // Plain numbers and names: a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies `files` (the caller's name and an open descriptor each) into a new folder of
    /// the spool, each from its first byte, and fsyncs them and the folders. All or nothing:
    /// a bad name, a descriptor that is not a readable regular file, or a spool or disk
    /// without room refuses the whole hand-over before anything is copied. Blocking.
    pub fn take(self: &Arc<Self>, files: Vec<(String, OwnedFd)>) -> Result<Handover, SpoolError> {
        if files.is_empty() {
            return Err(SpoolError::Invalid("no files given".into()));
        }
        if files.len() > MAX_FILES {
            return Err(SpoolError::Invalid(format!(
                "{} files in one call; at most {MAX_FILES} go in one: hand the others over in \
                 further calls, each but the last with the option `more` (one batch in all)",
                files.len()
            )));
        }
        let mut sources = Vec::with_capacity(files.len());
        for (name, fd) in files {
            check_name(&name)?;
            let file = File::from(fd);
            let meta = file.metadata().map_err(|source| SpoolError::Unreadable {
                name: name.clone(),
                source,
            })?;
            if !meta.is_file() {
                return Err(SpoolError::NotRegular {
                    name,
                    kind: kind_of(&meta),
                });
            }
            sources.push((name, file, meta));
        }
        let incoming: u64 = sources.iter().map(|(_, _, m)| m.len()).sum();
        let count = sources.len();
        let free = free_bytes(&self.dir).map_err(|source| SpoolError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let folder = {
            // Counted under the lock: a hand-over finishing meanwhile moves its bytes from
            // reserved to on disk, and must not be missed by both.
            let mut flight = self.in_flight();
            while flight.sweeping {
                flight = self.swept.wait(flight).unwrap_or_else(|e| e.into_inner());
            }
            let used = self
                .copies_except(&flight.folders)
                .iter()
                .map(|(_, s)| s)
                .sum();
            admit(count, incoming, used, flight.reserved, self.max_bytes)?;
            room_on_disk(
                &self.dir,
                count,
                incoming,
                free.saturating_sub(flight.reserved),
            )?;
            let folder = self.new_folder_name(&flight.folders);
            flight.reserved += incoming;
            flight.folders.insert(folder.clone());
            folder
        };
        let mut handover = Handover {
            spool: self.clone(),
            folder,
            reserved: incoming,
            files: Vec::with_capacity(count),
            folders: Vec::new(),
        };
        match handover.copy_all(sources) {
            Ok(()) => Ok(handover),
            Err(e) => {
                handover.finish(false);
                Err(e)
            }
        }
    }

    /// A folder name no hand-over uses: the time, and a counter within it.
    fn new_folder_name(&self, in_flight: &HashSet<String>) -> String {
        let now = crate::queue::now_ms();
        (0u32..)
            .map(|n| format!("{now}-{n}"))
            .find(|name| !in_flight.contains(name) && !self.dir.join(name).exists())
            .expect("some counter is free")
    }

    /// Bytes of the copies in the spool now.
    pub fn used_bytes(&self) -> u64 {
        self.copies().iter().map(|(_, size)| size).sum()
    }

    /// Every copy in the spool (outside the hand-overs being copied, which count as
    /// reserved) and its size.
    fn copies(&self) -> Vec<(PathBuf, u64)> {
        let busy = self.in_flight().folders.clone();
        self.copies_except(&busy)
    }

    fn copies_except(&self, busy: &HashSet<String>) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let Ok(folders) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for folder in folders.flatten() {
            if busy.contains(&*folder.file_name().to_string_lossy()) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(folder.path()) else {
                continue;
            };
            for file in files.flatten() {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((file.path(), size));
            }
        }
        out
    }

    /// Removes one job's copy, and its hand-over's folder once empty. Only files inside the
    /// spool are ever removed. Blocking.
    pub fn remove_copy(&self, path: &Path) {
        if !path.starts_with(&self.dir) || path.parent() == Some(self.dir.as_path()) {
            return;
        }
        match std::fs::remove_file(path) {
            Ok(()) => tracing::debug!("removed the spool copy {}", path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove the spool copy {}: {e}", path.display()),
        }
        if let Some(folder) = path.parent() {
            // Fails while other copies of the hand-over are still there: that is the point.
            let _ = std::fs::remove_dir(folder);
        }
    }

    /// Removes the copies no job in `needed` points at, and folders left empty, except those
    /// of hand-overs being copied now. Returns what it removed. Blocking.
    pub fn sweep(&self, needed: &HashSet<PathBuf>) -> Vec<PathBuf> {
        let busy = self.in_flight().folders.clone();
        self.sweep_except(needed, &busy)
    }

    fn sweep_except(&self, needed: &HashSet<PathBuf>, busy: &HashSet<String>) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let Ok(folders) = std::fs::read_dir(&self.dir) else {
            return removed;
        };
        for folder in folders.flatten() {
            if busy.contains(&*folder.file_name().to_string_lossy()) {
                continue;
            }
            let path = folder.path();
            if !path.is_dir() {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(&path) {
                for file in files.flatten() {
                    let file = file.path();
                    if !needed.contains(&file) && std::fs::remove_file(&file).is_ok() {
                        removed.push(file);
                    }
                }
            }
            let _ = std::fs::remove_dir(&path);
        }
        removed
    }

    /// Sweeps against the queue: a copy is needed while its job is unfinished or failed
    /// (Retry). Logs what went. Blocking.
    ///
    /// No hand-over is admitted while it runs, and those under way when it starts are left
    /// alone: one that finished between the listing of the jobs and the removal would
    /// otherwise have its new copies taken for orphans.
    pub fn sweep_against(&self, queue: &Queue) {
        let busy = {
            let mut flight = self.in_flight();
            while flight.sweeping {
                flight = self.swept.wait(flight).unwrap_or_else(|e| e.into_inner());
            }
            flight.sweeping = true;
            flight.folders.clone()
        };
        let _admit_again = SweepDone(self);
        let jobs = match queue.list(Filter::All) {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!("cannot read the queue to tidy the spool; it is left as it is: {e}");
                return;
            }
        };
        let needed: HashSet<PathBuf> = jobs
            .into_iter()
            .filter(|job| matches!(job.access, Access::Spooled { .. }))
            .filter(|job| !matches!(job.state, JobState::Done { .. } | JobState::Cancelled))
            .map(|job| job.source)
            .collect();
        let removed = self.sweep_except(&needed, &busy);
        if !removed.is_empty() {
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            tracing::info!(
                "removed {} spool cop{} no queued or failed job needs (left by a crash or a \
                 stop, or of jobs done, cancelled or cleaned): {}",
                removed.len(),
                if removed.len() == 1 { "y" } else { "ies" },
                names.join(", ")
            );
        }
    }

    /// Removes each spooled job's copy once the job is Done or Cancelled, until `shutdown`.
    /// The queue announces a move after its flush, so a Done is durable before its copy goes.
    /// Missed announcements (a lagging receiver) are made up for with a sweep.
    pub async fn run(self: Arc<Self>, queue: Queue, shutdown: CancellationToken) {
        use tokio::sync::broadcast::error::RecvError;
        let mut events = queue.subscribe();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.cancelled() => return,
            };
            match event {
                Ok(event) => {
                    let job = event.job;
                    if !matches!(job.access, Access::Spooled { .. })
                        || !matches!(job.state, JobState::Done { .. } | JobState::Cancelled)
                    {
                        continue;
                    }
                    let spool = self.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || spool.remove_copy(&job.source)).await;
                }
                Err(RecvError::Lagged(_)) => {
                    let (spool, queue) = (self.clone(), queue.clone());
                    let _ = tokio::task::spawn_blocking(move || spool.sweep_against(&queue)).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

impl Handover {
    /// Copies each source into this hand-over's folder, then fsyncs the folders.
    fn copy_all(
        &mut self,
        sources: Vec<(String, File, std::fs::Metadata)>,
    ) -> Result<(), SpoolError> {
        let folder = self.spool.dir.join(&self.folder);
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Write { path, source }
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&folder)
            .map_err(write_err(&folder))?;
        for (index, (name, source, meta)) in sources.into_iter().enumerate() {
            let path = folder.join(local_name(index, &name));
            copy_one(&name, &source, &meta, &path)?;
            self.files.push((path, name));
        }
        sync_dir(&folder).map_err(write_err(&folder))?;
        sync_dir(&self.spool.dir).map_err(write_err(&self.spool.dir))?;
        Ok(())
    }

    /// Keeps the copies (their jobs are queued) or removes them; either way the hand-over no
    /// longer counts as being copied. Blocking when removing.
    pub fn finish(self, keep: bool) {
        if !keep {
            let folder = self.spool.dir.join(&self.folder);
            if let Err(e) = std::fs::remove_dir_all(&folder)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(
                    "cannot remove the refused hand-over {}: {e}",
                    folder.display()
                );
            }
        }
        // Drop releases the reservation.
    }
}

/// [`Handover::finish`] for each of `handovers`, off the runtime (removing copies is file
/// work): kept when their jobs are queued, removed otherwise.
pub async fn finish_all(handovers: Vec<Handover>, keep: bool) {
    if handovers.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for handover in handovers {
            handover.finish(keep);
        }
    })
    .await;
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("folder", &self.folder)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        let mut flight = self.spool.in_flight();
        flight.reserved = flight.reserved.saturating_sub(self.reserved);
        flight.folders.remove(&self.folder);
    }
}

/// Copies `source` from offset 0 (with `pread`, leaving the caller's file offset alone) into
/// a new 0600 file at `path`, gives it the source's modification time (a folder template's
/// date falls back on it), and fsyncs it.
fn copy_one(
    name: &str,
    source: &File,
    meta: &std::fs::Metadata,
    path: &Path,
) -> Result<(), SpoolError> {
    let write_err = |source| SpoolError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut offset = 0u64;
    loop {
        let n = match source.read_at(&mut buffer, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SpoolError::Unreadable {
                    name: name.to_string(),
                    source,
                });
            }
        };
        out.write_all(&buffer[..n]).map_err(write_err)?;
        offset += n as u64;
    }
    if offset != meta.len() {
        return Err(SpoolError::Changed {
            name: name.to_string(),
            before: meta.len(),
            after: offset,
        });
    }
    if let Ok(modified) = meta.modified() {
        out.set_modified(modified).map_err(write_err)?;
    }
    out.sync_all().map_err(write_err)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path and a zeroed struct for the kernel to fill.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // statvfs's field widths differ between targets.
    Ok((fs.f_bavail as u64).saturating_mul(fs.f_frsize as u64))
}

/// What a descriptor that is not a regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_names_not_paths() {
        for good in ["IMG_0001.jpg", "a b 'c'.jpg", ".hidden.jpg", "é.png"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b.jpg", "/x.jpg", ".", "..", "a\0b"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("name"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn copy_names_keep_their_order_and_fit_a_file_system() {
        assert_eq!(local_name(0, "a.jpg"), "0-a.jpg");
        assert_eq!(local_name(12, "a b.jpg"), "12-a b.jpg");
        let long = format!("{}.jpeg", "é".repeat(200));
        let name = local_name(3, &long);
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert!(name.starts_with("3-é") && name.ends_with(".jpeg"), "{name}");
        // Two long names that differ only at their end still get distinct copies (the index).
        assert_ne!(local_name(0, &long), local_name(1, &long));
    }

    #[test]
    fn the_bound_counts_copies_on_disk_and_hand_overs_under_way() {
        assert!(admit(1, 10, 0, 0, 10).is_ok(), "exactly at the bound");
        assert!(admit(1, 5, 3, 2, 10).is_ok());
        let err = admit(2, 6, 3, 2, 10).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SpoolError::Full { .. }), "{text}");
        assert!(text.contains("take 6 bytes"), "{text}");
        assert!(text.contains("holds 5 bytes"), "{text}");
        assert!(text.contains("spool.max_bytes = 10 bytes"), "{text}");
        assert!(text.contains("Nothing was copied or queued"), "{text}");
        assert!(admit(1, 1, 0, 0, 0).is_err(), "0 takes nothing");
        assert!(
            admit(1, u64::MAX, u64::MAX, 1, u64::MAX - 1).is_err(),
            "no overflow"
        );
        let text = admit(1, (3 << 30) + 1, 1 << 30, 0, DEFAULT_MAX_BYTES)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("(3.0 GiB)") && text.contains("(4.0 GiB)"),
            "{text}"
        );
    }

    #[test]
    fn the_state_disk_keeps_room_for_the_queue() {
        let dir = Path::new("/state/spool");
        assert!(room_on_disk(dir, 1, 10, 10 + MIN_FREE_BYTES).is_ok());
        let text = room_on_disk(dir, 1, 11, 10 + MIN_FREE_BYTES)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("/state/spool") && text.contains("Free some space"),
            "{text}"
        );
    }

    fn spool_in(dir: &Path, max: u64) -> Arc<Spool> {
        let spool = dir.join("spool");
        std::fs::create_dir(&spool).unwrap();
        Spool::new(spool, max)
    }

    fn fd(path: &Path) -> OwnedFd {
        File::open(path).unwrap().into()
    }

    #[test]
    fn a_hand_over_is_copied_whole_from_offset_zero_and_kept_or_removed() {
        use std::io::{Read, Seek};
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_in(dir.path(), 1000);
        let a = dir.path().join("a.jpg");
        std::fs::write(&a, b"0123456789").unwrap();
        // The caller has read some of it: the copy still starts at the first byte, and the
        // caller's offset is left where it was.
        let mut opened = File::open(&a).unwrap();
        opened.read_exact(&mut [0u8; 4]).unwrap();
        let copy = opened.try_clone().unwrap();
        let handover = spool.take(vec![("a b.jpg".into(), copy.into())]).unwrap();
        assert_eq!(opened.stream_position().unwrap(), 4);
        let (path, name) = &handover.files[0];
        assert_eq!(name, "a b.jpg");
        assert_eq!(std::fs::read(path).unwrap(), b"0123456789");
        // Being copied, it counts as reserved; kept, as on disk.
        assert_eq!(spool.in_flight().reserved, 10);
        let path = path.clone();
        handover.finish(true);
        assert_eq!(spool.in_flight().reserved, 0);
        assert_eq!(spool.used_bytes(), 10);
        // A second hand-over that would pass the bound (10 on disk + 991) is refused, and
        // leaves nothing behind.
        let big = dir.path().join("big");
        std::fs::write(&big, vec![1u8; 991]).unwrap();
        let err = spool.take(vec![("big".into(), fd(&big))]).err().unwrap();
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert!(path.exists(), "kept");
        spool.remove_copy(&path);
        assert!(
            !path.exists() && !path.parent().unwrap().exists(),
            "copy and folder gone"
        );
        assert_eq!(spool.used_bytes(), 0);
        // Refused after copying (the queue said no): nothing left, nothing reserved.
        let handover = spool.take(vec![("big".into(), fd(&big))]).unwrap();
        let folder = handover.files[0].0.parent().unwrap().to_path_buf();
        handover.finish(false);
        assert!(!folder.exists());
        assert!(spool.in_flight().folders.is_empty());
        assert_eq!(spool.in_flight().reserved, 0);
    }

    #[test]
    fn what_is_not_a_readable_regular_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_in(dir.path(), 1000);
        let err = spool
            .take(vec![("folder.jpg".into(), fd(dir.path()))])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("folder.jpg: not a regular file (a directory)"),
            "{err}"
        );
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        let write_only = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
        let err = spool
            .take(vec![("w.jpg".into(), write_only.into())])
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("w.jpg: cannot read"), "{err}");
        let err = spool.take(vec![("a/b".into(), fd(&a))]).err().unwrap();
        assert!(matches!(err, SpoolError::BadName { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(spool.dir()).unwrap().count(),
            0,
            "nothing left"
        );
    }

    #[test]
    fn a_sweep_keeps_needed_copies_and_hand_overs_under_way() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_in(dir.path(), 1000);
        let a = dir.path().join("a");
        std::fs::write(&a, b"abc").unwrap();
        let kept = spool.take(vec![("k.jpg".into(), fd(&a))]).unwrap();
        let kept_path = kept.files[0].0.clone();
        kept.finish(true);
        let orphan = spool.take(vec![("o.jpg".into(), fd(&a))]).unwrap();
        let orphan_path = orphan.files[0].0.clone();
        orphan.finish(true);
        let busy = spool.take(vec![("b.jpg".into(), fd(&a))]).unwrap();
        let removed = spool.sweep(&HashSet::from([kept_path.clone()]));
        assert_eq!(removed, vec![orphan_path.clone()]);
        assert!(kept_path.exists() && busy.files[0].0.exists());
        assert!(!orphan_path.parent().unwrap().exists());
        busy.finish(false);
    }
}

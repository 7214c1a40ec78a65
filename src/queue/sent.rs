//! What this daemon sent where: for every export that ended Done, per source file (device and
//! inode, plus its path) and per target folder, the Dropbox path it landed at and its `rev`.
//! The `replace` conflict policy reads it to send an edited photo as `update` at that rev, so
//! the new version takes its earlier copy's place (README, "Conflicts").
//!
//! Written by `Queue::apply` together with the job's Done, before the job record and in the
//! same flush (ARCHITECTURE.md, "Where state lives"): a Done that survives a crash has its
//! entry too.
//!
//! An entry counts only for the very file at the very place: same device and inode *and* same
//! path. An inode number is handed out again once its file is deleted, and a camera repeats
//! its names after a card is formatted, so either alone could make one photo replace another
//! photo's copy.
//!
//! Bounded: one entry per source file and folder it was exported to. At every start
//! ([`Queue::open`], already on the blocking pool) the entries whose file is gone (its folder
//! there, the file not) or is another file now (another inode at that path) are dropped: they
//! can never match again. Entries of files on a medium that is not mounted stay.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::decode;
use super::{Job, JobState, Queue, Result};

/// One remembered upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The source's path when it was exported.
    #[serde(with = "crate::os_path")]
    pub path: PathBuf,
    /// Where the file is in Dropbox (as Dropbox displays it; a renamed copy's own name).
    pub remote_path: String,
    pub rev: String,
}

/// The key of a source file's entry for a Dropbox folder: device, inode (big-endian), then the
/// folder as Dropbox compares it.
fn entry_key(dev: u64, ino: u64, folder: &str) -> Vec<u8> {
    let folder = crate::dropbox::path::path_key(folder);
    let mut key = Vec::with_capacity(16 + folder.len());
    key.extend_from_slice(&dev.to_be_bytes());
    key.extend_from_slice(&ino.to_be_bytes());
    key.extend_from_slice(folder.as_bytes());
    key
}

/// The folder part of a Dropbox path (`""` for the top).
pub fn folder_of(remote_path: &str) -> &str {
    remote_path
        .rsplit_once('/')
        .map_or("", |(folder, _)| folder)
}

/// The entry a Done job leaves: (key, value). None for other states and for records without
/// the source's identity (written before it was kept).
pub(super) fn sent_entry(job: &Job) -> Option<(Vec<u8>, Vec<u8>)> {
    let JobState::Done {
        remote_path, rev, ..
    } = &job.state
    else {
        return None;
    };
    if job.source_ino == 0 {
        return None;
    }
    let entry = Sent {
        path: job.source.clone(),
        remote_path: remote_path.clone(),
        rev: rev.clone(),
    };
    let value = serde_json::to_vec(&entry).ok()?;
    // The folder asked for: Dropbox keeps a renamed copy in the same folder.
    Some((
        entry_key(job.source_dev, job.source_ino, folder_of(&job.remote_path)),
        value,
    ))
}

/// Whether an entry still names a file that exists as it was: None when that cannot be told
/// now (the folder is not there: a card not mounted, say).
fn still_there(key: &[u8], entry: &Sent) -> Option<bool> {
    let (dev, ino) = (
        u64::from_be_bytes(key.get(..8)?.try_into().ok()?),
        u64::from_be_bytes(key.get(8..16)?.try_into().ok()?),
    );
    match std::fs::metadata(&entry.path) {
        Ok(meta) => Some((meta.dev(), meta.ino()) == (dev, ino)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let folder = entry.path.parent()?;
            folder.is_dir().then_some(false)
        }
        Err(_) => None,
    }
}

impl Queue {
    /// What this daemon last sent of the file at `source` (device `dev`, inode `ino`) into the
    /// Dropbox folder `folder`, if that is the same file at the same path.
    pub fn remembered(
        &self,
        source: &Path,
        dev: u64,
        ino: u64,
        folder: &str,
    ) -> Result<Option<Sent>> {
        let Some(bytes) = self.inner.sent.get(entry_key(dev, ino, folder))? else {
            return Ok(None);
        };
        let entry: Sent = decode(&bytes)?;
        Ok((entry.path == source).then_some(entry))
    }

    /// Drops the entries that can never match again (see the module's comment). Blocking.
    pub(super) fn prune_sent(&self) -> Result<usize> {
        let mut dropped = 0;
        for item in self.inner.sent.iter() {
            let (key, value) = item?;
            let gone = match decode::<Sent>(&value) {
                Ok(entry) => still_there(&key, &entry) == Some(false),
                // Unreadable: it cannot be used either.
                Err(_) => true,
            };
            if gone {
                self.inner.sent.remove(key)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// A job under `replace` found a remembered upload at its path: the rev to update (when
    /// it differs from what the job holds), written before anything is sent, so that its
    /// commit and a restart's look at Dropbox both go by it.
    pub async fn set_replaces_rev(&self, id: super::JobId, rev: String) -> Result<Job> {
        let job = {
            let index = self.index();
            let mut job = self.held(&index, id)?;
            job.replaces_rev = Some(rev);
            self.inner
                .jobs
                .insert(super::store::key(id), super::store::encode(&job))?;
            index.current(job)
        };
        self.flush().await?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::new_job;

    #[tokio::test]
    async fn a_done_job_is_remembered_for_that_file_and_folder_only_and_pruned_when_gone() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("a.jpg");
        std::fs::write(&photo, b"one").unwrap();
        let meta = std::fs::metadata(&photo).unwrap();
        let (dev, ino) = (meta.dev(), meta.ino());
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        let mut new = new_job("a.jpg");
        new.source = photo.clone();
        new.stamp.dev = dev;
        new.stamp.ino = ino;
        let (_, jobs) = queue.enqueue("/P", vec![new]).await.unwrap();
        let id = jobs[0].id;
        queue.transition(id, JobState::Preparing).await.unwrap();
        queue
            .transition(
                id,
                JobState::Done {
                    content_hash: "h".into(),
                    remote_path: "/P/a (1).jpg".into(),
                    rev: "0123456789".into(),
                    skipped: false,
                },
            )
            .await
            .unwrap();
        // Written with the Done, found whatever letter case the folder is asked in.
        let found = queue.remembered(&photo, dev, ino, "/p").unwrap().unwrap();
        assert_eq!(found.remote_path, "/P/a (1).jpg");
        assert_eq!(found.rev, "0123456789");
        // Another folder, another file at that identity, the same file elsewhere: nothing.
        assert_eq!(queue.remembered(&photo, dev, ino, "/Q").unwrap(), None);
        assert_eq!(queue.remembered(&photo, dev, ino + 1, "/P").unwrap(), None);
        let moved = dir.path().join("b.jpg");
        assert_eq!(queue.remembered(&moved, dev, ino, "/P").unwrap(), None);
        // The file is there: kept. A file on a medium that is not there: kept.
        let card = Sent {
            path: dir.path().join("card/DCIM/b.jpg"),
            remote_path: "/P/b.jpg".into(),
            rev: "0123456789".into(),
        };
        queue
            .inner
            .sent
            .insert(entry_key(1, 2, "/P"), serde_json::to_vec(&card).unwrap())
            .unwrap();
        assert_eq!(queue.prune_sent().unwrap(), 0);
        // The file is deleted: forgotten (a start does this).
        std::fs::remove_file(&photo).unwrap();
        assert_eq!(queue.prune_sent().unwrap(), 1);
        assert_eq!(queue.remembered(&photo, dev, ino, "/P").unwrap(), None);
        assert_eq!(queue.inner.sent.len(), 1);
    }
}

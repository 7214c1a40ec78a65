//! What the watch module keeps in the queue's sled database: the watches themselves, and the
//! uploaded-index that makes "once, and only once" hold across restarts.
//!
//! The index is keyed by the watch and the file's identity on disk (device and inode), so a
//! rename within the folder is the same file, and holds its size, mtime, ctime and source
//! content hash when it went up, so a touch that leaves the content alone is recognised without
//! uploading again, while an edit is not, even one that puts size and mtime back (ctime moves).
//!
//! A Done job's entry is written by the queue together with the Done ([`Store::done_entry`]),
//! so no crash can keep one without the other.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::export::{ExportOptions, ExportOverrides};
use crate::profile::Profiles;
use crate::queue::{Job, JobState, Queue, QueueError};

/// A watched folder and how its photos are exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSpec {
    pub id: u64,
    /// Absolute path of the local folder.
    #[serde(with = "crate::os_path")]
    pub local_dir: PathBuf,
    /// Dropbox folder the photos go to (subfolders mirrored under it when recursive).
    pub remote_folder: String,
    pub recursive: bool,
    /// File-name globs; empty means the default photo and video extensions.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The options when the watch was added (defaults, profile, explicit ones); a watch with
    /// a profile makes its jobs with the profile as it is then ([`WatchSpec::current`]).
    pub options: ExportOptions,
    pub created_ms: u64,
    /// The export profile it was added with, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The caller's explicit options, which go over the profile's.
    #[serde(default, skip_serializing_if = "ExportOverrides::is_empty")]
    pub overrides: ExportOverrides,
    /// The folder came from the profile (none was given): it follows the profile's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folder_from_profile: bool,
}

impl WatchSpec {
    /// The folder (a template) and options its jobs are made with now, and the profile in use:
    /// for a watch with a profile, the profile as `profiles` has it (the config the daemon
    /// started with) under the caller's explicit options; for one whose profile is gone from
    /// the config, what it was added with (and a warning in the log).
    pub fn current(
        &self,
        defaults: &ExportOptions,
        profiles: &Profiles,
    ) -> (String, ExportOptions, Option<String>) {
        let recorded = (
            self.remote_folder.clone(),
            self.options.clone(),
            self.profile.clone(),
        );
        let Some(name) = &self.profile else {
            return recorded;
        };
        let profile = match profiles.get(name) {
            Ok(profile) => profile,
            Err(e) => {
                tracing::warn!(watch = self.id, "{e}: using the settings it was added with");
                return recorded;
            }
        };
        let options = match profile.options(defaults.clone(), &self.overrides) {
            Ok(options) => options,
            Err(e) => {
                tracing::warn!(watch = self.id, "{e}: using the settings it was added with");
                self.options.clone()
            }
        };
        let folder = match (&profile.folder, self.folder_from_profile) {
            (Some(folder), true) => folder.clone(),
            _ => self.remote_folder.clone(),
        };
        (folder, options, Some(name.clone()))
    }
}

/// How a file the watch handed over ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Failed,
    Cancelled,
}

/// One file a watch handed over, as it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    #[serde(with = "crate::os_path")]
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ms: Option<u64>,
    /// None in entries written before ctime was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<u64>,
    /// Content hash of the local file (not of a resized copy); None if not Done.
    pub hash: Option<String>,
    /// Where a Done upload landed and its revision, so that a later version of the file that
    /// only grew (the upload took a file still being written) can replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    pub outcome: Outcome,
}

/// The file identity the index is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

#[derive(Clone)]
pub struct Store {
    queue: Queue,
    watches: sled::Tree,
    uploaded: sled::Tree,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn index_key(watch: u64, file: FileId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&watch.to_be_bytes());
    key[8..16].copy_from_slice(&file.dev.to_be_bytes());
    key[16..].copy_from_slice(&file.ino.to_be_bytes());
    key
}

impl Store {
    pub fn open(queue: &Queue) -> Result<Store, QueueError> {
        Ok(Store {
            queue: queue.clone(),
            watches: queue.tree("watches")?,
            uploaded: queue.tree("uploaded")?,
        })
    }

    pub fn watches(&self) -> Result<Vec<WatchSpec>, QueueError> {
        self.watches.iter().values().map(|v| decode(&v?)).collect()
    }

    /// Adds a watch, durably, giving it an id.
    pub async fn add(&self, mut spec: WatchSpec) -> Result<WatchSpec, QueueError> {
        spec.id = self.queue.generate_id()?;
        let bytes = serde_json::to_vec(&spec).expect("watch specs serialize");
        self.watches.insert(spec.id.to_be_bytes(), bytes)?;
        self.queue.flush().await?;
        Ok(spec)
    }

    /// Removes a watch and its index; false if there was none.
    pub async fn remove(&self, id: u64) -> Result<bool, QueueError> {
        if self.watches.remove(id.to_be_bytes())?.is_none() {
            return Ok(false);
        }
        for key in self.uploaded.scan_prefix(id.to_be_bytes()).keys() {
            self.uploaded.remove(key?)?;
        }
        self.queue.flush().await?;
        Ok(true)
    }

    pub fn uploaded(&self, watch: u64, file: FileId) -> Result<Option<Uploaded>, QueueError> {
        self.uploaded
            .get(index_key(watch, file))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The index entry for a watch job that just became Done, for the queue to write with the
    /// Done: (tree, key, value). None for other jobs and for watches removed meanwhile.
    pub fn done_entry(&self, job: &Job) -> Option<(sled::Tree, Vec<u8>, Vec<u8>)> {
        let origin = job.origin?;
        let JobState::Done {
            content_hash,
            remote_path,
            rev,
            ..
        } = &job.state
        else {
            return None;
        };
        if !self
            .watches
            .contains_key(origin.watch.to_be_bytes())
            .unwrap_or(false)
        {
            return None;
        }
        // What went up is the source's own bytes only when nothing was prepared from it; the
        // hash (for recognising a touch later) is then the source's.
        let original = job.options.prepare == crate::prepare::PrepareOptions::default();
        let entry = Uploaded {
            path: job.source.clone(),
            size: job.source_size,
            mtime_ms: job.source_mtime_ms,
            ctime_ns: (job.source_ino != 0).then_some(job.source_ctime_ns),
            hash: original.then(|| content_hash.clone()),
            remote_path: Some(remote_path.clone()),
            rev: Some(rev.clone()),
            outcome: Outcome::Done,
        };
        let file = FileId {
            dev: origin.dev,
            ino: origin.ino,
        };
        let bytes = serde_json::to_vec(&entry).ok()?;
        Some((
            self.uploaded.clone(),
            index_key(origin.watch, file).to_vec(),
            bytes,
        ))
    }

    /// Records a file's outcome. Not flushed by itself: losing a failure or cancellation in a
    /// crash costs one more try, never a duplicate (a Done is written with the job instead).
    pub fn record(&self, watch: u64, file: FileId, entry: &Uploaded) -> Result<(), QueueError> {
        let bytes = serde_json::to_vec(entry).expect("index entries serialize");
        self.uploaded.insert(index_key(watch, file), bytes)?;
        Ok(())
    }

    /// Files recorded for a watch.
    pub fn uploaded_count(&self, watch: u64) -> usize {
        self.uploaded.scan_prefix(watch.to_be_bytes()).count()
    }
}

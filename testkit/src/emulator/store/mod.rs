//! The emulated Dropbox: files and folders with Dropbox's write rules (modes, autorename,
//! strict conflicts, identical content, missing parents, file ancestors, space), kept on disk
//! under the root so a restarted emulator still has them.
//!
//! Layout: `blobs/<rev>` holds each file's bytes, `index.json` the tree (written to a temporary
//! file, then renamed), `tmp/` bodies being received. The tree is keyed by `path_lower`, which
//! makes lookups case-insensitive while every item keeps the `path_display` it was created
//! with. Every change takes the next number of a sequence; list_folder cursors are positions in
//! that sequence, and removed items leave a tombstone carrying the number of their removal.
//!
//! Writers are serialized by one async lock (Dropbox has one write lock per namespace too); the
//! tree itself sits behind a std mutex that is never held across an await. Every write is on
//! disk (the blob renamed into `blobs/`, then `index.json` written) before its answer is sent;
//! `finish_batch_v2` commits all its entries under one hold of the lock ([`Batch`]) and writes
//! the index once for them all, before answering.

mod errors;
mod links;
mod metadata;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::paths::{self, Target};
use super::{EmulatorError, StoredFile, lock};

pub(crate) use errors::{
    CommitError, Conflict, CreateLinkError, DeleteError, LookupError, WriteError,
};
use links::Link;
pub(crate) use links::{LinkRefusal, Settings as LinkSettings};
pub(crate) use metadata::{Item, deleted_json, metadata_json, now_timestamp};
use metadata::{new_id, new_identity, new_rev};
pub(crate) use tree::State;
use tree::{Entry, FileInfo, FilePlan, Identity, Tombstone, plan_file};

/// The default space allocation: 2 TiB.
pub(crate) const DEFAULT_ALLOCATED: u64 = 2 * 1024 * 1024 * 1024 * 1024;

/// `index.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Persisted {
    version: u32,
    identity: Identity,
    seq: u64,
    entries: BTreeMap<String, Entry>,
    tombstones: BTreeMap<String, Tombstone>,
    #[serde(default)]
    links: BTreeMap<String, Link>,
}

/// [`Persisted`] written from borrowed state, without copying the tree.
#[derive(serde::Serialize)]
struct PersistedRef<'a> {
    version: u32,
    identity: &'a Identity,
    seq: u64,
    entries: &'a BTreeMap<String, Entry>,
    tombstones: &'a BTreeMap<String, Tombstone>,
    links: &'a BTreeMap<String, Link>,
}

/// Commits under one hold of the write lock, with one index write at the end. Until
/// [`Batch::finish`] the commits are visible in memory only: callers must finish before they
/// answer, so the index is on disk before anyone is told of them (and replaced blobs are
/// removed only after that, so the index on disk never names a missing blob).
pub(crate) struct Batch<'a> {
    store: &'a Store,
    _writer: tokio::sync::MutexGuard<'a, ()>,
    /// Whether the tree changed since the lock was taken.
    changed: bool,
    /// Blobs of revs the batch replaced, removed once the index no longer names them.
    replaced: Vec<String>,
}

impl Batch<'_> {
    /// Commits a file per `info`, as [`Store::commit_file`] but without writing the index.
    pub(crate) async fn commit_file(
        &mut self,
        info: &CommitInfo,
        content: Content<'_>,
    ) -> Result<Item, CommitError> {
        let store = self.store;
        let target = paths::parse(&info.path, true).map_err(WriteError::from)?;
        let plan = {
            let state = lock(&store.state);
            let components = state.write_components(target)?;
            plan_file(&state, info, &components, &content, store.allocated())?
        };
        let (key, display, replaced) = match plan {
            FilePlan::Unchanged(item) => return Ok(item),
            FilePlan::Write {
                key,
                display,
                replaced,
                missing,
            } => {
                // Folders first, so a failure to move the bytes leaves only harmless folders.
                if !missing.is_empty() {
                    lock(&store.state).create_folders(missing);
                    self.changed = true;
                }
                (key, display, replaced)
            }
        };
        let (item, rev) = {
            let mut state = lock(&store.state);
            let seq = state.next_seq();
            let rev = new_rev(seq);
            let id = state
                .entries
                .get(&key)
                .map_or_else(new_id, |e| e.id.clone());
            let now = now_timestamp();
            let entry = Entry {
                path_display: display,
                id,
                seq,
                file: Some(FileInfo {
                    rev: rev.clone(),
                    size: content.size,
                    content_hash: content.hash.to_owned(),
                    client_modified: info.client_modified.clone().unwrap_or_else(|| now.clone()),
                    server_modified: now,
                }),
            };
            (Item { key, entry }, rev)
        };
        // The sequence number moved on even if the rename fails, as it always did.
        self.changed = true;
        tokio::fs::rename(content.path, store.blob_path(&rev)).await?;
        lock(&store.state).insert(item.key.clone(), item.entry.clone());
        self.replaced.extend(replaced);
        Ok(item)
    }

    /// Writes the index if anything changed, then removes the replaced blobs, and releases
    /// the write lock.
    pub(crate) async fn finish(self) -> std::io::Result<()> {
        if self.changed {
            self.store.persist().await?;
        }
        if !self.replaced.is_empty() {
            let doomed: Vec<PathBuf> = self
                .replaced
                .iter()
                .map(|rev| self.store.blob_path(rev))
                .collect();
            let _ = tokio::task::spawn_blocking(move || {
                for path in doomed {
                    let _ = std::fs::remove_file(path);
                }
            })
            .await;
        }
        Ok(())
    }
}

/// `WriteMode`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Add,
    Overwrite,
    Update(String),
}

/// `CommitInfo`, with the path still raw (checked against its pattern only): path problems are
/// the route's 409, reported after the body has been received.
#[derive(Clone, Debug)]
pub(crate) struct CommitInfo {
    pub(crate) path: String,
    pub(crate) mode: Mode,
    pub(crate) autorename: bool,
    pub(crate) client_modified: Option<String>,
    pub(crate) strict_conflict: bool,
}

/// The bytes to commit: a file that the commit moves into place, with its size and hash.
pub(crate) struct Content<'a> {
    pub(crate) path: &'a Path,
    pub(crate) size: u64,
    pub(crate) hash: &'a str,
}

pub(crate) struct Store {
    blobs: PathBuf,
    tmp: PathBuf,
    index: PathBuf,
    state: Mutex<State>,
    /// Serializes writers: one namespace, one write lock.
    write: tokio::sync::Mutex<()>,
    allocated: AtomicU64,
}

impl Store {
    /// Opens the tree under `root`, creating an empty one (and a new identity) the first time.
    pub(crate) async fn open(root: &Path) -> Result<Store, EmulatorError> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        let index = root.join("index.json");
        let io = |path: &Path, action| {
            let path = path.to_owned();
            move |source| EmulatorError::Io {
                path,
                action,
                source,
            }
        };
        tokio::fs::create_dir_all(&blobs)
            .await
            .map_err(io(&blobs, "creating the blob directory"))?;
        // Leftovers of bodies that were being received when the last run stopped.
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(io(&tmp, "creating the temporary directory"))?;
        let persisted = match tokio::fs::read(&index).await {
            Ok(bytes) => serde_json::from_slice::<Persisted>(&bytes).map_err(|source| {
                EmulatorError::Corrupt {
                    path: index.clone(),
                    source,
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted {
                version: 1,
                identity: new_identity(),
                seq: 0,
                entries: BTreeMap::new(),
                tombstones: BTreeMap::new(),
                links: BTreeMap::new(),
            },
            Err(e) => return Err(io(&index, "reading the index")(e)),
        };
        let ids = persisted
            .entries
            .iter()
            .map(|(key, e)| (e.id.clone(), key.clone()))
            .collect();
        let used = persisted
            .entries
            .values()
            .filter_map(|e| e.file.as_ref().map(|f| f.size))
            .sum();
        let store = Store {
            blobs,
            tmp,
            index: index.clone(),
            state: Mutex::new(State {
                identity: persisted.identity,
                entries: persisted.entries,
                tombstones: persisted.tombstones,
                links: persisted.links,
                ids,
                seq: persisted.seq,
                used,
            }),
            write: tokio::sync::Mutex::new(()),
            allocated: AtomicU64::new(DEFAULT_ALLOCATED),
        };
        store
            .persist()
            .await
            .map_err(io(&index, "writing the index"))?;
        Ok(store)
    }

    /// Where request bodies are spooled.
    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub(crate) fn identity(&self) -> Identity {
        lock(&self.state).identity.clone()
    }

    pub(crate) fn used(&self) -> u64 {
        lock(&self.state).used
    }

    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    pub(crate) fn set_allocated(&self, bytes: u64) {
        self.allocated.store(bytes, Ordering::Relaxed);
    }

    /// Runs `f` over the tree (for listings); `f` must not block.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&lock(&self.state))
    }

    pub(crate) fn files(&self) -> Vec<StoredFile> {
        lock(&self.state)
            .entries
            .iter()
            .filter_map(|(key, entry)| {
                entry.file.as_ref().map(|file| StoredFile {
                    path_display: entry.path_display.clone(),
                    path_lower: key.clone(),
                    size: file.size,
                    content_hash: file.content_hash.clone(),
                    rev: file.rev.clone(),
                })
            })
            .collect()
    }

    /// The path of a file's bytes.
    fn blob_path(&self, rev: &str) -> PathBuf {
        self.blobs.join(rev)
    }

    /// Writes `index.json` through a temporary file. Callers hold the write lock, so the
    /// snapshot taken here is never older than one already written.
    async fn persist(&self) -> std::io::Result<()> {
        let bytes = {
            let state = lock(&self.state);
            serde_json::to_vec(&PersistedRef {
                version: 1,
                identity: &state.identity,
                seq: state.seq,
                entries: &state.entries,
                tombstones: &state.tombstones,
                links: &state.links,
            })
            .map_err(std::io::Error::other)?
        };
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = index.with_extension("json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &index)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Metadata for get_metadata: a live item, or with `include_deleted` a tombstone.
    pub(crate) fn metadata(
        &self,
        target: &Target,
        include_deleted: bool,
    ) -> Result<Value, LookupError> {
        let state = lock(&self.state);
        let key = state.resolve(target)?;
        if let Some(entry) = state.entries.get(&key) {
            return Ok(metadata_json(&key, entry, true));
        }
        match state.tombstones.get(&key) {
            Some(tombstone) if include_deleted => Ok(deleted_json(&key, tombstone)),
            _ => Err(LookupError::NotFound),
        }
    }

    /// Resolves a read path to its key, checking it names a folder (or the root).
    pub(crate) fn folder_key(&self, target: &Target) -> Result<String, LookupError> {
        let state = lock(&self.state);
        let key = state.resolve(target)?;
        match state.entries.get(&key) {
            _ if key.is_empty() => Ok(key),
            Some(entry) if entry.file.is_none() => Ok(key),
            Some(_) => Err(LookupError::NotFolder),
            None => Err(LookupError::NotFound),
        }
    }

    /// Commits a file per `info`. On success the content file has been moved into the store
    /// (unless identical content made the write unnecessary, in which case it is untouched),
    /// and the index is on disk.
    pub(crate) async fn commit_file(
        &self,
        info: &CommitInfo,
        content: Content<'_>,
    ) -> Result<Item, CommitError> {
        let mut batch = self.batch().await;
        let committed = batch.commit_file(info, content).await;
        let flushed = batch.finish().await;
        let item = committed?;
        flushed?;
        Ok(item)
    }

    /// Takes the write lock for several commits in a row that write the index once, at
    /// [`Batch::finish`] (`finish_batch_v2`: one index write per batch, not per entry).
    pub(crate) async fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            _writer: self.write.lock().await,
            changed: false,
            replaced: Vec::new(),
        }
    }

    /// `create_folder_v2`: creates the folder and any missing parents.
    pub(crate) async fn create_folder(
        &self,
        path: &str,
        autorename: bool,
    ) -> Result<Item, CommitError> {
        let target = paths::parse(path, true).map_err(WriteError::from)?;
        let _writer = self.write.lock().await;
        let item = {
            let mut state = lock(&self.state);
            let components = state.write_components(target)?;
            let (parent_display, missing) = state.ancestors(&components)?;
            let parent_key = paths::lower_key(&components[..components.len() - 1]);
            let mut name = components[components.len() - 1].clone();
            let mut key = paths::lower_key(&components);
            if let Some(existing) = state.entries.get(&key) {
                if !autorename {
                    let kind = if existing.file.is_some() {
                        Conflict::File
                    } else {
                        Conflict::Folder
                    };
                    return Err(WriteError::Conflict(kind).into());
                }
                name = state.free_name(&parent_key, &name, false);
                key = format!("{parent_key}/{}", name.to_lowercase());
            }
            state.create_folders(missing);
            let seq = state.next_seq();
            let entry = Entry {
                path_display: format!("{parent_display}/{name}"),
                id: new_id(),
                seq,
                file: None,
            };
            state.insert(key.clone(), entry.clone());
            Item { key, entry }
        };
        self.persist().await?;
        Ok(item)
    }

    /// `create_shared_link_with_settings`: a new public link, or why not.
    pub(crate) async fn create_link(
        &self,
        target: &Target,
        settings: &LinkSettings,
    ) -> Result<Value, CreateLinkError> {
        let _writer = self.write.lock().await;
        let created = {
            let mut state = lock(&self.state);
            let key = state.resolve(target).map_err(CreateLinkError::Lookup)?;
            let Some(entry) = state.entries.get(&key) else {
                return Err(CreateLinkError::Lookup(LookupError::NotFound));
            };
            if settings.invalid {
                return Err(CreateLinkError::Refused(LinkRefusal::InvalidSettings));
            }
            if settings.needs_paid_plan {
                return Err(CreateLinkError::Refused(LinkRefusal::NotAuthorized));
            }
            if state.links.contains_key(&key) {
                let existing = (!settings.given)
                    .then(|| state.link_metadata(&key))
                    .flatten();
                return Err(CreateLinkError::Refused(LinkRefusal::AlreadyExists(
                    existing,
                )));
            }
            let link = Link {
                url: links::new_url(paths::name_of(&entry.path_display), entry.file.is_none()),
            };
            let created = links::link_json(&key, entry, &link);
            state.links.insert(key, link);
            created
        };
        self.persist().await?;
        Ok(created)
    }

    /// `list_shared_links`: links to `target` (and its ancestors unless `direct_only`), or
    /// every link when no path is given.
    pub(crate) fn links(
        &self,
        target: Option<&Target>,
        direct_only: bool,
    ) -> Result<Vec<Value>, LookupError> {
        let state = lock(&self.state);
        let Some(target) = target else {
            return Ok(state.all_links());
        };
        let key = state.resolve(target)?;
        if !state.entries.contains_key(&key) {
            return Err(LookupError::NotFound);
        }
        Ok(state.links_for(&key, direct_only))
    }

    /// `delete_v2`: removes a file, or a folder with everything in it, leaving tombstones.
    pub(crate) async fn delete(
        &self,
        target: &Target,
        parent_rev: Option<&str>,
    ) -> Result<Item, DeleteError> {
        let _writer = self.write.lock().await;
        let (item, blobs) = {
            let mut state = lock(&self.state);
            let key = state.resolve(target).map_err(DeleteError::Lookup)?;
            if key.is_empty() {
                return Err(DeleteError::Lookup(LookupError::Malformed));
            }
            let item = state
                .item(&key)
                .ok_or(DeleteError::Lookup(LookupError::NotFound))?;
            match (&item.entry.file, parent_rev) {
                (None, Some(_)) => return Err(DeleteError::Lookup(LookupError::NotFile)),
                (Some(file), Some(rev)) if file.rev != rev => {
                    return Err(DeleteError::Write(WriteError::Conflict(Conflict::File)));
                }
                _ => {}
            }
            let below = format!("{key}/");
            let doomed: Vec<String> = std::iter::once(key.clone())
                .chain(
                    state
                        .entries
                        .range(below.clone()..)
                        .take_while(|(k, _)| k.starts_with(&below))
                        .map(|(k, _)| k.clone()),
                )
                .collect();
            let mut blobs = Vec::new();
            for key in doomed {
                if let Some(entry) = state.entries.remove(&key) {
                    state.ids.remove(&entry.id);
                    state.links.remove(&key);
                    if let Some(file) = &entry.file {
                        state.used = state.used.saturating_sub(file.size);
                        blobs.push(file.rev.clone());
                    }
                    let seq = state.next_seq();
                    state.tombstones.insert(
                        key,
                        Tombstone {
                            path_display: entry.path_display,
                            seq,
                        },
                    );
                }
            }
            (item, blobs)
        };
        for rev in blobs {
            let _ = tokio::fs::remove_file(self.blob_path(&rev)).await;
        }
        self.persist().await?;
        Ok(item)
    }
}

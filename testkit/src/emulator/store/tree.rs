//! The tree and Dropbox's rules over it: items keyed by `path_lower` (so lookups are
//! case-insensitive while each item keeps the `path_display` it was created with), ancestors
//! that must be folders, autorename's free names, and the decision a commit takes (write,
//! conflict, or nothing at all for identical content). Pure in-memory logic: the caller holds
//! the locks and does the file I/O.

use std::collections::{BTreeMap, HashMap};

use super::errors::{Conflict, LookupError, WriteError};
use super::links::Link;
use super::metadata::{Item, new_id};
use super::{CommitInfo, Content, Mode};
use crate::emulator::paths::{self, Target};

/// An item of the tree. A folder has no `file`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Entry {
    pub(crate) path_display: String,
    pub(crate) id: String,
    /// The sequence number of the item's last change.
    pub(crate) seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<FileInfo>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileInfo {
    pub(crate) rev: String,
    pub(crate) size: u64,
    pub(crate) content_hash: String,
    pub(crate) client_modified: String,
    pub(crate) server_modified: String,
}

/// What is left of a removed item, for `deleted` entries in listings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tombstone {
    pub(crate) path_display: String,
    pub(crate) seq: u64,
}

/// Who the emulated account is; fixed when the root is created.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    /// Changes whenever a root is created, so cursors from another root are refused.
    pub(crate) epoch: String,
    pub(crate) account_id: String,
    pub(crate) namespace_id: String,
    pub(crate) uid: String,
}

/// The tree, keyed by `path_lower`.
pub(crate) struct State {
    pub(crate) identity: Identity,
    pub(crate) entries: BTreeMap<String, Entry>,
    pub(crate) tombstones: BTreeMap<String, Tombstone>,
    /// `id:…` → `path_lower`.
    pub(super) ids: HashMap<String, String>,
    /// The last sequence number handed out.
    pub(crate) seq: u64,
    /// Bytes in all files.
    pub(super) used: u64,
    /// Shared links, by the `path_lower` of the item.
    pub(super) links: BTreeMap<String, Link>,
}

impl State {
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Finds the key a read path points at.
    pub(super) fn resolve(&self, target: &Target) -> Result<String, LookupError> {
        match target {
            Target::Root => Ok(String::new()),
            Target::Path(components) => Ok(paths::lower_key(components)),
            Target::Id(id) => self.ids.get(id).cloned().ok_or(LookupError::NotFound),
            Target::Rev(rev) => self
                .entries
                .iter()
                .find(|(_, e)| e.file.as_ref().is_some_and(|f| &f.rev == rev))
                .map(|(key, _)| key.clone())
                .ok_or(LookupError::NotFound),
            Target::Ns(ns, below) if *ns == self.identity.namespace_id => {
                if below.is_empty() {
                    Ok(String::new())
                } else {
                    paths::components(below, false)
                        .map(|c| paths::lower_key(&c))
                        .map_err(|_| LookupError::Malformed)
                }
            }
            Target::Ns(..) => Err(LookupError::NotFound),
        }
    }

    /// The components (display case as written) a write path points at.
    pub(super) fn write_components(&self, target: Target) -> Result<Vec<String>, WriteError> {
        match target {
            Target::Path(components) if !components.is_empty() => Ok(components),
            Target::Id(id) => {
                let key = self.ids.get(&id).ok_or(WriteError::Malformed)?;
                let entry = self.entries.get(key).ok_or(WriteError::Malformed)?;
                paths::components(&entry.path_display, false).map_err(|_| WriteError::Malformed)
            }
            Target::Ns(ns, below) if ns == self.identity.namespace_id && !below.is_empty() => {
                paths::components(&below, true).map_err(WriteError::from)
            }
            _ => Err(WriteError::Malformed),
        }
    }

    /// Walks the ancestors of `components`: fails on a file in the way, else returns the
    /// display path of the parent (existing ancestors keep their stored case) and the folders
    /// that must be created, as (key, display) from the top down.
    pub(super) fn ancestors(
        &self,
        components: &[String],
    ) -> Result<(String, Vec<(String, String)>), WriteError> {
        let mut display = String::new();
        let mut missing = Vec::new();
        for i in 0..components.len().saturating_sub(1) {
            let key = paths::lower_key(&components[..=i]);
            match self.entries.get(&key) {
                Some(entry) if entry.file.is_some() => {
                    return Err(WriteError::Conflict(Conflict::FileAncestor));
                }
                Some(entry) => display = entry.path_display.clone(),
                None => {
                    display = format!("{display}/{}", components[i]);
                    missing.push((key, display.clone()));
                }
            }
        }
        Ok((display, missing))
    }

    /// The first free name for an autorenamed item in `parent`.
    pub(super) fn free_name(&self, parent_key: &str, name: &str, conflicted_copy: bool) -> String {
        (1..)
            .map(|n| paths::renamed(name, n, conflicted_copy))
            .find(|candidate| {
                let key = format!("{parent_key}/{}", candidate.to_lowercase());
                !self.entries.contains_key(&key)
            })
            .unwrap_or_else(|| name.to_owned())
    }

    pub(super) fn insert(&mut self, key: String, entry: Entry) {
        if let Some(file) = &entry.file {
            self.used += file.size;
        }
        self.tombstones.remove(&key);
        self.ids.insert(entry.id.clone(), key.clone());
        if let Some(old) = self.entries.insert(key, entry)
            && let Some(file) = old.file
        {
            self.used = self.used.saturating_sub(file.size);
        }
    }

    pub(super) fn create_folders(&mut self, missing: Vec<(String, String)>) {
        for (key, display) in missing {
            let seq = self.next_seq();
            self.insert(
                key,
                Entry {
                    path_display: display,
                    id: new_id(),
                    seq,
                    file: None,
                },
            );
        }
    }

    pub(super) fn item(&self, key: &str) -> Option<Item> {
        self.entries.get(key).map(|entry| Item {
            key: key.to_owned(),
            entry: entry.clone(),
        })
    }
}

pub(super) enum FilePlan {
    /// Identical content already there: nothing is written, the existing metadata returns.
    Unchanged(Item),
    Write {
        key: String,
        display: String,
        /// The rev whose blob the write replaces.
        replaced: Option<String>,
        /// Parent folders to create first.
        missing: Vec<(String, String)>,
    },
}

/// Dropbox's conflict rules for one commit (reference §3.1, WriteMode).
pub(super) fn plan_file(
    state: &State,
    info: &CommitInfo,
    components: &[String],
    content: &Content<'_>,
    allocated: u64,
) -> Result<FilePlan, WriteError> {
    let (parent_display, missing) = state.ancestors(components)?;
    let parent_key = paths::lower_key(&components[..components.len() - 1]);
    let name = &components[components.len() - 1];
    let key = paths::lower_key(components);
    let is_update = matches!(info.mode, Mode::Update(_));
    let conflict = match state.entries.get(&key) {
        None if is_update && info.strict_conflict => Some(Conflict::File),
        None => None,
        Some(existing) => match &existing.file {
            None => Some(Conflict::Folder),
            Some(file) if file.content_hash == content.hash => {
                if info.strict_conflict {
                    Some(Conflict::File)
                } else {
                    return Ok(FilePlan::Unchanged(Item {
                        key,
                        entry: existing.clone(),
                    }));
                }
            }
            Some(file) => match &info.mode {
                Mode::Add => Some(Conflict::File),
                Mode::Overwrite => None,
                Mode::Update(rev) if *rev == file.rev => None,
                Mode::Update(_) => Some(Conflict::File),
            },
        },
    };
    let (key, display) = match conflict {
        None => {
            // Overwriting keeps the stored name's case; only a new item takes the request's.
            let display = state.entries.get(&key).map_or_else(
                || format!("{parent_display}/{name}"),
                |e| e.path_display.clone(),
            );
            (key, display)
        }
        Some(kind) if !info.autorename => return Err(WriteError::Conflict(kind)),
        Some(_) => {
            let name = state.free_name(&parent_key, name, is_update);
            (
                format!("{parent_key}/{}", name.to_lowercase()),
                format!("{parent_display}/{name}"),
            )
        }
    };
    let replaced = state
        .entries
        .get(&key)
        .and_then(|e| e.file.as_ref())
        .map(|f| (f.rev.clone(), f.size));
    let used_after = state.used - replaced.as_ref().map_or(0, |(_, size)| *size) + content.size;
    if used_after > allocated {
        return Err(WriteError::InsufficientSpace);
    }
    Ok(FilePlan::Write {
        key,
        display,
        replaced: replaced.map(|(rev, _)| rev),
        missing,
    })
}

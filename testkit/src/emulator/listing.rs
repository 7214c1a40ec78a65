//! `list_folder` and `list_folder/continue`: a listing in pages of `limit` entries, then the
//! changes since the listing. A cursor is an opaque string that carries everything needed to
//! resume (folder, flags, page size, and a position in the store's change sequence), so it
//! survives emulator restarts; one from another root, or one that does not decode, is `reset`.

use std::ops::Bound;

use base64::Engine;
use serde_json::Value;

use super::paths;
use super::store::{State, deleted_json, metadata_json};

/// What a cursor remembers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    /// The store's epoch: cursors from another root are refused.
    e: String,
    /// The listed folder's `path_lower` (`""` for the root).
    p: String,
    r: bool,
    /// include_deleted, for the listing phase (changes always report removals).
    d: bool,
    l: u32,
    /// The change number the listing was taken at, or the last change reported.
    s: u64,
    /// In the listing phase, the key after which the next page starts; absent once the client
    /// has the whole listing and only changes remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
}

/// Default page size when the client gives no `limit`.
pub(crate) const DEFAULT_LIMIT: u32 = 2000;

pub(crate) struct Listing {
    pub(crate) entries: Vec<Value>,
    pub(crate) cursor: String,
    pub(crate) has_more: bool,
}

impl Listing {
    pub(crate) fn json(self) -> Value {
        serde_json::json!({
            "entries": self.entries,
            "cursor": self.cursor,
            "has_more": self.has_more,
        })
    }
}

/// The first page of a listing of the folder `base` (already known to be a folder).
pub(crate) fn start(
    state: &State,
    base: String,
    recursive: bool,
    include_deleted: bool,
    limit: u32,
) -> Listing {
    let cursor = Cursor {
        e: state.identity.epoch.clone(),
        p: base,
        r: recursive,
        d: include_deleted,
        l: limit,
        s: state.seq,
        a: Some(String::new()),
    };
    page(state, cursor)
}

/// The next page for `cursor`, or `None` if the cursor is not one of ours (`reset`).
pub(crate) fn resume(state: &State, cursor: &str) -> Option<Listing> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
    if cursor.e != state.identity.epoch || cursor.s > state.seq || cursor.l == 0 {
        return None;
    }
    Some(page(state, cursor))
}

fn in_scope(key: &str, base: &str, recursive: bool) -> bool {
    // A recursive listing of a folder includes the folder itself.
    (recursive && !base.is_empty() && key == base) || paths::is_under(key, base, recursive)
}

fn page(state: &State, mut cursor: Cursor) -> Listing {
    let limit = cursor.l as usize;
    let (entries, has_more) = match cursor.a.take() {
        Some(after) => {
            let (entries, next) = listing_page(state, &cursor, &after, limit);
            match next {
                Some(last) => {
                    cursor.a = Some(last);
                    (entries, true)
                }
                None => (entries, false),
            }
        }
        None => {
            let (entries, last_seq) = changes_page(state, &cursor, limit);
            match last_seq {
                Some(seq) => {
                    cursor.s = seq;
                    (entries, true)
                }
                None => {
                    cursor.s = state.seq;
                    (entries, false)
                }
            }
        }
    };
    Listing {
        entries,
        cursor: encode(&cursor),
        has_more,
    }
}

/// Entries after `after` in key order; returns the last key if more remain.
fn listing_page(
    state: &State,
    cursor: &Cursor,
    after: &str,
    limit: usize,
) -> (Vec<Value>, Option<String>) {
    let range = (Bound::Excluded(after.to_owned()), Bound::Unbounded);
    let mut items: Vec<(&String, Value)> = state
        .entries
        .range::<String, _>(range.clone())
        .filter(|(key, _)| in_scope(key, &cursor.p, cursor.r))
        .map(|(key, entry)| (key, metadata_json(key, entry, true)))
        .collect();
    if cursor.d {
        items.extend(
            state
                .tombstones
                .range::<String, _>(range)
                .filter(|(key, _)| in_scope(key, &cursor.p, cursor.r))
                .map(|(key, tombstone)| (key, deleted_json(key, tombstone))),
        );
        items.sort_by(|a, b| a.0.cmp(b.0));
    }
    if items.len() > limit {
        items.truncate(limit);
        let last = items.last().map(|(key, _)| (*key).clone());
        (items.into_iter().map(|(_, v)| v).collect(), last)
    } else {
        (items.into_iter().map(|(_, v)| v).collect(), None)
    }
}

/// Changes after `cursor.s` in change order; returns the last change number if more remain.
fn changes_page(state: &State, cursor: &Cursor, limit: usize) -> (Vec<Value>, Option<u64>) {
    let mut changes: Vec<(u64, Value)> = state
        .entries
        .iter()
        .filter(|(key, entry)| entry.seq > cursor.s && in_scope(key, &cursor.p, cursor.r))
        .map(|(key, entry)| (entry.seq, metadata_json(key, entry, true)))
        .chain(
            state
                .tombstones
                .iter()
                .filter(|(key, t)| t.seq > cursor.s && in_scope(key, &cursor.p, cursor.r))
                .map(|(key, t)| (t.seq, deleted_json(key, t))),
        )
        .collect();
    changes.sort_by_key(|(seq, _)| *seq);
    if changes.len() > limit {
        changes.truncate(limit);
        let last = changes.last().map(|(seq, _)| *seq);
        (changes.into_iter().map(|(_, v)| v).collect(), last)
    } else {
        (changes.into_iter().map(|(_, v)| v).collect(), None)
    }
}

fn encode(cursor: &Cursor) -> String {
    // Serializing this plain struct cannot fail.
    let json = serde_json::to_vec(cursor).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

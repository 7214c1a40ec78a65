//! How items look on the wire (Metadata with or without `.tag`, DeletedMetadata) and the
//! identifiers Dropbox hands out: `id:` + 22 url-safe characters, 31-hex-digit revs,
//! `dbid:` account ids, whole-second UTC timestamps.

use std::time::SystemTime;

use base64::Engine;
use rand::{Rng, RngCore};
use serde_json::{Value, json};

use super::tree::{Entry, Identity, Tombstone};
use crate::emulator::paths;

/// A snapshot of one item, to answer with.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) key: String,
    pub(crate) entry: Entry,
}

impl Item {
    /// The item's Metadata. `tagged` when the route declares `Metadata` (get_metadata,
    /// list_folder, delete_v2); untagged when it declares the subtype (upload, finish,
    /// create_folder_v2).
    pub(crate) fn json(&self, tagged: bool) -> Value {
        metadata_json(&self.key, &self.entry, tagged)
    }
}

pub(crate) fn metadata_json(key: &str, entry: &Entry, tagged: bool) -> Value {
    let name = paths::name_of(&entry.path_display);
    let mut value = match &entry.file {
        Some(file) => json!({
            "name": name,
            "path_lower": key,
            "path_display": entry.path_display,
            "id": entry.id,
            "client_modified": file.client_modified,
            "server_modified": file.server_modified,
            "rev": file.rev,
            "size": file.size,
            "is_downloadable": true,
            "content_hash": file.content_hash,
        }),
        None => json!({
            "name": name,
            "path_lower": key,
            "path_display": entry.path_display,
            "id": entry.id,
        }),
    };
    if tagged && let Value::Object(map) = &mut value {
        let tag = if entry.file.is_some() {
            "file"
        } else {
            "folder"
        };
        map.insert(".tag".into(), Value::String(tag.into()));
    }
    value
}

pub(crate) fn deleted_json(key: &str, tombstone: &Tombstone) -> Value {
    json!({
        ".tag": "deleted",
        "name": paths::name_of(&tombstone.path_display),
        "path_lower": key,
        "path_display": tombstone.path_display,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for now.
pub(crate) fn now_timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `id:` + 22 url-safe characters.
pub(super) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "id:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// 31 lowercase hex digits: the change number first (so revs sort by age, like Dropbox's),
/// then randomness.
pub(super) fn new_rev(seq: u64) -> String {
    let noise: u128 = rand::rng().random::<u128>() & ((1u128 << 88) - 1);
    format!("{:09x}{noise:022x}", seq & 0xf_ffff_ffff)
}

pub(super) fn new_identity() -> Identity {
    let mut rng = rand::rng();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let account: String = (0..35)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Identity {
        epoch: format!("{:016x}", rng.random::<u64>()),
        account_id: format!("dbid:{account}"),
        namespace_id: rng
            .random_range(1_000_000_000u64..10_000_000_000)
            .to_string(),
        uid: rng.random_range(100_000_000u64..1_000_000_000).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_dropbox_shapes() {
        let id = new_id();
        assert_eq!(id.len(), 3 + 22);
        assert!(
            id[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let rev = new_rev(42);
        assert_eq!(rev.len(), 31);
        assert!(
            rev.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(rev.starts_with("00000002a"));
        let identity = new_identity();
        assert_eq!(identity.account_id.len(), 40);
        assert!(identity.account_id.starts_with("dbid:"));
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        let now = now_timestamp();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && !now.contains('.'));
    }
}

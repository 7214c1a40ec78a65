//! How the queue's records sit in sled: keys, the encoding of a record, the id counter, and how
//! many records go into one sled batch.

use super::{QueueError, Result};

/// Job records per sled batch when a batch of jobs is written. One sled batch of 20,000
/// records kept about 6.6 KB of memory per record for as long as the daemon ran; batches of
/// about a hundred cost what single inserts do (BENCHMARKS.md, "Memory at scale").
pub(super) const WRITE_CHUNK: usize = 128;

const NEXT_ID_KEY: &[u8] = b"next_id";

/// The first id above every id in use: the stored counter, and the highest key of each tree
/// keyed by id (a counter lost in a crash must not hand out an id again).
pub(super) fn first_free_id(meta: &sled::Tree, trees: &[&sled::Tree]) -> Result<u64> {
    let mut next = match meta.get(NEXT_ID_KEY)? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .as_ref()
                .try_into()
                .map_err(|_| QueueError::Corrupt("the id counter is not 8 bytes".into()))?,
        ),
        // Ids start at 1: 0 reads like "none".
        None => 1,
    };
    for tree in trees {
        if let Some((k, _)) = tree.last()?
            && let Ok(bytes) = <[u8; 8]>::try_from(k.as_ref())
        {
            next = next.max(u64::from_be_bytes(bytes).saturating_add(1));
        }
    }
    Ok(next)
}

/// Records that the ids below `next` are taken. Written with the records that use them and
/// flushed with them: after a crash the highest key still on disk (see `first_free_id`)
/// covers what the counter lost.
pub(super) fn set_next_id(meta: &sled::Tree, next: u64) -> Result<()> {
    meta.insert(NEXT_ID_KEY, &next.to_be_bytes())?;
    Ok(())
}

pub(super) fn key(id: u64) -> [u8; 8] {
    // Big-endian so that sled's key order is numeric order.
    id.to_be_bytes()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt(e.to_string()))
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("queue records serialize")
}

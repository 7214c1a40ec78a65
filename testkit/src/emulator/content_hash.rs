//! Dropbox's `content_hash`, as the server computes it: SHA-256 over the concatenated raw
//! SHA-256 digests of each 4 MiB block of a file.
//!
//! The emulator stands for the server, so it has its own implementation rather than the
//! product's `dropbox::content_hash`: a mistake in the client's hasher must show as a hash
//! mismatch in the tests, not be repeated here unnoticed (ARCHITECTURE.md, "Module layers": the
//! test kit's emulator imports nothing from the product).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Dropbox hashes files in blocks of this many bytes.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// The raw SHA-256 digest of one block.
pub type BlockDigest = [u8; 32];

/// The content hash made of a file's block digests, in file order.
pub fn from_block_digests<'a>(digests: impl IntoIterator<Item = &'a BlockDigest>) -> String {
    let mut overall = Sha256::new();
    for digest in digests {
        overall.update(digest);
    }
    overall
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The content hash of bytes held in memory.
pub fn content_hash(data: &[u8]) -> String {
    let digests: Vec<BlockDigest> = data
        .chunks(BLOCK_SIZE)
        .map(|block| Sha256::digest(block).into())
        .collect();
    from_block_digests(&digests)
}

/// The content hash of a file, read one whole block at a time (blocking: the callers run it
/// on the blocking pool).
pub fn content_hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut block = vec![0u8; BLOCK_SIZE];
    let mut digests = Vec::new();
    loop {
        // `read` may return less than asked before the end; a block is only complete when
        // full or at the end of the file.
        let mut filled = 0;
        while filled < BLOCK_SIZE {
            let n = file.read(&mut block[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(from_block_digests(&digests));
        }
        digests.push(Sha256::digest(&block[..filled]).into());
        if filled < BLOCK_SIZE {
            return Ok(from_block_digests(&digests));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's hash and the client's (the product's `ContentHasher`, an independent
    /// implementation) agree across block boundaries (and for an empty file, which has no block),
    /// in memory and from a file.
    #[test]
    fn agrees_with_the_client_across_block_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            2 * BLOCK_SIZE + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let client = dbxport::dropbox::content_hash::content_hash(&data);
            assert_eq!(content_hash(&data), client, "{len} bytes");
            let path = dir.path().join(format!("{len}"));
            std::fs::write(&path, &data).expect("write");
            assert_eq!(
                content_hash_file(&path).expect("read"),
                client,
                "{len} bytes"
            );
        }
    }
}

//! Dropbox's `content_hash`: SHA-256 over the concatenated raw SHA-256 digests of each 4 MiB
//! block. It is how a job proves it is Done (ARCHITECTURE.md, invariant 4): the hash of the exact bytes
//! sent must equal the one in the metadata Dropbox returns.
//!
//! The hasher is incremental so that the engine can hash chunks as it reads them, whatever their
//! size, without holding a whole file in memory.

use sha2::{Digest, Sha256};

/// Dropbox hashes files in blocks of this many bytes.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental content hasher; feed it bytes in any pieces, then call [`ContentHasher::finish`].
#[derive(Clone, Default)]
pub struct ContentHasher {
    /// SHA-256 over the digests of the completed blocks.
    overall: Sha256,
    /// SHA-256 of the block being filled.
    block: Sha256,
    /// Bytes already in `block`.
    block_len: usize,
}

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.overall.update(digest);
        self.block_len = 0;
    }

    /// The content hash as 64 lowercase hex characters.
    pub fn finish(mut self) -> String {
        if self.block_len > 0 {
            self.close_block();
        }
        hex(&self.overall.finalize())
    }
}

/// The raw SHA-256 digest of one block.
pub type BlockDigest = [u8; 32];

/// The digests of `data`'s 4 MiB blocks (the last may be shorter). For a chunk that starts on a
/// block boundary these are the file's own block digests there, so chunks hashed in any order,
/// in parallel, give the file's hash through [`from_block_digests`] without a second read.
pub fn block_digests(data: &[u8]) -> Vec<BlockDigest> {
    data.chunks(BLOCK_SIZE)
        .map(|block| Sha256::digest(block).into())
        .collect()
}

/// The content hash of a file (or chunk) from its block digests, in order.
pub fn from_block_digests<'a>(digests: impl IntoIterator<Item = &'a BlockDigest>) -> String {
    let mut overall = Sha256::new();
    for digest in digests {
        overall.update(digest);
    }
    hex(&overall.finalize())
}

/// The content hash of a byte slice held in memory.
pub fn content_hash(data: &[u8]) -> String {
    let mut hasher = ContentHasher::new();
    hasher.update(data);
    hasher.finish()
}

/// The content hash of a file, read in blocks (blocking: call it from the blocking pool).
pub fn content_hash_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Dropbox's content-hash reference (developers/reference/content-hash), cross-checked against the Python SDK.
    #[test]
    fn reference_vectors() {
        let pattern: Vec<u8> = (0..4_194_305usize).map(|i| (i % 256) as u8).collect();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                vec![],
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"hello world".to_vec(),
                "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423",
            ),
            (
                vec![0; 4_194_304],
                "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58",
            ),
            (
                vec![0; 4_194_305],
                "14a4d47f23a30177885d9820122f17d2d3a55fe63f7f5c27b95f689e0b2accd6",
            ),
            (
                pattern,
                "9eb62f609dee341fdcc4521fd6d5a78d9e5c5bb36d844618d9e8d1b32f28ba95",
            ),
            (
                vec![0; 8_388_608],
                "03ae066c707c588592d9e27aa2444ca98423e0999024f1ceaa11a153790b37de",
            ),
            (
                b"A".to_vec(),
                "1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42",
            ),
            (
                vec![b'A'; 4_194_305],
                "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(content_hash(&data), want, "input of {} bytes", data.len());
            // The same bytes fed in odd-sized pieces must give the same hash.
            let mut hasher = ContentHasher::new();
            for piece in data.chunks(1_000_003) {
                hasher.update(piece);
            }
            assert_eq!(
                hasher.finish(),
                want,
                "pieces of input of {} bytes",
                data.len()
            );
        }
    }

    #[test]
    fn not_plain_sha256() {
        // The plain SHA-256 of "hello world" is b94d27…; a content hash must differ.
        assert!(!content_hash(b"hello world").starts_with("b94d27"));
    }

    #[test]
    fn block_digests_of_chunks_give_the_file_hash() {
        let data: Vec<u8> = (0..(2 * BLOCK_SIZE + 12345))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let mut digests = block_digests(&data[BLOCK_SIZE..]);
        let first = block_digests(&data[..BLOCK_SIZE]);
        digests.splice(0..0, first);
        assert_eq!(digests.len(), 3);
        assert_eq!(from_block_digests(&digests), content_hash(&data));
        assert_eq!(
            from_block_digests(&block_digests(&data[..100])),
            content_hash(&data[..100])
        );
        assert_eq!(from_block_digests(&[]), content_hash(&[]));
    }
}

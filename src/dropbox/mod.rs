pub mod content_hash;

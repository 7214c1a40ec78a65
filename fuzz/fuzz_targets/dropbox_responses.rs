//! Fuzz target `dropbox_responses`: arbitrary bytes as every Dropbox answer the client decodes: 2xx results, error statuses, 409 unions, the token endpoint, unknown tags.
//! The checks live in `dbxport_fuzz::dropbox_responses` (`src/lib.rs`, over dbxport's public API),
//! shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport_fuzz::dropbox_responses(data));

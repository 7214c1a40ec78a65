//! Fuzz target `paths`: arbitrary text as Dropbox folders and names: validation never panics and is stable, remote names stay valid.
//! The checks live in `dbxport_fuzz::paths` (`src/lib.rs`, over dbxport's public API),
//! shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport_fuzz::paths(data));

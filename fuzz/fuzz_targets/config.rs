//! Fuzz target `config`: arbitrary text as config.toml: parsing never panics, and what parses writes back as TOML that parses to the same config.
//! The checks live in `dbxport_fuzz::config` (`src/lib.rs`, over dbxport's public API),
//! shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport_fuzz::config(data));

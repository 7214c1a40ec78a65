//! Fuzz target `config`: arbitrary text as config.toml: parsing never panics, and what parses writes back as TOML that parses to the same config.
//! The checks live in `dbxport::fuzzing::config`, shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport::fuzzing::config(data));

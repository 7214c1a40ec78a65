//! Fuzz target `api_arg`: arbitrary text in every upload argument: the Dropbox-API-Arg header value is printable ASCII and decodes to the same argument.
//! The checks live in `dbxport_fuzz::api_arg` (`src/lib.rs`, over dbxport's public API),
//! shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport_fuzz::api_arg(data));

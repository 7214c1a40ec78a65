//! Fuzz target `api_arg`: arbitrary text in every upload argument: the Dropbox-API-Arg header value is printable ASCII and decodes to the same argument.
//! The checks live in `dbxport::fuzzing::api_arg`, shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dbxport::fuzzing::api_arg(data));

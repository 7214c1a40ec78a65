//! Fuzz target `prepare`: mutated photos (JPEG, PNG, WebP, TIFF) through prepare: resize to
//! 64 px and strip the location, then strip an original.
//! The checks live in `dbxport_fuzz::prepare` (`src/lib.rs`, over dbxport's public API),
//! shared with the regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libfuzzer-sys's panic hook aborts on every panic, even a caught one; the scaled JPEG
        // decode catches a decoder panic on purpose and falls back to the strict decoder. With
        // the default hook back, only a panic that escapes `prepare` is a crash (libfuzzer-sys
        // aborts on it after the unwind), and its message is still printed.
        drop(std::panic::take_hook());
    },
    |data: &[u8]| dbxport_fuzz::prepare(data)
);

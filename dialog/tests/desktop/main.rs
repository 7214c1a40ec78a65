//! The real export dialog as a person uses it: `dbxport-export` under Xvfb, on the test kit's
//! sandbox (a private bus, the real daemon, the emulated Dropbox), driven through the
//! accessibility tree (AT-SPI, from `drive.py` with python3-pyatspi), never through test-only
//! hooks. The screenshots it takes go to `target/tmp/dialog-shots/` (the README's come from
//! there).

mod helper;
mod scenarios;

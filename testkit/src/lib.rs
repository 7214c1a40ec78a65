//! dbxport's test kit: what the tests, the benchmarks and `dbxportctl demo` need to run dbxport
//! for real without Dropbox or the user's session, kept out of the product (ARCHITECTURE.md,
//! "Module layers": this crate depends on `dbxport`, never the other way round).
//!
//! - [`emulator`]: a faithful Dropbox API v2 emulator on 127.0.0.1. It imports nothing from
//!   the product (it stands for the server, so it has its own path rules and content hash).
//!   Its network model (latency, upload bandwidth, a per-token rate limit, the namespace lock)
//!   is off unless a test or `dbxportctl emulator` turns it on.
//! - [`sandbox`]: a private dbus-daemon, the emulator and the real `dbxportd` together in one
//!   directory, logged in.
//! - [`cli`]: the `dbxport-testkit` binary's commands, `demo` and `emulator`, which
//!   `dbxportctl demo` and `dbxportctl emulator` run.
//! - [`system_test`]: the attribute every system and engine test runs under (a multi-threaded
//!   runtime with two workers), from `dbxport-testkit-macros`.

pub mod cli;
pub mod emulator;
pub mod sandbox;

pub use dbxport_testkit_macros::system_test;

//! dbxport: export photos to Dropbox from a Linux desktop.
//!
//! ARCHITECTURE.md (at the top of the repository) is the map: how a photo travels, a job's
//! states, the invariants and what each module may import.
//!
//! The crate is a library with two thin binaries: `dbxportd` (the user service that owns the
//! upload queue and the Dropbox session) and `dbxportctl` (a CLI that talks to it over D-Bus).
//! The major components:
//!
//! - [`config`]: `config.toml` and the XDG directories.
//! - [`queue`]: the persistent (sled) queue of jobs and batches, and a job's state machine.
//! - [`dropbox`]: a typed client for the Dropbox API v2 routes dbxport uses, one module per
//!   route family (ARCHITECTURE.md, "Inside `dropbox`").
//! - [`prepare`]: turns a source file into what is uploaded: the original, or a resized JPEG
//!   that keeps its metadata; optionally without its location.
//! - [`export`]: the export options (preparation, conflict policy, shared link) as data.
//! - [`intake`]: how files handed over (by `Upload`, a watch, any caller) become jobs.
//! - [`spool`]: files handed over as open descriptors (`UploadFds`), copied into a folder
//!   the daemon owns until they are uploaded.
//! - [`template`]: folder templates (`/Photos/{year}/{date}`), checked when given and
//!   expanded per photo when its job is made.
//! - [`profile`]: named export profiles (`[profiles.NAME]`): a folder and export options
//!   under one name, with the caller's explicit options over them.
//! - [`engine`]: takes jobs from the queue and uploads them, with retries and verification,
//!   and summarizes batches as they end (its parts: ARCHITECTURE.md, "The engine").
//! - [`folders`]: the one `list_folder` pager every caller uses, and the folder picker's
//!   listing and folder creation (the `Folders` D-Bus interface only converts).
//! - [`credentials`]: the Dropbox login — browser login with PKCE, where the refresh token
//!   rests (keyring or file), and the access token's refresh.
//! - [`watch`]: watched folders: new photos export themselves, once, and only what lies in
//!   the folder (no link followed, nothing half-written).
//! - [`service`]: the D-Bus interfaces on the session bus (Uploader, Account, Folders,
//!   Watches).
//! - [`policy`]: when automatic (watch-folder) uploads wait: metered connection, battery.
//! - [`jobtray`]: transfers in Plasma's job tray; [`notifications`]: the desktop notification
//!   at a batch's end, with its actions.
//! - [`secret`]: a string that never prints (tokens); [`logging`]: the daemon's log lines;
//!   [`os_path`]: paths of any bytes in the database's JSON records.
//! - [`daemon`]: `dbxportd` assembled from the parts above.
//! - [`cli`]: the `dbxportctl` commands.
//!
//! Not in this crate: the Dropbox emulator and the sandbox (bus + emulator + daemon in one
//! private directory) live in the test kit (`testkit/`, crate `dbxport-testkit`), which
//! depends on this library and is never depended on by it; `dbxportctl demo` and `dbxportctl
//! emulator` run its binary. The fuzz targets (`fuzz/`) use this library's public API.

pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod dropbox;
pub mod engine;
pub mod export;
pub mod folders;
pub mod intake;
pub mod jobtray;
pub mod logging;
pub mod notifications;
pub mod os_path;
pub mod policy;
pub mod prepare;
pub mod profile;
pub mod queue;
pub mod secret;
pub mod service;
pub mod spool;
pub mod template;
pub mod watch;

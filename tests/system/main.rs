//! Whole-system tests: the real `dbxportd` and `dbxportctl` binaries on a private
//! `dbus-daemon`, against the test kit's Dropbox emulator (`dbxport-testkit`) on 127.0.0.1,
//! each test in its own directory with its own XDG dirs. One test binary (one link step),
//! helpers in `helper`.

mod helper;

mod account;
mod activation;
mod architecture;
mod bad_input;
mod batches;
mod collisions;
mod commits;
mod config_cli;
mod conflicts;
mod crash;
mod ctl_output;
mod ctl_scripts;
mod ctl_words;
mod darktable;
mod destinations;
mod durability;
mod end_to_end;
mod faults;
mod file_managers;
mod folders;
mod hostile_caller;
mod hostile_dropbox;
mod install;
mod interface;
mod jobtray;
mod keyring;
mod limits;
mod login;
mod memory;
mod notices;
mod peer;
mod photo_apps;
mod policies;
mod prepare;
mod purpose;
mod refusals;
mod removable;
mod replace;
mod resilience;
mod spool;
mod storage;
mod systemd_unit;
mod terminal;
mod testkit_commands;
mod trust;
mod wait;
mod watch;
mod watch_config;

//! dbxport's export dialog ("Send to Dropbox…"), a client of `dbxportd` over D-Bus: the model
//! ([`model`]: everything the window shows and decides, as plain Rust tested without a
//! display) and the window ([`view`]: GTK 4 + libadwaita, rendering the model and forwarding
//! the user's actions). It opens no Dropbox client and no queue: the daemon does the work.

pub mod i18n;
pub mod model;
pub mod view;

pub use view::run;

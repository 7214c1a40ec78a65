//! User-facing strings go through here, ready for translation. gettext-rs is not used yet
//! (it would build GNU gettext from source unless the system's is wired in, and there is no
//! catalogue to load): every string is marked with [`tr`] or [`tr_n`], so adding a catalogue is
//! one change in this file and `xgettext --keyword=tr --keyword=tr_n:1,2` finds them all.

/// A translatable string.
pub fn tr(text: &str) -> String {
    text.to_owned()
}

/// A translatable string with a singular and a plural form, chosen by `n`.
pub fn tr_n(singular: &str, plural: &str, n: u64) -> String {
    if n == 1 { singular } else { plural }.to_owned()
}

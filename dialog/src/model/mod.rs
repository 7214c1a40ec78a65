//! The dialog as plain Rust, with no display: everything the window shows and every decision
//! it makes. The window (`crate::view`) only renders these values and forwards the user's
//! actions to them, so the unit tests here cover the dialog's behaviour without GTK.
//!
//! Each part is a value with its transitions in one place (ARCHITECTURE.md, "A job's life"
//! follows the same rule for jobs): [`account::Account::apply`], [`folders::FolderTree`]'s
//! level states, [`stage::Stage::next`], [`progress::BatchProgress`].

pub mod account;
pub mod call;
pub mod errors;
pub mod folders;
pub mod options;
pub mod photos;
pub mod profiles;
pub mod progress;
pub mod remembered;
pub mod stage;

/// Bytes in the units a person reads ("3.2 MB"), decimal as GNOME and KDE show file sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_a_file_manager_shows_them() {
        assert_eq!(super::human_size(999), "999 B");
        assert_eq!(super::human_size(3_200_000), "3.2 MB");
        assert_eq!(super::human_size(150_000_000_000), "150 GB");
    }
}

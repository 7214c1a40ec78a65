//! A watch's health: active, or in trouble — its folder missing or not watchable — with the
//! reason in words a user can act on (shown over D-Bus and by `dbxportctl watch ls`).

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    Active,
    /// The folder is not there (deleted, renamed, or its medium unmounted).
    Missing(String),
    /// The folder cannot be watched (permissions, inotify limits).
    Error(String),
}

impl WatchState {
    pub fn name(&self) -> &'static str {
        match self {
            WatchState::Active => "active",
            WatchState::Missing(_) => "missing",
            WatchState::Error(_) => "error",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            WatchState::Active => "",
            WatchState::Missing(reason) | WatchState::Error(reason) => reason,
        }
    }
}

/// Why a folder cannot be watched, in words a user can act on.
pub(super) fn watch_trouble(dir: &Path, e: &notify::Error) -> WatchState {
    use notify::ErrorKind;
    match &e.kind {
        ErrorKind::MaxFilesWatch => WatchState::Error(format!(
            "{}: the inotify watch limit is reached; raise fs.inotify.max_user_watches (sysctl) \
             or watch fewer folders",
            dir.display()
        )),
        ErrorKind::PathNotFound => {
            WatchState::Missing(format!("{}: the folder is not there", dir.display()))
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            WatchState::Missing(format!("{}: the folder is not there", dir.display()))
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            WatchState::Error(format!(
                "{}: permission denied; dbxportd must be able to read the folder",
                dir.display()
            ))
        }
        _ => WatchState::Error(format!("{}: cannot watch the folder: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_is_told_in_words_a_user_can_act_on() {
        let dir = Path::new("/media/card/DCIM");
        let limit = watch_trouble(dir, &notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert_eq!(limit.name(), "error");
        assert!(limit.reason().contains("fs.inotify.max_user_watches"));
        let gone = watch_trouble(dir, &notify::Error::path_not_found());
        assert_eq!(gone.name(), "missing");
        assert!(gone.reason().contains("/media/card/DCIM"));
        let denied = watch_trouble(
            dir,
            &notify::Error::io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        );
        assert_eq!(denied.name(), "error");
        assert!(denied.reason().contains("permission denied"));
    }
}

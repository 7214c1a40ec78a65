//! Handing files to the daemon as open file descriptors (`UploadFds`): what `dbxportctl upload
//! --spool` does, what `upload` falls back to when the daemon cannot see the paths it was given
//! (a private `/tmp` under systemd's `PrivateTmp=`, a sandbox), and what other callers of the
//! library (the KDE Purpose plugin, a `dbxportctl` subcommand) use to hand over temporary
//! exports they delete at once. The daemon copies the files into its spool before the call
//! returns (`crate::spool`).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use zbus::zvariant::OwnedValue;

use super::describe;
use crate::service::{ServiceError, UploaderProxy};

/// Why a hand-over did not happen, in words naming the file.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    /// A file could not be opened here; nothing was sent.
    #[error("{path}: cannot open it to hand it over: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The daemon refused the call (a bad name, a full spool, a bad option), or could not be
    /// reached; its message says which.
    #[error("{}", describe(.0))]
    Refused(ServiceError),
}

/// The name a file is handed over under: its own file name (a name that is not UTF-8 gets
/// U+FFFD for each byte that is not, as Dropbox would show it anyway).
pub fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The name of the folder `path` is in, as `{folder}` in a folder template names it for a
/// path the daemon reads itself ("" for none).
pub fn folder_of(path: &Path) -> String {
    std::path::absolute(path)
        .ok()
        .and_then(|path| crate::template::folder_name(&path))
        .unwrap_or_default()
}

/// Opens each of `files` for reading here, and hands them over through `UploadFds` into
/// `folder` (`""`: the profile's, else the daemon's default) with `options` (as `Upload`
/// takes them). More files than one call carries ([`crate::spool::MAX_FILES`]) go in parts,
/// each opened only for its call; the daemon queues them as one batch with the last. Returns
/// the batch and its job ids once the daemon holds its own copies: the caller may then delete
/// the files.
pub async fn hand_over(
    proxy: &UploaderProxy<'_>,
    files: &[PathBuf],
    folder: &str,
    options: HashMap<String, OwnedValue>,
) -> Result<(u64, Vec<u64>), HandOverError> {
    let parts: Vec<&[PathBuf]> = files.chunks(crate::spool::MAX_FILES).collect();
    let last = parts.len().saturating_sub(1);
    let mut answer = (0, Vec::new());
    for (i, part) in parts.into_iter().enumerate() {
        let mut names = Vec::with_capacity(part.len());
        let mut folders = Vec::with_capacity(part.len());
        let mut fds = Vec::with_capacity(part.len());
        for path in part {
            // Read-only and close-on-exec (std's default): the daemon reads it with pread.
            let file = std::fs::File::open(path).map_err(|source| HandOverError::Open {
                path: path.clone(),
                source,
            })?;
            names.push(name_of(path));
            folders.push(folder_of(path));
            fds.push(zbus::zvariant::OwnedFd::from(OwnedFd::from(file)));
        }
        let mut options = options.clone();
        // What `{folder}` in a template would be for the path: the daemon sees only copies.
        let folders = zbus::zvariant::Value::from(folders);
        options.insert(
            "folders".into(),
            folders.try_to_owned().expect("strings hold no descriptor"),
        );
        if i < last {
            options.insert("more".into(), OwnedValue::from(true));
        }
        answer = proxy
            .upload_fds(names, fds, folder.to_string(), options)
            .await
            .map_err(HandOverError::Refused)?;
    }
    Ok(answer)
}

/// Whether `Upload` refused `paths` only because the daemon cannot see or read them, while
/// this side can (the caller checked them): every line of its `InvalidPath` message names one
/// of `paths` as missing or unreadable (a longer list ends in "… and N more"). Any other
/// refusal (two files for one Dropbox path, a bad template) is the caller's to fix, and a
/// hand-over would be refused the same way.
pub fn daemon_cannot_see(error: &ServiceError, paths: &[PathBuf]) -> bool {
    let ServiceError::InvalidPath(message) = error else {
        return false;
    };
    let mut any = false;
    for line in message.lines() {
        if line.starts_with("… and ") {
            continue;
        }
        let unseen = paths.iter().any(|path| {
            line.strip_prefix(&*path.to_string_lossy())
                .is_some_and(|rest| {
                    rest == ": no such file" || rest.starts_with(": permission denied")
                })
        });
        if !unseen {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_the_daemon_cannot_see_make_a_hand_over() {
        let paths = [PathBuf::from("/tmp/a b.jpg"), PathBuf::from("/tmp/c.jpg")];
        let refused = |m: &str| ServiceError::InvalidPath(m.into());
        assert!(daemon_cannot_see(
            &refused("/tmp/a b.jpg: no such file\n/tmp/c.jpg: no such file"),
            &paths
        ));
        assert!(daemon_cannot_see(
            &refused("/tmp/c.jpg: permission denied; dbxport cannot read this file"),
            &paths
        ));
        let many = format!("{}\n… and 3 more", "/tmp/c.jpg: no such file");
        assert!(daemon_cannot_see(&refused(&many), &paths));
        // Not about seeing: a collision, another file's refusal, another error.
        assert!(!daemon_cannot_see(
            &refused("/tmp/a b.jpg and /tmp/c.jpg would both be written to Dropbox as /P/c.jpg"),
            &paths
        ));
        assert!(!daemon_cannot_see(
            &refused("/elsewhere.jpg: no such file"),
            &paths
        ));
        assert!(!daemon_cannot_see(
            &refused(
                "/tmp/c.jpg: no such file\n/tmp/a b.jpg: is a directory; pass the photos inside it"
            ),
            &paths
        ));
        assert!(!daemon_cannot_see(&refused(""), &paths));
        assert!(!daemon_cannot_see(
            &ServiceError::InvalidArgument("/tmp/c.jpg: no such file".into()),
            &paths
        ));
    }
}

//! Mount and unmount events, for the watches on removable media: inotify says nothing when a
//! file system is unmounted under a watch, so a watched card pulled out would look like a quiet
//! folder forever. The mount table tells instead, without polling.

/// Mount and unmount events, from `/proc/self/mountinfo` (the kernel marks it readable with
/// priority on every change): no polling. If it cannot be opened, `changed` never resolves.
pub(super) struct MountChanges {
    fd: Option<tokio::io::unix::AsyncFd<std::fs::File>>,
}

pub(super) fn mount_changes() -> MountChanges {
    let fd = std::fs::File::open("/proc/self/mountinfo")
        .ok()
        .and_then(|file| {
            // SAFETY: the File owns its descriptor, and the AsyncFd owns the File until dropped.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    file,
                    tokio::io::Interest::PRIORITY,
                )
            }
            .ok()
        });
    MountChanges { fd }
}

impl MountChanges {
    pub async fn changed(&mut self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        match fd.ready(tokio::io::Interest::PRIORITY).await {
            Ok(mut guard) => {
                // Reading the table again from the start re-arms the notification.
                use std::io::{Read, Seek};
                let mut file = fd.get_ref();
                let _ = file.seek(std::io::SeekFrom::Start(0));
                let _ = std::io::copy(&mut file.take(1 << 20), &mut std::io::sink());
                guard.clear_ready();
            }
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One test, not two: tests run in parallel in one mount namespace, so a test that waits
    /// for quiet would see another's mount.
    #[tokio::test]
    async fn mount_changes_are_noticed_quiet_otherwise_and_rearm() {
        let dir = tempfile::tempdir().unwrap();
        let mut mounts = mount_changes();
        assert!(mounts.fd.is_some(), "/proc/self/mountinfo can be watched");
        // Not ready while nothing changes (else the loop would spin): a wait must time out.
        let quiet = tokio::time::timeout(Duration::from_millis(300), mounts.changed()).await;
        assert!(quiet.is_err());
        let mount = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
                .is_ok_and(|s| s.success())
        };
        let target = dir.path().to_str().unwrap();
        if !mount(&["mount", "-t", "tmpfs", "none", target]) {
            eprintln!("skipped: mounting needs privileges this test run does not have");
            return;
        }
        let seen = tokio::time::timeout(Duration::from_secs(5), mounts.changed()).await;
        assert!(mount(&["umount", target]));
        assert!(seen.is_ok(), "the mount was not noticed");
        // The unmount is a second change, noticed too.
        let seen = tokio::time::timeout(Duration::from_secs(5), mounts.changed()).await;
        assert!(seen.is_ok(), "the unmount was not noticed");
        let quiet = tokio::time::timeout(Duration::from_millis(300), mounts.changed()).await;
        assert!(quiet.is_err(), "still ready after being read");
    }
}

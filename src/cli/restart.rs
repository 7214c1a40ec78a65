//! `dbxportctl restart`: stop the running daemon and start it again, so that it reads its
//! config file anew (it reads it once, as it starts). Queued uploads resume where they were:
//! the queue is on disk.
//!
//! Under systemd (the installed unit) this is `systemctl --user restart dbxport`. A daemon
//! that D-Bus started, or that was run by hand, is asked to stop (SIGTERM, as systemd does)
//! and started again the way it was: by D-Bus activation when the bus knows how, otherwise
//! with the same command line and environment it had.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;

use super::term::{outln, say};
use super::{Exit, describe};
use crate::service::BUS_NAME;

/// How long the daemon may take to stop (it finishes or abandons its requests) or to start.
const LIMIT: Duration = Duration::from_secs(30);

pub async fn run(conn: &zbus::Connection) -> Result<Exit, String> {
    let dbus = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| describe(&e))?;
    let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
    let systemd_active = std::process::Command::new("systemctl")
        .args(["--user", "--quiet", "is-active", "dbxport.service"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if systemd_active {
        let status = std::process::Command::new("systemctl")
            .args(["--user", "restart", "dbxport.service"])
            .status()
            .map_err(|e| format!("cannot run systemctl: {e}"))?;
        if !status.success() {
            return Err(format!(
                "`systemctl --user restart dbxport` failed ({status}): see `journalctl --user -u dbxport`"
            ));
        }
        outln!("dbxportd restarted (systemd)");
        return Ok(Exit::Ok);
    }
    let pid = match dbus.get_connection_unix_process_id(name.clone()).await {
        Ok(pid) => pid,
        Err(_) => {
            outln!("dbxportd is not running; it reads its config when it starts");
            return Ok(Exit::Ok);
        }
    };
    // How it was started, read before it goes.
    let command = read_nul_list(format!("/proc/{pid}/cmdline"));
    let environment = read_nul_list(format!("/proc/{pid}/environ"));
    let log = std::fs::read_link(format!("/proc/{pid}/fd/2"))
        .ok()
        .filter(|p| p.is_file());
    let mut owner_changes = dbus
        .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
        .await
        .map_err(|e| describe(&e))?;
    say!("stopping dbxportd (pid {pid})…");
    // SAFETY: kill(2) with a pid the bus gave and a plain signal number.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        return Err(format!(
            "cannot stop dbxportd (pid {pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let gone = owner_within(&mut owner_changes, false).await;
    // The bus name goes before the process has finished stopping (it still flushes and holds
    // the queue database's lock): a new daemon started now would find the lock taken.
    if !gone || !process_exited(pid as i32, LIMIT).await {
        return Err(format!(
            "dbxportd (pid {pid}) did not stop within {} s",
            LIMIT.as_secs()
        ));
    }
    // D-Bus activation first: it starts the daemon exactly as the session would.
    let activated = dbus
        .start_service_by_name(
            zbus::names::WellKnownName::try_from(BUS_NAME).map_err(|e| e.to_string())?,
            0,
        )
        .await
        .is_ok();
    if !activated {
        let Some((program, args)) = command.split_first() else {
            return Err(
                "dbxportd stopped, and its command line could not be read to start it again: \
                 start it with `dbxportd` or `systemctl --user start dbxport`"
                    .into(),
            );
        };
        let mut start = std::process::Command::new(program);
        start.args(args).stdin(std::process::Stdio::null());
        if !environment.is_empty() {
            start.env_clear().envs(environment.iter().filter_map(|kv| {
                let kv = kv.to_str()?;
                kv.split_once('=')
            }));
        }
        match &log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                start
                    .stdout(file.try_clone().map_err(|e| e.to_string())?)
                    .stderr(file);
            }
            None => {
                start
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        // Its own process group: a Ctrl-C in this terminal must not stop it.
        start.process_group(0);
        start.spawn().map_err(|e| {
            format!(
                "cannot start {} again: {e}; start it with `dbxportd`",
                PathBuf::from(program).display()
            )
        })?;
        let back = owner_within(&mut owner_changes, true).await;
        if !back {
            return Err(format!(
                "dbxportd did not come back within {} s: start it with `dbxportd` and see its log",
                LIMIT.as_secs()
            ));
        }
    }
    outln!("dbxportd restarted");
    Ok(Exit::Ok)
}

/// Waits until process `pid` has exited, up to `limit`: through a pidfd, which becomes
/// readable when the process ends (no polling); where the kernel has none, by looking every
/// 50 ms whether the pid still exists.
async fn process_exited(pid: i32, limit: std::time::Duration) -> bool {
    let alive = || unsafe { libc::kill(pid, 0) } == 0;
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
        let owned =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the descriptor until it is dropped.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
        };
        if let Ok(fd) = registered {
            return tokio::time::timeout(limit, fd.readable())
                .await
                .is_ok_and(|r| r.is_ok());
        }
    }
    tokio::time::timeout(limit, async {
        while alive() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

fn read_nul_list(path: String) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read(path)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| std::ffi::OsString::from_vec(s.to_vec()))
        .collect()
}

/// Whether, within [`LIMIT`], dbxportd's bus name is taken (`owned`) or given up (not
/// `owned`), as the bus's `NameOwnerChanged` signals tell.
async fn owner_within(changes: &mut zbus::fdo::NameOwnerChangedStream, owned: bool) -> bool {
    tokio::time::timeout(LIMIT, async {
        while let Some(change) = changes.next().await {
            if change
                .args()
                .is_ok_and(|a| a.new_owner().is_some() == owned)
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

//! D-Bus activation for real: a private `dbus-daemon` whose service directory holds the
//! project's activation file (its `Exec=` pointed at the built `dbxportd`) starts the daemon on
//! the first call, and `dbxportctl` works whether the daemon runs or not.

use std::process::Command;

use dbxport_testkit::sandbox::Sandbox;

use crate::helper::*;

/// The project's activation file, with `Exec=` running the built daemon in the sandbox's
/// directories (an activated process inherits the bus's environment, not the test's).
fn activation_file(sandbox: &Sandbox) -> String {
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dbus/io.github.dbxport1.service"
    ))
    .unwrap();
    assert!(published.contains("\nName=io.github.dbxport1\n"));
    assert!(published.contains("\nSystemdService=dbxport.service\n"));
    let env: Vec<String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let exec = format!(
        "Exec=/usr/bin/env {} RUST_LOG=info {}",
        env.join(" "),
        env!("CARGO_BIN_EXE_dbxportd")
    );
    published
        .lines()
        .map(|line| {
            if line.starts_with("Exec=") {
                exec.clone()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pid of the bus name's owner, if any.
fn owner_pid(sandbox: &Sandbox) -> Option<u32> {
    let out = Command::new("dbus-send")
        .arg(format!("--bus={}", sandbox.bus.address()))
        .args([
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            "string:io.github.dbxport1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last()?.parse().ok()
}

/// Stops the activated daemon when the test ends, however it ends.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0 as i32, libc::SIGTERM) };
    }
}

#[system_test]
async fn the_first_call_starts_the_daemon_and_dbxportctl_needs_none_running() {
    let (dir, sandbox) = bare_sandbox().await;
    std::fs::write(
        dir.path().join("bus/services/io.github.dbxport1.service"),
        activation_file(&sandbox),
    )
    .unwrap();
    assert_eq!(owner_pid(&sandbox), None, "nothing runs yet");

    // A plain D-Bus client's first call: the bus starts dbxportd and delivers the call.
    let out = Command::new("dbus-send")
        .arg(format!("--bus={}", sandbox.bus.address()))
        .args([
            "--print-reply",
            "--reply-timeout=30000",
            "--dest=io.github.dbxport1",
            "/io/github/dbxport1",
            "org.freedesktop.DBus.Properties.Get",
            "string:io.github.dbxport1.Uploader",
            "string:QueueLength",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("uint32 0"));
    let first = owner_pid(&sandbox).expect("the daemon was started");
    let reap = Reap(first);

    // dbxportctl with the daemon running…
    let status = sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .arg("status")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // …and after it stopped: the call starts it again.
    drop(reap);
    wait_for("the daemon to stop", || async {
        owner_pid(&sandbox).is_none().then_some(())
    })
    .await;
    let status = sandbox
        .command(env!("CARGO_BIN_EXE_dbxportctl"))
        .args(["jobs", "--json"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let second = owner_pid(&sandbox).expect("started again by dbxportctl's call");
    assert_ne!(first, second);
    let _reap = Reap(second);
}

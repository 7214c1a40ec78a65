//! The systemd user unit passes `systemd-analyze --user verify` (every key known, the command
//! executable), with its `ExecStart=` pointed at the built daemon, and sees the callers' `/tmp`
//! (no `PrivateTmp=`: README, "systemd and file managers").

use std::process::Command;

#[test]
fn the_user_unit_verifies() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        panic!("systemd-analyze is needed (Debian package systemd; .ci/run installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/dbxport.service"
    ))
    .unwrap();
    assert!(published.contains("\nType=dbus\n"));
    assert!(published.contains("\nBusName=io.github.dbxport1\n"));
    // Files in the caller's /tmp must stay visible to the daemon: callers other than
    // dbxportctl (the export dialog, scripts calling Upload) have no fallback to UploadFds.
    // /tmp stays read-only to it all the same (ProtectSystem=strict).
    assert!(
        !published.lines().any(|l| l.starts_with("PrivateTmp=")),
        "a private /tmp hides the callers' exports from the daemon"
    );
    assert!(published.contains("\nProtectSystem=strict\n"));
    let unit: String = published
        .lines()
        .map(|line| {
            if line.starts_with("ExecStart=") {
                format!("ExecStart={}\n", env!("CARGO_BIN_EXE_dbxportd"))
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let path = dir.path().join("dbxport.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&path)
        .env("XDG_RUNTIME_DIR", &runtime)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify only warns about unknown keys; any warning is a mistake in the unit.
    assert!(stderr.trim().is_empty(), "{stderr}");
}

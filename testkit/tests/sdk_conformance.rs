//! The emulator against the official Dropbox Python SDK (12.2.5): a checked-in script,
//! `tests/sdk/upload_sessions.py`, drives the upload-session routes the engine uses
//! (`start`, `append_v2`, `start_batch`, `append_batch`, `finish_batch_v2`) through the SDK,
//! whose own types validate every answer and error, so a shape the emulator gets wrong fails
//! the script. The SDK lives in a virtualenv that `tests/deps` makes; without it this test
//! fails and says so rather than passing without having checked anything.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dbxport_testkit::emulator::{Emulator, EmulatorConfig};

/// The virtualenv `tests/deps` makes (`pip install dropbox==12.2.5`).
fn sdk_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set");
    cache.join("dbxport-tests/sdk-venv/bin/python")
}

/// Far below 150 MiB, so the script reaches `payload_too_large` without sending 150 MiB;
/// above the largest body it sends otherwise (about 5 MiB).
const MAX_BODY: u64 = 8 * 1024 * 1024;

#[tokio::test]
async fn the_official_python_sdk_reads_every_upload_session_answer() {
    let python = sdk_python();
    assert!(
        python.exists(),
        "the official Dropbox Python SDK is not installed at {}: run tests/deps, which makes \
         that virtualenv with `pip install dropbox==12.2.5`",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(EmulatorConfig {
        root: dir.path().join("root"),
        port: 0,
        access_token: None,
        app_key: None,
    })
    .await
    .expect("start the emulator");
    emu.set_max_body(MAX_BODY);
    let host = emu
        .base_url()
        .strip_prefix("http://")
        .expect("an http:// base URL")
        .to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/upload_sessions.py");
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(script)
        // The SDK's own host overrides, read when it is imported.
        .env("DROPBOX_API_HOST", &host)
        .env("DROPBOX_API_CONTENT_HOST", &host)
        .env_remove("DROPBOX_DOMAIN")
        .env_remove("DROPBOX_API_DOMAIN")
        .env("DBXPORT_TOKEN", emu.access_token())
        .env("DBXPORT_MAX_BODY", MAX_BODY.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the SDK script did not finish within 2 minutes")
        .expect("run the SDK's python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("all checks passed"),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Every argument the SDK built was accepted: no 400 (the script provokes none).
    let requests = emu.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 400).collect();
    assert!(refused.is_empty(), "{refused:?}");
    for route in [
        "/2/files/upload_session/start",
        "/2/files/upload_session/append_v2",
        "/2/files/upload_session/start_batch",
        "/2/files/upload_session/append_batch",
        "/2/files/upload_session/finish_batch_v2",
    ] {
        assert!(
            requests.iter().any(|r| r.route == route && r.status == 200),
            "the script never called {route} successfully"
        );
    }
    assert_eq!(emu.files().len(), 5, "{:?}", emu.files());
}

//! Policies for automatic uploads: a watched folder's photos wait while NetworkManager says the
//! connection is metered (and, when configured, while UPower says the machine is on battery),
//! and go when that ends; uploads asked for with `Upload` never wait. The system services are
//! test-owned fakes on the private bus, which the sandbox hands the daemon as its system bus.
//!
//! A hold that begins while a watch file is being sent lets that file finish and sends no
//! other, not even those already claimed to be prepared.
//!
//! "Stays queued" is anchored on something positive: an interactive upload made after the
//! watch job was queued completes, and only then is the watch job checked — still queued, and
//! nothing of it sent.

use std::path::{Path, PathBuf};

use zbus::interface;

use crate::helper::*;

struct FakeNetworkManager {
    metered: u32,
}

#[interface(name = "org.freedesktop.NetworkManager")]
impl FakeNetworkManager {
    #[zbus(property)]
    fn metered(&self) -> u32 {
        self.metered
    }
}

struct FakeUPower {
    on_battery: bool,
}

#[interface(name = "org.freedesktop.UPower")]
impl FakeUPower {
    #[zbus(property)]
    fn on_battery(&self) -> bool {
        self.on_battery
    }
}

const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const UPOWER_PATH: &str = "/org/freedesktop/UPower";

/// A test-owned system service: `iface` at `path`, under `name`, on the private bus (which the
/// daemon has as its system bus).
async fn serve(
    bus_address: &str,
    name: &str,
    path: &str,
    iface: impl zbus::object_server::Interface,
) -> zbus::Connection {
    zbus::connection::Builder::address(bus_address)
        .unwrap()
        .serve_at(path, iface)
        .unwrap()
        .name(name)
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// NetworkManager appears saying `metered`.
pub(crate) async fn network_manager(w: &World, metered: u32) -> zbus::Connection {
    let nm = FakeNetworkManager { metered };
    serve(
        w.sandbox.bus.address(),
        "org.freedesktop.NetworkManager",
        NM_PATH,
        nm,
    )
    .await
}

pub(crate) async fn set_metered(nm: &zbus::Connection, metered: u32) {
    let iface = nm
        .object_server()
        .interface::<_, FakeNetworkManager>(NM_PATH)
        .await
        .unwrap();
    iface.get_mut().await.metered = metered;
    iface
        .get()
        .await
        .metered_changed(iface.signal_emitter())
        .await
        .unwrap();
}

async fn upower(bus_address: &str, on_battery: bool) -> zbus::Connection {
    let upower = FakeUPower { on_battery };
    serve(bus_address, "org.freedesktop.UPower", UPOWER_PATH, upower).await
}

async fn set_on_battery(upower: &zbus::Connection, on_battery: bool) {
    let iface = upower
        .object_server()
        .interface::<_, FakeUPower>(UPOWER_PATH)
        .await
        .unwrap();
    iface.get_mut().await.on_battery = on_battery;
    iface
        .get()
        .await
        .on_battery_changed(iface.signal_emitter())
        .await
        .unwrap();
}

pub(crate) fn watch_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    config
}

/// `dbxportctl status --json`'s `auto_uploads_held`.
fn held(w: &World) -> String {
    let out = w.ctl(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["auto_uploads_held"].as_str().unwrap().to_string()
}

pub(crate) async fn wait_held(w: &World, reason: &str) {
    wait_for(&format!("AutoUploadsHeld = {reason:?}"), || async {
        (held(w) == reason).then_some(())
    })
    .await;
}

/// The folder the tests watch, made and empty.
pub(crate) fn camera_dir(w: &World) -> PathBuf {
    let dir = w.dir.path().join("camera");
    std::fs::create_dir(&dir).unwrap();
    dir
}

/// A watched folder with no photo yet.
async fn watched_dir(w: &World) -> PathBuf {
    let dir = camera_dir(w);
    watch(w, &dir).await;
    dir
}

/// Watches `dir`, exporting to /Camera.
pub(crate) async fn watch(w: &World, dir: &Path) {
    w.watches()
        .await
        .add_watch(
            dir.to_string_lossy().into_owned(),
            "/Camera".into(),
            dict(&[]),
        )
        .await
        .expect("AddWatch");
}

/// Drops a photo into the watched folder and waits for its job; returns the job's id.
async fn watch_job(w: &World, dir: &Path) -> u64 {
    let sample = sample_photos().into_iter().next().unwrap();
    let path = dir.join("found.jpg");
    std::fs::copy(&sample, &path).unwrap();
    let source = path.to_string_lossy().into_owned();
    let uploader = w.uploader().await;
    wait_for("the watch job", || async {
        jobs(&uploader, &[])
            .await
            .into_iter()
            .find(|j| j.source == source)
            .map(|j| j.id)
    })
    .await
}

async fn job_state(w: &World, id: u64) -> String {
    jobs(&w.uploader().await, &[])
        .await
        .into_iter()
        .find(|j| j.id == id)
        .unwrap()
        .state
}

/// With a hold in force: an interactive upload made now completes while the watch job `id`
/// stays queued and nothing of it reaches Dropbox.
async fn interactive_goes_while_watch_job_waits(w: &World, id: u64) {
    let files = make_photos(&w.photo_dir(), 1);
    let uploader = w.uploader().await;
    upload_verified(w, &uploader, &files, "/Asked").await;
    assert_eq!(job_state(w, id).await, "queued");
    assert_eq!(
        uploads_started(w),
        1,
        "only the interactive upload was sent"
    );
    assert!(
        !w.stored_paths().iter().any(|p| p.starts_with("/Camera")),
        "{:?}",
        w.stored_paths()
    );
}

async fn wait_done(w: &World, id: u64) {
    wait_for("the watch job done", || async {
        let state = job_state(w, id).await;
        assert!(!matches!(state.as_str(), "failed" | "cancelled"), "{state}");
        (state == "done").then_some(())
    })
    .await;
    assert!(w.stored_paths().contains(&"/Camera/found.jpg".to_string()));
}

#[system_test]
async fn a_metered_connection_holds_watch_uploads_until_it_ends() {
    let w = world(watch_config()).await;
    let dir = watched_dir(&w).await;
    assert_eq!(held(&w), "", "no NetworkManager: nothing is held");
    // A proxy caches properties and follows PropertiesChanged: it sees the change only if the
    // daemon signals it.
    let cached = w.uploader().await;
    assert_eq!(cached.auto_uploads_held().await.unwrap(), "");
    // NetworkManager appears after the daemon started, on a metered connection.
    let nm = network_manager(&w, 1).await;
    wait_held(&w, "metered connection").await;
    wait_for("AutoUploadsHeld's change signal", || async {
        (cached.auto_uploads_held().await.unwrap() == "metered connection").then_some(())
    })
    .await;
    let status = w.ctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("watch-folder uploads are held (metered connection)"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let id = watch_job(&w, &dir).await;
    interactive_goes_while_watch_job_waits(&w, id).await;

    set_metered(&nm, 2).await;
    wait_done(&w, id).await;
    assert_eq!(held(&w), "");

    // A guess of metered holds too; NetworkManager going away lifts the hold.
    set_metered(&nm, 3).await;
    wait_held(&w, "metered connection").await;
    drop(nm);
    wait_held(&w, "").await;
}

#[system_test]
async fn on_battery_holds_watch_uploads_when_configured_until_ac() {
    let mut config = watch_config();
    config.policy.pause_watch_on_battery = true;
    let mut w = world(config).await;
    // UPower is there, on battery, when the daemon starts.
    let upower = upower(w.sandbox.bus.address(), true).await;
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    wait_held(&w, "on battery").await;
    let dir = watched_dir(&w).await;
    let id = watch_job(&w, &dir).await;
    interactive_goes_while_watch_job_waits(&w, id).await;

    set_on_battery(&upower, false).await;
    wait_done(&w, id).await;
    assert_eq!(held(&w), "");
}

#[system_test]
async fn on_battery_holds_nothing_when_the_policy_is_off() {
    assert!(
        !dbxport::config::Config::default()
            .policy
            .pause_watch_on_battery
    );
    let mut w = world(watch_config()).await;
    let _upower = upower(w.sandbox.bus.address(), true).await;
    // As above: UPower says "on battery" from the daemon's start.
    w.sandbox.stop_daemon();
    w.sandbox.start_daemon().await.unwrap();
    w.reconnect().await;
    let dir = watched_dir(&w).await;
    let id = watch_job(&w, &dir).await;
    wait_done(&w, id).await;
    assert_eq!(held(&w), "");
}

#[system_test]
async fn a_hold_lets_the_file_being_sent_finish_and_sends_no_other() {
    let mut config = watch_config();
    // One file on the wire at a time, slowly, so the others are claimed ahead and wait.
    config.upload.transfers = 1;
    config.upload.bandwidth_limit = 2_000_000;
    // One chunk per file: a file holds its network slot until it is sent. (Files of several
    // chunks start their sessions at once and are all "being sent" from then on.)
    config.upload.chunk_size = 8 * dbxport::config::MIB;
    let w = world(config).await;
    let nm = network_manager(&w, 2).await;
    let dir = camera_dir(&w);
    // Each takes seconds at that rate, whichever the daemon takes first.
    let big = sample_photos().into_iter().next().unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 4_000_000);
    for i in 0..3 {
        std::fs::copy(&big, dir.join(format!("big{i}.jpg"))).unwrap();
    }
    watch(&w, &dir).await;
    w.wait_for_request("/2/files/upload").await;
    set_metered(&nm, 1).await;
    wait_held(&w, "metered connection").await;

    let uploader = w.uploader().await;
    let watch_jobs = || async { jobs(&uploader, &[]).await };
    // The file on the wire finishes; the two others go back to the queue unsent.
    let states = wait_for("one done, two queued", || async {
        let jobs = watch_jobs().await;
        let mut states: Vec<String> = jobs.iter().map(|j| j.state.clone()).collect();
        states.sort();
        assert!(
            states.iter().filter(|s| *s == "done").count() <= 1,
            "a second watch file went: {states:?}"
        );
        (states == ["done", "queued", "queued"]).then_some(states)
    })
    .await;
    assert_eq!(uploads_started(&w), 1, "{states:?}");

    // And they stay there: an interactive upload made now completes first.
    let files = make_photos(&w.photo_dir(), 1);
    upload_verified(&w, &uploader, &files, "/Asked").await;
    let queued = watch_jobs()
        .await
        .iter()
        .filter(|j| j.state == "queued")
        .count();
    assert_eq!(queued, 2);
    assert_eq!(uploads_started(&w), 2);

    set_metered(&nm, 4).await;
    wait_for("every job done", || async {
        let jobs = watch_jobs().await;
        jobs.iter().all(|j| j.state == "done").then_some(())
    })
    .await;
}

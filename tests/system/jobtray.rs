//! Plasma's job tray: with a (test-owned) `org.kde.JobViewServer` on the session bus — even
//! one that appeared after the daemon and after a batch ran without it — each batch gets one
//! entry (`org.kde.JobViewServerV2.requestView` → an `org.kde.JobViewV3`
//! object) that climbs to 100 % and is terminated without error; the entry's cancel button
//! (`cancelRequested`) cancels the batch's unfinished jobs, its pause and resume buttons pause
//! and resume the queue. A watch folder's batch held by a
//! policy says why it waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{ObjectServer, interface};

use crate::helper::*;

/// Every call the fake tray received, in order.
#[derive(Debug, Clone)]
enum Call {
    RequestView {
        desktop_entry: String,
        capabilities: i32,
        path: String,
    },
    Update {
        path: String,
        properties: HashMap<String, OwnedValue>,
    },
    Terminate {
        path: String,
        code: u32,
        message: String,
    },
}

type Calls = Arc<Mutex<Vec<Call>>>;

struct FakeServer {
    calls: Calls,
}

#[interface(name = "org.kde.JobViewServerV2")]
impl FakeServer {
    #[zbus(name = "requestView")]
    async fn request_view(
        &self,
        desktop_entry: String,
        capabilities: i32,
        _hints: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> OwnedObjectPath {
        let path = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls
                .iter()
                .filter(|c| matches!(c, Call::RequestView { .. }))
                .count();
            let path = format!("/org/kde/notificationmanager/jobs/JobView_{}", n + 1);
            calls.push(Call::RequestView {
                desktop_entry,
                capabilities,
                path: path.clone(),
            });
            path
        };
        let view = FakeView {
            path: path.clone(),
            calls: self.calls.clone(),
        };
        server.at(path.as_str(), view).await.unwrap();
        OwnedObjectPath::try_from(path).unwrap()
    }
}

struct FakeView {
    path: String,
    calls: Calls,
}

#[interface(name = "org.kde.JobViewV3")]
impl FakeView {
    #[zbus(name = "update")]
    fn update(&self, properties: HashMap<String, OwnedValue>) {
        self.calls.lock().unwrap().push(Call::Update {
            path: self.path.clone(),
            properties,
        });
    }

    #[zbus(name = "terminate")]
    fn terminate(
        &self,
        error_code: u32,
        error_message: String,
        _hints: HashMap<String, OwnedValue>,
    ) {
        self.calls.lock().unwrap().push(Call::Terminate {
            path: self.path.clone(),
            code: error_code,
            message: error_message,
        });
    }

    #[zbus(signal, name = "cancelRequested")]
    async fn cancel_requested(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal, name = "suspendRequested")]
    async fn suspend_requested(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal, name = "resumeRequested")]
    async fn resume_requested(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

async fn tray(w: &World) -> (zbus::Connection, Calls) {
    let calls = Calls::default();
    let conn = zbus::connection::Builder::address(w.sandbox.bus.address())
        .unwrap()
        .serve_at(
            "/JobViewServer",
            FakeServer {
                calls: calls.clone(),
            },
        )
        .unwrap()
        .name("org.kde.JobViewServer")
        .unwrap()
        .build()
        .await
        .unwrap();
    (conn, calls)
}

fn u64_of(properties: &HashMap<String, OwnedValue>, key: &str) -> Option<u64> {
    properties.get(key).and_then(|v| u64::try_from(&**v).ok())
}

fn u32_of(properties: &HashMap<String, OwnedValue>, key: &str) -> Option<u32> {
    properties.get(key).and_then(|v| u32::try_from(&**v).ok())
}

/// The terminate call of the entry at `path`, once it came.
async fn terminated(calls: &Calls, path: &str) -> (u32, String) {
    wait_for("the entry's terminate", || async {
        calls.lock().unwrap().iter().find_map(|c| match c {
            Call::Terminate {
                path: p,
                code,
                message,
            } if p == path => Some((*code, message.clone())),
            _ => None,
        })
    })
    .await
}

#[system_test]
async fn a_batch_shows_in_the_tray_up_to_100_percent_and_ends_cleanly() {
    let w = world(small_config()).await;
    let uploader = w.uploader().await;
    // No job tray yet: the batch just runs.
    let early = w.dir.path().join("early.jpg");
    std::fs::copy(&sample_photos()[0], &early).unwrap();
    upload_verified(&w, &uploader, &[early], "/Early").await;
    // A tray that appears later is used for the next batches.
    let (_tray, calls) = tray(&w).await;
    let files = make_photos(&w.photo_dir(), 3);
    let size: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    upload_verified(&w, &uploader, &files, "/Tray").await;

    let path = match calls.lock().unwrap().first().cloned() {
        Some(Call::RequestView {
            desktop_entry,
            capabilities,
            path,
        }) => {
            assert_eq!(desktop_entry, "dbxport");
            assert_eq!(capabilities, 3, "cancel and suspend");
            path
        }
        other => panic!("the first call is requestView: {other:?}"),
    };
    assert_eq!(terminated(&calls, &path).await, (0, String::new()));
    let calls = calls.lock().unwrap().clone();
    let updates: Vec<&HashMap<String, OwnedValue>> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Update {
                path: p,
                properties,
            } if *p == path => Some(properties),
            _ => None,
        })
        .collect();
    // The fake server may handle calls concurrently, so their recorded order is not the order
    // they were sent in: check the final figures by their content.
    let full = updates
        .iter()
        .find(|u| u32_of(u, "percent") == Some(100))
        .unwrap_or_else(|| panic!("no update reached 100 %: {updates:#?}"));
    assert_eq!(u64_of(full, "totalBytes"), Some(size));
    assert_eq!(u64_of(full, "processedBytes"), Some(size));
    assert_eq!(u64_of(full, "totalFiles"), Some(3));
    assert_eq!(u64_of(full, "processedFiles"), Some(3));
    assert!(
        updates
            .iter()
            .filter_map(|u| u32_of(u, "percent"))
            .all(|p| p <= 100)
    );
    // One entry for the batch.
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::RequestView { .. }))
            .count(),
        1
    );
}

/// A world sending 4 photos slowly (1 MB/s, one at a time), so buttons are pressed while the
/// batch runs; its tray, the batch, and the entry's view once the first file is on its way.
async fn slow_batch_in_the_tray() -> (
    World,
    zbus::Connection,
    Calls,
    u64,
    zbus::object_server::InterfaceRef<FakeView>,
) {
    let mut config = small_config();
    // Slow enough that a loaded machine still gets its clicks in before the batch ends.
    config.upload.bandwidth_limit = 500_000;
    config.upload.transfers = 1;
    let w = world(config).await;
    let (tray_conn, calls) = tray(&w).await;
    let files = make_photos(&w.photo_dir(), 4);
    let (batch, _) = w
        .uploader()
        .await
        .upload(paths(&files), "/Slow".into(), dict(&[]))
        .await
        .unwrap();
    w.wait_for_request("/2/files/upload").await;
    let path = wait_for("the entry", || async {
        calls.lock().unwrap().iter().find_map(|c| match c {
            Call::RequestView { path, .. } => Some(path.clone()),
            _ => None,
        })
    })
    .await;
    // The daemon listens to the entry's buttons before it first updates the entry: once an
    // update came, a click is heard.
    wait_for("the entry's first update", || async {
        calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Call::Update { .. }))
            .then_some(())
    })
    .await;
    let view = tray_conn
        .object_server()
        .interface::<_, FakeView>(path.as_str())
        .await
        .unwrap();
    (w, tray_conn, calls, batch, view)
}

#[system_test]
async fn the_trays_pause_and_resume_buttons_pause_and_resume_the_queue() {
    let (w, _tray_conn, calls, batch, view) = slow_batch_in_the_tray().await;
    let uploader = w.uploader().await;
    FakeView::suspend_requested(view.signal_emitter())
        .await
        .unwrap();
    wait_for("the queue paused", || async {
        uploader.paused().await.unwrap().then_some(())
    })
    .await;
    let suspended = |wanted: bool| {
        let calls = calls.clone();
        async move {
            calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| matches!(c, Call::Update { properties, .. } if properties.get("suspended").and_then(|v| bool::try_from(&**v).ok()) == Some(wanted)))
                .then_some(())
        }
    };
    wait_for("the entry shown suspended", || suspended(true)).await;
    FakeView::resume_requested(view.signal_emitter())
        .await
        .unwrap();
    wait_for("the queue resumed", || async {
        (!uploader.paused().await.unwrap()).then_some(())
    })
    .await;
    wait_for("the entry shown running", || suspended(false)).await;

    // Paused another way (dbxportctl): the entry shows it too.
    calls.lock().unwrap().clear();
    assert!(w.ctl(&["pause"]).status.success());
    wait_for("the entry shown suspended after dbxportctl pause", || {
        suspended(true)
    })
    .await;
    assert!(w.ctl(&["resume"]).status.success());
    wait_for("the entry shown running after dbxportctl resume", || {
        suspended(false)
    })
    .await;
    assert_jobs_verified(&w, &batch_final(&uploader, batch).await);
}

#[system_test]
async fn the_trays_cancel_button_cancels_the_batch() {
    let (w, _tray_conn, calls, batch, view) = slow_batch_in_the_tray().await;
    let uploader = w.uploader().await;
    let path = view.signal_emitter().path().to_string();
    FakeView::cancel_requested(view.signal_emitter())
        .await
        .unwrap();
    let jobs = batch_final(&uploader, batch).await;
    let cancelled = jobs.iter().filter(|j| j.state == "cancelled").count();
    assert!(cancelled >= 3, "{jobs:#?}");
    assert!(w.stored_paths().len() <= 1, "{:?}", w.stored_paths());
    assert_eq!(terminated(&calls, &path).await, (1, String::new()));
}

#[system_test]
async fn a_held_watch_batch_says_why_it_waits_in_the_tray() {
    use crate::policies::*;
    let w = world(watch_config()).await;
    let (_tray, calls) = tray(&w).await;
    let nm = network_manager(&w, 1).await;
    wait_held(&w, "metered connection").await;
    let dir = camera_dir(&w);
    make_photos(&dir, 2);
    watch(&w, &dir).await;
    let info = |wanted: &'static str| {
        let calls = calls.clone();
        async move {
            calls.lock().unwrap().iter().find_map(|c| match c {
                Call::Update { path, properties } => properties
                    .get("infoMessage")
                    .and_then(|v| <&str>::try_from(&**v).ok())
                    .filter(|m| *m == wanted)
                    .map(|_| path.clone()),
                _ => None,
            })
        }
    };
    let path = wait_for("the entry saying it waits", || {
        info("2 photos to /Camera — waiting: metered connection")
    })
    .await;
    set_metered(&nm, 2).await;
    wait_for("the entry no longer waiting", || {
        info("2 photos to /Camera")
    })
    .await;
    assert_eq!(terminated(&calls, &path).await, (0, String::new()));
}

//! Desktop notifications: when a batch ends, a notification server on the session bus (here a
//! test-owned `org.freedesktop.Notifications`) receives the summary — counts, each failure
//! with its reason, the shared link — with the "Open folder", "Copy link" and "Retry failed"
//! actions; invoking "Retry failed" sends the failed photo again.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use zbus::interface;
use zbus::zvariant::{OwnedValue, Value};

use crate::helper::*;

#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub app_name: String,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
}

/// A notification server that keeps what it is asked to show (also used by `file_managers`).
pub(crate) struct FakeServer {
    pub shown: Arc<Mutex<Vec<Shown>>>,
}

#[interface(name = "org.freedesktop.Notifications")]
impl FakeServer {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        shown.push(Shown {
            app_name,
            summary,
            body,
            actions,
        });
        shown.len() as u32
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }
}

/// Serves a `FakeServer` as `org.freedesktop.Notifications` on the bus at `address`; the
/// notices shown stay in the returned list for as long as the connection lives.
pub(crate) async fn fake_server(address: &str) -> (zbus::Connection, Arc<Mutex<Vec<Shown>>>) {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let conn = zbus::connection::Builder::address(address)
        .unwrap()
        .serve_at(
            "/org/freedesktop/Notifications",
            FakeServer {
                shown: shown.clone(),
            },
        )
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .build()
        .await
        .unwrap();
    (conn, shown)
}

#[system_test]
async fn a_finished_batch_is_told_with_counts_failures_link_and_actions_and_retry_works() {
    let w = world(small_config()).await;
    let (server, shown) = fake_server(w.sandbox.bus.address()).await;

    let mut files = make_photos(&w.photo_dir(), 2);
    let locked = w.photo_dir().join("locked.jpg");
    std::fs::copy(&files[0], &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    files.push(locked.clone());
    let uploader = w.uploader().await;
    let (batch, _) = uploader
        .upload(
            paths(&files),
            "/Told".into(),
            dict(&[("share_link", Value::from(true))]),
        )
        .await
        .unwrap();
    batch_final(&uploader, batch).await;
    let notice = wait_for("the batch's notification", || async {
        shown.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(notice.app_name, "dbxport");
    assert_eq!(notice.summary, "1 of 3 photos could not be sent to Dropbox");
    assert!(notice.body.contains("2 photos in /Told"), "{}", notice.body);
    assert!(notice.body.contains("locked.jpg"), "{}", notice.body);
    assert!(notice.body.contains("Link: "), "{}", notice.body);
    assert_eq!(
        notice.actions,
        [
            "open-folder",
            "Open folder",
            "copy-link",
            "Copy link",
            "retry-failed",
            "Retry failed"
        ]
    );
    assert_eq!(shown.lock().unwrap().len(), 1, "one notification per batch");

    // The user fixes the file and clicks "Retry failed": the server says so with
    // ActionInvoked(id, key), as a real one does; the daemon queues the failed job again.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    server
        .emit_signal(
            None::<()>,
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "ActionInvoked",
            &(1u32, "retry-failed"),
        )
        .await
        .unwrap();
    wait_for("the retried batch to end with every photo sent", || async {
        let jobs = jobs(&uploader, &[("batch", Value::from(batch))]).await;
        (jobs.iter().all(|j| j.state == "done")).then_some(())
    })
    .await;
    assert_one_copy_each(&w, &files, "/told");
}

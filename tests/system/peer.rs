//! Every D-Bus interface over a peer-to-peer connection: `daemon::run` serves on whatever
//! connection it is given, so these tests run the daemon in this process on one end of a
//! socket pair and talk to it on the other — no bus daemon, no well-known name. They check
//! that each interface (Account, Folders, Uploader, Watches) answers its methods, keeps its
//! properties current (PropertiesChanged) and sends its signals to the peer.

use std::path::PathBuf;

use dbxport::config::{Config, Dirs};
use dbxport::service::{AccountProxy, FoldersProxy, UploaderProxy, WatchesProxy};
use dbxport_testkit::emulator::{Emulator, EmulatorConfig};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use zbus::zvariant::OwnedValue;

use crate::helper::{DEADLINE, hash, sample_photos, small_config, system_test, wait_for};

/// The daemon on one end of a socket pair, and the other end.
struct Peer {
    client: zbus::Connection,
    emulator: Emulator,
    shutdown: CancellationToken,
    daemon: tokio::task::JoinHandle<Result<(), dbxport::daemon::DaemonError>>,
    root: tempfile::TempDir,
}

async fn peer(mut config: Config) -> Peer {
    let root = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorConfig {
        root: root.path().join("dropbox"),
        port: 0,
        access_token: None,
        app_key: Some("dbxport-peer".into()),
    })
    .await
    .unwrap();
    config.dropbox.api_url = emulator.base_url();
    config.dropbox.content_url = emulator.base_url();
    config.dropbox.authorize_url = format!("{}/oauth2/authorize", emulator.base_url());
    // Both talk to the session bus, which a peer connection is not.
    config.notifications.enabled = false;
    config.notifications.job_tray = false;
    let dirs = Dirs {
        config_file: root.path().join("config/config.toml"),
        state: root.path().join("state"),
        cache: root.path().join("cache"),
    };
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let guid = zbus::Guid::generate();
    let (server, client) = tokio::join!(
        async {
            zbus::connection::Builder::unix_stream(theirs)
                .server(guid)
                .unwrap()
                .p2p()
                .build()
                .await
        },
        async {
            zbus::connection::Builder::unix_stream(ours)
                .p2p()
                .build()
                .await
        },
    );
    let (server, client) = (server.unwrap(), client.unwrap());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(dbxport::daemon::run(server, dirs, config, shutdown.clone()));
    Peer {
        client,
        emulator,
        shutdown,
        daemon,
        root,
    }
}

impl Peer {
    /// Stops the daemon as SIGTERM would, and checks it stopped cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.daemon)
            .await
            .expect("the daemon stops when asked")
            .unwrap()
            .expect("the daemon ran without an error");
        self.emulator.shutdown().await;
    }

    async fn account(&self) -> AccountProxy<'static> {
        // The interfaces are served a moment after the connection exists: ask until they are.
        // A call that reaches the connection before `daemon::run` has started serving on it
        // gets no answer at all (nothing reads it yet), so each try has its own deadline.
        wait_for("the Account interface to answer", || async {
            let attempt = async {
                let account = AccountProxy::new(&self.client).await.ok()?;
                account.logged_in().await.ok().map(|_| account)
            };
            tokio::time::timeout(std::time::Duration::from_secs(2), attempt)
                .await
                .ok()
                .flatten()
        })
        .await
    }
}

fn text(d: &std::collections::HashMap<String, OwnedValue>, key: &str) -> String {
    d.get(key)
        .and_then(|v| <&str>::try_from(&**v).ok())
        .unwrap_or_default()
        .to_string()
}

/// Waits for a change of the boolean property `name` to true. The stream may first give the
/// value it started from, or an earlier change still on its way (the login's), so a false is
/// passed over.
async fn changed_to_true(changes: &mut zbus::proxy::PropertyStream<'_, bool>, name: &str) {
    tokio::time::timeout(DEADLINE, async {
        while let Some(changed) = changes.next().await {
            if changed.get().await.unwrap() {
                return;
            }
        }
        panic!("the {name} stream ended");
    })
    .await
    .unwrap_or_else(|_| panic!("{name} did not change to true"));
}

#[system_test]
async fn account_and_folders_answer_over_a_peer_connection() {
    let p = peer(small_config()).await;
    let account = p.account().await;
    assert!(!account.logged_in().await.unwrap());
    let mut logged_in = account.receive_logged_in_changed().await;
    account
        .login_with_token("access".into(), p.emulator.access_token())
        .await
        .unwrap();
    // The change reaches the peer as a signal, not only as a fresh read.
    changed_to_true(&mut logged_in, "LoggedIn").await;
    // State changes in a signal of its own, which may come a moment later.
    wait_for("State logged_in", || async {
        (account.state().await.unwrap() == "logged_in").then_some(())
    })
    .await;

    let folders = FoldersProxy::new(&p.client).await.unwrap();
    let made = folders.create_folder("/Peer/Album".into()).await.unwrap();
    assert_eq!(made, "/Peer/Album");
    let listed = folders.list_folders("/Peer".into()).await.unwrap();
    assert_eq!(
        listed.iter().map(|d| text(d, "path")).collect::<Vec<_>>(),
        ["/Peer/Album"]
    );
    p.stop().await;
}

#[system_test]
async fn uploader_and_watches_work_over_a_peer_connection() {
    let p = peer(small_config()).await;
    let account = p.account().await;
    account
        .login_with_token("access".into(), p.emulator.access_token())
        .await
        .unwrap();
    let uploader = UploaderProxy::new(&p.client).await.unwrap();

    // Paused announces itself to the peer (the cached property follows the signal).
    let mut paused = uploader.receive_paused_changed().await;
    uploader.pause().await.unwrap();
    changed_to_true(&mut paused, "Paused").await;
    uploader.resume().await.unwrap();

    let photos = sample_photos();
    let mut finished = uploader.receive_batch_finished().await.unwrap();
    let (batch, jobs) = uploader
        .upload(
            photos.iter().map(|p| p.display().to_string()).collect(),
            "/Peer".into(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), photos.len());
    let summary = loop {
        let signal = tokio::time::timeout(DEADLINE, finished.next())
            .await
            .expect("BatchFinished reaches the peer")
            .unwrap();
        let args = signal.args().unwrap();
        if args.batch == batch {
            break dbxport::service::summary_from_dict(&args.summary);
        }
    };
    assert_eq!(summary.done as usize, photos.len(), "{summary:?}");
    let stored = p.emulator.files();
    for photo in &photos {
        let name = photo.file_name().unwrap().to_string_lossy();
        let file = stored
            .iter()
            .find(|f| f.path_display == format!("/Peer/{name}"))
            .unwrap_or_else(|| panic!("{name} in Dropbox"));
        assert_eq!(file.content_hash, hash(photo));
    }

    // A watch, added over the peer connection, exports what its folder holds.
    let watched: PathBuf = p.root.path().join("Camera");
    std::fs::create_dir(&watched).unwrap();
    std::fs::copy(&photos[0], watched.join("watched.jpg")).unwrap();
    let watches = WatchesProxy::new(&p.client).await.unwrap();
    let id = watches
        .add_watch(
            watched.display().to_string(),
            "/Watched".into(),
            Default::default(),
        )
        .await
        .unwrap();
    let listed = watches.list_watches().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|w| w.get("id").and_then(|v| u64::try_from(&**v).ok()) == Some(id))
    );
    let want = hash(&photos[0]);
    wait_for("the watched photo in Dropbox", || async {
        p.emulator
            .files()
            .iter()
            .any(|f| f.path_display == "/Watched/watched.jpg" && f.content_hash == want)
            .then_some(())
    })
    .await;
    p.stop().await;
}

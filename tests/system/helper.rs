//! Starting a world (bus + emulator + daemon), making photo files, running `dbxportctl`, and
//! waiting on conditions with a deadline (never a bare sleep).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use dbxport::config::{Config, MIB};
use dbxport::dropbox::content_hash::content_hash_file;
use dbxport::service::UploaderProxy;
use dbxport_testkit::sandbox::{Sandbox, SandboxOptions};
use zbus::zvariant::{OwnedValue, Value};

/// Every test here runs under it (through `use crate::helper::*`): see the test kit.
pub use dbxport_testkit::system_test;

pub const DEADLINE: Duration = Duration::from_secs(90);

pub struct World {
    pub dir: tempfile::TempDir,
    pub sandbox: Sandbox,
    pub conn: zbus::Connection,
}

/// ARCHITECTURE.md, invariant 7, for every test: no token the emulator ever issued (nor the sandbox's own
/// access token) appears in the daemon's log.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let log = self.daemon_log();
        let mut tokens = vec![self.sandbox.emulator.access_token()];
        if let Ok(bytes) = std::fs::read(self.dir.path().join("dropbox/auth.json"))
            && let Ok(auth) = serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            for kind in ["access", "refresh"] {
                if let Some(map) = auth[kind].as_object() {
                    tokens.extend(map.keys().cloned());
                }
            }
        }
        for token in tokens.iter().filter(|t| t.len() >= 16) {
            assert!(
                !log.contains(token.as_str()),
                "a token appears in the daemon's log"
            );
        }
    }
}

/// A config with small thresholds so that ordinary photos exercise upload sessions.
pub fn small_config() -> Config {
    let mut config = Config::default();
    // The keyring has its own tests; the rest keep the login in the sandbox's 0600 file.
    config.credentials.store = dbxport::config::CredentialStoreKind::File;
    config.upload.session_threshold = MIB;
    config.upload.chunk_size = 4 * MIB;
    config.upload.remote_folder = "/Default".into();
    config
}

/// Bus, emulator and a logged-in daemon.
pub async fn world(config: Config) -> World {
    let w = world_with(config, Setup::default()).await;
    w.sandbox
        .login()
        .await
        .expect("login with the emulator's token");
    w
}

/// How a world starts, beyond its config.
#[derive(Default)]
pub struct Setup {
    /// Start gnome-keyring's Secret Service on the bus before the daemon.
    pub keyring: bool,
    /// `RUST_LOG` for the daemon.
    pub log_filter: Option<String>,
    /// Run the daemon with a `/tmp` of its own, as systemd's `PrivateTmp=yes` does.
    pub private_tmp: bool,
}

/// Bus, emulator and a daemon that has not logged in.
pub async fn world_with(config: Config, setup: Setup) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd")));
    options.config = config;
    // Every daemon in the suite logs at trace level, and every log is checked for tokens when
    // its world ends (see `Drop for World`).
    options.log_filter = setup.log_filter.unwrap_or_else(|| "trace".into());
    options.private_tmp = setup.private_tmp;
    let mut sandbox = Sandbox::start(dir.path(), options)
        .await
        .expect("sandbox starts");
    if setup.keyring {
        sandbox.start_keyring().await.expect("gnome-keyring starts");
    }
    sandbox.start_daemon().await.expect("dbxportd starts");
    let conn = sandbox
        .bus
        .connect()
        .await
        .expect("connect to the private bus");
    World { dir, sandbox, conn }
}

/// Bus and emulator only: no daemon runs (nor, until a test puts an activation file in the
/// bus's service directory, can one be started).
pub async fn bare_sandbox() -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(
        dir.path(),
        SandboxOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_dbxportd"))),
    )
    .await
    .expect("sandbox starts");
    (dir, sandbox)
}

/// A loopback port nobody listens on right now (for the OAuth redirect listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    pub async fn account(&self) -> dbxport::service::AccountProxy<'static> {
        dbxport::service::AccountProxy::new(&self.conn)
            .await
            .expect("account proxy")
    }

    /// A fresh connection after the daemon restarted.
    pub async fn reconnect(&mut self) {
        self.conn = self
            .sandbox
            .bus
            .connect()
            .await
            .expect("connect to the private bus");
    }

    pub async fn uploader(&self) -> UploaderProxy<'static> {
        UploaderProxy::new(&self.conn)
            .await
            .expect("uploader proxy")
    }

    /// `dbxportctl ARGS` in this world's environment.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.sandbox
            .command(env!("CARGO_BIN_EXE_dbxportctl"))
            .args(args)
            .output()
            .expect("dbxportctl runs")
    }

    /// How many requests the emulator has seen for `route` (e.g. `/oauth2/token`).
    pub fn requests_to(&self, route: &str) -> usize {
        self.sandbox
            .emulator
            .requests()
            .iter()
            .filter(|r| r.route == route)
            .count()
    }

    /// Whether the emulator has answered any request with `status`.
    pub fn saw_status(&self, status: u16) -> bool {
        self.sandbox
            .emulator
            .requests()
            .iter()
            .any(|r| r.status == status)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.sandbox.daemon_log()).unwrap_or_default()
    }

    /// The photos directory inside this world.
    pub fn photo_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("photos");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// The real sample photos, largest first.
pub fn sample_photos() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    photos.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    photos
}

/// `n` distinct files in `dir`, copies of the sample photos cycled (each name unique), so some
/// are above the session threshold and some below.
pub fn make_photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    let samples = sample_photos();
    (0..n)
        .map(|i| {
            let sample = &samples[i % samples.len()];
            let name = format!("p{i:03}-{}", sample.file_name().unwrap().to_string_lossy());
            let path = dir.join(name);
            std::fs::copy(sample, &path).unwrap();
            path
        })
        .collect()
}

pub fn hash(path: &Path) -> String {
    content_hash_file(path).unwrap()
}

pub fn dict(pairs: &[(&str, Value<'_>)]) -> std::collections::HashMap<String, OwnedValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
        .collect()
}

pub fn paths(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Polls `check` until it returns Some, or panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(DEADLINE, what, check).await
}

/// Polls `check` until it returns Some, or panics naming `what` once `limit` has passed: for
/// the waits that need longer (or shorter) than [`DEADLINE`].
pub async fn wait_for_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A job as ListJobs returns it, reduced to what tests check.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub id: u64,
    pub source: String,
    pub remote_path: String,
    pub state: String,
    pub message: String,
    pub content_hash: Option<String>,
}

pub async fn jobs(proxy: &UploaderProxy<'_>, filter: &[(&str, Value<'_>)]) -> Vec<JobInfo> {
    proxy
        .list_jobs(dict(filter))
        .await
        .expect("ListJobs")
        .iter()
        .map(|d| {
            let s = |k: &str| {
                d.get(k)
                    .and_then(|v| <&str>::try_from(&**v).ok())
                    .map(String::from)
            };
            JobInfo {
                id: d.get("id").and_then(|v| u64::try_from(&**v).ok()).unwrap(),
                source: s("source").unwrap_or_default(),
                remote_path: s("remote_path").unwrap_or_default(),
                state: s("state").unwrap_or_default(),
                message: s("message").unwrap_or_default(),
                content_hash: s("content_hash"),
            }
        })
        .collect()
}

/// Waits until every job of `batch` is final and returns them.
pub async fn batch_final(proxy: &UploaderProxy<'_>, batch: u64) -> Vec<JobInfo> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let jobs = jobs(proxy, &[("batch", Value::from(batch))]).await;
        if jobs
            .iter()
            .all(|j| matches!(j.state.as_str(), "done" | "failed" | "cancelled"))
        {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for batch {batch} to finish: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Uploads `files` into `folder` (no options), waits for the batch to end, and checks that
/// every job is done and verified (see [`assert_jobs_verified`]); returns the jobs.
pub async fn upload_verified(
    w: &World,
    uploader: &UploaderProxy<'_>,
    files: &[PathBuf],
    folder: &str,
) -> Vec<JobInfo> {
    let (batch, _) = uploader
        .upload(paths(files), folder.into(), dict(&[]))
        .await
        .expect("Upload");
    let done = batch_final(uploader, batch).await;
    assert!(done.iter().all(|j| j.state == "done"), "{done:#?}");
    assert_jobs_verified(w, &done);
    done
}

/// Every job is done, its recorded content hash is the local file's, and the emulator holds
/// that content at the job's remote path.
pub fn assert_jobs_verified(w: &World, jobs: &[JobInfo]) {
    let stored = w.sandbox.emulator.files();
    for job in jobs {
        assert_eq!(
            job.state, "done",
            "job {} ({}): {}",
            job.id, job.source, job.message
        );
        let local = hash(Path::new(&job.source));
        assert_eq!(
            job.content_hash.as_deref(),
            Some(local.as_str()),
            "job {}",
            job.id
        );
        let remote = stored
            .iter()
            .find(|f| f.path_lower == job.remote_path.to_lowercase())
            .unwrap_or_else(|| panic!("job {}: nothing at {}", job.id, job.remote_path));
        assert_eq!(
            remote.content_hash, local,
            "job {}: {}",
            job.id, job.remote_path
        );
    }
}

impl World {
    /// Waits until the emulator has received a request whose route starts with `prefix`.
    pub async fn wait_for_request(&self, prefix: &str) {
        wait_for(&format!("a request to {prefix}"), || async {
            self.sandbox
                .emulator
                .requests()
                .iter()
                .any(|r| r.route.starts_with(prefix))
                .then_some(())
        })
        .await
    }
}

/// A Dropbox client of the test's own, standing for the Dropbox web UI or another device.
pub fn elsewhere(w: &World) -> (dbxport::dropbox::Client, dbxport::secret::Secret) {
    let base = url::Url::parse(&w.sandbox.emulator.base_url()).unwrap();
    let client = dbxport::dropbox::Client::new(dbxport::dropbox::ClientOptions {
        endpoints: dbxport::dropbox::Endpoints {
            api: base.clone(),
            content: base,
        },
        ..dbxport::dropbox::ClientOptions::default()
    })
    .unwrap();
    (
        client,
        dbxport::secret::Secret::new(w.sandbox.emulator.access_token()),
    )
}

/// The emulator holds exactly one file per local file, under `folder` (lower case) with the
/// same name and content, and no renamed copy (`name (1).ext`).
pub fn assert_one_copy_each(w: &World, files: &[PathBuf], folder: &str) {
    let stored = w.sandbox.emulator.files();
    let mut by_path: std::collections::HashMap<String, usize> = Default::default();
    for f in &stored {
        *by_path.entry(f.path_lower.clone()).or_default() += 1;
    }
    assert_eq!(
        stored.len(),
        files.len(),
        "stored: {:?}",
        stored.iter().map(|f| &f.path_display).collect::<Vec<_>>()
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        let path = format!("{folder}/{name}");
        let remote = stored
            .iter()
            .find(|f| f.path_lower == path)
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(remote.content_hash, hash(file));
    }
    assert!(
        stored.iter().all(|f| !f.path_display.contains(" (1)")),
        "a duplicate was created"
    );
}

/// Every route that carries file bytes or commits them. Tests count over all of them, so they
/// hold whichever the engine uses (single requests, sessions, batched commits).
pub const UPLOAD_ROUTES: [&str; 7] = [
    "/2/files/upload",
    "/2/files/upload_session/start",
    "/2/files/upload_session/start_batch",
    "/2/files/upload_session/append_v2",
    "/2/files/upload_session/append_batch",
    "/2/files/upload_session/finish",
    "/2/files/upload_session/finish_batch_v2",
];

pub fn is_upload_route(route: &str) -> bool {
    UPLOAD_ROUTES.contains(&route)
}

/// Request-body bytes the emulator received on the upload routes in `records` (whole bodies,
/// and what arrived of bodies cut off).
pub fn upload_bytes(records: &[dbxport_testkit::emulator::RequestRecord]) -> u64 {
    records
        .iter()
        .filter(|r| is_upload_route(&r.route))
        .map(|r| r.body_bytes)
        .sum()
}

/// Writes `size` pseudo-random bytes (xorshift64*, from `seed`) to `path`: incompressible,
/// distinct per seed, and fast enough to make a GiB in a debug build.
pub fn write_random_file(path: &Path, size: u64, seed: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

/// After each 429, no request reached Dropbox before its Retry-After (`retry_after` of that
/// answer) had passed — except requests of the other lanes that were already on the wire: they
/// arrive within moments, and never on the same route. With one transfer there are three lanes
/// (the transfer, the batch committer, and a large file's own commit, which holds no transfer
/// slot), so at most two such requests. "Moments" is 500 ms: the suite runs many daemons at
/// once on two cores, and a request already being sent can take that long to arrive; a retry
/// that ignored Retry-After would come on the same route, or later than that, and is caught
/// either way.
pub fn assert_retry_after_kept(
    requests: &[dbxport_testkit::emulator::RequestRecord],
    retry_after: impl Fn(&dbxport_testkit::emulator::RequestRecord) -> Duration,
) {
    for (i, limited) in requests.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let wait = retry_after(limited);
        let earliest = limited.received + wait;
        let early: Vec<_> = requests[i + 1..]
            .iter()
            .filter(|later| later.route.starts_with("/2/files/") && later.received < earliest)
            .collect();
        assert!(
            early.len() <= 2,
            "{} requests within Retry-After {wait:?} of a 429 on {}: {early:?}",
            early.len(),
            limited.route
        );
        for later in early {
            let after = later.received - limited.received;
            assert!(
                later.route != limited.route && after < Duration::from_millis(500),
                "{} came {after:?} after a 429 on {} with Retry-After {wait:?}",
                later.route,
                limited.route
            );
        }
    }
}

impl World {
    pub async fn watches(&self) -> dbxport::service::WatchesProxy<'static> {
        dbxport::service::WatchesProxy::new(&self.conn)
            .await
            .expect("watches proxy")
    }

    /// A watch as `ListWatches` shows it.
    pub async fn watch_view(&self, id: u64) -> dbxport::cli::WatchView {
        let listed = self
            .watches()
            .await
            .list_watches()
            .await
            .expect("ListWatches");
        listed
            .iter()
            .map(dbxport::cli::WatchView::from_dict)
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("no watch {id} in {listed:?}"))
    }

    /// Every job so far, in every state.
    pub async fn all_jobs(&self) -> Vec<JobInfo> {
        jobs(&self.uploader().await, &[]).await
    }

    /// Waits until the emulator holds a file with content hash `hash`.
    pub async fn wait_for_stored_hash(&self, what: &str, hash: &str) {
        wait_for(what, || async {
            self.sandbox
                .emulator
                .files()
                .iter()
                .any(|f| f.content_hash == hash)
                .then_some(())
        })
        .await
    }

    /// The paths of the files the emulator holds, as Dropbox displays them.
    pub fn stored_paths(&self) -> Vec<String> {
        self.sandbox
            .emulator
            .files()
            .into_iter()
            .map(|f| f.path_display)
            .collect()
    }
}

/// Requests that start sending a file's bytes: one per upload, whichever way it goes.
pub fn uploads_started(w: &World) -> usize {
    files_started(&w.sandbox.emulator.requests())
}

/// Files whose bytes began to travel in `records`: whole uploads, sessions started with data,
/// and the sessions packs (`append_batch`) sent a piece to, each counted once.
pub fn files_started(records: &[dbxport_testkit::emulator::RequestRecord]) -> usize {
    let packed: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| r.route == "/2/files/upload_session/append_batch")
        .flat_map(|r| &r.pieces)
        .map(|p| p.session.as_str())
        .collect();
    let single = records
        .iter()
        .filter(|r| r.route == "/2/files/upload" || r.route == "/2/files/upload_session/start")
        .count();
    single + packed.len()
}

/// A tmpfs mounted by a test (a camera card, a small disk to fill); unmounted on drop, so a
/// failed test leaves no mount behind.
pub struct Tmpfs(String);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", &self.0])
            .status();
    }
}

/// Mounts a tmpfs of `size` (e.g. `64m`) with `mode` at `at`; None where mounting is not
/// permitted (the tests that need it then say "skipped").
pub fn mount_tmpfs(at: &Path, size: &str, mode: &str) -> Option<Tmpfs> {
    let target = at.to_str().unwrap().to_string();
    std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode={mode}"),
            "dbxport-test",
        ])
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success())
        .then_some(Tmpfs(target))
}

/// Adds a watch of `dir` for the Dropbox folder `to` over D-Bus; returns its id.
pub async fn add_watch(w: &World, dir: &Path, to: &str, options: &[(&str, Value<'_>)]) -> u64 {
    w.watches()
        .await
        .add_watch(dir.to_string_lossy().into_owned(), to.into(), dict(options))
        .await
        .expect("AddWatch")
}

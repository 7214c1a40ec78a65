//! The engine in-process against the Dropbox emulator, with no bus and no daemon: a queue in a
//! temporary directory, a session logged in with the emulator's token, and an [`Engine`] built
//! from the library's public API alone. Each test enqueues a batch and waits (on the queue's
//! events, with a deadline) until every job is final, then checks what the emulator holds.
//!
//! What the system tests check through `dbxportd` and D-Bus, these check at the engine's own
//! seam, fast enough to run for each change (ARCHITECTURE.md, invariants 4, 5 and 6).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbxport::config::Config;
use dbxport::credentials::{Session, StorePolicy, TokenKind};
use dbxport::dropbox::content_hash::content_hash;
use dbxport::dropbox::{Client, ClientOptions, Endpoints};
use dbxport::engine::Engine;
use dbxport::export::ExportOptions;
use dbxport::queue::{FailureKind, Job, JobId, JobState, NewJob, Queue};
use dbxport::secret::Secret;
use dbxport_testkit::emulator::{Emulator, EmulatorConfig, Fault, StoredFile};
use dbxport_testkit::system_test;
use tokio_util::sync::CancellationToken;

mod network;

type Events = tokio::sync::broadcast::Receiver<dbxport::queue::JobEvent>;

const MIB: u64 = 1024 * 1024;
/// Longest wait for a batch to end; generous, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// An engine running against a fresh emulator, each in its own temporary directory.
struct Bench {
    dir: tempfile::TempDir,
    emulator: Emulator,
    queue: Queue,
    engine: std::sync::Arc<Engine>,
    shutdown: CancellationToken,
    /// Whether a policy holds watch-folder jobs (metered, on battery).
    hold: tokio::sync::watch::Sender<dbxport::policy::Hold>,
    /// The engine's `run`.
    task: tokio::task::JoinHandle<()>,
}

impl Bench {
    async fn start() -> Bench {
        Bench::start_with(|_| {}).await
    }

    /// [`Bench::start`] with the upload settings changed by `tune` first.
    async fn start_with(tune: impl FnOnce(&mut dbxport::config::UploadConfig)) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(EmulatorConfig {
            root: dir.path().join("dropbox"),
            port: 0,
            access_token: None,
            app_key: None,
        })
        .await
        .unwrap();
        let mut config = Config::default();
        // Small chunks, so that a few MiB make a session and a concurrent session.
        config.upload.session_threshold = 4 * MIB;
        config.upload.chunk_size = 4 * MIB;
        tune(&mut config.upload);
        let url = emulator.base_url().parse::<url::Url>().unwrap();
        let client = Client::new(ClientOptions {
            endpoints: Endpoints {
                api: url.clone(),
                content: url,
            },
            ca_file: None,
            user_agent: "dbxport-engine-test".into(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        })
        .unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let policy = StorePolicy {
            keyring: false,
            file_fallback: true,
            state_dir: state.clone(),
        };
        let session = Session::open(client.clone(), &config.dropbox, policy)
            .await
            .unwrap();
        session
            .login_with_token(TokenKind::Access, Secret::new(emulator.access_token()))
            .await
            .unwrap();
        let db = state.join("queue");
        let queue = tokio::task::spawn_blocking(move || Queue::open(&db))
            .await
            .unwrap()
            .unwrap();
        let prepared = dir.path().join("prepared");
        std::fs::create_dir_all(&prepared).unwrap();
        // No policy holds watch jobs back, unless a test says so.
        let (hold, auto_hold) = tokio::sync::watch::channel(Default::default());
        let engine = Engine::new(
            queue.clone(),
            session,
            client,
            config.upload.clone(),
            prepared,
            auto_hold,
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(engine.clone().run(shutdown.clone()));
        Bench {
            dir,
            emulator,
            queue,
            engine,
            shutdown,
            hold,
            task,
        }
    }

    /// A file of `size` pseudo-random bytes (seeded by its name) in the bench's directory.
    fn file(&self, name: &str, size: u64) -> (PathBuf, Vec<u8>) {
        let seed = name
            .bytes()
            .fold(0x9e37_79b9_u32, |h, b| h.rotate_left(5) ^ u32::from(b));
        let mut state = seed | 1;
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                // xorshift32: different bytes for every file, no two chunks alike.
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let path = self.dir.path().join("photos").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    /// Queues `files` for `folder` as one batch, as a caller's upload would; returns the jobs
    /// and the queue's events from before they were queued.
    async fn enqueue(&self, folder: &str, files: &[&Path]) -> (Vec<Job>, Events) {
        self.enqueue_with(folder, files, ExportOptions::default())
            .await
    }

    /// [`Bench::enqueue`] with these export options.
    async fn enqueue_with(
        &self,
        folder: &str,
        files: &[&Path],
        options: ExportOptions,
    ) -> (Vec<Job>, Events) {
        self.enqueue_from(folder, files, options, None).await
    }

    /// [`Bench::enqueue`] as a watched folder's finds (`origin`), which policies may hold.
    async fn enqueue_watched(&self, folder: &str, files: &[&Path]) -> (Vec<Job>, Events) {
        let origin = |path: &Path| {
            let stamp = dbxport::prepare::check_source(path).unwrap();
            Some(dbxport::queue::Origin {
                watch: 1,
                dev: stamp.dev,
                ino: stamp.ino,
            })
        };
        let events = self.queue.subscribe();
        let mut jobs = Vec::new();
        for path in files {
            let (one, _) = self
                .enqueue_from(folder, &[path], ExportOptions::default(), origin(path))
                .await;
            jobs.extend(one);
        }
        (jobs, events)
    }

    async fn enqueue_from(
        &self,
        folder: &str,
        files: &[&Path],
        options: ExportOptions,
        origin: Option<dbxport::queue::Origin>,
    ) -> (Vec<Job>, Events) {
        let events = self.queue.subscribe();
        let jobs = files
            .iter()
            .map(|path| NewJob {
                source: path.to_path_buf(),
                remote_path: format!("{folder}/{}", path.file_name().unwrap().to_string_lossy()),
                stamp: dbxport::prepare::check_source(path).unwrap(),
                access: Default::default(),
                replaces_rev: None,
                options: options.clone(),
                origin,
            })
            .collect();
        (self.queue.enqueue(folder, jobs).await.unwrap().1, events)
    }

    /// Waits, on the queue's events, until every one of `jobs` is final; returns each job's
    /// final record and every state it was seen in.
    async fn until_final(
        &self,
        (jobs, mut events): (Vec<Job>, Events),
    ) -> (Vec<Job>, HashMap<JobId, (Job, Vec<JobState>)>) {
        let mut seen: HashMap<JobId, (Job, Vec<JobState>)> = jobs
            .iter()
            .map(|job| (job.id, (job.clone(), vec![job.state.clone()])))
            .collect();
        let all_final = |seen: &HashMap<JobId, (Job, Vec<JobState>)>| {
            seen.values().all(|(j, _)| j.state.is_terminal())
        };
        tokio::time::timeout(DEADLINE, async {
            while !all_final(&seen) {
                match events.recv().await {
                    Ok(event) => {
                        if let Some((job, states)) = seen.get_mut(&event.job.id) {
                            states.push(event.job.state.clone());
                            *job = event.job;
                        }
                    }
                    // Missed some: the queue has the latest of each.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for (id, (job, _)) in seen.iter_mut() {
                            *job = self.queue.get(*id).unwrap().unwrap();
                        }
                    }
                    Err(e) => panic!("the queue's events ended: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not final within {DEADLINE:?}: {seen:#?}"));
        (jobs, seen)
    }

    /// The file the emulator holds at `path` (any letter case).
    fn stored(&self, path: &str) -> Option<StoredFile> {
        let lower = path.to_lowercase();
        self.emulator
            .files()
            .into_iter()
            .find(|f| f.path_lower == lower)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.emulator.shutdown().await;
    }
}

/// Asserts the job is Done and the emulator holds exactly `bytes` where it says.
fn assert_done_with(bench: &Bench, job: &Job, bytes: &[u8]) {
    let JobState::Done {
        content_hash: done_hash,
        remote_path,
        ..
    } = &job.state
    else {
        panic!("job {} not done: {:?}", job.id, job.state);
    };
    let expected = content_hash(bytes);
    assert_eq!(done_hash, &expected, "job {}", job.id);
    let stored = bench
        .stored(remote_path)
        .unwrap_or_else(|| panic!("nothing at {remote_path} in the emulator"));
    assert_eq!(stored.content_hash, expected, "{remote_path}");
    assert_eq!(stored.size, bytes.len() as u64, "{remote_path}");
}

#[system_test]
async fn small_session_and_concurrent_files_go_up_verified() {
    let bench = Bench::start().await;
    // A small file and one just under the session threshold (one chunk each, committed
    // together in a batch), and one of three chunks sent in parallel and committed alone.
    let small = bench.file("small.jpg", 100_000);
    let session = bench.file("session.jpg", 4 * MIB - 1);
    let large = bench.file("large.mov", 9 * MIB + 123);
    let queued = bench
        .enqueue("/Engine", &[&small.0, &session.0, &large.0])
        .await;
    let (jobs, finals) = bench.until_final(queued).await;
    for (job, (_, bytes)) in jobs.iter().zip([&small, &session, &large]) {
        assert_done_with(&bench, &finals[&job.id].0, bytes);
    }
    // The large file went as a concurrent session: chunks in parallel, committed alone.
    let large_states = &finals[&jobs[2].id].1;
    assert!(
        large_states.iter().any(|s| matches!(
            s,
            JobState::Uploading {
                concurrent: true,
                ..
            }
        )),
        "{large_states:#?}"
    );
    let routes: Vec<String> = bench
        .emulator
        .requests()
        .into_iter()
        .map(|r| r.route)
        .collect();
    assert!(
        routes
            .iter()
            .any(|r| r == "/2/files/upload_session/finish_batch_v2"),
        "small files are committed in a batch: {routes:?}"
    );
    bench.stop().await;
}

#[system_test]
async fn a_transient_fault_parks_the_job_as_waiting_then_it_goes_up() {
    let bench = Bench::start().await;
    // The job's own request: its skip-identical look-up. (A pack's request is many jobs'; the
    // packer waits it out itself: `packs`.)
    bench.emulator.faults().inject(
        "/2/files/get_metadata",
        Fault::ServerError { status: 503 },
        2,
    );
    let photo = bench.file("flaky.jpg", 200_000);
    let queued = bench.enqueue("/Engine", &[&photo.0]).await;
    let (jobs, finals) = bench.until_final(queued).await;
    let (job, states) = &finals[&jobs[0].id];
    assert_done_with(&bench, job, &photo.1);
    let waits = states
        .iter()
        .filter(|s| matches!(s, JobState::Waiting { .. }))
        .count();
    assert_eq!(waits, 2, "one wait per 503: {states:#?}");
    bench.stop().await;
}

#[system_test]
async fn a_refusal_classified_final_fails_that_file_and_the_rest_go_up() {
    let bench = Bench::start().await;
    // An error no client knows: retrying will not help.
    bench.emulator.faults().inject(
        "/2/files/upload_session/append_batch",
        Fault::UnknownErrorTag,
        1,
    );
    let first = bench.file("refused.jpg", 50_000);
    let queued = bench.enqueue("/Engine", &[&first.0]).await;
    let (jobs, finals) = bench.until_final(queued).await;
    let (job, states) = &finals[&jobs[0].id];
    let JobState::Failed { kind, message } = &job.state else {
        panic!("{states:#?}");
    };
    assert_eq!(*kind, FailureKind::Refused);
    assert!(
        message.contains("refused.jpg") && message.contains("/Engine/refused.jpg"),
        "the message names the file and where it was going: {message}"
    );
    assert!(
        !states.iter().any(|s| matches!(s, JobState::Waiting { .. })),
        "failed at once, never waited: {states:#?}"
    );
    assert!(bench.stored("/Engine/refused.jpg").is_none());
    // The engine goes on with the next batch.
    let next = bench.file("next.jpg", 50_000);
    let queued = bench.enqueue("/Engine", &[&next.0]).await;
    let (jobs, finals) = bench.until_final(queued).await;
    assert_done_with(&bench, &finals[&jobs[0].id].0, &next.1);
    bench.stop().await;
}

/// Queues `files` with a shared link asked for, waits for the batch's end, and returns each
/// job's final record and states, and the batch's summary.
async fn upload_with_link(
    bench: &Bench,
    files: &[&Path],
) -> (
    Vec<Job>,
    HashMap<JobId, (Job, Vec<JobState>)>,
    dbxport::queue::BatchSummary,
) {
    let mut finished = bench.engine.subscribe_batches();
    let options = ExportOptions {
        share_link: true,
        ..ExportOptions::default()
    };
    let queued = bench.enqueue_with("/Linked", files, options).await;
    let batch = queued.0[0].batch;
    let (jobs, finals) = bench.until_final(queued).await;
    let summary = tokio::time::timeout(DEADLINE, async {
        loop {
            let ended = finished.recv().await.expect("the engine's batch events");
            if ended.batch == batch {
                return ended.summary;
            }
        }
    })
    .await
    .expect("the batch's summary");
    (jobs, finals, summary)
}

#[system_test]
async fn a_shared_link_dropbox_cannot_make_yet_is_waited_for_in_the_jobs_waiting_state() {
    let bench = Bench::start().await;
    bench.emulator.faults().inject(
        "/2/sharing/create_shared_link_with_settings",
        Fault::ServerError { status: 503 },
        2,
    );
    let photos = [bench.file("l1.jpg", 30_000), bench.file("l2.jpg", 30_000)];
    let (jobs, finals, summary) = upload_with_link(&bench, &[&photos[0].0, &photos[1].0]).await;
    for (job, (_, bytes)) in jobs.iter().zip(&photos) {
        assert_done_with(&bench, &finals[&job.id].0, bytes);
    }
    // Each 503 parked the job making the link as Waiting, with the reason, and it went on.
    let link_waits: Vec<&String> = finals
        .values()
        .flat_map(|(_, states)| states)
        .filter_map(|s| match s {
            JobState::Waiting { reason, .. } if reason.contains("shared link") => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(link_waits.len(), 2, "{finals:#?}");
    assert!(link_waits[0].contains("/Linked"), "{link_waits:?}");
    let link = summary.link.expect("the summary carries the link");
    assert!(link.starts_with("https://"), "{link}");
    assert_eq!(summary.link_error, None);
    // One link for the batch: the second job found it made.
    let made = bench
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.route == "/2/sharing/create_shared_link_with_settings" && r.status == 200)
        .count();
    assert_eq!(made, 1);
    bench.stop().await;
}

#[system_test]
async fn a_shared_link_dropbox_refuses_is_reported_and_the_files_are_done() {
    let bench = Bench::start().await;
    bench.emulator.faults().inject(
        "/2/sharing/create_shared_link_with_settings",
        Fault::UnknownErrorTag,
        1,
    );
    let photo = bench.file("refused-link.jpg", 30_000);
    let (jobs, finals, summary) = upload_with_link(&bench, &[&photo.0]).await;
    let (job, states) = &finals[&jobs[0].id];
    assert_done_with(&bench, job, &photo.1);
    assert!(
        !states.iter().any(|s| matches!(s, JobState::Waiting { .. })),
        "a refusal is not waited out: {states:#?}"
    );
    assert_eq!(summary.link, None);
    let error = summary
        .link_error
        .expect("the summary says why there is no link");
    assert!(error.starts_with("no shared link for /Linked: "), "{error}");
    bench.stop().await;
}

mod packs;

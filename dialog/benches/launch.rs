//! The export dialog's launch, for BENCHMARKS.md ("Export dialog"; issue 18, "Performance"):
//! the real `dbxport-export` under Xvfb with the AT-SPI bus up, on the test kit's sandbox (the
//! real daemon on a private bus, the emulated Dropbox), opened with 200 photos, over several
//! runs (after one warm-up launch that fills the disk cache):
//!
//! - launch → window shown: from just before the process is spawned to the end of the
//!   window's first painted frame, which the dialog logs at debug ("window shown", its
//!   frame clock's after-paint; `dialog/src/view/timing.rs`); also the first thumbnail's
//!   decode, which must come after it (thumbnails never hold the window back);
//! - the same launch as an outside observer sees it: until AT-SPI reports the window's frame
//!   showing (polled by `drive.py launch-time`), beside a peer GTK 4 application
//!   (`gtk4-demo`, package gtk-4-examples, when installed) measured the same way;
//! - the first folder level: from `ListFolders`'s answer arriving in the dialog to the end
//!   of the frame that shows the folders ("folders answered" → "folders shown");
//! - the dialog's RSS (`VmRSS`, `VmHWM`) with 200 photos, once every thumbnail is loaded.
//!
//! Run: `cargo bench -p dbxport-export --bench launch` (release), or with `--profile dev` to
//! reuse the test build; `BENCH_RUNS` (default 5); `GSK_RENDERER` (e.g. `cairo`) is passed to
//! the dialog and the peer. Needs what the desktop tests need
//! (`tests/deps`), and `cargo build -p dbxport --bins` of the same profile for the daemon.

#[allow(dead_code, unused_imports)]
#[path = "../tests/desktop/helper.rs"]
mod helper;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dbxport::service::FoldersProxy;
use helper::{Desktop, samples, sandbox};

const PHOTOS: usize = 200;
const FOLDERS: usize = 30;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// 200 photos: the project's JPEG samples (12 MP down to small), hard-linked under distinct
/// names, so every row and every thumbnail is its own file and the disk holds one copy.
fn photos(dir: &Path) -> Vec<PathBuf> {
    let samples = samples();
    let sources: Vec<PathBuf> = [
        "IMG_20200608_111614.jpg",
        "Dragonfly_by_Bolly.jpg",
        "xmp_test.jpg",
        "canon-sx530-o6.jpg",
        "sample1.jpg",
        "flower.jpg",
    ]
    .iter()
    .map(|n| samples.join(n))
    .collect();
    std::fs::create_dir_all(dir).unwrap();
    (0..PHOTOS)
        .map(|i| {
            let to = dir.join(format!("IMG_{i:04}.jpg"));
            let from = &sources[i % sources.len()];
            if std::fs::hard_link(from, &to).is_err() {
                std::fs::copy(from, &to).unwrap();
            }
            to
        })
        .collect()
}

/// The `unix_us` of the first log line holding `message`, once it is there.
fn logged_at(log: &Path, message: &str) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains(message))?;
    let field = line
        .split_whitespace()
        .find(|w| w.starts_with("unix_us="))?;
    field.trim_start_matches("unix_us=").parse().ok()
}

async fn wait_logged(log: &Path, message: &str) -> u64 {
    helper::wait_for(message, || logged_at(log, message)).await
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Run {
    main_ms: f64,
    built_ms: f64,
    presented_ms: f64,
    shown_ms: f64,
    listed_ms: f64,
    first_thumb_ms: f64,
    thumbs_done_ms: f64,
    folders_ms: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

async fn one_launch(desktop: &Desktop, photos: &[PathBuf], log: &Path) -> Run {
    let spawned = unix_us();
    let dialog = desktop.dialog_with(photos, log, &[("RUST_LOG", "dbxport_export=debug")]);
    let shown = wait_logged(log, "window shown").await;
    let main = wait_logged(log, "started").await;
    let built = wait_logged(log, "window built").await;
    let presented = wait_logged(log, "window presented").await;
    let listed = wait_logged(log, "photos listed").await;
    let first_thumb = wait_logged(log, "first thumbnail decoded").await;
    let folders_answered = wait_logged(log, "folders answered").await;
    let folders_shown = wait_logged(log, "folders shown").await;
    let thumbs_done = wait_logged(log, "thumbnails done").await;
    // Settled: every thumbnail in, the folders drawn.
    let (rss_kib, hwm_kib) = memory_kib(dialog.pid());
    drop(dialog);
    let ms = |from: u64, to: u64| (to as f64 - from as f64) / 1000.0;
    Run {
        main_ms: ms(spawned, main),
        built_ms: ms(spawned, built),
        presented_ms: ms(spawned, presented),
        shown_ms: ms(spawned, shown),
        listed_ms: ms(spawned, listed),
        first_thumb_ms: ms(spawned, first_thumb),
        thumbs_done_ms: ms(spawned, thumbs_done),
        folders_ms: ms(folders_answered, folders_shown),
        rss_kib,
        hwm_kib,
    }
}

/// Milliseconds until AT-SPI reports a frame of `app` showing, for `command`.
async fn atspi_launch(desktop: &Desktop, app: &str, command: &[&str]) -> f64 {
    let mut args = vec![app];
    args.extend_from_slice(command);
    let out = desktop.drive("launch-time", &args).await;
    out.lines()
        .find_map(|l| l.strip_prefix("launch_ms="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no launch_ms in {out}"))
}

fn summary(label: &str, values: &[f64], unit: &str) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let list: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
    println!(
        "{label}: median {median:.1} {unit}, min {:.1}, max {:.1} (runs: {})",
        sorted[0],
        sorted[sorted.len() - 1],
        list.join(", ")
    );
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench(runs));
}

async fn bench(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path(), true).await;
    let conn = sandbox.bus.connect().await.unwrap();
    let folders = FoldersProxy::new(&conn).await.unwrap();
    for i in 0..FOLDERS {
        folders
            .create_folder(format!("/Album {i:02}"))
            .await
            .unwrap();
    }
    let photos = photos(&dir.path().join("photos"));
    let mut desktop = Desktop::start(&sandbox).await;
    // GTK's renderer, for both the dialog and the peer: GL (llvmpipe under Xvfb) by default.
    let renderer = std::env::var("GSK_RENDERER").unwrap_or_default();
    if !renderer.is_empty() {
        desktop.set_env("GSK_RENDERER", &renderer);
    }
    let exe = env!("CARGO_BIN_EXE_dbxport-export");
    println!(
        "export dialog, {PHOTOS} photos, {FOLDERS} folders at the top, {runs} runs after a warm-up; \
         GSK_RENDERER={renderer:?}; {exe}"
    );

    // Warm-up: fonts, icons, GTK's and the photos' pages into the page cache.
    let started = Instant::now();
    one_launch(&desktop, &photos, &dir.path().join("warm-up.log")).await;
    println!("warm-up launch done in {:?}", started.elapsed());

    let mut results = Vec::new();
    for run in 0..runs {
        let log = dir.path().join(format!("launch-{run}.log"));
        let r = one_launch(&desktop, &photos, &log).await;
        println!(
            "run {run}: main() {:.0} ms, window built {:.0}, presented {:.0}, first frame {:.0}; \
             200 rows {:.0}; first thumbnail {:.0} ms; all thumbnails {:.0} ms; \
             folders answer → shown {:.1} ms; RSS {:.1} MiB (peak {:.1} MiB)",
            r.main_ms,
            r.built_ms,
            r.presented_ms,
            r.shown_ms,
            r.listed_ms,
            r.first_thumb_ms,
            r.thumbs_done_ms,
            r.folders_ms,
            r.rss_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0
        );
        assert!(
            r.shown_ms < r.first_thumb_ms,
            "run {run}: a thumbnail was decoded before the window was shown"
        );
        results.push(r);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    summary(
        "launch → first frame painted (dialog's log)",
        &results.iter().map(|r| r.shown_ms).collect::<Vec<_>>(),
        "ms",
    );
    summary(
        "launch → all 200 photos listed (rows made)",
        &results.iter().map(|r| r.listed_ms).collect::<Vec<_>>(),
        "ms",
    );
    summary(
        "launch → first thumbnail decoded",
        &results.iter().map(|r| r.first_thumb_ms).collect::<Vec<_>>(),
        "ms",
    );
    summary(
        "launch → all 200 thumbnails",
        &results.iter().map(|r| r.thumbs_done_ms).collect::<Vec<_>>(),
        "ms",
    );
    summary(
        "ListFolders answer → folders painted",
        &results.iter().map(|r| r.folders_ms).collect::<Vec<_>>(),
        "ms",
    );
    summary(
        "RSS with 200 photos, thumbnails loaded",
        &results
            .iter()
            .map(|r| r.rss_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
        "MiB",
    );

    // As an outside observer: until AT-SPI sees the frame, the dialog and a peer.
    let mut dialog_atspi = Vec::new();
    let photo_args: Vec<&str> = photos.iter().map(|p| p.to_str().unwrap()).collect();
    let mut command = vec![exe];
    command.extend(photo_args.iter().copied());
    for _ in 0..runs {
        dialog_atspi.push(atspi_launch(&desktop, "dbxport-export", &command).await);
    }
    summary(
        "launch → AT-SPI sees the frame: dbxport-export",
        &dialog_atspi,
        "ms",
    );
    let peer = "/usr/bin/gtk4-demo";
    if Path::new(peer).exists() {
        let mut peer_atspi = Vec::new();
        for _ in 0..runs {
            peer_atspi.push(atspi_launch(&desktop, "gtk4-demo", &[peer]).await);
        }
        summary(
            "launch → AT-SPI sees the frame: gtk4-demo",
            &peer_atspi,
            "ms",
        );
    } else {
        println!("{peer} is not installed (apt: gtk-4-examples): no peer measured");
    }
}

//! Watch folders: complete photos that land in a watched folder are exported once — not while
//! they are written, not again after a restart, a rename or a touch — and a folder that goes
//! away is reported and picked up again when it returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbxport::service::WatchesProxy;
use zbus::zvariant::Value;

use crate::helper::*;

/// Short settle time so tests run quickly; the daemon's default is 2 s.
fn watch_config() -> dbxport::config::Config {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    config
}

impl World {
    async fn watches(&self) -> WatchesProxy<'static> {
        WatchesProxy::new(&self.conn).await.expect("watches proxy")
    }

    /// Every job so far, in every state.
    async fn all_jobs(&self) -> Vec<JobInfo> {
        jobs(&self.uploader().await, &[]).await
    }
}

async fn add_watch(w: &World, dir: &Path, to: &str, options: &[(&str, Value<'_>)]) -> u64 {
    w.watches()
        .await
        .add_watch(dir.to_string_lossy().into_owned(), to.into(), dict(options))
        .await
        .expect("AddWatch")
}

/// Waits until `n` jobs exist and all are Done; returns them.
async fn jobs_done(w: &World, n: usize) -> Vec<JobInfo> {
    wait_for(&format!("{n} jobs done"), || async {
        let jobs = w.all_jobs().await;
        (jobs.len() >= n && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await
}

fn copy_photo(to: &Path) -> PathBuf {
    let sample = sample_photos().into_iter().next().unwrap();
    std::fs::copy(&sample, to).unwrap();
    to.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_folder_exports_what_it_holds_and_what_arrives() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("camera");
    std::fs::create_dir(&dir).unwrap();
    let photos = make_photos(&dir, 3);
    std::fs::write(dir.join("notes.txt"), b"not a photo").unwrap();
    let id = add_watch(&w, &dir, "/Camera", &[]).await;

    let done = jobs_done(&w, 3).await;
    assert_eq!(done.len(), 3, "{done:#?}");
    assert_jobs_verified(&w, &done);

    // An atomic save: written under a temporary name, then renamed into place.
    let tmp = dir.join(".new.jpg.part");
    copy_photo(&tmp);
    let saved = dir.join("new.jpg");
    std::fs::rename(&tmp, &saved).unwrap();
    let done = jobs_done(&w, 4).await;
    assert_eq!(done.len(), 4, "{done:#?}");
    let stored: Vec<String> = w
        .sandbox
        .emulator
        .files()
        .into_iter()
        .map(|f| f.path_display)
        .collect();
    assert!(
        stored.contains(&"/Camera/new.jpg".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored
            .iter()
            .any(|p| p.contains(".part") || p.ends_with(".txt"))
    );
    for photo in &photos {
        let name = photo.file_name().unwrap().to_string_lossy();
        assert!(stored.contains(&format!("/Camera/{name}")), "{stored:?}");
    }

    let listed = w.watches().await.list_watches().await.unwrap();
    assert_eq!(listed.len(), 1);
    let view = dbxport::cli::WatchView::from_dict(&listed[0]);
    assert_eq!(view.id, id);
    assert_eq!(view.state, "active");
    assert_eq!(view.remote_folder, "/Camera");
    assert_eq!(view.uploaded, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_writer_gives_one_job_after_its_last_write() {
    let w = world(watch_config()).await;
    let dir = w.dir.path().join("import");
    std::fs::create_dir(&dir).unwrap();
    add_watch(&w, &dir, "/Import", &[]).await;

    // 20 MB in 100 chunks over about 5 s, the file open throughout.
    let path = dir.join("DSC_0001.JPG");
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in data.chunks(200_000) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        // Pacing the writer is the point of the test, not synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            w.all_jobs().await.is_empty(),
            "a job was made while the file was being written"
        );
    }
    drop(file);
    let done = jobs_done(&w, 1).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(
        done[0].content_hash.as_deref(),
        Some(hash(&path).as_str()),
        "the finished file went up"
    );
}

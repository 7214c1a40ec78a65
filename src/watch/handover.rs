//! Handing over: candidates whose settle time passed are looked at once more, and those that
//! stayed the same and that no process has open for writing are queued, unless the
//! uploaded-index knows them; then their jobs are followed to the end, and a file edited while
//! its job ran is looked at again once that job ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::settle::Verdict;
use super::{FileId, Outcome, Uploaded, Watcher, intake, writers};
use crate::prepare::{self, SourceError, Stamp};
use crate::queue::{Filter, JobState, Origin, QueueError};

impl Watcher {
    /// Looks at candidates whose settle time has passed; hands over those that stayed the same
    /// since the last look (made when the writer closed the file, or by the scan) and that no
    /// process has open for writing.
    pub(super) async fn settle_due(&self) {
        let now = Instant::now();
        let due: Vec<(u64, PathBuf, PathBuf)> = {
            let state = self.state();
            state
                .settle
                .due(now)
                .into_iter()
                .filter_map(|(watch, path)| {
                    let root = state.watches.get(&watch)?.spec.local_dir.clone();
                    Some((watch, root, path))
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let looks: Vec<(PathBuf, PathBuf)> =
            due.iter().map(|(_, r, p)| (r.clone(), p.clone())).collect();
        let looked = tokio::task::spawn_blocking(move || {
            looks
                .iter()
                .map(|(root, path)| prepare::stat_beneath(root, path))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut settled: Vec<(u64, PathBuf, PathBuf, Stamp)> = Vec::new();
        {
            let mut state = self.state();
            for ((watch, root, path), look) in due.into_iter().zip(looked) {
                let key = (watch, path);
                if let Err(SourceError::Symlink(_)) = &look
                    && let Err(e) = &look
                {
                    tracing::warn!(watch, "not exported: {e}");
                }
                if let Verdict::Settled(stamp) = state.settle.judge(&key, look.ok(), now) {
                    let (watch, path) = key;
                    settled.push((watch, root, path, stamp));
                }
            }
        }
        if settled.is_empty() {
            return;
        }
        let asks: Vec<(PathBuf, PathBuf, u64, u64)> = settled
            .iter()
            .map(|(_, root, path, stamp)| (root.clone(), path.clone(), stamp.dev, stamp.ino))
            .collect();
        let written = tokio::task::spawn_blocking(move || {
            let asks: Vec<(&Path, &Path, u64, u64)> = asks
                .iter()
                .map(|(r, p, dev, ino)| (r.as_path(), p.as_path(), *dev, *ino))
                .collect();
            writers::being_written(&asks)
        })
        .await
        .unwrap_or_default();
        let mut ready: BTreeMap<u64, Vec<(PathBuf, Stamp)>> = BTreeMap::new();
        {
            let mut state = self.state();
            for ((watch, _, path, stamp), written) in settled
                .into_iter()
                .zip(written.into_iter().chain(std::iter::repeat(true)))
            {
                if written {
                    // Quiet, but some program still has it open for writing (a stalled copy
                    // or download): it waits for the close, whose event brings it back.
                    tracing::info!(
                        watch,
                        "{}: still open for writing by another program; waiting until it is \
                         closed",
                        path.display()
                    );
                    state.settle.still_written((watch, path), now);
                } else {
                    ready.entry(watch).or_default().push((path, stamp));
                }
            }
        }
        for (watch, files) in ready {
            if let Err(e) = self.hand_over(watch, files).await {
                tracing::warn!(watch, "could not queue found files: {e}");
            }
        }
    }

    /// Queues the settled files of one watch that the index does not know as uploaded.
    async fn hand_over(&self, watch: u64, files: Vec<(PathBuf, Stamp)>) -> Result<(), QueueError> {
        let Some(spec) = self.state().watches.get(&watch).map(|l| l.spec.clone()) else {
            return Ok(());
        };
        let store = self.store.clone();
        let in_flight: Vec<Origin> = {
            let mut state = self.state();
            let busy: Vec<(Origin, PathBuf)> = files
                .iter()
                .map(|(path, stamp)| {
                    let origin = Origin {
                        watch,
                        dev: stamp.dev,
                        ino: stamp.ino,
                    };
                    (origin, path.clone())
                })
                .filter(|(o, _)| state.in_flight.contains_key(o))
                .collect();
            let origins = busy.iter().map(|(o, _)| *o).collect();
            state.deferred.extend(busy);
            origins
        };
        let spec_for_check = spec.clone();
        let settings = self.profile_settings();
        let (current_folder, _, _) = spec.current(&settings.defaults, &settings.profiles);
        let new_jobs = tokio::task::spawn_blocking(move || {
            intake::jobs_for(&store, &spec_for_check, &settings, files, &in_flight)
        })
        .await
        .map_err(|e| QueueError::Join(e.to_string()))??;
        if new_jobs.is_empty() {
            return Ok(());
        }
        // A plain folder is the batch's, as the watch names it; a template's batch goes to the
        // folder holding all its files (the one its shared link shows).
        let plain = crate::template::Template::parse(&current_folder).is_ok_and(|t| t.is_plain());
        let folder = match plain {
            true => current_folder,
            false => crate::intake::common_folder(new_jobs.iter().map(|j| {
                j.remote_path
                    .rsplit_once('/')
                    .map_or("", |(folder, _)| folder)
            })),
        };
        let folder = if folder.is_empty() {
            "/".to_string()
        } else {
            folder
        };
        tracing::info!(
            watch,
            "{} new file(s) in {} for {folder}",
            new_jobs.len(),
            spec.local_dir.display()
        );
        let (_, jobs) = self.queue.enqueue(&folder, new_jobs).await?;
        let mut state = self.state();
        for job in jobs {
            if let Some(origin) = job.origin {
                state.in_flight.insert(origin, job.id);
            }
        }
        Ok(())
    }

    /// A watch job ended. A Done was recorded in the index by the queue, with the Done itself;
    /// a failure or cancellation is recorded here, so the file is not handed over again until
    /// it changes (`dbxportctl retry` sends it again).
    pub(super) async fn on_job(&self, job: crate::queue::Job) {
        let Some(origin) = job.origin else {
            return;
        };
        let outcome = match &job.state {
            JobState::Done { .. } => Outcome::Done,
            JobState::Failed { .. } => Outcome::Failed,
            JobState::Cancelled => Outcome::Cancelled,
            _ => return,
        };
        self.state().in_flight.remove(&origin);
        self.look_again(&[origin]);
        if outcome == Outcome::Done || !self.state().watches.contains_key(&origin.watch) {
            return;
        }
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.record(
                origin.watch,
                FileId {
                    dev: origin.dev,
                    ino: origin.ino,
                },
                &Uploaded {
                    path: job.source.clone(),
                    size: job.source_size,
                    mtime_ms: job.source_mtime_ms,
                    ctime_ns: (job.source_ino != 0).then_some(job.source_ctime_ns),
                    hash: None,
                    remote_path: None,
                    rev: None,
                    outcome,
                },
            )
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::warn!("could not record an uploaded file: {e}");
        }
    }

    /// Missed some job events: rebuild what is in flight from the queue.
    pub(super) fn resync_in_flight(&self) {
        let Ok(active) = self.queue.list(Filter::Active) else {
            return;
        };
        let ended: Vec<Origin> = {
            let mut state = self.state();
            state.in_flight = active
                .into_iter()
                .filter_map(|j| j.origin.map(|o| (o, j.id)))
                .collect();
            let in_flight = &state.in_flight;
            state
                .deferred
                .keys()
                .filter(|o| !in_flight.contains_key(o))
                .copied()
                .collect()
        };
        self.look_again(&ended);
    }

    /// Files deferred while their jobs ran become candidates again (the index then decides
    /// whether what is there now still needs to go).
    fn look_again(&self, ended: &[Origin]) {
        let mut state = self.state();
        let now = Instant::now();
        let mut any = false;
        for origin in ended {
            if let Some(path) = state.deferred.remove(origin) {
                state.settle.again((origin.watch, path), now);
                any = true;
            }
        }
        drop(state);
        if any {
            self.wake.notify_one();
        }
    }
}

//! The batch as the window shows it once Start is pressed: each file's state, one bar for the
//! batch, the rate and the time left, from `JobStateChanged`, `JobProgress` and
//! `BatchFinished` (the same signals `dbxportctl upload --wait` follows: ARCHITECTURE.md,
//! "Inside `cli`"). Time is passed in, so the arithmetic is tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dbxport::queue::BatchSummary;

pub use dbxport::queue::Phase;

/// A phase as a file's row says it.
pub fn phase_label(phase: Phase) -> String {
    use crate::i18n::tr;
    tr(match phase {
        Phase::Queued => "Queued",
        Phase::Preparing => "Preparing",
        Phase::Uploading => "Uploading",
        Phase::Committing => "Saving in Dropbox",
        Phase::Waiting => "Waiting",
        Phase::Done => "Done",
        Phase::Failed => "Failed",
        Phase::Cancelled => "Cancelled",
    })
}

/// One file of the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProgress {
    pub job: u64,
    pub name: String,
    pub phase: Phase,
    pub sent: u64,
    /// Bytes to send (0 until the first `JobProgress`: a resized copy's size is known only
    /// once it is made).
    pub total: u64,
    /// Why it failed or waits.
    pub message: String,
}

impl FileProgress {
    /// This file's share done, 0–1.
    pub fn fraction(&self) -> f64 {
        match self.phase {
            p if p.is_final() => 1.0,
            _ if self.total > 0 => (self.sent as f64 / self.total as f64).min(1.0),
            _ => 0.0,
        }
    }
}

/// How the batch stands, for the line under the bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub done: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub unfinished: usize,
}

/// How far back the rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// The shortest span of readings a rate is told from.
const MIN_RATE_SPAN: Duration = Duration::from_secs(1);

/// The batch followed to its end.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    pub batch: u64,
    files: Vec<FileProgress>,
    index: HashMap<u64, usize>,
    /// (when, bytes sent in all) over the last [`RATE_WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    summary: Option<BatchSummary>,
}

impl BatchProgress {
    /// `Upload` answered with the batch and its jobs, in the order of the paths given.
    pub fn new(batch: u64, jobs: &[u64], names: &[String]) -> BatchProgress {
        let files: Vec<FileProgress> = jobs
            .iter()
            .zip(
                names
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("")),
            )
            .map(|(&job, name)| FileProgress {
                job,
                name: name.to_owned(),
                phase: Phase::Queued,
                sent: 0,
                total: 0,
                message: String::new(),
            })
            .collect();
        let index = files.iter().enumerate().map(|(i, f)| (f.job, i)).collect();
        BatchProgress {
            batch,
            files,
            index,
            samples: VecDeque::new(),
            summary: None,
        }
    }

    pub fn files(&self) -> &[FileProgress] {
        &self.files
    }

    /// The row of a job, for the window to update just that row.
    pub fn position(&self, job: u64) -> Option<usize> {
        self.index.get(&job).copied()
    }

    /// `JobStateChanged`; a signal for another batch is ignored. Returns the row changed.
    pub fn state(&mut self, job: u64, batch: u64, state: &str, message: &str) -> Option<usize> {
        if batch != self.batch {
            return None;
        }
        let phase = Phase::parse(state)?;
        let i = self.position(job)?;
        let file = &mut self.files[i];
        // Out of a final state a job only goes back to the start (Retry failed): anything
        // else is a late signal.
        if file.phase.is_final() && !phase.is_final() && phase != Phase::Queued {
            return None;
        }
        if phase == Phase::Queued {
            file.sent = 0;
        }
        file.phase = phase;
        file.message = match phase {
            Phase::Failed | Phase::Waiting => message.to_owned(),
            _ => String::new(),
        };
        if phase == Phase::Done && file.total > 0 {
            file.sent = file.total;
        }
        if !phase.is_final() {
            // Retried: the batch is no longer over.
            self.summary = None;
        }
        Some(i)
    }

    /// `JobProgress`, heard at `now`. Returns the row changed.
    pub fn progress(&mut self, job: u64, sent: u64, total: u64, now: Instant) -> Option<usize> {
        let i = self.position(job)?;
        let file = &mut self.files[i];
        if file.phase.is_final() {
            return None;
        }
        file.total = total;
        file.sent = sent.min(total);
        let all = self.sent();
        self.samples.push_back((now, all));
        while let Some(&(t, _)) = self.samples.front() {
            if now.duration_since(t) > RATE_WINDOW {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        Some(i)
    }

    /// `BatchFinished` (its `a{sv}` read with the product's `summary_from_dict`).
    pub fn finished(&mut self, batch: u64, summary: BatchSummary) -> bool {
        if batch != self.batch {
            return false;
        }
        self.summary = Some(summary);
        true
    }

    fn sent(&self) -> u64 {
        self.files.iter().map(|f| f.sent).sum()
    }

    /// The batch's bar, 0–1: by bytes once every unfinished file's size is known, else by
    /// files (a resized copy's size is known only once it is made).
    pub fn fraction(&self) -> f64 {
        if self.files.is_empty() {
            return 1.0;
        }
        let sizes_known = self.files.iter().all(|f| f.phase.is_final() || f.total > 0);
        let total: u64 = self.files.iter().map(|f| f.total).sum();
        if sizes_known && total > 0 {
            let done: u64 = self
                .files
                .iter()
                .map(|f| if f.phase.is_final() { f.total } else { f.sent })
                .sum();
            // Files that ended without a size (failed before sending) count as whole.
            let sizeless = self.files.iter().filter(|f| f.total == 0).count();
            let per_file = total as f64 / (self.files.len() - sizeless).max(1) as f64;
            let all = total as f64 + sizeless as f64 * per_file;
            (done as f64 + sizeless as f64 * per_file) / all
        } else {
            self.files.iter().map(FileProgress::fraction).sum::<f64>() / self.files.len() as f64
        }
    }

    /// Bytes per second over the last few seconds (None until the readings span a second: a
    /// rate over a moment is the burst of one chunk, not the speed).
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= MIN_RATE_SPAN.as_secs_f64() && b1 > b0).then(|| (b1 - b0) as f64 / secs)
    }

    /// Time left at the current rate, when every size is known.
    pub fn time_left(&self) -> Option<Duration> {
        let rate = self.rate()?;
        if !self.files.iter().all(|f| f.phase.is_final() || f.total > 0) {
            return None;
        }
        let left: u64 = self
            .files
            .iter()
            .filter(|f| !f.phase.is_final())
            .map(|f| f.total - f.sent)
            .sum();
        Some(Duration::from_secs_f64(left as f64 / rate))
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.files {
            match f.phase {
                Phase::Done => c.done += 1,
                Phase::Failed => c.failed += 1,
                Phase::Cancelled => c.cancelled += 1,
                _ => c.unfinished += 1,
            }
        }
        c
    }

    /// Every file is final.
    pub fn all_final(&self) -> bool {
        self.files.iter().all(|f| f.phase.is_final())
    }

    /// The daemon's summary, once the batch ended.
    pub fn summary(&self) -> Option<&BatchSummary> {
        self.summary.as_ref()
    }

    /// The failed files with their reasons, for the end's list.
    pub fn failures(&self) -> Vec<&FileProgress> {
        self.files
            .iter()
            .filter(|f| f.phase == Phase::Failed)
            .collect()
    }

    /// The line under the bar: "2 of 3 sent · 1.2 MB/s · 5 s left".
    pub fn status_line(&self) -> String {
        use crate::i18n::tr;
        let c = self.counts();
        let mut line = tr("{done} of {all} sent")
            .replace("{done}", &c.done.to_string())
            .replace("{all}", &self.files.len().to_string());
        if c.failed > 0 {
            line.push_str(&tr(" · {n} failed").replace("{n}", &c.failed.to_string()));
        }
        if c.unfinished > 0 {
            if let Some(rate) = self.rate() {
                line.push_str(&format!(" · {}/s", super::human_size(rate as u64)));
            }
            if let Some(left) = self.time_left() {
                line.push_str(
                    &tr(" · {s} s left").replace("{s}", &left.as_secs().max(1).to_string()),
                );
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> BatchProgress {
        BatchProgress::new(7, &[1, 2], &["a.jpg".into(), "b.jpg".into()])
    }

    #[test]
    fn the_bar_follows_bytes_once_sizes_are_known_and_files_before() {
        let t = Instant::now();
        let mut b = batch();
        assert_eq!(b.fraction(), 0.0);
        assert_eq!(b.state(1, 7, "uploading", ""), Some(0));
        b.progress(1, 250, 1000, t);
        // b.jpg's size is not known yet: by files (a quarter of one of two).
        assert_eq!(b.fraction(), 0.125);
        b.progress(2, 0, 3000, t);
        // By bytes: 250 of 4000.
        assert_eq!(b.fraction(), 250.0 / 4000.0);
        assert_eq!(b.state(1, 7, "done", ""), Some(0));
        assert_eq!(b.fraction(), 1000.0 / 4000.0);
        // Another batch's signals change nothing.
        assert_eq!(b.state(2, 8, "failed", "x"), None);
        b.state(2, 7, "failed", "/p/b.jpg: Dropbox is full");
        assert_eq!(b.fraction(), 1.0);
        assert!(b.all_final());
        assert_eq!(
            b.counts(),
            Counts {
                done: 1,
                failed: 1,
                cancelled: 0,
                unfinished: 0
            }
        );
        assert_eq!(b.failures()[0].message, "/p/b.jpg: Dropbox is full");
        assert_eq!(b.status_line(), "1 of 2 sent · 1 failed");
    }

    #[test]
    fn rate_and_time_left_come_from_the_last_seconds() {
        let t = Instant::now();
        let mut b = batch();
        b.progress(1, 0, 4000, t);
        b.progress(2, 0, 4000, t);
        assert_eq!(b.rate(), None);
        // A burst within a moment is no rate yet.
        b.progress(1, 500, 4000, t + Duration::from_millis(200));
        assert_eq!(b.rate(), None);
        b.progress(1, 1000, 4000, t + Duration::from_secs(1));
        b.progress(2, 1000, 4000, t + Duration::from_secs(2));
        assert_eq!(b.rate(), Some(1000.0));
        assert_eq!(b.time_left(), Some(Duration::from_secs(6)));
        assert_eq!(b.status_line(), "0 of 2 sent · 1.0 kB/s · 6 s left");
        // Readings older than the window are dropped: the rate is now's.
        // At 6 s the readings at 0 s are out of the window: 4000 bytes from 1 s to 6 s.
        b.progress(1, 4000, 4000, t + Duration::from_secs(6));
        assert_eq!(b.rate(), Some(800.0));
    }

    #[test]
    fn a_retry_reopens_the_batch_and_late_signals_do_not_undo_an_end() {
        let mut b = batch();
        b.state(1, 7, "done", "");
        b.state(2, 7, "failed", "gone");
        assert!(b.finished(7, BatchSummary::default()));
        assert!(!b.finished(9, BatchSummary::default()));
        assert!(b.summary().is_some());
        // A late "uploading" for a done job is ignored.
        assert_eq!(b.state(1, 7, "uploading", ""), None);
        // Retry failed: the job is queued again and the batch is not over.
        assert_eq!(b.state(2, 7, "queued", ""), Some(1));
        assert!(b.summary().is_none());
        assert!(!b.all_final());
        assert_eq!(b.files()[1].message, "");
    }
}

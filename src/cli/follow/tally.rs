//! What `--wait` has learnt about the batch: each job's state, size and progress, from the
//! signals and the resyncs, and which of the two is newer for a job.

use std::collections::{HashMap, HashSet};

use zbus::zvariant::OwnedValue;

use super::screen::{Screen, result_line};
use crate::cli::jobs::JobView;
use crate::cli::term;

pub(super) use crate::queue::Phase;

/// One job of the batch, as small as it can be.
pub(super) struct Tracked {
    pub(super) phase: Phase,
    pub(super) size: u64,
    pub(super) sent: u64,
    /// The local path, to cut it out of the daemon's messages (the name says it shorter).
    pub(super) source: Box<str>,
    /// The file name, as shown.
    pub(super) name: Box<str>,
    pub(super) skipped: bool,
    /// Why it failed (or why it waits).
    pub(super) message: Box<str>,
    /// Where it landed, when Dropbox stored it under another name.
    pub(super) stored_as: Option<Box<str>>,
    /// The final state whose line was printed: a late or repeated signal does not print it
    /// twice.
    pub(super) printed: Option<Phase>,
    /// The tally's signal count when a signal last touched this job: a `ListJobs` answer
    /// older than that is stale for it.
    pub(super) signal_seq: u64,
}

/// What has been learnt about the batch; shared by the draining task and the resync.
pub(super) struct Tally {
    /// None until `Upload` has answered.
    pub(super) batch: Option<u64>,
    /// Batch ends heard before the batch's id was known (a tiny batch can end that fast).
    pub(super) early_summaries: Vec<(u64, HashMap<String, OwnedValue>)>,
    pub(super) jobs: HashMap<u64, Tracked>,
    /// Signals applied so far.
    pub(super) seq: u64,
    pub(super) summary: Option<HashMap<String, OwnedValue>>,
    /// The daemon came back (or went): resync now.
    pub(super) owner_changed: bool,
    /// A signal stream ended: the connection to the bus is gone.
    pub(super) lost: bool,
    /// Waiting reasons already told, so that an outage is one line, not one per file and try.
    pub(super) said: HashSet<String>,
    /// Nothing is drawn before the first resync has found the batch's jobs.
    pub(super) screen: Screen,
    /// Told the batch's bytes sent and its total at every change, for a caller that shows
    /// progress its own way (the KDE Share plugin writes percentages to its host).
    pub(super) meter: Option<Meter>,
}

/// See [`Tally::meter`]: `(sent, total)` in bytes over the batch's jobs, a finished job
/// counting whole.
pub type Meter = Box<dyn Fn(u64, u64) + Send>;

impl Tally {
    pub(super) fn all_final(&self) -> bool {
        !self.jobs.is_empty() && self.jobs.values().all(|j| j.phase.is_final())
    }

    pub(super) fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for job in self.jobs.values() {
            match job.phase {
                Phase::Done if job.skipped => c.skipped += 1,
                Phase::Done => c.uploaded += 1,
                Phase::Failed => c.failed += 1,
                Phase::Cancelled => c.cancelled += 1,
                _ => {}
            }
        }
        c
    }

    /// A job moved, as a signal or a resync says.
    pub(super) fn apply(&mut self, id: u64, phase: Phase, message: &str, from_signal: bool) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if from_signal {
            self.seq += 1;
            job.signal_seq = self.seq;
            // Out of a final state a job only goes back to the start (a retry); anything else
            // is an older signal overtaken by a resync.
            if job.phase.is_final() && !phase.is_final() && phase != Phase::Queued {
                return;
            }
        }
        job.phase = phase;
        if matches!(phase, Phase::Failed | Phase::Waiting) {
            job.message = message.into();
        }
        if phase == Phase::Done {
            job.sent = job.size;
        }
        self.screen.show_bar(id, job);
        if phase.is_final() && job.printed != Some(phase) {
            job.printed = Some(phase);
            let line = result_line(job, &self.screen);
            self.screen.line(line);
        }
        if phase == Phase::Waiting {
            let reason = term::clean(&crate::cli::stalls::plain_cause(&job.message, &job.source))
                .into_owned();
            // Bounded: an outage has a handful of causes, not one per file.
            if self.said.len() < 64 && self.said.insert(reason.clone()) {
                self.screen.tell(format!("waiting: {reason}"));
            }
        }
        self.refresh();
    }

    pub(super) fn progress(&mut self, id: u64, sent: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.sent = sent.min(job.size);
        if let Some(bar) = self.screen.bars.get(&id) {
            bar.set_position(job.sent);
        }
        self.refresh();
    }

    pub(super) fn refresh(&self) {
        let sent: u64 = self.jobs.values().map(|j| j.sent).sum();
        self.screen.overall.set_position(sent);
        if let Some(meter) = &self.meter {
            meter(sent, self.jobs.values().map(|j| j.size).sum());
        }
        let c = self.counts();
        let finished = c.uploaded + c.skipped + c.failed + c.cancelled;
        let mut msg = format!("{finished}/{} files", self.jobs.len());
        if c.failed > 0 {
            msg.push_str(&format!(", {} failed", c.failed));
        }
        self.screen.overall.set_message(msg);
    }

    /// A `ListJobs` answer that was asked for when `seq` signals had been applied.
    pub(super) fn resync(&mut self, seq: u64, jobs: Vec<JobView>) {
        let mut added = false;
        for view in jobs {
            let Some(phase) = Phase::parse(&view.state) else {
                continue;
            };
            match self.jobs.get_mut(&view.id) {
                Some(job) => {
                    if job.signal_seq > seq {
                        // A signal came after this answer was made: it is newer.
                        continue;
                    }
                    job.skipped = view.skipped;
                    job.sent = view.sent;
                    job.stored_as = stored_as(&view);
                }
                None => {
                    added = true;
                    self.jobs.insert(view.id, tracked(&view, phase));
                }
            }
            self.apply(view.id, phase, &view.message, false);
        }
        if added {
            let total = self.jobs.values().map(|j| j.size).sum();
            self.screen.overall.set_length(total);
            self.refresh();
        }
    }
}

/// The new name Dropbox gave a file, when it is not the one asked for.
pub(super) fn stored_as(view: &JobView) -> Option<Box<str>> {
    let stored = view.stored_path.as_deref()?;
    (!stored.eq_ignore_ascii_case(&view.remote_path))
        .then(|| stored.rsplit('/').next().unwrap_or(stored).into())
}

pub(super) fn tracked(view: &JobView, phase: Phase) -> Tracked {
    Tracked {
        // Not yet applied: `apply` prints and draws from here.
        phase: if phase.is_final() {
            Phase::Queued
        } else {
            phase
        },
        size: view.size,
        sent: view.sent,
        source: view.source.as_str().into(),
        name: term::clean(&crate::cli::jobs::file_name(&view.source)).into(),
        skipped: view.skipped,
        message: Box::from(""),
        stored_as: stored_as(view),
        printed: None,
        signal_seq: 0,
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub uploaded: u32,
    pub skipped: u32,
    pub failed: u32,
    pub cancelled: u32,
}

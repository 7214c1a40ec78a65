//! A job's data and its state machine (ARCHITECTURE.md, "A job's life").
//!
//! `Queued → Preparing → Uploading{session_id, offset} → Committing → Done`, with the side exits
//! `Failed` and `Cancelled`, and `Waiting{retry_at}` parking a job after a transient error until
//! it goes back to where it was. Every transition is checked by [`JobState::can_become`], the
//! one place that knows which moves are legal; the queue refuses any other.
//!
//! Records are stored as JSON in sled. New fields get `#[serde(default)]` so that records
//! written by an older daemon still load; fields at their default are left out.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::prepare::{Access, SourceFile, Stamp};

pub type JobId = u64;
pub type BatchId = u64;

/// Milliseconds since the Unix epoch; what the queue stores for points in time.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub batch: BatchId,
    /// Absolute path of the local file.
    #[serde(with = "crate::os_path")]
    pub source: PathBuf,
    /// Full Dropbox path the file is written to.
    pub remote_path: String,
    /// Size and modification time of the source when the job was accepted (or last restarted),
    /// so a file that changes under an upload is noticed.
    #[serde(default)]
    pub source_size: u64,
    #[serde(default)]
    pub source_mtime_ms: Option<u64>,
    /// Which file the source was on disk then (device, inode) and its ctime, checked at every
    /// open (see `prepare::source`): a file replaced under the job is refused, one edited in
    /// place is read again. Zero in records written before they were kept: the first run
    /// takes them.
    #[serde(default)]
    pub source_dev: u64,
    #[serde(default)]
    pub source_ino: u64,
    #[serde(default)]
    pub source_ctime_ns: u64,
    /// How the source path may be resolved: as given (a caller's file), or beneath a watched
    /// folder without following links.
    #[serde(default, skip_serializing_if = "is_default")]
    pub access: Access,
    /// The revision of an earlier upload of this very file that this job replaces (a watched
    /// file that was sent before it was finished, or under `replace` the copy sent before:
    /// `queue::sent`): committed as `update` at that rev, so it takes that upload's place
    /// unless the remote copy changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_rev: Option<String>,
    pub created_ms: u64,
    pub state: JobState,
    /// Transient failures so far in the current state (drives the backoff).
    #[serde(default, skip_serializing_if = "is_default")]
    pub attempts: u32,
    /// Bytes of the upload confirmed by Dropbox, for progress and status.
    #[serde(default, skip_serializing_if = "is_default")]
    pub bytes_sent: u64,
    /// The batch's export options.
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: crate::export::ExportOptions,
    /// What the user should know about this file although it went up, e.g. that a HEIC
    /// could not be resized and went up as the original.
    #[serde(default, skip_serializing_if = "is_default")]
    pub warnings: Vec<String>,
    /// The watched folder that found this file; None for files handed over by a caller, which
    /// go first (watch-folder jobs run at lower priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// Fields at their default are left out of a record (they read back as the default): a queued
/// job's record is then about a third shorter, and sled holds every record in memory
/// (BENCHMARKS.md, "Memory at scale").
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Job {
    /// The source as it was when the job was accepted or last restarted; None for records
    /// from before the file's identity was kept.
    pub fn source_stamp(&self) -> Option<Stamp> {
        (self.source_ino != 0).then_some(Stamp {
            size: self.source_size,
            mtime_ms: self.source_mtime_ms,
            ctime_ns: self.source_ctime_ns,
            dev: self.source_dev,
            ino: self.source_ino,
        })
    }

    /// The source to open, under the job's access rule, with no version expected yet.
    pub fn source_file(&self) -> SourceFile {
        SourceFile {
            path: self.source.clone(),
            access: self.access.clone(),
            expect: None,
        }
    }

    /// `text` (the job's message or a warning) as users see it: a spooled job's copy, which
    /// the engine names by its path in the spool, named by the caller's name instead.
    pub fn shown(&self, text: &str) -> String {
        match self.access.spooled_name() {
            Some(name) => text.replace(&self.source.display().to_string(), name),
            None => text.to_string(),
        }
    }

    /// Records `stamp` as the source's version (and identity).
    pub fn set_stamp(&mut self, stamp: Stamp) {
        self.source_size = stamp.size;
        self.source_mtime_ms = stamp.mtime_ms;
        self.source_ctime_ns = stamp.ctime_ns;
        self.source_dev = stamp.dev;
        self.source_ino = stamp.ino;
    }
}

/// Where a watch-folder job's file came from: the watch, and the file's identity on disk, so
/// the uploaded-index can record it once the job is Done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub watch: u64,
    pub dev: u64,
    pub ino: u64,
}

/// Why a job failed, for callers that act on the category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The local file: gone, unreadable, not a regular file.
    Source,
    /// Dropbox refused it for good: bad name, conflict, no space, too large.
    Refused,
    /// What Dropbox stored does not match what was sent.
    Verification,
    /// Anything else that retrying will not fix.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Preparing,
    /// Bytes are going into an upload session; `offset` bytes are confirmed there.
    Uploading {
        session_id: Option<String>,
        offset: u64,
        /// A concurrent session: chunks go in parallel, in any order, each starting on a
        /// multiple of the chunk size.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        concurrent: bool,
        /// In a concurrent session, the chunks confirmed beyond `offset` (where each starts).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        landed: Vec<u64>,
    },
    /// The commit was (or is about to be) sent; until its answer is recorded the outcome is
    /// unknown, and a restart resolves it by looking at the remote file (ARCHITECTURE.md, invariant 2).
    Committing {
        content_hash: String,
        session_id: Option<String>,
        /// Under `rename`: the files (lowercased paths) that already held this content, under
        /// the job's name or a renamed copy of it, before the commit was sent. A commit under
        /// `rename` always makes a new file, so when its answer is lost the file it made is one
        /// not among these; None where no such listing was taken (other policies, or a record
        /// written by an older daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Vec<String>>,
    },
    /// A transient error; the job returns to `resume` at `retry_at_ms`.
    Waiting {
        retry_at_ms: u64,
        reason: String,
        resume: Box<JobState>,
    },
    /// `remote_path` is where the file is (Dropbox may have given it another name);
    /// `skipped`: the same content was already there, so nothing was sent.
    Done {
        content_hash: String,
        remote_path: String,
        rev: String,
        #[serde(default)]
        skipped: bool,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
    Cancelled,
}

/// A job's state without its data, as D-Bus names it (`JobStateChanged`, `ListJobs`): what a
/// client following jobs (`upload --wait`, the export dialog) reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Queued,
    Preparing,
    Uploading,
    Committing,
    Waiting,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    const ALL: [Phase; 8] = [
        Phase::Queued,
        Phase::Preparing,
        Phase::Uploading,
        Phase::Committing,
        Phase::Waiting,
        Phase::Done,
        Phase::Failed,
        Phase::Cancelled,
    ];

    /// A short lowercase name, as D-Bus and `dbxportctl` show it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Preparing => "preparing",
            Phase::Uploading => "uploading",
            Phase::Committing => "committing",
            Phase::Waiting => "waiting",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }

    /// The phase a name says (None: a name this client does not know).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Done, Failed and Cancelled: nothing more happens until a retry.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled)
    }
}

impl JobState {
    /// Its phase (the state without its data).
    pub fn phase(&self) -> Phase {
        match self {
            JobState::Queued => Phase::Queued,
            JobState::Preparing => Phase::Preparing,
            JobState::Uploading { .. } => Phase::Uploading,
            JobState::Committing { .. } => Phase::Committing,
            JobState::Waiting { .. } => Phase::Waiting,
            JobState::Done { .. } => Phase::Done,
            JobState::Failed { .. } => Phase::Failed,
            JobState::Cancelled => Phase::Cancelled,
        }
    }

    /// A short lowercase name, as D-Bus and `dbxportctl` show it.
    pub fn name(&self) -> &'static str {
        self.phase().name()
    }

    /// Done, Failed and Cancelled are final (until a retry, which a later issue adds).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Done { .. } | JobState::Failed { .. } | JobState::Cancelled
        )
    }

    /// A human message for the state: the failure reason, or why it is waiting.
    pub fn message(&self) -> String {
        match self {
            JobState::Failed { message, .. } => message.clone(),
            JobState::Waiting { reason, .. } => reason.clone(),
            JobState::Done {
                remote_path,
                skipped: true,
                ..
            } => {
                format!("already in Dropbox at {remote_path}: nothing sent")
            }
            JobState::Done { remote_path, .. } => format!("uploaded to {remote_path}"),
            _ => String::new(),
        }
    }

    /// The legal moves. Anything may fail or be cancelled unless it is already final; work
    /// moves forward; a waiting job resumes into the state it was parked from (or waits on,
    /// until another time); a job can be sent back to `Queued` to start over (an expired
    /// session, a changed source).
    pub fn can_become(&self, next: &JobState) -> bool {
        use JobState::*;
        if self.is_terminal() {
            // Only a failed or cancelled job comes back, and only to the start (Retry).
            return matches!((self, next), (Failed { .. } | Cancelled, Queued));
        }
        match (self, next) {
            (_, Failed { .. } | Cancelled | Queued) => true,
            // The same wait, ending at another time (Retry: now).
            (Waiting { resume, .. }, Waiting { resume: again, .. }) => resume == again,
            (Waiting { resume, .. }, next) => {
                std::mem::discriminant(resume.as_ref()) == std::mem::discriminant(next)
            }
            (_, Waiting { resume, .. }) => {
                std::mem::discriminant(self) == std::mem::discriminant(resume.as_ref())
            }
            (Queued, Preparing) => true,
            (Preparing, Uploading { .. } | Committing { .. }) => true,
            (Uploading { .. }, Uploading { .. } | Committing { .. }) => true,
            // A commit's outcome, once known: done, or (remote check showed nothing) start over.
            (Committing { .. }, Done { .. } | Committing { .. }) => true,
            // Before any bytes moved, a job may already be known done (identical remote file).
            (Queued | Preparing, Done { .. }) => true,
            _ => false,
        }
    }
}

/// A group of jobs handed over in one `Upload` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub remote_folder: String,
    pub created_ms: u64,
    pub jobs: Vec<JobId>,
    /// Written once every job is final.
    #[serde(default)]
    pub summary: Option<BatchSummary>,
    /// The shared link to the batch's folder, when one was asked for: made (or refused) with
    /// the batch's first finished file, before that file's job is Done, and reported by the
    /// summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_link: Option<SharedLink>,
}

/// A batch's shared link, as its making ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SharedLink {
    Made {
        url: String,
    },
    /// Dropbox refused it; the reason names the folder.
    Refused {
        reason: String,
    },
}

/// How a batch ended: what `BatchFinished` reports and `dbxportctl` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub done: u32,
    /// Done without sending: the same content was already there.
    pub skipped: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// The failed jobs' messages (each names its file).
    pub failures: Vec<String>,
    /// The jobs' warnings (each names its file).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The shared link to the batch's folder, when one was asked for.
    pub link: Option<String>,
    /// Why no link could be made, when one was asked for.
    pub link_error: Option<String>,
    pub finished_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    #[test]
    fn each_phase_name_reads_back_and_only_done_failed_cancelled_are_final() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.name()), Some(phase));
        }
        assert_eq!(Phase::parse("sleeping"), None);
        let finals: Vec<&str> = Phase::ALL
            .into_iter()
            .filter(|p| p.is_final())
            .map(Phase::name)
            .collect();
        assert_eq!(finals, ["done", "failed", "cancelled"]);
        assert_eq!(Cancelled.phase(), Phase::Cancelled);
        assert_eq!(Cancelled.name(), "cancelled");
    }

    fn uploading() -> JobState {
        Uploading {
            session_id: Some("s".into()),
            offset: 8,
            concurrent: false,
            landed: Vec::new(),
        }
    }
    fn committing() -> JobState {
        Committing {
            content_hash: "h".into(),
            session_id: None,
            before: None,
        }
    }
    fn done() -> JobState {
        Done {
            content_hash: "h".into(),
            remote_path: "/a".into(),
            rev: "r".into(),
            skipped: false,
        }
    }
    fn failed() -> JobState {
        Failed {
            kind: FailureKind::Other,
            message: "m".into(),
        }
    }
    fn waiting(resume: JobState) -> JobState {
        Waiting {
            retry_at_ms: 1,
            reason: "r".into(),
            resume: Box::new(resume),
        }
    }

    #[test]
    fn the_happy_path_is_legal() {
        let path = [
            Queued,
            Preparing,
            uploading(),
            uploading(),
            committing(),
            done(),
        ];
        for pair in path.windows(2) {
            assert!(
                pair[0].can_become(&pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn final_states_stay_final() {
        for state in [done(), failed(), Cancelled] {
            for next in [
                Queued,
                Preparing,
                uploading(),
                committing(),
                done(),
                failed(),
                Cancelled,
            ] {
                // Retry: failed and cancelled jobs go back to the start, and only there.
                let retry = matches!((&state, &next), (Failed { .. } | Cancelled, Queued));
                assert_eq!(state.can_become(&next), retry, "{state:?} -> {next:?}");
            }
        }
    }

    #[test]
    fn waiting_returns_where_it_was() {
        let w = waiting(uploading());
        assert!(uploading().can_become(&w));
        assert!(w.can_become(&uploading()));
        assert!(!w.can_become(&committing()));
        assert!(!Preparing.can_become(&waiting(uploading())));
        // Retry makes a wait end now: the same wait, at another time, and nothing else.
        assert!(w.can_become(&waiting(uploading())));
        assert!(!w.can_become(&waiting(Preparing)));
    }

    #[test]
    fn no_skipping_ahead() {
        assert!(!Queued.can_become(&uploading()));
        assert!(!Queued.can_become(&committing()));
        assert!(!uploading().can_become(&done()));
        assert!(!committing().can_become(&uploading()));
    }

    #[test]
    fn a_queued_jobs_record_leaves_defaults_out_and_reads_back_the_same() {
        let job = Job {
            id: 7,
            batch: 6,
            source: "/p/IMG_0001.jpg".into(),
            remote_path: "/P/IMG_0001.jpg".into(),
            source_size: 2048,
            source_mtime_ms: Some(1),
            source_dev: 2,
            source_ino: 3,
            source_ctime_ns: 4,
            access: Access::Given,
            replaces_rev: None,
            created_ms: 5,
            state: Queued,
            attempts: 0,
            bytes_sent: 0,
            options: Default::default(),
            warnings: Vec::new(),
            origin: None,
        };
        let json = serde_json::to_string(&job).unwrap();
        for default in ["access", "attempts", "bytes_sent", "options", "warnings"] {
            assert!(!json.contains(default), "{default} in {json}");
        }
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
        let busy = Job {
            attempts: 2,
            bytes_sent: 9,
            warnings: vec!["w".into()],
            options: crate::export::ExportOptions {
                share_link: true,
                ..Default::default()
            },
            access: Access::Beneath { root: "/w".into() },
            ..job
        };
        let json = serde_json::to_string(&busy).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), busy);
    }

    #[test]
    fn old_records_still_load() {
        // A record without the fields added after the first version.
        let json = r#"{"id":1,"batch":1,"source":"/a.jpg","remote_path":"/P/a.jpg","created_ms":5,"state":{"state":"queued"}}"#;
        let job: Job = serde_json::from_str(json).unwrap();
        assert_eq!(job.state, Queued);
        assert_eq!(job.attempts, 0);
    }
}

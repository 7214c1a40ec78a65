//! Why a job stopped moving, decided in one place: every error the engine meets (Dropbox's,
//! the source's, the session's, the queue's) becomes a [`Step`], and `driver::settle` turns a
//! step into the job's next state. Pure functions, so the table of what is retried, waited
//! out, failed or requeued is tested here (ARCHITECTURE.md, invariants 5 and 6).

use std::time::Duration;

use crate::credentials::SessionError;
use crate::dropbox::{self, AuthError};
use crate::prepare::SourceError;
use crate::queue::{FailureKind, Job, QueueError};

/// Tries for a request whose successful answer could not be read, before its job fails.
const DECODE_RETRIES: u32 = 3;

/// Why a job stopped moving, decided in one place.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// Wait and try again from the current state.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The account is logged out; the job keeps its state until a login.
    LoggedOut,
    /// Retrying will not help.
    Failed { kind: FailureKind, message: String },
    /// The job went back to Queued (a session expired, the source changed); run it again.
    Requeued,
    /// Cancelled or shutting down; what is persisted stays as it is.
    Stopped,
}

impl From<QueueError> for Step {
    fn from(e: QueueError) -> Step {
        match e {
            // The job was cancelled (or finished) under us.
            QueueError::IllegalTransition { .. } | QueueError::NotFound(_) => Step::Stopped,
            e => Step::Transient {
                reason: format!("the queue could not be updated: {e}"),
                retry_after: None,
            },
        }
    }
}

/// How often a job held back by a full cache disk looks for space again.
const CACHE_FULL_RETRY: Duration = Duration::from_secs(5);

/// A source that could not be read or prepared: what happens to its job.
pub(super) fn source_step(e: SourceError) -> Step {
    match e {
        SourceError::Changed(_) => Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        },
        // The photo is fine; the disk is not. Failing it would make the user retry by hand
        // what freeing space fixes: the job waits, and the others that need no cache go on.
        SourceError::Cache {
            ref dir,
            ref source,
            ..
        } if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
            Step::Transient {
                reason: format!(
                    "the cache disk is full: no room in {} for the prepared copy; waiting for space",
                    dir.display()
                ),
                retry_after: Some(CACHE_FULL_RETRY),
            }
        }
        e => Step::Failed {
            kind: FailureKind::Source,
            message: e.to_string(),
        },
    }
}

/// Sorts a Dropbox error into what happens to the job (`job` names the file in a failure, and
/// its attempts so far bound the retries of an answer that cannot be read).
pub(super) fn dropbox_step<E: dropbox::RouteError>(job: &Job, error: dropbox::Error<E>) -> Step {
    match error_step(error, job.attempts) {
        Step::Failed { kind, message } => Step::Failed {
            kind,
            message: file_message(job, message),
        },
        step => step,
    }
}

/// [`dropbox_step`] for a request that is no one job's (many small files sent together): a
/// failure's message is the cause alone, for [`file_message`] to name each file with.
/// `attempts`: the request's failures so far.
pub(super) fn error_step<E: dropbox::RouteError>(error: dropbox::Error<E>, attempts: u32) -> Step {
    match error {
        dropbox::Error::Auth(AuthError::ExpiredAccessToken) => Step::Transient {
            reason: "the access token expired again".into(),
            retry_after: None,
        },
        // `Session::with_token` has logged the account out if the token was the current one.
        dropbox::Error::Auth(_) => Step::LoggedOut,
        e if e.is_transient() => Step::Transient {
            reason: e.to_string(),
            retry_after: e.retry_after(),
        },
        // A success whose body does not parse: most likely cut short by a proxy or the
        // connection. A few more tries; then the job fails with the reason, since a Dropbox
        // that changed its answers would otherwise be asked forever.
        e @ dropbox::Error::Decode { .. } if attempts < DECODE_RETRIES => Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        },
        e => Step::Failed {
            kind: FailureKind::Refused,
            message: e.to_string(),
        },
    }
}

/// A failure's message for the user: which file, where it was going, and why.
pub(super) fn file_message(job: &Job, cause: impl std::fmt::Display) -> String {
    format!("{} → {}: {cause}", job.source.display(), job.remote_path)
}

/// A session that could not give a token: a passing failure waits; anything else means the
/// account is logged out, and the job keeps its state until a login.
pub(super) fn session_step(e: SessionError) -> Step {
    if e.is_transient() {
        Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        }
    } else {
        Step::LoggedOut
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::dropbox::{
        CreateFolderError, GetMetadataError, LookupError, RateLimitReason,
        UploadSessionFinishError, WriteError,
    };
    use crate::engine::test_support::job;
    use crate::export::Conflict;
    use crate::queue::JobState;

    /// A step in one word, with its wait when it has one.
    type Outcome = (&'static str, Option<Duration>);

    /// What a step is, in one word, with its wait when it has one.
    fn kind(step: &Step) -> Outcome {
        match step {
            Step::Transient { retry_after, .. } => ("wait", *retry_after),
            Step::LoggedOut => ("logged out", None),
            Step::Failed {
                kind: FailureKind::Refused,
                ..
            } => ("fail: refused", None),
            Step::Failed {
                kind: FailureKind::Source,
                ..
            } => ("fail: source", None),
            Step::Failed { .. } => ("fail: other", None),
            Step::Requeued => ("requeue", None),
            Step::Stopped => ("stop", None),
        }
    }

    #[test]
    fn every_dropbox_error_kind_has_its_outcome() {
        let fresh = job(JobState::Preparing, Conflict::SkipIdentical);
        let tried = crate::queue::Job {
            attempts: DECODE_RETRIES,
            ..fresh.clone()
        };
        let secs = Duration::from_secs;
        type E = dropbox::Error<UploadSessionFinishError>;
        let write_lock = || UploadSessionFinishError::Path(WriteError::TooManyWriteOperations);
        let decode = || E::Decode {
            status: 200,
            message: "missing field".into(),
        };
        let table: Vec<(&str, &crate::queue::Job, E, Outcome)> = vec![
            (
                "expired token (after its refresh)",
                &fresh,
                E::Auth(AuthError::ExpiredAccessToken),
                ("wait", None),
            ),
            (
                "invalid token",
                &fresh,
                E::Auth(AuthError::InvalidAccessToken),
                ("logged out", None),
            ),
            (
                "suspended account",
                &fresh,
                E::Auth(AuthError::UserSuspended),
                ("logged out", None),
            ),
            (
                "429",
                &fresh,
                E::RateLimited {
                    reason: RateLimitReason::TooManyRequests,
                    retry_after: secs(30),
                },
                ("wait", Some(secs(30))),
            ),
            (
                "429 write lock",
                &fresh,
                E::RateLimited {
                    reason: RateLimitReason::TooManyWriteOperations,
                    retry_after: secs(2),
                },
                ("wait", Some(secs(2))),
            ),
            ("5xx", &fresh, E::Server { status: 503 }, ("wait", None)),
            (
                "connection lost",
                &fresh,
                E::Transport("reset".into()),
                ("wait", None),
            ),
            (
                "write contention (409)",
                &fresh,
                E::Route(write_lock()),
                ("wait", None),
            ),
            (
                "unreadable answer, first tries",
                &fresh,
                decode(),
                ("wait", None),
            ),
            (
                "unreadable answer, tries used up",
                &tried,
                decode(),
                ("fail: refused", None),
            ),
            (
                "400",
                &fresh,
                E::BadInput("bad arg".into()),
                ("fail: refused", None),
            ),
            (
                "403",
                &fresh,
                E::Access("no".into()),
                ("fail: refused", None),
            ),
            (
                "route refusal",
                &fresh,
                E::Route(UploadSessionFinishError::Path(
                    WriteError::InsufficientSpace,
                )),
                ("fail: refused", None),
            ),
        ];
        for (what, job, error, expected) in table {
            assert_eq!(kind(&dropbox_step(job, error)), expected, "{what}");
        }
        // Other routes' errors go the same way.
        let not_found = dropbox::Error::Route(GetMetadataError::Path(LookupError::NotFound));
        assert_eq!(kind(&dropbox_step(&fresh, not_found)).0, "fail: refused");
        let busy =
            dropbox::Error::Route(CreateFolderError::Path(WriteError::TooManyWriteOperations));
        assert_eq!(kind(&dropbox_step(&fresh, busy)).0, "wait");
    }

    #[test]
    fn a_failure_names_the_file_and_where_it_was_going() {
        let job = job(JobState::Preparing, Conflict::SkipIdentical);
        let step = dropbox_step(
            &job,
            dropbox::Error::<UploadSessionFinishError>::BadInput("bad arg".into()),
        );
        let Step::Failed { message, .. } = step else {
            panic!("{step:?}")
        };
        assert!(
            message.starts_with("/photos/a.jpg → /Album/a.jpg: "),
            "{message}"
        );
    }

    #[test]
    fn source_errors_wait_for_a_change_or_space_and_fail_otherwise() {
        let path = || PathBuf::from("/photos/a.jpg");
        let cache = |errno| SourceError::Cache {
            path: path(),
            dir: "/cache".into(),
            source: io::Error::from_raw_os_error(errno),
        };
        let table = [
            (
                "changed while read",
                SourceError::Changed(path()),
                ("wait", None),
            ),
            (
                "cache disk full",
                cache(libc::ENOSPC),
                ("wait", Some(CACHE_FULL_RETRY)),
            ),
            (
                "cache quota",
                cache(libc::EDQUOT),
                ("wait", Some(CACHE_FULL_RETRY)),
            ),
            (
                "cache unwritable",
                cache(libc::EACCES),
                ("fail: source", None),
            ),
            (
                "gone",
                SourceError::NotFound(path()),
                ("fail: source", None),
            ),
            (
                "replaced",
                SourceError::Replaced(path()),
                ("fail: source", None),
            ),
            (
                "corrupt",
                SourceError::Corrupt {
                    path: path(),
                    reason: "eof".into(),
                },
                ("fail: source", None),
            ),
        ];
        for (what, error, expected) in table {
            assert_eq!(kind(&source_step(error)), expected, "{what}");
        }
    }

    #[test]
    fn session_and_queue_errors() {
        let table = [
            (SessionError::Transient("offline".into()), "wait"),
            (SessionError::NotLoggedIn("no account".into()), "logged out"),
            (SessionError::Refused("revoked".into()), "logged out"),
            (SessionError::NoAppKey, "logged out"),
        ];
        for (error, expected) in table {
            let what = error.to_string();
            assert_eq!(kind(&session_step(error)).0, expected, "{what}");
        }
        // Cancelled or finished under the job: stop, write nothing.
        let illegal = QueueError::NotFound(7);
        assert_eq!(kind(&Step::from(illegal)).0, "stop");
    }
}

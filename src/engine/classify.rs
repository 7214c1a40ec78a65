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
        e @ dropbox::Error::Decode { .. } if job.attempts < DECODE_RETRIES => Step::Transient {
            reason: e.to_string(),
            retry_after: None,
        },
        e => Step::Failed {
            kind: FailureKind::Refused,
            message: format!("{} → {}: {e}", job.source.display(), job.remote_path),
        },
    }
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

//! The queue's errors, each in words a user can act on: where the database is, what went
//! wrong, and the way out.

use std::path::PathBuf;

use super::JobId;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "cannot open the queue database at {path}: {error}. If another dbxportd is running, \
         stop it first. Otherwise move {path} aside (it holds your queued uploads) and start \
         again; the files as they were before this start are also kept in {backup}"
    )]
    Open {
        path: PathBuf,
        backup: PathBuf,
        error: sled::Error,
    },
    /// What the database held when dbxportd last stopped is not all there: sled recovers a
    /// damaged file by dropping what follows the damage, and would start with a shorter queue.
    #[error(
        "the queue database at {path} is damaged: it holds {found} where dbxportd left {sealed} \
         when it last stopped (sled cuts a damaged file at the damage as it opens it). The files as \
         they were before this start are kept in {backup}: to try them, move {path} aside and rename the copy to {name}; to start with \
         an empty queue, move both aside (they hold your queued uploads)",
        name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )]
    Damaged {
        path: PathBuf,
        backup: PathBuf,
        sealed: String,
        found: String,
    },
    /// The copy taken before opening could not be made; the database was not opened.
    #[error(
        "cannot keep a copy of the queue database {path} before opening it: {error}. Nothing in \
         it was changed. Make sure the folder and its files are yours and readable (chmod -R u+rw \
         {path}) and that the disk has room, then start again"
    )]
    Backup {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", describe_db_error(.0))]
    Db(#[from] sled::Error),
    #[error("a queue record is unreadable: {0}")]
    Corrupt(String),
    #[error("no job or batch with id {0}")]
    NotFound(u64),
    #[error("job {id} cannot go from {from} to {to}")]
    IllegalTransition {
        id: JobId,
        from: &'static str,
        to: &'static str,
    },
    #[error("the queue's background task failed: {0}")]
    Join(String),
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A database error in words a user can act on. A full disk is the one users meet: sled keeps
/// failing after it (until the database is opened again), so the way out includes a restart.
fn describe_db_error(e: &sled::Error) -> String {
    match e {
        // By kind: sled hands out copies of the error it latched, which keep only the kind.
        sled::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            "the disk holding dbxport's state folder (the queue database) is full: \
             nothing new can be queued. Free some space there, then restart dbxport \
             (systemctl --user restart dbxport); the queue is kept"
                .to_string()
        }
        e => format!("queue database error: {e}"),
    }
}

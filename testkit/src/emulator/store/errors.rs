//! The error unions the store's operations end in (`LookupError`, `WriteError` and their
//! wrappers), with their JSON as the routes embed it.

use serde_json::Value;

use super::links::LinkRefusal;
use crate::emulator::paths::PathProblem;
use crate::emulator::wire::{nested, void};

/// `LookupError` (the members dbxport's routes can meet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupError {
    Malformed,
    NotFound,
    NotFile,
    NotFolder,
}

impl LookupError {
    pub(crate) fn json(self) -> Value {
        void(match self {
            LookupError::Malformed => "malformed_path",
            LookupError::NotFound => "not_found",
            LookupError::NotFile => "not_file",
            LookupError::NotFolder => "not_folder",
        })
    }
}

impl From<PathProblem> for LookupError {
    fn from(_: PathProblem) -> Self {
        LookupError::Malformed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    File,
    Folder,
    FileAncestor,
}

/// `WriteError` (the members the emulator produces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    Malformed,
    Conflict(Conflict),
    InsufficientSpace,
    DisallowedName,
}

impl WriteError {
    pub(crate) fn json(self) -> Value {
        match self {
            WriteError::Malformed => void("malformed_path"),
            WriteError::Conflict(kind) => nested(
                "conflict",
                void(match kind {
                    Conflict::File => "file",
                    Conflict::Folder => "folder",
                    Conflict::FileAncestor => "file_ancestor",
                }),
            ),
            WriteError::InsufficientSpace => void("insufficient_space"),
            WriteError::DisallowedName => void("disallowed_name"),
        }
    }
}

impl From<PathProblem> for WriteError {
    fn from(problem: PathProblem) -> Self {
        match problem {
            PathProblem::Malformed => WriteError::Malformed,
            PathProblem::DisallowedName => WriteError::DisallowedName,
        }
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    #[error("write error {0:?}")]
    Write(WriteError),
    #[error("emulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<WriteError> for CommitError {
    fn from(error: WriteError) -> Self {
        CommitError::Write(error)
    }
}

/// Why a delete did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteError {
    #[error("lookup error {0:?}")]
    Lookup(LookupError),
    #[error("write error {0:?}")]
    Write(WriteError),
    #[error("emulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why no shared link was created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateLinkError {
    #[error("lookup error {0:?}")]
    Lookup(LookupError),
    #[error("refused: {0:?}")]
    Refused(LinkRefusal),
    #[error("emulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

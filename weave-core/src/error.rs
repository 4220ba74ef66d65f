//! Errors of the weave library.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in weave's own code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The project name given to `init` is malformed.
    #[error("invalid weave project `{project}`: {reason}")]
    InvalidProject {
        /// What was given.
        project: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The trace store failed or refused (its message names the file).
    #[error(transparent)]
    Store(#[from] weave_store::StoreError),
    /// A ref string is malformed.
    #[error(transparent)]
    InvalidRef(#[from] weave_types::RefError),
    /// A dataset file has a bad row or cannot be read.
    #[error("{}:{line}: {message}", path.display())]
    DatasetRow {
        /// The file.
        path: PathBuf,
        /// 1-based line (or item index for JSON arrays).
        line: usize,
        /// What is wrong, naming the field where one is missing.
        message: String,
    },
    /// An evaluation's settings are invalid.
    #[error("evaluation: {0}")]
    Evaluation(String),
    /// Trace records were not written (from [`FlushError`], so that `client.flush()?` works
    /// in a function returning this error).
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// Resuming was refused: the interrupted run differs from this one (or already
    /// finished); forcing overrides.
    #[error(
        "cannot resume evaluation run {call_id}: {}; force the resume to use its rows anyway",
        differences.join("; ")
    )]
    ResumeRefused {
        /// The interrupted run's `Evaluation.evaluate` call.
        call_id: String,
        /// What differs, one sentence each.
        differences: Vec<String>,
    },
    /// No run of this evaluation and model is left to resume.
    #[error(
        "no unfinished run of evaluation `{evaluation}` with model `{model}` to resume \
         (runs that finished, or that a later run resumed, are not resumable)"
    )]
    NothingToResume {
        /// The evaluation's name.
        evaluation: String,
        /// The model's name.
        model: String,
    },
}

/// A flush that could not confirm every record written. The records it counts are not in the
/// store; what was written is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The sink failed to write records since the previous flush.
    #[error(
        "{lost} trace record(s) not written and {pending} not delivered yet since the last \
         flush: {reason}"
    )]
    NotWritten {
        /// Records lost for good.
        lost: u64,
        /// Records not delivered yet (a remote sink keeps trying them until shutdown).
        pending: u64,
        /// The first failure.
        reason: String,
    },
    /// The writer did not finish within the flush timeout (`Settings::flush_timeout`); the
    /// records are still queued and may yet be written.
    #[error("flush gave up after {timeout:?}: the trace writer has not caught up yet")]
    TimedOut {
        /// How long it waited.
        timeout: Duration,
    },
    /// The client's writer has stopped (its thread panicked); nothing more is written.
    #[error("the trace writer has stopped; records sent to it are lost")]
    Closed,
}

impl FlushError {
    /// Records known not to be written (lost for good), if the error counts them.
    pub fn lost(&self) -> Option<u64> {
        match self {
            FlushError::NotWritten { lost, .. } => Some(*lost),
            _ => None,
        }
    }
}

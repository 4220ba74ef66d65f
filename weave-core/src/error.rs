//! Errors of the weave library.

use std::path::PathBuf;

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

//! Errors of the weave library.

use std::path::PathBuf;

/// Everything that can go wrong in weave's own code.
#[derive(Debug, thiserror::Error)]
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
    /// The database failed.
    #[error("trace store {}: {source}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is from a newer weave, or is not a weave database.
    #[error("trace store {}: {reason}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A ref string is malformed.
    #[error(
        "invalid weave ref `{0}`: expected weave:///<entity>/<project>/<op|object>/<name>:<digest>"
    )]
    InvalidRef(String),
    /// Nothing matched.
    #[error("{0}")]
    NotFound(String),
    /// Stored JSON could not be decoded.
    #[error("stored JSON is invalid in {what}: {source}")]
    Json {
        /// Which value.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
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
    /// An evaluation could not run.
    #[error("evaluation: {0}")]
    Evaluation(String),
}

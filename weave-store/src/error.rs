//! What a trace store can answer instead of a result. Each variant maps to one HTTP status
//! (see [`StoreError::http_status`]), so a server is thin glue.

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Nothing matched (404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `Obj qa-model:latest`.
        what: String,
    },
    /// A prefix or name matched several things (409).
    #[error("{what} is ambiguous: {}", candidates.join(", "))]
    Ambiguous {
        /// What was looked for.
        what: String,
        /// What it matched (possibly only the first few).
        candidates: Vec<String>,
    },
    /// A client's digest differs from the one the store computed (409).
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// The client's.
        expected: String,
        /// The store's.
        actual: String,
    },
    /// The request is malformed (400).
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The offending field, as a path into the request (`batch[3].started_at`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store's file or database is not one this version can use (500).
    #[error("trace store {store}: {reason}")]
    Schema {
        /// The file (or database URL).
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend is temporarily unable to answer; retrying may work (503).
    #[error("trace store {store} is unavailable: {reason}")]
    Unavailable {
        /// The file (or database URL).
        store: String,
        /// Why.
        reason: String,
    },
    /// The backend failed (502).
    #[error("trace store {store}: {source}")]
    Backend {
        /// The file (or database URL).
        store: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// The HTTP status a server answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } => 404,
            StoreError::Ambiguous { .. } | StoreError::DigestMismatch { .. } => 409,
            StoreError::InvalidRequest { .. } => 400,
            StoreError::Schema { .. } => 500,
            StoreError::Unavailable { .. } => 503,
            StoreError::Backend { .. } => 502,
        }
    }

    /// [`StoreError::InvalidRequest`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// [`StoreError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> StoreError {
        StoreError::NotFound { what: what.into() }
    }
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

//! Files (spec §6.1, §6.6): bytes stored per project under their digest. `file/create` is a
//! multipart request and `file/content` answers raw bytes, so these types are not JSON bodies.

use serde::{Deserialize, Serialize};

/// `POST /file/create` (multipart fields `project_id`, `expected_digest`, `file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCreateReq {
    /// `entity/project`.
    pub project_id: String,
    /// File name (kept by the referring object's `files` map, not by the store).
    pub name: String,
    /// The bytes.
    pub content: Vec<u8>,
    /// The client's digest of the bytes; a different server digest is a mismatch.
    pub expected_digest: Option<String>,
}

/// Answer to [`FileCreateReq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCreateRes {
    /// Digest of the bytes.
    pub digest: String,
}

/// `POST /file/content`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContentReadReq {
    /// `entity/project`.
    pub project_id: String,
    /// File digest.
    pub digest: String,
}

/// Answer to [`FileContentReadReq`]: the bytes (raw on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileContentReadRes {
    /// The bytes.
    pub content: Vec<u8>,
}

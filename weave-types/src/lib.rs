//! # weave-types
//!
//! The vocabulary every weave crate shares, in W&B Weave's own shapes (see
//! `shared/specs/weave-trace-server-api.md`): the trace server's request and response types,
//! digests and canonical JSON that match Python's byte for byte, refs, timestamps, and the
//! read-time `summary.weave` derivation. Nothing here does I/O.
//!
//! Request types tolerate unknown fields and `null`s, as the Python client sends both.

#![warn(missing_docs)]

pub mod call;
pub mod digest;
pub mod eval;
pub mod feedback;
pub mod file;
pub mod misc;
pub mod obj;
pub mod query;
pub mod refs;
mod serde_util;
pub mod summary;
pub mod table;
pub mod time;
mod usage;

pub use call::*;
pub use feedback::*;
pub use file::*;
pub use misc::*;
pub use obj::*;
pub use query::{Query, SortBy, SortDirection};
pub use refs::{RefError, RefKind, WeaveRef};
pub use summary::CallStatus;
pub use table::*;
pub use usage::Usage;

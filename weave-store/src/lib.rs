//! # weave-store
//!
//! Where traces live and how they are read: [`TraceStore`], W&B Weave's trace-server
//! interface as an async, dyn-safe trait over the Weave wire types of `weave-types`, its typed
//! errors ([`StoreError`]), and its implementations: [`SqliteStore`], the embedded one (one
//! SQLite file), and, with the `clickhouse` feature, `ClickHouseStore` (a ClickHouse
//! database that several servers share; module [`clickhouse`]).
//!
//! A trace server, the `weave` CLI and a UI hold an `Arc<dyn TraceStore>`; a traced program's
//! local sink writes through [`SqliteStore::write`], one transaction per batch. Every backend
//! passes the same conformance suite (`tests/conformance`).

#![warn(missing_docs)]

mod checks;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod copy;
mod error;
mod refwalk;
mod sqlite;
mod store;
mod table_update;

#[cfg(feature = "clickhouse")]
pub use clickhouse::{ClickHouseOptions, ClickHouseServer, ClickHouseStore};
pub use copy::{copy_project, CopyReport};
pub use error::{Result, StoreError};
pub use sqlite::{SqliteStore, Writer, SCHEMA_VERSION};
pub use store::{CallIdNeighbors, CallIdPrefixReq, CallKey, CallStream, TraceStore};
pub use weave_types as types;

/// Environment variable naming the local store file.
pub const DB_ENV: &str = "WEAVE_DB";
/// Default local store file, relative to the working directory.
pub const DEFAULT_DB: &str = ".weave/weave.db";

/// Where the local store is when nothing else is said: `$WEAVE_DB`, else
/// `./.weave/weave.db`.
pub fn default_db_path() -> std::path::PathBuf {
    match std::env::var_os(DB_ENV) {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => std::path::PathBuf::from(DEFAULT_DB),
    }
}

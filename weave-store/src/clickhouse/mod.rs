//! The ClickHouse backend.
//!
//! - [`process`]: a throwaway `clickhouse-server` for tests and trials.

pub mod process;

pub use process::ClickHouseServer;

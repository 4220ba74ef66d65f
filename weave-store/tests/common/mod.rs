//! Stores for the tests: a fresh [`TraceStore`] of each backend, with whatever keeps it
//! alive (a temporary directory, a `clickhouse-server` child process).

#![allow(dead_code)]

use std::sync::Arc;

use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};

/// A fresh, empty store and what it lives in (dropped last).
pub struct Fixture {
    pub store: Arc<dyn TraceStore>,
    pub backend: &'static str,
    guard: Guard,
}

enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    ClickHouse(ClickHouseServer),
}

impl Fixture {
    /// The ClickHouse server behind the store, if any.
    pub fn clickhouse(&mut self) -> Option<&mut ClickHouseServer> {
        match &mut self.guard {
            Guard::ClickHouse(s) => Some(s),
            Guard::Dir(_) => None,
        }
    }
}

/// An SQLite store in a temporary file.
pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::create(dir.path().join("t.db")).unwrap();
    Fixture {
        store: Arc::new(s),
        backend: "sqlite",
        guard: Guard::Dir(dir),
    }
}

/// A ClickHouse store in a database of its own on a `clickhouse-server` started for it.
pub async fn clickhouse() -> Fixture {
    let server = ClickHouseServer::start().expect("start clickhouse-server");
    let s = ClickHouseStore::open(&server.store_url("weave_test"))
        .await
        .expect("open the ClickHouse store");
    Fixture {
        store: Arc::new(s),
        backend: "clickhouse",
        guard: Guard::ClickHouse(server),
    }
}

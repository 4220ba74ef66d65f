//! Shared helpers for the integration tests: each test gets its own store in a temp dir.

use std::sync::{Mutex, MutexGuard};

use weave::store::{CallFilter, CallRecord, Store};
use weave::WeaveClient;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lock `Traced` takes, for tests that start their own clients.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A traced test: a fresh store, a client logging to it, and a lock so tests sharing a process
/// (plain `cargo test`) do not share the global client.
pub struct Traced {
    /// The client; drop it to flush and stop tracing.
    pub client: WeaveClient,
    /// Holds the store.
    pub dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Traced {
    /// Starts tracing `project` into a new temp store.
    pub fn new(project: &str) -> Traced {
        let serial = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let client = weave::Settings::new(project)
            .db_path(dir.path().join("weave.db"))
            .quiet()
            .init()
            .expect("init");
        Traced {
            client,
            dir,
            _serial: serial,
        }
    }

    /// Flushes and opens the store for reading.
    pub fn store(&self) -> Store {
        self.client.store().expect("open store")
    }

    /// All calls, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.store()
            .calls(&CallFilter {
                oldest_first: true,
                ..Default::default()
            })
            .expect("calls")
    }

    /// The single call of op `name`; panics when there is not exactly one.
    pub fn only(&self, name: &str) -> CallRecord {
        let calls: Vec<_> = self
            .calls()
            .into_iter()
            .filter(|c| c.op_short_name() == name)
            .collect();
        assert_eq!(
            calls.len(),
            1,
            "expected one call of {name}, got {calls:#?}"
        );
        calls.into_iter().next().expect("one call")
    }
}

//! Test support shared by every crate that tests against a server: the one place a fresh
//! store is made ([`fresh_store`], backend chosen by `WEAVE_TEST_STORE` (`sqlite`, the
//! default, or `clickhouse`) or, for one test thread, by [`use_backend`], so the whole server
//! suite runs on either backend), and a server running on its own runtime in the background
//! ([`Background`]) for synchronous tests (clients, benches).
//!
//! A ClickHouse store lives on a `clickhouse-server` child process started for it (on free
//! loopback ports, its data in a temporary directory, stopped when the [`TestStore`] is
//! dropped); or, when `WEAVE_TEST_CLICKHOUSE_URL` (`clickhouse://HOST:PORT`) is set, in a
//! fresh database of that running server.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};

/// A fresh, empty store and what keeps it alive (a temp dir, a `clickhouse-server`).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn TraceStore>,
    /// The SQLite file, for a backend that has one.
    pub path: Option<std::path::PathBuf>,
    /// The store as a `--store` URL (`sqlite:PATH`, `clickhouse://HOST:PORT/DB`), for
    /// `weave serve` and the CLI.
    pub url: String,
    /// The backend: `sqlite` or `clickhouse`.
    pub backend: &'static str,
    /// The ClickHouse server started for this store, if any (to stop and restart it).
    pub clickhouse: Option<ClickHouseServer>,
    _guard: Option<tempfile::TempDir>,
}

thread_local! {
    static BACKEND: RefCell<Option<&'static str>> = const { RefCell::new(None) };
}

/// Makes [`fresh_store`] on this thread use `backend` (`sqlite` or `clickhouse`) instead of
/// `WEAVE_TEST_STORE`, so that one test file can run its tests on both backends (a
/// `#[tokio::test]` body runs on the test's thread).
pub fn use_backend(backend: &'static str) {
    BACKEND.with(|b| *b.borrow_mut() = Some(backend));
}

/// The backend [`fresh_store`] makes on this thread.
pub fn backend() -> String {
    BACKEND
        .with(|b| *b.borrow())
        .map(str::to_string)
        .unwrap_or_else(|| std::env::var("WEAVE_TEST_STORE").unwrap_or_default())
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("path", &self.path)
            .finish()
    }
}

impl TestStore {
    /// Another handle on the same data, as a second server replica would open it.
    ///
    /// # Panics
    /// When the store cannot be opened again (this is for tests).
    pub fn replica(&self) -> Arc<dyn TraceStore> {
        match (&self.path, self.backend) {
            (Some(path), _) => Arc::new(SqliteStore::open(path).expect("reopen the sqlite store")),
            (None, "clickhouse") => Arc::new(
                ClickHouseStore::open_blocking(&self.url).expect("reopen the ClickHouse store"),
            ),
            (None, _) => self.store.clone(),
        }
    }
}

/// Makes a fresh store of the backend named by [`use_backend`] or else `WEAVE_TEST_STORE`
/// (`sqlite`, the default, or `clickhouse`). A new backend adds its arm here and every
/// server test runs on it.
///
/// # Panics
/// On an unknown backend or when the store cannot be made (this is for tests).
pub fn fresh_store() -> TestStore {
    match backend().as_str() {
        "sqlite" | "" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("test.db");
            let store = SqliteStore::create(&path).expect("sqlite store");
            TestStore {
                store: Arc::new(store),
                url: format!("sqlite:{}", path.display()),
                path: Some(path),
                backend: "sqlite",
                clickhouse: None,
                _guard: Some(dir),
            }
        }
        "clickhouse" => {
            let (server, url) = match std::env::var("WEAVE_TEST_CLICKHOUSE_URL") {
                Ok(base) if !base.is_empty() => {
                    let db = format!("weave_test_{}", uuid_like());
                    (None, format!("{}/{db}", base.trim_end_matches('/')))
                }
                _ => {
                    let server = ClickHouseServer::start().expect("start clickhouse-server");
                    let url = server.store_url("weave_test");
                    (Some(server), url)
                }
            };
            let store = ClickHouseStore::open_blocking(&url).expect("open the ClickHouse store");
            TestStore {
                store: Arc::new(store),
                path: None,
                url,
                backend: "clickhouse",
                clickhouse: server,
                _guard: None,
            }
        }
        other => panic!("WEAVE_TEST_STORE={other}: no such test backend"),
    }
}

/// A name part unique to this process and call.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A router served on loopback by a runtime of its own; stopped (gracefully) by
/// [`Background::stop`], or killed mid-request by dropping it.
#[derive(Debug)]
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Background {
    /// Serves `router` on `addr` (port 0: a free one).
    ///
    /// # Panics
    /// When the address cannot be bound (this is for tests).
    pub fn serve(router: Router, addr: SocketAddr) -> Background {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = rt.spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Background {
            addr,
            stop: Some(stop),
            done: Some(done),
            rt: Some(rt),
        }
    }

    /// Serves the server's routes over `store` (no keys, default limits).
    pub fn store(store: Arc<dyn TraceStore>, addr: SocketAddr) -> Background {
        Background::serve(crate::router(crate::AppState::new(store)), addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let (Some(rt), Some(done)) = (self.rt.take(), self.done.take()) {
            let _ = rt.block_on(done);
            rt.shutdown_background();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Killed: in-flight requests are cut off.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

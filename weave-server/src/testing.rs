//! Test support shared by every crate that tests against a server: the one place a fresh
//! store is made ([`fresh_store`], backend chosen by `WEAVE_TEST_STORE`, so the whole server
//! suite can run on another backend), and a server running on its own runtime in the
//! background ([`Background`]) for synchronous tests (clients, benches).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use weave_store::{SqliteStore, TraceStore};

/// A fresh, empty store and what keeps it alive (a temp dir).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn TraceStore>,
    /// The SQLite file, for a backend that has one.
    pub path: Option<std::path::PathBuf>,
    _guard: Option<tempfile::TempDir>,
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
        match &self.path {
            Some(path) => Arc::new(SqliteStore::open(path).expect("reopen the sqlite store")),
            None => self.store.clone(),
        }
    }
}

/// Makes a fresh store of the backend named by `WEAVE_TEST_STORE` (`sqlite`, the default).
/// A new backend adds its arm here and every server test runs on it.
///
/// # Panics
/// On an unknown backend or when the store cannot be made (this is for tests).
pub fn fresh_store() -> TestStore {
    let backend = std::env::var("WEAVE_TEST_STORE").unwrap_or_default();
    match backend.as_str() {
        "sqlite" | "" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("test.db");
            let store = SqliteStore::create(&path).expect("sqlite store");
            TestStore {
                store: Arc::new(store),
                path: Some(path),
                _guard: Some(dir),
            }
        }
        other => panic!("WEAVE_TEST_STORE={other}: no such test backend"),
    }
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

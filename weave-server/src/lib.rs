//! # weave-server
//!
//! `weave serve`: a trace server that speaks W&B Weave's HTTP API (as the `weave==0.54` Python
//! client uses it, `shared/specs/weave-trace-server-api.md`) over any
//! [`TraceStore`](weave_store::TraceStore). It holds no state of its own: several replicas in
//! front of one shared store answer alike.
//!
//! - [`router`] builds the axum [`Router`](axum::Router) (tests drive it without a socket);
//! - [`Server::bind`] + [`Server::run`] serve it with graceful shutdown; [`serve`] does both
//!   and stops on Ctrl-C or SIGTERM;
//! - [`open_store`] turns a `--db` path or `--store` URL into a store.
//!
//! Routes: Weave's (spec §1) at their paths, the three W&B GraphQL operations `weave.init`
//! sends at `/graphql`, `GET /health` and `GET /ready`, and the store's extensions under
//! `/ext/`. `/` and `/ui` are left for the web UI.

#![warn(missing_docs)]

mod auth;
mod body;
mod error;
mod routes;
mod serve;
mod store;
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use weave_store::TraceStore;

pub use body::WeaveJson;
pub use error::AppError;
pub use routes::router;
pub use serve::{serve, ServeError, Server, ServerConfig, DEFAULT_ADDR};
pub use store::{open_store, StoreChoice, StoreOpenError};

/// This server's version, as `/server_info` reports it (PEP 440).
pub const TRACE_SERVER_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+weave.rs");

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes, before and after decompression. The Python client
    /// splits its batches at 31 MiB.
    pub body_limit: usize,
    /// Longest time a request may take until its response starts.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_limit: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// What every request handler shares: the store and the server's settings. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn TraceStore>,
    keys: Arc<auth::ApiKeys>,
    limits: Limits,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("api_keys", &self.keys.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A server over `store` with no API keys and default limits.
    pub fn new(store: Arc<dyn TraceStore>) -> AppState {
        AppState {
            store,
            keys: Arc::new(auth::ApiKeys::default()),
            limits: Limits::default(),
        }
    }

    /// Requires one of `keys` on every request (but `/health` and `/ready`); none: open.
    pub fn with_api_keys<I, S>(mut self, keys: I) -> AppState
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.keys = Arc::new(auth::ApiKeys::new(keys));
        self
    }

    /// Sets the request limits.
    pub fn with_limits(mut self, limits: Limits) -> AppState {
        self.limits = limits;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TraceStore> {
        &self.store
    }
}

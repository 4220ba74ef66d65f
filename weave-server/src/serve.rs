//! Binding and running: [`Server::bind`] checks the configuration (API keys on any address but
//! loopback), [`Server::run`] serves until a shutdown signal and then lets in-flight requests
//! finish (up to a grace period), [`serve`] does both and stops on Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use weave_store::TraceStore;

use crate::{router, AppState, Limits};

/// Where `weave serve` listens by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6345";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Accepted API keys; required (non-empty) unless `addr` is loopback.
    pub api_keys: Vec<String>,
    /// Request limits.
    pub limits: Limits,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            addr: DEFAULT_ADDR.parse().expect("valid default address"),
            api_keys: Vec::new(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without API keys.
    #[error(
        "refusing to serve on {0} without an API key: anyone who can reach it could read and \
         write every trace. Give --api-key KEY (or WEAVE_SERVER_API_KEYS), or bind 127.0.0.1"
    )]
    KeysRequired(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound server, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
}

impl Server {
    /// Binds `config.addr` for `store`.
    pub async fn bind(
        config: &ServerConfig,
        store: Arc<dyn TraceStore>,
    ) -> Result<Server, ServeError> {
        let keys: Vec<&String> = config
            .api_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .collect();
        if keys.is_empty() && !config.addr.ip().is_loopback() {
            return Err(ServeError::KeysRequired(config.addr));
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.addr,
                source,
            })?;
        let state = AppState::new(store)
            .with_api_keys(keys)
            .with_limits(config.limits);
        Ok(Server {
            listener,
            state,
            grace: config.shutdown_grace,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting and waits up to the grace
    /// period for in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let app = router(self.state);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signalled = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        let server = axum::serve(self.listener, app).with_graceful_shutdown(signalled);
        let mut rx2 = rx.clone();
        let grace = self.grace;
        tracing::info!(%addr, "serving");
        tokio::select! {
            r = server => r?,
            _ = async move {
                let _ = rx2.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "in-flight requests still running after the grace period; stopping");
            }
        }
        drop(rx);
        tracing::info!(%addr, "stopped");
        Ok(())
    }
}

/// Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Binds and serves `store` until Ctrl-C or SIGTERM; `on_ready` gets the bound address
/// (e.g. to print the URL).
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn TraceStore>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let server = Server::bind(&config, store).await?;
    on_ready(server.local_addr());
    server.run(shutdown_signal()).await
}

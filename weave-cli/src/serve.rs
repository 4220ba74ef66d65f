//! `weave serve`: runs the trace server (weave-server) over the chosen store until Ctrl-C or
//! SIGTERM, printing where it listens and how to point clients at it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use weave_server::{open_store, Limits, ServerConfig, StoreChoice, DEFAULT_ADDR};

/// Options of `weave serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; a port of 0 picks a free one. Any address but loopback needs
    /// an API key.
    #[arg(long, default_value = DEFAULT_ADDR, env = "WEAVE_SERVER_ADDR")]
    addr: SocketAddr,
    /// The store as a URL (`sqlite:PATH`); instead of --db.
    #[arg(long, value_name = "URL", env = "WEAVE_STORE")]
    store: Option<String>,
    /// An API key clients must send (Basic `api:<key>`, i.e. WANDB_API_KEY, or Bearer);
    /// repeat for several. Env: comma-separated.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "WEAVE_SERVER_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// Largest request body in MiB (after decompression).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_body_mib: usize,
    /// Longest a request may take until its answer starts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    request_timeout: u64,
}

/// Serves until a shutdown signal.
pub fn run(db: Option<&Path>, args: ServeArgs, out: &mut dyn Write) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEAVE_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let choice = StoreChoice::from_args(db, args.store.as_deref())?;
    let store =
        open_store(&choice).with_context(|| format!("cannot open {}", choice.describe()))?;
    let config = ServerConfig {
        addr: args.addr,
        api_keys: args.api_keys,
        limits: Limits {
            body_limit: args.max_body_mib.saturating_mul(1024 * 1024),
            request_timeout: Duration::from_secs(args.request_timeout),
        },
        ..ServerConfig::default()
    };
    let keys = config
        .api_keys
        .iter()
        .filter(|k| !k.trim().is_empty())
        .count();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut printed: Result<()> = Ok(());
    rt.block_on(weave_server::serve(config, store, |addr| {
        let url = format!("http://{addr}");
        printed = (|| {
            writeln!(out, "weave: serving {} at {url}", choice.describe())?;
            writeln!(
                out,
                "  Python: WF_TRACE_SERVER_URL={url} WANDB_BASE_URL={url} WANDB_API_KEY={}",
                if keys > 0 { "<key>" } else { "any" }
            )?;
            writeln!(out, "  Rust:   WEAVE_TRACE_SERVER_URL={url}")?;
            if keys == 0 {
                writeln!(out, "  no API key: loopback only")?;
            }
            out.flush()
        })()
        .map_err(Into::into);
    }))?;
    printed
}

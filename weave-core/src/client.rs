//! The composition root: `weave::init` and [`Settings`] put a sink, the encoder, the writer
//! thread and a dispatch together into a [`WeaveClient`]. Everything depends on nothing here;
//! this depends on everything.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use weave_store::SqliteStore;

use crate::call::install_panic_hook;
use crate::config::{default_db_path, parse_project};
use crate::context;
use crate::dispatch::{self, DefaultGuard, Dispatch};
use crate::encode::Encoder;
use crate::error::{Error, FlushError};
use crate::queue::Registry;
use crate::record::{Losses, Msg};
use crate::redact::{default_redact_keys, RedactKeys};
use crate::sink::{spawn_writer, RemoteConfig, RemoteSink, SqliteSink, TraceSink};

/// Options for [`init`]; `Settings::new(project).db_path(..).init()`.
pub struct Settings {
    project: String,
    db_path: Option<PathBuf>,
    redact_keys: Vec<String>,
    quiet: bool,
    sink: Option<Box<dyn TraceSink>>,
    remote: Option<RemoteConfig>,
    flush_timeout: Duration,
    max_buffered: usize,
}

/// How long a flush waits by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("project", &self.project)
            .field("db_path", &self.db_path)
            .field("redact_keys", &self.redact_keys)
            .field("quiet", &self.quiet)
            .field("flush_timeout", &self.flush_timeout)
            .field("custom_sink", &self.sink.is_some())
            .field("trace_server", &self.remote.as_ref().map(|r| &r.url))
            .finish()
    }
}

impl Settings {
    /// Settings for `project` (`entity/project` or `project`).
    pub fn new(project: impl Into<String>) -> Self {
        Settings {
            project: project.into(),
            db_path: None,
            redact_keys: default_redact_keys(),
            quiet: false,
            sink: None,
            remote: None,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            max_buffered: crate::queue::DEFAULT_MAX_BUFFERED,
        }
    }

    /// How long [`WeaveClient::flush`] and [`flush`] wait for the writer before giving up
    /// with [`FlushError::TimedOut`] (default: [`DEFAULT_FLUSH_TIMEOUT`]). A trace server
    /// sink waits for delivery for three quarters of it, so that the flush can say what was
    /// not delivered.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Bounds the call records (two per call: start and end) waiting for the writer; default
    /// [`DEFAULT_MAX_BUFFERED`](crate::DEFAULT_MAX_BUFFERED). A thread whose call would go
    /// over the bound waits until the writer has collected the buffers: records are never
    /// dropped, and memory stays bounded when calls come faster than the sink stores them.
    pub fn max_buffered_records(mut self, records: usize) -> Self {
        self.max_buffered = records;
        self
    }

    /// Sends traces to a W&B Weave trace server (`weave serve`, or W&B's) instead of the
    /// local store. Without this, `WEAVE_TRACE_SERVER_URL` (else `WF_TRACE_SERVER_URL`) and
    /// `WANDB_API_KEY` select one, unless [`db_path`](Settings::db_path) is given.
    pub fn trace_server(mut self, config: RemoteConfig) -> Self {
        self.remote = Some(config);
        self
    }

    /// Stores traces in this SQLite file instead of `$WEAVE_DB` / `./.weave/weave.db` (and
    /// instead of a trace server named by the environment).
    pub fn db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.db_path = Some(path.into());
        self
    }

    /// Sends the records to `sink` instead of the SQLite store (e.g. a
    /// [`MemorySink`](crate::sink::MemorySink) in tests).
    pub fn sink(mut self, sink: impl TraceSink) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// Adds keys whose values are redacted in everything stored: call inputs, outputs and
    /// attributes, objects (model fields), table rows, `Debug` text and error messages.
    pub fn redact_key(mut self, key: impl Into<String>) -> Self {
        self.redact_keys.push(key.into());
        self
    }

    /// Replaces the list of redacted keys.
    pub fn redact_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Does not print where the traces go.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Opens the sink and starts the writer, without making the client current anywhere:
    /// use [`WeaveClient::set_default`] or [`WeaveClient::in_scope`] to trace on a thread
    /// (tests run in parallel this way, each with its own client).
    pub fn build(self) -> Result<WeaveClient, Error> {
        let (entity, project) = parse_project(&self.project)?;
        let project_id = format!("{entity}/{project}");
        // An explicit sink, then an explicit server, then an explicit file, then a server
        // named by the environment, then the default file.
        let remote = match (&self.sink, self.remote, &self.db_path) {
            (Some(_), _, _) => None,
            (None, Some(r), _) => Some(r),
            (None, None, Some(_)) => None,
            (None, None, None) => RemoteConfig::from_env(),
        };
        let mut server_url = None;
        let (sink, db_path): (Box<dyn TraceSink>, Option<PathBuf>) = match (self.sink, remote) {
            (Some(sink), _) => (sink, None),
            (None, Some(config)) => {
                let sink = RemoteSink::new(config)
                    .map_err(|source| Error::Io {
                        path: "weave-remote thread".into(),
                        source,
                    })?
                    .flush_timeout(self.flush_timeout * 3 / 4);
                server_url = Some(sink.url().to_string());
                (Box::new(sink), None)
            }
            (None, None) => {
                let path = self.db_path.unwrap_or_else(default_db_path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                let store = SqliteStore::create(&path)?;
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                (Box::new(SqliteSink::new(store)), Some(path))
            }
        };
        let (sender, receiver) = mpsc::channel();
        let calls = Arc::new(Registry::new(self.max_buffered));
        let keys = RedactKeys::new(&self.redact_keys);
        let encoder = Encoder::new(&project_id, keys.clone());
        let writer =
            spawn_writer(sink, encoder, receiver, calls.clone()).map_err(|source| Error::Io {
                path: "weave-writer thread".into(),
                source,
            })?;
        install_panic_hook();
        let dispatch = Arc::new(Dispatch::new(
            project_id,
            sender,
            calls,
            keys,
            self.flush_timeout,
        ));
        if !self.quiet {
            match &db_path {
                None if server_url.is_some() => eprintln!(
                    "weave: logging project {} to trace server {}",
                    dispatch.project_id(),
                    server_url.as_deref().unwrap_or("")
                ),
                Some(p) => eprintln!(
                    "weave: logging project {} to {}\nweave: inspect with `weave calls --db {}`",
                    dispatch.project_id(),
                    p.display(),
                    p.display()
                ),
                None => eprintln!("weave: logging project {}", dispatch.project_id()),
            }
        }
        Ok(WeaveClient {
            dispatch,
            db_path,
            server_url,
            writer: Some(writer),
        })
    }

    /// Opens the sink, starts the writer, and turns tracing on for the whole process (a
    /// previous global client stops receiving records).
    pub fn init(self) -> Result<WeaveClient, Error> {
        let client = self.build()?;
        dispatch::set_global(client.dispatch.clone());
        Ok(client)
    }
}

/// Starts tracing for `project` (`"entity/project"` or `"project"`): to the trace server named
/// by `WEAVE_TRACE_SERVER_URL` / `WF_TRACE_SERVER_URL` when set, else to the embedded store.
/// Keep the returned guard alive: dropping it flushes everything and stops tracing.
pub fn init(project: &str) -> Result<WeaveClient, Error> {
    Settings::new(project).init()
}

/// Waits until every record sent so far to the client in use here (this thread's, else the
/// global one) is written, up to its flush timeout ([`Settings::flush_timeout`]); the error
/// says how many records were not written since the previous flush, and why. `Ok` without a
/// client.
pub fn flush() -> Result<(), FlushError> {
    match context::dispatch() {
        Some(d) => flush_dispatch(&d),
        None => Ok(()),
    }
}

fn flush_dispatch(d: &Dispatch) -> Result<(), FlushError> {
    let timeout = d.flush_timeout();
    let (tx, rx) = mpsc::sync_channel(1);
    d.send(Msg::Flush(tx));
    match rx.recv_timeout(timeout) {
        Ok(l) if l.is_empty() => Ok(()),
        Ok(l) => Err(FlushError::NotWritten {
            lost: l.lost,
            pending: l.pending,
            reason: l.reason.unwrap_or_default(),
        }),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(FlushError::TimedOut { timeout }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(FlushError::Closed),
    }
}

/// Says on stderr what a stopped writer did not write (the exit path: nothing else would).
fn report_exit(outcome: std::thread::Result<Losses>) -> Result<(), FlushError> {
    let losses = match outcome {
        Ok(l) if l.is_empty() => return Ok(()),
        Ok(l) => l,
        Err(_) => {
            eprintln!("weave: the trace writer panicked; records not yet written are lost");
            return Err(FlushError::Closed);
        }
    };
    let reason = losses.reason.unwrap_or_default();
    let pending = match losses.pending {
        0 => String::new(),
        n => format!(" and {n} not delivered"),
    };
    eprintln!(
        "weave: at exit, {} trace record(s) were not written{pending}: {reason}",
        losses.lost
    );
    Err(FlushError::NotWritten {
        lost: losses.lost,
        pending: losses.pending,
        reason,
    })
}

/// A running client, returned by [`init`] and [`Settings::build`]. Dropping it flushes,
/// stops its writer and (if it is the global client) turns tracing off.
#[derive(Debug)]
pub struct WeaveClient {
    dispatch: Arc<Dispatch>,
    db_path: Option<PathBuf>,
    server_url: Option<String>,
    writer: Option<JoinHandle<Losses>>,
}

impl WeaveClient {
    /// `entity/project`.
    pub fn project_id(&self) -> String {
        self.dispatch.project_id().to_string()
    }

    /// The SQLite file the traces go to (`None` with a custom sink or a trace server).
    pub fn db_path(&self) -> Option<&Path> {
        self.db_path.as_deref()
    }

    /// The trace server the traces go to, if any.
    pub fn trace_server_url(&self) -> Option<&str> {
        self.server_url.as_deref()
    }

    /// How many times a traced thread waited for the writer because this client's buffers
    /// were full (see [`Settings::max_buffered_records`]).
    pub fn buffer_waits(&self) -> u64 {
        self.dispatch.buffer_waits()
    }

    /// Waits until everything recorded so far is written, up to the flush timeout
    /// ([`Settings::flush_timeout`]); the error says how many records were not written since
    /// the previous flush, and why.
    pub fn flush(&self) -> Result<(), FlushError> {
        flush_dispatch(&self.dispatch)
    }

    /// Writes everything, stops the writer and says what was not written in all (also
    /// printed on stderr). Dropping the client does the same, without the result.
    pub fn shutdown(mut self) -> Result<(), FlushError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), FlushError> {
        dispatch::clear_global(&self.dispatch);
        self.dispatch.send(Msg::Shutdown);
        match self.writer.take() {
            Some(w) => report_exit(w.join()),
            None => Ok(()),
        }
    }

    /// Flushes and opens the SQLite store for reading (an error with a custom sink). What a
    /// failed flush did not write is not in it; [`flush`](Self::flush) says how much.
    pub fn store(&self) -> Result<SqliteStore, Error> {
        let _ = self.flush();
        let path = self.db_path.as_ref().ok_or_else(|| {
            Error::Store(weave_store::StoreError::not_found(
                "trace store (this client writes to a custom sink)",
            ))
        })?;
        Ok(SqliteStore::open(path)?)
    }

    /// `weave:///entity/project/` prefix of this client's refs.
    pub fn ref_prefix(&self) -> String {
        self.dispatch.ref_prefix().to_string()
    }

    /// Makes this client the one ops on this thread report to, until the guard is dropped
    /// (then the previous one is back). Calls started here carry the client with them, so
    /// their children report to it wherever they run.
    pub fn set_default(&self) -> DefaultGuard {
        dispatch::set_default(self.dispatch.clone())
    }

    /// Runs `f` with this client as this thread's default.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.set_default();
        f()
    }
}

impl Drop for WeaveClient {
    fn drop(&mut self) {
        // What was not written is on stderr.
        let _ = self.stop();
    }
}

//! [`SqliteStore`]: the trace store in one SQLite file (WAL), written by a traced program's
//! background writer and read concurrently by the CLI, evaluations and servers.
//!
//! Synchronous core, asynchronous face: every operation is a plain function on a
//! connection; [`TraceStore`] runs them on tokio's blocking pool (inline when there is no
//! runtime), and [`SqliteStore::write`] gives a local sink one transaction per batch without
//! any runtime.

pub(crate) mod calls;
mod check;
mod checkpoint;
pub(crate) mod feedback;
mod objects;
pub(crate) mod query;
mod schema;
mod tables;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, Transaction};
use weave_types::*;

/// Shared with the ClickHouse store.
#[cfg(feature = "clickhouse")]
pub(crate) use calls::{non_empty, time};
pub use schema::SCHEMA_VERSION;

use crate::error::{Result, StoreError};
use crate::store::{CallIdNeighbors, CallIdPrefixReq, CallKey, CallStream, TraceStore};

/// Page cache of the writer's connection, in KiB (negative `cache_size`: a size, not pages).
const WRITER_CACHE_KIB: i64 = -32 * 1024;
/// Idle reader connections kept.
const MAX_IDLE_READERS: usize = 4;
/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The store's file, for messages.
#[derive(Debug, Clone)]
pub(crate) struct Location(Arc<str>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SQLite error as a store error naming the file; lock timeouts are `Unavailable`.
pub(crate) fn sql_err(at: &Location, e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable {
                store: at.to_string(),
                reason: e.to_string(),
            }
        }
        _ => StoreError::Backend {
            store: at.to_string(),
            source: Box::new(e),
        },
    }
}

/// Stored JSON that does not parse (the file was edited by hand, or is damaged).
pub(crate) fn json_err(at: &Location, what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Backend {
        store: at.to_string(),
        source: format!("stored JSON of {what} is invalid: {e}").into(),
    }
}

/// Now, as stored: RFC 3339 UTC with microseconds.
pub(crate) fn now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    weave_types::time::format_micros(micros)
}

/// Checks an `entity/project` id.
pub(crate) fn check_project(project_id: &str, field: &str) -> Result<()> {
    check_project_at(project_id, "", field)
}

/// `at.name` (or `name` alone), the path of a request field in error messages; made only
/// when there is an error.
pub(crate) fn field_path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// Checks an `entity/project` id found at `at.name` of a request.
pub(crate) fn check_project_at(project_id: &str, at: &str, name: &str) -> Result<()> {
    if weave_types::refs::split_project_id(project_id).is_none() {
        return Err(StoreError::invalid(
            field_path(at, name),
            format!("`{project_id}` is not a project id of the form entity/project"),
        ));
    }
    Ok(())
}

struct Inner {
    path: PathBuf,
    at: Location,
    /// Opened with [`SqliteStore::open_read_only`] on a file no one was writing: readers
    /// open it `immutable` (no locks, no `-wal`/`-shm` files).
    immutable: bool,
    writer: Option<Mutex<(Connection, WriteCache)>>,
    readers: Mutex<Vec<Connection>>,
    /// Copies the WAL into the database on its own thread (stores made by `create`).
    checkpointer: Option<checkpoint::Checkpointer>,
}

/// What the writer keeps from one transaction to the next.
#[derive(Default)]
struct WriteCache {
    texts: calls::TextCache,
}

/// A trace store in one SQLite file. Cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("read_only", &self.inner.writer.is_none())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Opens an existing store; safe while another process writes to it. An older schema is
    /// upgraded when the file is writable. A missing file is `NotFound` (and is not created);
    /// a file that is not a weave store, or is from a newer weave, is a `Schema` error.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let at = Location(path.display().to_string().into());
        if !path.is_file() {
            return Err(StoreError::not_found(format!("trace store {at}")));
        }
        let (mut conn, writable) = match Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(c) => (c, true),
            Err(_) => (
                Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| sql_err(&at, e))?,
                false,
            ),
        };
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_err(&at, e))?;
        let v = schema::check_readable(&conn, &at)?;
        if v < SCHEMA_VERSION {
            if !writable {
                return Err(StoreError::Schema {
                    store: at.to_string(),
                    reason: format!(
                        "schema version {v} is older than this weave's ({SCHEMA_VERSION}) and \
                         the file is read-only: open it once with write access to upgrade it"
                    ),
                });
            }
            schema::migrate(&mut conn, &at)?;
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                at,
                immutable: false,
                writer: writable.then(|| Mutex::new((conn, WriteCache::default()))),
                readers: Mutex::new(Vec::new()),
                checkpointer: None,
            }),
        })
    }

    /// Opens a store for writing, creating the file if needed (not its directory), in WAL
    /// mode, and brings its schema up to date. A file that is not a weave store, or a store
    /// that SQLite's `quick_check` finds damaged, is refused (a `Schema` error naming the
    /// file) before anything in it changes.
    pub fn create(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let at = Location(path.display().to_string().into());
        let mut conn = Connection::open(&path).map_err(|e| sql_err(&at, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_err(&at, e))?;
        // Refuse foreign or corrupt files before changing anything in them (journal mode).
        if schema::check_writable(&conn, &at)? > 0 {
            check::quick_check(&conn, &at)?;
        }
        for (k, v) in [
            (
                "journal_mode",
                rusqlite::types::Value::from("WAL".to_string()),
            ),
            ("synchronous", "NORMAL".to_string().into()),
            // The writer walks the calls' indexes on every insert: keep them in memory
            // rather than re-reading their pages from the OS (default cache: 2 MiB).
            ("cache_size", WRITER_CACHE_KIB.into()),
        ] {
            conn.pragma_update(None, k, v)
                .map_err(|e| sql_err(&at, e))?;
        }
        schema::migrate(&mut conn, &at)?;
        // Checkpoints (copying the WAL into the file, with an fsync) run on their own
        // thread, so that commits do not wait for them.
        let checkpointer = checkpoint::Checkpointer::start(&path, &at);
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| sql_err(&at, e))?;
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                at,
                immutable: false,
                writer: Some(Mutex::new((conn, WriteCache::default()))),
                readers: Mutex::new(Vec::new()),
                checkpointer,
            }),
        })
    }

    /// Opens an existing store for reading only, leaving nothing next to it: a reader of a
    /// WAL-mode file otherwise creates `-wal` and `-shm` files that a read-only connection
    /// cannot remove. When the file has no `-wal` (no program is writing it, and the last
    /// one closed cleanly) it is opened `immutable`: no locks, no side files; a program that
    /// starts writing while it is open is not seen. When a `-wal` exists (a program is
    /// writing, or crashed), it is read through it, read-only, as [`SqliteStore::open`]
    /// would. A store whose schema is older than this weave's is opened with
    /// [`SqliteStore::open`] (which upgrades it). Errors as for [`SqliteStore::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let at = Location(path.display().to_string().into());
        if !path.is_file() {
            return Err(StoreError::not_found(format!("trace store {at}")));
        }
        let immutable = !side_file(&path, "-wal").exists();
        let conn = open_reader(&path, &at, immutable)?;
        let v = schema::check_readable(&conn, &at)?;
        if v < SCHEMA_VERSION {
            drop(conn);
            return SqliteStore::open(path);
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                at,
                immutable,
                writer: None,
                readers: Mutex::new(vec![conn]),
                checkpointer: None,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn at(&self) -> &Location {
        &self.inner.at
    }

    fn reader(&self) -> Result<Connection> {
        if let Some(c) = lock(&self.inner.readers).pop() {
            return Ok(c);
        }
        if self.inner.writer.is_none() {
            return open_reader(&self.inner.path, self.at(), self.inner.immutable);
        }
        let flags = if self.inner.writer.is_some() {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let c =
            Connection::open_with_flags(&self.inner.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| sql_err(self.at(), e))?;
        c.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_err(self.at(), e))?;
        Ok(c)
    }

    /// Runs `f` on a reader connection (from a small pool).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection, &Location) -> Result<R>) -> Result<R> {
        let conn = self.reader()?;
        let r = f(&conn, self.at());
        let mut idle = lock(&self.inner.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        r
    }

    /// Runs `f` in one write transaction, committed when `f` returns `Ok`, rolled back
    /// otherwise. This is the local sink's path: no runtime, one transaction per batch.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<R>) -> Result<R> {
        let Some(writer) = &self.inner.writer else {
            return Err(StoreError::Unavailable {
                store: self.at().to_string(),
                reason: "the store was opened read-only".into(),
            });
        };
        let mut guard = lock(writer);
        let (conn, cache) = &mut *guard;
        let tx = conn.transaction().map_err(|e| sql_err(self.at(), e))?;
        let mut w = Writer {
            tx,
            at: self.at().clone(),
            projects: HashSet::new(),
            cache,
        };
        let r = f(&mut w)?;
        w.finish()?;
        if let Some(c) = &self.inner.checkpointer {
            if c.committed() {
                // The batch is committed whatever happens here; the next one retries.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                    tracing::warn!("weave: {}: checkpoint failed: {e}", self.at());
                }
            }
        }
        Ok(r)
    }

    /// Copies the WAL into the database file now (a `PASSIVE` checkpoint: it waits for
    /// nobody), so that what is committed is also synced. A no-op on a read-only store.
    pub fn checkpoint(&self) -> Result<()> {
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        let guard = lock(writer);
        guard
            .0
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| sql_err(self.at(), e))
    }

    /// Runs a blocking operation: on tokio's blocking pool inside a runtime, else inline.
    ///
    /// The result comes back over a `futures` channel rather than tokio's `JoinHandle`, whose
    /// cooperative budget would make a caller that blocks on this future from inside a tokio
    /// task (e.g. `futures::executor::block_on` in a `#[tokio::test]`) spin forever.
    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&SqliteStore) -> Result<R> + Send + 'static,
    {
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (tx, rx) = futures::channel::oneshot::channel();
                rt.spawn_blocking(move || {
                    let _ = tx.send(f(&this));
                });
                rx.await.map_err(|_| StoreError::Backend {
                    store: self.at().to_string(),
                    source: "the store task panicked".into(),
                })?
            }
            Err(_) => f(&this),
        }
    }
}

/// `path` with `suffix` appended (`weave.db` -> `weave.db-wal`).
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A read-only connection; `immutable` opens the file through a URI that tells SQLite it
/// cannot change (no locking, no `-wal`/`-shm`).
fn open_reader(path: &Path, at: &Location, immutable: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = if immutable {
        Connection::open_with_flags(
            file_uri(path, "immutable=1"),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(|e| sql_err(at, e))?;
    c.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_err(at, e))?;
    Ok(c)
}

/// An SQLite `file:` URI for `path` with `query`; `%`, `?` and `#` in the path are escaped.
fn file_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

/// One write transaction (see [`SqliteStore::write`]). Each method is atomic on its own: a
/// failed call leaves the transaction as it was, so a batch can skip one bad record.
pub struct Writer<'c> {
    tx: Transaction<'c>,
    at: Location,
    projects: HashSet<String>,
    cache: &'c mut WriteCache,
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("store", &self.at).finish()
    }
}

impl Writer<'_> {
    /// Remembers that `project_id` has data.
    fn touch_project(&mut self, project_id: &str) {
        if !self.projects.contains(project_id) {
            self.projects.insert(project_id.to_string());
        }
    }

    fn finish(self) -> Result<()> {
        {
            let mut st = self
                .tx
                .prepare_cached("INSERT OR IGNORE INTO projects (project_id) VALUES (?1)")
                .map_err(|e| sql_err(&self.at, e))?;
            for p in &self.projects {
                st.execute([p]).map_err(|e| sql_err(&self.at, e))?;
            }
        }
        self.tx.commit().map_err(|e| sql_err(&self.at, e))
    }

    /// Runs a multi-statement operation in a savepoint: all of it or none.
    fn atomic<R>(&mut self, f: impl FnOnce(&Connection, &Location) -> Result<R>) -> Result<R> {
        let at = self.at.clone();
        let sp = self.tx.savepoint().map_err(|e| sql_err(&at, e))?;
        let r = f(&sp, &at)?;
        sp.commit().map_err(|e| sql_err(&at, e))?;
        Ok(r)
    }
}

fn projects(conn: &Connection, at: &Location) -> Result<Vec<String>> {
    let mut st = conn
        .prepare_cached("SELECT project_id FROM projects ORDER BY project_id")
        .map_err(|e| sql_err(at, e))?;
    let rows = st
        .query_map([], |r| r.get(0))
        .and_then(|r| r.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(|e| sql_err(at, e))?;
    Ok(rows)
}

#[async_trait]
impl TraceStore for SqliteStore {
    async fn call_start(&self, req: CallStartReq) -> Result<CallStartRes> {
        self.blocking(move |s| s.write(|w| w.call_start(&req.start, "start")))
            .await
    }

    async fn call_end(&self, req: CallEndReq) -> Result<CallEndRes> {
        self.blocking(move |s| {
            s.write(|w| w.call_end(&req.end, "end"))
                .map(|()| CallEndRes {})
        })
        .await
    }

    async fn calls_complete(&self, req: CallsCompleteReq) -> Result<CallsCompleteRes> {
        self.blocking(move |s| {
            s.write(|w| {
                // All or none: the first bad call fails the request.
                let names: Vec<String> = (0..req.batch.len())
                    .map(|i| format!("batch[{i}]"))
                    .collect();
                let mut first = None;
                w.calls_complete_each(
                    req.batch.iter().zip(names.iter().map(String::as_str)),
                    &mut |_, e| {
                        first.get_or_insert(e);
                    },
                )?;
                first.map_or(Ok(CallsCompleteRes {}), Err)
            })
        })
        .await
    }

    async fn call_update(&self, req: CallUpdateReq) -> Result<CallUpdateRes> {
        self.blocking(move |s| s.write(|w| w.call_update(&req)).map(|()| CallUpdateRes {}))
            .await
    }

    async fn calls_delete(&self, req: CallsDeleteReq) -> Result<CallsDeleteRes> {
        self.blocking(move |s| s.write(|w| w.calls_delete(&req)))
            .await
    }

    async fn call_read(&self, req: CallReadReq) -> Result<CallReadRes> {
        self.blocking(move |s| s.read(|c, at| calls::call_read(c, at, &req)))
            .await
    }

    async fn calls_query(&self, req: CallsQueryReq) -> Result<CallStream> {
        use futures::StreamExt as _;
        if tokio::runtime::Handle::try_current().is_err() {
            let calls = self.read(|c, at| {
                let mut out = Vec::new();
                calls::calls_query(c, at, &req, &mut |call| {
                    out.push(call);
                    true
                })?;
                Ok(out)
            })?;
            return Ok(futures::stream::iter(calls.into_iter().map(Ok)).boxed());
        }
        // A `futures` channel: no tokio cooperative budget on the receiving side (see
        // `blocking`), and the producer blocks while the consumer is 256 calls behind.
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<CallSchema>>(256);
        let this = self.clone();
        // Compile the query first, so that a bad request is an error, not a stream item.
        calls::check_query(&req)?;
        tokio::task::spawn_blocking(move || {
            use futures::SinkExt as _;
            let r = this.read(|c, at| {
                calls::calls_query(c, at, &req, &mut |call| {
                    futures::executor::block_on(tx.send(Ok(call))).is_ok()
                })
            });
            if let Err(e) = r {
                let _ = futures::executor::block_on(tx.send(Err(e)));
            }
        });
        Ok(rx.boxed())
    }

    async fn calls_query_stats(&self, req: CallsQueryStatsReq) -> Result<CallsQueryStatsRes> {
        self.blocking(move |s| s.read(|c, at| calls::calls_query_stats(c, at, &req)))
            .await
    }

    async fn obj_create(&self, req: ObjCreateReq) -> Result<ObjCreateRes> {
        self.blocking(move |s| s.write(|w| w.obj_create(&req.obj, "obj")))
            .await
    }

    async fn obj_read(&self, req: ObjReadReq) -> Result<ObjReadRes> {
        self.blocking(move |s| s.read(|c, at| objects::obj_read(c, at, &req)))
            .await
    }

    async fn objs_query(&self, req: ObjQueryReq) -> Result<ObjQueryRes> {
        self.blocking(move |s| s.read(|c, at| objects::objs_query(c, at, &req)))
            .await
    }

    async fn table_create(&self, req: TableCreateReq) -> Result<TableCreateRes> {
        self.blocking(move |s| s.write(|w| w.table_create(&req.table, "table")))
            .await
    }

    async fn table_query(&self, req: TableQueryReq) -> Result<TableQueryRes> {
        self.blocking(move |s| s.read(|c, at| tables::table_query(c, at, &req)))
            .await
    }

    async fn table_query_stats(&self, req: TableQueryStatsReq) -> Result<TableQueryStatsRes> {
        self.blocking(move |s| s.read(|c, at| tables::table_query_stats(c, at, &req)))
            .await
    }

    async fn table_create_from_digests(
        &self,
        req: TableCreateFromDigestsReq,
    ) -> Result<TableCreateFromDigestsRes> {
        self.blocking(move |s| s.write(|w| w.table_create_from_digests(&req)))
            .await
    }

    async fn file_create(&self, req: FileCreateReq) -> Result<FileCreateRes> {
        self.blocking(move |s| s.write(|w| w.file_create(&req)))
            .await
    }

    async fn file_content_read(&self, req: FileContentReadReq) -> Result<FileContentReadRes> {
        self.blocking(move |s| s.read(|c, at| tables::file_content_read(c, at, &req)))
            .await
    }

    async fn refs_read_batch(&self, req: RefsReadBatchReq) -> Result<RefsReadBatchRes> {
        self.blocking(move |s| s.read(|c, at| objects::refs_read_batch(c, at, &req)))
            .await
    }

    async fn feedback_create(&self, req: FeedbackCreateReq) -> Result<FeedbackCreateRes> {
        self.blocking(move |s| s.write(|w| w.feedback_create(&req, "feedback")))
            .await
    }

    async fn feedback_create_batch(
        &self,
        req: FeedbackCreateBatchReq,
    ) -> Result<FeedbackCreateBatchRes> {
        self.blocking(move |s| {
            s.write(|w| {
                let res = req
                    .batch
                    .iter()
                    .enumerate()
                    .map(|(i, f)| w.feedback_create(f, &format!("batch[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(FeedbackCreateBatchRes { res })
            })
        })
        .await
    }

    async fn feedback_query(&self, req: FeedbackQueryReq) -> Result<FeedbackQueryRes> {
        self.blocking(move |s| s.read(|c, at| feedback::feedback_query(c, at, &req)))
            .await
    }

    async fn projects(&self) -> Result<Vec<String>> {
        self.blocking(move |s| s.read(projects)).await
    }

    async fn call_ids_by_prefix(&self, req: CallIdPrefixReq) -> Result<Vec<CallKey>> {
        self.blocking(move |s| {
            s.read(|c, at| {
                calls::ids_by_prefix(c, at, req.project_id.as_deref(), &req.prefix, req.limit)
            })
        })
        .await
    }

    async fn call_id_neighbors(
        &self,
        project_id: Option<String>,
        id: String,
    ) -> Result<CallIdNeighbors> {
        self.blocking(move |s| {
            s.read(|c, at| calls::id_neighbors(c, at, project_id.as_deref(), &id))
        })
        .await
    }
}

//! [`ClickHouseStore`]: the trace store on a ClickHouse database, for teams: many server
//! replicas over one database, millions of calls. Same [`TraceStore`] semantics as
//! [`SqliteStore`](crate::SqliteStore), checked by the same conformance suite.
//!
//! - [`conn`]: the HTTP connection (the `clickhouse` crate), bound values, errors;
//! - [`schema`]: tables and versioned migrations;
//! - `calls`: call parts and their merge; `query`: calls queries (ClickHouse narrows, Rust
//!   decides); `eval`: `$expr` with SQLite's semantics; `objects`, `tables`, `feedback`:
//!   the rest of the interface;
//! - [`process`]: a throwaway `clickhouse-server` for tests and trials.
//!
//! Writes of call parts are group-committed: concurrent requests share one `INSERT`
//! (ClickHouse wants few, large inserts), and each request is answered only once its rows
//! are stored, so a failure is reported to every writer whose rows it concerns. Needs a
//! tokio runtime (with timers).

mod calls;
pub mod conn;
mod eval;
mod feedback;
mod objects;
pub mod process;
mod query;
pub mod schema;
mod tables;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt as _;
use serde::Serialize;
use weave_types::*;

pub use conn::{ClickHouseOptions, PASSWORD_ENV, USER_ENV};
pub use process::ClickHouseServer;
pub use schema::CLICKHOUSE_SCHEMA_VERSION;

use crate::error::{Result, StoreError};
use crate::store::{CallIdNeighbors, CallIdPrefixReq, CallKey, CallStream, TraceStore};
use calls::PartRow;
use conn::{Conn, Sql};
use query::{CallCursor, Plan};

/// Most call parts in one `INSERT`.
const MAX_INSERT_ROWS: usize = 20_000;
/// Most bytes (roughly) in one `INSERT`.
const MAX_INSERT_BYTES: usize = 32 << 20;

static CLOCK: AtomicI64 = AtomicI64::new(0);

/// Microseconds since the epoch, strictly increasing within this process; reserves `n`
/// consecutive values and returns the first.
fn reserve_micros(n: usize) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let n = n.max(1) as i64;
    let mut prev = CLOCK.load(Ordering::Relaxed);
    loop {
        let start = now.max(prev + 1);
        match CLOCK.compare_exchange_weak(prev, start + n - 1, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return start,
            Err(p) => prev = p,
        }
    }
}

/// Now, in microseconds (increasing within this process).
pub(crate) fn now_micros() -> i64 {
    reserve_micros(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The same error again (errors are not `Clone`; a group commit answers several writers).
fn dup(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable { store, reason } => StoreError::Unavailable {
            store: store.clone(),
            reason: reason.clone(),
        },
        StoreError::Backend { store, source } => StoreError::Backend {
            store: store.clone(),
            source: source.to_string().into(),
        },
        StoreError::Schema { store, reason } => StoreError::Schema {
            store: store.clone(),
            reason: reason.clone(),
        },
        other => StoreError::Backend {
            store: String::new(),
            source: other.to_string().into(),
        },
    }
}

struct Pending {
    rows: Vec<PartRow>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    busy: bool,
}

/// Owned by the queue's drain task. Dropped with the task when its runtime shuts down (also
/// before the task's first poll): frees the queue for the next writer and fails the writes
/// still queued (their writers see `Unavailable` and retry) rather than leaving them waiting
/// for a dead task.
struct Abandoned(Option<Arc<Inner>>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        let Some(inner) = self.0.take() else { return };
        let orphans = {
            let mut q = lock(&inner.queue);
            q.busy = false;
            std::mem::take(&mut q.pending)
        };
        drop(orphans);
    }
}

/// The store's shared state.
pub(crate) struct Inner {
    conn: Conn,
    queue: Mutex<Queue>,
    projects: Mutex<HashSet<String>>,
}

fn row_bytes(r: &PartRow) -> usize {
    let o = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    128 + r.id.len()
        + r.project_id.len()
        + o(&r.inputs)
        + o(&r.output)
        + o(&r.attributes)
        + o(&r.summary)
        + o(&r.op_name)
        + o(&r.exception)
        + r.input_refs
            .iter()
            .chain(&r.output_refs)
            .map(String::len)
            .sum::<usize>()
}

impl Inner {
    /// Stores call parts (all or none), sharing an `INSERT` with concurrent writers.
    async fn write_parts(self: &Arc<Self>, mut rows: Vec<PartRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Unavailable {
                store: self.conn.at.to_string(),
                reason: "the ClickHouse store needs a tokio runtime".into(),
            });
        }
        let base = reserve_micros(rows.len());
        for (i, r) in rows.iter_mut().enumerate() {
            r.written_at = base + i as i64;
        }
        let projects: Vec<String> = rows.iter().map(|r| r.project_id.clone()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut q = lock(&self.queue);
            q.pending.push(Pending { rows, done: tx });
            !std::mem::replace(&mut q.busy, true)
        };
        if start {
            let me = self.clone();
            let guard = Abandoned(Some(self.clone()));
            tokio::spawn(async move { me.drain(guard).await });
        }
        rx.await.map_err(|_| StoreError::Unavailable {
            store: self.conn.at.to_string(),
            reason: "the ClickHouse writer stopped (its runtime shut down) before this write \
                     was confirmed: retry"
                .into(),
        })??;
        self.touch_projects(&projects).await
    }

    /// Writes queued parts until the queue is empty. `guard` was made before the task was
    /// spawned, so that a task dropped before its first poll frees the queue too.
    async fn drain(self: Arc<Self>, mut guard: Abandoned) {
        loop {
            let batch: Vec<Pending> = {
                let mut q = lock(&self.queue);
                if q.pending.is_empty() {
                    q.busy = false;
                    guard.0 = None;
                    return;
                }
                let (mut n, mut rows, mut bytes) = (0, 0, 0);
                for p in &q.pending {
                    let b: usize = p.rows.iter().map(row_bytes).sum();
                    if n > 0
                        && (rows + p.rows.len() > MAX_INSERT_ROWS || bytes + b > MAX_INSERT_BYTES)
                    {
                        break;
                    }
                    n += 1;
                    rows += p.rows.len();
                    bytes += b;
                }
                q.pending.drain(..n).collect()
            };
            let mut all = Vec::with_capacity(batch.iter().map(|p| p.rows.len()).sum());
            let mut waiters = Vec::with_capacity(batch.len());
            for p in batch {
                all.extend(p.rows);
                waiters.push(p.done);
            }
            let r = self.conn.insert("call_parts", &all).await;
            if let Err(e) = &r {
                tracing::warn!(rows = all.len(), error = %e, "ClickHouse insert failed");
            }
            for w in waiters {
                let _ = w.send(match &r {
                    Ok(()) => Ok(()),
                    Err(e) => Err(dup(e)),
                });
            }
        }
    }

    /// Records that projects have data (once per project and process).
    pub(crate) async fn touch_projects(&self, projects: &[String]) -> Result<()> {
        let new: Vec<String> = {
            let seen = lock(&self.projects);
            let mut new: Vec<String> = projects
                .iter()
                .filter(|p| !seen.contains(*p))
                .cloned()
                .collect();
            new.sort();
            new.dedup();
            new
        };
        if new.is_empty() {
            return Ok(());
        }
        #[derive(clickhouse::Row, Serialize)]
        struct Project {
            project_id: String,
        }
        let rows: Vec<Project> = new
            .iter()
            .map(|p| Project {
                project_id: p.clone(),
            })
            .collect();
        self.conn.insert("projects", &rows).await?;
        lock(&self.projects).extend(new);
        Ok(())
    }

    async fn projects(&self) -> Result<Vec<String>> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Project {
            project_id: String,
        }
        let rows: Vec<Project> = self
            .conn
            .fetch_all(&Sql::new(
                "SELECT DISTINCT project_id FROM projects ORDER BY project_id",
            ))
            .await?;
        Ok(rows.into_iter().map(|p| p.project_id).collect())
    }
}

/// A trace store in a ClickHouse database. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct ClickHouseStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("at", &self.inner.conn.at)
            .finish()
    }
}

impl ClickHouseStore {
    /// Opens the store at `clickhouse://[user[:password]@]host[:port]/database`, creating the
    /// database and its tables if needed (see [`ClickHouseOptions::from_url`]).
    pub async fn open(url: &str) -> Result<ClickHouseStore> {
        Self::open_with(ClickHouseOptions::from_url(url)?).await
    }

    /// Opens a store: checks that ClickHouse answers, creates the database if missing,
    /// brings the schema up to date, and refuses a schema newer than this build's.
    pub async fn open_with(opts: ClickHouseOptions) -> Result<ClickHouseStore> {
        conn::check_identifier(&opts.database).map_err(|r| StoreError::invalid("store", r))?;
        let conn = Conn::new(&opts, true);
        schema::migrate(&opts, &conn).await?;
        Ok(ClickHouseStore {
            inner: Arc::new(Inner {
                conn,
                queue: Mutex::new(Queue::default()),
                projects: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// [`open`](Self::open) for callers without a runtime (or inside one that must not
    /// block): opens on a thread of its own. The store then works on any tokio runtime.
    pub fn open_blocking(url: &str) -> Result<ClickHouseStore> {
        let opts = ClickHouseOptions::from_url(url)?;
        let at = opts.display_url();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| StoreError::Backend {
                            store: at.clone(),
                            source: Box::new(e),
                        })?;
                    rt.block_on(Self::open_with(opts))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(StoreError::Backend {
                        store: url.to_string(),
                        source: "opening the store panicked".into(),
                    })
                })
        })
    }

    /// The store, for messages: `clickhouse://[user@]host:port/database`.
    pub fn location(&self) -> &str {
        &self.inner.conn.at
    }
}

/// The stream of a running query: batches from the cursor, then its end (or one error).
fn stream(inner: Arc<Inner>, cursor: CallCursor, first: Vec<CallSchema>) -> CallStream {
    let state = (inner, Some(cursor), std::collections::VecDeque::from(first));
    futures::stream::unfold(state, |(inner, mut cursor, mut buf)| async move {
        loop {
            if let Some(c) = buf.pop_front() {
                return Some((Ok(c), (inner, cursor, buf)));
            }
            let cur = cursor.as_mut()?;
            match cur.next_batch(&inner).await {
                Ok(Some(b)) => buf = b.into(),
                Ok(None) => return None,
                Err(e) => return Some((Err(e), (inner, None, buf))),
            }
        }
    })
    .boxed()
}

#[async_trait]
impl TraceStore for ClickHouseStore {
    async fn call_start(&self, req: CallStartReq) -> Result<CallStartRes> {
        let (part, res) = calls::start_part(&req.start, "start")?;
        self.inner.write_parts(vec![part]).await?;
        Ok(res)
    }

    async fn call_end(&self, req: CallEndReq) -> Result<CallEndRes> {
        let part = calls::end_part(&req.end, "end")?;
        self.inner.write_parts(vec![part]).await?;
        Ok(CallEndRes {})
    }

    async fn calls_complete(&self, req: CallsCompleteReq) -> Result<CallsCompleteRes> {
        let parts = req
            .batch
            .iter()
            .enumerate()
            .map(|(i, c)| calls::complete_part(c, &format!("batch[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        self.inner.write_parts(parts).await?;
        Ok(CallsCompleteRes {})
    }

    async fn call_update(&self, req: CallUpdateReq) -> Result<CallUpdateRes> {
        if let Some(part) = calls::update_part(&req)? {
            self.inner.write_parts(vec![part]).await?;
        }
        Ok(CallUpdateRes {})
    }

    async fn calls_delete(&self, req: CallsDeleteReq) -> Result<CallsDeleteRes> {
        crate::sqlite::check_project(&req.project_id, "project_id")?;
        let rows = calls::with_descendants(&self.inner, &req.project_id, &req.call_ids).await?;
        let now = now_micros();
        let parts: Vec<PartRow> = rows
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| PartRow {
                project_id: r.project_id,
                id: r.id,
                part: calls::DELETE,
                deleted_at: Some(now),
                ..Default::default()
            })
            .collect();
        let n = parts.len() as u64;
        self.inner.write_parts(parts).await?;
        Ok(CallsDeleteRes { num_deleted: n })
    }

    async fn call_read(&self, req: CallReadReq) -> Result<CallReadRes> {
        crate::sqlite::check_project(&req.project_id, "project_id")?;
        let row = calls::read(&self.inner, &req.project_id, &req.id).await?;
        Ok(CallReadRes {
            call: row.map(|r| r.to_call(None)),
        })
    }

    async fn calls_query(&self, req: CallsQueryReq) -> Result<CallStream> {
        crate::sqlite::calls::check_query(&req)?;
        let mut cursor = CallCursor::start(&self.inner, Plan::for_query(&req)).await?;
        let first = cursor.next_batch(&self.inner).await?.unwrap_or_default();
        Ok(stream(self.inner.clone(), cursor, first))
    }

    async fn calls_query_stats(&self, req: CallsQueryStatsReq) -> Result<CallsQueryStatsRes> {
        crate::sqlite::calls::check_query(&CallsQueryReq {
            project_id: req.project_id.clone(),
            filter: req.filter.clone(),
            query: req.query.clone(),
            ..Default::default()
        })?;
        let plan = Plan::new(
            &req.project_id,
            req.filter.as_ref(),
            req.query.as_ref(),
            None,
        );
        let count = query::count(&self.inner, &plan, req.limit).await?;
        Ok(CallsQueryStatsRes {
            count,
            total_storage_size_bytes: Some(0),
        })
    }

    async fn obj_create(&self, req: ObjCreateReq) -> Result<ObjCreateRes> {
        objects::create(&self.inner, &req.obj, "obj").await
    }

    async fn obj_read(&self, req: ObjReadReq) -> Result<ObjReadRes> {
        objects::read(&self.inner, &req).await
    }

    async fn objs_query(&self, req: ObjQueryReq) -> Result<ObjQueryRes> {
        objects::query(&self.inner, &req).await
    }

    async fn table_create(&self, req: TableCreateReq) -> Result<TableCreateRes> {
        tables::create(&self.inner, &req.table, "table").await
    }

    async fn table_query(&self, req: TableQueryReq) -> Result<TableQueryRes> {
        tables::query(&self.inner, &req).await
    }

    async fn table_query_stats(&self, req: TableQueryStatsReq) -> Result<TableQueryStatsRes> {
        tables::query_stats(&self.inner, &req).await
    }

    async fn table_create_from_digests(
        &self,
        req: TableCreateFromDigestsReq,
    ) -> Result<TableCreateFromDigestsRes> {
        tables::create_from_digests(&self.inner, &req).await
    }

    async fn file_create(&self, req: FileCreateReq) -> Result<FileCreateRes> {
        tables::file_create(&self.inner, &req).await
    }

    async fn file_content_read(&self, req: FileContentReadReq) -> Result<FileContentReadRes> {
        tables::file_content(&self.inner, &req).await
    }

    async fn refs_read_batch(&self, req: RefsReadBatchReq) -> Result<RefsReadBatchRes> {
        objects::refs_read_batch(&self.inner, &req).await
    }

    async fn feedback_create(&self, req: FeedbackCreateReq) -> Result<FeedbackCreateRes> {
        let mut res = feedback::create(&self.inner, std::slice::from_ref(&req), |_| {
            "feedback".to_string()
        })
        .await?;
        Ok(res.remove(0))
    }

    async fn feedback_create_batch(
        &self,
        req: FeedbackCreateBatchReq,
    ) -> Result<FeedbackCreateBatchRes> {
        let res = feedback::create(&self.inner, &req.batch, |i| format!("batch[{i}]")).await?;
        Ok(FeedbackCreateBatchRes { res })
    }

    async fn feedback_query(&self, req: FeedbackQueryReq) -> Result<FeedbackQueryRes> {
        feedback::query(&self.inner, &req).await
    }

    async fn projects(&self) -> Result<Vec<String>> {
        self.inner.projects().await
    }

    async fn call_ids_by_prefix(&self, req: CallIdPrefixReq) -> Result<Vec<CallKey>> {
        let projects = match &req.project_id {
            Some(p) => vec![p.clone()],
            None => self.inner.projects().await?,
        };
        let prefix = req.prefix.trim().to_ascii_lowercase();
        let upper = format!("{prefix}\u{7f}");
        let mut out = Vec::new();
        for p in &projects {
            out.extend(calls::ids_in_range(&self.inner, p, &prefix, &upper, req.limit).await?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id).then(a.project_id.cmp(&b.project_id)));
        out.truncate(req.limit.min(usize::MAX as u64) as usize);
        Ok(out)
    }

    async fn call_id_neighbors(
        &self,
        project_id: Option<String>,
        id: String,
    ) -> Result<CallIdNeighbors> {
        let projects = match project_id {
            Some(p) => vec![p],
            None => self.inner.projects().await?,
        };
        let mut out = CallIdNeighbors::default();
        for p in &projects {
            let n = calls::neighbors(&self.inner, p, &id).await?;
            if n.before > out.before {
                out.before = n.before;
            }
            if let Some(a) = n.after {
                if out.after.as_ref().is_none_or(|cur| &a < cur) {
                    out.after = Some(a);
                }
            }
        }
        Ok(out)
    }
}

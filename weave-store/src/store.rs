//! [`TraceStore`]: W&B Weave's trace-server interface (`TraceServerInterface`), async and
//! dyn-safe, taking and returning Weave's request and response types, plus a few clearly
//! marked extensions that the CLI and UI need and Weave's API lacks.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use weave_types::*;

use crate::error::{Result, StoreError};

/// A stream of calls, as `calls/stream_query` answers.
pub type CallStream = BoxStream<'static, Result<CallSchema>>;

/// A call's identity: project and id (extension result type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallKey {
    /// `entity/project`.
    pub project_id: String,
    /// Call id.
    pub id: String,
}

/// The calls whose id starts with a prefix (extension request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallIdPrefixReq {
    /// Only this project; `None`: every project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Lowercase prefix of a call id.
    pub prefix: String,
    /// At most this many, in id order.
    pub limit: u64,
}

/// The ids sorting just before and after a call id (extension result): tells how long a
/// prefix must be to name the call uniquely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallIdNeighbors {
    /// The greatest id smaller than the one asked about.
    pub before: Option<String>,
    /// The smallest id greater than the one asked about.
    pub after: Option<String>,
}

/// A trace store: what a Weave trace server serves, what the CLI and UI read, and where a
/// local program's traces end up. Shared as `Arc<dyn TraceStore>`.
///
/// Semantics every implementation keeps:
/// - a call's start, end and complete record upsert by `(project_id, id)`, in any order
///   (an end before its start, children before their parent) and any number of times (a
///   retried batch changes nothing); a call is listed once its start is known;
/// - `summary.weave` is derived when a call is read ([`weave_types::summary`]);
/// - object versions: digest = Weave's object digest of the value after ref
///   internalisation; 0-based `version_index`; `latest` and `v<N>` resolve; creating an
///   existing `(project, object_id, digest)` makes no new version (it becomes latest);
/// - tables by digest, with row digests; files by digest (a client's `expected_digest`
///   must match);
/// - projects are isolated: nothing of one project is visible through another.
#[async_trait]
pub trait TraceStore: Send + Sync + 'static {
    /// `POST /call/start`: upserts a call's start; makes up an id and trace id if missing.
    async fn call_start(&self, req: CallStartReq) -> Result<CallStartRes>;
    /// `POST /call/end`: upserts a call's end.
    async fn call_end(&self, req: CallEndReq) -> Result<CallEndRes>;
    /// `POST /v2/{e}/{p}/calls/complete`: upserts finished calls, all or none.
    async fn calls_complete(&self, req: CallsCompleteReq) -> Result<CallsCompleteRes>;
    /// `POST /call/update`: display name (and the attributes extension).
    async fn call_update(&self, req: CallUpdateReq) -> Result<CallUpdateRes>;
    /// `POST /calls/delete`: marks calls and their descendants deleted.
    async fn calls_delete(&self, req: CallsDeleteReq) -> Result<CallsDeleteRes>;
    /// `POST /call/read`.
    async fn call_read(&self, req: CallReadReq) -> Result<CallReadRes>;
    /// `POST /calls/stream_query`: filter, `$expr` query, sort, paging, projection.
    async fn calls_query(&self, req: CallsQueryReq) -> Result<CallStream>;
    /// `POST /calls/query_stats`.
    async fn calls_query_stats(&self, req: CallsQueryStatsReq) -> Result<CallsQueryStatsRes>;
    /// `POST /obj/create`.
    async fn obj_create(&self, req: ObjCreateReq) -> Result<ObjCreateRes>;
    /// `POST /obj/read`: by digest, `latest` or `v<N>`.
    async fn obj_read(&self, req: ObjReadReq) -> Result<ObjReadRes>;
    /// `POST /objs/query`.
    async fn objs_query(&self, req: ObjQueryReq) -> Result<ObjQueryRes>;
    /// `POST /table/create`.
    async fn table_create(&self, req: TableCreateReq) -> Result<TableCreateRes>;
    /// `POST /table/query`.
    async fn table_query(&self, req: TableQueryReq) -> Result<TableQueryRes>;
    /// `POST /table/query_stats`.
    async fn table_query_stats(&self, req: TableQueryStatsReq) -> Result<TableQueryStatsRes>;
    /// `POST /table/create_from_digests`: a table of rows stored earlier, by their digests.
    ///
    /// A store without a way to find rows by digest alone answers not found (404), which is
    /// how a client learns to fall back to `table/update`.
    async fn table_create_from_digests(
        &self,
        req: TableCreateFromDigestsReq,
    ) -> Result<TableCreateFromDigestsRes> {
        let _ = req;
        Err(StoreError::not_found(
            "table/create_from_digests (this store finds rows only through a table)",
        ))
    }
    /// `POST /table/update`: a new table, `base_digest`'s rows with `updates` applied in order.
    ///
    /// Provided in terms of `table_query` and `table_create`, so every store has it.
    async fn table_update(&self, req: TableUpdateReq) -> Result<TableUpdateRes> {
        let base = self
            .table_query(TableQueryReq {
                project_id: req.project_id.clone(),
                digest: req.base_digest.clone(),
                ..Default::default()
            })
            .await?;
        let (rows, updated) = crate::table_update::apply(
            base.rows.into_iter().map(|r| r.val).collect(),
            req.updates,
        )?;
        let created = self
            .table_create(TableCreateReq {
                table: TableSchemaForInsert {
                    project_id: req.project_id,
                    rows,
                    expected_digest: None,
                },
            })
            .await?;
        Ok(TableUpdateRes {
            digest: created.digest,
            updated_row_digests: updated,
        })
    }
    /// `POST /file/create`.
    async fn file_create(&self, req: FileCreateReq) -> Result<FileCreateRes>;
    /// `POST /file/content`.
    async fn file_content_read(&self, req: FileContentReadReq) -> Result<FileContentReadRes>;
    /// `POST /refs/read_batch`: values of object refs, following their extra path.
    async fn refs_read_batch(&self, req: RefsReadBatchReq) -> Result<RefsReadBatchRes>;
    /// `POST /feedback/create`.
    async fn feedback_create(&self, req: FeedbackCreateReq) -> Result<FeedbackCreateRes>;
    /// `POST /feedback/batch/create`: all or none.
    async fn feedback_create_batch(
        &self,
        req: FeedbackCreateBatchReq,
    ) -> Result<FeedbackCreateBatchRes>;
    /// `POST /feedback/query`.
    async fn feedback_query(&self, req: FeedbackQueryReq) -> Result<FeedbackQueryRes>;

    /// Extension: every project that has calls or objects, sorted.
    async fn projects(&self) -> Result<Vec<String>>;
    /// Extension: calls whose id starts with a prefix (for abbreviated ids).
    async fn call_ids_by_prefix(&self, req: CallIdPrefixReq) -> Result<Vec<CallKey>>;
    /// Extension: the ids next to `id` in id order, in `project_id` or (`None`) in every
    /// project.
    async fn call_id_neighbors(
        &self,
        project_id: Option<String>,
        id: String,
    ) -> Result<CallIdNeighbors>;

    /// [`calls_query`](TraceStore::calls_query), collected.
    async fn calls_query_vec(&self, req: CallsQueryReq) -> Result<Vec<CallSchema>> {
        let mut stream = self.calls_query(req).await?;
        let mut out = Vec::new();
        while let Some(call) = stream.next().await {
            out.push(call?);
        }
        Ok(out)
    }
}

//! Calls: writing (`calls/complete`, v1 and v2 `call/start`/`call/end`, the legacy
//! `call/upsert_batch`, `call/update`, `calls/delete`) and reading (`call/read`, the JSON-lines
//! `calls/stream_query`, `calls/query`, `calls/query_stats`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use weave_types::*;

use super::check_path_project;
use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

type Res<T> = Result<Json<T>, AppError>;

/// `POST /v2/{entity}/{project}/calls/complete`.
pub(crate) async fn complete_v2(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    WeaveJson(req): WeaveJson<CallsCompleteReq>,
) -> Res<CallsCompleteRes> {
    for (i, c) in req.batch.iter().enumerate() {
        check_path_project(
            &entity,
            &project,
            &c.project_id,
            &format!("batch[{i}].project_id"),
        )?;
    }
    Ok(Json(state.store.calls_complete(req).await?))
}

/// `POST /v2/{entity}/{project}/call/start`.
pub(crate) async fn start_v2(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    WeaveJson(req): WeaveJson<CallStartReq>,
) -> Res<CallStartRes> {
    check_path_project(&entity, &project, &req.start.project_id, "start.project_id")?;
    Ok(Json(state.store.call_start(req).await?))
}

/// `POST /v2/{entity}/{project}/call/end`.
pub(crate) async fn end_v2(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    WeaveJson(req): WeaveJson<CallEndReq>,
) -> Res<CallEndRes> {
    check_path_project(&entity, &project, &req.end.project_id, "end.project_id")?;
    Ok(Json(state.store.call_end(req).await?))
}

/// `POST /call/start`.
pub(crate) async fn start(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallStartReq>,
) -> Res<CallStartRes> {
    Ok(Json(state.store.call_start(req).await?))
}

/// `POST /call/end`.
pub(crate) async fn end(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallEndReq>,
) -> Res<CallEndRes> {
    Ok(Json(state.store.call_end(req).await?))
}

/// An item of the legacy `call/upsert_batch`.
#[derive(Debug, Deserialize)]
#[serde(tag = "mode", content = "req", rename_all = "lowercase")]
pub(crate) enum UpsertItem {
    /// A start.
    Start(CallStartReq),
    /// An end.
    End(CallEndReq),
}

/// `POST /call/upsert_batch`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpsertBatchReq {
    #[serde(default)]
    batch: Vec<UpsertItem>,
}

/// One answer per item: `{"id", "trace_id"}` for a start, `{}` for an end.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum UpsertItemRes {
    Start(CallStartRes),
    End(CallEndRes),
}

/// The answer to `call/upsert_batch`.
#[derive(Debug, Serialize)]
pub(crate) struct UpsertBatchRes {
    res: Vec<UpsertItemRes>,
}

/// `POST /call/upsert_batch` (the Python client with `WEAVE_USE_CALLS_COMPLETE=false`).
/// A start and its end in the same batch are stored together as one finished call; all such
/// pairs go in one transaction. Unpaired starts and ends follow one by one (each is an
/// idempotent upsert, so a client's retry of a failed batch completes it).
pub(crate) async fn upsert_batch(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<UpsertBatchReq>,
) -> Res<UpsertBatchRes> {
    use std::collections::HashMap;
    let ends: HashMap<String, usize> = req
        .batch
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            UpsertItem::End(e) => Some((e.end.id.clone(), i)),
            UpsertItem::Start(_) => None,
        })
        .collect();
    let mut paired = vec![false; req.batch.len()];
    let mut complete = Vec::new();
    for (i, item) in req.batch.iter().enumerate() {
        let UpsertItem::Start(s) = item else { continue };
        let (Some(id), Some(trace_id)) = (&s.start.id, &s.start.trace_id) else {
            continue;
        };
        let Some(&j) = ends.get(id) else { continue };
        let UpsertItem::End(e) = &req.batch[j] else {
            continue;
        };
        if e.end.project_id != s.start.project_id {
            continue;
        }
        let s = s.start.clone();
        let e = e.end.clone();
        complete.push(CompleteCallSchemaForInsert {
            project_id: s.project_id,
            id: id.clone(),
            trace_id: trace_id.clone(),
            op_name: s.op_name,
            started_at: s.started_at,
            ended_at: e.ended_at,
            display_name: s.display_name,
            parent_id: s.parent_id,
            thread_id: s.thread_id,
            turn_id: s.turn_id,
            attributes: s.attributes,
            inputs: s.inputs,
            output: e.output,
            summary: e.summary,
            exception: e.exception,
            otel_dump: s.otel_dump,
            wb_user_id: s.wb_user_id,
            wb_run_id: s.wb_run_id,
            wb_run_step: s.wb_run_step,
            wb_run_step_end: e.wb_run_step_end,
        });
        paired[i] = true;
        paired[j] = true;
    }
    if !complete.is_empty() {
        state
            .store
            .calls_complete(CallsCompleteReq { batch: complete })
            .await?;
    }
    let mut res = Vec::with_capacity(req.batch.len());
    for (i, item) in req.batch.into_iter().enumerate() {
        res.push(match item {
            UpsertItem::Start(s) if paired[i] => UpsertItemRes::Start(CallStartRes {
                id: s.start.id.unwrap_or_default(),
                trace_id: s.start.trace_id.unwrap_or_default(),
            }),
            UpsertItem::Start(s) => UpsertItemRes::Start(state.store.call_start(s).await?),
            UpsertItem::End(_) if paired[i] => UpsertItemRes::End(CallEndRes {}),
            UpsertItem::End(e) => UpsertItemRes::End(state.store.call_end(e).await?),
        });
    }
    Ok(Json(UpsertBatchRes { res }))
}

/// `POST /call/update`.
pub(crate) async fn update(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallUpdateReq>,
) -> Res<CallUpdateRes> {
    Ok(Json(state.store.call_update(req).await?))
}

/// `POST /calls/delete`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallsDeleteReq>,
) -> Res<CallsDeleteRes> {
    Ok(Json(state.store.calls_delete(req).await?))
}

/// `POST /call/read`.
pub(crate) async fn read(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallReadReq>,
) -> Res<CallReadRes> {
    Ok(Json(state.store.call_read(req).await?))
}

/// `POST /calls/stream_query`: one call per line, each ending in `\n`, no blank lines; no
/// calls, no body. A store failure after the first line cuts the response short (the status
/// is already sent), which the client sees as a broken stream rather than as fewer calls.
pub(crate) async fn stream_query(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallsQueryReq>,
) -> Result<Response, AppError> {
    // Fused: the compression layer may poll again after the end, which a store's stream
    // need not allow.
    let stream = state.store.calls_query(req).await?.fuse();
    let lines = stream.map(|call| {
        let call = call.map_err(|e| {
            tracing::error!(error = %e, "calls/stream_query failed mid-stream");
            e
        })?;
        let mut line = serde_json::to_vec(&call).map_err(|e| weave_store::StoreError::Backend {
            store: "calls/stream_query".into(),
            source: Box::new(e),
        })?;
        line.push(b'\n');
        Ok::<_, weave_store::StoreError>(bytes::Bytes::from(line))
    });
    let mut res = Body::from_stream(lines).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(res)
}

/// `POST /calls/query`: the same as a JSON array (`{"calls": [...]}`).
pub(crate) async fn query(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallsQueryReq>,
) -> Res<CallsQueryRes> {
    let calls = state.store.calls_query_vec(req).await?;
    Ok(Json(CallsQueryRes { calls }))
}

/// `POST /calls/query_stats`.
pub(crate) async fn query_stats(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallsQueryStatsReq>,
) -> Res<CallsQueryStatsRes> {
    let mut res = state.store.calls_query_stats(req).await?;
    res.total_storage_size_bytes.get_or_insert(0);
    Ok(Json(res))
}

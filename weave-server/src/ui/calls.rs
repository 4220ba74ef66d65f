//! Calls as the pages show them, never with their full values: `POST /ext/ui/calls` is one
//! page of the traces table (Weave's filter, `$expr` query and sort, plus a case-insensitive
//! text search over inputs, output, op and display name; the total count; per call its
//! status, latency, tokens and cost where recorded, and one-line previews of inputs and
//! output), and `POST /ext/ui/trace` a trace's calls for its tree (ids, op, times, status,
//! tokens).

use axum::extract::State;
use axum::Json;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weave_store::TraceStore;
use weave_types::query::{Contains, Expr, Query, SortBy};
use weave_types::{CallSchema, CallsFilter, CallsQueryReq, CallsQueryStatsReq};

use super::preview::preview;
use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

/// Largest page.
pub const MAX_LIMIT: u64 = 500;
/// Characters of an input or output preview.
pub const PREVIEW_CHARS: usize = 160;

/// A page of calls to show.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallsPageReq {
    /// `entity/project`.
    pub project_id: String,
    /// Weave's structured filter (op names, trace roots only, ...).
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// Weave's `$expr` query (status, time range, ...).
    #[serde(default)]
    pub query: Option<Query>,
    /// Text searched (ignoring case) in inputs, output, op name and display name.
    #[serde(default)]
    pub search: Option<String>,
    /// Order; default newest first.
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    /// Page size (at most [`MAX_LIMIT`]; default 50).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Calls skipped.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// One row of the traces table.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    /// Call id.
    pub id: String,
    /// Trace id.
    pub trace_id: String,
    /// Parent call id.
    pub parent_id: Option<String>,
    /// Op ref or name, as stored.
    pub op_name: String,
    /// The op's short name.
    pub op: String,
    /// Display name, when set.
    pub display_name: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when finished.
    pub ended_at: Option<String>,
    /// `success`, `error`, `running` or `descendant_error`.
    pub status: &'static str,
    /// Wall time, when finished.
    pub latency_ms: Option<i64>,
    /// `Type: message` of a failed call.
    pub exception: Option<String>,
    /// Total tokens over every model in `summary.usage`, when recorded.
    pub tokens: Option<u64>,
    /// Total cost in `summary.weave.costs`, when recorded.
    pub cost: Option<f64>,
    /// `summary.status_counts` (calls in the trace by status), when recorded.
    pub status_counts: Option<Value>,
    /// One line of the inputs.
    pub inputs: String,
    /// One line of the output (or the error).
    pub output: String,
}

/// A page and the number of matching calls.
#[derive(Debug, Clone, Serialize)]
pub struct CallsPage {
    /// Matching calls in all pages.
    pub total: u64,
    /// This page.
    pub calls: Vec<CallRow>,
}

/// The query with the text search ANDed in.
fn with_search(query: Option<Query>, search: Option<&str>) -> Option<Query> {
    let text = search.map(str::trim).filter(|s| !s.is_empty());
    let Some(text) = text else {
        return query;
    };
    let contains = |field: &str| {
        Expr::Contains(Box::new(Contains {
            input: Expr::field(field),
            substr: Expr::literal(text),
            case_insensitive: true,
        }))
    };
    let search = Expr::Or(vec![
        contains("inputs"),
        contains("output"),
        contains("op_name"),
        contains("display_name"),
    ]);
    Some(Query {
        expr: match query {
            Some(q) => Expr::And(vec![q.expr, search]),
            None => search,
        },
    })
}

/// Total tokens of a `summary.usage` (`{model: {total_tokens | prompt+completion}}`).
pub(crate) fn total_tokens(summary: &serde_json::Map<String, Value>) -> Option<u64> {
    let usage = summary.get("usage")?.as_object()?;
    let mut total = None;
    for u in usage.values() {
        let t = u["total_tokens"].as_u64().or_else(|| {
            let p = u["prompt_tokens"].as_u64().or(u["input_tokens"].as_u64())?;
            let c = u["completion_tokens"]
                .as_u64()
                .or(u["output_tokens"].as_u64())
                .unwrap_or(0);
            Some(p + c)
        });
        if let Some(t) = t {
            *total.get_or_insert(0) += t;
        }
    }
    total
}

/// Total cost of `summary.weave.costs` (`{model: {prompt_tokens_total_cost, ...}}`).
fn total_cost(summary: &serde_json::Map<String, Value>) -> Option<f64> {
    let costs = summary.get("weave")?.get("costs")?.as_object()?;
    let mut total = None;
    for c in costs.values() {
        let p = c["prompt_tokens_total_cost"].as_f64();
        let q = c["completion_tokens_total_cost"].as_f64();
        if p.is_some() || q.is_some() {
            *total.get_or_insert(0.0) += p.unwrap_or(0.0) + q.unwrap_or(0.0);
        }
    }
    total
}

/// `Type: message` of a stored exception (its text when not Weave's JSON).
pub(crate) fn exception_line(c: &CallSchema) -> Option<String> {
    let raw = c.exception.as_deref()?;
    Some(match c.exception_info() {
        Some(e) if e.message.is_empty() => e.kind,
        Some(e) => format!("{}: {}", e.kind, e.message),
        None => raw.chars().take(300).collect(),
    })
}

/// The row of a call.
pub(crate) fn row(c: &CallSchema) -> CallRow {
    let exception = exception_line(c);
    let output = match (&exception, &c.output) {
        (Some(e), _) => e.chars().take(PREVIEW_CHARS).collect(),
        (None, Some(v)) => preview(v, PREVIEW_CHARS),
        (None, None) => String::new(),
    };
    CallRow {
        id: c.id.clone(),
        trace_id: c.trace_id.clone(),
        parent_id: c.parent_id.clone(),
        op_name: c.op_name.clone(),
        op: c.op_display_name().to_string(),
        display_name: c.display_name.clone(),
        started_at: c.started_at.clone(),
        ended_at: c.ended_at.clone(),
        status: c.status().as_str(),
        latency_ms: c.latency_ms(),
        exception,
        tokens: total_tokens(&c.summary),
        cost: total_cost(&c.summary),
        status_counts: c.summary.get("status_counts").cloned(),
        inputs: preview(&Value::Object(c.inputs.clone()), PREVIEW_CHARS),
        output,
    }
}

/// The page for `req`.
pub(crate) async fn page(store: &dyn TraceStore, req: CallsPageReq) -> Result<CallsPage, AppError> {
    let limit = req.limit.unwrap_or(50).min(MAX_LIMIT);
    let query = with_search(req.query, req.search.as_deref());
    let total = store
        .calls_query_stats(CallsQueryStatsReq {
            project_id: req.project_id.clone(),
            filter: req.filter.clone(),
            query: query.clone(),
            ..Default::default()
        })
        .await?
        .count;
    let sort_by = req
        .sort_by
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec![SortBy::desc("started_at")]);
    let mut stream = store
        .calls_query(CallsQueryReq {
            project_id: req.project_id,
            filter: req.filter,
            query,
            sort_by: Some(sort_by),
            limit: Some(limit),
            offset: req.offset,
            ..Default::default()
        })
        .await?;
    let mut calls = Vec::new();
    while let Some(c) = stream.next().await {
        calls.push(row(&c?));
    }
    Ok(CallsPage { total, calls })
}

/// `POST /ext/ui/calls`.
pub(crate) async fn calls_page(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallsPageReq>,
) -> Result<Json<CallsPage>, AppError> {
    Ok(Json(page(state.store.as_ref(), req).await?))
}

/// The calls of one trace, for its tree.
#[derive(Debug, Clone, Deserialize)]
pub struct TraceReq {
    /// `entity/project`.
    pub project_id: String,
    /// The trace.
    pub trace_id: String,
}

/// One node of a trace's tree: what the tree shows, nothing more (the selected call's values
/// are read with `/call/read`).
#[derive(Debug, Clone, Serialize)]
pub struct TreeCall {
    /// Call id.
    pub id: String,
    /// Parent call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The op's short name.
    pub op: String,
    /// Display name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// `success`, `error`, `running` or `descendant_error`.
    pub status: &'static str,
    /// Total tokens, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

/// Most calls of one trace sent to the tree (a bigger trace shows its first ones, and says so).
pub const MAX_TRACE_CALLS: usize = 200_000;

/// A trace's calls in start order.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRes {
    /// The calls (at most [`MAX_TRACE_CALLS`]).
    pub calls: Vec<TreeCall>,
    /// Whether the trace has more calls than were sent.
    pub truncated: bool,
}

/// The tree of `req`'s trace (summaries only: no inputs or outputs are read).
pub(crate) async fn trace_tree(
    store: &dyn TraceStore,
    req: TraceReq,
) -> Result<TraceRes, AppError> {
    let mut stream = store
        .calls_query(CallsQueryReq {
            project_id: req.project_id,
            filter: Some(CallsFilter {
                trace_ids: Some(vec![req.trace_id]),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy::asc("started_at")]),
            columns: Some(vec!["summary".into()]),
            ..Default::default()
        })
        .await?;
    let mut calls = Vec::new();
    let mut truncated = false;
    while let Some(c) = stream.next().await {
        let c = c?;
        if calls.len() == MAX_TRACE_CALLS {
            truncated = true;
            break;
        }
        calls.push(TreeCall {
            op: c.op_display_name().to_string(),
            status: c.status().as_str(),
            tokens: total_tokens(&c.summary),
            id: c.id,
            parent_id: c.parent_id,
            display_name: c.display_name,
            started_at: c.started_at,
            ended_at: c.ended_at,
        });
    }
    Ok(TraceRes { calls, truncated })
}

/// `POST /ext/ui/trace`.
pub(crate) async fn trace(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TraceReq>,
) -> Result<Json<TraceRes>, AppError> {
    Ok(Json(trace_tree(state.store.as_ref(), req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weave_types::{CallsCompleteReq, CompleteCallSchemaForInsert};

    fn call(id: &str, minute: u32, inputs: Value, output: Value) -> CompleteCallSchemaForInsert {
        CompleteCallSchemaForInsert {
            project_id: "e/p".into(),
            id: id.into(),
            trace_id: format!("t-{id}"),
            op_name: "weave:///e/p/op/predict:abc".into(),
            started_at: format!("2026-01-01T00:{minute:02}:00.000000Z"),
            ended_at: format!("2026-01-01T00:{minute:02}:01.500000Z"),
            inputs: inputs.as_object().cloned().unwrap_or_default(),
            output,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pages_newest_first_with_previews_search_and_totals() {
        let t = crate::testing::fresh_store();
        let mut failed = call("c3", 3, json!({"q": "three"}), Value::Null);
        failed.exception = Some(
            json!({"type": "ValueError", "message": "bad <b>input</b>", "traceback": ""})
                .to_string(),
        );
        let mut with_usage = call("c2", 2, json!({"q": "two"}), json!("Two!"));
        with_usage.summary = json!({"usage": {"m": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, "n": {"prompt_tokens": 1, "completion_tokens": 1}}})
            .as_object()
            .cloned()
            .unwrap()
            .into();
        let huge = "z".repeat(1 << 20);
        t.store
            .calls_complete(CallsCompleteReq {
                batch: vec![
                    call(
                        "c1",
                        1,
                        json!({"q": "one", "blob": huge}),
                        json!({"answer": 1}),
                    ),
                    with_usage,
                    failed,
                ],
            })
            .await
            .unwrap();
        let p = page(
            t.store.as_ref(),
            CallsPageReq {
                project_id: "e/p".into(),
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(p.total, 3);
        let ids: Vec<&str> = p.calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c3", "c2"]);
        assert_eq!(p.calls[0].status, "error");
        assert_eq!(p.calls[0].output, "ValueError: bad <b>input</b>");
        assert_eq!(p.calls[1].tokens, Some(17));
        assert_eq!(p.calls[1].latency_ms, Some(1500));
        assert_eq!(p.calls[1].op, "predict");
        assert_eq!(p.calls[1].output, "\"Two!\"");

        let p = page(
            t.store.as_ref(),
            CallsPageReq {
                project_id: "e/p".into(),
                offset: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(p.calls.len(), 1);
        let c1 = &p.calls[0];
        assert!(
            c1.inputs.chars().count() <= PREVIEW_CHARS + 1,
            "{}",
            c1.inputs
        );
        // (Key order depends on serde_json's `preserve_order` in the build.)
        assert!(c1.inputs.contains("q: \"one\""), "{}", c1.inputs);
        assert!(c1.inputs.contains("blob: \"zzz"), "{}", c1.inputs);
        assert!(
            c1.inputs.contains("z…\""),
            "the long string is cut: {}",
            c1.inputs
        );
        assert_eq!(c1.output, "answer: 1");

        let search = |s: &str| CallsPageReq {
            project_id: "e/p".into(),
            search: Some(s.into()),
            ..Default::default()
        };
        let p = page(t.store.as_ref(), search("TWO")).await.unwrap();
        assert_eq!(
            (p.total, p.calls[0].id.as_str()),
            (1, "c2"),
            "in inputs and output"
        );
        let p = page(t.store.as_ref(), search("answer")).await.unwrap();
        assert_eq!(p.calls.iter().map(|c| &c.id).collect::<Vec<_>>(), ["c1"]);
        let p = page(t.store.as_ref(), search("nothing like it"))
            .await
            .unwrap();
        assert_eq!((p.total, p.calls.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_trace_tree_has_what_the_tree_shows_and_no_values() {
        let t = crate::testing::fresh_store();
        let mut root = call("r", 1, json!({"big": "x".repeat(10_000)}), json!("out"));
        root.trace_id = "t".into();
        let mut child = call("k", 2, json!({}), Value::Null);
        child.trace_id = "t".into();
        child.parent_id = Some("r".into());
        child.display_name = Some("named".into());
        child.summary = json!({"usage": {"m": {"total_tokens": 7}}})
            .as_object()
            .cloned()
            .unwrap()
            .into();
        child.exception = Some("{}".into());
        let other = call("o", 3, json!({}), Value::Null);
        t.store
            .calls_complete(CallsCompleteReq {
                batch: vec![child, root, other],
            })
            .await
            .unwrap();
        let res = trace_tree(
            t.store.as_ref(),
            TraceReq {
                project_id: "e/p".into(),
                trace_id: "t".into(),
            },
        )
        .await
        .unwrap();
        let v = serde_json::to_value(&res).unwrap();
        assert_eq!(
            v,
            json!({"calls": [
                {"id": "r", "op": "predict", "started_at": "2026-01-01T00:01:00.000000Z",
                 "ended_at": "2026-01-01T00:01:01.500000Z", "status": "success"},
                {"id": "k", "parent_id": "r", "op": "predict", "display_name": "named",
                 "started_at": "2026-01-01T00:02:00.000000Z",
                 "ended_at": "2026-01-01T00:02:01.500000Z", "status": "error", "tokens": 7}
            ], "truncated": false})
        );
    }
}

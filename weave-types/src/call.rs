//! Calls on the wire (spec §5, §8): what clients send (starts, ends, complete calls, updates,
//! deletes) and what servers answer (`CallSchema`, queries and their statistics).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::query::{Query, SortBy};
use crate::serde_util::null_as_default;

/// A JSON object.
pub type JsonMap = Map<String, Value>;

/// A JSON object that is cheap to clone: clones share the map until one is changed. Used
/// for what a client sends with many calls alike (the attributes, the summary of a call
/// without children), so that neither the client nor a store builds or serialises it once
/// per call. Reads like a [`JsonMap`] (it derefs to one); serialises as the object itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonObject(std::sync::Arc<JsonMap>);

impl JsonObject {
    /// Whether two values share their map (so they are equal without comparing).
    pub fn same(&self, other: &JsonObject) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// The map (copied only if it is shared).
    pub fn into_map(self) -> JsonMap {
        std::sync::Arc::unwrap_or_clone(self.0)
    }
}

impl From<JsonMap> for JsonObject {
    fn from(m: JsonMap) -> Self {
        JsonObject(std::sync::Arc::new(m))
    }
}

impl std::ops::Deref for JsonObject {
    type Target = JsonMap;
    fn deref(&self) -> &JsonMap {
        &self.0
    }
}

impl std::ops::DerefMut for JsonObject {
    fn deref_mut(&mut self) -> &mut JsonMap {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

/// A call's start (`StartedCallSchemaForInsert`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartedCallSchemaForInsert {
    /// `entity/project`.
    pub project_id: String,
    /// Call id (UUIDv7); the server makes one when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Op ref (`weave:///e/p/op/name:digest`) or a plain name.
    pub op_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Trace id; the server makes one when absent.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Parent call id; `None` for a trace root.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Thread id.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Turn id.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// Attributes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: JsonObject,
    /// Inputs by argument name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub inputs: JsonMap,
    /// OpenTelemetry span, when the call came from one.
    #[serde(default)]
    pub otel_dump: Option<Value>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// W&B run.
    #[serde(default)]
    pub wb_run_id: Option<String>,
    /// W&B run step.
    #[serde(default)]
    pub wb_run_step: Option<i64>,
}

/// A call's end (`EndedCallSchemaForInsert`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndedCallSchemaForInsert {
    /// `entity/project`.
    pub project_id: String,
    /// Call id.
    pub id: String,
    /// RFC 3339.
    pub ended_at: String,
    /// JSON string `{"type", "message", "traceback"}` when the call failed.
    #[serde(default)]
    pub exception: Option<String>,
    /// Output (`null` when the call failed).
    #[serde(default)]
    pub output: Value,
    /// Client-side summary: `status_counts`, `usage`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub summary: JsonObject,
    /// W&B run step at the end.
    #[serde(default)]
    pub wb_run_step_end: Option<i64>,
    /// Sent by clients from 0.54 on; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Sent by clients from 0.54 on; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Sent by clients from 0.54 on for evaluation calls; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_eval: Option<bool>,
}

/// A finished call, start and end in one record (an item of `calls/complete`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompleteCallSchemaForInsert {
    /// `entity/project`.
    pub project_id: String,
    /// Call id.
    pub id: String,
    /// Trace id.
    pub trace_id: String,
    /// Op ref or a plain name.
    pub op_name: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Parent call id.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Thread id.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Turn id.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// Attributes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: JsonObject,
    /// Inputs.
    #[serde(default, deserialize_with = "null_as_default")]
    pub inputs: JsonMap,
    /// Output.
    #[serde(default)]
    pub output: Value,
    /// Client-side summary.
    #[serde(default, deserialize_with = "null_as_default")]
    pub summary: JsonObject,
    /// JSON string exception.
    #[serde(default)]
    pub exception: Option<String>,
    /// OpenTelemetry span.
    #[serde(default)]
    pub otel_dump: Option<Value>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// W&B run.
    #[serde(default)]
    pub wb_run_id: Option<String>,
    /// W&B run step.
    #[serde(default)]
    pub wb_run_step: Option<i64>,
    /// W&B run step at the end.
    #[serde(default)]
    pub wb_run_step_end: Option<i64>,
}

impl CompleteCallSchemaForInsert {
    /// Splits into a start and an end.
    pub fn split(self) -> (StartedCallSchemaForInsert, EndedCallSchemaForInsert) {
        let end = EndedCallSchemaForInsert {
            project_id: self.project_id.clone(),
            id: self.id.clone(),
            ended_at: self.ended_at,
            exception: self.exception,
            output: self.output,
            summary: self.summary,
            wb_run_step_end: self.wb_run_step_end,
            trace_id: Some(self.trace_id.clone()),
            started_at: Some(self.started_at.clone()),
            is_eval: None,
        };
        let start = StartedCallSchemaForInsert {
            project_id: self.project_id,
            id: Some(self.id),
            op_name: self.op_name,
            display_name: self.display_name,
            trace_id: Some(self.trace_id),
            parent_id: self.parent_id,
            thread_id: self.thread_id,
            turn_id: self.turn_id,
            started_at: self.started_at,
            attributes: self.attributes,
            inputs: self.inputs,
            otel_dump: self.otel_dump,
            wb_user_id: self.wb_user_id,
            wb_run_id: self.wb_run_id,
            wb_run_step: self.wb_run_step,
        };
        (start, end)
    }
}

/// `POST /call/start` and `/v2/{e}/{p}/call/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStartReq {
    /// The start.
    pub start: StartedCallSchemaForInsert,
}

/// Answer to [`CallStartReq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStartRes {
    /// Call id.
    pub id: String,
    /// Trace id.
    pub trace_id: String,
}

/// `POST /call/end` and `/v2/{e}/{p}/call/end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEndReq {
    /// The end.
    pub end: EndedCallSchemaForInsert,
}

/// Answer to [`CallEndReq`] (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEndRes {}

/// `POST /v2/{e}/{p}/calls/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallsCompleteReq {
    /// Finished calls, in any order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub batch: Vec<CompleteCallSchemaForInsert>,
}

/// Answer to [`CallsCompleteReq`] (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsCompleteRes {}

/// `POST /call/update`: renames a call. `attributes` is an extension (Python never sends
/// it): a JSON object merged into the call's attributes (RFC 7396 merge patch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallUpdateReq {
    /// `entity/project`.
    pub project_id: String,
    /// The call.
    pub call_id: String,
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// Extension: attributes to merge into the call's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<JsonMap>,
}

/// Answer to [`CallUpdateReq`] (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallUpdateRes {}

/// `POST /calls/delete`: marks calls and their descendants deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsDeleteReq {
    /// `entity/project`.
    pub project_id: String,
    /// The calls.
    #[serde(default, deserialize_with = "null_as_default")]
    pub call_ids: Vec<String>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

/// Answer to [`CallsDeleteReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsDeleteRes {
    /// Calls marked deleted (descendants included).
    pub num_deleted: u64,
}

/// `POST /call/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReadReq {
    /// `entity/project`.
    pub project_id: String,
    /// Call id.
    pub id: String,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_costs: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_storage_size: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_total_storage_size: bool,
}

/// Answer to [`CallReadReq`]: `call` is `null` when there is no such call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReadRes {
    /// The call.
    pub call: Option<CallSchema>,
}

/// Which calls a query selects; keys are ANDed, list entries ORed. `None` means no
/// constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsFilter {
    /// Op refs; a ref ending in `:*` matches every version of that op.
    #[serde(default)]
    pub op_names: Option<Vec<String>>,
    /// Calls whose inputs hold one of these refs.
    #[serde(default)]
    pub input_refs: Option<Vec<String>>,
    /// Calls whose output holds one of these refs.
    #[serde(default)]
    pub output_refs: Option<Vec<String>>,
    /// Children of these calls.
    #[serde(default)]
    pub parent_ids: Option<Vec<String>>,
    /// Calls of these traces.
    #[serde(default)]
    pub trace_ids: Option<Vec<String>>,
    /// These calls.
    #[serde(default)]
    pub call_ids: Option<Vec<String>>,
    /// Calls of these threads.
    #[serde(default)]
    pub thread_ids: Option<Vec<String>>,
    /// Calls of these turns.
    #[serde(default)]
    pub turn_ids: Option<Vec<String>>,
    /// Only trace roots (no parent).
    #[serde(default)]
    pub trace_roots_only: Option<bool>,
    /// Calls of these users.
    #[serde(default)]
    pub wb_user_ids: Option<Vec<String>>,
    /// Calls of these W&B runs.
    #[serde(default)]
    pub wb_run_ids: Option<Vec<String>>,
}

/// `POST /calls/stream_query` (and `/calls/query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallsQueryReq {
    /// `entity/project`.
    pub project_id: String,
    /// Structured filter.
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Order; `None`: `started_at` then `id`, ascending; `[]`: unordered. An `id`
    /// tie-breaker is always added (in the direction of the last key).
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    /// `$expr` query, ANDed with the filter.
    #[serde(default)]
    pub query: Option<Query>,
    /// Accepted, not implemented (no costs are kept).
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_costs: bool,
    /// Adds `summary.weave.feedback`: the feedback on each call.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_feedback: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_storage_size: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_total_storage_size: bool,
    /// Projection: of the JSON columns (`inputs`, `output`, `attributes`, `summary`) only
    /// these are read; the others come back empty. `None`: all.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Accepted, not implemented.
    #[serde(default)]
    pub expand_columns: Option<Vec<String>>,
    /// Accepted, not implemented.
    #[serde(default)]
    pub return_expanded_column_values: Option<bool>,
    /// Accepted; a store without duplicate physical rows has nothing to collapse.
    #[serde(default)]
    pub latest_only: Option<bool>,
}

/// Answer of the non-streaming `calls/query`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallsQueryRes {
    /// The calls.
    pub calls: Vec<CallSchema>,
}

/// `POST /calls/query_stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallsQueryStatsReq {
    /// `entity/project`.
    pub project_id: String,
    /// Structured filter.
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// `$expr` query.
    #[serde(default)]
    pub query: Option<Query>,
    /// Count at most this many.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_total_storage_size: bool,
    /// Accepted, not implemented.
    #[serde(default)]
    pub expand_columns: Option<Vec<String>>,
}

/// Answer to [`CallsQueryStatsReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsQueryStatsRes {
    /// Matching calls.
    pub count: u64,
    /// Always 0 here.
    #[serde(default)]
    pub total_storage_size_bytes: Option<i64>,
}

/// A stored call as servers return it (one line of `calls/stream_query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallSchema {
    /// Call id.
    pub id: String,
    /// `entity/project`.
    pub project_id: String,
    /// Op ref or plain name.
    pub op_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Trace id.
    pub trace_id: String,
    /// Parent call id.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Thread id.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Turn id.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// Attributes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: JsonMap,
    /// Inputs.
    #[serde(default, deserialize_with = "null_as_default")]
    pub inputs: JsonMap,
    /// RFC 3339; `None` while running (or if the program died).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// JSON string exception.
    #[serde(default)]
    pub exception: Option<String>,
    /// Output.
    #[serde(default)]
    pub output: Option<Value>,
    /// Stored summary plus `weave` (status, latency, name), derived when read.
    #[serde(default, deserialize_with = "null_as_default")]
    pub summary: JsonMap,
    /// User.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// W&B run.
    #[serde(default)]
    pub wb_run_id: Option<String>,
    /// W&B run step.
    #[serde(default)]
    pub wb_run_step: Option<i64>,
    /// W&B run step at the end.
    #[serde(default)]
    pub wb_run_step_end: Option<i64>,
    /// When it was deleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// When it expires.
    #[serde(default)]
    pub expire_at: Option<String>,
}

impl CallSchema {
    /// The op's name: `name` of `weave:///e/p/op/name:digest`, else `op_name` itself.
    pub fn op_display_name(&self) -> &str {
        crate::refs::op_display_name(&self.op_name)
    }

    /// The digest part of the op ref (empty when `op_name` is not a ref).
    pub fn op_digest(&self) -> &str {
        if !self.op_name.starts_with(crate::refs::REF_SCHEME) {
            return "";
        }
        self.op_name.rsplit(':').next().unwrap_or("")
    }

    /// Status, from the fields (as [`summary.weave.status`](crate::summary) is derived):
    /// `interrupted` rather than `running` when the writing process is known to be gone.
    pub fn status(&self) -> crate::summary::CallStatus {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        crate::summary::call_status_now(self, now)
    }

    /// Wall time in milliseconds, when finished.
    pub fn latency_ms(&self) -> Option<i64> {
        crate::summary::latency_ms(&self.started_at, self.ended_at.as_deref())
    }

    /// The exception parsed, when it is Weave's `{"type", "message", "traceback"}` JSON.
    pub fn exception_info(&self) -> Option<ExceptionInfo> {
        serde_json::from_str(self.exception.as_deref()?).ok()
    }
}

/// A call's exception as stored: `{"type", "message", "traceback"}`. Python clients send the
/// traceback as a list of frames, Rust ones as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    /// Error type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Traceback: text, or a list of frames.
    #[serde(default)]
    pub traceback: Value,
}

impl ExceptionInfo {
    /// The traceback as lines of text.
    pub fn traceback_lines(&self) -> Vec<String> {
        match &self.traceback {
            Value::String(s) => s.lines().map(str::to_string).collect(),
            Value::Array(frames) => frames
                .iter()
                .map(|f| match f {
                    Value::Object(m) => format!(
                        "{}:{} in {}{}",
                        m.get("filename").and_then(Value::as_str).unwrap_or("?"),
                        m.get("line_number")
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        m.get("function_name")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                        m.get("text")
                            .and_then(Value::as_str)
                            .map(|t| format!(": {}", t.trim()))
                            .unwrap_or_default()
                    ),
                    other => other.to_string(),
                })
                .collect(),
            Value::Null => Vec::new(),
            other => vec![other.to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_tolerate_nulls_and_unknown_fields() {
        let q: CallsQueryReq = serde_json::from_value(json!({
            "project_id": "e/p", "columns": null, "expand_columns": null,
            "filter": {"op_names": null, "trace_roots_only": true, "brand_new": 1},
            "include_costs": null, "include_feedback": false, "latest_only": false,
            "limit": 1000, "offset": 0, "query": null, "sort_by": null, "future_field": [1]
        }))
        .unwrap();
        assert_eq!(q.filter.unwrap().trace_roots_only, Some(true));
        assert!(!q.include_costs);
        let end: CallEndReq = serde_json::from_value(json!({"end": {
            "project_id": "e/p", "id": "c", "ended_at": "2026-11-29T14:20:17.694500Z",
            "summary": null, "output": null, "is_eval": true, "trace_id": "t"
        }}))
        .unwrap();
        assert!(end.end.summary.is_empty());
        assert_eq!(end.end.is_eval, Some(true));
    }

    #[test]
    fn complete_splits_into_start_and_end() {
        let c = CompleteCallSchemaForInsert {
            project_id: "e/p".into(),
            id: "c".into(),
            trace_id: "t".into(),
            op_name: "f".into(),
            started_at: "s".into(),
            ended_at: "x".into(),
            output: json!(3),
            ..Default::default()
        };
        let (s, e) = c.split();
        assert_eq!(
            (s.id.as_deref(), s.trace_id.as_deref()),
            (Some("c"), Some("t"))
        );
        assert_eq!((e.id.as_str(), &e.output), ("c", &json!(3)));
    }

    #[test]
    fn exception_tracebacks_of_both_clients() {
        let rust = ExceptionInfo {
            kind: "panic".into(),
            message: "boom".into(),
            traceback: json!("panicked at a.rs:1:2\n"),
        };
        assert_eq!(rust.traceback_lines(), vec!["panicked at a.rs:1:2"]);
        let py: ExceptionInfo = serde_json::from_value(json!({"type": "ValueError", "message": "m",
            "traceback": [{"filename": "x.py", "line_number": 3, "function_name": "f", "text": " raise X "}]}))
        .unwrap();
        assert_eq!(py.traceback_lines(), vec!["x.py:3 in f: raise X"]);
    }
}

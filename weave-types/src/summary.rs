//! `summary.weave`, which servers derive when a call is read (spec §8.2): one function that
//! every backend uses, so that status, latency and name mean the same everywhere.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{CallSchema, JsonMap};

/// Status of a call, as Weave shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Finished without error, and so did every descendant.
    Success,
    /// Finished with an error.
    Error,
    /// Not finished.
    Running,
    /// Finished without error, but a descendant failed.
    DescendantError,
}

impl CallStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Success => "success",
            CallStatus::Error => "error",
            CallStatus::Running => "running",
            CallStatus::DescendantError => "descendant_error",
        }
    }
}

/// `error` if there is an exception; else `running` without an end; else
/// `descendant_error` if `summary.status_counts.error > 0`; else `success`.
pub fn call_status(
    exception: Option<&str>,
    ended_at: Option<&str>,
    summary: &JsonMap,
) -> CallStatus {
    if exception.is_some() {
        CallStatus::Error
    } else if ended_at.is_none() {
        CallStatus::Running
    } else if summary
        .get("status_counts")
        .and_then(|c| c.get("error"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        > 0
    {
        CallStatus::DescendantError
    } else {
        CallStatus::Success
    }
}

/// Whole milliseconds from start to end, when both parse.
pub fn latency_ms(started_at: &str, ended_at: Option<&str>) -> Option<i64> {
    let start = crate::time::parse_micros(started_at).ok()?;
    let end = crate::time::parse_micros(ended_at?).ok()?;
    Some((end - start).div_euclid(1000))
}

/// The `summary.weave` object of a call: `status`, then `display_name` when the call has
/// one or else `trace_name` (the op's name), then `latency_ms` when it ended.
pub fn summary_weave(call: &CallSchema) -> JsonMap {
    let mut w = JsonMap::new();
    w.insert("status".into(), Value::from(call.status().as_str()));
    match &call.display_name {
        Some(d) => w.insert("display_name".into(), Value::from(d.clone())),
        None => w.insert("trace_name".into(), Value::from(call.op_display_name())),
    };
    if let Some(ms) = call.latency_ms() {
        w.insert("latency_ms".into(), Value::from(ms));
    }
    w
}

/// Sets `summary.weave` (replacing whatever a client put there).
pub fn add_summary_weave(call: &mut CallSchema) {
    let w = summary_weave(call);
    call.summary.insert("weave".into(), Value::Object(w));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(exception: Option<&str>, ended: Option<&str>, summary: Value) -> CallSchema {
        CallSchema {
            id: "c".into(),
            project_id: "e/p".into(),
            op_name: "weave:///myent/myproj/op/outer_compute:0YAj".into(),
            trace_id: "t".into(),
            started_at: "2026-11-29T14:20:07.585080Z".into(),
            ended_at: ended.map(str::to_string),
            exception: exception.map(str::to_string),
            summary: summary.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn derives_like_the_recorded_server() {
        // session.jsonl seq 38: status success, trace_name, latency 5 ms.
        let mut c = call(
            None,
            Some("2026-11-29T14:20:07.590244Z"),
            json!({"status_counts": {"success": 3, "error": 0}}),
        );
        add_summary_weave(&mut c);
        assert_eq!(
            Value::Object(c.summary.clone()),
            json!({"status_counts": {"success": 3, "error": 0},
                   "weave": {"status": "success", "trace_name": "outer_compute", "latency_ms": 5}})
        );
        c.display_name = Some("renamed outer call".into());
        add_summary_weave(&mut c);
        assert_eq!(
            c.summary["weave"],
            json!({"status": "success", "display_name": "renamed outer call", "latency_ms": 5})
        );
    }

    #[test]
    fn statuses() {
        let end = Some("2026-11-29T14:20:07.590244Z");
        assert_eq!(call(Some("{}"), end, json!({})).status(), CallStatus::Error);
        assert_eq!(call(None, None, json!({})).status(), CallStatus::Running);
        assert_eq!(
            call(None, end, json!({"status_counts": {"error": 2}})).status(),
            CallStatus::DescendantError
        );
        assert_eq!(call(None, end, json!({})).status(), CallStatus::Success);
        let running = call(None, None, json!({}));
        assert_eq!(summary_weave(&running).get("latency_ms"), None);
    }
}

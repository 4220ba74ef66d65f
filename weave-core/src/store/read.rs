//! The read API: calls, traces and objects, as the tests, the CLI and evaluations see them.

use rusqlite::{params_from_iter, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Store;
use crate::error::Error;

/// A stored call, in W&B Weave's call schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// UUIDv7.
    pub id: String,
    /// `entity/project`.
    pub project_id: String,
    /// The op ref: `weave:///entity/project/op/name:digest`.
    pub op_name: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// Id of the trace (the root call's id).
    pub trace_id: String,
    /// Parent call id; `None` for a root.
    pub parent_id: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; `None` while running (or if the program died).
    pub ended_at: Option<String>,
    /// Inputs by argument name.
    pub inputs: Value,
    /// Output (`null` for errors).
    pub output: Option<Value>,
    /// JSON string `{"type","message","traceback"}` when the call failed.
    pub exception: Option<String>,
    /// Attributes (`weave: {source, client_version, os_name, ...}`).
    pub attributes: Value,
    /// Summary: `status_counts`, `usage`, and on read `weave: {status, latency_ms}`.
    pub summary: Value,
}

/// Status of a call, as Weave shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl CallRecord {
    /// Short op name: `name` of `weave:///e/p/op/name:digest`.
    pub fn op_short_name(&self) -> &str {
        let tail = self.op_name.rsplit("/op/").next().unwrap_or(&self.op_name);
        tail.split(':').next().unwrap_or(tail)
    }

    /// Digest part of the op ref.
    pub fn op_digest(&self) -> &str {
        self.op_name.rsplit(':').next().unwrap_or("")
    }

    /// Status from `ended_at`, `exception` and the rolled-up error count.
    pub fn status(&self) -> CallStatus {
        if self.exception.is_some() {
            CallStatus::Error
        } else if self.ended_at.is_none() {
            CallStatus::Running
        } else if self.summary["status_counts"]["error"].as_u64().unwrap_or(0) > 0 {
            CallStatus::DescendantError
        } else {
            CallStatus::Success
        }
    }

    /// Wall time in milliseconds, when finished.
    pub fn latency_ms(&self) -> Option<i64> {
        let start = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let end = chrono::DateTime::parse_from_rfc3339(self.ended_at.as_deref()?).ok()?;
        Some((end - start).num_milliseconds())
    }

    /// The exception parsed: `(type, message, traceback)`.
    pub fn exception_parts(&self) -> Option<crate::capture::Exception> {
        serde_json::from_str(self.exception.as_deref()?).ok()
    }
}

/// Which calls to list. Empty means all, newest first.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only calls of this project (`entity/project`).
    pub project_id: Option<String>,
    /// Short op name (`predict`, `Model.predict`) or full op ref.
    pub op_name: Option<String>,
    /// Only calls of this trace.
    pub trace_id: Option<String>,
    /// Only children of this call.
    pub parent_id: Option<String>,
    /// Only root calls.
    pub roots_only: bool,
    /// Only calls that raised.
    pub errors_only: bool,
    /// Only calls started at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// One version of a stored object (op, model, dataset, evaluation...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// `entity/project`.
    pub project_id: String,
    /// Object name.
    pub object_id: String,
    /// Version digest.
    pub digest: String,
    /// `op` or `object`.
    pub kind: String,
    /// `Op`, `Model`, `Dataset`, `Evaluation`, ...
    pub base_object_class: Option<String>,
    /// The stored value.
    pub val: Value,
    /// 0-based version number per name.
    pub version_index: i64,
    /// Whether this is the latest version.
    pub is_latest: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl ObjectVersion {
    /// `weave:///entity/project/op|object/name:digest`.
    pub fn uri(&self) -> String {
        let kind = if self.kind == "op" { "op" } else { "object" };
        format!(
            "weave:///{}/{}/{}:{}",
            self.project_id, kind, self.object_id, self.digest
        )
    }
}

const CALL_COLS: &str = "id, project_id, op_name, display_name, trace_id, parent_id, started_at, \
                         ended_at, inputs, output, exception, attributes, summary";

fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
}

fn call_from_row(row: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let mut c = CallRecord {
        id: row.get(0)?,
        project_id: row.get(1)?,
        op_name: row.get(2)?,
        display_name: row.get(3)?,
        trace_id: row.get(4)?,
        parent_id: row.get(5)?,
        started_at: row.get(6)?,
        ended_at: row.get(7)?,
        inputs: json_col(row, 8)?.unwrap_or(Value::Null),
        output: json_col(row, 9)?,
        exception: row.get(10)?,
        attributes: json_col(row, 11)?.unwrap_or(Value::Null),
        summary: json_col(row, 12)?.unwrap_or_else(|| json!({})),
    };
    let status = c.status().as_str();
    let latency = c.latency_ms();
    if !c.summary.is_object() {
        c.summary = json!({});
    }
    c.summary["weave"] = json!({"status": status, "latency_ms": latency});
    Ok(c)
}

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectVersion> {
    Ok(ObjectVersion {
        project_id: row.get(0)?,
        object_id: row.get(1)?,
        digest: row.get(2)?,
        kind: row.get(3)?,
        base_object_class: row.get(4)?,
        val: json_col(row, 5)?.unwrap_or(Value::Null),
        version_index: row.get(6)?,
        is_latest: row.get::<_, i64>(7)? != 0,
        created_at: row.get(8)?,
    })
}

const OBJ_COLS: &str = "project_id, object_id, digest, kind, base_object_class, val, \
                        version_index, is_latest, created_at";

impl Store {
    /// One call by exact id.
    pub fn call(&self, id: &str) -> Result<Option<CallRecord>, Error> {
        self.conn
            .prepare_cached(&format!("SELECT {CALL_COLS} FROM calls WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id], call_from_row).optional())
            .map_err(|e| self.err(e))
    }

    /// Calls whose id starts with `prefix` (at most `limit`), using the primary-key index.
    pub fn calls_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<CallRecord>, Error> {
        let prefix = prefix.to_ascii_lowercase();
        let upper = format!("{prefix}\u{7f}");
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CALL_COLS} FROM calls WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                rusqlite::params![prefix, upper, limit as i64],
                call_from_row,
            )
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Calls matching `filter`.
    pub fn calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, Error> {
        let mut sql = format!("SELECT {CALL_COLS} FROM calls WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(op) = &filter.op_name {
            if op.starts_with("weave:///") {
                args.push(op.clone());
                sql.push_str(&format!(" AND op_name = ?{}", args.len()));
            } else {
                // `_` and `%` in the name are literal, not LIKE wildcards.
                let escaped = op
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                args.push(format!("%/op/{escaped}:%"));
                sql.push_str(&format!(" AND op_name LIKE ?{} ESCAPE '\\'", args.len()));
            }
        }
        if let Some(p) = &filter.project_id {
            args.push(p.clone());
            sql.push_str(&format!(" AND project_id = ?{}", args.len()));
        }
        if let Some(t) = &filter.trace_id {
            args.push(t.clone());
            sql.push_str(&format!(" AND trace_id = ?{}", args.len()));
        }
        if let Some(p) = &filter.parent_id {
            args.push(p.clone());
            sql.push_str(&format!(" AND parent_id = ?{}", args.len()));
        }
        if filter.roots_only {
            sql.push_str(" AND parent_id IS NULL");
        }
        if filter.errors_only {
            sql.push_str(" AND exception IS NOT NULL");
        }
        if let Some(s) = &filter.since {
            args.push(s.clone());
            sql.push_str(&format!(" AND started_at >= ?{}", args.len()));
        }
        sql.push_str(if filter.oldest_first {
            " ORDER BY started_at ASC, id ASC"
        } else {
            " ORDER BY started_at DESC, id DESC"
        });
        if let Some(l) = filter.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params_from_iter(args.iter()), call_from_row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// All calls of a trace, oldest first.
    pub fn trace(&self, trace_id: &str) -> Result<Vec<CallRecord>, Error> {
        self.calls(&CallFilter {
            trace_id: Some(trace_id.to_string()),
            oldest_first: true,
            ..Default::default()
        })
    }

    /// Direct children of a call, oldest first.
    pub fn children(&self, call_id: &str) -> Result<Vec<CallRecord>, Error> {
        self.calls(&CallFilter {
            parent_id: Some(call_id.to_string()),
            oldest_first: true,
            ..Default::default()
        })
    }

    /// Latest version of every object of every project, optionally only of one base class
    /// (`Model`, `Dataset`, `Evaluation`, `Op`).
    pub fn objects(&self, base_object_class: Option<&str>) -> Result<Vec<ObjectVersion>, Error> {
        self.objects_in(None, base_object_class)
    }

    /// Latest version of every object of `project` (`entity/project`; `None`: every
    /// project), optionally only of one base class.
    pub fn objects_in(
        &self,
        project: Option<&str>,
        base_object_class: Option<&str>,
    ) -> Result<Vec<ObjectVersion>, Error> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {OBJ_COLS} FROM objects WHERE is_latest = 1 \
                 AND (?1 IS NULL OR base_object_class = ?1) \
                 AND (?2 IS NULL OR project_id = ?2) ORDER BY object_id, project_id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([base_object_class, project], object_from_row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every version of the named object in every project, oldest first (by project).
    pub fn object_versions(&self, name: &str) -> Result<Vec<ObjectVersion>, Error> {
        self.object_versions_in(None, name)
    }

    /// Every version of the named object in `project` (`None`: every project), oldest
    /// first (by project).
    pub fn object_versions_in(
        &self,
        project: Option<&str>,
        name: &str,
    ) -> Result<Vec<ObjectVersion>, Error> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {OBJ_COLS} FROM objects WHERE object_id = ?1 \
                 AND (?2 IS NULL OR project_id = ?2) ORDER BY project_id, version_index"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params![name, project], object_from_row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// One object version by name and digest (or `latest`, or `v<N>`); digest prefixes are
    /// accepted when unique. When several projects have an object of that name, this is an
    /// error naming them: use [`Store::object_in`].
    pub fn object(&self, name: &str, version: &str) -> Result<Option<ObjectVersion>, Error> {
        self.object_in(None, name, version)
    }

    /// One object version of `project` (`entity/project`; `None`: the only project that
    /// has an object of that name) by name and digest, `latest` or `v<N>`.
    pub fn object_in(
        &self,
        project: Option<&str>,
        name: &str,
        version: &str,
    ) -> Result<Option<ObjectVersion>, Error> {
        let versions = self.object_versions_in(project, name)?;
        if let Some(first) = versions.first() {
            let others: Vec<&str> = versions
                .iter()
                .map(|v| v.project_id.as_str())
                .filter(|p| *p != first.project_id)
                .collect();
            if !others.is_empty() {
                let mut projects = vec![first.project_id.as_str()];
                projects.extend(others);
                projects.dedup();
                return Err(Error::NotFound(format!(
                    "`{name}` exists in several projects ({}): name the project",
                    projects.join(", ")
                )));
            }
        }
        if version == "latest" {
            return Ok(versions.into_iter().find(|v| v.is_latest));
        }
        if let Some(n) = version
            .strip_prefix('v')
            .and_then(|n| n.parse::<i64>().ok())
        {
            if let Some(v) = versions.iter().find(|v| v.version_index == n) {
                return Ok(Some(v.clone()));
            }
        }
        let matching: Vec<_> = versions
            .into_iter()
            .filter(|v| v.digest.starts_with(version))
            .collect();
        match matching.len() {
            0 => Ok(None),
            1 => Ok(matching.into_iter().next()),
            _ => Err(Error::NotFound(format!(
                "`{name}:{version}` is ambiguous: {}",
                matching
                    .iter()
                    .map(|v| v.digest.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Resolves a `weave:///entity/project/(op|object)/name:digest` ref (in its project).
    pub fn resolve_ref(&self, uri: &str) -> Result<Option<ObjectVersion>, Error> {
        let r = crate::refs::ObjectRef::parse(uri)?;
        let project = format!("{}/{}", r.entity, r.project);
        self.object_in(Some(&project), &r.name, &r.digest)
    }

    /// The rows of a stored table, in order, with their digests.
    pub fn table_rows(&self, digest: &str) -> Result<Vec<(String, Value)>, Error> {
        let row_digests: Option<String> = self
            .conn
            .prepare_cached("SELECT row_digests FROM tables WHERE digest = ?1")
            .and_then(|mut st| st.query_row([digest], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let Some(row_digests) = row_digests else {
            return Err(Error::NotFound(format!("no table with digest {digest}")));
        };
        let digests: Vec<String> =
            serde_json::from_str(&row_digests).map_err(|source| Error::Json {
                what: format!("table {digest}"),
                source,
            })?;
        let mut st = self
            .conn
            .prepare_cached("SELECT val FROM table_rows WHERE digest = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(digests.len());
        for d in digests {
            let val: String = st.query_row([&d], |r| r.get(0)).map_err(|e| self.err(e))?;
            let v = serde_json::from_str(&val).map_err(|source| Error::Json {
                what: format!("table row {d}"),
                source,
            })?;
            out.push((d, v));
        }
        Ok(out)
    }

    /// Number of stored calls.
    pub fn call_count(&self) -> Result<u64, Error> {
        self.conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

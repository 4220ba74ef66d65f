//! Calls as parts: every start, end, complete call, update and delete mark is one row of
//! `call_parts`; a call is the merge of its parts in `written_at` order, with exactly the
//! upsert rules of `SqliteStore` (the last start wins, an existing display name beats a
//! start's, updates patch attributes, ...). Here: the parts a write makes, the merge, the
//! merged call's query fields, and reads by id (one call, descendants, id ranges). Queries
//! are in [`super::query`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weave_types::*;

use super::conn::Sql;
use super::eval::{self, Aff, Fields, Val, V};
use super::Inner;
use crate::error::{Result, StoreError};
use crate::store::{CallIdNeighbors, CallKey};

/// Kinds of parts.
pub(crate) const START: u8 = 1;
pub(crate) const END: u8 = 2;
pub(crate) const COMPLETE: u8 = 3;
pub(crate) const UPDATE: u8 = 4;
pub(crate) const DELETE: u8 = 5;

/// One row of `call_parts` (RowBinary, columns in table order).
#[derive(Debug, Clone, Default, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct PartRow {
    pub(crate) project_id: String,
    pub(crate) id: String,
    pub(crate) written_at: i64,
    pub(crate) part: u8,
    pub(crate) op_name: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) thread_id: Option<String>,
    pub(crate) turn_id: Option<String>,
    pub(crate) started_at: Option<i64>,
    pub(crate) inputs: Option<String>,
    pub(crate) input_refs: Vec<String>,
    pub(crate) attributes: Option<String>,
    pub(crate) otel_dump: Option<String>,
    pub(crate) wb_user_id: Option<String>,
    pub(crate) wb_run_id: Option<String>,
    pub(crate) wb_run_step: Option<i64>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) output: Option<String>,
    pub(crate) output_refs: Vec<String>,
    pub(crate) exception: Option<String>,
    pub(crate) summary: Option<String>,
    pub(crate) summary_error: u8,
    pub(crate) wb_run_step_end: Option<i64>,
    pub(crate) deleted_at: Option<i64>,
}

/// `call_parts`' columns in [`PartRow`] order; the JSON ones may be left out of a read.
const PART_COLUMNS: [&str; 26] = [
    "project_id",
    "id",
    "written_at",
    "part",
    "op_name",
    "display_name",
    "trace_id",
    "parent_id",
    "thread_id",
    "turn_id",
    "started_at",
    "inputs",
    "input_refs",
    "attributes",
    "otel_dump",
    "wb_user_id",
    "wb_run_id",
    "wb_run_step",
    "ended_at",
    "output",
    "output_refs",
    "exception",
    "summary",
    "summary_error",
    "wb_run_step_end",
    "deleted_at",
];

/// The JSON columns of a call, which reads fetch only when needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Heavy {
    pub(crate) inputs: bool,
    pub(crate) output: bool,
    pub(crate) attributes: bool,
    pub(crate) summary: bool,
}

impl Heavy {
    pub(crate) const ALL: Heavy = Heavy {
        inputs: true,
        output: true,
        attributes: true,
        summary: true,
    };
    pub(crate) const NONE: Heavy = Heavy {
        inputs: false,
        output: false,
        attributes: false,
        summary: false,
    };

    pub(crate) fn set(&mut self, col: &str) {
        match col {
            "inputs" => self.inputs = true,
            "output" => self.output = true,
            "attributes" => self.attributes = true,
            "summary" => self.summary = true,
            _ => {}
        }
    }

    fn has(&self, col: &str) -> bool {
        match col {
            "inputs" => self.inputs,
            "output" => self.output,
            "attributes" => self.attributes,
            "summary" => self.summary,
            _ => true,
        }
    }

    pub(crate) fn union(self, o: Heavy) -> Heavy {
        Heavy {
            inputs: self.inputs || o.inputs,
            output: self.output || o.output,
            attributes: self.attributes || o.attributes,
            summary: self.summary || o.summary,
        }
    }

    /// `SELECT` list of all part columns, the unwanted JSON ones as NULL.
    pub(crate) fn select(&self) -> String {
        PART_COLUMNS
            .iter()
            .map(|c| {
                if self.has(c) && *c != "otel_dump" {
                    (*c).to_string()
                } else {
                    format!("CAST(NULL AS Nullable(String)) AS {c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// --- writes ------------------------------------------------------------------------------

fn json_text(v: &impl Serialize) -> String {
    // Serialising a `serde_json` value cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn refs_of(v: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    weave_types::refs::extract_refs(v, &mut refs);
    refs.into_iter().map(str::to_string).collect()
}

fn map_refs(m: &Map<String, Value>) -> Vec<String> {
    let mut refs = Vec::new();
    for v in m.values() {
        weave_types::refs::extract_refs(v, &mut refs);
    }
    refs.into_iter().map(str::to_string).collect()
}

/// A timestamp field as microseconds, with `SqliteStore`'s error for bad text.
fn micros(s: &str, field: &str) -> Result<i64> {
    let canonical = crate::sqlite::time(s, "", field)?.into_owned();
    weave_types::time::parse_micros(&canonical)
        .map_err(|e| StoreError::invalid(field, e.to_string()))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn start_fields(p: &mut PartRow, s: &StartedCallSchemaForInsert, started_at: i64) {
    p.op_name = Some(s.op_name.clone());
    p.display_name = s.display_name.clone();
    p.parent_id = s.parent_id.clone();
    p.thread_id = s.thread_id.clone();
    p.turn_id = s.turn_id.clone();
    p.started_at = Some(started_at);
    p.inputs = Some(json_text(&s.inputs));
    p.input_refs = map_refs(&s.inputs);
    p.attributes = Some(json_text(&s.attributes));
    p.otel_dump = s.otel_dump.as_ref().map(json_text);
    p.wb_user_id = s.wb_user_id.clone();
    p.wb_run_id = s.wb_run_id.clone();
    p.wb_run_step = s.wb_run_step;
}

fn end_fields(p: &mut PartRow, e: &EndedCallSchemaForInsert, ended_at: i64) {
    let summary = Value::Object((*e.summary).clone());
    p.ended_at = Some(ended_at);
    p.output = Some(json_text(&e.output));
    p.output_refs = refs_of(&e.output);
    p.exception = e.exception.clone();
    p.summary = Some(json_text(&summary));
    p.summary_error = eval::summary_has_error(Some(&summary)) as u8;
    p.wb_run_step_end = e.wb_run_step_end;
}

/// A start's part (validated like `SqliteStore`'s), with the ids it got.
pub(crate) fn start_part(
    s: &StartedCallSchemaForInsert,
    at: &str,
) -> Result<(PartRow, CallStartRes)> {
    crate::sqlite::check_project(&s.project_id, &format!("{at}.project_id"))?;
    crate::sqlite::non_empty(&s.op_name, "", &format!("{at}.op_name"))?;
    let started_at = micros(&s.started_at, &format!("{at}.started_at"))?;
    let id =
        s.id.clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(new_id);
    let trace_id = s
        .trace_id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(new_id);
    let mut p = PartRow {
        project_id: s.project_id.clone(),
        id: id.clone(),
        part: START,
        trace_id: Some(trace_id.clone()),
        ..Default::default()
    };
    start_fields(&mut p, s, started_at);
    Ok((p, CallStartRes { id, trace_id }))
}

/// An end's part.
pub(crate) fn end_part(e: &EndedCallSchemaForInsert, at: &str) -> Result<PartRow> {
    crate::sqlite::check_project(&e.project_id, &format!("{at}.project_id"))?;
    crate::sqlite::non_empty(&e.id, "", &format!("{at}.id"))?;
    let ended_at = micros(&e.ended_at, &format!("{at}.ended_at"))?;
    let mut p = PartRow {
        project_id: e.project_id.clone(),
        id: e.id.clone(),
        part: END,
        ..Default::default()
    };
    end_fields(&mut p, e, ended_at);
    Ok(p)
}

/// A finished call's part (start and end in one row).
pub(crate) fn complete_part(c: &CompleteCallSchemaForInsert, at: &str) -> Result<PartRow> {
    crate::sqlite::check_project(&c.project_id, &format!("{at}.project_id"))?;
    crate::sqlite::non_empty(&c.id, "", &format!("{at}.id"))?;
    crate::sqlite::non_empty(&c.trace_id, "", &format!("{at}.trace_id"))?;
    crate::sqlite::non_empty(&c.op_name, "", &format!("{at}.op_name"))?;
    let started_at = micros(&c.started_at, &format!("{at}.started_at"))?;
    let ended_at = micros(&c.ended_at, &format!("{at}.ended_at"))?;
    let (s, e) = c.clone().split();
    let mut p = PartRow {
        project_id: c.project_id.clone(),
        id: c.id.clone(),
        part: COMPLETE,
        trace_id: Some(c.trace_id.clone()),
        ..Default::default()
    };
    start_fields(&mut p, &s, started_at);
    end_fields(&mut p, &e, ended_at);
    Ok(p)
}

/// An update's part; `None` when it changes nothing.
pub(crate) fn update_part(u: &CallUpdateReq) -> Result<Option<PartRow>> {
    crate::sqlite::check_project(&u.project_id, "project_id")?;
    crate::sqlite::non_empty(&u.call_id, "", "call_id")?;
    if u.display_name.is_none() && u.attributes.is_none() {
        return Ok(None);
    }
    Ok(Some(PartRow {
        project_id: u.project_id.clone(),
        id: u.call_id.clone(),
        part: UPDATE,
        display_name: u.display_name.clone(),
        attributes: u.attributes.as_ref().map(json_text),
        ..Default::default()
    }))
}

// --- merging -----------------------------------------------------------------------------

/// A call as `SqliteStore` would hold it in its `calls` row: the merge of its parts.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallRow {
    pub(crate) project_id: String,
    pub(crate) id: String,
    pub(crate) op_name: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) thread_id: Option<String>,
    pub(crate) turn_id: Option<String>,
    pub(crate) started_at: Option<i64>,
    inputs: Option<Value>,
    pub(crate) input_refs: Vec<String>,
    attributes: Option<Value>,
    pub(crate) wb_user_id: Option<String>,
    pub(crate) wb_run_id: Option<String>,
    wb_run_step: Option<i64>,
    ended_at: Option<i64>,
    output: Option<Value>,
    pub(crate) output_refs: Vec<String>,
    exception: Option<String>,
    summary: Option<Value>,
    summary_error: bool,
    wb_run_step_end: Option<i64>,
    pub(crate) deleted_at: Option<i64>,
}

impl CallRow {
    /// Listed: its start is known and it is not deleted.
    pub(crate) fn listed(&self) -> bool {
        self.started_at.is_some() && self.deleted_at.is_none()
    }
}

fn parse_json(text: Option<String>, at: &str, what: &str) -> Result<Option<Value>> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| StoreError::Backend {
                store: at.to_string(),
                source: format!("stored JSON of {what} is invalid: {e}").into(),
            }),
    }
}

/// Merges one call's parts (sorted by `written_at`, then kind), replaying `SqliteStore`'s
/// upserts.
pub(crate) fn merge(parts: Vec<PartRow>, at: &str) -> Result<CallRow> {
    let mut row = CallRow::default();
    for p in parts {
        let what = |c: &str| format!("{c} of call {}", p.id);
        row.project_id.clone_from(&p.project_id);
        row.id.clone_from(&p.id);
        if matches!(p.part, START | COMPLETE) {
            row.op_name = p.op_name.clone();
            row.display_name = row.display_name.take().or(p.display_name.clone());
            row.trace_id = p.trace_id.clone();
            row.parent_id = p.parent_id.clone();
            row.thread_id = p.thread_id.clone();
            row.turn_id = p.turn_id.clone();
            row.started_at = p.started_at;
            row.inputs = parse_json(p.inputs.clone(), at, &what("inputs"))?;
            row.input_refs = p.input_refs.clone();
            let attrs = parse_json(p.attributes.clone(), at, &what("attributes"))?;
            row.attributes = match (attrs, row.attributes.take()) {
                (new, None) => new,
                (Some(new), Some(old)) => Some(eval::json_patch(&new, &old)),
                (None, old) => old,
            };
            row.wb_user_id = p.wb_user_id.clone();
            row.wb_run_id = p.wb_run_id.clone();
            row.wb_run_step = p.wb_run_step;
        }
        if matches!(p.part, END | COMPLETE) {
            row.ended_at = p.ended_at;
            row.output = parse_json(p.output.clone(), at, &what("output"))?;
            row.output_refs = p.output_refs.clone();
            row.exception = p.exception.clone();
            row.summary = parse_json(p.summary.clone(), at, &what("summary"))?;
            row.summary_error = p.summary_error != 0;
            row.wb_run_step_end = p.wb_run_step_end;
        }
        if p.part == UPDATE {
            if p.display_name.is_some() {
                row.display_name = p.display_name.clone();
            }
            let attrs = parse_json(p.attributes.clone(), at, &what("attributes"))?;
            row.attributes = match (attrs, row.attributes.take()) {
                (None, old) => old,
                (Some(new), None) => Some(new),
                (Some(new), Some(old)) => Some(eval::json_patch(&old, &new)),
            };
        }
        if p.part == DELETE && row.deleted_at.is_none() {
            row.deleted_at = p.deleted_at;
        }
    }
    Ok(row)
}

/// Groups parts (ordered by id, then `written_at`, kind) into merged calls.
pub(crate) fn merge_all(parts: Vec<PartRow>, at: &str) -> Result<Vec<CallRow>> {
    let mut out = Vec::new();
    let mut cur: Vec<PartRow> = Vec::new();
    for p in parts {
        if cur.last().is_some_and(|l| l.id != p.id) {
            out.push(merge(std::mem::take(&mut cur), at)?);
        }
        cur.push(p);
    }
    if !cur.is_empty() {
        out.push(merge(cur, at)?);
    }
    Ok(out)
}

fn time_text(m: Option<i64>) -> Option<String> {
    m.map(weave_types::time::format_micros)
}

/// Query fields of a merged call, as `SqliteStore` computes them in SQL.
impl Fields for CallRow {
    fn field(&self, path: &str) -> Val {
        let text = |v: &Option<String>| Val::text_col(v.as_deref());
        match path {
            "id" => Val::text_col(Some(&self.id)),
            "project_id" => Val::text_col(Some(&self.project_id)),
            "op_name" => text(&self.op_name),
            "display_name" | "summary.weave.display_name" => text(&self.display_name),
            "trace_id" => text(&self.trace_id),
            "parent_id" => text(&self.parent_id),
            "thread_id" => text(&self.thread_id),
            "turn_id" => text(&self.turn_id),
            "started_at" => text(&time_text(self.started_at)),
            "ended_at" => text(&time_text(self.ended_at)),
            "deleted_at" => text(&time_text(self.deleted_at)),
            "exception" => text(&self.exception),
            "wb_user_id" => text(&self.wb_user_id),
            "wb_run_id" => text(&self.wb_run_id),
            "wb_run_step" => Val::int_col(self.wb_run_step),
            "wb_run_step_end" => Val::int_col(self.wb_run_step_end),
            "summary.weave.status" => Val::plain(V::Text(self.status().into())),
            "summary.weave.latency_ms" => Val::plain(
                match self.ended_at {
                    None => None,
                    Some(_) => eval::latency_ms(self.started_at, self.ended_at),
                }
                .map_or(V::Null, V::Int),
            ),
            "summary.weave.trace_name" => Val::plain(
                self.display_name
                    .clone()
                    .or_else(|| eval::op_short_name(self.op_name.as_deref()))
                    .map_or(V::Null, V::Text),
            ),
            _ => {
                let mut segs = path.split('.');
                let col = segs.next().unwrap_or("");
                let rest: Vec<&str> = segs.collect();
                let json = match col {
                    "inputs" => self.inputs.as_ref(),
                    "output" => self.output.as_ref(),
                    "attributes" => self.attributes.as_ref(),
                    "summary" => self.summary.as_ref(),
                    _ => None,
                };
                Val {
                    v: eval::json_extract(json, &rest),
                    aff: Aff::None,
                }
            }
        }
    }
}

impl CallRow {
    fn status(&self) -> &'static str {
        if self.exception.is_some() {
            "error"
        } else if self.ended_at.is_none() {
            "running"
        } else if self.summary_error {
            "descendant_error"
        } else {
            "success"
        }
    }

    /// The call as a query answers it: JSON columns outside `columns` are empty, and
    /// `summary.weave` is derived.
    pub(crate) fn to_call(&self, columns: Option<&[String]>) -> CallSchema {
        let wanted = |c: &str| columns.is_none_or(|cols| cols.iter().any(|x| x == c));
        let map = |v: &Option<Value>, c: &str| -> Map<String, Value> {
            if !wanted(c) {
                return Map::new();
            }
            match v {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    let mut m = Map::new();
                    m.insert("value".into(), other.clone());
                    m
                }
            }
        };
        let mut call = CallSchema {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            op_name: self.op_name.clone().unwrap_or_default(),
            display_name: self.display_name.clone(),
            trace_id: self.trace_id.clone().unwrap_or_default(),
            parent_id: self.parent_id.clone(),
            thread_id: self.thread_id.clone(),
            turn_id: self.turn_id.clone(),
            started_at: time_text(self.started_at).unwrap_or_default(),
            attributes: map(&self.attributes, "attributes"),
            inputs: map(&self.inputs, "inputs"),
            ended_at: time_text(self.ended_at),
            exception: self.exception.clone(),
            output: if wanted("output") {
                self.output.clone()
            } else {
                None
            },
            summary: map(&self.summary, "summary"),
            wb_user_id: self.wb_user_id.clone(),
            wb_run_id: self.wb_run_id.clone(),
            wb_run_step: self.wb_run_step,
            wb_run_step_end: self.wb_run_step_end,
            deleted_at: time_text(self.deleted_at),
            expire_at: None,
        };
        weave_types::summary::add_summary_weave(&mut call);
        call
    }
}

// --- reading -----------------------------------------------------------------------------

/// The parts of `ids` (all of them, in merge order), merged.
pub(crate) async fn fetch_rows(
    s: &Inner,
    project_id: &str,
    ids: &[String],
    heavy: Heavy,
) -> Result<HashMap<String, CallRow>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(FETCH_CHUNK) {
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {} FROM call_parts WHERE project_id = ",
            heavy.select()
        ))
        .arg(project_id)
        .push(" AND ")
        .in_list("id", chunk)
        .push(" ORDER BY id, written_at, part");
        let parts: Vec<PartRow> = s.conn.fetch_all(&sql).await?;
        for row in merge_all(parts, &s.conn.at)? {
            out.insert(row.id.clone(), row);
        }
    }
    Ok(out)
}

/// Ids per phase-two query.
pub(crate) const FETCH_CHUNK: usize = 1000;

/// Streams merged parts ordered by id.
pub(crate) struct PartStream {
    pub(crate) cursor: super::conn::Cursor<PartRow>,
    pub(crate) carry: Option<PartRow>,
    pub(crate) done: bool,
}

impl PartStream {
    /// The next merged call, `None` at the end.
    pub(crate) async fn next(&mut self, at: &str) -> Result<Option<CallRow>> {
        if self.done {
            return Ok(None);
        }
        let mut parts: Vec<PartRow> = self.carry.take().into_iter().collect();
        loop {
            match self.cursor.next().await? {
                Some(p) => {
                    if parts.last().is_some_and(|l| l.id != p.id) {
                        self.carry = Some(p);
                        return merge(parts, at).map(Some);
                    }
                    parts.push(p);
                }
                None => {
                    self.done = true;
                    if parts.is_empty() {
                        return Ok(None);
                    }
                    return merge(parts, at).map(Some);
                }
            }
        }
    }
}

/// One listed call, merged from all its parts.
pub(crate) async fn read(s: &Inner, project_id: &str, id: &str) -> Result<Option<CallRow>> {
    let mut rows = fetch_rows(s, project_id, &[id.to_string()], Heavy::ALL).await?;
    Ok(rows.remove(id).filter(CallRow::listed))
}

/// Calls and all their descendants (by merged `parent_id`), among the project's calls.
pub(crate) async fn with_descendants(
    s: &Inner,
    project_id: &str,
    ids: &[String],
) -> Result<Vec<CallRow>> {
    let mut seen: std::collections::HashSet<String> = ids.iter().cloned().collect();
    let mut frontier: Vec<String> = seen.iter().cloned().collect();
    let mut found: Vec<CallRow> = fetch_rows(s, project_id, &frontier, Heavy::NONE)
        .await?
        .into_values()
        .collect();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(FETCH_CHUNK) {
            // Children by the index of start parts by parent (one range per parent).
            let mut sql = Sql::new("SELECT DISTINCT id FROM call_keys WHERE project_id = ");
            sql.arg(project_id)
                .push(" AND kind = 2 AND ")
                .in_list("key", chunk);
            #[derive(clickhouse::Row, Deserialize)]
            struct Id {
                id: String,
            }
            let kids: Vec<Id> = s.conn.fetch_all(&sql).await?;
            let kids: Vec<String> = kids
                .into_iter()
                .map(|k| k.id)
                .filter(|k| !seen.contains(k))
                .collect();
            let rows = fetch_rows(s, project_id, &kids, Heavy::NONE).await?;
            for (id, row) in rows {
                // The merged parent decides (an earlier start may have named another).
                if row.parent_id.as_ref().is_some_and(|p| chunk.contains(p))
                    && seen.insert(id.clone())
                {
                    next.push(id);
                    found.push(row);
                }
            }
        }
        frontier = next;
    }
    Ok(found)
}

/// Listed calls of a project whose id lies in `[lo, hi)`, in id order, at most `limit`.
pub(crate) async fn ids_in_range(
    s: &Inner,
    project_id: &str,
    lo: &str,
    hi: &str,
    limit: u64,
) -> Result<Vec<CallKey>> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {} FROM call_parts WHERE project_id = ",
        Heavy::NONE.select()
    ))
    .arg(project_id)
    .push(" AND id >= ")
    .arg(lo)
    .push(" AND id < ")
    .arg(hi)
    .push(" ORDER BY id, written_at, part");
    let mut stream = PartStream {
        cursor: s.conn.fetch(&sql)?,
        carry: None,
        done: false,
    };
    let mut out = Vec::new();
    while (out.len() as u64) < limit {
        match stream.next(&s.conn.at).await? {
            Some(r) if r.listed() => out.push(CallKey {
                project_id: project_id.to_string(),
                id: r.id,
            }),
            Some(_) => {}
            None => break,
        }
    }
    Ok(out)
}

/// The ids just before and after `id` among all of a project's call rows.
pub(crate) async fn neighbors(s: &Inner, project_id: &str, id: &str) -> Result<CallIdNeighbors> {
    #[derive(clickhouse::Row, Deserialize)]
    struct Id {
        id: String,
    }
    let one = |op: &str, dir: &str| {
        let mut sql = Sql::new("SELECT id FROM call_parts WHERE project_id = ");
        sql.arg(project_id)
            .push(&format!(" AND id {op} "))
            .arg(id)
            .push(&format!(" ORDER BY id {dir} LIMIT 1"));
        sql
    };
    let before: Vec<Id> = s.conn.fetch_all(&one("<", "DESC")).await?;
    let after: Vec<Id> = s.conn.fetch_all(&one(">", "ASC")).await?;
    Ok(CallIdNeighbors {
        before: before.into_iter().next().map(|i| i.id),
        after: after.into_iter().next().map(|i| i.id),
    })
}

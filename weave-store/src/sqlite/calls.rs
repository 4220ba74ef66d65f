//! Calls: upserts of starts, ends and complete calls (any order, any number of times),
//! updates, deletes, and queries with Weave's filter, `$expr`, sort, paging and projection.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{Map, Value};
use weave_types::query::SortBy;
use weave_types::*;

use super::query::{self, json_path, Fields, Sql};
use super::{
    check_project, check_project_at, field_path, json_err, now, sql_err, Location, Writer,
};
use crate::error::{Result, StoreError};
use crate::store::{CallIdNeighbors, CallKey};

fn json_text(v: &impl serde::Serialize) -> String {
    // Serialising a `serde_json` value cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The refs inside a value, as a JSON array text; `None` when there are none.
fn refs_text(v: &Value) -> Option<String> {
    let mut refs = Vec::new();
    weave_types::refs::extract_refs(v, &mut refs);
    (!refs.is_empty()).then(|| json_text(&refs))
}

fn map_refs_text(m: &Map<String, Value>) -> Option<String> {
    let mut refs = Vec::new();
    for v in m.values() {
        weave_types::refs::extract_refs(v, &mut refs);
    }
    (!refs.is_empty()).then(|| json_text(&refs))
}

fn time<'a>(s: &'a str, at: &str, name: &str) -> Result<std::borrow::Cow<'a, str>> {
    weave_types::time::normalize(s)
        .map_err(|e| StoreError::invalid(field_path(at, name), e.to_string()))
}

fn non_empty(s: &str, at: &str, name: &str) -> Result<()> {
    if s.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(StoreError::invalid(
            field_path(at, name),
            "must not be empty",
        ));
    }
    Ok(())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Attributes of a start meet attributes already stored (from an update that came first,
/// or an earlier copy of this start): the stored ones win.
macro_rules! merge_attributes {
    () => {
        "attributes = CASE WHEN calls.attributes IS NULL THEN excluded.attributes \
         ELSE json_patch(excluded.attributes, calls.attributes) END"
    };
}

/// The JSON text of a shared object, serialised once for all the calls that share it (a
/// client sends the same attributes with every call, and the same summary with most).
/// Returns its slot in the cache; `keep` is a slot that must not be reused for it.
fn shared_slot(cache: &mut TextCache, o: &JsonObject, keep: Option<usize>) -> usize {
    if let Some(i) = cache.slots.iter().position(|(k, _)| k.same(o)) {
        return i;
    }
    let text = json_text(&**o);
    if cache.slots.len() < TEXT_CACHE {
        cache.slots.push((o.clone(), text));
        return cache.slots.len() - 1;
    }
    cache.next = (cache.next + 1) % TEXT_CACHE;
    if Some(cache.next) == keep {
        cache.next = (cache.next + 1) % TEXT_CACHE;
    }
    cache.slots[cache.next] = (o.clone(), text);
    cache.next
}

/// [`shared_slot`]'s text.
fn shared_text<'a>(cache: &'a mut TextCache, o: &JsonObject) -> &'a str {
    let i = shared_slot(cache, o, None);
    &cache.slots[i].1
}

/// Shared objects kept with their text, at most.
const TEXT_CACHE: usize = 8;

/// The last shared objects serialised, with their text.
#[derive(Default)]
pub(crate) struct TextCache {
    slots: Vec<(JsonObject, String)>,
    next: usize,
}

impl Writer<'_> {
    /// Upserts a call's start. `at` names the request field in errors.
    pub fn call_start(&mut self, s: &StartedCallSchemaForInsert, at: &str) -> Result<CallStartRes> {
        check_project_at(&s.project_id, at, "project_id")?;
        non_empty(&s.op_name, at, "op_name")?;
        let started_at = time(&s.started_at, at, "started_at")?;
        let id =
            s.id.clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(new_id);
        let trace_id = s
            .trace_id
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(new_id);
        let attributes = shared_text(&mut self.cache.texts, &s.attributes);
        self.tx
            .prepare_cached(concat!(
                "INSERT INTO calls (project_id, id, op_name, display_name, trace_id, parent_id,
                    thread_id, turn_id, started_at, inputs, input_refs, attributes, otel_dump,
                    wb_user_id, wb_run_id, wb_run_step)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (id, project_id) DO UPDATE SET
                    op_name = excluded.op_name,
                    display_name = COALESCE(calls.display_name, excluded.display_name),
                    trace_id = excluded.trace_id, parent_id = excluded.parent_id,
                    thread_id = excluded.thread_id, turn_id = excluded.turn_id,
                    started_at = excluded.started_at, inputs = excluded.inputs,
                    input_refs = excluded.input_refs, ",
                merge_attributes!(),
                ",
                    otel_dump = excluded.otel_dump, wb_user_id = excluded.wb_user_id,
                    wb_run_id = excluded.wb_run_id, wb_run_step = excluded.wb_run_step"
            ))
            .and_then(|mut st| {
                st.execute(params![
                    s.project_id,
                    id,
                    s.op_name,
                    s.display_name,
                    trace_id,
                    s.parent_id,
                    s.thread_id,
                    s.turn_id,
                    started_at,
                    json_text(&s.inputs),
                    map_refs_text(&s.inputs),
                    attributes,
                    s.otel_dump.as_ref().map(json_text),
                    s.wb_user_id,
                    s.wb_run_id,
                    s.wb_run_step,
                ])
            })
            .map_err(|e| sql_err(&self.at, e))?;
        self.touch_project(&s.project_id);
        Ok(CallStartRes { id, trace_id })
    }

    /// Upserts a call's end.
    pub fn call_end(&mut self, e: &EndedCallSchemaForInsert, at: &str) -> Result<()> {
        check_project_at(&e.project_id, at, "project_id")?;
        non_empty(&e.id, at, "id")?;
        let ended_at = time(&e.ended_at, at, "ended_at")?;
        self.tx
            .prepare_cached(
                "INSERT INTO calls (project_id, id, ended_at, output, output_refs, exception,
                    summary, wb_run_step_end)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id, project_id) DO UPDATE SET
                    ended_at = excluded.ended_at, output = excluded.output,
                    output_refs = excluded.output_refs, exception = excluded.exception,
                    summary = excluded.summary, wb_run_step_end = excluded.wb_run_step_end",
            )
            .and_then(|mut st| {
                st.execute(params![
                    e.project_id,
                    e.id,
                    ended_at,
                    json_text(&e.output),
                    refs_text(&e.output),
                    e.exception,
                    json_text(&*e.summary),
                    e.wb_run_step_end,
                ])
            })
            .map_err(|err| sql_err(&self.at, err))?;
        self.touch_project(&e.project_id);
        Ok(())
    }

    /// Upserts a finished call (start and end).
    pub fn call_complete(&mut self, c: &CompleteCallSchemaForInsert, at: &str) -> Result<()> {
        let mut err = None;
        self.calls_complete_each(std::iter::once((c, at)), &mut |_, e| err = Some(e))?;
        err.map_or(Ok(()), Err)
    }

    /// Upserts finished calls with one prepared statement; a call that fails (bad fields,
    /// or refused by the database) is handed to `failed` with its index, the others are
    /// stored. `Err` only when the statement cannot be prepared.
    pub fn calls_complete_each<'i>(
        &mut self,
        calls: impl IntoIterator<Item = (&'i CompleteCallSchemaForInsert, &'i str)>,
        failed: &mut dyn FnMut(usize, StoreError),
    ) -> Result<()> {
        let Writer {
            tx,
            at: loc,
            projects,
            cache,
        } = self;
        let mut st = tx
            .prepare_cached(COMPLETE_SQL)
            .map_err(|e| sql_err(loc, e))?;
        for (i, (c, at)) in calls.into_iter().enumerate() {
            let r = complete_one(&mut st, &mut cache.texts, loc, c, at);
            match r {
                Ok(()) => {
                    if !projects.contains(&c.project_id) {
                        projects.insert(c.project_id.clone());
                    }
                }
                Err(e) => failed(i, e),
            }
        }
        Ok(())
    }

    /// Renames a call and/or merges attributes into it (also before its start arrives).
    pub fn call_update(&mut self, u: &CallUpdateReq) -> Result<()> {
        check_project(&u.project_id, "project_id")?;
        non_empty(&u.call_id, "", "call_id")?;
        if u.display_name.is_none() && u.attributes.is_none() {
            return Ok(());
        }
        self.tx
            .prepare_cached(
                "INSERT INTO calls (project_id, id, display_name, attributes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id, project_id) DO UPDATE SET
                    display_name = COALESCE(excluded.display_name, calls.display_name),
                    attributes = CASE WHEN excluded.attributes IS NULL THEN calls.attributes
                        WHEN calls.attributes IS NULL THEN excluded.attributes
                        ELSE json_patch(calls.attributes, excluded.attributes) END",
            )
            .and_then(|mut st| {
                st.execute(params![
                    u.project_id,
                    u.call_id,
                    u.display_name,
                    u.attributes.as_ref().map(json_text),
                ])
            })
            .map_err(|e| sql_err(&self.at, e))?;
        self.touch_project(&u.project_id);
        Ok(())
    }

    /// Marks calls and all their descendants deleted; returns how many were marked.
    pub fn calls_delete(&mut self, req: &CallsDeleteReq) -> Result<CallsDeleteRes> {
        check_project(&req.project_id, "project_id")?;
        let n = self
            .tx
            .execute(
                "WITH RECURSIVE d(id) AS (
                    SELECT value FROM json_each(?2)
                    UNION SELECT c.id FROM calls c JOIN d ON c.parent_id = d.id
                        WHERE c.project_id = ?1)
                 UPDATE calls SET deleted_at = ?3
                 WHERE project_id = ?1 AND id IN (SELECT id FROM d) AND deleted_at IS NULL",
                params![req.project_id, json_text(&req.call_ids), now()],
            )
            .map_err(|e| sql_err(&self.at, e))?;
        Ok(CallsDeleteRes {
            num_deleted: n as u64,
        })
    }
}

const COMPLETE_SQL: &str = concat!(
    "INSERT INTO calls (project_id, id, op_name, display_name, trace_id, parent_id,
        thread_id, turn_id, started_at, inputs, input_refs, attributes, otel_dump,
        wb_user_id, wb_run_id, wb_run_step, ended_at, output, output_refs, exception,
        summary, wb_run_step_end)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
        ?17, ?18, ?19, ?20, ?21, ?22)
     ON CONFLICT (id, project_id) DO UPDATE SET
        op_name = excluded.op_name,
        display_name = COALESCE(calls.display_name, excluded.display_name),
        trace_id = excluded.trace_id, parent_id = excluded.parent_id,
        thread_id = excluded.thread_id, turn_id = excluded.turn_id,
        started_at = excluded.started_at, inputs = excluded.inputs,
        input_refs = excluded.input_refs, ",
    merge_attributes!(),
    ",
        otel_dump = excluded.otel_dump, wb_user_id = excluded.wb_user_id,
        wb_run_id = excluded.wb_run_id, wb_run_step = excluded.wb_run_step,
        ended_at = excluded.ended_at, output = excluded.output,
        output_refs = excluded.output_refs, exception = excluded.exception,
        summary = excluded.summary, wb_run_step_end = excluded.wb_run_step_end"
);

fn complete_one(
    st: &mut rusqlite::CachedStatement<'_>,
    texts: &mut TextCache,
    loc: &Location,
    c: &CompleteCallSchemaForInsert,
    at: &str,
) -> Result<()> {
    check_project_at(&c.project_id, at, "project_id")?;
    non_empty(&c.id, at, "id")?;
    non_empty(&c.trace_id, at, "trace_id")?;
    non_empty(&c.op_name, at, "op_name")?;
    let started_at = time(&c.started_at, at, "started_at")?;
    let ended_at = time(&c.ended_at, at, "ended_at")?;
    let a = shared_slot(texts, &c.attributes, None);
    let s = shared_slot(texts, &c.summary, Some(a));
    let (attributes, summary) = (&texts.slots[a].1, &texts.slots[s].1);
    st.execute(params![
        c.project_id,
        c.id,
        c.op_name,
        c.display_name,
        c.trace_id,
        c.parent_id,
        c.thread_id,
        c.turn_id,
        started_at,
        json_text(&c.inputs),
        map_refs_text(&c.inputs),
        attributes,
        c.otel_dump.as_ref().map(json_text),
        c.wb_user_id,
        c.wb_run_id,
        c.wb_run_step,
        ended_at,
        json_text(&c.output),
        refs_text(&c.output),
        c.exception,
        summary,
        c.wb_run_step_end,
    ])
    .map_err(|e| sql_err(loc, e))?;
    Ok(())
}

// --- reads -------------------------------------------------------------------------------

/// Scalar columns, always read.
const SCALARS: &str = "id, project_id, op_name, display_name, trace_id, parent_id, thread_id, \
    turn_id, started_at, ended_at, exception, wb_user_id, wb_run_id, wb_run_step, \
    wb_run_step_end, deleted_at";
/// JSON columns, read when the projection asks for them.
const JSON_COLUMNS: [&str; 4] = ["inputs", "output", "attributes", "summary"];

/// A call is listed once its start is known and until it is deleted.
const LISTED: &str = "started_at IS NOT NULL AND deleted_at IS NULL";

fn select(columns: Option<&[String]>) -> String {
    let mut s = format!("SELECT {SCALARS}");
    for c in JSON_COLUMNS {
        let wanted = columns.is_none_or(|cols| cols.iter().any(|x| x == c));
        s.push_str(if wanted { ", " } else { ", NULL AS " });
        s.push_str(c);
    }
    s.push_str(" FROM calls");
    s
}

fn json_map(text: Option<String>, at: &Location, what: &str) -> Result<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match serde_json::from_str(&t).map_err(|e| json_err(at, what, e))? {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                Ok(m)
            }
        },
    }
}

fn call_from_row(row: &Row<'_>, at: &Location) -> Result<CallSchema> {
    let g = |e: rusqlite::Error| sql_err(at, e);
    let id: String = row.get(0).map_err(g)?;
    let what = |col: &str| format!("{col} of call {id}");
    let output: Option<String> = row.get(17).map_err(g)?;
    let output = match output {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| json_err(at, &what("output"), e))?),
        None => None,
    };
    let mut call = CallSchema {
        project_id: row.get(1).map_err(g)?,
        op_name: row.get(2).map_err(g)?,
        display_name: row.get(3).map_err(g)?,
        trace_id: row.get(4).map_err(g)?,
        parent_id: row.get(5).map_err(g)?,
        thread_id: row.get(6).map_err(g)?,
        turn_id: row.get(7).map_err(g)?,
        started_at: row.get(8).map_err(g)?,
        ended_at: row.get(9).map_err(g)?,
        exception: row.get(10).map_err(g)?,
        wb_user_id: row.get(11).map_err(g)?,
        wb_run_id: row.get(12).map_err(g)?,
        wb_run_step: row.get(13).map_err(g)?,
        wb_run_step_end: row.get(14).map_err(g)?,
        deleted_at: row.get(15).map_err(g)?,
        inputs: json_map(row.get(16).map_err(g)?, at, &what("inputs"))?,
        output,
        attributes: json_map(row.get(18).map_err(g)?, at, &what("attributes"))?,
        summary: json_map(row.get(19).map_err(g)?, at, &what("summary"))?,
        expire_at: None,
        id,
    };
    weave_types::summary::add_summary_weave(&mut call);
    Ok(call)
}

/// Query fields of the calls table.
struct CallFields;

/// `name` of an op ref stored in `op_name` (`weave:///e/p/op/name:digest`), in SQL.
const OP_SHORT_NAME: &str = "(CASE WHEN op_name LIKE 'weave:///%/op/%:%' THEN \
    substr(substr(op_name, instr(op_name, '/op/') + 4), 1, \
           instr(substr(op_name, instr(op_name, '/op/') + 4), ':') - 1) ELSE op_name END)";

const STATUS: &str = "(CASE WHEN exception IS NOT NULL THEN 'error' \
    WHEN ended_at IS NULL THEN 'running' \
    WHEN COALESCE(json_extract(summary, '$.status_counts.error'), 0) > 0 THEN 'descendant_error' \
    ELSE 'success' END)";

const LATENCY_MS: &str = "(CASE WHEN ended_at IS NULL THEN NULL ELSE CAST(round(\
    (unixepoch(ended_at, 'subsec') - unixepoch(started_at, 'subsec')) * 1000) AS INTEGER) END)";

impl Fields for CallFields {
    fn field(&self, path: &str, sql: &mut Sql, at: &str) -> Result<String> {
        const COLUMNS: [&str; 16] = [
            "id",
            "project_id",
            "op_name",
            "display_name",
            "trace_id",
            "parent_id",
            "thread_id",
            "turn_id",
            "started_at",
            "ended_at",
            "exception",
            "wb_user_id",
            "wb_run_id",
            "wb_run_step",
            "wb_run_step_end",
            "deleted_at",
        ];
        if COLUMNS.contains(&path) {
            return Ok(path.to_string());
        }
        match path {
            "summary.weave.status" => return Ok(STATUS.into()),
            "summary.weave.latency_ms" => return Ok(LATENCY_MS.into()),
            "summary.weave.trace_name" => {
                return Ok(format!("COALESCE(display_name, {OP_SHORT_NAME})"))
            }
            "summary.weave.display_name" => return Ok("display_name".into()),
            _ => {}
        }
        let mut segs = path.split('.');
        let col = segs.next().unwrap_or("");
        if !JSON_COLUMNS.contains(&col) {
            return Err(StoreError::invalid(
                at,
                format!(
                    "unknown field `{path}`: expected one of {}, or a dotted path into inputs, \
                     output, attributes or summary (summary.weave.status, \
                     summary.weave.latency_ms, summary.weave.trace_name)",
                    COLUMNS.join(", ")
                ),
            ));
        }
        let rest: Vec<&str> = segs.collect();
        if col == "summary" && rest.first() == Some(&"weave") {
            return Err(StoreError::invalid(
                at,
                format!("unknown field `{path}`: summary.weave has status, latency_ms, trace_name and display_name"),
            ));
        }
        let p = json_path(&rest, path, at)?;
        Ok(format!("json_extract({col}, {})", sql.param(p)))
    }
}

/// `WHERE ...` for a project, filter and query.
fn where_clause(
    project_id: &str,
    filter: Option<&CallsFilter>,
    q: Option<&Query>,
    sql: &mut Sql,
) -> Result<()> {
    check_project(project_id, "project_id")?;
    let p = sql.param(project_id.to_string());
    sql.push(&format!(" WHERE project_id = {p} AND {LISTED}"));
    if let Some(f) = filter {
        if let Some(ops) = &f.op_names {
            let mut alts = Vec::new();
            for op in ops {
                match op.strip_suffix(":*") {
                    Some(prefix) => {
                        let escaped = prefix
                            .replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_");
                        let ph = sql.param(format!("{escaped}:%"));
                        alts.push(format!("op_name LIKE {ph} ESCAPE '\\'"));
                    }
                    None => alts.push(format!("op_name = {}", sql.param(op.clone()))),
                }
            }
            sql.push(&if alts.is_empty() {
                " AND 0".to_string()
            } else {
                format!(" AND ({})", alts.join(" OR "))
            });
        }
        for (col, refs) in [
            ("input_refs", &f.input_refs),
            ("output_refs", &f.output_refs),
        ] {
            if let Some(refs) = refs {
                let ph = sql.param(json_text(refs));
                sql.push(&format!(
                    " AND EXISTS (SELECT 1 FROM json_each(calls.{col}) r \
                     WHERE r.value IN (SELECT value FROM json_each({ph})))"
                ));
            }
        }
        for (col, ids) in [
            ("parent_id", &f.parent_ids),
            ("trace_id", &f.trace_ids),
            ("id", &f.call_ids),
            ("thread_id", &f.thread_ids),
            ("turn_id", &f.turn_ids),
            ("wb_user_id", &f.wb_user_ids),
            ("wb_run_id", &f.wb_run_ids),
        ] {
            if let Some(ids) = ids {
                sql.and_in(col, ids);
            }
        }
        if f.trace_roots_only == Some(true) {
            sql.push(" AND parent_id IS NULL");
        }
    }
    if let Some(q) = q {
        let cond = query::compile(&q.expr, &CallFields, sql, "query")?;
        sql.push(&format!(" AND {cond}"));
    }
    Ok(())
}

fn build_query(req: &CallsQueryReq) -> Result<Sql> {
    if let Some(cols) = &req.columns {
        for (i, c) in cols.iter().enumerate() {
            // Any known column (or path into one) is accepted; unknown names are errors.
            CallFields.field(c, &mut Sql::default(), &format!("columns[{i}]"))?;
        }
    }
    let mut sql = Sql::new(select(req.columns.as_deref()));
    where_clause(
        &req.project_id,
        req.filter.as_ref(),
        req.query.as_ref(),
        &mut sql,
    )?;
    let default_sort = [SortBy::asc("started_at")];
    let sort = req.sort_by.as_deref().unwrap_or(&default_sort);
    let order = query::order_by(sort, &CallFields, &mut sql, "sort_by")?;
    sql.push(&order);
    query::limit_offset(req.limit, req.offset, &mut sql);
    Ok(sql)
}

/// Checks a query without running it.
pub(crate) fn check_query(req: &CallsQueryReq) -> Result<()> {
    build_query(req).map(drop)
}

/// Runs a query, handing each call to `on_call` until it returns false.
pub(crate) fn calls_query(
    conn: &Connection,
    at: &Location,
    req: &CallsQueryReq,
    on_call: &mut dyn FnMut(CallSchema) -> bool,
) -> Result<()> {
    let sql = build_query(req)?;
    let mut st = conn.prepare(&sql.text).map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(|e| sql_err(at, e))?;
    while let Some(row) = rows.next().map_err(|e| sql_err(at, e))? {
        let mut call = call_from_row(row, at)?;
        if req.include_feedback {
            add_feedback(conn, at, &mut call)?;
        }
        if !on_call(call) {
            break;
        }
    }
    Ok(())
}

fn add_feedback(conn: &Connection, at: &Location, call: &mut CallSchema) -> Result<()> {
    let weave_ref = format!("weave:///{}/call/{}", call.project_id, call.id);
    let rows = super::feedback::feedback_for_ref(conn, at, &call.project_id, &weave_ref)?;
    if let Some(Value::Object(w)) = call.summary.get_mut("weave") {
        w.insert("feedback".into(), Value::Array(rows));
    }
    Ok(())
}

pub(crate) fn calls_query_stats(
    conn: &Connection,
    at: &Location,
    req: &CallsQueryStatsReq,
) -> Result<CallsQueryStatsRes> {
    let mut sql = Sql::new("SELECT count(*) FROM (SELECT 1 FROM calls");
    where_clause(
        &req.project_id,
        req.filter.as_ref(),
        req.query.as_ref(),
        &mut sql,
    )?;
    query::limit_offset(req.limit, None, &mut sql);
    sql.push(")");
    let count: i64 = conn
        .query_row(
            &sql.text,
            rusqlite::params_from_iter(sql.params.iter()),
            |r| r.get(0),
        )
        .map_err(|e| sql_err(at, e))?;
    Ok(CallsQueryStatsRes {
        count: count as u64,
        total_storage_size_bytes: Some(0),
    })
}

pub(crate) fn call_read(
    conn: &Connection,
    at: &Location,
    req: &CallReadReq,
) -> Result<CallReadRes> {
    check_project(&req.project_id, "project_id")?;
    let sql = format!(
        "{} WHERE project_id = ?1 AND id = ?2 AND {LISTED}",
        select(None)
    );
    let mut st = conn.prepare_cached(&sql).map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(params![req.project_id, req.id])
        .map_err(|e| sql_err(at, e))?;
    let call = match rows.next().map_err(|e| sql_err(at, e))? {
        Some(row) => Some(call_from_row(row, at)?),
        None => None,
    };
    Ok(CallReadRes { call })
}

pub(crate) fn ids_by_prefix(
    conn: &Connection,
    at: &Location,
    project: Option<&str>,
    prefix: &str,
    limit: u64,
) -> Result<Vec<CallKey>> {
    let prefix = prefix.trim().to_ascii_lowercase();
    let upper = format!("{prefix}\u{7f}");
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT id, project_id FROM calls WHERE id >= ?1 AND id < ?2 \
             AND (?3 IS NULL OR project_id = ?3) AND {LISTED} ORDER BY id, project_id LIMIT ?4"
        ))
        .map_err(|e| sql_err(at, e))?;
    let keys = st
        .query_map(
            params![prefix, upper, project, limit.min(i64::MAX as u64) as i64],
            |r| {
                Ok(CallKey {
                    id: r.get(0)?,
                    project_id: r.get(1)?,
                })
            },
        )
        .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| sql_err(at, e))?;
    Ok(keys)
}

pub(crate) fn id_neighbors(
    conn: &Connection,
    at: &Location,
    project: Option<&str>,
    id: &str,
) -> Result<CallIdNeighbors> {
    let one = |sql: &str| -> Result<Option<String>> {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.query_row(params![id, project], |r| r.get(0)).optional())
            .map_err(|e| sql_err(at, e))
    };
    Ok(CallIdNeighbors {
        before: one(
            "SELECT id FROM calls WHERE id < ?1 AND (?2 IS NULL OR project_id = ?2) \
             ORDER BY id DESC LIMIT 1",
        )?,
        after: one(
            "SELECT id FROM calls WHERE id > ?1 AND (?2 IS NULL OR project_id = ?2) \
             ORDER BY id ASC LIMIT 1",
        )?,
    })
}

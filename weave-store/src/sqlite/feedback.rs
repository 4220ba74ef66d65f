//! Feedback rows: created with the client's id, queried with Weave's `$expr` over the
//! feedback columns.

use rusqlite::{params, Connection, Row};
use serde_json::{Map, Value};
use weave_types::query::SortBy;
use weave_types::*;

use super::query::{self, json_path, Fields, Sql};
use super::{check_project, json_err, now, sql_err, Location, Writer};
use crate::error::{Result, StoreError};

pub(crate) const COLUMNS: [&str; 12] = [
    "id",
    "project_id",
    "weave_ref",
    "creator",
    "wb_user_id",
    "created_at",
    "feedback_type",
    "payload",
    "annotation_ref",
    "runnable_ref",
    "call_ref",
    "trigger_ref",
];

impl Writer<'_> {
    /// Stores one feedback row (keeping the client's id when given).
    pub fn feedback_create(
        &mut self,
        f: &FeedbackCreateReq,
        at: &str,
    ) -> Result<FeedbackCreateRes> {
        check_project(&f.project_id, &format!("{at}.project_id"))?;
        weave_types::WeaveRef::parse(&f.weave_ref)
            .map_err(|e| StoreError::invalid(format!("{at}.weave_ref"), e.to_string()))?;
        if f.feedback_type.trim().is_empty() {
            return Err(StoreError::invalid(
                format!("{at}.feedback_type"),
                "must not be empty",
            ));
        }
        let id =
            f.id.clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let created_at = now();
        let wb_user_id = f.wb_user_id.clone().unwrap_or_default();
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO feedback (id, project_id, weave_ref, creator, wb_user_id, created_at,
                    feedback_type, payload, annotation_ref, runnable_ref, call_ref, trigger_ref)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    id,
                    f.project_id,
                    f.weave_ref,
                    f.creator,
                    wb_user_id,
                    created_at,
                    f.feedback_type,
                    Value::Object(f.payload.clone()).to_string(),
                    f.annotation_ref,
                    f.runnable_ref,
                    f.call_ref,
                    f.trigger_ref,
                ])
            })
            .map_err(|e| sql_err(&self.at, e))?;
        if n == 0 {
            // A retried request: the id is taken. Same project is fine, another is not.
            let owner: String = self
                .tx
                .query_row(
                    "SELECT project_id FROM feedback WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(|e| sql_err(&self.at, e))?;
            if owner != f.project_id {
                return Err(StoreError::invalid(
                    format!("{at}.id"),
                    format!("feedback id {id} is taken"),
                ));
            }
        }
        self.touch_project(&f.project_id);
        Ok(FeedbackCreateRes {
            id,
            created_at,
            wb_user_id,
            payload: f.payload.clone(),
        })
    }
}

struct FeedbackFields;

impl Fields for FeedbackFields {
    fn field(&self, path: &str, sql: &mut Sql, at: &str) -> Result<String> {
        if COLUMNS.contains(&path) && path != "payload" {
            return Ok(path.to_string());
        }
        let mut segs = path.split('.');
        if segs.next() == Some("payload") {
            let rest: Vec<&str> = segs.collect();
            let p = json_path(&rest, path, at)?;
            return Ok(format!("json_extract(payload, {})", sql.param(p)));
        }
        Err(StoreError::invalid(
            at,
            format!(
                "unknown feedback field `{path}`: expected one of {}, or payload.<path>",
                COLUMNS.join(", ")
            ),
        ))
    }
}

fn row_map(row: &Row<'_>, at: &Location, fields: &[&str]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (i, f) in fields.iter().enumerate() {
        let v: Option<String> = row.get(i).map_err(|e| sql_err(at, e))?;
        let v = match (*f, v) {
            ("payload", Some(t)) => {
                serde_json::from_str(&t).map_err(|e| json_err(at, "feedback payload", e))?
            }
            (_, Some(t)) => Value::String(t),
            (_, None) => Value::Null,
        };
        m.insert(f.to_string(), v);
    }
    Ok(m)
}

/// The SQL of a feedback query and the fields it returns (request errors come from here).
fn build_query(req: &FeedbackQueryReq) -> Result<(Vec<&'static str>, Sql)> {
    check_project(&req.project_id, "project_id")?;
    let fields: Vec<&str> = match &req.fields {
        None => COLUMNS.to_vec(),
        Some(fs) => {
            let mut out = Vec::new();
            for (i, f) in fs.iter().enumerate() {
                match COLUMNS.iter().find(|c| **c == f.as_str()) {
                    Some(c) => out.push(*c),
                    None => {
                        return Err(StoreError::invalid(
                            format!("fields[{i}]"),
                            format!("unknown feedback field `{f}`"),
                        ))
                    }
                }
            }
            out
        }
    };
    let mut sql = Sql::new(format!("SELECT {} FROM feedback", fields.join(", ")));
    let p = sql.param(req.project_id.clone());
    sql.push(&format!(" WHERE project_id = {p}"));
    if let Some(q) = &req.query {
        let cond = query::compile(&q.expr, &FeedbackFields, &mut sql, "query")?;
        sql.push(&format!(" AND {cond}"));
    }
    let default = [SortBy::asc("created_at")];
    let order = query::order_by(
        req.sort_by.as_deref().unwrap_or(&default),
        &FeedbackFields,
        &mut sql,
        "sort_by",
    )?;
    sql.push(&order);
    query::limit_offset(req.limit, req.offset, &mut sql);
    Ok((fields, sql))
}

/// Checks a feedback query without running it (the ClickHouse store validates with it).
#[cfg(feature = "clickhouse")]
pub(crate) fn check_query(req: &FeedbackQueryReq) -> Result<()> {
    build_query(req).map(drop)
}

pub(crate) fn feedback_query(
    conn: &Connection,
    at: &Location,
    req: &FeedbackQueryReq,
) -> Result<FeedbackQueryRes> {
    let (fields, sql) = build_query(req)?;
    let mut st = conn.prepare(&sql.text).map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(|e| sql_err(at, e))?;
    let mut result = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sql_err(at, e))? {
        result.push(row_map(row, at, &fields)?);
    }
    Ok(FeedbackQueryRes { result })
}

/// The feedback on one ref, oldest first, as JSON objects (for `include_feedback`).
pub(crate) fn feedback_for_ref(
    conn: &Connection,
    at: &Location,
    project_id: &str,
    weave_ref: &str,
) -> Result<Vec<Value>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {} FROM feedback WHERE project_id = ?1 AND weave_ref = ?2 ORDER BY created_at, id",
            COLUMNS.join(", ")
        ))
        .map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(params![project_id, weave_ref])
        .map_err(|e| sql_err(at, e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sql_err(at, e))? {
        out.push(Value::Object(row_map(row, at, &COLUMNS)?));
    }
    Ok(out)
}

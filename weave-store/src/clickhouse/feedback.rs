//! Feedback rows in ClickHouse: created with the client's id (a retried create adds
//! nothing), queried with Weave's `$expr` over the feedback columns (decided in Rust with
//! SQLite's semantics), and attached to calls for `include_feedback`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weave_types::query::{SortBy, SortDirection};
use weave_types::*;

use super::conn::Sql;
use super::eval::{self, Aff, Fields, Val};
use super::Inner;
use crate::error::{Result, StoreError};
use crate::sqlite::feedback::COLUMNS;

/// One row of `feedback`.
#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct FeedbackRow {
    project_id: String,
    weave_ref: String,
    id: String,
    creator: Option<String>,
    wb_user_id: String,
    created_at: i64,
    feedback_type: String,
    payload: String,
    annotation_ref: Option<String>,
    runnable_ref: Option<String>,
    call_ref: Option<String>,
    trigger_ref: Option<String>,
}

/// A feedback row with its payload parsed.
struct Parsed {
    row: FeedbackRow,
    payload: Value,
}

impl FeedbackRow {
    fn column(&self, c: &str) -> Option<String> {
        match c {
            "id" => Some(self.id.clone()),
            "project_id" => Some(self.project_id.clone()),
            "weave_ref" => Some(self.weave_ref.clone()),
            "creator" => self.creator.clone(),
            "wb_user_id" => Some(self.wb_user_id.clone()),
            "created_at" => Some(weave_types::time::format_micros(self.created_at)),
            "feedback_type" => Some(self.feedback_type.clone()),
            "payload" => Some(self.payload.clone()),
            "annotation_ref" => self.annotation_ref.clone(),
            "runnable_ref" => self.runnable_ref.clone(),
            "call_ref" => self.call_ref.clone(),
            "trigger_ref" => self.trigger_ref.clone(),
            _ => None,
        }
    }
}

impl Fields for Parsed {
    fn field(&self, path: &str) -> Val {
        if COLUMNS.contains(&path) && path != "payload" {
            return Val::text_col(self.row.column(path).as_deref());
        }
        let rest: Vec<&str> = path.split('.').skip(1).collect();
        Val {
            v: eval::json_extract(Some(&self.payload), &rest),
            aff: Aff::None,
        }
    }
}

impl Parsed {
    fn new(row: FeedbackRow, at: &str) -> Result<Parsed> {
        let payload = serde_json::from_str(&row.payload).map_err(|e| StoreError::Backend {
            store: at.to_string(),
            source: format!("stored JSON of feedback payload is invalid: {e}").into(),
        })?;
        Ok(Parsed { row, payload })
    }

    /// The row as `SqliteStore` answers it: the chosen columns, payload as JSON.
    fn to_map(&self, fields: &[&str]) -> Map<String, Value> {
        let mut m = Map::new();
        for f in fields {
            let v = if *f == "payload" {
                self.payload.clone()
            } else {
                self.row.column(f).map_or(Value::Null, Value::String)
            };
            m.insert(f.to_string(), v);
        }
        m
    }
}

const SELECT: &str = "SELECT project_id, weave_ref, id, creator, wb_user_id, created_at, \
    feedback_type, payload, annotation_ref, runnable_ref, call_ref, trigger_ref FROM feedback";

/// Rows of a query, one per id (a race of two replicas may have stored an id twice: the
/// earliest counts).
async fn fetch(s: &Inner, sql: &Sql) -> Result<Vec<Parsed>> {
    let rows: Vec<FeedbackRow> = s.conn.fetch_all(sql).await?;
    let mut best: HashMap<String, FeedbackRow> = HashMap::new();
    for r in rows {
        match best.get(&r.id) {
            Some(b) if b.created_at <= r.created_at => {}
            _ => {
                best.insert(r.id.clone(), r);
            }
        }
    }
    best.into_values()
        .map(|r| Parsed::new(r, &s.conn.at))
        .collect()
}

/// Creates feedback rows, all or none; a retried id in the same project adds nothing.
pub(crate) async fn create(
    s: &Inner,
    batch: &[FeedbackCreateReq],
    at: impl Fn(usize) -> String,
) -> Result<Vec<FeedbackCreateRes>> {
    let now = super::now_micros();
    let mut rows = Vec::new();
    let mut res = Vec::new();
    for (i, f) in batch.iter().enumerate() {
        let at = at(i);
        crate::sqlite::check_project(&f.project_id, &format!("{at}.project_id"))?;
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
        let wb_user_id = f.wb_user_id.clone().unwrap_or_default();
        rows.push((
            at,
            FeedbackRow {
                project_id: f.project_id.clone(),
                weave_ref: f.weave_ref.clone(),
                id: id.clone(),
                creator: f.creator.clone(),
                wb_user_id: wb_user_id.clone(),
                created_at: now,
                feedback_type: f.feedback_type.clone(),
                payload: Value::Object(f.payload.clone()).to_string(),
                annotation_ref: f.annotation_ref.clone(),
                runnable_ref: f.runnable_ref.clone(),
                call_ref: f.call_ref.clone(),
                trigger_ref: f.trigger_ref.clone(),
            },
        ));
        res.push(FeedbackCreateRes {
            id,
            created_at: weave_types::time::format_micros(now),
            wb_user_id,
            payload: f.payload.clone(),
        });
    }
    // Ids already taken: by this project (a retry, nothing to add) or another (refused).
    let ids: Vec<String> = rows.iter().map(|(_, r)| r.id.clone()).collect();
    let mut owners: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(1000) {
        #[derive(clickhouse::Row, Deserialize)]
        struct Owner {
            id: String,
            project_id: String,
        }
        let mut sql = Sql::new("SELECT id, project_id FROM feedback WHERE ");
        sql.in_list("id", chunk);
        let found: Vec<Owner> = s.conn.fetch_all(&sql).await?;
        for o in found {
            owners.insert(o.id, o.project_id);
        }
    }
    let mut fresh = Vec::new();
    let mut seen = HashSet::new();
    for (at, r) in rows {
        match owners.get(&r.id) {
            Some(p) if *p != r.project_id => {
                return Err(StoreError::invalid(
                    format!("{at}.id"),
                    format!("feedback id {} is taken", r.id),
                ))
            }
            Some(_) => {}
            None => {
                if seen.insert(r.id.clone()) {
                    fresh.push(r);
                } else if fresh
                    .iter()
                    .any(|x| x.id == r.id && x.project_id != r.project_id)
                {
                    return Err(StoreError::invalid(
                        format!("{at}.id"),
                        format!("feedback id {} is taken", r.id),
                    ));
                }
            }
        }
    }
    s.conn.insert("feedback", &fresh).await?;
    let projects: Vec<String> = batch.iter().map(|f| f.project_id.clone()).collect();
    s.touch_projects(&projects).await?;
    Ok(res)
}

/// `feedback/query`.
pub(crate) async fn query(s: &Inner, req: &FeedbackQueryReq) -> Result<FeedbackQueryRes> {
    crate::sqlite::feedback::check_query(req)?;
    let fields: Vec<&str> = match &req.fields {
        None => COLUMNS.to_vec(),
        Some(fs) => fs
            .iter()
            .filter_map(|f| COLUMNS.iter().find(|c| **c == f.as_str()).copied())
            .collect(),
    };
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE project_id = ").arg(&req.project_id);
    let mut rows = fetch(s, &sql).await?;
    if let Some(q) = &req.query {
        rows.retain(|r| eval::matches(&q.expr, r));
    }
    let default = [SortBy::asc("created_at")];
    let sort = req.sort_by.as_deref().unwrap_or(&default);
    let tie = sort.last().is_some_and(|k| k.field != "id");
    rows.sort_by(|a, b| {
        for k in sort {
            let o = eval::compare(&a.field(&k.field).v, &b.field(&k.field).v);
            let o = if k.direction == SortDirection::Desc {
                o.reverse()
            } else {
                o
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        if tie {
            a.row.id.as_bytes().cmp(b.row.id.as_bytes())
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let rows = rows
        .into_iter()
        .skip(req.offset.unwrap_or(0).min(usize::MAX as u64) as usize)
        .take(
            req.limit
                .map_or(usize::MAX, |l| l.min(usize::MAX as u64) as usize),
        );
    Ok(FeedbackQueryRes {
        result: rows.map(|r| r.to_map(&fields)).collect(),
    })
}

/// Adds `summary.weave.feedback` (the feedback on each call, oldest first) to calls.
pub(crate) async fn attach(s: &Inner, project_id: &str, calls: &mut [CallSchema]) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let refs: Vec<String> = calls
        .iter()
        .map(|c| format!("weave:///{}/call/{}", c.project_id, c.id))
        .collect();
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE project_id = ")
        .arg(project_id)
        .push(" AND ")
        .in_list("weave_ref", &refs);
    let mut rows = fetch(s, &sql).await?;
    rows.sort_by(|a, b| {
        (a.row.created_at, a.row.id.as_bytes()).cmp(&(b.row.created_at, b.row.id.as_bytes()))
    });
    let mut by_ref: HashMap<String, Vec<Value>> = HashMap::new();
    for r in rows {
        by_ref
            .entry(r.row.weave_ref.clone())
            .or_default()
            .push(Value::Object(r.to_map(&COLUMNS)));
    }
    for (call, r) in calls.iter_mut().zip(refs) {
        let list = by_ref.remove(&r).unwrap_or_default();
        if let Some(Value::Object(w)) = call.summary.get_mut("weave") {
            w.insert("feedback".into(), Value::Array(list));
        }
    }
    Ok(())
}

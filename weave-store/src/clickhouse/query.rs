//! Calls queries in two phases. ClickHouse narrows the candidates with conditions that
//! every matching call's latest start part must meet: a range of the `call_keys` index (a
//! project's roots, a trace, a parent's children, an op), the filter's other fields, and the
//! simple `$expr` comparisons on start columns. Then the candidates' parts are merged
//! (`super::calls`) and the whole filter, `$expr` and sort are decided by [`super::eval`],
//! with SQLite's semantics. Sorting by `started_at` (the default, and the traces page)
//! streams: ClickHouse orders the start parts, and each call is emitted at its latest
//! start's position. Counts without `$expr` are merged and counted in ClickHouse.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::Value;
use weave_types::query::{Expr, SortBy, SortDirection};
use weave_types::*;

use super::calls::{fetch_rows, CallRow, Heavy, PartStream, FETCH_CHUNK};
use super::conn::Sql;
use super::eval::{self, Fields, V};
use super::Inner;
use crate::error::{Result, StoreError};

/// Start parts per phase-one page after the first.
const PAGE: u64 = 10_000;

// --- filters -----------------------------------------------------------------------------

/// Start columns that are plain text: a condition on one of them holds for a merged call
/// only if it holds for its latest start part, so ClickHouse can pre-select by it.
const START_TEXT: [&str; 8] = [
    "id",
    "op_name",
    "trace_id",
    "parent_id",
    "thread_id",
    "turn_id",
    "wb_user_id",
    "wb_run_id",
];

/// `op LIKE '<prefix>:%' ESCAPE '\'` as SQLite has it: ASCII case-insensitive prefix.
fn op_prefix_matches(op: &str, prefix: &str) -> bool {
    let want: Vec<char> = prefix.chars().chain(std::iter::once(':')).collect();
    let mut it = op.chars();
    want.iter()
        .all(|w| it.next().is_some_and(|c| c.eq_ignore_ascii_case(w)))
}

/// Whether a merged call passes a `CallsFilter` (the SQL of `SqliteStore`, in Rust).
fn filter_matches(f: &CallsFilter, row: &CallRow) -> bool {
    if let Some(ops) = &f.op_names {
        let Some(op) = &row.op_name else {
            return false;
        };
        let hit = ops.iter().any(|o| match o.strip_suffix(":*") {
            Some(prefix) => op_prefix_matches(op, prefix),
            None => op == o,
        });
        if !hit {
            return false;
        }
    }
    for (have, want) in [
        (&row.input_refs, &f.input_refs),
        (&row.output_refs, &f.output_refs),
    ] {
        if let Some(want) = want {
            if !have.iter().any(|r| want.contains(r)) {
                return false;
            }
        }
    }
    for (col, ids) in [
        (Some(&row.id), &f.call_ids),
        (row.parent_id.as_ref(), &f.parent_ids),
        (row.trace_id.as_ref(), &f.trace_ids),
        (row.thread_id.as_ref(), &f.thread_ids),
        (row.turn_id.as_ref(), &f.turn_ids),
        (row.wb_user_id.as_ref(), &f.wb_user_ids),
        (row.wb_run_id.as_ref(), &f.wb_run_ids),
    ] {
        if let Some(ids) = ids {
            if !col.is_some_and(|c| ids.contains(c)) {
                return false;
            }
        }
    }
    if f.trace_roots_only == Some(true) && row.parent_id.is_some() {
        return false;
    }
    true
}

/// The `$expr` conjuncts ClickHouse can pre-select start parts by (each a condition that a
/// matching call's latest start part meets), appended to `sql` as ` AND ...`.
fn push_expr(e: &Expr, sql: &mut Sql) {
    match e {
        Expr::And(items) => items.iter().for_each(|i| push_expr(i, sql)),
        Expr::Eq(ab) => {
            let (f, lit) = match (&ab.0, &ab.1) {
                (Expr::GetField(f), Expr::Literal(l)) | (Expr::Literal(l), Expr::GetField(f)) => {
                    (f, l)
                }
                _ => return,
            };
            if !START_TEXT.contains(&f.as_str()) {
                return;
            }
            // The column has TEXT affinity: numbers compare as their text.
            match eval::literal(lit) {
                V::Null => {
                    sql.push(" AND isNull(").push(f).push(")");
                }
                V::Text(s) => {
                    sql.push(" AND ").push(f).push(" = ").arg(&s);
                }
                V::Int(i) => {
                    sql.push(" AND ").push(f).push(" = ").arg(&i.to_string());
                }
                V::Real(_) => {}
            }
        }
        Expr::In(b) => {
            let (a, list) = &**b;
            let Expr::GetField(f) = a else { return };
            if !START_TEXT.contains(&f.as_str()) {
                return;
            }
            let mut values = Vec::new();
            for item in list {
                match item {
                    Expr::Literal(l) => match eval::literal(l) {
                        V::Null => {}
                        V::Text(s) => values.push(s),
                        V::Int(i) => values.push(i.to_string()),
                        V::Real(_) => return,
                    },
                    _ => return,
                }
            }
            sql.push(" AND ").in_list(f, &values);
        }
        Expr::Gt(ab) | Expr::Gte(ab) | Expr::Lt(ab) | Expr::Lte(ab) => {
            let (op, flipped) = match e {
                Expr::Gt(_) => (">", "<"),
                Expr::Gte(_) => (">=", "<="),
                Expr::Lt(_) => ("<", ">"),
                _ => ("<=", ">="),
            };
            let (op, lit) = match (&ab.0, &ab.1) {
                (Expr::GetField(f), Expr::Literal(l)) if f == "started_at" => (op, l),
                (Expr::Literal(l), Expr::GetField(f)) if f == "started_at" => (flipped, l),
                _ => return,
            };
            // Stored times are canonical text, whose order is time order: a canonical
            // literal compares the same as microseconds.
            let Value::String(s) = lit else { return };
            if !weave_types::time::is_canonical(s) {
                return;
            }
            let Ok(m) = weave_types::time::parse_micros(s) else {
                return;
            };
            if weave_types::time::format_micros(m) != *s {
                return;
            }
            sql.push(" AND started_at ").push(op).push(" ").int(m);
        }
        Expr::Contains(c) => {
            let Expr::GetField(f) = &c.input else { return };
            let Expr::Literal(Value::String(s)) = &c.substr else {
                return;
            };
            if !START_TEXT.contains(&f.as_str()) {
                return;
            }
            // Unicode case folding finds everything SQLite's ASCII folding does (and more).
            let func = if c.case_insensitive {
                "positionCaseInsensitiveUTF8("
            } else {
                "position("
            };
            sql.push(" AND ")
                .push(func)
                .push(f)
                .push(", ")
                .arg(s)
                .push(") > 0");
        }
        _ => {}
    }
}

/// Which JSON columns an expression or sort key reads.
fn heavy_of_field(path: &str, h: &mut Heavy) {
    let col = path.split('.').next().unwrap_or("");
    if (path.contains('.') || matches!(col, "inputs" | "output" | "attributes" | "summary"))
        && !path.starts_with("summary.weave.")
    {
        h.set(col);
    }
}

fn heavy_of_expr(e: &Expr, h: &mut Heavy) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| heavy_of_expr(x, h)),
        Expr::Not((x,)) => heavy_of_expr(x, h),
        Expr::Eq(ab) | Expr::Gt(ab) | Expr::Gte(ab) | Expr::Lt(ab) | Expr::Lte(ab) => {
            heavy_of_expr(&ab.0, h);
            heavy_of_expr(&ab.1, h);
        }
        Expr::In(b) => {
            heavy_of_expr(&b.0, h);
            b.1.iter().for_each(|x| heavy_of_expr(x, h));
        }
        Expr::Contains(c) => {
            heavy_of_expr(&c.input, h);
            heavy_of_expr(&c.substr, h);
        }
        Expr::Convert(c) => heavy_of_expr(&c.input, h),
        Expr::GetField(p) => heavy_of_field(p, h),
        Expr::Literal(_) => {}
    }
}

/// How results are ordered.
#[derive(Debug, Clone)]
enum Order {
    /// `started_at` (then `id`, the same way): streamed in ClickHouse's order of start parts.
    Started { desc: bool },
    /// By id (an empty sort list): streamed in the table's order.
    Id,
    /// Any other keys: every match is ranked here.
    Keys(Vec<SortBy>),
}

/// A condition on one key of `call_keys` (the index of start parts by trace, parent and
/// op): some keys exactly, or key prefixes.
#[derive(Debug, Clone)]
struct KeyCond {
    /// 1: trace id, 2: parent id (`''` for roots), 3: lower-case op name.
    kind: i64,
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl KeyCond {
    fn sql(&self, sql: &mut Sql) {
        sql.push(" AND kind = ").int(self.kind).push(" AND (0");
        if !self.exact.is_empty() {
            sql.push(" OR ").in_list("key", &self.exact);
        }
        for p in &self.prefixes {
            // All keys starting with `p` (which ends with `:`): [p, p with `;` for `:`).
            let upper = format!("{};", &p[..p.len() - 1]);
            sql.push(" OR (key >= ")
                .arg(p)
                .push(" AND key < ")
                .arg(&upper)
                .push(")");
        }
        sql.push(")");
    }
}

/// A calls query, planned.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    project_id: String,
    /// The index condition phase one starts from, if any.
    key: Option<KeyCond>,
    /// ` AND ...` conditions on start parts (besides `key`).
    push: Sql,
    /// ` AND ...` conditions on end parts (their ids must be among the results').
    end_push: Sql,
    filter: Option<CallsFilter>,
    query: Option<Expr>,
    order: Order,
    /// JSON columns the filter and sort read.
    heavy_filter: Heavy,
    /// JSON columns the answer shows.
    heavy_out: Heavy,
    columns: Option<Vec<String>>,
    include_feedback: bool,
    offset: u64,
    limit: Option<u64>,
}

impl Plan {
    pub(crate) fn new(
        project_id: &str,
        filter: Option<&CallsFilter>,
        query: Option<&Query>,
        sort: Option<&[SortBy]>,
    ) -> Plan {
        let mut push = Sql::default();
        let mut end_push = Sql::default();
        let mut key = None;
        if let Some(f) = filter {
            // One indexed condition becomes the key (the most selective kind first); the
            // others are checked on the start parts.
            let mut keys: Vec<(KeyCond, Sql)> = Vec::new();
            for (kind, ids) in [(1, &f.trace_ids), (2, &f.parent_ids)] {
                if let Some(ids) = ids {
                    let col = if kind == 1 { "trace_id" } else { "parent_id" };
                    let mut s = Sql::default();
                    s.push(" AND ").in_list(col, ids);
                    keys.push((
                        KeyCond {
                            kind,
                            exact: ids.clone(),
                            prefixes: Vec::new(),
                        },
                        s,
                    ));
                }
            }
            if let Some(ops) = &f.op_names {
                let mut s = Sql::default();
                let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
                s.push(" AND (0");
                for op in ops {
                    match op.strip_suffix(":*") {
                        Some(prefix) => {
                            let p = format!("{}:", prefix.to_ascii_lowercase());
                            s.push(" OR startsWith(lower(op_name), ").arg(&p).push(")");
                            prefixes.push(p);
                        }
                        None => exact.push(op.clone()),
                    }
                }
                if !exact.is_empty() {
                    s.push(" OR ").in_list("op_name", &exact);
                }
                s.push(")");
                let lower = exact.iter().map(|e| e.to_ascii_lowercase()).collect();
                keys.push((
                    KeyCond {
                        kind: 3,
                        exact: lower,
                        prefixes,
                    },
                    s,
                ));
            }
            if f.trace_roots_only == Some(true) {
                let mut s = Sql::default();
                s.push(" AND isNull(parent_id)");
                keys.push((
                    KeyCond {
                        kind: 2,
                        exact: vec![String::new()],
                        prefixes: Vec::new(),
                    },
                    s,
                ));
            }
            let mut keys = keys.into_iter();
            if let Some((k, _)) = keys.next() {
                key = Some(k);
            }
            for (_, s) in keys {
                push.append(&s);
            }
            if let Some(refs) = &f.input_refs {
                push.push(" AND hasAny(input_refs, ").strs(refs).push(")");
            }
            if let Some(refs) = &f.output_refs {
                end_push
                    .push(" AND hasAny(output_refs, ")
                    .strs(refs)
                    .push(")");
            }
            for (col, ids) in [
                ("id", &f.call_ids),
                ("thread_id", &f.thread_ids),
                ("turn_id", &f.turn_ids),
                ("wb_user_id", &f.wb_user_ids),
                ("wb_run_id", &f.wb_run_ids),
            ] {
                if let Some(ids) = ids {
                    push.push(" AND ").in_list(col, ids);
                }
            }
        }
        let mut heavy_filter = Heavy::NONE;
        if let Some(q) = query {
            push_expr(&q.expr, &mut push);
            heavy_of_expr(&q.expr, &mut heavy_filter);
        }
        let default = [SortBy::asc("started_at")];
        let sort = sort.unwrap_or(&default);
        let order = match sort {
            [] => Order::Id,
            [s] if s.field == "started_at" => Order::Started {
                desc: s.direction == SortDirection::Desc,
            },
            keys => {
                for k in keys {
                    heavy_of_field(&k.field, &mut heavy_filter);
                }
                Order::Keys(keys.to_vec())
            }
        };
        Plan {
            project_id: project_id.to_string(),
            key,
            push,
            end_push,
            filter: filter.cloned(),
            query: query.map(|q| q.expr.clone()),
            order,
            heavy_filter,
            heavy_out: Heavy::ALL,
            columns: None,
            include_feedback: false,
            offset: 0,
            limit: None,
        }
    }

    /// The plan of a `calls/stream_query`.
    pub(crate) fn for_query(req: &CallsQueryReq) -> Plan {
        let mut p = Plan::new(
            &req.project_id,
            req.filter.as_ref(),
            req.query.as_ref(),
            req.sort_by.as_deref(),
        );
        if let Some(cols) = &req.columns {
            let mut h = Heavy::NONE;
            for c in cols {
                h.set(c);
            }
            p.heavy_out = h;
        }
        p.columns = req.columns.clone();
        p.include_feedback = req.include_feedback;
        p.offset = req.offset.unwrap_or(0);
        p.limit = req.limit;
        p
    }

    /// Whether a merged call is an answer.
    fn matches(&self, row: &CallRow) -> bool {
        row.listed()
            && self.filter.as_ref().is_none_or(|f| filter_matches(f, row))
            && self.query.as_ref().is_none_or(|q| eval::matches(q, row))
    }

    /// `... FROM ... WHERE` the candidates' start parts, with columns `started_at` and `id`:
    /// from the index when there is a key condition, else from the project's start parts;
    /// either way meeting every pushed-down condition.
    fn candidates(&self, sql: &mut Sql) {
        match &self.key {
            Some(k) => {
                sql.push(" FROM call_keys WHERE project_id = ")
                    .arg(&self.project_id);
                k.sql(sql);
                if !self.push.is_empty() {
                    sql.push(" AND id IN (SELECT id FROM call_parts WHERE project_id = ")
                        .arg(&self.project_id)
                        .push(" AND part IN (1, 3)")
                        .append(&self.push)
                        .push(")");
                }
            }
            None => {
                sql.push(" FROM call_parts WHERE project_id = ")
                    .arg(&self.project_id)
                    .push(" AND part IN (1, 3)")
                    .append(&self.push);
            }
        }
        if !self.end_push.is_empty() {
            sql.push(" AND id IN (SELECT id FROM call_parts WHERE project_id = ")
                .arg(&self.project_id)
                .push(" AND part IN (2, 3)")
                .append(&self.end_push)
                .push(")");
        }
    }

    fn narrows(&self) -> bool {
        self.key.is_some() || !self.push.is_empty() || !self.end_push.is_empty()
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct StartKey {
    /// `started_at` (aliased: an alias named like a column would hide it in `WHERE`).
    at: i64,
    id: String,
}

/// Streams a plan's candidates, merged, in id order, with the JSON columns `heavy`.
fn stream_by_id(s: &Inner, plan: &Plan, heavy: Heavy) -> Result<PartStream> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {} FROM call_parts WHERE project_id = ",
        heavy.select()
    ))
    .arg(&plan.project_id);
    if plan.narrows() {
        let mut sub = Sql::new("SELECT id");
        plan.candidates(&mut sub);
        sql.push(" AND id IN (").append(&sub).push(")");
    }
    sql.push(" ORDER BY id, written_at, part");
    Ok(PartStream {
        cursor: s.conn.fetch(&sql)?,
        carry: None,
        done: false,
    })
}

enum State {
    Started {
        desc: bool,
        /// Position after the last start part read.
        after: Option<(i64, String)>,
        exhausted: bool,
        queue: VecDeque<(i64, String)>,
    },
    Id(Box<PartStream>),
    /// Ranked ids, to fetch and emit in order.
    Ranked(VecDeque<String>),
}

/// A running calls query: yields batches of answers.
pub(crate) struct CallCursor {
    plan: Plan,
    state: State,
    skipped: u64,
    emitted: u64,
    done: bool,
}

impl CallCursor {
    /// Starts a query (the first ClickHouse request runs here, so that an unreachable
    /// store is an error of the query, not of its stream).
    pub(crate) async fn start(s: &Inner, plan: Plan) -> Result<CallCursor> {
        let state = match &plan.order {
            Order::Started { desc } => State::Started {
                desc: *desc,
                after: None,
                exhausted: false,
                queue: VecDeque::new(),
            },
            Order::Id => State::Id(Box::new(stream_by_id(
                s,
                &plan,
                plan.heavy_filter.union(plan.heavy_out),
            )?)),
            Order::Keys(keys) => {
                let mut stream = stream_by_id(s, &plan, plan.heavy_filter)?;
                let mut ranked: Vec<(Vec<V>, String)> = Vec::new();
                while let Some(row) = stream.next(&s.conn.at).await? {
                    if plan.matches(&row) {
                        let k = keys.iter().map(|k| row.field(&k.field).v).collect();
                        ranked.push((k, row.id.clone()));
                    }
                }
                // The id breaks ties in the direction of the last key (as in SQLite), so
                // that a descending list is the ascending one reversed.
                let tie = keys.last().filter(|k| k.field != "id").map(|k| k.direction);
                ranked.sort_by(|(ka, ia), (kb, ib)| {
                    for (i, k) in keys.iter().enumerate() {
                        let o = eval::compare(&ka[i], &kb[i]);
                        let o = if k.direction == SortDirection::Desc {
                            o.reverse()
                        } else {
                            o
                        };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    match tie {
                        Some(SortDirection::Desc) => ib.cmp(ia),
                        Some(_) => ia.cmp(ib),
                        None => std::cmp::Ordering::Equal,
                    }
                });
                let from = plan.offset.min(ranked.len() as u64) as usize;
                let to = match plan.limit {
                    Some(l) => (from as u64).saturating_add(l).min(ranked.len() as u64) as usize,
                    None => ranked.len(),
                };
                State::Ranked(ranked.drain(from..to).map(|(_, id)| id).collect())
            }
        };
        let mut c = CallCursor {
            plan,
            state,
            skipped: 0,
            emitted: 0,
            done: false,
        };
        if matches!(c.state, State::Ranked(_)) {
            // Offset and limit were applied when ranking.
            c.skipped = c.plan.offset;
        }
        if let State::Started { .. } = c.state {
            c.fill_started(s).await?;
        }
        Ok(c)
    }

    fn limit_reached(&self) -> bool {
        self.plan.limit.is_some_and(|l| self.emitted >= l)
    }

    /// Reads the next page of start parts (Started order).
    async fn fill_started(&mut self, s: &Inner) -> Result<()> {
        let State::Started {
            desc,
            after,
            exhausted,
            queue,
        } = &mut self.state
        else {
            return Ok(());
        };
        if *exhausted || !queue.is_empty() {
            return Ok(());
        }
        let page = if after.is_none() {
            match self.plan.limit {
                Some(l) => (self.plan.offset.saturating_add(l))
                    .saturating_mul(2)
                    .clamp(64, PAGE),
                None => PAGE,
            }
        } else {
            PAGE
        };
        let mut sql = Sql::new("SELECT assumeNotNull(started_at) AS at, id");
        self.plan.candidates(&mut sql);
        if let Some((k, id)) = after {
            let cmp = if *desc { "<" } else { ">" };
            sql.push(&format!(" AND (started_at {cmp} "))
                .int(*k)
                .push(" OR (started_at = ")
                .int(*k)
                .push(&format!(" AND id {cmp} "))
                .arg(id)
                .push("))");
        }
        let dir = if *desc { "DESC" } else { "ASC" };
        sql.push(&format!(" ORDER BY started_at {dir}, id {dir} LIMIT "))
            .int(page as i64);
        let keys: Vec<StartKey> = s.conn.fetch_all(&sql).await?;
        if (keys.len() as u64) < page {
            *exhausted = true;
        }
        if let Some(last) = keys.last() {
            *after = Some((last.at, last.id.clone()));
        }
        let mut prev: Option<(i64, String)> = None;
        for k in keys {
            let key = (k.at, k.id);
            if prev.as_ref() != Some(&key) {
                queue.push_back(key.clone());
                prev = Some(key);
            }
        }
        Ok(())
    }

    /// The next batch of answers; `None` when the query is done.
    pub(crate) async fn next_batch(&mut self, s: &Inner) -> Result<Option<Vec<CallSchema>>> {
        loop {
            if self.done || self.limit_reached() {
                self.done = true;
                return Ok(None);
            }
            let heavy = self.plan.heavy_filter.union(self.plan.heavy_out);
            let mut rows: Vec<CallRow> = Vec::new();
            match &mut self.state {
                State::Started { .. } => {
                    self.fill_started(s).await?;
                    let State::Started { queue, .. } = &mut self.state else {
                        unreachable!("state checked above")
                    };
                    if queue.is_empty() {
                        self.done = true;
                        return Ok(None);
                    }
                    let n = queue.len().min(FETCH_CHUNK);
                    let chunk: Vec<(i64, String)> = queue.drain(..n).collect();
                    let mut ids: Vec<String> = chunk.iter().map(|(_, id)| id.clone()).collect();
                    ids.sort();
                    ids.dedup();
                    let mut merged = fetch_rows(s, &self.plan.project_id, &ids, heavy).await?;
                    if merged.len() != ids.len() {
                        return Err(StoreError::Backend {
                            store: s.conn.at.to_string(),
                            source: format!(
                                "ClickHouse returned the parts of {} of {} calls it listed",
                                merged.len(),
                                ids.len()
                            )
                            .into(),
                        });
                    }
                    for (k, id) in chunk {
                        // A call is answered at the position of its latest start.
                        let at_latest = merged.get(&id).is_some_and(|r| r.started_at == Some(k));
                        if at_latest {
                            if let Some(r) = merged.remove(&id) {
                                rows.push(r);
                            }
                        }
                    }
                }
                State::Id(stream) => {
                    while rows.len() < FETCH_CHUNK {
                        match stream.next(&s.conn.at).await? {
                            Some(r) => rows.push(r),
                            None => break,
                        }
                    }
                    if rows.is_empty() {
                        self.done = true;
                        return Ok(None);
                    }
                }
                State::Ranked(ids) => {
                    if ids.is_empty() {
                        self.done = true;
                        return Ok(None);
                    }
                    let n = ids.len().min(FETCH_CHUNK);
                    let page: Vec<String> = ids.drain(..n).collect();
                    let mut merged = fetch_rows(s, &self.plan.project_id, &page, heavy).await?;
                    // Ranked rows matched already (and are re-checked below, as they may
                    // have changed since).
                    rows.extend(page.iter().filter_map(|id| merged.remove(id)));
                }
            }
            let mut out = Vec::new();
            for r in rows {
                if self.limit_reached() {
                    break;
                }
                if !self.plan.matches(&r) {
                    continue;
                }
                if self.skipped < self.plan.offset {
                    self.skipped += 1;
                    continue;
                }
                self.emitted += 1;
                out.push(r.to_call(self.plan.columns.as_deref()));
            }
            if out.is_empty() {
                continue;
            }
            if self.plan.include_feedback {
                super::feedback::attach(s, &self.plan.project_id, &mut out).await?;
            }
            return Ok(Some(out));
        }
    }
}

/// The merged start and end columns a filter reads, per call, in SQL: `s` is the latest
/// start part's `(parent_id, trace_id, op_name, thread_id, turn_id, wb_user_id, wb_run_id,
/// input_refs)`, `e` the latest end part's `(output_refs)` (tuples keep their NULLs, where
/// `argMax` alone would skip them), as `merge` takes them.
const MERGED_FILTER_COLUMNS: &str = "argMaxIf(tuple(parent_id, trace_id, op_name, thread_id, \
    turn_id, wb_user_id, wb_run_id, input_refs), tuple(written_at, part), part IN (1, 3)) AS s, \
    argMaxIf(tuple(output_refs), tuple(written_at, part), part IN (2, 3)) AS e, \
    countIf(part IN (1, 3)) AS starts, countIf(part = 5) AS deletes";

/// A `CallsFilter` on the merged columns of [`MERGED_FILTER_COLUMNS`], exactly as
/// `filter_matches` decides it.
fn merged_filter(f: &CallsFilter, sql: &mut Sql) {
    if let Some(ops) = &f.op_names {
        let exact: Vec<String> = ops.iter().filter(|o| !o.ends_with(":*")).cloned().collect();
        sql.push(" AND (0");
        for op in ops {
            if let Some(prefix) = op.strip_suffix(":*") {
                let p = format!("{}:", prefix.to_ascii_lowercase());
                sql.push(" OR startsWith(lower(ifNull(tupleElement(s, 3), '')), ")
                    .arg(&p)
                    .push(")");
            }
        }
        if !exact.is_empty() {
            sql.push(" OR ").in_list("tupleElement(s, 3)", &exact);
        }
        sql.push(")");
    }
    if let Some(refs) = &f.input_refs {
        sql.push(" AND hasAny(tupleElement(s, 8), ")
            .strs(refs)
            .push(")");
    }
    if let Some(refs) = &f.output_refs {
        sql.push(" AND hasAny(tupleElement(e, 1), ")
            .strs(refs)
            .push(")");
    }
    for (col, ids) in [
        ("id", &f.call_ids),
        ("tupleElement(s, 1)", &f.parent_ids),
        ("tupleElement(s, 2)", &f.trace_ids),
        ("tupleElement(s, 4)", &f.thread_ids),
        ("tupleElement(s, 5)", &f.turn_ids),
        ("tupleElement(s, 6)", &f.wb_user_ids),
        ("tupleElement(s, 7)", &f.wb_run_ids),
    ] {
        if let Some(ids) = ids {
            sql.push(" AND ifNull(").in_list(col, ids).push(", 0)");
        }
    }
    if f.trace_roots_only == Some(true) {
        sql.push(" AND isNull(tupleElement(s, 1))");
    }
}

/// `calls/query_stats`: the number of matches (at most `limit`). Without `$expr`, ClickHouse
/// merges and counts (a filter is exact in SQL); with one, matches are decided here.
pub(crate) async fn count(s: &Inner, plan: &Plan, limit: Option<u64>) -> Result<u64> {
    if plan.query.is_none() {
        let mut sql = Sql::new("SELECT toUInt64(count()) AS n FROM (SELECT id, ");
        sql.push(MERGED_FILTER_COLUMNS)
            .push(" FROM call_parts WHERE project_id = ")
            .arg(&plan.project_id);
        if plan.narrows() {
            let mut sub = Sql::new("SELECT id");
            plan.candidates(&mut sub);
            sql.push(" AND id IN (").append(&sub).push(")");
        }
        sql.push(" GROUP BY id HAVING starts > 0 AND deletes = 0");
        if let Some(f) = &plan.filter {
            merged_filter(f, &mut sql);
        }
        if let Some(l) = limit {
            sql.push(" LIMIT ").int(l.min(i64::MAX as u64) as i64);
        }
        sql.push(")");
        #[derive(clickhouse::Row, Deserialize)]
        struct N {
            n: u64,
        }
        let n: Vec<N> = s.conn.fetch_all(&sql).await?;
        return Ok(n.first().map_or(0, |n| n.n));
    }
    let mut stream = stream_by_id(s, plan, plan.heavy_filter)?;
    let mut n = 0u64;
    while let Some(row) = stream.next(&s.conn.at).await? {
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        if plan.matches(&row) {
            n += 1;
        }
    }
    Ok(n)
}

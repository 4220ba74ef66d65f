//! Object versions (create, read by digest / `latest` / `v<N>`, query) and ref resolution.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use weave_types::query::{SortBy, SortDirection};
use weave_types::refs::Edge;
use weave_types::*;

use super::query::{limit_offset, Sql};
use super::{check_project, json_err, now, sql_err, Location, Writer};
use crate::error::{Result, StoreError};
use crate::refwalk::{self, Met};

const OBJ_COLS: &str = "project_id, object_id, created_at, deleted_at, digest, version_index, \
    is_latest, kind, base_object_class, leaf_object_class, wb_user_id, metadata, val";

fn obj_from_row(row: &Row<'_>, at: &Location, metadata_only: bool) -> Result<ObjSchema> {
    let g = |e: rusqlite::Error| sql_err(at, e);
    let object_id: String = row.get(1).map_err(g)?;
    let val = if metadata_only {
        Value::Null
    } else {
        let text: String = row.get(12).map_err(g)?;
        serde_json::from_str(&text).map_err(|e| json_err(at, &format!("object {object_id}"), e))?
    };
    Ok(ObjSchema {
        project_id: row.get(0).map_err(g)?,
        object_id,
        created_at: row.get(2).map_err(g)?,
        deleted_at: row.get(3).map_err(g)?,
        digest: row.get(4).map_err(g)?,
        version_index: row.get(5).map_err(g)?,
        is_latest: row.get(6).map_err(g)?,
        kind: row.get(7).map_err(g)?,
        base_object_class: row.get(8).map_err(g)?,
        leaf_object_class: row.get(9).map_err(g)?,
        wb_user_id: row.get(10).map_err(g)?,
        metadata: row
            .get::<_, Option<String>>(11)
            .map_err(g)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| json_err(at, "object metadata", e))?,
        val,
    })
}

/// Creates a version (or makes an existing identical one the latest) inside `tx`.
fn create(tx: &Connection, at: &Location, o: &ObjSchemaForInsert, digest: &str) -> Result<()> {
    let g = |e: rusqlite::Error| sql_err(at, e);
    let exists: Option<i64> = tx
        .prepare_cached(
            "SELECT is_latest FROM objects WHERE project_id = ?1 AND object_id = ?2 AND digest = ?3",
        )
        .and_then(|mut st| {
            st.query_row(params![o.project_id, o.object_id, digest], |r| r.get(0))
                .optional()
        })
        .map_err(g)?;
    let metadata = o.metadata.as_ref().map(Value::to_string);
    if exists.is_some() && metadata.is_some() {
        tx.prepare_cached(
            "UPDATE objects SET metadata = ?4 WHERE project_id = ?1 AND object_id = ?2 AND digest = ?3",
        )
        .and_then(|mut st| st.execute(params![o.project_id, o.object_id, digest, metadata]))
        .map_err(g)?;
    }
    if exists == Some(1) {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE objects SET is_latest = 0 WHERE project_id = ?1 AND object_id = ?2 AND is_latest = 1",
    )
    .and_then(|mut st| st.execute(params![o.project_id, o.object_id]))
    .map_err(g)?;
    if exists.is_some() {
        tx.prepare_cached(
            "UPDATE objects SET is_latest = 1 WHERE project_id = ?1 AND object_id = ?2 AND digest = ?3",
        )
        .and_then(|mut st| st.execute(params![o.project_id, o.object_id, digest]))
        .map_err(g)?;
        return Ok(());
    }
    let next: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(version_index) + 1, 0) FROM objects WHERE project_id = ?1 AND object_id = ?2",
        )
        .and_then(|mut st| st.query_row(params![o.project_id, o.object_id], |r| r.get(0)))
        .map_err(g)?;
    let (base, leaf) = weave_types::obj::object_classes(&o.val);
    tx.prepare_cached(
        "INSERT INTO objects (project_id, object_id, digest, kind, base_object_class,
            leaf_object_class, val, version_index, is_latest, created_at, wb_user_id, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10, ?11)",
    )
    .and_then(|mut st| {
        st.execute(params![
            o.project_id,
            o.object_id,
            digest,
            weave_types::obj::object_kind(&o.val),
            base,
            leaf,
            o.val.to_string(),
            next,
            now(),
            o.wb_user_id,
            metadata,
        ])
    })
    .map_err(g)?;
    Ok(())
}

impl Writer<'_> {
    /// Creates an object version; its digest is Weave's object digest of `val`.
    pub fn obj_create(&mut self, o: &ObjSchemaForInsert, at: &str) -> Result<ObjCreateRes> {
        let digest = crate::checks::object_digest(o, at)?;
        self.atomic(|tx, loc| create(tx, loc, o, &digest))?;
        self.touch_project(&o.project_id);
        Ok(ObjCreateRes {
            digest,
            object_id: Some(o.object_id.clone()),
        })
    }
}

fn read_one(
    conn: &Connection,
    at: &Location,
    project_id: &str,
    object_id: &str,
    digest: &str,
    metadata_only: bool,
) -> Result<Option<ObjSchema>> {
    let base = format!(
        "SELECT {OBJ_COLS} FROM objects WHERE project_id = ?1 AND object_id = ?2 AND deleted_at IS NULL"
    );
    let (sql, arg): (String, rusqlite::types::Value) = if digest == "latest" {
        (
            format!("{base} AND is_latest = 1 AND ?3 IS NOT NULL"),
            1i64.into(),
        )
    } else if let Some(n) = digest.strip_prefix('v').and_then(|n| n.parse::<i64>().ok()) {
        (format!("{base} AND version_index = ?3"), n.into())
    } else {
        (format!("{base} AND digest = ?3"), digest.to_string().into())
    };
    let mut st = conn.prepare_cached(&sql).map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(params![project_id, object_id, arg])
        .map_err(|e| sql_err(at, e))?;
    match rows.next().map_err(|e| sql_err(at, e))? {
        Some(row) => Ok(Some(obj_from_row(row, at, metadata_only)?)),
        None => Ok(None),
    }
}

pub(crate) fn obj_read(conn: &Connection, at: &Location, req: &ObjReadReq) -> Result<ObjReadRes> {
    check_project(&req.project_id, "project_id")?;
    read_one(
        conn,
        at,
        &req.project_id,
        &req.object_id,
        &req.digest,
        req.metadata_only,
    )?
    .map(|obj| ObjReadRes { obj })
    .ok_or_else(|| StoreError::not_found(format!("Obj {}:{}", req.object_id, req.digest)))
}

pub(crate) fn objs_query(
    conn: &Connection,
    at: &Location,
    req: &ObjQueryReq,
) -> Result<ObjQueryRes> {
    check_project(&req.project_id, "project_id")?;
    let mut sql = Sql::new(format!("SELECT {OBJ_COLS} FROM objects"));
    let p = sql.param(req.project_id.clone());
    sql.push(&format!(" WHERE project_id = {p} AND deleted_at IS NULL"));
    if let Some(f) = &req.filter {
        if let Some(v) = &f.base_object_classes {
            sql.and_in("base_object_class", v);
        }
        if let Some(v) = &f.exclude_base_object_classes {
            let ph = sql.param(serde_json::to_string(v).unwrap_or_default());
            sql.push(&format!(
                " AND (base_object_class IS NULL OR base_object_class NOT IN (SELECT value FROM json_each({ph})))"
            ));
        }
        if let Some(v) = &f.leaf_object_classes {
            sql.and_in("leaf_object_class", v);
        }
        if let Some(v) = &f.object_ids {
            sql.and_in("object_id", v);
        }
        match f.is_op {
            Some(true) => sql.push(" AND kind = 'op'"),
            Some(false) => sql.push(" AND kind != 'op'"),
            None => {}
        }
        if f.latest_only == Some(true) {
            sql.push(" AND is_latest = 1");
        }
    }
    let default = [SortBy::asc("created_at"), SortBy::asc("version_index")];
    let sort = req.sort_by.as_deref().unwrap_or(&default);
    let mut keys = Vec::new();
    for (i, s) in sort.iter().enumerate() {
        if !matches!(
            s.field.as_str(),
            "object_id" | "created_at" | "version_index" | "digest"
        ) {
            return Err(StoreError::invalid(
                format!("sort_by[{i}].field"),
                format!(
                    "`{}`: objects sort by object_id, created_at, version_index or digest",
                    s.field
                ),
            ));
        }
        let dir = if s.direction == SortDirection::Desc {
            "DESC"
        } else {
            "ASC"
        };
        keys.push(format!("{} {dir}", s.field));
    }
    keys.push("object_id ASC, version_index ASC".into());
    sql.push(&format!(" ORDER BY {}", keys.join(", ")));
    limit_offset(req.limit, req.offset, &mut sql);
    let mut st = conn.prepare(&sql.text).map_err(|e| sql_err(at, e))?;
    let mut rows = st
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(|e| sql_err(at, e))?;
    let mut objs = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sql_err(at, e))? {
        objs.push(obj_from_row(row, at, req.metadata_only)?);
    }
    Ok(ObjQueryRes { objs })
}

/// The value a ref points at, following its extra path (and refs met along it, `depth`
/// refs deep so far).
fn resolve(
    conn: &Connection,
    at: &Location,
    uri: &str,
    field: &str,
    depth: usize,
) -> Result<Value> {
    let r = refwalk::readable(uri, field, depth)?;
    let obj = read_one(conn, at, &r.project_id(), &r.name, &r.digest, false)?
        .ok_or_else(|| StoreError::not_found(format!("Obj {}:{}", r.name, r.digest)))?;
    let mut cur = obj.val;
    // A table met on the path: the row digests it holds.
    let mut table: Option<(String, String)> = None;
    for (i, (edge, key)) in r.extra.iter().enumerate() {
        match refwalk::met(&cur, field)? {
            Met::Ref(inner) => cur = resolve(conn, at, &inner, field, depth + 1)?,
            Met::Table(p, d) => table = Some((p, d)),
            Met::Value => {}
        }
        cur = match edge {
            Edge::Id => {
                let missing = || refwalk::missing(uri, i, edge, key);
                let (tp, td) = table.take().ok_or_else(missing)?;
                let rows = super::tables::row_digests(conn, at, &tp, &td)?;
                if !rows.iter().any(|d| d == key) {
                    return Err(missing());
                }
                super::tables::row_val(conn, at, &tp, key)?.ok_or_else(missing)?
            }
            _ => refwalk::step_into(&cur, (edge, key), uri, i, field)?,
        };
    }
    Ok(cur)
}

pub(crate) fn refs_read_batch(
    conn: &Connection,
    at: &Location,
    req: &RefsReadBatchReq,
) -> Result<RefsReadBatchRes> {
    let vals = req
        .refs
        .iter()
        .enumerate()
        .map(|(i, uri)| resolve(conn, at, uri, &format!("refs[{i}]"), 0))
        .collect::<Result<Vec<_>>>()?;
    Ok(RefsReadBatchRes { vals })
}

//! Object versions in ClickHouse: one `objects` row per `obj/create` that changes
//! something. A version is a `(object_id, digest)`; its `created_at` is its first row's,
//! `version_index` its rank by first creation, and the latest version the one created (or
//! re-created) last. All three are computed when read, so replicas never coordinate.
//! Also ref resolution (`refs/read_batch`), which walks objects, tables and rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weave_types::query::SortDirection;
use weave_types::refs::Edge;
use weave_types::*;

use super::conn::Sql;
use super::Inner;
use crate::error::{Result, StoreError};
use crate::refwalk::{self, Met};

/// One row of `objects`.
#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct ObjectRow {
    project_id: String,
    object_id: String,
    digest: String,
    created_at: i64,
    kind: String,
    base_object_class: Option<String>,
    leaf_object_class: Option<String>,
    val: String,
    wb_user_id: Option<String>,
    metadata: Option<String>,
}

/// A version, aggregated over its rows.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct VersionRow {
    object_id: String,
    digest: String,
    first: i64,
    last: i64,
    kind: String,
    base_object_class: Option<String>,
    leaf_object_class: Option<String>,
    val: String,
    wb_user_id: Option<String>,
    metadata: Option<String>,
}

/// Versions of a project's objects (optionally only `object_ids`), with their index and
/// latest flag, as `ObjSchema`s.
async fn versions(
    s: &Inner,
    project_id: &str,
    object_ids: Option<&[String]>,
    with_val: bool,
) -> Result<Vec<ObjSchema>> {
    let val = if with_val { "any(val)" } else { "''" };
    let mut sql = Sql::new(&format!(
        "SELECT object_id, digest, min(created_at) AS first, max(created_at) AS last, \
         any(kind) AS kind, any(base_object_class) AS base_object_class, \
         any(leaf_object_class) AS leaf_object_class, {val} AS val, \
         any(wb_user_id) AS wb_user_id, argMax(metadata, created_at) AS metadata \
         FROM objects WHERE project_id = "
    ));
    sql.arg(project_id);
    if let Some(ids) = object_ids {
        sql.push(" AND ").in_list("object_id", ids);
    }
    sql.push(" GROUP BY object_id, digest");
    let rows: Vec<VersionRow> = s.conn.fetch_all(&sql).await?;
    let mut by_object: BTreeMap<String, Vec<VersionRow>> = BTreeMap::new();
    for r in rows {
        by_object.entry(r.object_id.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, mut vs) in by_object {
        vs.sort_by(|a, b| (a.first, &a.digest).cmp(&(b.first, &b.digest)));
        let latest = vs
            .iter()
            .max_by(|a, b| (a.last, &a.digest).cmp(&(b.last, &b.digest)))
            .map(|v| v.digest.clone());
        for (i, v) in vs.into_iter().enumerate() {
            let val = if with_val {
                serde_json::from_str(&v.val).map_err(|e| StoreError::Backend {
                    store: s.conn.at.to_string(),
                    source: format!("stored JSON of object {} is invalid: {e}", v.object_id).into(),
                })?
            } else {
                Value::Null
            };
            let metadata = v
                .metadata
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Backend {
                    store: s.conn.at.to_string(),
                    source: format!("stored metadata of object {} is invalid: {e}", v.object_id)
                        .into(),
                })?;
            out.push(ObjSchema {
                project_id: project_id.to_string(),
                is_latest: (latest.as_deref() == Some(v.digest.as_str())) as i64,
                object_id: v.object_id,
                created_at: weave_types::time::format_micros(v.first),
                deleted_at: None,
                digest: v.digest,
                version_index: i as i64,
                kind: v.kind,
                base_object_class: v.base_object_class,
                leaf_object_class: v.leaf_object_class,
                wb_user_id: v.wb_user_id,
                metadata,
                val,
            });
        }
    }
    Ok(out)
}

/// Creates a version, or makes an existing one the latest.
pub(crate) async fn create(s: &Inner, o: &ObjSchemaForInsert, at: &str) -> Result<ObjCreateRes> {
    let digest = crate::checks::object_digest(o, at)?;
    let existing = versions(
        s,
        &o.project_id,
        Some(std::slice::from_ref(&o.object_id)),
        false,
    )
    .await?;
    let already_latest = existing
        .iter()
        .any(|v| v.digest == digest && v.is_latest == 1);
    // Metadata is not hashed: an identical version created again with other metadata
    // takes it (a row more; the version's metadata is its last row's that has some).
    let new_metadata = o.metadata.as_ref().is_some_and(|m| {
        existing
            .iter()
            .find(|v| v.digest == digest)
            .is_none_or(|v| v.metadata.as_ref() != Some(m))
    });
    if !already_latest || new_metadata {
        let (base, leaf) = weave_types::obj::object_classes(&o.val);
        s.conn
            .insert(
                "objects",
                &[ObjectRow {
                    project_id: o.project_id.clone(),
                    object_id: o.object_id.clone(),
                    digest: digest.clone(),
                    created_at: super::now_micros(),
                    kind: weave_types::obj::object_kind(&o.val).to_string(),
                    base_object_class: base,
                    leaf_object_class: leaf,
                    val: o.val.to_string(),
                    wb_user_id: o.wb_user_id.clone(),
                    metadata: o.metadata.as_ref().map(Value::to_string),
                }],
            )
            .await?;
    }
    s.touch_projects(std::slice::from_ref(&o.project_id))
        .await?;
    Ok(ObjCreateRes {
        digest,
        object_id: Some(o.object_id.clone()),
    })
}

/// One version by digest, `latest` or `v<N>`.
async fn read_one(
    s: &Inner,
    project_id: &str,
    object_id: &str,
    digest: &str,
    metadata_only: bool,
) -> Result<Option<ObjSchema>> {
    let vs = versions(
        s,
        project_id,
        Some(&[object_id.to_string()]),
        !metadata_only,
    )
    .await?;
    let index = digest.strip_prefix('v').and_then(|n| n.parse::<i64>().ok());
    Ok(vs.into_iter().find(|v| {
        if digest == "latest" {
            v.is_latest == 1
        } else if let Some(n) = index {
            v.version_index == n
        } else {
            v.digest == digest
        }
    }))
}

pub(crate) async fn read(s: &Inner, req: &ObjReadReq) -> Result<ObjReadRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    read_one(
        s,
        &req.project_id,
        &req.object_id,
        &req.digest,
        req.metadata_only,
    )
    .await?
    .map(|obj| ObjReadRes { obj })
    .ok_or_else(|| StoreError::not_found(format!("Obj {}:{}", req.object_id, req.digest)))
}

pub(crate) async fn query(s: &Inner, req: &ObjQueryReq) -> Result<ObjQueryRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    let default = [
        weave_types::SortBy::asc("created_at"),
        weave_types::SortBy::asc("version_index"),
    ];
    let sort = req.sort_by.as_deref().unwrap_or(&default);
    for (i, k) in sort.iter().enumerate() {
        if !matches!(
            k.field.as_str(),
            "object_id" | "created_at" | "version_index" | "digest"
        ) {
            return Err(StoreError::invalid(
                format!("sort_by[{i}].field"),
                format!(
                    "`{}`: objects sort by object_id, created_at, version_index or digest",
                    k.field
                ),
            ));
        }
    }
    let f = req.filter.clone().unwrap_or_default();
    let mut objs = versions(
        s,
        &req.project_id,
        f.object_ids.as_deref(),
        !req.metadata_only,
    )
    .await?;
    objs.retain(|o| {
        let base = o.base_object_class.as_ref();
        f.base_object_classes
            .as_ref()
            .is_none_or(|v| base.is_some_and(|b| v.contains(b)))
            && f.exclude_base_object_classes
                .as_ref()
                .is_none_or(|v| base.is_none_or(|b| !v.contains(b)))
            && f.leaf_object_classes
                .as_ref()
                .is_none_or(|v| o.leaf_object_class.as_ref().is_some_and(|l| v.contains(l)))
            && f.is_op.is_none_or(|op| (o.kind == "op") == op)
            && (f.latest_only != Some(true) || o.is_latest == 1)
    });
    objs.sort_by(|a, b| {
        for k in sort {
            let o = match k.field.as_str() {
                "object_id" => a.object_id.cmp(&b.object_id),
                "created_at" => a.created_at.cmp(&b.created_at),
                "version_index" => a.version_index.cmp(&b.version_index),
                _ => a.digest.cmp(&b.digest),
            };
            let o = if k.direction == SortDirection::Desc {
                o.reverse()
            } else {
                o
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        (&a.object_id, a.version_index).cmp(&(&b.object_id, b.version_index))
    });
    let objs = objs
        .into_iter()
        .skip(req.offset.unwrap_or(0).min(usize::MAX as u64) as usize)
        .take(
            req.limit
                .map_or(usize::MAX, |l| l.min(usize::MAX as u64) as usize),
        )
        .collect();
    Ok(ObjQueryRes { objs })
}

/// The value a ref points at, following its extra path (and refs met along it, `depth`
/// refs deep so far).
async fn resolve(s: &Inner, uri: &str, field: &str, depth: usize) -> Result<Value> {
    let r = refwalk::readable(uri, field, depth)?;
    let obj = read_one(s, &r.project_id(), &r.name, &r.digest, false)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("Obj {}:{}", r.name, r.digest)))?;
    let mut cur = obj.val;
    let mut table: Option<(String, String)> = None;
    for (i, (edge, key)) in r.extra.iter().enumerate() {
        match refwalk::met(&cur, field)? {
            Met::Ref(inner) => cur = Box::pin(resolve(s, &inner, field, depth + 1)).await?,
            Met::Table(p, d) => table = Some((p, d)),
            Met::Value => {}
        }
        cur = match edge {
            Edge::Id => {
                let missing = || refwalk::missing(uri, i, edge, key);
                let (tp, td) = table.take().ok_or_else(missing)?;
                let rows = super::tables::row_digests(s, &tp, &td).await?;
                if !rows.iter().any(|d| d == key) {
                    return Err(missing());
                }
                super::tables::row_vals(s, &tp, std::slice::from_ref(key))
                    .await?
                    .remove(key)
                    .ok_or_else(missing)?
            }
            _ => refwalk::step_into(&cur, (edge, key), uri, i, field)?,
        };
    }
    Ok(cur)
}

pub(crate) async fn refs_read_batch(s: &Inner, req: &RefsReadBatchReq) -> Result<RefsReadBatchRes> {
    let mut vals = Vec::with_capacity(req.refs.len());
    for (i, uri) in req.refs.iter().enumerate() {
        vals.push(resolve(s, uri, &format!("refs[{i}]"), 0).await?);
    }
    Ok(RefsReadBatchRes { vals })
}

//! Tables, rows and files in ClickHouse, all content-addressed: a row once per digest, a
//! table as its list of row digests, file bytes under their digest. Rows are written
//! before the table that lists them, so a visible table always has its rows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weave_types::*;

use super::conn::Sql;
use super::Inner;
use crate::error::{Result, StoreError};

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct TableRow {
    project_id: String,
    digest: String,
    row_digests: Vec<String>,
    created_at: i64,
}

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct RowVal {
    project_id: String,
    digest: String,
    val: String,
}

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct FileRow {
    project_id: String,
    digest: String,
    #[serde(with = "serde_bytes")]
    content: Vec<u8>,
    created_at: i64,
}

/// Stores a table's rows and its row list.
pub(crate) async fn create(
    s: &Inner,
    t: &TableSchemaForInsert,
    at: &str,
) -> Result<TableCreateRes> {
    let (row_digests, digest) = crate::checks::table_digests(t, at)?;
    let mut distinct: HashMap<&str, &Value> = HashMap::new();
    for (d, v) in row_digests.iter().zip(&t.rows) {
        distinct.entry(d.as_str()).or_insert(v);
    }
    let rows: Vec<RowVal> = distinct
        .into_iter()
        .map(|(d, v)| RowVal {
            project_id: t.project_id.clone(),
            digest: d.to_string(),
            val: v.to_string(),
        })
        .collect();
    s.conn.insert("table_rows", &rows).await?;
    s.conn
        .insert(
            "tables",
            &[TableRow {
                project_id: t.project_id.clone(),
                digest: digest.clone(),
                row_digests: row_digests.clone(),
                created_at: super::now_micros(),
            }],
        )
        .await?;
    s.touch_projects(std::slice::from_ref(&t.project_id))
        .await?;
    Ok(TableCreateRes {
        digest,
        row_digests,
    })
}

/// Stores a table made of rows already stored in the project, by their digests.
pub(crate) async fn create_from_digests(
    s: &Inner,
    req: &TableCreateFromDigestsReq,
) -> Result<TableCreateFromDigestsRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    let digest = weave_types::digest::table_digest(&req.row_digests);
    if let Some(expected) = req.expected_digest.as_ref().filter(|e| **e != digest) {
        return Err(StoreError::DigestMismatch {
            expected: expected.clone(),
            actual: digest,
        });
    }
    let mut distinct = req.row_digests.clone();
    distinct.sort();
    distinct.dedup();
    let found = row_vals(s, &req.project_id, &distinct).await?;
    if let Some((i, d)) = req
        .row_digests
        .iter()
        .enumerate()
        .find(|(_, d)| !found.contains_key(*d))
    {
        return Err(StoreError::invalid(
            format!("row_digests[{i}]"),
            format!("no row with digest {d} was stored in {}", req.project_id),
        ));
    }
    s.conn
        .insert(
            "tables",
            &[TableRow {
                project_id: req.project_id.clone(),
                digest: digest.clone(),
                row_digests: req.row_digests.clone(),
                created_at: super::now_micros(),
            }],
        )
        .await?;
    s.touch_projects(std::slice::from_ref(&req.project_id))
        .await?;
    Ok(TableCreateFromDigestsRes { digest })
}

/// A table's row digests, in order.
pub(crate) async fn row_digests(s: &Inner, project_id: &str, digest: &str) -> Result<Vec<String>> {
    #[derive(clickhouse::Row, Deserialize)]
    struct Rows {
        row_digests: Vec<String>,
    }
    let mut sql = Sql::new("SELECT row_digests FROM tables WHERE project_id = ");
    sql.arg(project_id)
        .push(" AND digest = ")
        .arg(digest)
        .push(" LIMIT 1");
    let found: Vec<Rows> = s.conn.fetch_all(&sql).await?;
    found
        .into_iter()
        .next()
        .map(|r| r.row_digests)
        .ok_or_else(|| StoreError::not_found(format!("Table {digest}")))
}

/// The values of rows, by digest (missing rows are absent).
pub(crate) async fn row_vals(
    s: &Inner,
    project_id: &str,
    digests: &[String],
) -> Result<HashMap<String, Value>> {
    #[derive(clickhouse::Row, Deserialize)]
    struct DigestVal {
        digest: String,
        val: String,
    }
    let mut out = HashMap::new();
    for chunk in digests.chunks(1000) {
        let mut sql =
            Sql::new("SELECT digest, any(val) AS val FROM table_rows WHERE project_id = ");
        sql.arg(project_id)
            .push(" AND ")
            .in_list("digest", chunk)
            .push(" GROUP BY digest");
        let found: Vec<DigestVal> = s.conn.fetch_all(&sql).await?;
        for r in found {
            let v = serde_json::from_str(&r.val).map_err(|e| StoreError::Backend {
                store: s.conn.at.to_string(),
                source: format!("stored JSON of row {} is invalid: {e}", r.digest).into(),
            })?;
            out.insert(r.digest, v);
        }
    }
    Ok(out)
}

pub(crate) async fn query(s: &Inner, req: &TableQueryReq) -> Result<TableQueryRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    let all = row_digests(s, &req.project_id, &req.digest).await?;
    let wanted = req.filter.as_ref().and_then(|f| f.row_digests.as_ref());
    let picked: Vec<(usize, &String)> = all
        .iter()
        .enumerate()
        .filter(|(_, d)| wanted.is_none_or(|w| w.contains(d)))
        .skip(req.offset.unwrap_or(0).min(usize::MAX as u64) as usize)
        .take(
            req.limit
                .map_or(usize::MAX, |l| l.min(usize::MAX as u64) as usize),
        )
        .collect();
    let mut distinct: Vec<String> = picked.iter().map(|(_, d)| (*d).clone()).collect();
    distinct.sort();
    distinct.dedup();
    let vals = row_vals(s, &req.project_id, &distinct).await?;
    let mut rows = Vec::with_capacity(picked.len());
    for (i, d) in picked {
        let val = vals.get(d).cloned().ok_or_else(|| StoreError::Backend {
            store: s.conn.at.to_string(),
            source: format!("table {} lists row {d}, which is missing", req.digest).into(),
        })?;
        rows.push(TableRowSchema {
            digest: d.clone(),
            val,
            original_index: Some(i as u64),
        });
    }
    Ok(TableQueryRes { rows })
}

pub(crate) async fn query_stats(s: &Inner, req: &TableQueryStatsReq) -> Result<TableQueryStatsRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    let n = row_digests(s, &req.project_id, &req.digest).await?.len();
    Ok(TableQueryStatsRes { count: n as u64 })
}

pub(crate) async fn file_create(s: &Inner, f: &FileCreateReq) -> Result<FileCreateRes> {
    crate::sqlite::check_project(&f.project_id, "project_id")?;
    let digest = weave_types::digest::digest_bytes(&f.content);
    if let Some(expected) = f.expected_digest.as_ref().filter(|e| **e != digest) {
        return Err(StoreError::DigestMismatch {
            expected: expected.clone(),
            actual: digest,
        });
    }
    s.conn
        .insert(
            "files",
            &[FileRow {
                project_id: f.project_id.clone(),
                digest: digest.clone(),
                content: f.content.clone(),
                created_at: super::now_micros(),
            }],
        )
        .await?;
    s.touch_projects(std::slice::from_ref(&f.project_id))
        .await?;
    Ok(FileCreateRes { digest })
}

pub(crate) async fn file_content(
    s: &Inner,
    req: &FileContentReadReq,
) -> Result<FileContentReadRes> {
    crate::sqlite::check_project(&req.project_id, "project_id")?;
    #[derive(clickhouse::Row, Deserialize)]
    struct Content {
        #[serde(with = "serde_bytes")]
        content: Vec<u8>,
    }
    let mut sql = Sql::new("SELECT content FROM files WHERE project_id = ");
    sql.arg(&req.project_id)
        .push(" AND digest = ")
        .arg(&req.digest)
        .push(" LIMIT 1");
    let found: Vec<Content> = s.conn.fetch_all(&sql).await?;
    found
        .into_iter()
        .next()
        .map(|c| FileContentReadRes { content: c.content })
        .ok_or_else(|| StoreError::not_found(format!("File {}", req.digest)))
}

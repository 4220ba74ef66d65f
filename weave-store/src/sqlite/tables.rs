//! Tables (rows stored once per digest, a table is its list of row digests) and files
//! (bytes stored under their digest).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use weave_types::*;

use super::{check_project, json_err, now, sql_err, Location, Writer};
use crate::error::{Result, StoreError};

impl Writer<'_> {
    /// Stores a table's rows and its row list; returns the table and row digests.
    pub fn table_create(&mut self, t: &TableSchemaForInsert, at: &str) -> Result<TableCreateRes> {
        let (row_digests, digest) = crate::checks::table_digests(t, at)?;
        let created = now();
        self.atomic(|tx, loc| {
            let g = |e: rusqlite::Error| sql_err(loc, e);
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO table_rows (project_id, digest, val) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .map_err(g)?;
            for (d, v) in row_digests.iter().zip(&t.rows) {
                st.execute(params![t.project_id, d, v.to_string()])
                    .map_err(g)?;
            }
            tx.prepare_cached(
                "INSERT INTO tables (project_id, digest, row_digests, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    t.project_id,
                    digest,
                    serde_json::to_string(&row_digests).unwrap_or_default(),
                    created
                ])
            })
            .map_err(g)?;
            Ok(())
        })?;
        self.touch_project(&t.project_id);
        Ok(TableCreateRes {
            digest,
            row_digests,
        })
    }

    /// Stores a table made of rows already stored in the project, by their digests.
    pub fn table_create_from_digests(
        &mut self,
        req: &TableCreateFromDigestsReq,
    ) -> Result<TableCreateFromDigestsRes> {
        check_project(&req.project_id, "project_id")?;
        let digest = weave_types::digest::table_digest(&req.row_digests);
        if let Some(expected) = req.expected_digest.as_ref().filter(|e| **e != digest) {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let created = now();
        let project = &req.project_id;
        let row_digests = &req.row_digests;
        self.atomic(|tx, loc| {
            let g = |e: rusqlite::Error| sql_err(loc, e);
            let mut seen = std::collections::HashSet::new();
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM table_rows WHERE project_id = ?1 AND digest = ?2")
                .map_err(g)?;
            for (i, d) in row_digests.iter().enumerate() {
                if seen.insert(d.as_str())
                    && !exists.exists(params![project, d]).map_err(g)?
                {
                    return Err(StoreError::invalid(
                        format!("row_digests[{i}]"),
                        format!("no row with digest {d} was stored in {project}"),
                    ));
                }
            }
            tx.prepare_cached(
                "INSERT INTO tables (project_id, digest, row_digests, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    project,
                    digest,
                    serde_json::to_string(row_digests).unwrap_or_default(),
                    created
                ])
            })
            .map_err(g)?;
            Ok(())
        })?;
        self.touch_project(&req.project_id);
        Ok(TableCreateFromDigestsRes { digest })
    }

    /// Stores a file under its digest.
    pub fn file_create(&mut self, f: &FileCreateReq) -> Result<FileCreateRes> {
        check_project(&f.project_id, "project_id")?;
        let digest = weave_types::digest::digest_bytes(&f.content);
        if let Some(expected) = f.expected_digest.as_ref().filter(|e| **e != digest) {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        self.tx
            .prepare_cached(
                "INSERT INTO files (project_id, digest, content, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![f.project_id, digest, f.content, now()]))
            .map_err(|e| sql_err(&self.at, e))?;
        self.touch_project(&f.project_id);
        Ok(FileCreateRes { digest })
    }
}

/// A table's row digests, in order.
pub(crate) fn row_digests(
    conn: &Connection,
    at: &Location,
    project_id: &str,
    digest: &str,
) -> Result<Vec<String>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT row_digests FROM tables WHERE project_id = ?1 AND digest = ?2")
        .and_then(|mut st| {
            st.query_row(params![project_id, digest], |r| r.get(0))
                .optional()
        })
        .map_err(|e| sql_err(at, e))?;
    let text = text.ok_or_else(|| StoreError::not_found(format!("Table {digest}")))?;
    serde_json::from_str(&text).map_err(|e| json_err(at, &format!("table {digest}"), e))
}

/// One row's value.
pub(crate) fn row_val(
    conn: &Connection,
    at: &Location,
    project_id: &str,
    digest: &str,
) -> Result<Option<Value>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT val FROM table_rows WHERE project_id = ?1 AND digest = ?2")
        .and_then(|mut st| {
            st.query_row(params![project_id, digest], |r| r.get(0))
                .optional()
        })
        .map_err(|e| sql_err(at, e))?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| json_err(at, &format!("row {digest}"), e)))
        .transpose()
}

pub(crate) fn table_query(
    conn: &Connection,
    at: &Location,
    req: &TableQueryReq,
) -> Result<TableQueryRes> {
    check_project(&req.project_id, "project_id")?;
    let all = row_digests(conn, at, &req.project_id, &req.digest)?;
    let wanted = req.filter.as_ref().and_then(|f| f.row_digests.as_ref());
    let picked: Vec<(usize, &String)> = all
        .iter()
        .enumerate()
        .filter(|(_, d)| wanted.is_none_or(|w| w.contains(d)))
        .skip(req.offset.unwrap_or(0) as usize)
        .take(req.limit.map_or(usize::MAX, |l| l as usize))
        .collect();
    // Each distinct row once.
    let mut distinct: Vec<&String> = picked.iter().map(|(_, d)| *d).collect();
    distinct.sort();
    distinct.dedup();
    let mut vals: HashMap<String, Value> = HashMap::new();
    {
        let mut st = conn
            .prepare_cached(
                "SELECT digest, val FROM table_rows WHERE project_id = ?1 AND digest IN (SELECT value FROM json_each(?2))",
            )
            .map_err(|e| sql_err(at, e))?;
        let mut rows = st
            .query(params![
                req.project_id,
                serde_json::to_string(&distinct).unwrap_or_default()
            ])
            .map_err(|e| sql_err(at, e))?;
        while let Some(r) = rows.next().map_err(|e| sql_err(at, e))? {
            let d: String = r.get(0).map_err(|e| sql_err(at, e))?;
            let t: String = r.get(1).map_err(|e| sql_err(at, e))?;
            let v = serde_json::from_str(&t).map_err(|e| json_err(at, &format!("row {d}"), e))?;
            vals.insert(d, v);
        }
    }
    let mut rows = Vec::with_capacity(picked.len());
    for (i, d) in picked {
        let val = vals.get(d).cloned().ok_or_else(|| StoreError::Backend {
            store: at.to_string(),
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

pub(crate) fn table_query_stats(
    conn: &Connection,
    at: &Location,
    req: &TableQueryStatsReq,
) -> Result<TableQueryStatsRes> {
    check_project(&req.project_id, "project_id")?;
    let n = row_digests(conn, at, &req.project_id, &req.digest)?.len();
    Ok(TableQueryStatsRes { count: n as u64 })
}

pub(crate) fn file_content_read(
    conn: &Connection,
    at: &Location,
    req: &FileContentReadReq,
) -> Result<FileContentReadRes> {
    check_project(&req.project_id, "project_id")?;
    let content: Option<Vec<u8>> = conn
        .prepare_cached("SELECT content FROM files WHERE project_id = ?1 AND digest = ?2")
        .and_then(|mut st| {
            st.query_row(params![req.project_id, req.digest], |r| r.get(0))
                .optional()
        })
        .map_err(|e| sql_err(at, e))?;
    content
        .map(|content| FileContentReadRes { content })
        .ok_or_else(|| StoreError::not_found(format!("File {}", req.digest)))
}

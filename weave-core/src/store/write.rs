//! Writes done by the background writer, inside its batch transaction.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;

use crate::error::Error;

fn sql(e: rusqlite::Error) -> Error {
    Error::Store {
        path: "(writer)".into(),
        source: e,
    }
}

pub(crate) struct CallRow<'a> {
    pub(crate) id: &'a str,
    pub(crate) project_id: &'a str,
    pub(crate) op_name: &'a str,
    pub(crate) trace_id: &'a str,
    pub(crate) parent_id: Option<&'a str>,
    pub(crate) started_at: &'a str,
    pub(crate) inputs: &'a str,
    pub(crate) attributes: &'a str,
    /// Set when the call's end is known already.
    pub(crate) end: Option<CallEnd<'a>>,
}

/// The columns a call's end fills in.
pub(crate) struct CallEnd<'a> {
    pub(crate) ended_at: &'a str,
    pub(crate) output: &'a str,
    pub(crate) exception: Option<&'a str>,
    pub(crate) summary: &'a str,
}

pub(crate) fn insert_call(tx: &Transaction<'_>, c: &CallRow<'_>) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO calls (id, project_id, op_name, trace_id, parent_id, started_at, inputs, attributes,
                            ended_at, output, exception, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut st| {
        st.execute(params![
            c.id,
            c.project_id,
            c.op_name,
            c.trace_id,
            c.parent_id,
            c.started_at,
            c.inputs,
            c.attributes,
            c.end.as_ref().map(|e| e.ended_at),
            c.end.as_ref().map(|e| e.output),
            c.end.as_ref().and_then(|e| e.exception),
            c.end.as_ref().map(|e| e.summary),
        ])
    })
    .map(|_| ())
    .map_err(sql)
}

pub(crate) fn end_call(tx: &Transaction<'_>, id: &str, e: &CallEnd<'_>) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE calls SET ended_at = ?2, output = ?3, exception = ?4, summary = ?5 WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![id, e.ended_at, e.output, e.exception, e.summary]))
    .map(|_| ())
    .map_err(sql)
}

pub(crate) struct ObjectRow<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) digest: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) base_object_class: Option<&'a str>,
    pub(crate) val: &'a Value,
    pub(crate) created_at: &'a str,
}

/// Inserts a new version of an object (no-op when this digest exists) and moves the latest
/// pointer to it.
pub(crate) fn insert_object(tx: &Transaction<'_>, o: &ObjectRow<'_>) -> Result<(), Error> {
    let exists: Option<i64> = tx
        .prepare_cached(
            "SELECT version_index FROM objects WHERE project_id = ?1 AND object_id = ?2 AND digest = ?3",
        )
        .and_then(|mut st| {
            st.query_row(params![o.project_id, o.name, o.digest], |r| r.get(0))
                .optional()
        })
        .map_err(sql)?;
    if exists.is_some() {
        return Ok(());
    }
    let next: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(version_index) + 1, 0) FROM objects WHERE project_id = ?1 AND object_id = ?2",
        )
        .and_then(|mut st| st.query_row(params![o.project_id, o.name], |r| r.get(0)))
        .map_err(sql)?;
    tx.prepare_cached(
        "UPDATE objects SET is_latest = 0 WHERE project_id = ?1 AND object_id = ?2 AND is_latest = 1",
    )
    .and_then(|mut st| st.execute(params![o.project_id, o.name]))
    .map_err(sql)?;
    tx.prepare_cached(
        "INSERT INTO objects (project_id, object_id, digest, kind, base_object_class, val, version_index, is_latest, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)",
    )
    .and_then(|mut st| {
        st.execute(params![
            o.project_id,
            o.name,
            o.digest,
            o.kind,
            o.base_object_class,
            o.val.to_string(),
            next,
            o.created_at
        ])
    })
    .map(|_| ())
    .map_err(sql)
}

/// Stores a table's rows (deduplicated by row digest) and its row list.
pub(crate) fn insert_table(
    tx: &Transaction<'_>,
    project_id: &str,
    digest: &str,
    rows: &[(String, Value)],
    created_at: &str,
) -> Result<(), Error> {
    let mut st = tx
        .prepare_cached(
            "INSERT INTO table_rows (project_id, digest, val) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(sql)?;
    for (d, v) in rows {
        st.execute(params![project_id, d, v.to_string()])
            .map_err(sql)?;
    }
    let digests: Vec<&str> = rows.iter().map(|(d, _)| d.as_str()).collect();
    tx.prepare_cached(
        "INSERT INTO tables (project_id, digest, row_digests, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut st| {
        st.execute(params![
            project_id,
            digest,
            serde_json::to_string(&digests).unwrap_or_default(),
            created_at
        ])
    })
    .map(|_| ())
    .map_err(sql)
}

/// Merges `attrs` (a JSON object) into a call's attributes.
pub(crate) fn add_attributes(tx: &Transaction<'_>, id: &str, attrs: &str) -> Result<(), Error> {
    tx.prepare_cached("UPDATE calls SET attributes = json_patch(attributes, ?2) WHERE id = ?1")
        .and_then(|mut st| st.execute(params![id, attrs]))
        .map(|_| ())
        .map_err(sql)
}

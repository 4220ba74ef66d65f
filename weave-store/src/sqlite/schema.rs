//! Versioned schema migrations (`PRAGMA user_version`). Column names follow W&B Weave's trace
//! server, so that export is a rename-free copy.

use rusqlite::Connection;

use super::{sql_err, Location};
use crate::error::{Result, StoreError};

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: calls, objects, tables (weave round 1).
    "CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        op_name TEXT NOT NULL,
        display_name TEXT,
        trace_id TEXT NOT NULL,
        parent_id TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        inputs TEXT NOT NULL,
        output TEXT,
        exception TEXT,
        attributes TEXT NOT NULL,
        summary TEXT
    );
    CREATE INDEX calls_trace ON calls (trace_id, started_at);
    CREATE INDEX calls_parent ON calls (parent_id);
    CREATE INDEX calls_op ON calls (project_id, op_name);
    CREATE INDEX calls_started ON calls (project_id, started_at);
    CREATE TABLE objects (
        project_id TEXT NOT NULL,
        object_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        kind TEXT NOT NULL,
        base_object_class TEXT,
        val TEXT NOT NULL,
        version_index INTEGER NOT NULL,
        is_latest INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (project_id, object_id, digest)
    );
    CREATE INDEX objects_kind ON objects (project_id, kind, object_id);
    CREATE TABLE tables (
        project_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        row_digests TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (project_id, digest)
    );
    CREATE TABLE table_rows (
        project_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        val TEXT NOT NULL,
        PRIMARY KEY (project_id, digest)
    );",
    // 2: the trace-server interface. Calls keyed by (id, project_id) (the id first: it tells
    // keys apart at once, and serves id-prefix look-ups across projects), start and end columns
    // nullable (either may arrive first; a call is listed once its start is known), the
    // remaining Weave columns, the refs in inputs and output; object leaf classes; files,
    // feedback, and a list of projects.
    "CREATE TABLE calls_v2 (
        project_id TEXT NOT NULL,
        id TEXT NOT NULL,
        op_name TEXT,
        display_name TEXT,
        trace_id TEXT,
        parent_id TEXT,
        thread_id TEXT,
        turn_id TEXT,
        started_at TEXT,
        ended_at TEXT,
        inputs TEXT,
        input_refs TEXT,
        output TEXT,
        output_refs TEXT,
        exception TEXT,
        attributes TEXT,
        summary TEXT,
        otel_dump TEXT,
        wb_user_id TEXT,
        wb_run_id TEXT,
        wb_run_step INTEGER,
        wb_run_step_end INTEGER,
        deleted_at TEXT,
        PRIMARY KEY (id, project_id)
    );
    INSERT INTO calls_v2 (project_id, id, op_name, display_name, trace_id, parent_id, started_at,
                          ended_at, inputs, input_refs, output, output_refs, exception, attributes,
                          summary)
        SELECT project_id, id, op_name, display_name, trace_id, parent_id, started_at, ended_at,
               inputs,
               (SELECT json_group_array(value) FROM json_tree(calls.inputs)
                 WHERE type = 'text' AND value LIKE 'weave:///%'),
               output,
               (SELECT json_group_array(value) FROM json_tree(calls.output)
                 WHERE type = 'text' AND value LIKE 'weave:///%'),
               exception, attributes, summary
        FROM calls;
    UPDATE calls_v2 SET input_refs = NULL WHERE input_refs = '[]';
    UPDATE calls_v2 SET output_refs = NULL WHERE output_refs = '[]';
    DROP TABLE calls;
    ALTER TABLE calls_v2 RENAME TO calls;
    CREATE INDEX calls_started ON calls (project_id, started_at);
    CREATE INDEX calls_trace ON calls (trace_id, started_at);
    CREATE INDEX calls_parent ON calls (parent_id);
    CREATE INDEX calls_op ON calls (project_id, op_name);
    ALTER TABLE objects ADD COLUMN leaf_object_class TEXT;
    ALTER TABLE objects ADD COLUMN deleted_at TEXT;
    ALTER TABLE objects ADD COLUMN wb_user_id TEXT;
    ALTER TABLE objects ADD COLUMN metadata TEXT;
    UPDATE objects SET leaf_object_class = base_object_class WHERE kind != 'op';
    UPDATE objects SET base_object_class = NULL WHERE kind = 'op';
    CREATE TABLE files (
        project_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        content BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (project_id, digest)
    );
    CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        weave_ref TEXT NOT NULL,
        creator TEXT,
        wb_user_id TEXT,
        created_at TEXT NOT NULL,
        feedback_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        annotation_ref TEXT,
        runnable_ref TEXT,
        call_ref TEXT,
        trigger_ref TEXT
    );
    CREATE INDEX feedback_ref ON feedback (project_id, weave_ref);
    CREATE TABLE projects (
        project_id TEXT PRIMARY KEY
    );
    INSERT OR IGNORE INTO projects SELECT DISTINCT project_id FROM calls;
    INSERT OR IGNORE INTO projects SELECT DISTINCT project_id FROM objects;",
    // 3: roots leave the parent index (a traced program's calls are mostly roots: every
    // insert of one paid for an index entry no query reads; `parent_id = ?`, `IN` and joins
    // on it still use the index).
    "DROP INDEX calls_parent;
    CREATE INDEX calls_parent ON calls (parent_id) WHERE parent_id IS NOT NULL;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn version(conn: &Connection, at: &Location) -> Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                not_sqlite(at)
            }
            _ => sql_err(at, e),
        })
}

fn not_sqlite(at: &Location) -> StoreError {
    StoreError::Schema {
        store: at.to_string(),
        reason: "the file is not an SQLite database (corrupt or not a trace store)".into(),
    }
}

fn newer(at: &Location, v: i64) -> StoreError {
    StoreError::Schema {
        store: at.to_string(),
        reason: format!(
            "schema version {v} is newer than this weave understands ({SCHEMA_VERSION})"
        ),
    }
}

/// Checks that the file is empty or a weave store this build can write, returning its
/// schema version. Reads only.
pub(crate) fn check_writable(conn: &Connection, at: &Location) -> Result<i64> {
    let current = version(conn, at)?;
    if current > SCHEMA_VERSION {
        return Err(newer(at, current));
    }
    if current == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| sql_err(at, e))?;
        if tables > 0 {
            return Err(StoreError::Schema {
                store: at.to_string(),
                reason: "the file is an SQLite database but not a weave trace store".into(),
            });
        }
    }
    Ok(current)
}

/// Checks that the file is a weave store this build can read, returning its version.
pub(crate) fn check_readable(conn: &Connection, at: &Location) -> Result<i64> {
    let v = version(conn, at).map_err(|_| not_sqlite(at))?;
    if v == 0 {
        return Err(StoreError::Schema {
            store: at.to_string(),
            reason: "the file is not a weave trace store (no schema)".into(),
        });
    }
    if v > SCHEMA_VERSION {
        return Err(newer(at, v));
    }
    Ok(v)
}

/// Brings the schema up to date, in one transaction.
pub(crate) fn migrate(conn: &mut Connection, at: &Location) -> Result<()> {
    let current = check_writable(conn, at)?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(|e| sql_err(at, e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(|e| sql_err(at, e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| sql_err(at, e))?;
    }
    tx.commit().map_err(|e| sql_err(at, e))
}

//! Versioned schema migrations (`PRAGMA user_version`). Field names follow W&B Weave's trace
//! server so that export is a rename-free copy.

use super::Store;
use crate::error::Error;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: calls, objects, tables.
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
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn version(store: &Store) -> Result<i64, Error> {
    store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| store.err(e))
}

/// Checks that the file is empty or a weave store this build can write, returning its schema
/// version. Reads only.
pub(crate) fn check_writable(store: &Store) -> Result<i64, Error> {
    let current = version(store).map_err(|e| match e {
        Error::Store {
            path,
            source: rusqlite::Error::SqliteFailure(f, _),
        } if f.code == rusqlite::ErrorCode::NotADatabase => Error::Schema {
            path,
            reason: "the file is not an SQLite database (corrupt or not a trace store)".into(),
        },
        other => other,
    })?;
    if current > SCHEMA_VERSION {
        return Err(Error::Schema {
            path: store.path.clone(),
            reason: format!(
                "schema version {current} is newer than this weave understands ({SCHEMA_VERSION})"
            ),
        });
    }
    if current == 0 {
        let tables: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| store.err(e))?;
        if tables > 0 {
            return Err(Error::Schema {
                path: store.path.clone(),
                reason: "the file is an SQLite database but not a weave trace store".into(),
            });
        }
    }
    Ok(current)
}

pub(crate) fn migrate(store: &mut Store) -> Result<(), Error> {
    let current = check_writable(store)?;
    let path = store.path.clone();
    let tx = store.conn.transaction().map_err(|source| Error::Store {
        path: path.clone(),
        source,
    })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(|source| Error::Store {
            path: path.clone(),
            source,
        })?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|source| Error::Store {
                path: path.clone(),
                source,
            })?;
    }
    tx.commit().map_err(|source| Error::Store { path, source })
}

pub(crate) fn check_readable(store: &Store) -> Result<(), Error> {
    let v = version(store).map_err(|_| Error::Schema {
        path: store.path.clone(),
        reason: "the file is not an SQLite database (corrupt or not a trace store)".into(),
    })?;
    if v == 0 {
        return Err(Error::Schema {
            path: store.path.clone(),
            reason: "the file is not a weave trace store (no schema)".into(),
        });
    }
    if v > SCHEMA_VERSION {
        return Err(Error::Schema {
            path: store.path.clone(),
            reason: format!(
                "schema version {v} is newer than this weave understands ({SCHEMA_VERSION})"
            ),
        });
    }
    Ok(())
}

//! The health check a writer runs on a store it opens: SQLite's `quick_check` (every page
//! read, B-tree structure and records checked; indexes not matched against tables), so a
//! damaged file is refused at once, naming the file, rather than losing every later write.

use rusqlite::Connection;

use super::{sql_err, Location};
use crate::error::{Result, StoreError};

/// Problems listed in the error at most.
const MAX_PROBLEMS: usize = 5;

/// Fails with a [`StoreError::Schema`] naming the file when `quick_check` finds damage.
pub(crate) fn quick_check(conn: &Connection, at: &Location) -> Result<()> {
    let damaged = |reason: String| StoreError::Schema {
        store: at.to_string(),
        reason: format!(
            "the file is damaged ({reason}); move it aside (or restore a copy) and start again"
        ),
    };
    let mut st = conn
        .prepare(&format!("PRAGMA quick_check({MAX_PROBLEMS})"))
        .map_err(|e| damaged_or(at, e, &damaged))?;
    let problems: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged_or(at, e, &damaged))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(damaged(problems.join("; ")))
}

/// SQLite's "malformed"/"not a database" errors as damage, others as they are.
fn damaged_or(
    at: &Location,
    e: rusqlite::Error,
    damaged: &dyn Fn(String) -> StoreError,
) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            damaged(e.to_string())
        }
        _ => sql_err(at, e),
    }
}

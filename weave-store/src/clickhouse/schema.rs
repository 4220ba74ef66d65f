//! The ClickHouse schema and its versioned migrations (table `weave_schema`), written in the
//! SQL subset that ClickHouse 18.16 and current releases both accept: no `DateTime64`
//! (times are `Int64` microseconds), JSON as `String`, no `Map`/`Bool`/`JSON` types, no
//! `LowCardinality`, no `SimpleAggregateFunction`, no data-skipping indexes.
//!
//! Layout, in W&B Weave's manner:
//! - `call_parts`: every start, end, complete call, rename/attribute update and delete mark
//!   is one row ("part"), never updated; a call is all parts with its `(project_id, id)`,
//!   merged when read, in `written_at` order, with `SqliteStore`'s upsert rules. So a start
//!   and its end can arrive in any order, from any replica, any number of times. Ordered by
//!   `(project_id, id)`: call ids are UUIDv7 (time-ordered), so a project's calls are one
//!   range of the primary key, a trace's calls lie close together, and merging a page of
//!   calls reads a few small granules. No partitioning: every read is "this project, these
//!   ids", which the primary key prunes; time partitions would spread one call's parts over
//!   partitions without pruning anything.
//! - `objects`: one row per `obj/create`, ordered by `(project_id, object_id, digest)`;
//!   a version's `created_at` is its first row's, `latest` the digest created last, and
//!   `version_index` the order of first creation (computed when read: 18.16 has no
//!   window functions).
//! - `tables`, `table_rows`, `files`: content-addressed, `ReplacingMergeTree` by
//!   `(project_id, digest)` (duplicates are identical, merges drop them).
//! - `feedback`: ordered by `(project_id, weave_ref, id)`: the feedback on a call is a range.
//! - `projects`: the projects that have data.
//! - `call_keys` (schema 2): every start part once per key, `(kind, key)` = `(1, trace_id)`,
//!   `(2, parent_id or '' for a root)`, `(3, lower(op_name))`, ordered by
//!   `(project_id, kind, key, started_at, id)`, kept by a materialized view: a project's
//!   roots, a trace's calls, an evaluation's rows (its children) and an op's calls are each
//!   one range of it, already in time order. Queries take their candidates from it.
//! - schema 3 adds `objects.metadata` (JSON, not hashed; a version's is its last row's).
//!
//! In `SELECT`s, an alias must not reuse a column's name: 18.16 resolves the name in `WHERE`
//! to the alias (`assumeNotNull(started_at) AS started_at ... WHERE isNotNull(started_at)`
//! is always true there).

use super::conn::{ClickHouseOptions, Conn, Sql};
use crate::error::{Result, StoreError};

/// Each entry moves the schema from version `i` to `i + 1`; every statement is idempotent
/// (`IF NOT EXISTS`), so replicas starting together can both run it.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS call_parts (
        project_id String,
        id String,
        written_at Int64,
        part UInt8,
        op_name Nullable(String),
        display_name Nullable(String),
        trace_id Nullable(String),
        parent_id Nullable(String),
        thread_id Nullable(String),
        turn_id Nullable(String),
        started_at Nullable(Int64),
        inputs Nullable(String),
        input_refs Array(String),
        attributes Nullable(String),
        otel_dump Nullable(String),
        wb_user_id Nullable(String),
        wb_run_id Nullable(String),
        wb_run_step Nullable(Int64),
        ended_at Nullable(Int64),
        output Nullable(String),
        output_refs Array(String),
        exception Nullable(String),
        summary Nullable(String),
        summary_error UInt8,
        wb_run_step_end Nullable(Int64),
        deleted_at Nullable(Int64)
    ) ENGINE = MergeTree ORDER BY (project_id, id) SETTINGS index_granularity = 1024",
        "CREATE TABLE IF NOT EXISTS objects (
        project_id String,
        object_id String,
        digest String,
        created_at Int64,
        kind String,
        base_object_class Nullable(String),
        leaf_object_class Nullable(String),
        val String,
        wb_user_id Nullable(String)
    ) ENGINE = MergeTree ORDER BY (project_id, object_id, digest)",
        "CREATE TABLE IF NOT EXISTS tables (
        project_id String,
        digest String,
        row_digests Array(String),
        created_at Int64
    ) ENGINE = ReplacingMergeTree ORDER BY (project_id, digest)",
        "CREATE TABLE IF NOT EXISTS table_rows (
        project_id String,
        digest String,
        val String
    ) ENGINE = ReplacingMergeTree ORDER BY (project_id, digest)",
        "CREATE TABLE IF NOT EXISTS files (
        project_id String,
        digest String,
        content String,
        created_at Int64
    ) ENGINE = ReplacingMergeTree ORDER BY (project_id, digest)",
        "CREATE TABLE IF NOT EXISTS feedback (
        project_id String,
        weave_ref String,
        id String,
        creator Nullable(String),
        wb_user_id String,
        created_at Int64,
        feedback_type String,
        payload String,
        annotation_ref Nullable(String),
        runnable_ref Nullable(String),
        call_ref Nullable(String),
        trigger_ref Nullable(String)
    ) ENGINE = MergeTree ORDER BY (project_id, weave_ref, id)",
        "CREATE TABLE IF NOT EXISTS projects (
        project_id String
    ) ENGINE = ReplacingMergeTree ORDER BY project_id",
    ],
    &[
        // 2: `call_keys`, the start parts indexed by trace, parent and op, kept by a
        // materialized view, and filled from the parts already stored (a part indexed twice,
        // by the view and the fill, is harmless: keys only select candidates).
        "CREATE TABLE IF NOT EXISTS call_keys (
        project_id String,
        kind UInt8,
        key String,
        started_at Int64,
        id String
    ) ENGINE = MergeTree ORDER BY (project_id, kind, key, started_at, id)",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS call_keys_mv TO call_keys AS
        SELECT project_id, k.1 AS kind, k.2 AS key, assumeNotNull(started_at) AS started_at, id
        FROM call_parts
        ARRAY JOIN [(toUInt8(1), ifNull(trace_id, '')), (toUInt8(2), ifNull(parent_id, '')),
                    (toUInt8(3), lower(ifNull(op_name, '')))] AS k
        WHERE part IN (1, 3)",
        "INSERT INTO call_keys
        SELECT project_id, k.1 AS kind, k.2 AS key, assumeNotNull(started_at) AS started_at, id
        FROM call_parts
        ARRAY JOIN [(toUInt8(1), ifNull(trace_id, '')), (toUInt8(2), ifNull(parent_id, '')),
                    (toUInt8(3), lower(ifNull(op_name, '')))] AS k
        WHERE part IN (1, 3)",
    ],
    &[
        // 3: object versions keep metadata that is not hashed (where a Rust op's source is).
        // (18.16 has no `ADD COLUMN IF NOT EXISTS`: see `add_column`.)
        "ALTER TABLE objects ADD COLUMN metadata Nullable(String)",
    ],
];

/// The schema version this build writes.
pub const CLICKHOUSE_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Tables this schema creates (a database holding one of them without `weave_schema` was
/// not made by weave).
const OURS: &[&str] = &[
    "call_parts",
    "call_keys",
    "objects",
    "tables",
    "table_rows",
    "files",
    "feedback",
    "projects",
];

#[derive(clickhouse::Row, serde::Deserialize)]
struct Name {
    name: String,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Version {
    version: u32,
}

#[derive(clickhouse::Row, serde::Serialize)]
struct Applied {
    version: u32,
    applied_at: i64,
    weave_version: String,
}

fn schema_err(conn: &Conn, reason: String) -> StoreError {
    StoreError::Schema {
        store: conn.at.to_string(),
        reason,
    }
}

/// The schema version of the database (0: none).
pub(crate) async fn version(conn: &Conn, database: &str) -> Result<u32> {
    let mut q = Sql::new("SELECT name FROM system.tables WHERE database = ");
    q.arg(database);
    let tables: Vec<String> = conn
        .fetch_all::<Name>(&q)
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    if !tables.iter().any(|t| t == "weave_schema") {
        if let Some(t) = tables.iter().find(|t| OURS.contains(&t.as_str())) {
            return Err(schema_err(
                conn,
                format!(
                    "database `{database}` has a table `{t}` that weave did not create \
                     (no weave_schema table): use another database"
                ),
            ));
        }
        return Ok(0);
    }
    let v = conn
        .fetch_all::<Version>(&Sql::new(
            "SELECT toUInt32(max(version)) AS version FROM weave_schema",
        ))
        .await?;
    Ok(v.first().map_or(0, |v| v.version))
}

/// `(table, column)` of an `ALTER TABLE t ADD COLUMN c ...` statement.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("ALTER TABLE ")?;
    let (table, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("ADD COLUMN ")?;
    let (column, _) = rest.split_once(' ')?;
    Some((table, column))
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Count {
    n: u64,
}

async fn has_column(conn: &Conn, database: &str, table: &str, column: &str) -> Result<bool> {
    let mut q = Sql::new("SELECT count() AS n FROM system.columns WHERE database = ");
    q.arg(database)
        .push(" AND table = ")
        .arg(table)
        .push(" AND name = ")
        .arg(column);
    Ok(conn
        .fetch_all::<Count>(&q)
        .await?
        .first()
        .is_some_and(|c| c.n > 0))
}

/// Runs an `ADD COLUMN` statement unless the column exists: idempotent, as every migration
/// step must be, without `IF NOT EXISTS` (which 18.16 lacks). A replica that loses the race
/// to add it finds the column there afterwards.
async fn add_column(
    conn: &Conn,
    database: &str,
    table: &str,
    column: &str,
    statement: &str,
) -> Result<()> {
    if has_column(conn, database, table, column).await? {
        return Ok(());
    }
    match conn.execute(&Sql::new(statement)).await {
        Err(_) if has_column(conn, database, table, column).await? => Ok(()),
        r => r,
    }
}

/// Creates the database and brings its schema up to date; refuses a newer schema.
pub(crate) async fn migrate(opts: &ClickHouseOptions, conn: &Conn) -> Result<()> {
    migrate_to(opts, conn, CLICKHOUSE_SCHEMA_VERSION).await
}

/// Creates the database and brings its schema to version `target`.
async fn migrate_to(opts: &ClickHouseOptions, conn: &Conn, target: u32) -> Result<()> {
    let admin = Conn::new(opts, false);
    admin
        .execute(&Sql::new(&format!(
            "CREATE DATABASE IF NOT EXISTS `{}`",
            opts.database
        )))
        .await?;
    let current = version(conn, &opts.database).await?;
    if current > CLICKHOUSE_SCHEMA_VERSION {
        return Err(schema_err(
            conn,
            format!(
                "schema version {current} is newer than this weave understands \
                 ({CLICKHOUSE_SCHEMA_VERSION}): upgrade weave"
            ),
        ));
    }
    if current >= target {
        return Ok(());
    }
    conn.execute(&Sql::new(
        "CREATE TABLE IF NOT EXISTS weave_schema (
            version UInt32,
            applied_at Int64,
            weave_version String
        ) ENGINE = MergeTree ORDER BY version",
    ))
    .await?;
    for (i, statements) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        for s in *statements {
            if let Some((table, column)) = added_column(s) {
                add_column(conn, &opts.database, table, column, s).await?;
            } else {
                conn.execute(&Sql::new(s)).await?;
            }
        }
        conn.insert(
            "weave_schema",
            &[Applied {
                version: i as u32 + 1,
                applied_at: super::now_micros(),
                weave_version: env!("CARGO_PKG_VERSION").to_string(),
            }],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clickhouse::{calls, ClickHouseServer, ClickHouseStore};
    use crate::TraceStore;
    use weave_types::*;

    /// A database at schema 1 with calls in it: opening it upgrades it, and the calls
    /// stored before are found through the index schema 2 adds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn version_1_is_upgraded_with_its_calls_indexed() {
        let server = ClickHouseServer::start().unwrap();
        let opts = ClickHouseOptions::from_url(&server.store_url("old")).unwrap();
        let conn = Conn::new(&opts, true);
        migrate_to(&opts, &conn, 1).await.unwrap();
        assert_eq!(version(&conn, "old").await.unwrap(), 1);
        let mut part = calls::complete_part(
            &CompleteCallSchemaForInsert {
                project_id: "e/p".into(),
                id: "c1".into(),
                trace_id: "t1".into(),
                op_name: "weave:///e/p/op/f:d".into(),
                started_at: "2026-01-01T00:00:01Z".into(),
                ended_at: "2026-01-01T00:00:02Z".into(),
                ..Default::default()
            },
            "c",
        )
        .unwrap();
        part.written_at = 1;
        conn.insert("call_parts", &[part]).await.unwrap();

        let s: Arc<dyn TraceStore> = Arc::new(ClickHouseStore::open_with(opts).await.unwrap());
        assert_eq!(
            version(&conn, "old").await.unwrap(),
            CLICKHOUSE_SCHEMA_VERSION
        );
        for filter in [
            CallsFilter {
                trace_ids: Some(vec!["t1".into()]),
                ..Default::default()
            },
            CallsFilter {
                trace_roots_only: Some(true),
                ..Default::default()
            },
            CallsFilter {
                op_names: Some(vec!["weave:///e/p/op/f:*".into()]),
                ..Default::default()
            },
        ] {
            let got = s
                .calls_query_vec(CallsQueryReq {
                    project_id: "e/p".into(),
                    filter: Some(filter.clone()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(got.len(), 1, "{filter:?}");
        }
    }
}

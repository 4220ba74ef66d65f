//! Opening files: missing, foreign, corrupt, newer, and a round-1 (schema 1) store upgraded
//! with its data intact.

use rusqlite::Connection;
use serde_json::json;
use weave_store::types::*;
use weave_store::{SqliteStore, StoreError, TraceStore, SCHEMA_VERSION};

#[test]
fn missing_foreign_corrupt_and_newer_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.db");
    match SqliteStore::open(&missing) {
        Err(e @ StoreError::NotFound { .. }) => {
            assert!(e.to_string().contains("nothing-here.db"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!missing.exists(), "reading must not create a store");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    for r in [SqliteStore::open(&foreign), SqliteStore::create(&foreign)] {
        match r {
            Err(StoreError::Schema { store, reason }) => {
                assert!(store.ends_with("foreign.db"), "{store}");
                assert!(reason.contains("not a weave trace store"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let c = Connection::open(&foreign).unwrap();
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the foreign file was changed");

    let garbage = dir.path().join("garbage.db");
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &junk).unwrap();
    for r in [SqliteStore::open(&garbage), SqliteStore::create(&garbage)] {
        match r {
            Err(StoreError::Schema { reason, .. }) => {
                assert!(reason.contains("not an SQLite database"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(&garbage).unwrap(), junk);

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::create(&newer).unwrap());
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    for r in [SqliteStore::open(&newer), SqliteStore::create(&newer)] {
        match r {
            Err(StoreError::Schema { reason, .. }) => assert!(reason.contains("newer"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_round_one_store_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE calls (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, op_name TEXT NOT NULL,
                display_name TEXT, trace_id TEXT NOT NULL, parent_id TEXT, started_at TEXT NOT NULL,
                ended_at TEXT, inputs TEXT NOT NULL, output TEXT, exception TEXT,
                attributes TEXT NOT NULL, summary TEXT);
             CREATE TABLE objects (project_id TEXT NOT NULL, object_id TEXT NOT NULL, digest TEXT NOT NULL,
                kind TEXT NOT NULL, base_object_class TEXT, val TEXT NOT NULL, version_index INTEGER NOT NULL,
                is_latest INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
                PRIMARY KEY (project_id, object_id, digest));
             CREATE TABLE tables (project_id TEXT NOT NULL, digest TEXT NOT NULL, row_digests TEXT NOT NULL,
                created_at TEXT NOT NULL, PRIMARY KEY (project_id, digest));
             CREATE TABLE table_rows (project_id TEXT NOT NULL, digest TEXT NOT NULL, val TEXT NOT NULL,
                PRIMARY KEY (project_id, digest));
             PRAGMA user_version = 1;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO calls VALUES ('c1', 'e/p', 'weave:///e/p/op/f:d', NULL, 'c1', NULL,
                '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:01.000000Z',
                ?1, '3', NULL, '{\"weave\":{}}', '{\"status_counts\":{\"success\":1,\"error\":0}}')",
            [json!({"self": "weave:///e/p/object/M:abc", "n": 1}).to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO objects VALUES ('e/p', 'f', 'd', 'op', 'Op', '{\"_type\":\"Op\",\"code\":\"fn f() {}\"}', 0, 1,
                '2025-01-01T00:00:00.000000Z'),
                ('e/p', 'M', 'abc', 'object', 'Model', '{\"_type\":\"M\"}', 0, 1, '2025-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let v: i64 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(s.projects().await.unwrap(), vec!["e/p"]);
    let calls = s
        .calls_query_vec(CallsQueryReq {
            project_id: "e/p".into(),
            filter: Some(CallsFilter {
                input_refs: Some(vec!["weave:///e/p/object/M:abc".into()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].output, Some(json!(3)));
    assert_eq!(calls[0].summary["weave"]["status"], json!("success"));
    let ops = s
        .objs_query(ObjQueryReq {
            project_id: "e/p".into(),
            filter: Some(ObjectVersionFilter {
                is_op: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .objs;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].base_object_class, None);
    let m = s
        .obj_read(ObjReadReq {
            project_id: "e/p".into(),
            object_id: "M".into(),
            digest: "latest".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .obj;
    assert_eq!(m.leaf_object_class.as_deref(), Some("Model"));
    // New writes work on the upgraded file.
    s.call_end(CallEndReq {
        end: EndedCallSchemaForInsert {
            project_id: "e/p".into(),
            id: "c1".into(),
            ended_at: "2025-01-01T00:00:02Z".into(),
            output: json!(4),
            ..Default::default()
        },
    })
    .await
    .unwrap();
}

/// Schema 3: the parent index holds children only, and queries by parent still use it.
#[tokio::test]
async fn the_parent_index_leaves_roots_out_and_children_queries_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let s = SqliteStore::create(&path).unwrap();
    let call = |id: &str, parent: Option<&str>| CompleteCallSchemaForInsert {
        project_id: "e/p".into(),
        id: id.into(),
        trace_id: "r".into(),
        parent_id: parent.map(Into::into),
        op_name: "f".into(),
        started_at: format!("2025-01-01T00:00:0{}Z", id.len()),
        ended_at: "2025-01-01T00:00:09Z".into(),
        ..Default::default()
    };
    s.calls_complete(CallsCompleteReq {
        batch: vec![
            call("r", None),
            call("r2", None),
            call("c1", Some("r")),
            call("c22", Some("r")),
        ],
    })
    .await
    .unwrap();
    drop(s);
    // The same file as a schema 2 store would have it: all calls in the parent index.
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP INDEX calls_parent; CREATE INDEX calls_parent ON calls (parent_id);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let c = Connection::open(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let sql: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'calls_parent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("WHERE parent_id IS NOT NULL"), "{sql}");
    let entries: i64 = c
        .query_row(
            "SELECT count(*) FROM calls INDEXED BY calls_parent WHERE parent_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(entries, 2, "only the children are in the index");
    let plan: Vec<String> = c
        .prepare("EXPLAIN QUERY PLAN SELECT id FROM calls WHERE parent_id IN (SELECT value FROM json_each('[\"r\"]'))")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("USING INDEX calls_parent")),
        "{plan:?}"
    );
    let kids = s
        .calls_query_vec(CallsQueryReq {
            project_id: "e/p".into(),
            filter: Some(CallsFilter {
                parent_ids: Some(vec!["r".into()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = kids.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c22"]);
    let roots = s
        .calls_query_vec(CallsQueryReq {
            project_id: "e/p".into(),
            filter: Some(CallsFilter {
                trace_roots_only: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(roots.len(), 2);
}

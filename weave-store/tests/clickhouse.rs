//! `ClickHouseStore`: the conformance suite (`conformance/mod.rs`), each test on a
//! `clickhouse-server` of its own, and what only the ClickHouse store does.

mod common;
#[macro_use]
mod conformance;

conformance_tests!(common::clickhouse);

use std::sync::Arc;

use serde_json::json;
use weave_store::clickhouse::schema::CLICKHOUSE_SCHEMA_VERSION;
use weave_store::types::*;
use weave_store::{ClickHouseServer, ClickHouseStore, StoreError, TraceStore};

const P: &str = "ent/proj";

fn complete(id: &str, parent: Option<&str>) -> CompleteCallSchemaForInsert {
    CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        trace_id: "tr".into(),
        op_name: "weave:///ent/proj/op/f:d".into(),
        started_at: "2026-01-01T00:00:01.000000Z".into(),
        ended_at: "2026-01-01T00:00:02.000000Z".into(),
        parent_id: parent.map(str::to_string),
        inputs: json!({"x": id}).as_object().unwrap().clone(),
        output: json!({"y": id}),
        ..Default::default()
    }
}

fn all() -> CallsQueryReq {
    CallsQueryReq {
        project_id: P.into(),
        ..Default::default()
    }
}

/// Runs one SQL statement on the server's HTTP interface.
async fn sql(server: &ClickHouseServer, query: &str) -> String {
    let body = query.to_string();
    let url = server.http_url();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_created_once_and_a_newer_or_foreign_one_is_refused() {
    let server = ClickHouseServer::start().unwrap();
    let url = server.store_url("w");
    // Two replicas starting together on a fresh database.
    let (a, b) = tokio::join!(ClickHouseStore::open(&url), ClickHouseStore::open(&url));
    a.unwrap();
    b.unwrap();
    let again = ClickHouseStore::open(&url).await.unwrap();
    again
        .calls_complete(CallsCompleteReq {
            batch: vec![complete("a", None)],
        })
        .await
        .unwrap();
    assert_eq!(
        sql(&server, "SELECT max(version) FROM w.weave_schema").await,
        format!("{CLICKHOUSE_SCHEMA_VERSION}\n")
    );

    // A schema from a newer weave: refused, naming the versions, data untouched.
    sql(
        &server,
        "INSERT INTO w.weave_schema (version, applied_at, weave_version) VALUES (99, 0, 'future')",
    )
    .await;
    match ClickHouseStore::open(&url).await {
        Err(e @ StoreError::Schema { .. }) => {
            let m = e.to_string();
            assert!(m.contains("schema version 99 is newer"), "{m}");
            assert!(m.contains(&format!("({CLICKHOUSE_SCHEMA_VERSION})")), "{m}");
            assert!(m.contains("clickhouse://127.0.0.1:"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sql(&server, "SELECT count() FROM w.call_parts").await,
        "1\n"
    );

    // A database where someone else has a `tables` table: refused, nothing created.
    sql(&server, "CREATE DATABASE other").await;
    sql(
        &server,
        "CREATE TABLE other.tables (x UInt8) ENGINE = MergeTree ORDER BY x",
    )
    .await;
    match ClickHouseStore::open(&server.store_url("other")).await {
        Err(StoreError::Schema { reason, .. }) => {
            assert!(reason.contains("weave did not create"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sql(
            &server,
            "SELECT count() FROM system.tables WHERE database = 'other'"
        )
        .await,
        "1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_over_one_database_serve_the_same_data() {
    let server = ClickHouseServer::start().unwrap();
    let url = server.store_url("shared");
    let a: Arc<dyn TraceStore> = Arc::new(ClickHouseStore::open(&url).await.unwrap());
    let b: Arc<dyn TraceStore> = Arc::new(ClickHouseStore::open(&url).await.unwrap());
    // A start through one replica, its end through the other, in the wrong order.
    let (start, end) = complete("c", None).split();
    b.call_end(CallEndReq { end }).await.unwrap();
    a.call_start(CallStartReq { start }).await.unwrap();
    a.call_update(CallUpdateReq {
        project_id: P.into(),
        call_id: "c".into(),
        display_name: Some("renamed".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    for s in [&a, &b] {
        let got = s.calls_query_vec(all()).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].output, Some(json!({"y": "c"})));
        assert_eq!(got[0].display_name.as_deref(), Some("renamed"));
        assert_eq!(got[0].summary["weave"]["status"], json!("success"));
    }
    let v = b
        .obj_create(ObjCreateReq {
            obj: ObjSchemaForInsert {
                project_id: P.into(),
                object_id: "m".into(),
                val: json!({"a": 1}),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let read = a
        .obj_read(ObjReadReq {
            project_id: P.into(),
            object_id: "m".into(),
            digest: "latest".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read.obj.digest, v.digest);
    assert_eq!(a.projects().await.unwrap(), vec![P.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_and_duplicate_nothing() {
    let f = common::clickhouse().await;
    let s = f.store.clone();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..10 {
                let batch = (0..50)
                    .map(|i| complete(&format!("w{w:02}-b{b:02}-{i:03}"), None))
                    .collect();
                s.calls_complete(CallsCompleteReq { batch }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = s
        .calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .count;
    assert_eq!(n, 16 * 10 * 50);
    let calls = s.calls_query_vec(all()).await.unwrap();
    let mut ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 8000);
    assert!(calls.iter().all(|c| c.ended_at.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_clickhouse_is_unavailable_and_nothing_is_lost() {
    let mut f = common::clickhouse().await;
    let s = f.store.clone();
    s.calls_complete(CallsCompleteReq {
        batch: vec![complete("before", None)],
    })
    .await
    .unwrap();
    f.clickhouse().unwrap().stop();
    let e = s
        .calls_complete(CallsCompleteReq {
            batch: vec![complete("during", None)],
        })
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 503, "{e}");
    let m = e.to_string();
    assert!(m.contains("unavailable"), "{m}");
    assert!(m.contains("clickhouse://127.0.0.1:"), "{m}");
    match s.calls_query(all()).await {
        Err(e) => assert_eq!(e.http_status(), 503, "{e}"),
        Ok(_) => panic!("a query answered without ClickHouse"),
    }
    f.clickhouse().unwrap().restart().unwrap();
    // The client retries what failed.
    s.calls_complete(CallsCompleteReq {
        batch: vec![complete("during", None)],
    })
    .await
    .unwrap();
    let ids: Vec<String> = s
        .calls_query_vec(all())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["before", "during"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_url_or_the_environment() {
    let server = ClickHouseServer::start_with_user("weave", "s3cret p@ss").unwrap();
    let host = server.http_url().trim_start_matches("http://").to_string();
    let s = ClickHouseStore::open(&format!("clickhouse://weave:s3cret%20p%40ss@{host}/auth"))
        .await
        .unwrap();
    assert_eq!(s.location(), format!("clickhouse://weave@{host}/auth"));
    match ClickHouseStore::open(&format!("clickhouse://weave:wrong@{host}/auth")).await {
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains("wrong"), "the password leaked: {m}");
            assert!(m.to_lowercase().contains("password"), "{m}");
        }
        Ok(_) => panic!("a wrong password was accepted"),
    }
    // Not in the URL: from the environment (nextest runs each test in its own process).
    std::env::set_var(weave_store::clickhouse::USER_ENV, "weave");
    std::env::set_var(weave_store::clickhouse::PASSWORD_ENV, "s3cret p@ss");
    let s = ClickHouseStore::open(&format!("clickhouse://{host}/auth"))
        .await
        .unwrap();
    assert_eq!(s.location(), format!("clickhouse://weave@{host}/auth"));
    s.projects().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_and_binary_files_round_trip() {
    let f = common::clickhouse().await;
    let s = f.store.clone();
    let mut c = complete("big", None);
    let text: String = (0..2_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    c.inputs = json!({"text": text, "quote": "it's \\ \"odd\"\n\u{0}"})
        .as_object()
        .unwrap()
        .clone();
    s.calls_complete(CallsCompleteReq {
        batch: vec![c.clone()],
    })
    .await
    .unwrap();
    let got = s
        .call_read(CallReadReq {
            project_id: P.into(),
            id: "big".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .call
        .unwrap();
    assert_eq!(got.inputs, c.inputs);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let d = s
        .file_create(FileCreateReq {
            project_id: P.into(),
            name: "blob.bin".into(),
            content: bytes.clone(),
            expected_digest: None,
        })
        .await
        .unwrap()
        .digest;
    let back = s
        .file_content_read(FileContentReadReq {
            project_id: P.into(),
            digest: d,
        })
        .await
        .unwrap();
    assert_eq!(back.content, bytes);
}

#[test]
fn a_store_opened_without_a_runtime_works_on_another() {
    let server = ClickHouseServer::start().unwrap();
    let s = ClickHouseStore::open_blocking(&server.store_url("b")).unwrap();
    for _ in 0..2 {
        // Two runtimes in turn, as a test helper and then a test would.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            s.calls_complete(CallsCompleteReq {
                batch: vec![complete("x", None)],
            })
            .await
            .unwrap();
            assert_eq!(s.calls_query_vec(all()).await.unwrap().len(), 1);
        });
    }
}

/// A write whose runtime shuts down before the shared writer task first runs (a server killed
/// just as a request arrived): the writer task is dropped unpolled. The queue must be free for
/// the next writer, on another runtime, not wait forever for the dead task.
#[test]
fn a_writer_task_dropped_before_it_ran_frees_the_queue() {
    let server = ClickHouseServer::start().unwrap();
    let s = ClickHouseStore::open_blocking(&server.store_url("d")).unwrap();
    let dying = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    dying.block_on(async {
        let mut write = std::pin::pin!(s.calls_complete(CallsCompleteReq {
            batch: vec![complete("lost", None)],
        }));
        // One poll queues the parts and spawns the writer task; a current-thread runtime runs
        // that task only when this future yields to it, which it never does.
        assert!(futures::poll!(write.as_mut()).is_pending());
    });
    drop(dying);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let next = s.calls_complete(CallsCompleteReq {
            batch: vec![complete("next", None)],
        });
        tokio::time::timeout(std::time::Duration::from_secs(20), next)
            .await
            .expect("the next write waited for the dropped writer task")
            .unwrap();
        let ids: Vec<String> = s
            .calls_query_vec(all())
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["next"]);
    });
}

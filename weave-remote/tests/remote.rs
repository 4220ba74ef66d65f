//! The remote client against a real `weave serve` router on loopback: delivery of every kind
//! of record, batching, eager starts, a server that is down, killed and restarted, failing
//! every other batch, refusing a key, a batch or a record; gzip; digest rewriting.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use weave_remote::{Record, RemoteClient, RemoteConfig, RetryPolicy};
use weave_server::testing::{fresh_store, Background, TestStore};
use weave_server::{AppState, Limits};
use weave_store::TraceStore;
use weave_types::*;

const P: &str = "ent/proj";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn id(n: usize) -> String {
    format!("019a0000-0000-7000-8000-{n:012}")
}

fn ts(ms: u64) -> String {
    weave_types::time::format_micros(1_764_000_000_000_000 + ms as i64 * 1000)
}

fn complete(n: usize) -> Record {
    Record::Complete(CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id(n),
        trace_id: id(1_000_000 + n / 10),
        op_name: format!("weave:///{P}/op/work:abc"),
        started_at: ts(n as u64),
        ended_at: ts(n as u64 + 3),
        inputs: json!({"n": n}).as_object().unwrap().clone(),
        output: json!(n * 2),
        summary: json!({"status_counts": {"success": 1, "error": 0}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        ..Default::default()
    })
}

fn start(n: usize, op: &str) -> StartedCallSchemaForInsert {
    StartedCallSchemaForInsert {
        project_id: P.into(),
        id: Some(id(n)),
        trace_id: Some(id(n)),
        op_name: format!("weave:///{P}/op/{op}:abc"),
        started_at: ts(0),
        ..Default::default()
    }
}

fn end(n: usize) -> EndedCallSchemaForInsert {
    EndedCallSchemaForInsert {
        project_id: P.into(),
        id: id(n),
        ended_at: ts(50),
        output: json!("done"),
        ..Default::default()
    }
}

fn config(url: String) -> RemoteConfig {
    let mut c = RemoteConfig::new(url);
    c.retry = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    c.request_timeout = Duration::from_secs(10);
    c
}

fn calls(store: &Arc<dyn TraceStore>) -> Vec<CallSchema> {
    rt().block_on(store.calls_query_vec(CallsQueryReq {
        project_id: P.into(),
        ..Default::default()
    }))
    .unwrap()
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn serve(ts: &TestStore) -> Background {
    Background::store(ts.store.clone(), "127.0.0.1:0".parse().unwrap())
}

fn assert_each_once(store: &Arc<dyn TraceStore>, want: impl IntoIterator<Item = usize>) {
    let got = calls(store);
    let ids: HashSet<&str> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "a call stored twice");
    let want: HashSet<String> = want.into_iter().map(id).collect();
    let got: HashSet<String> = ids.into_iter().map(str::to_string).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "missing: {:?}",
        want.difference(&got).take(5).collect::<Vec<_>>()
    );
    assert_eq!(got, want);
}

#[test]
fn delivers_files_objects_tables_and_calls_in_batches() {
    let ts = fresh_store();
    let server = serve(&ts);
    let client = RemoteClient::start(config(server.url())).unwrap();
    let code = b"fn work() {}\n".to_vec();
    let file_digest = weave_types::digest::digest_bytes(&code);
    let op_val = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {"obj.py": file_digest}});
    let rows = vec![json!({"q": "a"}), json!({"q": "b"})];
    let row_digests: Vec<String> = rows.iter().map(weave_types::digest::row_digest).collect();
    let table = weave_types::digest::table_digest(&row_digests);
    let ds_val = json!({"_type": "Dataset", "name": "qa", "rows": format!("weave:///{P}/table/{table}"),
        "_class_name": "Dataset", "_bases": ["Object", "BaseModel"]});
    let mut records = vec![
        Record::File(FileCreateReq {
            project_id: P.into(),
            name: "obj.py".into(),
            content: code.clone(),
            expected_digest: Some(file_digest.clone()),
        }),
        Record::Obj(ObjSchemaForInsert {
            project_id: P.into(),
            object_id: "work".into(),
            val: op_val.clone(),
            ..Default::default()
        }),
        Record::Table(TableSchemaForInsert {
            project_id: P.into(),
            rows,
            expected_digest: None,
        }),
        Record::Obj(ObjSchemaForInsert {
            project_id: P.into(),
            object_id: "qa".into(),
            val: ds_val.clone(),
            ..Default::default()
        }),
    ];
    records.extend((0..2500).map(complete));
    records.push(Record::Update(CallUpdateReq {
        project_id: P.into(),
        call_id: id(7),
        display_name: Some("seventh".into()),
        ..Default::default()
    }));
    client.push(records);
    client.flush(Duration::from_secs(30)).unwrap();
    let stats = client.stats();
    // 4 single records, 3 batches of calls (1000, 1000, 500), 1 update.
    assert_eq!((stats.delivered, stats.requests), (2505, 8), "{stats:?}");
    assert_eq!((stats.dropped, stats.refused, stats.pending), (0, 0, 0));

    let got = calls(&ts.store);
    assert_eq!(got.len(), 2500);
    let seventh = got.iter().find(|c| c.id == id(7)).unwrap();
    assert_eq!(seventh.display_name.as_deref(), Some("seventh"));
    assert_eq!(seventh.output, Some(json!(14)));
    let rt = rt();
    let op = rt
        .block_on(ts.store.obj_read(ObjReadReq {
            project_id: P.into(),
            object_id: "work".into(),
            digest: "latest".into(),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(op.obj.digest, weave_types::digest::object_digest(&op_val));
    assert_eq!(op.obj.kind, "op");
    let ds = rt
        .block_on(ts.store.obj_read(ObjReadReq {
            project_id: P.into(),
            object_id: "qa".into(),
            digest: "latest".into(),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(ds.obj.digest, weave_types::digest::object_digest(&ds_val));
    let file = rt
        .block_on(ts.store.file_content_read(FileContentReadReq {
            project_id: P.into(),
            digest: file_digest,
        }))
        .unwrap();
    assert_eq!(file.content, code);
    let rows = rt
        .block_on(ts.store.table_query_stats(TableQueryStatsReq {
            project_id: P.into(),
            digest: table,
        }))
        .unwrap();
    assert_eq!(rows.count, 2);
    client.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn long_running_calls_show_as_running_then_finish_once() {
    let ts = fresh_store();
    let server = serve(&ts);
    let mut c = config(server.url());
    c.eager_after = Duration::from_millis(200);
    let client = RemoteClient::start(c).unwrap();
    // A start and its end close together: one finished call, one request.
    client.push([Record::Start(start(1, "quick")), Record::End(end(1))]);
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(client.stats().requests, 1);
    // A start whose end does not come: sent on its own after `eager_after`, no flush needed.
    client.push([Record::Start(start(2, "slow"))]);
    let running = wait_for(|| calls(&ts.store).iter().any(|c| c.id == id(2)));
    assert!(running, "the long call never showed up");
    let c2 = calls(&ts.store)
        .into_iter()
        .find(|c| c.id == id(2))
        .unwrap();
    assert_eq!(c2.summary["weave"]["status"], "running");
    client.push([Record::End(end(2))]);
    client.flush(Duration::from_secs(10)).unwrap();
    let got = calls(&ts.store);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|c| c.summary["weave"]["status"] == "success"),
        "{got:?}"
    );
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn an_evaluation_root_is_sent_at_once() {
    let ts = fresh_store();
    let server = serve(&ts);
    let mut c = config(server.url());
    c.eager_after = Duration::from_secs(3600);
    let client = RemoteClient::start(c).unwrap();
    client.push([Record::Start(start(1, "Evaluation.evaluate"))]);
    assert!(wait_for(|| calls(&ts.store).len() == 1));
    assert_eq!(calls(&ts.store)[0].summary["weave"]["status"], "running");
    client.push([Record::End(end(1))]);
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(calls(&ts.store)[0].summary["weave"]["status"], "success");
}

#[test]
fn a_server_down_then_up_gets_everything_buffered() {
    let ts = fresh_store();
    let addr = free_addr();
    let client = RemoteClient::start(config(format!("http://{addr}"))).unwrap();
    client.push((0..3000).map(complete));
    std::thread::sleep(Duration::from_millis(400));
    let stats = client.stats();
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(stats.pending, 3000);
    // A flush while it is down reports what is pending.
    let e = client.flush(Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.pending, 3000);
    assert!(e.last_error.is_some(), "{e}");
    let _server = Background::store(ts.store.clone(), addr);
    client.flush(Duration::from_secs(30)).unwrap();
    assert_each_once(&ts.store, 0..3000);
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_nothing() {
    let ts = fresh_store();
    let server = serve(&ts);
    let addr = server.addr();
    let client = RemoteClient::start(config(server.url())).unwrap();
    let mut server = Some(server);
    for round in 0..10 {
        client.push((round * 500..(round + 1) * 500).map(complete));
        std::thread::sleep(Duration::from_millis(30));
        if round == 3 {
            drop(server.take()); // killed: in-flight requests are cut off
        }
        if round == 7 {
            server = Some(Background::store(ts.store.clone(), addr));
        }
    }
    client.flush(Duration::from_secs(30)).unwrap();
    assert_each_once(&ts.store, 0..5000);
    drop(server);
}

/// The same over a ClickHouse store: a server runtime killed mid-insert must not leave the
/// store's shared writer stuck (it did: every later write waited for the dead task).
#[test]
fn a_server_killed_and_restarted_mid_run_loses_nothing_clickhouse() {
    weave_server::testing::use_backend("clickhouse");
    a_server_killed_and_restarted_mid_run_loses_nothing();
}

/// ClickHouse stopped mid-load under a running server: the server answers 503 naming the
/// store and why, the client keeps retrying, the server stays up, and once ClickHouse is back
/// every call is stored exactly once.
#[test]
fn clickhouse_stopped_mid_load_is_503_and_nothing_is_lost() {
    weave_server::testing::use_backend("clickhouse");
    let mut ts = fresh_store();
    let server = serve(&ts);
    let client = RemoteClient::start(config(server.url())).unwrap();
    client.push((0..1000).map(complete));
    client.flush(Duration::from_secs(30)).unwrap();
    let clickhouse = ts
        .clickhouse
        .as_mut()
        .expect("a clickhouse-server of its own");
    clickhouse.stop();
    client.push((1000..3000).map(complete));
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/calls/stream_query", server.url()))
        .header("content-type", "application/json")
        .body(json!({"project_id": P, "limit": 5}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("unavailable") && reason.contains("clickhouse://127.0.0.1:"),
        "{body}"
    );
    // Down for 10 s (the client backs off and retries meanwhile; the server keeps answering).
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let health = reqwest::blocking::get(format!("{}/health", server.url())).unwrap();
        assert_eq!(health.status().as_u16(), 200);
    }
    assert_eq!(client.stats().dropped, 0);
    clickhouse.restart().unwrap();
    client.flush(Duration::from_secs(60)).unwrap();
    assert!(client.stats().retries > 0, "{:?}", client.stats());
    assert_each_once(&ts.store, 0..3000);
    drop(server);
}

#[test]
fn full_buffer_drops_the_oldest_calls_and_says_so() {
    let ts = fresh_store();
    let addr = free_addr();
    let mut c = config(format!("http://{addr}"));
    c.max_buffered = 1000;
    let client = RemoteClient::start(c).unwrap();
    client.push((0..1500).map(complete));
    assert_eq!(client.stats().dropped, 500);
    let _server = Background::store(ts.store.clone(), addr);
    let e = client.flush(Duration::from_secs(30)).unwrap_err();
    assert_eq!((e.pending, e.dropped, e.refused), (0, 500, 0), "{e}");
    assert!(e.to_string().contains("500 dropped"), "{e}");
    assert_each_once(&ts.store, 500..1500);
    // Reported once: the next flush is clean.
    client.flush(Duration::from_secs(5)).unwrap();
}

/// Answers 500 to every other `calls/complete`: alternately before storing and after.
fn flaky(store: Arc<dyn TraceStore>) -> Background {
    let n = Arc::new(AtomicUsize::new(0));
    let router = weave_server::router(AppState::new(store)).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let n = n.clone();
            async move {
                if !req.uri().path().ends_with("/calls/complete") {
                    return next.run(req).await;
                }
                let k = n.fetch_add(1, Ordering::SeqCst);
                match k % 4 {
                    1 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
                    3 => {
                        let _stored = next.run(req).await;
                        (axum::http::StatusCode::BAD_GATEWAY, "lost the answer").into_response()
                    }
                    _ => next.run(req).await,
                }
            }
        },
    ));
    Background::serve(router, "127.0.0.1:0".parse().unwrap())
}

#[test]
fn every_other_batch_failing_still_stores_each_call_once() {
    let ts = fresh_store();
    let server = flaky(ts.store.clone());
    let mut c = config(server.url());
    c.batch_max_calls = 100;
    let client = RemoteClient::start(c).unwrap();
    for chunk in 0..20 {
        client.push((chunk * 100..(chunk + 1) * 100).map(complete));
    }
    client.flush(Duration::from_secs(60)).unwrap();
    let stats = client.stats();
    assert!(stats.retries >= 10, "{stats:?}");
    assert_eq!(stats.delivered, 2000);
    assert_each_once(&ts.store, 0..2000);
}

#[test]
fn a_wrong_key_is_refused_and_reported() {
    let ts = fresh_store();
    let router = weave_server::router(AppState::new(ts.store.clone()).with_api_keys(["right"]));
    let server = Background::serve(router, "127.0.0.1:0".parse().unwrap());
    let client = RemoteClient::start(config(server.url()).with_api_key("wrong")).unwrap();
    client.push((0..10).map(complete));
    let e = client.flush(Duration::from_secs(10)).unwrap_err();
    assert_eq!((e.pending, e.refused), (0, 10), "{e}");
    assert!(e.last_error.as_deref().unwrap_or("").contains("401"), "{e}");
    assert!(calls(&ts.store).is_empty());
    // The right key works.
    let client = RemoteClient::start(config(server.url()).with_api_key("right")).unwrap();
    client.push((0..10).map(complete));
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(calls(&ts.store).len(), 10);
}

#[test]
fn batches_too_large_are_split_and_a_bad_call_is_isolated() {
    let ts = fresh_store();
    let state = AppState::new(ts.store.clone()).with_limits(Limits {
        body_limit: 64 * 1024,
        ..Limits::default()
    });
    let server = Background::serve(weave_server::router(state), "127.0.0.1:0".parse().unwrap());
    let mut c = config(server.url());
    c.compress = false;
    let client = RemoteClient::start(c).unwrap();
    let big = |n: usize| match complete(n) {
        Record::Complete(mut c) => {
            c.inputs.insert("blob".into(), json!("x".repeat(2000)));
            if n == 77 {
                c.ended_at = "not a time".into();
            }
            Record::Complete(c)
        }
        _ => unreachable!(),
    };
    client.push((0..200).map(big));
    let e = client.flush(Duration::from_secs(30)).unwrap_err();
    assert_eq!((e.pending, e.refused), (0, 1), "{e}");
    assert!(
        e.last_error.as_deref().unwrap_or("").contains("ended_at"),
        "{e}"
    );
    assert_each_once(&ts.store, (0..200).filter(|n| *n != 77));
}

#[test]
fn bodies_are_gzipped_when_the_server_takes_gzip() {
    let ts = fresh_store();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let router = weave_server::router(AppState::new(ts.store.clone())).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let seen = seen2.clone();
            async move {
                if req.uri().path().ends_with("/calls/complete") {
                    let enc = req
                        .headers()
                        .get("content-encoding")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(enc);
                }
                next.run(req).await
            }
        },
    ));
    let server = Background::serve(router, "127.0.0.1:0".parse().unwrap());
    let client = RemoteClient::start(config(server.url())).unwrap();
    client.push((0..50).map(complete));
    client.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["gzip"]);
    assert_eq!(calls(&ts.store).len(), 50);
}

#[test]
fn refs_follow_a_server_that_digests_differently() {
    let ts = fresh_store();
    // A server whose digests differ from ours (as W&B's hosted one, with another internal
    // project id): it answers obj/create with its own digest.
    let router = weave_server::router(AppState::new(ts.store.clone())).layer(middleware::from_fn(
        |req: Request, next: Next| async move {
            let obj = req.uri().path() == "/obj/create";
            let res: Response = next.run(req).await;
            if !obj {
                return res;
            }
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            v["digest"] = json!("TheirDigest");
            axum::Json(v).into_response()
        },
    ));
    let server = Background::serve(router, "127.0.0.1:0".parse().unwrap());
    let client = RemoteClient::start(config(server.url())).unwrap();
    let val = json!({"_type": "M", "name": "m", "_class_name": "M", "_bases": ["Model", "Object", "BaseModel"]});
    let ours = weave_types::digest::object_digest(&val);
    let mut call = match complete(1) {
        Record::Complete(c) => c,
        _ => unreachable!(),
    };
    call.inputs.insert(
        "self".into(),
        json!(format!("weave:///{P}/object/m:{ours}")),
    );
    call.inputs.insert(
        "deep".into(),
        json!([format!("weave:///{P}/object/m:{ours}/attr/name")]),
    );
    client.push([
        Record::Obj(ObjSchemaForInsert {
            project_id: P.into(),
            object_id: "m".into(),
            val,
            ..Default::default()
        }),
        Record::Complete(call),
    ]);
    client.flush(Duration::from_secs(10)).unwrap();
    let got = calls(&ts.store);
    assert_eq!(
        got[0].inputs["self"],
        json!(format!("weave:///{P}/object/m:TheirDigest"))
    );
    assert_eq!(
        got[0].inputs["deep"],
        json!([format!("weave:///{P}/object/m:TheirDigest/attr/name")])
    );
}

#[test]
fn a_client_made_and_dropped_inside_an_async_runtime() {
    // `weave::init` runs inside `#[tokio::main]` programs: the client's blocking HTTP client
    // must not be made or dropped on the caller's runtime (tokio panics if it is).
    let ts = fresh_store();
    let server = serve(&ts);
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = RemoteClient::start(config(url)).unwrap();
        client.push((0..5).map(complete));
        client.flush(Duration::from_secs(10)).unwrap();
        drop(client);
    });
    assert_eq!(calls(&ts.store).len(), 5);
}

/// The tests above whose outcome depends on what the store keeps, again with the server over
/// a ClickHouse store (each on a `clickhouse-server` of its own).
mod clickhouse {
    macro_rules! on_clickhouse {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                weave_server::testing::use_backend("clickhouse");
                super::$name();
            }
        )*};
    }
    on_clickhouse!(
        delivers_files_objects_tables_and_calls_in_batches,
        long_running_calls_show_as_running_then_finish_once,
        an_evaluation_root_is_sent_at_once,
        a_server_down_then_up_gets_everything_buffered,
        every_other_batch_failing_still_stores_each_call_once,
        batches_too_large_are_split_and_a_bad_call_is_isolated,
        refs_follow_a_server_that_digests_differently,
    );
}

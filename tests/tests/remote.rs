//! The Rust client's remote mode: the same traced program once into the embedded store and
//! once through `weave serve` (`Settings::trace_server`), then the two stores compared: the
//! same calls (tree, inputs, outputs, statuses, exceptions), op versions with their code, and
//! models, with the same digests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use weave::sink::RemoteConfig;
use weave::store::{SqliteStore, TraceStore};
use weave::types::{CallsQueryReq, FileContentReadReq, ObjQueryReq};
use weave_server::testing::{fresh_store, Background};

#[weave::op]
fn leaf(x: u32) -> u32 {
    x * 10
}

#[weave::op]
fn broken(x: u32) -> Result<u32, String> {
    Err(format!("cannot {x}"))
}

#[derive(weave::Model, Serialize)]
struct Doubler {
    factor: u32,
}

#[weave::ops]
impl Doubler {
    #[weave::op]
    fn predict(&self, x: u32) -> u32 {
        leaf(x) * self.factor
    }
}

#[weave::op]
fn program(n: u32) -> u32 {
    let m = Doubler { factor: 2 };
    let mut total = 0;
    for i in 0..n {
        total += m.predict(i);
        let _ = broken(i);
    }
    std::thread::sleep(Duration::from_millis(30));
    total
}

fn run(settings: weave::Settings) {
    let client = settings.quiet().build().expect("client");
    client.in_scope(|| assert_eq!(program(5), 200));
    drop(client); // flushes and waits for delivery
}

/// Runs a store future to completion on a tokio runtime of its own (ClickHouse's client needs
/// one; SQLite's does not mind).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A call tree without ids and times: op, status, inputs, output, exception type, children.
fn tree(store: &dyn TraceStore, project: &str) -> Vec<Value> {
    let calls = block_on(store.calls_query_vec(CallsQueryReq {
        project_id: project.into(),
        ..Default::default()
    }))
    .expect("calls");
    let mut kids: BTreeMap<Option<String>, Vec<&weave::types::CallSchema>> = BTreeMap::new();
    for c in &calls {
        kids.entry(c.parent_id.clone()).or_default().push(c);
    }
    fn node(
        c: &weave::types::CallSchema,
        kids: &BTreeMap<Option<String>, Vec<&weave::types::CallSchema>>,
    ) -> Value {
        let children: Vec<Value> = kids
            .get(&Some(c.id.clone()))
            .map(|v| v.iter().map(|k| node(k, kids)).collect())
            .unwrap_or_default();
        json!({
            "op": c.op_name, "status": c.status().as_str(), "inputs": c.inputs,
            "output": c.output, "exception": c.exception_info().map(|e| e.kind),
            "usage": c.summary.get("usage"), "children": children,
        })
    }
    kids.get(&None)
        .map(|roots| roots.iter().map(|r| node(r, &kids)).collect())
        .unwrap_or_default()
}

fn objects(store: &dyn TraceStore, project: &str) -> Vec<Value> {
    let objs = block_on(store.objs_query(ObjQueryReq {
        project_id: project.into(),
        ..Default::default()
    }))
    .expect("objects")
    .objs;
    // By name: objects created within the same millisecond tie on `created_at`, so the
    // store's default order depends on timing.
    let mut out: Vec<Value> = objs
        .iter()
        .map(|o| json!({"name": o.object_id, "digest": o.digest, "kind": o.kind, "val": o.val}))
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

#[test]
fn a_program_traced_through_weave_serve_lands_as_it_does_locally() {
    let project = "ent/remote-sink";
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.db");
    run(weave::Settings::new(project).db_path(&local));

    let served = fresh_store();
    let server = Background::store(served.store.clone(), "127.0.0.1:0".parse().unwrap());
    let mut config = RemoteConfig::new(server.url());
    // Long calls go out as start + end: make `program` one of them.
    config.eager_after = Duration::from_millis(10);
    run(weave::Settings::new(project).trace_server(config));

    let local: Arc<dyn TraceStore> = Arc::new(SqliteStore::open(&local).unwrap());
    let want = tree(local.as_ref(), project);
    let got = tree(served.store.as_ref(), project);
    assert_eq!(want.len(), 1, "{want:#?}");
    assert_eq!(want[0]["children"].as_array().unwrap().len(), 10);
    assert_eq!(got, want);
    let want_objs = objects(local.as_ref(), project);
    assert!(
        want_objs.iter().any(|o| o["name"] == "Doubler"),
        "{want_objs:?}"
    );
    assert_eq!(objects(served.store.as_ref(), project), want_objs);
    // The ops' code arrived as files, under the digests the op objects name.
    for o in want_objs.iter().filter(|o| o["kind"] == "op") {
        for (_, digest) in o["val"]["files"].as_object().unwrap() {
            let f = block_on(served.store.file_content_read(FileContentReadReq {
                project_id: project.into(),
                digest: digest.as_str().unwrap().into(),
            }))
            .expect("the op's code on the server");
            assert!(!f.content.is_empty());
        }
    }
    server.stop();
}

/// The same program through `weave serve` over a ClickHouse store.
#[test]
fn a_program_traced_through_weave_serve_over_clickhouse_lands_as_it_does_locally() {
    weave_server::testing::use_backend("clickhouse");
    a_program_traced_through_weave_serve_lands_as_it_does_locally();
}

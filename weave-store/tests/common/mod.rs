//! Stores for the tests: a fresh [`TraceStore`] of each backend, with whatever keeps it
//! alive (a temporary directory, a `clickhouse-server` child process).

#![allow(dead_code)]

use std::sync::Arc;

use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};

/// A fresh, empty store and what it lives in (dropped last).
pub struct Fixture {
    pub store: Arc<dyn TraceStore>,
    pub backend: &'static str,
    guard: Guard,
}

enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    ClickHouse(ClickHouseServer),
}

impl Fixture {
    /// The ClickHouse server behind the store, if any.
    pub fn clickhouse(&mut self) -> Option<&mut ClickHouseServer> {
        match &mut self.guard {
            Guard::ClickHouse(s) => Some(s),
            Guard::Dir(_) => None,
        }
    }
}

/// An SQLite store in a temporary file.
pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::create(dir.path().join("t.db")).unwrap();
    Fixture {
        store: Arc::new(s),
        backend: "sqlite",
        guard: Guard::Dir(dir),
    }
}

/// A ClickHouse store in a database of its own on a `clickhouse-server` started for it.
pub async fn clickhouse() -> Fixture {
    let server = ClickHouseServer::start().expect("start clickhouse-server");
    let s = ClickHouseStore::open(&server.store_url("weave_test"))
        .await
        .expect("open the ClickHouse store");
    Fixture {
        store: Arc::new(s),
        backend: "clickhouse",
        guard: Guard::ClickHouse(server),
    }
}

/// The records of a recorded wire session (`shared/fixtures/weave-wire/NAME`).
pub fn records(name: &str) -> Vec<serde_json::Value> {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
        });
    let path = shared.join("fixtures/weave-wire").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set WEAVE_SHARED_DIR)", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

/// Applies every write of the recorded Python session (`session.jsonl`) to a store: ops and
/// their files, objects, a dataset table, calls (complete, eager start/end, a rename) and
/// an evaluation's feedback.
pub async fn load_session(s: &dyn TraceStore) {
    use weave_store::types::*;
    fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
        serde_json::from_value(v.clone()).unwrap()
    }
    for r in records("session.jsonl") {
        let path = r["request"]["path"].as_str().unwrap().to_string();
        let body = &r["request"]["body"];
        let req = &body["json"];
        let route = if path.starts_with("/v2/") {
            path.splitn(5, '/').nth(4).unwrap().to_string()
        } else {
            path.trim_start_matches('/').to_string()
        };
        match route.as_str() {
            "obj/create" => drop(s.obj_create(parse(req)).await.unwrap()),
            "file/create" => {
                let parts = body["parts"].as_array().unwrap();
                let field = |n: &str| parts.iter().find(|p| p["name"] == n).unwrap();
                s.file_create(FileCreateReq {
                    project_id: field("project_id")["text"].as_str().unwrap().into(),
                    name: field("file")["filename"].as_str().unwrap().into(),
                    content: field("file")["text"].as_str().unwrap().as_bytes().to_vec(),
                    expected_digest: None,
                })
                .await
                .unwrap();
            }
            "table/create" => drop(s.table_create(parse(req)).await.unwrap()),
            "calls/complete" => drop(s.calls_complete(parse(req)).await.unwrap()),
            "call/start" => drop(s.call_start(parse(req)).await.unwrap()),
            "call/end" => drop(s.call_end(parse(req)).await.unwrap()),
            "call/update" => drop(s.call_update(parse(req)).await.unwrap()),
            "feedback/batch/create" => drop(s.feedback_create_batch(parse(req)).await.unwrap()),
            _ => {}
        }
    }
}

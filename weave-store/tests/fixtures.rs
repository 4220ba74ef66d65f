//! Replays the recorded Python-client session (`shared/fixtures/weave-wire/session.jsonl`)
//! through `TraceStore`: every request body must parse into our types, every create must give
//! the recorded digests, and every read must answer what the recording server answered.

use std::path::PathBuf;

use serde_json::{json, Value};
use weave_store::types::*;
use weave_store::{SqliteStore, StoreError, TraceStore};

fn fixture(name: &str) -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("fixtures/weave-wire").join(name)
}

fn records(name: &str) -> Vec<Value> {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set WEAVE_SHARED_DIR)", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(v: &Value, seq: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("seq {seq}: {e}\n{v}"))
}

/// The parts of a call a server derives or the client reads, for comparison.
fn call_view(c: &Value) -> Value {
    json!({
        "id": c["id"], "op_name": c["op_name"], "parent_id": c["parent_id"],
        "trace_id": c["trace_id"], "display_name": c["display_name"],
        "started_at": c["started_at"], "ended_at": c["ended_at"],
        "inputs": c["inputs"], "output": c["output"], "exception": c["exception"],
        "summary": c["summary"],
    })
}

fn obj_view(o: &Value) -> Value {
    json!({
        "object_id": o["object_id"], "digest": o["digest"], "version_index": o["version_index"],
        "is_latest": o["is_latest"], "kind": o["kind"], "base_object_class": o["base_object_class"],
        "leaf_object_class": o["leaf_object_class"], "val": o["val"],
    })
}

#[tokio::test]
async fn session_replays_with_the_recorded_digests_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s: &dyn TraceStore = &SqliteStore::create(dir.path().join("replay.db")).unwrap();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for r in records("session.jsonl") {
        let seq = &r["seq"];
        let path = r["request"]["path"].as_str().unwrap().to_string();
        let body = &r["request"]["body"];
        let req = &body["json"];
        let status = r["response"]["status"].as_u64().unwrap();
        let res = &r["response"]["body"];
        let want = &res["json"];
        let route = if path.starts_with("/v2/") {
            path.splitn(5, '/').nth(4).unwrap().to_string()
        } else {
            path.trim_start_matches('/').to_string()
        };
        match route.as_str() {
            "obj/create" => {
                let got = s.obj_create(parse(req, seq)).await.unwrap();
                assert_eq!(got.digest, want["digest"].as_str().unwrap(), "seq {seq}");
            }
            "file/create" => {
                let parts = body["parts"].as_array().unwrap();
                let field = |n: &str| parts.iter().find(|p| p["name"] == n).unwrap();
                let got = s
                    .file_create(FileCreateReq {
                        project_id: field("project_id")["text"].as_str().unwrap().into(),
                        name: field("file")["filename"].as_str().unwrap().into(),
                        content: field("file")["text"].as_str().unwrap().as_bytes().to_vec(),
                        expected_digest: field("expected_digest")["text"].as_str().map(Into::into),
                    })
                    .await
                    .unwrap();
                assert_eq!(got.digest, want["digest"].as_str().unwrap(), "seq {seq}");
            }
            "table/create" => {
                let got = s.table_create(parse(req, seq)).await.unwrap();
                assert_eq!(serde_json::to_value(&got).unwrap(), *want, "seq {seq}");
            }
            "calls/complete" => {
                s.calls_complete(parse(req, seq)).await.unwrap();
            }
            "call/start" => {
                let got = s.call_start(parse(req, seq)).await.unwrap();
                assert_eq!(serde_json::to_value(&got).unwrap(), *want, "seq {seq}");
            }
            "call/end" => {
                s.call_end(parse(req, seq)).await.unwrap();
            }
            "call/update" => {
                s.call_update(parse(req, seq)).await.unwrap();
            }
            "feedback/batch/create" => {
                let got = s.feedback_create_batch(parse(req, seq)).await.unwrap();
                let ids: Vec<&str> = got.res.iter().map(|f| f.id.as_str()).collect();
                let want_ids: Vec<&str> = want["res"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, want_ids, "seq {seq}");
            }
            "calls/query_stats" => {
                let got = s.calls_query_stats(parse(req, seq)).await.unwrap();
                assert_eq!(got.count, want["count"].as_u64().unwrap(), "seq {seq}");
            }
            "calls/stream_query" => {
                let got = s.calls_query_vec(parse(req, seq)).await.unwrap();
                let got: Vec<Value> = got
                    .iter()
                    .map(|c| call_view(&serde_json::to_value(c).unwrap()))
                    .collect();
                let want: Vec<Value> = res["jsonl"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(call_view)
                    .collect();
                assert_eq!(got, want, "seq {seq}");
            }
            "obj/read" if status == 200 => {
                let got = s.obj_read(parse(req, seq)).await.unwrap();
                assert_eq!(
                    obj_view(&serde_json::to_value(&got.obj).unwrap()),
                    obj_view(&want["obj"]),
                    "seq {seq}"
                );
            }
            "obj/read" => {
                assert_eq!(status, 404);
                match s.obj_read(parse(req, seq)).await {
                    Err(e @ StoreError::NotFound { .. }) => {
                        assert_eq!(e.to_string(), want["reason"].as_str().unwrap())
                    }
                    other => panic!("seq {seq}: {other:?}"),
                }
            }
            "objs/query" => {
                let got = s.objs_query(parse(req, seq)).await.unwrap();
                let got: Vec<Value> = got
                    .objs
                    .iter()
                    .map(|o| obj_view(&serde_json::to_value(o).unwrap()))
                    .collect();
                let want: Vec<Value> = want["objs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(obj_view)
                    .collect();
                assert_eq!(got, want, "seq {seq}");
            }
            "file/content" => {
                let got = s.file_content_read(parse(req, seq)).await.unwrap();
                assert_eq!(
                    String::from_utf8(got.content).unwrap(),
                    res["text"].as_str().unwrap(),
                    "seq {seq}"
                );
            }
            "refs/read_batch" => {
                let got = s.refs_read_batch(parse(req, seq)).await.unwrap();
                assert_eq!(serde_json::to_value(&got).unwrap(), *want, "seq {seq}");
            }
            "table/query" => {
                let got = s.table_query(parse(req, seq)).await.unwrap();
                assert_eq!(serde_json::to_value(&got).unwrap(), *want, "seq {seq}");
            }
            "table/query_stats" => {
                let got = s.table_query_stats(parse(req, seq)).await.unwrap();
                assert_eq!(serde_json::to_value(&got).unwrap(), *want, "seq {seq}");
            }
            "server_info" | "graphql" => continue,
            other => panic!("seq {seq}: route {other} not replayed"),
        }
        *checked.entry(route).or_default() += 1;
    }
    // Every kind of request in the session was replayed.
    assert_eq!(checked["obj/create"], 13, "{checked:?}");
    assert_eq!(checked["file/create"], 9, "{checked:?}");
    for route in [
        "table/create",
        "calls/complete",
        "call/start",
        "call/end",
        "call/update",
        "feedback/batch/create",
        "calls/query_stats",
        "calls/stream_query",
        "obj/read",
        "objs/query",
        "file/content",
        "refs/read_batch",
        "table/query",
        "table/query_stats",
    ] {
        assert!(
            checked.contains_key(route),
            "{route} not in the session: {checked:?}"
        );
    }
}

#[tokio::test]
async fn legacy_and_local_client_calls_parse_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let s: &dyn TraceStore = &SqliteStore::create(dir.path().join("replay.db")).unwrap();
    let mut n = 0;
    for r in records("legacy-upsert-batch.jsonl") {
        let path = r["request"]["path"].as_str().unwrap();
        if path != "/call/upsert_batch" {
            continue;
        }
        for item in r["request"]["body"]["json"]["batch"].as_array().unwrap() {
            match item["mode"].as_str().unwrap() {
                "start" => {
                    s.call_start(parse(&item["req"], &r["seq"])).await.unwrap();
                }
                "end" => {
                    s.call_end(parse(&item["req"], &r["seq"])).await.unwrap();
                }
                other => panic!("mode {other}"),
            }
            n += 1;
        }
    }
    assert!(n > 0);
    let calls = s
        .calls_query_vec(CallsQueryReq {
            project_id: "myent/myproj".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.ended_at.is_some()),
        "every start got its end"
    );
    assert!(calls
        .iter()
        .any(|c| c.summary["weave"]["status"] == json!("error")));
    for r in records("local-client.jsonl") {
        let path = r["request"]["path"].as_str().unwrap();
        if path.ends_with("/calls/complete") {
            s.calls_complete(parse(&r["request"]["body"]["json"], &r["seq"]))
                .await
                .unwrap();
        }
    }
}

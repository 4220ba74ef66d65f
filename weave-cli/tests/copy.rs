//! `weave copy` and `--store`: a project moves from an SQLite file to a ClickHouse database
//! (on a `clickhouse-server` started for the test) and back to a new SQLite file, through the
//! `weave` binary, and everything arrives: calls (finished and running, with their
//! summaries), object versions (with `latest` and metadata), the table and file they refer
//! to, and feedback with its ids. The CLI reads the ClickHouse copy with `--store` alike.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use weave_store::types::*;
use weave_store::{ClickHouseServer, SqliteStore, TraceStore};

const P: &str = "team/proj";

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn weave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("WEAVE_DB")
        .env_remove("WEAVE_STORE")
        .env_remove("WEAVE_PROJECT")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = weave(args);
    assert!(
        out.status.success(),
        "weave {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn obj(s: &SqliteStore, name: &str, val: Value, metadata: Option<Value>) {
    block(s.obj_create(ObjCreateReq {
        obj: ObjSchemaForInsert {
            project_id: P.into(),
            object_id: name.into(),
            val,
            metadata,
            ..Default::default()
        },
    }))
    .unwrap();
}

/// A source store with one of every kind of record.
fn source(path: &Path) -> SqliteStore {
    let s = SqliteStore::create(path).unwrap();
    let file = block(s.file_create(FileCreateReq {
        project_id: P.into(),
        name: "obj.rs".into(),
        content: b"fn add(a: i32, b: i32) -> i32 { a + b }\n\xff".to_vec(),
        expected_digest: None,
    }))
    .unwrap()
    .digest;
    let op = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"},
                    "files": {"obj.rs": file}});
    obj(
        &s,
        "add",
        op,
        Some(json!({"file": "src/lib.rs", "line": 3})),
    );
    let table = block(s.table_create(TableCreateReq {
        table: TableSchemaForInsert {
            project_id: P.into(),
            rows: vec![json!({"q": "it's \"quoted\" \\ and ü"}), json!({"q": 2})],
            expected_digest: None,
        },
    }))
    .unwrap()
    .digest;
    let ds = |rows: &str| {
        json!({"_type": "Dataset", "_class_name": "Dataset", "_bases": ["Object", "BaseModel"],
               "rows": rows})
    };
    obj(&s, "ds", ds(&format!("weave:///{P}/table/{table}")), None);
    obj(&s, "ds", ds("weave:///team/proj/table/none"), None);
    // The first version is the latest again.
    obj(&s, "ds", ds(&format!("weave:///{P}/table/{table}")), None);
    let call = |id: &str, parent: Option<&str>, start: u32| CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        trace_id: "t1".into(),
        parent_id: parent.map(str::to_string),
        op_name: format!("weave:///{P}/op/add:x"),
        started_at: format!("2026-01-01T00:00:0{start}.000001Z"),
        ended_at: format!("2026-01-01T00:00:0{}.5Z", start + 1),
        inputs: json!({"a": 1, "s": "'; DROP TABLE call_parts; --"})
            .as_object()
            .unwrap()
            .clone(),
        output: json!(2),
        summary: json!({"usage": {"m": {"requests": 1}}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        ..Default::default()
    };
    block(s.calls_complete(CallsCompleteReq {
        batch: vec![call("root", None, 1), call("child", Some("root"), 2)],
    }))
    .unwrap();
    block(s.call_start(CallStartReq {
        start: StartedCallSchemaForInsert {
            project_id: P.into(),
            id: Some("running".into()),
            trace_id: Some("t1".into()),
            parent_id: Some("root".into()),
            op_name: "still-going".into(),
            started_at: "2026-01-01T00:00:05Z".into(),
            ..Default::default()
        },
    }))
    .unwrap();
    block(s.feedback_create(FeedbackCreateReq {
        id: Some("fb-1".into()),
        project_id: P.into(),
        weave_ref: format!("weave:///{P}/call/root"),
        feedback_type: "wandb.reaction.1".into(),
        payload: json!({"emoji": "👍"}).as_object().unwrap().clone(),
        ..Default::default()
    }))
    .unwrap();
    s
}

/// Everything a store holds of the project, minus what a copy may restamp (creation times
/// of object versions and feedback).
fn contents(s: &dyn TraceStore) -> Value {
    let calls = block(s.calls_query_vec(CallsQueryReq {
        project_id: P.into(),
        ..Default::default()
    }))
    .unwrap();
    let objs: Vec<Value> = block(s.objs_query(ObjQueryReq {
        project_id: P.into(),
        ..Default::default()
    }))
    .unwrap()
    .objs
    .into_iter()
    .map(|o| {
        let mut v = serde_json::to_value(o).unwrap();
        v.as_object_mut().unwrap().remove("created_at");
        v
    })
    .collect();
    let feedback: Vec<Value> = block(s.feedback_query(FeedbackQueryReq {
        project_id: P.into(),
        ..Default::default()
    }))
    .unwrap()
    .result
    .into_iter()
    .map(|mut f| {
        f.remove("created_at");
        Value::Object(f)
    })
    .collect();
    let table = objs
        .iter()
        .find(|o| o["object_id"] == "ds" && o["is_latest"] == 1)
        .and_then(|o| o["val"]["rows"].as_str())
        .map(|r| r.rsplit('/').next().unwrap().to_string())
        .unwrap();
    let rows = block(s.table_query(TableQueryReq {
        project_id: P.into(),
        digest: table,
        ..Default::default()
    }))
    .unwrap()
    .rows;
    let file_digest = objs
        .iter()
        .find(|o| o["object_id"] == "add")
        .map(|o| o["val"]["files"]["obj.rs"].as_str().unwrap().to_string())
        .unwrap();
    let file = block(s.file_content_read(FileContentReadReq {
        project_id: P.into(),
        digest: file_digest,
    }))
    .unwrap()
    .content;
    json!({"calls": serde_json::to_value(calls).unwrap(), "objs": objs, "feedback": feedback,
           "rows": serde_json::to_value(rows).unwrap(), "file": file})
}

#[test]
fn a_project_moves_from_sqlite_to_clickhouse_and_back_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let want = contents(&source(&a));
    assert_eq!(want["calls"].as_array().unwrap().len(), 3);

    let server = ClickHouseServer::start().expect("start clickhouse-server");
    let url = server.store_url("team");
    let a_s = a.to_str().unwrap();
    let said = ok(&["--db", a_s, "copy", "--to", &url]);
    assert!(
        said.contains("team/proj: 3 calls, 3 object versions, 1 tables, 1 files, 1 feedback"),
        "{said}"
    );
    // Again: nothing new arrives.
    ok(&["--db", a_s, "copy", "--to", &url]);

    // The CLI reads the ClickHouse copy as it reads the file.
    let list = |args: &[&str]| -> Value {
        serde_json::from_str(&ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    assert_eq!(
        list(&["--store", &url, "calls", "--json", "--limit", "10"]),
        list(&["--db", a_s, "calls", "--json", "--limit", "10"])
    );
    let on_ch = weave_store::ClickHouseStore::open_blocking(&url).unwrap();
    assert_eq!(contents(&on_ch), want);

    // And back, into a new file.
    let said = ok(&[
        "--store",
        &url,
        "copy",
        "--to",
        b.to_str().unwrap(),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(report[0]["calls"], json!(3), "{report}");
    assert_eq!(contents(&SqliteStore::open(&b).unwrap()), want);

    // A store URL that names no store is refused, naming it.
    let out = weave(&["--db", a_s, "copy", "--to", "clickhouse://127.0.0.1:1/"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database"), "{err}");
}

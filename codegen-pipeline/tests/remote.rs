//! The reference run over all 164 HumanEval rows twice: once into the embedded store, once
//! with `WEAVE_TRACE_SERVER_URL` pointing at `weave serve` (the Rust client's remote mode).
//! The server's store must hold the same call tree and evaluation summary as the local one:
//! every call, its op, status, inputs and output, compared without ids and timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use weave::eval::EVALUATE;
use weave::store::{SqliteStore, TraceStore};
use weave::types::{CallSchema, CallsQueryReq};
use weave_server::testing::{fresh_store, Background};

const PROJECT: &str = "local/codegen-pipeline";

fn humaneval_file() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegen-pipeline"));
    cmd.current_dir(cwd)
        .args(["--all", "--timeout", "30", "--dataset-path"])
        .arg(humaneval_file())
        .args(args);
    for k in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "HUMANEVAL_PATH",
        "WEAVE_DB",
        "WEAVE_TRACE_SERVER_URL",
        "WF_TRACE_SERVER_URL",
        "WANDB_API_KEY",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("passed                 164/164"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("not delivered") && !stderr.contains("dropped"),
        "{stderr}"
    );
    stdout
}

/// Keys whose values are clocks or durations: they differ between any two runs.
fn timing(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "latency", "duration", "elapsed", "seconds", "_ms", "_at", "time",
    ]
    .iter()
    .any(|t| k.contains(t))
}

fn strip_timings(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !timing(k))
                .map(|(k, v)| (k.clone(), strip_timings(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_timings).collect()),
        other => other.clone(),
    }
}

/// The evaluation's tree: each call as op, status, inputs, output (timings left out) and its
/// children, siblings in a stable order (by op, then inputs).
fn tree(store: &dyn TraceStore) -> Value {
    let calls = futures::executor::block_on(store.calls_query_vec(CallsQueryReq {
        project_id: PROJECT.into(),
        ..Default::default()
    }))
    .expect("calls");
    let mut kids: BTreeMap<Option<String>, Vec<&CallSchema>> = BTreeMap::new();
    for c in &calls {
        kids.entry(c.parent_id.clone()).or_default().push(c);
    }
    fn node(c: &CallSchema, kids: &BTreeMap<Option<String>, Vec<&CallSchema>>) -> Value {
        let mut children: Vec<Value> = kids
            .get(&Some(c.id.clone()))
            .map(|v| v.iter().map(|k| node(k, kids)).collect())
            .unwrap_or_default();
        children.sort_by_key(|v| format!("{}{}", v["op"], v["inputs"]));
        json!({
            "op": c.op_name,
            "status": c.status().as_str(),
            "inputs": strip_timings(&Value::Object(c.inputs.clone())),
            "output": c.output.as_ref().map(strip_timings),
            "children": children,
        })
    }
    let roots: Vec<Value> = kids
        .get(&None)
        .map(|r| r.iter().map(|c| node(c, &kids)).collect())
        .unwrap_or_default();
    Value::Array(roots)
}

fn count(v: &Value) -> usize {
    1 + v["children"]
        .as_array()
        .map_or(0, |c| c.iter().map(count).sum())
}

#[test]
fn reference_run_through_weave_serve_lands_the_same_tree_as_the_embedded_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local_db = dir.path().join("local.db");
    run(dir.path(), &["--db", local_db.to_str().unwrap()], &[]);

    let served = fresh_store();
    let server = Background::store(served.store.clone(), "127.0.0.1:0".parse().unwrap());
    let cwd = dir.path().join("remote-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let stdout = run(&cwd, &[], &[("WEAVE_TRACE_SERVER_URL", &server.url())]);
    assert!(
        stdout.contains(&format!("sent to {}", server.url())),
        "{stdout}"
    );
    assert!(
        !cwd.join(".weave").exists(),
        "the remote run wrote a local store"
    );

    let local: Arc<dyn TraceStore> = Arc::new(SqliteStore::open(&local_db).unwrap());
    let want = tree(local.as_ref());
    let got = tree(served.store.as_ref());
    let roots = want.as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert!(roots[0]["op"]
        .as_str()
        .unwrap()
        .contains(&format!("/op/{EVALUATE}:")));
    // Root + 164 rows x (predict_and_score + predict + generate_code + assemble + prepare +
    // 4 formatter steps + score) + summarize.
    assert_eq!(count(&roots[0]), 1 + 164 * 10 + 1);
    if got != want {
        let (w, g) = (roots[0].clone(), got[0].clone());
        assert_eq!(g["output"], w["output"], "evaluation summaries differ");
        for (i, (a, b)) in w["children"]
            .as_array()
            .unwrap()
            .iter()
            .zip(g["children"].as_array().unwrap())
            .enumerate()
        {
            assert_eq!(b, a, "row {i} differs");
        }
        panic!("the trees differ");
    }
    server.stop();
}

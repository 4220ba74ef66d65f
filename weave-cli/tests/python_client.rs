//! The real Python client (`weave==0.54.0`) against `weave serve`: `weave.init`, nested ops, a
//! Model, a Dataset, an Evaluation with a scorer, then reads through the server
//! (`get_calls()`, the model by ref, the dataset's rows, `get_evaluations()`). The test checks
//! what Python read back, then what `weave calls --json` and `weave evals --json` show of the
//! same store. The store comes from `weave_server::testing::fresh_store` (SQLite, or
//! ClickHouse with `WEAVE_TEST_STORE=clickhouse`), served and read by its `--store` URL.
//!
//! The venv: `$WEAVE_PY_CLIENT_VENV` when set, else `target/weave-py-venv`, created once (under a
//! lock, so parallel tests wait for each other) with `pip install weave==0.54.0 numpy`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

const WEAVE_VERSION: &str = "0.54.0";
const API_KEY: &str = "py-client-test-key";
const PROJECT: &str = "pyent/pyproj";

/// A Python with `weave==0.54.0` and numpy (for `weave.scorers`, which `Evaluation.from_obj`
/// imports).
fn python() -> PathBuf {
    let check = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                &format!("import weave, numpy; assert weave.__version__ == '{WEAVE_VERSION}'"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(venv) = std::env::var_os("WEAVE_PY_CLIENT_VENV") {
        let py = PathBuf::from(venv).join("bin/python");
        assert!(
            check(&py),
            "WEAVE_PY_CLIENT_VENV: {} lacks weave=={WEAVE_VERSION} or numpy",
            py.display()
        );
        return py;
    }
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let venv = target.join("weave-py-venv");
    let py = venv.join("bin/python");
    let lock = File::create(target.join("weave-py-venv.lock")).expect("venv lock file");
    lock.lock().expect("venv lock");
    if !check(&py) {
        eprintln!(
            "creating {} with weave=={WEAVE_VERSION} (once)",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "python3 -m venv {} failed", venv.display());
        let ok = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                &format!("weave=={WEAVE_VERSION}"),
                "numpy",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pip install weave=={WEAVE_VERSION} numpy failed");
        assert!(check(&py), "{} still lacks weave", py.display());
    }
    py
}

/// `weave serve` on a free loopback port, killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(store: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weave"))
            .args(["--store", store])
            .args(["serve", "--addr", "127.0.0.1:0", "--api-key", API_KEY])
            .env("WEAVE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("weave serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("weave serve prints its URL");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_string();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weave_json(store: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weave"))
        .args(["--store", store])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("weave");
    assert!(
        out.status.success(),
        "weave {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "weave {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn python_weave_client_logs_and_reads_back_through_weave_serve() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let ts = weave_server::testing::fresh_store();
    let db = ts.url.clone();
    let server = Served::start(&db);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_session.py");
    let started = Instant::now();
    let out = Command::new(&py)
        .arg(&script)
        .arg(PROJECT)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("WF_TRACE_SERVER_URL", &server.url)
        .env("WANDB_BASE_URL", &server.url)
        .env("WANDB_API_KEY", API_KEY)
        .env("WANDB_ERROR_REPORTING", "false")
        .env("WANDB_SILENT", "true")
        .env("WEAVE_SERVER_CACHE_DIR", dir.path().join("cache"))
        .env("WEAVE_PRINT_CALL_LINK", "false")
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed after {:?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(
        !stderr.contains("Traceback") && !stderr.contains("Error sending"),
        "the client logged errors:\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or("");
    let got: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON result ({e}):\n{stdout}\n{stderr}"));

    // What Python read back through the server.
    assert_eq!(got["computed"], json!(9));
    assert!(
        got["model_uri"]
            .as_str()
            .unwrap()
            .starts_with("weave:///pyent/pyproj/object/qa-model:"),
        "{got}"
    );
    let summary = &got["eval_summary"];
    assert_eq!(
        summary["exact_match"]["correct"]["true_count"],
        json!(2),
        "{summary}"
    );
    let ops: Vec<&str> = got["call_ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let count = |name: &str| ops.iter().filter(|o| **o == name).count();
    assert_eq!(
        (count("outer_compute"), count("inner_add")),
        (1, 2),
        "{ops:?}"
    );
    assert_eq!(count("Evaluation.evaluate"), 1, "{ops:?}");
    assert_eq!(count("Evaluation.predict_and_score"), 3, "{ops:?}");
    assert_eq!(count("QAModel.predict"), 3, "{ops:?}");
    assert_eq!(count("exact_match"), 3, "{ops:?}");
    assert_eq!(count("Evaluation.summarize"), 1, "{ops:?}");
    assert_eq!(
        got["root_ops"],
        json!(["Evaluation.evaluate", "outer_compute"])
    );
    assert_eq!(
        got["outer_children"],
        json!([
            {"op": "inner_add", "inputs": {"a": 3, "b": 1}, "output": 4},
            {"op": "inner_add", "inputs": {"a": 3, "b": 2}, "output": 5},
        ])
    );
    assert_eq!(
        got["loaded_model"],
        json!({"class": "QAModel", "name": "qa-model", "prompt_prefix": "Answer:",
               "ref": got["model_uri"]})
    );
    assert_eq!(got["loaded_predict"], json!("Answer: AGAIN"));
    assert_eq!(
        got["dataset_rows"][2],
        json!({"question": "abc", "expected": "Answer: ABC"})
    );
    assert_eq!(
        got["big_rows"],
        json!({"count": 2500, "row_1234": {"i": 1234, "sq": 1234 * 1234},
               "grown_count": 2501, "grown_last": {"i": 2500, "sq": 2500 * 2500},
               "grown_is_latest": true}),
        "{stderr}"
    );
    assert_eq!(
        got["evaluations"],
        json!([{"name": "qa-eval", "scorers": 1}])
    );

    // The same store through the CLI, while the server still holds it.
    let calls = weave_json(&db, &["calls", "--json", "--limit", "100"]);
    let calls = calls.as_array().unwrap();
    // Everything Python logged, plus the reloaded model's predict call.
    assert_eq!(calls.len(), ops.len() + 1, "{calls:?}");
    assert!(calls.iter().all(|c| c["project_id"] == PROJECT));
    let outer = calls
        .iter()
        .find(|c| {
            c["op_name"]
                .as_str()
                .unwrap()
                .contains("/op/outer_compute:")
        })
        .expect("outer_compute in weave calls");
    assert_eq!(outer["output"], json!(9));
    assert_eq!(outer["summary"]["weave"]["status"], json!("success"));
    let evals = weave_json(&db, &["evals", "--json"]);
    let evals = evals.as_array().unwrap();
    assert_eq!(evals.len(), 1, "{evals:?}");
    assert_eq!(
        evals[0]["summary"]["exact_match"]["correct"]["true_count"],
        json!(2),
        "{evals:?}"
    );
}

/// The same session with `weave serve` over a ClickHouse store.
#[test]
fn python_weave_client_logs_and_reads_back_through_weave_serve_over_clickhouse() {
    weave_server::testing::use_backend("clickhouse");
    python_weave_client_logs_and_reads_back_through_weave_serve();
}

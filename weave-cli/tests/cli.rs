//! Runs a traced program (the ops below), then the `weave` binary against the store it left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};
use weave::store::TraceStore as _;
use weave::types::{
    CallsQueryReq, ObjCreateReq, ObjSchemaForInsert, TableCreateReq, TableSchemaForInsert,
};

// --- the traced program -------------------------------------------------------------------

#[weave::op]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[weave::op]
fn fail(x: i32) -> Result<i32, std::io::Error> {
    Err(std::io::Error::other(format!("boom {x}")))
}

#[weave::op]
fn pipeline(q: &str) -> String {
    let s = add(1, 2);
    let _ = fail(s);
    format!("done {q}")
}

#[derive(weave::Model, Serialize)]
struct Echo {
    /// Questions equal to this are answered in upper case (a deliberate bug).
    shout_on: String,
    temperature: f64,
}

#[weave::ops]
impl Echo {
    #[weave::op]
    fn predict(&self, q: &str) -> String {
        weave::add_usage("echo-1", weave::Usage::request(10, 2));
        if q == self.shout_on {
            q.to_uppercase()
        } else {
            q.to_string()
        }
    }
}

#[weave::op]
fn exact_match(expected: &str, output: &str) -> bool {
    expected == output
}

#[weave::op]
fn length(output: &str) -> usize {
    output.len()
}

/// Stands for the lead's `weave::eval::Evaluation` until it is merged: same op names and
/// input/output shapes.
#[derive(Serialize)]
#[serde(transparent)]
struct EvalRef(String);

impl EvalRef {
    #[weave::op(name = "Evaluation.evaluate", skip(rows))]
    fn evaluate(&self, model: &Echo, rows: &[Value]) -> Value {
        let mut results = Vec::new();
        for row in rows {
            results.push(self.predict_and_score(model, row));
        }
        self.summarize(&results)
    }

    #[weave::op(name = "Evaluation.predict_and_score")]
    fn predict_and_score(&self, model: &Echo, example: &Value) -> Value {
        let q = example["q"].as_str().unwrap_or_default();
        let output = model.predict(q);
        let em = exact_match(example["expected"].as_str().unwrap_or_default(), &output);
        let len = length(&output);
        json!({
            "output": output,
            "scores": {"exact_match": em, "length": len},
            "model_latency": 0.001,
        })
    }

    #[weave::op(name = "Evaluation.summarize", skip(results))]
    fn summarize(&self, results: &[Value]) -> Value {
        let n = results.len() as f64;
        let t = results
            .iter()
            .filter(|r| r["scores"]["exact_match"] == json!(true))
            .count();
        let len: f64 = results
            .iter()
            .map(|r| r["scores"]["length"].as_f64().unwrap_or(0.0))
            .sum();
        json!({
            "exact_match": {"true_count": t, "true_fraction": t as f64 / n},
            "length": {"mean": len / n},
            "model_latency": {"mean": 0.001},
        })
    }
}

const PROJECT: &str = "test/proj";

struct Fixture {
    _dir: tempfile::TempDir,
    /// The fixture copied into a ClickHouse store, when the test runs on that backend.
    _clickhouse: Option<weave_server::testing::TestStore>,
    db: PathBuf,
    pipeline_id: String,
    add_id: String,
    fail_id: String,
    eval_a: String,
    eval_b: String,
}

/// The global client is process-wide: tests that use it run one at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

std::thread_local! {
    /// `--store URL` for the binary instead of `--db PATH`: the fixture's copy in another
    /// backend.
    static STORE_URL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// On the ClickHouse backend (`weave_server::testing::use_backend`), copies the fixture's
/// SQLite store into a fresh ClickHouse store (with `weave_store::copy_project`, what `weave
/// copy` runs) and makes every `weave` command of this thread read that one.
fn on_backend(db: &Path) -> Option<weave_server::testing::TestStore> {
    if weave_server::testing::backend() != "clickhouse" {
        return None;
    }
    let ts = weave_server::testing::fresh_store();
    assert!(ts.url.starts_with("clickhouse://"), "{}", ts.url);
    let from = weave_store::SqliteStore::open(db).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(weave_store::copy_project(&from, ts.store.as_ref(), PROJECT))
        .unwrap();
    STORE_URL.with(|u| *u.borrow_mut() = Some(ts.url.clone()));
    Some(ts)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new(PROJECT)
        .db_path(&db)
        .quiet()
        .build()
        .unwrap();
    let _scope = client.set_default();

    pipeline("hello");
    let rows: Vec<Value> = vec![
        json!({"id": "r1", "q": "hello", "expected": "hello"}),
        json!({"id": "r2", "q": "world", "expected": "world"}),
        json!({"id": "r3", "q": "bad", "expected": "bad"}),
    ];
    // The Evaluation and Dataset objects, as the eval module publishes them (their digests
    // are known before they are stored: the refs go into the calls).
    let row_digests: Vec<String> = rows.iter().map(weave::digest::row_digest).collect();
    let table = weave::digest::table_digest(&row_digests);
    let dataset_val = json!({"_type": "Dataset", "_class_name": "Dataset",
        "_bases": ["Object", "BaseModel"], "name": "qa",
        "rows": format!("weave:///{PROJECT}/table/{table}")});
    let dataset_digest = weave::digest::object_digest(&dataset_val);
    let eval_val = json!({"_type": "Evaluation", "_class_name": "Evaluation",
        "_bases": ["Object", "BaseModel"], "name": "my-eval",
        "dataset": format!("weave:///{PROJECT}/object/qa:{dataset_digest}"),
        "scorers": [], "trials": 1});
    let eval_digest = weave::digest::object_digest(&eval_val);
    let eval = EvalRef(format!("weave:///{PROJECT}/object/my-eval:{eval_digest}"));
    let v0 = Echo {
        shout_on: "bad".into(),
        temperature: 0.0,
    };
    eval.evaluate(&v0, &rows);
    let v1 = Echo {
        shout_on: "world".into(),
        temperature: 0.5,
    };
    eval.evaluate(&v1, &rows);
    client.flush().expect("flush");
    drop(_scope);
    drop(client);

    let store = weave_store::SqliteStore::open(&db).unwrap();
    let t = block(store.table_create(TableCreateReq {
        table: TableSchemaForInsert {
            project_id: PROJECT.into(),
            rows: rows.clone(),
            expected_digest: Some(table),
        },
    }))
    .unwrap();
    assert_eq!(t.row_digests, row_digests);
    for (name, val, digest) in [
        ("qa", dataset_val, dataset_digest),
        ("my-eval", eval_val, eval_digest),
    ] {
        block(store.obj_create(ObjCreateReq {
            obj: ObjSchemaForInsert {
                project_id: PROJECT.into(),
                object_id: name.into(),
                val,
                expected_digest: Some(digest),
                ..Default::default()
            },
        }))
        .unwrap();
    }
    if let Some(keep) = std::env::var_os("WEAVE_CLI_KEEP_DB") {
        // For looking at the output by hand: `WEAVE_CLI_KEEP_DB=/tmp/x.db cargo test ...`.
        std::fs::copy(&db, keep).unwrap();
    }

    let all = block(store.calls_query_vec(CallsQueryReq {
        project_id: PROJECT.into(),
        ..Default::default()
    }))
    .unwrap();
    let find = |op: &str| -> Vec<String> {
        let mut v: Vec<&weave::types::CallSchema> =
            all.iter().filter(|c| c.op_display_name() == op).collect();
        v.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        v.iter().map(|c| c.id.clone()).collect()
    };
    let evals = find("Evaluation.evaluate");
    assert_eq!(evals.len(), 2);
    Fixture {
        _clickhouse: on_backend(&db),
        pipeline_id: find("pipeline")[0].clone(),
        add_id: find("add")[0].clone(),
        fail_id: find("fail")[0].clone(),
        eval_a: evals[0].clone(),
        eval_b: evals[1].clone(),
        db,
        _dir: dir,
    }
}

// --- running the binary -------------------------------------------------------------------

fn weave_cmd(db: &Path, args: &[&str]) -> Output {
    weave_cmd_env(db, args, &[])
}

/// `weave --db DB ARGS` with these extra environment variables (and none of the ones that
/// would change its output otherwise).
fn weave_cmd_env(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("COLUMNS")
        .env_remove("WEAVE_PROJECT")
        .env_remove("WEAVE_DB")
        .envs(env.iter().copied())
        .args(match STORE_URL.with(|u| u.borrow().clone()) {
            Some(url) => vec!["--store".into(), url.into()],
            None => vec![std::ffi::OsString::from("--db"), db.into()],
        })
        .args(args)
        .output()
        .unwrap()
}

/// Runs `weave`, expects success, returns stdout.
fn ok(db: &Path, args: &[&str]) -> String {
    let out = weave_cmd(db, args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "weave {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs `weave`, expects failure, returns stderr.
fn fails(db: &Path, args: &[&str]) -> String {
    let out = weave_cmd(db, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "weave {args:?} should fail; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty() || !stderr.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn json_of(db: &Path, args: &[&str]) -> Value {
    let s = ok(db, args);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("weave {args:?}: bad JSON ({e}):\n{s}"))
}

fn fits(text: &str) {
    for l in text.lines() {
        assert!(
            l.chars().count() <= 100,
            "line wider than 100 columns ({}):\n{l}",
            l.chars().count()
        );
        assert!(!l.contains('\x1b'), "colour when not on a terminal: {l:?}");
    }
}

// --- tests --------------------------------------------------------------------------------

#[test]
fn calls_lists_newest_first_with_status_and_version() {
    let f = fixture();
    let text = ok(&f.db, &["calls"]);
    fits(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{text}");
    assert!(text.contains("pipeline:v0"), "{text}");
    assert!(text.contains("descendant_error"), "{text}");
    assert!(text.contains("Echo.predict:v0"), "{text}");
    // The last call started (the second evaluation's summary) is the first line.
    assert!(lines[1].contains("Evaluation.summarize"), "{text}");
    // Token usage rolls up: 3 predictions of 12 tokens.
    let run = lines
        .iter()
        .find(|l| l.contains("Evaluation.evaluate"))
        .unwrap();
    assert!(run.ends_with(" 36"), "{text}");
    let fail_line = lines.iter().find(|l| l.contains(" fail:v0")).unwrap();
    assert!(fail_line.contains("error"), "{fail_line}");

    let json = json_of(&f.db, &["calls", "--json"]);
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 3 + 2 * (1 + 3 * 4 + 1));
    assert_eq!(arr[0]["parent_id"], json!(f.eval_b));
    for key in [
        "id",
        "project_id",
        "op_name",
        "display_name",
        "trace_id",
        "parent_id",
        "started_at",
        "ended_at",
        "inputs",
        "output",
        "exception",
        "attributes",
        "summary",
    ] {
        assert!(arr[0].get(key).is_some(), "missing {key}");
    }
}

#[test]
fn calls_filters() {
    let f = fixture();
    let errors = json_of(&f.db, &["calls", "--errors", "--json"]);
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["id"], json!(f.fail_id));

    let adds = json_of(&f.db, &["calls", "--op", "add", "--json"]);
    assert_eq!(adds.as_array().unwrap().len(), 1);
    let adds = json_of(&f.db, &["calls", "--op", "add:v0", "--json"]);
    assert_eq!(adds.as_array().unwrap().len(), 1);

    let trace = json_of(&f.db, &["calls", "--trace", &f.add_id[..30], "--json"]);
    assert_eq!(trace.as_array().unwrap().len(), 3);

    let limited = ok(&f.db, &["calls", "--limit", "2"]);
    assert_eq!(limited.lines().count(), 4, "{limited}"); // header, 2 rows, hint
    assert!(limited.contains("--limit"));

    let recent = json_of(&f.db, &["calls", "--since", "1h", "--json"]);
    assert_eq!(recent.as_array().unwrap().len(), 31);
    let future = json_of(&f.db, &["calls", "--since", "2999-01-01", "--json"]);
    assert_eq!(future, json!([]));
    assert!(fails(&f.db, &["calls", "--since", "yesterday-ish"]).contains("--since"));

    let roots = json_of(&f.db, &["calls", "--roots", "--json"]);
    assert_eq!(roots.as_array().unwrap().len(), 3);
}

#[test]
fn call_shows_everything() {
    let f = fixture();
    let text = ok(&f.db, &["call", &f.pipeline_id]);
    assert!(text.contains(&format!("call {}", f.pipeline_id)), "{text}");
    for section in ["inputs", "output", "summary", "attributes", "children (2)"] {
        assert!(text.lines().any(|l| l == section), "no {section}:\n{text}");
    }
    assert!(text.contains("\"q\": \"hello\""), "{text}");
    assert!(text.contains("\"done hello\""), "{text}");
    assert!(text.contains("descendant_error"), "{text}");
    assert!(text.contains("weave show pipeline:v0"), "{text}");
    assert!(text.contains("rust-sdk"), "{text}");

    let failed = ok(&f.db, &["call", &f.fail_id[..f.fail_id.len() - 2]]);
    assert!(failed.contains("exception"), "{failed}");
    assert!(failed.contains("boom 3"), "{failed}");

    let json = json_of(&f.db, &["call", &f.pipeline_id, "--json"]);
    assert_eq!(json["id"], json!(f.pipeline_id));
    assert_eq!(
        json["summary"]["weave"]["status"],
        json!("descendant_error")
    );
    assert_eq!(json["children"].as_array().unwrap().len(), 2);
    assert_eq!(json["inputs"]["q"], json!("hello"));
}

#[test]
fn trace_prints_the_tree() {
    let f = fixture();
    // From any call in the trace.
    let text = ok(&f.db, &["trace", &f.add_id]);
    fits(&text);
    assert!(
        text.starts_with(&format!("trace {}", f.pipeline_id)),
        "{text}"
    );
    assert!(text.contains("3 calls, 1 failed"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("! pipeline:v0"), "{text}");
    assert!(lines[1].contains("descendant_error"), "{text}");
    assert!(lines[2].starts_with("├─ ✓ add:v0"), "{text}");
    assert!(lines[2].contains("(a=1, b=2) → 3"), "{text}");
    assert!(lines[3].starts_with("└─ ✗ fail:v0"), "{text}");
    assert!(lines[3].contains("boom 3"), "{text}");

    // A deeper one: evaluation run -> predict_and_score -> predict / scorers.
    let text = ok(&f.db, &["trace", &f.eval_a]);
    fits(&text);
    assert!(text.contains("│  ├─ ✓ Echo.predict:v0"), "{text}");
    assert!(text.contains("└─ ✓ Evaluation.summarize:v0"), "{text}");

    let json = json_of(&f.db, &["trace", &f.pipeline_id, "--json"]);
    let root = &json["calls"][0];
    assert_eq!(root["id"], json!(f.pipeline_id));
    assert_eq!(root["children"].as_array().unwrap().len(), 2);
    assert_eq!(
        root["children"][1]["summary"]["weave"]["status"],
        json!("error")
    );
}

#[test]
fn ops_models_show_and_diff() {
    let f = fixture();
    let ops = ok(&f.db, &["ops"]);
    fits(&ops);
    assert!(ops.contains("pipeline"), "{ops}");
    assert!(ops.contains("tests/cli.rs:"), "{ops}");
    let ops_json = json_of(&f.db, &["ops", "--json"]);
    assert!(ops_json
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == json!("add") && o["versions"].as_array().unwrap().len() == 1));

    let models = ok(&f.db, &["models", "--versions"]);
    fits(&models);
    let echo = models.lines().find(|l| l.starts_with("Echo")).unwrap();
    assert!(echo.contains(" 2 ") && echo.contains("v1"), "{models}");
    assert!(echo.contains("temperature=0.5"), "{models}");
    assert!(
        models
            .lines()
            .any(|l| l.starts_with("  └") && l.contains("v0")),
        "{models}"
    );
    let models_json = json_of(&f.db, &["models", "--json"]);
    assert_eq!(models_json[0]["name"], json!("Echo"));
    assert_eq!(models_json[0]["versions"].as_array().unwrap().len(), 2);

    // An op shows its code; all the ways of naming it work.
    let add_ref = ops_json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == json!("add"))
        .unwrap()["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = add_ref.rsplit(':').next().unwrap().to_string();
    for spec in [
        add_ref.clone(),
        "add".into(),
        "add:latest".into(),
        "add:v0".into(),
        format!("add:{}", &digest[..6]),
    ] {
        let text = ok(&f.db, &["show", &spec]);
        assert!(text.starts_with("Op add:v0"), "{spec}: {text}");
        assert!(text.contains("a + b"), "{spec}: {text}");
    }
    let shown = json_of(&f.db, &["show", "add", "--json"]);
    assert_eq!(shown["ref"], json!(add_ref));
    assert!(shown["code"].as_str().unwrap().contains("fn add"));
    assert_eq!(shown["val"]["_type"], json!("CustomWeaveType"));
    assert_eq!(shown["metadata"]["file"], json!("weave-cli/tests/cli.rs"));

    // A model shows attributes and its ops; a unique name prefix also resolves.
    let text = ok(&f.db, &["show", "Echo:v0"]);
    assert!(text.starts_with("Model Echo:v0"), "{text}");
    assert!(text.contains("shout_on = \"bad\""), "{text}");
    assert!(text.contains("predict  Echo.predict:v0"), "{text}");

    // A dataset shows its rows.
    let text = ok(&f.db, &["show", "qa"]);
    assert!(text.contains("rows (3)"), "{text}");

    let diff = ok(&f.db, &["diff", "Echo:v0", "Echo:v1"]);
    assert!(diff.starts_with("diff Echo:v0 → Echo:v1"), "{diff}");
    assert!(diff.contains("shout_on: \"bad\" → \"world\""), "{diff}");
    assert!(
        diff.contains("temperature: 0 → 0.5") || diff.contains("temperature: 0.0 → 0.5"),
        "{diff}"
    );
    let dj = json_of(&f.db, &["diff", "Echo:v0", "Echo:latest", "--json"]);
    assert_eq!(dj["fields"].as_array().unwrap().len(), 2);
    assert_eq!(dj["ops"], json!([]));

    let same = ok(&f.db, &["diff", "add", "add:v0"]);
    assert!(same.contains("same version"), "{same}");
    let code = ok(&f.db, &["diff", "add", "length"]);
    assert!(code.contains("-    a + b"), "{code}");
    assert!(code.contains("+    output.len()"), "{code}");
}

#[test]
fn evals_eval_and_compare() {
    let f = fixture();
    let text = ok(&f.db, &["evals"]);
    fits(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].contains("my-eval") && lines[1].contains("Echo:v1"),
        "{text}"
    );
    assert!(lines[1].contains("qa:v0"), "{text}");
    assert!(lines[1].contains("exact_match 67%"), "{text}");
    assert!(lines[2].contains("Echo:v0"), "{text}");

    let json = json_of(&f.db, &["evals", "--json"]);
    assert_eq!(json[0]["id"], json!(f.eval_b));
    assert_eq!(json[0]["model"], json!("Echo:v1"));
    assert_eq!(json[0]["dataset"], json!("qa:v0"));
    assert_eq!(json[0]["summary"]["exact_match"]["true_count"], json!(2));

    let text = ok(&f.db, &["eval", &f.eval_a]);
    fits(&text);
    assert!(text.starts_with("evaluation my-eval"), "{text}");
    assert!(text.contains("qa:v0 (3 rows)"), "{text}");
    assert!(text.contains("exact_match"), "{text}");
    assert!(text.contains("true_fraction 0.6667"), "{text}");
    let r3 = text
        .lines()
        .find(|l| l.trim_start().starts_with("r3"))
        .unwrap();
    assert!(r3.contains("BAD") && r3.contains('✗'), "{text}");

    let ej = json_of(&f.db, &["eval", &f.eval_a, "--json"]);
    let rows = ej["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["row"], json!("r3"));
    assert_eq!(rows[2]["scores"]["exact_match"], json!(false));

    // Not an evaluation run.
    assert!(fails(&f.db, &["eval", &f.add_id]).contains("not an evaluation run"));

    let text = ok(&f.db, &["compare", &f.eval_a, &f.eval_b]);
    fits(&text);
    assert!(
        text.contains("Echo:v0") && text.contains("Echo:v1"),
        "{text}"
    );
    assert!(text.contains("exact_match.true_fraction"), "{text}");
    assert!(text.contains("2 differ: 1 regressed, 1 improved"), "{text}");
    let r2 = text
        .lines()
        .position(|l| l.contains("▼ ") && l.contains("r2"));
    let r3 = text
        .lines()
        .position(|l| l.contains("▲ ") && l.contains("r3"));
    assert!(
        r2.is_some() && r3.is_some() && r2 < r3,
        "regressions first:\n{text}"
    );

    let cj = json_of(&f.db, &["compare", &f.eval_a, &f.eval_b, "--json"]);
    let rows = cj["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["row"], json!("r2"));
    assert_eq!(rows[0]["change"], json!("regression"));
    assert_eq!(rows[1]["change"], json!("improvement"));
    let tf = cj["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == json!("exact_match.true_fraction"))
        .unwrap();
    assert_eq!(tf["delta"], json!(0.0));
}

#[test]
fn export_jsonl() {
    let f = fixture();
    let text = ok(
        &f.db,
        &["export", "--format", "jsonl", "--trace", &f.pipeline_id],
    );
    let calls: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["id"], json!(f.pipeline_id)); // oldest first
    assert!(calls[0]["op_name"]
        .as_str()
        .unwrap()
        .starts_with("weave:///test/proj/op/pipeline:"));
    let exc: Value = serde_json::from_str(calls[2]["exception"].as_str().unwrap()).unwrap();
    assert_eq!(exc["message"], json!("boom 3"));

    let all = ok(&f.db, &["export"]);
    assert_eq!(all.lines().count(), 31);

    let file = f.db.with_file_name("out.jsonl");
    let out = weave_cmd(&f.db, &["export", "--errors", "-o", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
}

#[test]
fn prefixes_ambiguous_and_unknown() {
    let f = fixture();
    // Every id starts with the same timestamp digits.
    let err = fails(&f.db, &["call", &f.add_id[..4]]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains("matches more than 10 calls"), "{err}");
    let err = fails(&f.db, &["call", "ffffffff"]);
    assert!(err.contains("no call with id `ffffffff`"), "{err}");
    let err = fails(&f.db, &["trace", "zz"]);
    assert!(err.contains("no call"), "{err}");

    let err = fails(&f.db, &["show", "Evaluation."]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains("Evaluation.summarize"), "{err}");
    let err = fails(&f.db, &["show", "nosuch"]);
    assert!(err.contains("no object named `nosuch`"), "{err}");
    assert!(err.contains("pipeline"), "lists known names: {err}");
    let err = fails(&f.db, &["show", "add:v7"]);
    assert!(
        err.contains("no version `v7`") && err.contains("add:v0"),
        "{err}"
    );
    let err = fails(&f.db, &["show", "weave:///nope"]);
    assert!(err.contains("invalid weave ref"), "{err}");
}

#[test]
fn database_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let err = fails(&missing, &["calls"]);
    assert!(err.contains("no trace store at"), "{err}");
    assert!(!missing.exists(), "must not create the file");

    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![0x42u8; 8192]).unwrap();
    let err = fails(&corrupt, &["calls"]);
    assert!(err.contains("not an SQLite database"), "{err}");

    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    let err = fails(&foreign, &["ops"]);
    assert!(err.contains("not a weave trace store"), "{err}");
}

#[test]
fn env_var_colour_and_pipes() {
    let f = fixture();
    // $WEAVE_DB is the default location.
    let out = Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("COLUMNS")
        .args(["calls", "--limit", "1"])
        .env("WEAVE_DB", &f.db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Evaluation.summarize"));

    // Colour only when asked (stdout here is not a terminal).
    let plain = ok(&f.db, &["trace", &f.pipeline_id]);
    assert!(!plain.contains('\x1b'));
    let coloured = ok(&f.db, &["--color", "always", "trace", &f.pipeline_id]);
    assert!(coloured.contains("\x1b[31m"), "{coloured}");

    let out = Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("COLUMNS")
        .args(["calls", "--db"])
        .arg(&f.db)
        .args(["--color", "never"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn reads_while_a_program_writes() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let client = weave::Settings::new(PROJECT)
        .db_path(&db)
        .quiet()
        .init()
        .unwrap();
    add(1, 1);
    client.flush().expect("flush");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut i = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            add(i, i);
            i += 1;
            if i % 50 == 0 {
                weave::flush().expect("flush");
            }
        }
    });
    for _ in 0..3 {
        let text = ok(&db, &["calls", "--limit", "5"]);
        assert!(text.contains("add:v0"), "{text}");
        ok(&db, &["export", "--limit", "100"]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    drop(client);
}

#[test]
fn object_names_are_scoped_by_project() {
    let f = fixture();
    {
        // A second project in the same store with its own `Echo`.
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let client = weave::Settings::new("other")
            .db_path(&f.db)
            .quiet()
            .init()
            .unwrap();
        Echo {
            shout_on: "never".into(),
            temperature: 0.9,
        }
        .predict("hi");
        drop(client);
    }

    let err = fails(&f.db, &["show", "Echo"]);
    assert!(
        err.contains("several projects")
            && err.contains(PROJECT)
            && err.contains("local/other")
            && err.contains("--project"),
        "{err}"
    );
    let other = json_of(&f.db, &["--project", "other", "show", "Echo", "--json"]);
    assert_eq!(other["project_id"], json!("local/other"), "{other}");
    assert_eq!(other["val"]["temperature"], json!(0.9), "{other}");
    let mine = json_of(&f.db, &["--project", PROJECT, "show", "Echo:v1", "--json"]);
    assert_eq!(mine["val"]["temperature"], json!(0.5), "{mine}");
    // The environment variable works like the flag.
    let out = weave_cmd_env(
        &f.db,
        &["show", "Echo", "--json"],
        &[("WEAVE_PROJECT", "other")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["project_id"], json!("local/other"));
    // Listings show each project's latest version; calls still label their op versions.
    let models = json_of(&f.db, &["models", "--json"]);
    assert_eq!(models.as_array().unwrap().len(), 2, "{models}");
    let scoped = json_of(&f.db, &["--project", "other", "models", "--json"]);
    assert_eq!(scoped.as_array().unwrap().len(), 1, "{scoped}");
    let calls = ok(&f.db, &["calls"]);
    assert!(calls.contains("Echo.predict:v0"), "{calls}");
    // Calls and evaluations are scoped too.
    let all = json_of(&f.db, &["calls", "--json", "--limit", "1000"]);
    let other_calls = json_of(
        &f.db,
        &["--project", "other", "calls", "--json", "--limit", "1000"],
    );
    let other_calls = other_calls.as_array().unwrap();
    assert_eq!(other_calls.len(), 1, "{other_calls:?}");
    assert_eq!(other_calls[0]["project_id"], json!("local/other"));
    let mine = json_of(
        &f.db,
        &["--project", PROJECT, "calls", "--json", "--limit", "1000"],
    );
    assert_eq!(
        mine.as_array().unwrap().len() + 1,
        all.as_array().unwrap().len()
    );
    let evals = json_of(&f.db, &["--project", "other", "evals", "--json"]);
    assert_eq!(evals, json!([]));
    assert_eq!(
        json_of(&f.db, &["--project", PROJECT, "evals", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn columns_widens_the_output() {
    let f = fixture();
    let narrow = ok(&f.db, &["ops"]);
    fits(&narrow);
    let out = weave_cmd_env(&f.db, &["ops"], &[("COLUMNS", "240")]);
    assert!(out.status.success());
    let wide = String::from_utf8(out.stdout).unwrap();
    // The source column is cut at 100 columns (`…cli.rs:NN`) and whole at 240.
    assert!(narrow.contains('…'), "{narrow}");
    assert!(!wide.contains('…'), "{wide}");
    assert!(wide.lines().all(|l| l.chars().count() <= 240), "{wide}");
}

/// The tests that read the fixture, again with the CLI reading a ClickHouse copy of it
/// (`weave --store clickhouse://...`).
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
        calls_lists_newest_first_with_status_and_version,
        calls_filters,
        call_shows_everything,
        trace_prints_the_tree,
        ops_models_show_and_diff,
        evals_eval_and_compare,
        export_jsonl,
        prefixes_ambiguous_and_unknown,
        columns_widens_the_output,
    );
}

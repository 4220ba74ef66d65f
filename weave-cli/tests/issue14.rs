//! What issue 14 found in the CLI: op names as users write them, scorer errors per row,
//! `compare` verdicts and directions, read-only reads, damaged stores, exact floats.
//!
//! The evaluations here are written with ops of the same names and shapes as
//! `weave::eval::Evaluation` (and W&B Weave) records, so that each row's outcome is chosen
//! exactly: a predict that fails on one side, a scorer that errs, scores that move either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use weave::store::TraceStore as _;
use weave::types::{ObjCreateReq, ObjSchemaForInsert};

const PROJECT: &str = "cli/issue14";

/// A float that `serde_json` without `float_roundtrip` parses one ULP off.
const TRICKY: f64 = 2.447_599_133_993_112_4e-9;

struct Model {
    /// Per row id: `Err` fails predict, else the output.
    outputs: Vec<(&'static str, Result<&'static str, &'static str>)>,
}

impl Model {
    #[weave::op(name = "Model.predict")]
    fn predict(&self, q: &str) -> Result<String, String> {
        self.outputs
            .iter()
            .find(|(k, _)| *k == q)
            .map(|(_, v)| v.map(str::to_string).map_err(str::to_string))
            .unwrap_or_else(|| Err("no such row".into()))
    }
}

#[weave::op]
fn failing_scorer(output: &str) -> Result<bool, std::io::Error> {
    Err(std::io::Error::other(format!("scorer broke on {output}")))
}

/// The evaluation, recorded as its ref (input `self`).
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Eval(String);

/// The scores of one row: (scorer, value).
type Scores = Vec<(&'static str, Value)>;

impl Eval {
    #[weave::op(name = "Evaluation.evaluate", skip(rows, model))]
    fn evaluate(&self, model: &Model, rows: &[(&'static str, Scores)]) -> Value {
        let _ = model;
        for (id, scores) in rows {
            self.predict_and_score(model, &json!({"id": id, "q": id}), scores);
        }
        self.summarize()
    }

    #[weave::op(name = "Evaluation.predict_and_score", skip(model, scores))]
    fn predict_and_score(&self, model: &Model, example: &Value, scores: &Scores) -> Value {
        let q = example["q"].as_str().unwrap_or_default();
        match model.predict(q) {
            Err(e) => json!({"output": null, "scores": {}, "model_latency": TRICKY, "error": e}),
            Ok(out) => {
                let mut m = serde_json::Map::new();
                let mut errors = serde_json::Map::new();
                for (k, v) in scores {
                    if *k == "failing_scorer" {
                        let e = failing_scorer(&out).unwrap_err();
                        errors.insert(k.to_string(), json!(e.to_string()));
                    } else {
                        m.insert(k.to_string(), v.clone());
                    }
                }
                let mut v = json!({"output": out, "scores": m, "model_latency": TRICKY});
                if !errors.is_empty() {
                    v["scorer_errors"] = Value::Object(errors);
                }
                v
            }
        }
    }

    #[weave::op(name = "Evaluation.summarize")]
    fn summarize(&self) -> Value {
        json!({"abs_err": {"mean": 0.3}, "correct": {"true_count": 1, "true_fraction": 0.5},
               "model_latency": {"mean": TRICKY}})
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    run_a: String,
    run_b: String,
}

/// Two runs of one evaluation over rows r1..r6 with scorers `abs_err` (a number: lower is
/// better by its name), `correct` (a boolean) and `rank` (a number whose scorer object
/// declares `direction: "lower"`).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new(PROJECT)
        .db_path(&db)
        .quiet()
        .build()
        .unwrap();
    let scope = client.set_default();
    let rank_val = json!({"_type": "Scorer", "_class_name": "Scorer", "_bases": ["Object"],
                          "name": "rank", "direction": "lower"});
    let rank_digest = weave::digest::object_digest(&rank_val);
    let eval_val = json!({"_type": "Evaluation", "_class_name": "Evaluation",
        "_bases": ["Object", "BaseModel"], "name": "directions",
        "scorers": [format!("weave:///{PROJECT}/object/rank:{rank_digest}")], "trials": 1});
    let eval_digest = weave::digest::object_digest(&eval_val);
    let ev = Eval(format!(
        "weave:///{PROJECT}/object/directions:{eval_digest}"
    ));
    let n = |x: f64| json!(x);
    let a_rows: Vec<(&'static str, Scores)> = vec![
        ("r1", vec![("abs_err", n(0.5)), ("correct", json!(true))]),
        ("r2", vec![("abs_err", n(0.1)), ("correct", json!(true))]),
        ("r3", vec![("abs_err", n(0.1)), ("correct", json!(true))]),
        ("r4", vec![("abs_err", n(0.5)), ("correct", json!(true))]),
        ("r5", vec![("rank", n(3.0))]),
        (
            "r6",
            vec![("correct", json!(true)), ("failing_scorer", Value::Null)],
        ),
    ];
    let b_rows: Vec<(&'static str, Scores)> = vec![
        // Lower abs_err: better.
        ("r1", vec![("abs_err", n(0.1)), ("correct", json!(true))]),
        // Higher abs_err: worse.
        ("r2", vec![("abs_err", n(0.5)), ("correct", json!(true))]),
        // Predict fails on B.
        ("r3", vec![("abs_err", n(0.1)), ("correct", json!(true))]),
        // Better on one score, worse on another.
        ("r4", vec![("abs_err", n(0.1)), ("correct", json!(false))]),
        // Declared lower-is-better, going down.
        ("r5", vec![("rank", n(1.0))]),
        (
            "r6",
            vec![("correct", json!(true)), ("failing_scorer", Value::Null)],
        ),
    ];
    let model_a = Model {
        outputs: vec![
            ("r1", Ok("a")),
            ("r2", Ok("b")),
            ("r3", Ok("c")),
            ("r4", Ok("d")),
            ("r5", Ok("e")),
            ("r6", Ok("f")),
        ],
    };
    let model_b = Model {
        outputs: vec![
            ("r1", Ok("a")),
            ("r2", Ok("b")),
            ("r3", Err("model down")),
            ("r4", Ok("d")),
            ("r5", Ok("e")),
            ("r6", Ok("f")),
        ],
    };
    ev.evaluate(&model_a, &a_rows);
    ev.evaluate(&model_b, &b_rows);
    client.flush().expect("every record written");
    drop(scope);
    drop(client);

    let store = weave_store::SqliteStore::open(&db).unwrap();
    for (name, val, digest) in [
        ("rank", rank_val, rank_digest),
        ("directions", eval_val, eval_digest),
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
    drop(store);
    let runs = json_of(&db, &["evals", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    Fixture {
        run_b: runs[0]["id"].as_str().unwrap().to_string(),
        run_a: runs[1]["id"].as_str().unwrap().to_string(),
        db,
        _dir: dir,
    }
}

fn weave_cmd(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weave"))
        .env_remove("COLUMNS")
        .env_remove("WEAVE_PROJECT")
        .env_remove("WEAVE_DB")
        .env_remove("WEAVE_STORE")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn json_of(db: &Path, args: &[&str]) -> Value {
    let out = weave_cmd(db, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weave {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("weave {args:?}: {e}\n{stdout}"))
}

fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["row"] == json!(id))
        .unwrap_or_else(|| panic!("no row {id} in {rows:#}"))
}

#[test]
fn eval_json_keeps_a_scorers_error_per_row() {
    let f = fixture();
    let ej = json_of(&f.db, &["eval", &f.run_a, "--json"]);
    let r6 = row(&ej["rows"], "r6");
    assert_eq!(
        r6["scorer_errors"]["failing_scorer"],
        json!("scorer broke on f"),
        "{r6:#}"
    );
    assert_eq!(r6["scores"]["correct"], json!(true));
    // Rows whose scorers all ran have no scorer errors.
    assert_eq!(row(&ej["rows"], "r1")["scorer_errors"], json!({}));
}

#[test]
fn compare_classifies_rows_by_verdicts_and_direction() {
    let f = fixture();
    let cj = json_of(&f.db, &["compare", &f.run_a, &f.run_b, "--json"]);
    let rows = &cj["rows"];
    let change = |id: &str| row(rows, id)["change"].clone();
    assert_eq!(change("r1"), json!("improvement"), "abs_err went down");
    assert_eq!(change("r2"), json!("regression"), "abs_err went up");
    assert_eq!(change("r3"), json!("changed"), "predict failed on B");
    assert_eq!(
        change("r4"),
        json!("changed"),
        "one score better, one worse"
    );
    assert_eq!(
        change("r5"),
        json!("improvement"),
        "declared lower-is-better"
    );
    assert_eq!(
        rows.as_array().unwrap().len(),
        5,
        "r6 is the same: {rows:#}"
    );
    let metric = |m: &str| {
        cj["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == json!(m))
            .cloned()
            .unwrap_or_else(|| panic!("no metric {m}"))
    };
    assert_eq!(metric("abs_err.mean")["direction"], json!("lower"));
    assert_eq!(
        metric("correct.true_fraction")["direction"],
        json!("higher")
    );

    let text =
        String::from_utf8(weave_cmd(&f.db, &["compare", &f.run_a, &f.run_b]).stdout).unwrap();
    assert!(text.contains("5 differ: 1 regressed, 2 improved"), "{text}");
}

#[test]
fn op_names_match_as_users_write_them() {
    let f = fixture();
    let all = json_of(&f.db, &["calls", "--json", "--limit", "1000"]);
    let predicts = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["op_name"]
                .as_str()
                .unwrap()
                .contains("/op/Model.predict:")
        })
        .count();
    assert_eq!(predicts, 12);
    for spelled in ["Model.predict", "predict", "PREDICT", "model.Predict"] {
        let got = json_of(
            &f.db,
            &["calls", "--op", spelled, "--json", "--limit", "1000"],
        );
        assert_eq!(got.as_array().unwrap().len(), predicts, "--op {spelled}");
    }
    // `evaluate` is the suffix of `Evaluation.evaluate` only.
    let got = json_of(&f.db, &["calls", "--op", "evaluate", "--json"]);
    assert_eq!(got.as_array().unwrap().len(), 2);

    let out = weave_cmd(&f.db, &["calls", "--op", "predikt"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no op matches `predikt`"), "{err}");
    assert!(err.contains("Model.predict"), "lists the ops: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn reading_leaves_no_wal_or_shm_files() {
    let f = fixture();
    let side = |ext: &str| {
        let mut p = f.db.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    for ext in ["-wal", "-shm"] {
        assert!(!side(ext).exists(), "{ext} before reading");
    }
    for args in [
        vec!["calls"],
        vec!["evals"],
        vec!["eval", &f.run_a],
        vec!["ops"],
    ] {
        let out = weave_cmd(&f.db, &args);
        assert!(out.status.success(), "{args:?}");
        for ext in ["-wal", "-shm"] {
            assert!(!side(ext).exists(), "weave {args:?} left {ext}");
        }
    }
}

#[test]
fn a_damaged_store_is_named_in_the_error() {
    let f = fixture();
    let good = std::fs::read(&f.db).unwrap();
    let page = 4096;
    let pages = good.len() / page;
    assert!(pages > 8, "{pages} pages");
    let shown = f.db.display().to_string();
    let mut failures = 0;
    // One damaged page at a time, each page in turn (the first holds the schema).
    for p in 1..pages {
        let mut bytes = good.clone();
        bytes[p * page..(p + 1) * page].fill(0xA5);
        std::fs::write(&f.db, &bytes).unwrap();
        for args in [
            &["calls", "--limit", "1000"][..],
            &["eval", &f.run_a][..],
            &["ops", "--versions"][..],
            &["show", "directions"][..],
            &["trace", &f.run_b][..],
        ] {
            let out = weave_cmd(&f.db, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "page {p}: {err}");
            if !out.status.success() {
                failures += 1;
                assert!(err.contains(&shown), "page {p}, weave {args:?}: {err}");
            }
        }
    }
    assert!(failures > 0, "some damage must be noticed");
}

#[test]
fn floats_round_trip_exactly() {
    let f = fixture();
    let ej = json_of(&f.db, &["eval", &f.run_a, "--json"]);
    let lat = row(&ej["rows"], "r1")["latency_s"].as_f64().unwrap();
    assert_eq!(lat.to_bits(), TRICKY.to_bits(), "{lat:e} vs {TRICKY:e}");
    let out = weave_cmd(&f.db, &["eval", &f.run_a, "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{TRICKY:?}")), "{text}");
    let calls = json_of(
        &f.db,
        &["calls", "--op", "Evaluation.predict_and_score", "--json"],
    );
    for c in calls.as_array().unwrap() {
        let l = c["output"]["model_latency"].as_f64().unwrap();
        assert_eq!(l.to_bits(), TRICKY.to_bits());
    }
}

/// A row of the real-evaluation fixture: the model's output should equal `want`.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Target {
    x: i64,
    want: i64,
}

/// Adds `plus` to `x`.
#[derive(weave::Model, serde::Serialize)]
struct Adder {
    plus: i64,
}

#[weave::ops]
impl Adder {
    #[weave::op]
    fn predict(&self, x: i64) -> i64 {
        x + self.plus
    }
}

impl weave::eval::Predict<Target> for Adder {
    type Output = i64;
    async fn predict_row(&self, row: &Target) -> Result<i64, weave::eval::BoxError> {
        Ok(self.predict(row.x))
    }
}

/// How far off the output is: a name no rule knows, declared lower-is-better.
#[weave::op]
fn miss(row: &Target, output: &i64) -> f64 {
    (row.want - output).abs() as f64
}

/// `weave::eval::lower_is_better` stores the direction with the evaluation
/// (`score_directions`), and `compare` follows it: `miss` going down is an improvement,
/// though its name alone would say higher is better.
#[test]
fn compare_follows_the_directions_an_evaluation_declares() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new(PROJECT)
        .db_path(&db)
        .quiet()
        .build()
        .unwrap();
    let rows = vec![Target { x: 1, want: 3 }, Target { x: 2, want: 4 }];
    let eval = || {
        weave::eval::Evaluation::new(
            "declared",
            weave::eval::Dataset::from_rows("targets", &rows).unwrap(),
        )
        .scorer(weave::eval::lower_is_better(weave::scorer!(miss)))
        .progress(false)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    client.in_scope(|| {
        rt.block_on(async {
            // Off by 2 on every row, then exact.
            eval().evaluate(&Adder { plus: 0 }).await.unwrap();
            eval().evaluate(&Adder { plus: 2 }).await.unwrap();
        })
    });
    client.flush().expect("every record written");
    drop(client);
    let runs = json_of(&db, &["evals", "--json"]);
    let (newer, older) = (
        runs[0]["id"].as_str().unwrap(),
        runs[1]["id"].as_str().unwrap(),
    );
    let cj = json_of(&db, &["compare", older, newer, "--json"]);
    let rows = cj["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{cj:#}");
    for r in rows {
        assert_eq!(r["change"], json!("improvement"), "{cj:#}");
    }
    let miss_mean = cj["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == json!("miss.mean"))
        .unwrap_or_else(|| panic!("no miss.mean in {cj:#}"));
    assert_eq!(miss_mean["direction"], json!("lower"), "{cj:#}");
}

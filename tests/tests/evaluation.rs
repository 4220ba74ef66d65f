//! Evaluations end to end against the real store: call tree, summary numbers, errors,
//! parallelism and pass@k.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weave::eval::{scorer, try_scorer, BoxError, Dataset, Evaluation, Predict};
use weave_tests::Traced;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    x: i64,
    expected: i64,
}

/// Doubles `x`; fails on negative input; sleeps `delay_ms` to test overlap.
#[derive(weave::Model, Serialize)]
struct Doubler {
    delay_ms: u64,
}

#[weave::ops]
impl Doubler {
    #[weave::op]
    async fn predict(&self, x: i64) -> Result<i64, String> {
        if self.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        }
        if x < 0 {
            return Err(format!("negative input {x}"));
        }
        Ok(x * 2)
    }
}

impl Predict<Row> for Doubler {
    type Output = i64;
    async fn predict_row(&self, row: &Row) -> Result<i64, BoxError> {
        Ok(Doubler::predict(self, row.x).await?)
    }
}

#[weave::op]
fn exact(row: &Row, output: &i64) -> bool {
    row.expected == *output
}

#[weave::op]
fn distance(row: &Row, output: &i64) -> f64 {
    (row.expected - output).abs() as f64
}

#[derive(Serialize)]
struct Nested {
    close: bool,
    error: f64,
}

#[weave::op]
fn nested(row: &Row, output: &i64) -> Nested {
    let d = (row.expected - output).abs();
    Nested {
        close: d <= 1,
        error: d as f64,
    }
}

#[weave::op]
fn picky(_row: &Row, output: &i64) -> Result<bool, String> {
    if *output == 4 {
        Err("cannot score 4".into())
    } else {
        Ok(true)
    }
}

fn rows() -> Vec<Row> {
    vec![
        Row { x: 1, expected: 2 },  // exact
        Row { x: 2, expected: 5 },  // off by one (4 vs 5); picky fails
        Row { x: 3, expected: 10 }, // off by four
        Row { x: -1, expected: 0 }, // predict fails
    ]
}

fn eval() -> Evaluation<Row, i64> {
    Evaluation::new(
        "doubling",
        Dataset::from_rows("numbers", &rows()).expect("dataset"),
    )
    .scorer(scorer("exact", exact))
    .scorer(scorer("distance", distance))
    .scorer(scorer("nested", nested))
    .scorer(try_scorer("picky", picky))
    .progress(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_numbers_match_hand_computed_values() {
    let _t = Traced::new("evals");
    let res = eval()
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect("evaluate");
    let s = &res.summary;
    // exact: 1 true of 4 rows (the failed predict stays in the denominator).
    assert_eq!(s["exact"], json!({"true_count": 1, "true_fraction": 0.25}));
    // distance: mean over the 3 scored rows of 0, 1, 4.
    assert_eq!(s["distance"], json!({"mean": 5.0 / 3.0}));
    // nested: Weave drops the failed row under each key (it has `{}`), so 2 of 3.
    assert_eq!(
        s["nested"],
        json!({"close": {"true_count": 2, "true_fraction": 2.0 / 3.0}, "error": {"mean": 5.0 / 3.0}})
    );
    // picky failed on row 2 only: its error does not erase the other scores of that row.
    assert_eq!(s["picky"], json!({"true_count": 2, "true_fraction": 0.5}));
    assert_eq!(
        s["errors"],
        json!({"predict": 1, "scorers": {"exact": 0, "distance": 0, "nested": 0, "picky": 1}})
    );
    assert!(s["model_latency"]["mean"].as_f64().is_some());

    assert_eq!(res.rows.len(), 4);
    let r1 = &res.rows[1];
    assert_eq!(r1.output, Some(json!(4)));
    assert_eq!(r1.scores["exact"], json!(false));
    assert_eq!(r1.scores["distance"], json!(1.0));
    assert_eq!(r1.scorer_errors["picky"], "cannot score 4");
    let r3 = &res.rows[3];
    assert_eq!(r3.output, None);
    assert!(r3
        .error
        .as_deref()
        .unwrap_or("")
        .contains("negative input -1"));
    assert!(r3.scores.is_empty());
}

/// An async op scorer: it awaits (a timer here; a sandbox or an LLM judge in real life).
#[weave::op]
async fn async_exact(row: &Row, output: &i64) -> bool {
    tokio::time::sleep(Duration::from_millis(1)).await;
    row.expected == *output
}

/// An async op scorer that can fail.
#[weave::op]
async fn async_picky(_row: &Row, output: &i64) -> Result<bool, String> {
    tokio::task::yield_now().await;
    if *output == 4 {
        Err("cannot score 4".into())
    } else {
        Ok(true)
    }
}

mod checks {
    use super::Row;

    #[weave::op]
    pub fn within_one(row: &Row, output: &i64) -> bool {
        (row.expected - output).abs() <= 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_are_scorers_sync_or_async_named_after_the_op() {
    let t = Traced::new("evals");
    let res = Evaluation::new("ops", Dataset::from_rows("numbers", &rows()).expect("ds"))
        .scorer(weave::scorer!(exact))
        .scorer(weave::scorer!(async_exact))
        .scorer(weave::try_scorer!(async_picky))
        .scorer(weave::scorer!(checks::within_one))
        .progress(false)
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect("evaluate");
    let s = &res.summary;
    assert_eq!(s["async_exact"], s["exact"]);
    assert_eq!(s["exact"], json!({"true_count": 1, "true_fraction": 0.25}));
    assert_eq!(
        s["async_picky"],
        json!({"true_count": 2, "true_fraction": 0.5})
    );
    assert_eq!(
        s["within_one"],
        json!({"true_count": 2, "true_fraction": 0.5})
    );
    assert_eq!(res.rows[1].scorer_errors["async_picky"], "cannot score 4");
    // The async scorers' calls are children of the row's call, like the sync ones.
    let store = t.store();
    let root = store
        .calls(None)
        .into_iter()
        .find(|c| c.op_display_name() == "Evaluation.evaluate")
        .expect("root");
    let row0 = store
        .children(&root.id)
        .into_iter()
        .find(|c| c.inputs["example"]["x"] == json!(1))
        .expect("row 0");
    let kids: Vec<String> = store
        .children(&row0.id)
        .iter()
        .map(|c| c.op_display_name().to_string())
        .collect();
    for name in ["exact", "async_exact", "async_picky", "within_one"] {
        assert!(kids.iter().any(|k| k == name), "{name} not in {kids:?}");
    }
}

/// A scorer with no verdict for odd inputs (`None` is stored as `null`).
#[weave::op]
fn even_only(row: &Row, output: &i64) -> Option<bool> {
    (row.x % 2 == 0).then_some(row.expected == *output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scores_are_dropped_as_weave_drops_them() {
    let _t = Traced::new("evals");
    let data = vec![
        Row { x: 1, expected: 2 }, // no verdict
        Row { x: 2, expected: 4 }, // true
        Row { x: 3, expected: 6 }, // no verdict
        Row { x: 4, expected: 0 }, // false
    ];
    let res = Evaluation::new("sparse", Dataset::from_rows("sparse", &data).expect("ds"))
        .scorer(scorer("even_only", even_only))
        .progress(false)
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect("evaluate");
    // Weave's auto_summarize drops the two nulls: 1 of 2, not 1 of 4.
    assert_eq!(
        res.summary["even_only"],
        json!({"true_count": 1, "true_fraction": 0.5})
    );
    // Model latency is averaged over every row, as Weave does; outputs (numbers) too.
    assert!(res.summary["model_latency"]["mean"].as_f64().is_some());
    assert_eq!(res.summary["output"], json!({"mean": 5.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scorer_may_not_take_a_summary_key() {
    let _t = Traced::new("evals");
    let err = Evaluation::new("e", Dataset::from_rows("d", &rows()).expect("ds"))
        .scorer(scorer("model_latency", exact))
        .progress(false)
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect_err("reserved name");
    assert!(err.to_string().contains("`model_latency`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_tree_has_weave_shape() {
    let t = Traced::new("evals");
    eval()
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect("evaluate");
    let store = t.store();
    let roots = store.calls(Some(weave::types::CallsFilter {
        trace_roots_only: Some(true),
        ..Default::default()
    }));
    assert_eq!(roots.len(), 1, "{roots:#?}");
    let root = &roots[0];
    assert_eq!(root.op_display_name(), "Evaluation.evaluate");
    let eval_ref = root.inputs["self"].as_str().expect("self ref");
    assert!(eval_ref.contains("/object/doubling:"), "{eval_ref}");
    let model_ref = root.inputs["model"].as_str().expect("model ref");
    assert!(model_ref.contains("/object/Doubler:"), "{model_ref}");
    assert_eq!(
        root.output.as_ref().expect("summary")["exact"]["true_count"],
        1
    );

    let children = store.children(&root.id);
    let names: Vec<&str> = children.iter().map(|c| c.op_display_name()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "Evaluation.predict_and_score")
            .count(),
        4
    );
    assert_eq!(names.last(), Some(&"Evaluation.summarize"));
    for pas in children
        .iter()
        .filter(|c| c.op_display_name() == "Evaluation.predict_and_score")
    {
        let kids = store.children(&pas.id);
        let kid_names: Vec<&str> = kids.iter().map(|c| c.op_display_name()).collect();
        assert!(kid_names.contains(&"Doubler.predict"), "{kid_names:?}");
        assert_eq!(pas.inputs["model"], json!(model_ref));
        if pas.inputs["example"]["x"] == json!(-1) {
            assert_eq!(
                kid_names,
                vec!["Doubler.predict"],
                "no scorer runs without output"
            );
            assert!(pas.output.as_ref().expect("out")["error"].is_string());
        } else {
            for s in ["exact", "distance", "nested", "picky"] {
                assert!(kid_names.contains(&s), "{s} missing in {kid_names:?}");
            }
        }
    }
    // The evaluation object links to the dataset version.
    let ev = store.resolve(eval_ref).expect("stored");
    assert_eq!(ev.base_object_class.as_deref(), Some("Evaluation"));
    let ds_ref = ev.val["dataset"].as_str().expect("dataset ref");
    let ds = store.resolve(ds_ref).expect("dataset stored");
    assert_eq!(ds.base_object_class.as_deref(), Some("Dataset"));
    let table = ds.val["rows"].as_str().expect("rows ref");
    let digest = table.rsplit('/').next().expect("digest");
    let stored_rows = store.table_rows(digest);
    assert_eq!(stored_rows.len(), 4);
    assert_eq!(stored_rows[2].1, json!({"x": 3, "expected": 10}));
    // Root summary rolls up every call in the tree.
    let counts = &root.summary["status_counts"];
    // One failed predict and one failed scorer call.
    assert_eq!(counts["error"], json!(2), "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_run_in_parallel() {
    let many: Vec<Row> = (0..20).map(|x| Row { x, expected: 2 * x }).collect();
    let ev = Evaluation::new("par", Dataset::from_rows("many", &many).expect("ds"))
        .scorer(scorer("exact", exact))
        .parallelism(10)
        .progress(false);
    let start = Instant::now();
    let res = ev
        .evaluate(&Doubler { delay_ms: 200 })
        .await
        .expect("evaluate");
    let wall = start.elapsed();
    assert_eq!(res.summary["exact"]["true_count"], 20);
    // Serial would take 20 x 200 ms = 4 s; with 10 at once about 0.4 s.
    assert!(wall < Duration::from_millis(2500), "took {wall:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_give_pass_at_k() {
    // Row 0 passes on trials 0, 2 (2 of 5); row 1 always passes (5 of 5).
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    #[derive(weave::Model, Serialize)]
    struct Flaky;
    impl Predict<Row> for Flaky {
        type Output = i64;
        async fn predict_row(&self, row: &Row) -> Result<i64, BoxError> {
            let _ = CALLS.fetch_add(1, Ordering::SeqCst);
            Ok(row.x)
        }
    }
    let data = vec![Row { x: 0, expected: 0 }, Row { x: 1, expected: 1 }];
    let counter = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::HashMap::<i64, usize>::new(),
    ));
    let c2 = counter.clone();
    let ev = Evaluation::new("trials", Dataset::from_rows("two", &data).expect("ds"))
        .scorer(scorer("ok", move |row: &Row, out: &i64| {
            let mut m = c2.lock().expect("lock");
            let n = m.entry(row.x).or_default();
            let this = *n;
            *n += 1;
            if row.x == 0 {
                this.is_multiple_of(2) && this < 4 && *out == 0
            } else {
                true
            }
        }))
        .trials(5)
        .parallelism(1)
        .progress(false);
    let res = ev.evaluate(&Flaky).await.expect("evaluate");
    assert_eq!(CALLS.load(Ordering::SeqCst), 10);
    let ok = &res.summary["ok"];
    assert_eq!(ok["true_count"], 7);
    // pass@1: mean(2/5, 1) = 0.7; pass@10 is absent since 10 > 5 trials.
    assert!(
        (ok["pass@1"].as_f64().expect("pass@1") - 0.7).abs() < 1e-9,
        "{ok}"
    );
    assert!(ok.get("pass@10").is_none());
}

#[test]
fn bad_rows_fail_before_anything_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let p = dir.path().join("rows.jsonl");
    std::fs::write(&p, "{\"x\": 1, \"expected\": 2}\n{\"x\": 3}\n").expect("write");
    let err = Dataset::load_typed::<Row>("d", &p).expect_err("missing field");
    let msg = err.to_string();
    assert!(msg.contains("rows.jsonl:2"), "{msg}");
    assert!(msg.contains("expected"), "{msg}");

    std::fs::write(&p, "{\"x\": 1, \"expected\": 2}\nnot json\n").expect("write");
    let msg = Dataset::from_jsonl("d", &p)
        .expect_err("bad json")
        .to_string();
    assert!(
        msg.contains("rows.jsonl:2") && msg.contains("invalid JSON"),
        "{msg}"
    );

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ds = Dataset::new("d", vec![json!({"x": 1})]);
    let ev: Evaluation<Row, i64> = Evaluation::new("e", ds)
        .scorer(scorer("exact", exact))
        .progress(false);
    let msg = rt
        .block_on(ev.evaluate(&Doubler { delay_ms: 0 }))
        .expect_err("row mismatch")
        .to_string();
    assert!(msg.contains(":1:") && msg.contains("expected"), "{msg}");
}

#[test]
fn gzip_jsonl_and_json_array_load() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("dir");
    let gz = dir.path().join("rows.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(b"{\"x\": 1, \"expected\": 2}\n{\"x\": 2, \"expected\": 4}\n")
        .expect("write");
    enc.finish().expect("finish");
    let (ds, rows) = Dataset::load_typed::<Row>("g", &gz).expect("gz");
    assert_eq!(rows.len(), 2);
    let arr = dir.path().join("rows.json");
    std::fs::write(&arr, serde_json::to_string(ds.rows()).expect("json")).expect("write");
    let ds2 = Dataset::from_path("a", &arr).expect("array");
    assert_eq!(ds2.rows(), ds.rows());
    assert_eq!(ds2.row_digests(), ds.row_digests());
    let mut changed: Vec<Value> = ds.rows().to_vec();
    changed[1]["expected"] = json!(5);
    let ds3 = Dataset::new("g", changed);
    assert_eq!(ds3.row_digests()[0], ds.row_digests()[0]);
    assert_ne!(ds3.row_digests()[1], ds.row_digests()[1]);
    assert_ne!(ds3.table_digest(), ds.table_digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_direction_is_stored_with_the_evaluation() {
    use weave::eval::{higher_is_better, lower_is_better};
    let t = Traced::new("evals");
    Evaluation::new(
        "directed",
        Dataset::from_rows("numbers", &rows()).expect("ds"),
    )
    .scorer(higher_is_better(weave::scorer!(exact)))
    .scorer(lower_is_better(weave::scorer!(distance)))
    .scorer(weave::scorer!(nested))
    .progress(false)
    .evaluate(&Doubler { delay_ms: 0 })
    .await
    .expect("evaluate");
    eval()
        .evaluate(&Doubler { delay_ms: 0 })
        .await
        .expect("evaluate");
    let store = t.store();
    let runs: Vec<_> = store
        .calls(None)
        .into_iter()
        .filter(|c| c.op_display_name() == "Evaluation.evaluate")
        .collect();
    let directed = store
        .resolve(runs[0].inputs["self"].as_str().expect("ref"))
        .expect("stored");
    assert_eq!(
        directed.val["score_directions"],
        json!({"exact": "higher_is_better", "distance": "lower_is_better"})
    );
    let plain = store
        .resolve(runs[1].inputs["self"].as_str().expect("ref"))
        .expect("stored");
    assert!(plain.val.get("score_directions").is_none(), "{}", plain.val);
}

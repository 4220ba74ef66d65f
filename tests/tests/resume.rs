//! Resuming an interrupted evaluation from the store: finished rows are kept (the model is not
//! asked again), the rest run, and the result equals an uninterrupted run's; a run that
//! differs (model version, dataset version, scorers, trials) is refused unless forced.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weave::eval::{
    scorer, BoxError, Dataset, Evaluation, EvaluationResults, Predict, ResumeFrom, RowResult,
};
use weave_tests::Traced;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    x: i64,
    expected: i64,
}

/// What a model saw: the inputs it was asked for, and whether rows from 3 on hang.
#[derive(Default)]
struct Log {
    asked: Mutex<Vec<i64>>,
    hold: AtomicBool,
}

/// Doubles `x`; while `hold` is set, rows with `x >= 3` never finish (the run is then
/// dropped, as Ctrl-C does).
#[derive(weave::Model, Serialize)]
struct Gated {
    factor: i64,
    #[weave(skip)]
    #[serde(skip)]
    log: Arc<Log>,
}

impl Predict<Row> for Gated {
    type Output = i64;
    async fn predict_row(&self, row: &Row) -> Result<i64, BoxError> {
        self.log.asked.lock().expect("lock").push(row.x);
        if row.x >= 3 && self.log.hold.load(Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        Ok(row.x * self.factor)
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

fn data() -> Vec<Row> {
    // Rows 1 and 4 are answered wrongly by a doubler.
    (0..6)
        .map(|x| Row {
            x,
            expected: if x == 1 || x == 4 { 2 * x + 1 } else { 2 * x },
        })
        .collect()
}

fn evaluation(rows: &[Row]) -> Evaluation<Row, i64> {
    Evaluation::new(
        "resumable",
        Dataset::from_rows("numbers", rows).expect("ds"),
    )
    .scorer(scorer("exact", exact))
    .scorer(scorer("distance", distance))
    .parallelism(2)
    .progress(false)
}

fn gated(log: &Arc<Log>) -> Gated {
    Gated {
        factor: 2,
        log: log.clone(),
    }
}

/// Runs `ev` until rows 3 and 4 are both in predict (so rows 0..=2 have finished, with two
/// rows at a time), then drops the run. Returns the interrupted run's call id.
async fn interrupted_run(t: &Traced, ev: &Evaluation<Row, i64>, log: &Arc<Log>) -> String {
    log.hold.store(true, Ordering::SeqCst);
    let model = gated(log);
    tokio::select! {
        r = ev.evaluate(&model) => panic!("the run should hang on row 3: {r:?}"),
        () = both_waiting(log) => {}
    }
    log.hold.store(false, Ordering::SeqCst);
    log.asked.lock().expect("lock").clear();
    let store = t.store();
    let runs: Vec<_> = store
        .calls(None)
        .into_iter()
        .filter(|c| c.op_display_name() == weave::eval::EVALUATE)
        .collect();
    assert_eq!(runs.len(), 1);
    runs[0].id.clone()
}

/// Returns once rows 3 and 4 are both in predict.
async fn both_waiting(log: &Log) {
    loop {
        {
            let asked = log.asked.lock().expect("lock");
            if asked.contains(&3) && asked.contains(&4) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Rows without the timing (which differs from run to run).
fn timeless(rows: &[RowResult]) -> Vec<RowResult> {
    rows.iter()
        .map(|r| RowResult {
            model_latency: 0.0,
            ..r.clone()
        })
        .collect()
}

fn timeless_summary(r: &EvaluationResults) -> Value {
    let mut s = r.summary.clone();
    s.as_object_mut().expect("object").remove("model_latency");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_runs_only_unfinished_rows_and_equals_an_uninterrupted_run() {
    let t = Traced::new("resume");
    let log = Arc::new(Log::default());
    let ev = evaluation(&data());
    let old = interrupted_run(&t, &ev, &log).await;

    let store = t.store();
    let model = gated(&log);
    let plan = ev
        .plan_resume(&store.inner, &model, &ResumeFrom::Latest, false)
        .await
        .expect("plan");
    assert_eq!(plan.call_id, old);
    let kept: BTreeSet<usize> = plan.kept.iter().map(|k| k.result.example).collect();
    assert_eq!(kept, BTreeSet::from([0, 1, 2]));
    assert!(plan.differences.is_empty());

    let resumed = ev.resume(&model, plan).await.expect("resume");
    let asked: BTreeSet<i64> = log.asked.lock().expect("lock").iter().copied().collect();
    assert_eq!(
        asked,
        BTreeSet::from([3, 4, 5]),
        "finished rows were asked again"
    );

    log.asked.lock().expect("lock").clear();
    let fresh = ev.evaluate(&model).await.expect("uninterrupted run");
    assert_eq!(log.asked.lock().expect("lock").len(), 6);
    assert_eq!(timeless_summary(&resumed), timeless_summary(&fresh));
    assert_eq!(
        resumed.summary["exact"],
        json!({"true_count": 4, "true_fraction": 4.0 / 6.0})
    );
    assert_eq!(timeless(&resumed.rows), timeless(&fresh.rows));

    // The trace: a new run, linked to the old one, its kept rows marked.
    let store = t.store();
    let new_id = resumed.call_id.clone().expect("call id");
    let new_run = store
        .calls(None)
        .into_iter()
        .find(|c| c.id == new_id)
        .expect("new run");
    assert_eq!(new_run.attributes["resume"]["resumed_from"], json!(old));
    assert_eq!(new_run.attributes["resume"]["reused_rows"], json!(3));
    assert_eq!(new_run.status(), weave::types::CallStatus::Success);
    let rows = store.children(&new_id);
    let reused: Vec<_> = rows
        .iter()
        .filter(|c| c.attributes.get("resume").is_some())
        .collect();
    assert_eq!(reused.len(), 3);
    let old_rows: BTreeSet<String> = store.children(&old).into_iter().map(|c| c.id).collect();
    for r in &reused {
        let from = r.attributes["resume"]["reused_from_call"]
            .as_str()
            .expect("reused_from_call");
        assert!(
            old_rows.contains(from),
            "{from} is not a row of the old run"
        );
        assert!(
            store.children(&r.id).is_empty(),
            "a kept row calls neither the model nor the scorers"
        );
    }
    // Both runs are accounted for: nothing is left to resume.
    let err = ev
        .plan_resume(&store.inner, &model, &ResumeFrom::Latest, false)
        .await
        .expect_err("nothing left");
    assert!(matches!(err, weave::Error::NothingToResume { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_interrupted_again_resumes_with_every_finished_row() {
    let t = Traced::new("resume");
    let log = Arc::new(Log::default());
    let rows: Vec<Row> = (0..8).map(|x| Row { x, expected: 2 * x }).collect();
    let ev = evaluation(&rows);
    let first = interrupted_run(&t, &ev, &log).await;
    // Resume, and interrupt that too: rows 3 and 4 hang again; 5 and 6, 7 wait behind them.
    let model = gated(&log);
    let plan = ev
        .plan_resume(&t.store().inner, &model, &ResumeFrom::Latest, false)
        .await
        .expect("plan");
    assert_eq!(plan.call_id, first);
    log.hold.store(true, Ordering::SeqCst);
    tokio::select! {
        r = ev.resume(&model, plan) => panic!("should hang: {r:?}"),
        () = both_waiting(&log) => {}
    }
    log.hold.store(false, Ordering::SeqCst);
    log.asked.lock().expect("lock").clear();
    // The second run is now the one to resume; it holds the first run's rows too.
    let plan = ev
        .plan_resume(&t.store().inner, &model, &ResumeFrom::Latest, false)
        .await
        .expect("plan");
    assert_ne!(plan.call_id, first);
    let kept: BTreeSet<usize> = plan.kept.iter().map(|k| k.result.example).collect();
    assert_eq!(kept, BTreeSet::from([0, 1, 2]));
    let res = ev.resume(&model, plan).await.expect("resume");
    let asked: BTreeSet<i64> = log.asked.lock().expect("lock").iter().copied().collect();
    assert_eq!(asked, BTreeSet::from([3, 4, 5, 6, 7]));
    assert_eq!(res.summary["exact"]["true_count"], 8);
    assert_eq!(res.rows.len(), 8);
}

/// Each guard rail refuses, naming what differs; forcing goes ahead and records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_different_run_and_says_why() {
    let t = Traced::new("resume");
    let log = Arc::new(Log::default());
    let ev = evaluation(&data());
    let old = interrupted_run(&t, &ev, &log).await;
    let store = t.store();
    let from = ResumeFrom::Call(old.clone());

    let other_model = Gated {
        factor: 3,
        log: log.clone(),
    };
    let err = ev
        .plan_resume(&store.inner, &other_model, &from, false)
        .await
        .expect_err("model differs");
    let msg = err.to_string();
    assert!(msg.contains("model version"), "{msg}");
    assert!(
        !msg.contains("dataset") && !msg.contains("scorers"),
        "{msg}"
    );

    let mut changed = data();
    changed[5].expected = 99;
    let err = evaluation(&changed)
        .plan_resume(&store.inner, &gated(&log), &from, false)
        .await
        .expect_err("dataset differs");
    let msg = err.to_string();
    assert!(msg.contains("dataset version"), "{msg}");

    let fewer = Evaluation::new(
        "resumable",
        Dataset::from_rows("numbers", &data()).expect("ds"),
    )
    .scorer(scorer("exact", exact))
    .parallelism(2)
    .progress(false);
    let err = fewer
        .plan_resume(&store.inner, &gated(&log), &from, false)
        .await
        .expect_err("scorers differ");
    let msg = err.to_string();
    assert!(msg.contains("scorers"), "{msg}");
    assert!(
        msg.contains("[exact, distance]") && msg.contains("[exact]"),
        "{msg}"
    );

    let err = evaluation(&data())
        .trials(3)
        .plan_resume(&store.inner, &gated(&log), &from, false)
        .await
        .expect_err("trials differ");
    let msg = err.to_string();
    assert!(
        msg.contains("trials: the interrupted run had 1, this one has 3"),
        "{msg}"
    );

    // Forced: the kept rows are used, and the difference is on record.
    let plan = evaluation(&changed)
        .plan_resume(&store.inner, &gated(&log), &from, true)
        .await
        .expect("forced");
    assert_eq!(plan.kept.len(), 3);
    assert!(plan.differences[0].contains("dataset version"));
    let res = evaluation(&changed)
        .resume(&gated(&log), plan)
        .await
        .expect("forced resume");
    let id = res.call_id.expect("id");
    let run = t
        .store()
        .calls(None)
        .into_iter()
        .find(|c| c.id == id)
        .expect("run");
    assert!(run.attributes["resume"]["forced"][0]
        .as_str()
        .is_some_and(|s| s.contains("dataset version")));

    // A finished run is not resumed (unless forced).
    let err = ev
        .plan_resume(&t.store().inner, &gated(&log), &ResumeFrom::Call(id), false)
        .await
        .expect_err("finished");
    assert!(err.to_string().contains("already finished"), "{err}");
}

/// A run whose process is alive (this one) is not resumed: its rows would run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_running_is_not_resumed() {
    let t = Traced::new("resume");
    let log = Arc::new(Log::default());
    let ev = evaluation(&data());
    log.hold.store(true, Ordering::SeqCst);
    let model = gated(&log);
    let check = async {
        both_waiting(&log).await;
        let store = t.store();
        let run = store
            .calls(None)
            .into_iter()
            .find(|c| c.op_display_name() == weave::eval::EVALUATE)
            .expect("run");
        assert_eq!(run.status(), weave::types::CallStatus::Running);
        let err = ev
            .plan_resume(&store.inner, &model, &ResumeFrom::Latest, false)
            .await
            .expect_err("still running");
        assert!(err.to_string().contains("still running"), "{err}");
        ev.plan_resume(&store.inner, &model, &ResumeFrom::Latest, true)
            .await
            .expect("forced")
    };
    let plan = tokio::select! {
        r = ev.evaluate(&model) => panic!("should hang: {r:?}"),
        plan = check => plan,
    };
    assert_eq!(plan.kept.len(), 3);
}

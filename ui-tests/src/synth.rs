//! Synthetic data in project [`PROJECT`], logged through [`TraceStore`] the way clients do:
//! a 10,001-call trace (50 steps of 199 calls under one root), a call with 1 MiB values, a
//! call whose inputs, output and name hold `<script>` and HTML, a call still running, an op
//! with two versions, and two runs of a 1,000-row evaluation that differ on known rows.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use weave_store::TraceStore;
use weave_types::{
    CallStartReq, CallsCompleteReq, CompleteCallSchemaForInsert, ObjCreateReq, ObjSchemaForInsert,
    StartedCallSchemaForInsert, TableCreateReq, TableSchemaForInsert,
};

/// The synthetic project.
pub const PROJECT: &str = "ui/synthetic";
/// Rows of the synthetic evaluation.
pub const EVAL_ROWS: usize = 1000;
/// Steps under the big trace's root, and calls under each step.
pub const STEPS: usize = 50;
/// Calls under each step of the big trace.
pub const LEAVES: usize = 199;
/// Characters of each huge value.
pub const HUGE: usize = 1 << 20;
/// The hostile input.
pub const HOSTILE_INPUT: &str =
    "<img src=x onerror=\"window.__pwned = 3\"><script>window.__pwned = 4</script>";
/// The hostile output.
pub const HOSTILE_OUTPUT: &str = "<b>bold</b><script>window.__pwned = 5</script>";
/// The hostile call's display name.
pub const HOSTILE_NAME: &str = "<i>hostile</i> render";

/// Ids of what was logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Synthetic {
    /// Root of the 10,001-call trace.
    pub big_trace_root: String,
    /// Calls in that trace.
    pub big_trace_calls: usize,
    /// The call with 1 MiB input and output.
    pub huge_call: String,
    /// The hostile call.
    pub hostile_call: String,
    /// The running call.
    pub running_call: String,
    /// The two evaluation runs (baseline first).
    pub eval_runs: [String; 2],
    /// Rows where the second run is worse.
    pub regressions: Vec<String>,
    /// Rows where the second run is better.
    pub improvements: Vec<String>,
}

/// Microseconds of 2026-05-04T09:00:00Z.
const T0: i64 = 1_777_885_200_000_000;

fn ts(ms_from_t0: i64) -> String {
    weave_types::time::format_micros(T0 + ms_from_t0 * 1000)
}

/// A UUIDv7-shaped id.
fn id(kind: u32, n: u64) -> String {
    format!("019e{kind:04x}-0000-7000-8000-{n:012x}")
}

async fn publish(store: &dyn TraceStore, name: &str, val: Value) -> Result<String> {
    let res = store
        .obj_create(ObjCreateReq {
            obj: ObjSchemaForInsert {
                project_id: PROJECT.into(),
                object_id: name.into(),
                val,
                ..Default::default()
            },
        })
        .await?;
    Ok(res.digest)
}

async fn op(store: &dyn TraceStore, name: &str, code: &str) -> Result<String> {
    let digest = publish(
        store,
        name,
        json!({"_type": "Op", "name": name, "code": code, "language": "rust",
               "module": "synthetic", "file": "src/synthetic.rs", "line": 1}),
    )
    .await?;
    Ok(format!("weave:///{PROJECT}/op/{name}:{digest}"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn call(
    id: String,
    trace: &str,
    parent: Option<&str>,
    op_name: &str,
    start_ms: i64,
    end_ms: i64,
    inputs: Value,
    output: Value,
) -> CompleteCallSchemaForInsert {
    CompleteCallSchemaForInsert {
        project_id: PROJECT.into(),
        id,
        trace_id: trace.into(),
        op_name: op_name.into(),
        started_at: ts(start_ms),
        ended_at: ts(end_ms),
        parent_id: parent.map(str::to_string),
        inputs: obj(inputs),
        output,
        ..Default::default()
    }
}

async fn complete(store: &dyn TraceStore, calls: Vec<CompleteCallSchemaForInsert>) -> Result<()> {
    for chunk in calls.chunks(1000) {
        store
            .calls_complete(CallsCompleteReq {
                batch: chunk.to_vec(),
            })
            .await
            .context("logging synthetic calls")?;
    }
    Ok(())
}

/// Logs everything into `store`.
pub async fn build(store: &dyn TraceStore) -> Result<Synthetic> {
    // Ops; `leaf` has two versions (the second is the one called).
    let pipeline = op(
        store,
        "pipeline",
        "fn pipeline(n: usize) -> Vec<Step> {\n    (0..n).map(step).collect()\n}\n",
    )
    .await?;
    let step = op(
        store,
        "step",
        "fn step(i: usize) -> Step {\n    Step::run(i)\n}\n",
    )
    .await?;
    op(
        store,
        "leaf",
        "fn leaf(x: u64) -> u64 {\n    // first version\n    x + 1\n}\n",
    )
    .await?;
    let leaf = op(
        store,
        "leaf",
        "fn leaf(x: u64) -> u64 {\n    // second version: doubles\n    x * 2\n}\n",
    )
    .await?;

    // The big trace: 1 + 50 + 50 * 199 calls, 60 s long.
    let trace = id(1, 0);
    let root = id(1, 1);
    let mut calls = vec![call(
        root.clone(),
        &trace,
        None,
        &pipeline,
        0,
        60_000,
        json!({"n": STEPS}),
        json!({"steps": STEPS, "ok": true}),
    )];
    let mut n = 2u64;
    for s in 0..STEPS {
        let sid = id(1, n);
        n += 1;
        let s0 = 100 + s as i64 * 1_190;
        let mut step_call = call(
            sid.clone(),
            &trace,
            Some(&root),
            &step,
            s0,
            s0 + 1_000,
            json!({"i": s}),
            json!({"step": s}),
        );
        step_call.summary = obj(json!({"usage": {"gpt-synthetic": {
            "prompt_tokens": 100 + s, "completion_tokens": 20, "total_tokens": 120 + s, "requests": 1}}})).into();
        calls.push(step_call);
        for l in 0..LEAVES {
            let l0 = s0 + 2 + l as i64 * 5;
            let mut c = call(
                id(1, n),
                &trace,
                Some(&sid),
                &leaf,
                l0,
                l0 + 4,
                json!({"x": l}),
                json!(l * 2),
            );
            n += 1;
            if s == 7 && l == 100 {
                c.output = Value::Null;
                c.exception = Some(
                    json!({"type": "Overflow", "message": "leaf 100 of step 7 overflowed",
                           "traceback": "panicked at src/synthetic.rs:3:5"})
                    .to_string(),
                );
            }
            calls.push(c);
        }
    }
    let big_trace_calls = calls.len();
    complete(store, calls).await?;

    // 1 MiB values.
    let summarize = op(
        store,
        "summarize_document",
        "fn summarize_document(document: &str) -> String {\n    document.repeat(1)\n}\n",
    )
    .await?;
    let huge_call = id(2, 1);
    let doc: String = "All work and no play makes a long document. "
        .chars()
        .cycle()
        .take(HUGE)
        .collect();
    let out: String = "The summary repeats itself. "
        .chars()
        .cycle()
        .take(HUGE)
        .collect();
    complete(
        store,
        vec![call(
            huge_call.clone(),
            &id(2, 0),
            None,
            &summarize,
            70_000,
            71_500,
            json!({"document": doc, "style": "short"}),
            json!(out),
        )],
    )
    .await?;

    // Hostile values.
    let render = op(
        store,
        "render_html",
        "fn render_html(html: &str) -> String {\n    html.to_string()\n}\n",
    )
    .await?;
    let hostile_call = id(3, 1);
    let mut hostile = call(
        hostile_call.clone(),
        &id(3, 0),
        None,
        &render,
        80_000,
        80_020,
        json!({"html": HOSTILE_INPUT, "note": "</td></tr><tr><td>broken table"}),
        json!(HOSTILE_OUTPUT),
    );
    hostile.display_name = Some(HOSTILE_NAME.into());
    complete(store, vec![hostile]).await?;

    // A call still running.
    let long_job = op(store, "long_job", "fn long_job() {\n    loop {}\n}\n").await?;
    let running_call = id(4, 1);
    store
        .call_start(CallStartReq {
            start: StartedCallSchemaForInsert {
                project_id: PROJECT.into(),
                id: Some(running_call.clone()),
                trace_id: Some(id(4, 0)),
                op_name: long_job,
                started_at: ts(90_000),
                inputs: obj(json!({"job": "forever"})),
                ..Default::default()
            },
        })
        .await?;

    // A 1,000-row evaluation, two runs.
    let rows: Vec<Value> = (0..EVAL_ROWS)
        .map(|i| json!({"id": format!("q{i:04}"), "question": format!("What is {i} + {i}?"), "answer": (2 * i).to_string()}))
        .collect();
    let table = store
        .table_create(TableCreateReq {
            table: TableSchemaForInsert {
                project_id: PROJECT.into(),
                rows: rows.clone(),
                expected_digest: None,
            },
        })
        .await?;
    let ds_digest = publish(
        store,
        "qa",
        json!({"_type": "Dataset", "_class_name": "Dataset", "_bases": ["Object", "BaseModel"],
               "name": "qa", "description": null,
               "rows": format!("weave:///{PROJECT}/table/{}", table.digest)}),
    )
    .await?;
    let ds_ref = format!("weave:///{PROJECT}/object/qa:{ds_digest}");
    let eval_digest = publish(
        store,
        "qa-eval",
        json!({"_type": "Evaluation", "_class_name": "Evaluation", "_bases": ["Evaluation", "Object", "BaseModel"],
               "name": "qa-eval", "dataset": ds_ref, "scorers": ["exact"], "trials": 1}),
    )
    .await?;
    let eval_ref = format!("weave:///{PROJECT}/object/qa-eval:{eval_digest}");
    let evaluate = op(
        store,
        "Evaluation.evaluate",
        "async fn evaluate(&self, model: &M) -> Value { .. }\n",
    )
    .await?;
    let pas = op(
        store,
        "Evaluation.predict_and_score",
        "async fn predict_and_score(&self, model: &M, example: &Value) -> Value { .. }\n",
    )
    .await?;
    let correct_a = |i: usize| i % 10 != 3;
    let correct_b = |i: usize| i % 10 != 7 && i % 50 != 1;
    let mut runs = Vec::new();
    for (r, (temperature, model_name)) in [(0.0, "qa-small"), (0.7, "qa-large")]
        .into_iter()
        .enumerate()
    {
        let model_digest = publish(
            store,
            "QAModel",
            json!({"_type": "QAModel", "_class_name": "QAModel", "_bases": ["Model", "Object", "BaseModel"],
                   "name": "QAModel", "model_name": model_name, "temperature": temperature}),
        )
        .await?;
        let model_ref = format!("weave:///{PROJECT}/object/QAModel:{model_digest}");
        let trace = id(5 + r as u32, 0);
        let run = id(5 + r as u32, 1);
        let start = 100_000 + r as i64 * 200_000;
        let mut calls = Vec::new();
        let mut passed = 0;
        for (i, row) in rows.iter().enumerate() {
            let ok = if r == 0 { correct_a(i) } else { correct_b(i) };
            passed += usize::from(ok);
            let answer = row["answer"].as_str().unwrap_or_default().to_string();
            let t = start + 10 + i as i64 * 100;
            calls.push(call(
                id(5 + r as u32, 2 + i as u64),
                &trace,
                Some(&run),
                &pas,
                t,
                t + 80,
                json!({"self": eval_ref, "model": model_ref,
                       "example": format!("{ds_ref}/attr/rows/id/{}", table.row_digests[i])}),
                json!({"output": if ok { answer } else { format!("{} (wrong)", i * 3) },
                       "scores": {"exact": {"correct": ok}}, "model_latency": 0.05 + r as f64 * 0.03}),
            ));
        }
        calls.push(call(
            run.clone(),
            &trace,
            None,
            &evaluate,
            start,
            start + 10 + EVAL_ROWS as i64 * 100 + 50,
            json!({"self": eval_ref, "model": model_ref}),
            json!({"exact": {"correct": {"true_count": passed, "true_fraction": passed as f64 / EVAL_ROWS as f64}},
                   "model_latency": {"mean": 0.05 + r as f64 * 0.03}}),
        ));
        complete(store, calls).await?;
        runs.push(run);
    }
    let label = |i: usize| format!("q{i:04}");
    Ok(Synthetic {
        big_trace_root: root,
        big_trace_calls,
        huge_call,
        hostile_call,
        running_call,
        eval_runs: [runs[0].clone(), runs[1].clone()],
        regressions: (0..EVAL_ROWS)
            .filter(|&i| correct_a(i) && !correct_b(i))
            .map(label)
            .collect(),
        improvements: (0..EVAL_ROWS)
            .filter(|&i| !correct_a(i) && correct_b(i))
            .map(label)
            .collect(),
    })
}

//! How evaluation runs look in the store; everything that knows that shape is here.
//!
//! A run is a call of op `Evaluation.evaluate` with inputs `{"self": <evaluation ref>,
//! "model": <model ref>}` and output the summary (per scorer `{true_count, true_fraction}` or
//! `{mean}` or nested maps; `model_latency: {mean}`; maybe `errors`). The `Evaluation` object
//! has `{name, dataset: <dataset ref>, scorers, trials}`. The run's children are
//! `Evaluation.predict_and_score` calls (inputs `{"self", "model", "example"}`, output
//! `{"output", "scores": {scorer: score}, "model_latency": seconds}`), each with children the
//! model's predict call and one call per scorer; the last child is `Evaluation.summarize`.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use weave_types::{CallSchema, ObjSchema};

use crate::db::{CallQuery, Db};
use crate::fmt;

pub use weave_types::eval::{EVALUATE, PREDICT_AND_SCORE, SUMMARIZE};

/// Summary keys that are not scorers.
fn is_meta_key(k: &str) -> bool {
    matches!(k, "model_latency" | "errors" | "error_count")
}

/// One evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub started_at: String,
    pub status: String,
    pub latency_ms: Option<i64>,
    /// Evaluation name (`name` of the Evaluation object, else its object name).
    pub evaluation: String,
    pub evaluation_ref: Option<String>,
    /// `Model:vN`.
    pub model: String,
    pub model_ref: Option<String>,
    /// `dataset:vN`.
    pub dataset: Option<String>,
    pub dataset_ref: Option<String>,
    /// The run's output.
    pub summary: Value,
    #[serde(skip)]
    pub call: CallSchema,
}

/// One row of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The example's `id`, else its position.
    pub row: String,
    /// Identity to match rows across runs: `id` or the example JSON.
    #[serde(skip)]
    pub key: String,
    pub call_id: String,
    pub example: Value,
    pub output: Value,
    pub scores: Map<String, Value>,
    /// Per scorer that failed on this row, its error (the row's `scorer_errors`, and the
    /// scorer calls that recorded an exception).
    pub scorer_errors: Map<String, Value>,
    pub latency_s: Option<f64>,
    /// Why the row has no output (predict failed), or the row's own failure.
    pub error: Option<String>,
}

pub fn is_run(c: &CallSchema) -> bool {
    c.op_display_name() == EVALUATE
}

fn object_label(db: &Db, v: &Value) -> (String, Option<String>, Option<ObjSchema>) {
    match v {
        Value::String(uri) => match db.resolve_ref(uri).ok().flatten() {
            Some(o) => (fmt::label(&o), Some(uri.clone()), Some(o)),
            None => (
                fmt::short_ref(uri).unwrap_or_else(|| uri.clone()),
                Some(uri.clone()),
                None,
            ),
        },
        Value::Object(m) => {
            let name = ["name", "_class_name", "_type"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))
                .unwrap_or("?");
            (name.to_string(), None, None)
        }
        Value::Null => ("-".into(), None, None),
        other => (fmt::trunc(&other.to_string(), 30), None, None),
    }
}

/// Reads a run from its `Evaluation.evaluate` call.
pub fn run(db: &Db, call: CallSchema) -> Run {
    let input = |k: &str| call.inputs.get(k).cloned().unwrap_or(Value::Null);
    let (model, model_ref, _) = object_label(db, &input("model"));
    let (eval_label, evaluation_ref, eval_obj) = object_label(db, &input("self"));
    let eval_val = eval_obj
        .as_ref()
        .map(|o| o.val.clone())
        .unwrap_or_else(|| input("self"));
    let evaluation = eval_val["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| eval_obj.as_ref().map(|o| o.object_id.clone()))
        .unwrap_or(eval_label);
    let (dataset, dataset_ref) = match &eval_val["dataset"] {
        Value::Null => (None, None),
        v => {
            let (l, r, _) = object_label(db, v);
            (Some(l), r)
        }
    };
    Run {
        id: call.id.clone(),
        started_at: call.started_at.clone(),
        status: call.status().as_str().to_string(),
        latency_ms: call.latency_ms(),
        evaluation,
        evaluation_ref,
        model,
        model_ref,
        dataset,
        dataset_ref,
        summary: call.output.clone().unwrap_or(Value::Null),
        call,
    }
}

/// Runs, newest first.
pub fn runs(db: &Db, limit: usize) -> Result<Vec<Run>> {
    let calls = db.calls(&CallQuery {
        ops: vec![EVALUATE.into()],
        limit: Some(limit),
        ..Default::default()
    })?;
    Ok(calls.into_iter().map(|c| run(db, c)).collect())
}

/// The run with this call id (prefix).
pub fn resolve_run(db: &Db, id: &str) -> Result<Run> {
    let c = db.resolve_call(id)?;
    if !is_run(&c) {
        bail!(
            "call {} is `{}`, not an evaluation run ({EVALUATE}); see `weave evals`",
            c.id,
            c.op_display_name()
        );
    }
    Ok(run(db, c))
}

/// The rows of a run, in the order they started.
pub fn rows(db: &Db, run: &Run) -> Result<Vec<Row>> {
    let calls = db.children(&run.call)?;
    let mut out = Vec::new();
    for (i, c) in calls
        .into_iter()
        .filter(|c| c.op_display_name() == PREDICT_AND_SCORE)
        .enumerate()
    {
        let example = c.inputs.get("example").cloned().unwrap_or(Value::Null);
        let id = match &example["id"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let key = id.clone().unwrap_or_else(|| example.to_string());
        let row = id.unwrap_or_else(|| i.to_string());
        let out_v = c.output.clone().unwrap_or(Value::Null);
        let mut scores = out_v["scores"].as_object().cloned().unwrap_or_default();
        let needs_children = scores.is_empty() || c.exception.is_some();
        let children = if needs_children {
            db.children(&c)?
        } else {
            Vec::new()
        };
        if scores.is_empty() {
            // Fall back to the scorer calls: every child after the model's.
            for s in children.iter().skip(1) {
                if s.op_display_name() != SUMMARIZE {
                    let name = s.op_display_name();
                    let name = name.rsplit('.').next().unwrap_or(name);
                    scores.insert(name.to_string(), s.output.clone().unwrap_or(Value::Null));
                }
            }
        }
        // Scorer calls are the children after the model's (the first).
        let mut scorer_errors = out_v["scorer_errors"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for s in children.iter().skip(1) {
            if let Some(e) = s.exception_info() {
                let name = s.op_display_name();
                let name = name.rsplit('.').next().unwrap_or(name).to_string();
                scorer_errors
                    .entry(name)
                    .or_insert_with(|| Value::String(format!("{}: {}", e.kind, e.message)));
            }
        }
        let error = c
            .exception_info()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .or_else(|| out_v["error"].as_str().map(str::to_string))
            .or_else(|| {
                children.first().and_then(|ch| {
                    ch.exception_info()
                        .map(|e| format!("{}: {}: {}", ch.op_display_name(), e.kind, e.message))
                })
            });
        let latency_s = out_v["model_latency"]
            .as_f64()
            .or_else(|| c.latency_ms().map(|ms| ms as f64 / 1000.0));
        out.push(Row {
            row,
            key,
            call_id: c.id.clone(),
            example,
            output: out_v["output"].clone(),
            scores,
            scorer_errors,
            latency_s,
            error,
        });
    }
    Ok(out)
}

/// Numeric leaves of a value with dotted paths; booleans count as 1/0.
pub fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x));
            }
        }
        Value::Bool(b) => out.push((prefix.to_string(), if *b { 1.0 } else { 0.0 })),
        Value::Object(m) => {
            for (k, v) in m {
                leaves(&join(k), v, out);
            }
        }
        _ => {}
    }
}

/// Which way a score is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better (the default; `true` beats `false`).
    Higher,
    /// Lower is better (errors, losses, latencies).
    Lower,
}

impl Direction {
    /// A declared direction: `lower`/`minimize`/`min`/`lower_is_better`, or
    /// `higher`/`maximize`/`max`/`higher_is_better` (any case).
    pub fn parse(s: &str) -> Option<Direction> {
        weave_types::eval::parse_direction(s).map(|lower| {
            if lower {
                Direction::Lower
            } else {
                Direction::Higher
            }
        })
    }
}

/// The direction of a metric path (`abs_err.mean`, `judge.score`): the one its scorer (the
/// first part) declares, else lower when a part of its name is a known lower-is-better word
/// (`abs_err` has `err`), else higher (booleans included: `true` is better).
pub fn direction(path: &str, declared: &HashMap<String, Direction>) -> Direction {
    let declared: HashMap<String, bool> = declared
        .iter()
        .map(|(k, d)| (k.clone(), *d == Direction::Lower))
        .collect();
    if weave_types::eval::lower_is_better(path, &declared) {
        Direction::Lower
    } else {
        Direction::Higher
    }
}

/// The directions the run's scorers declare: the Evaluation object's `score_directions`
/// (`{"<scorer>": "lower_is_better"}`, what `weave::eval::lower_is_better` stores), and each
/// entry of its `scorers` that resolves to an object with a `direction` (keyed by its `name`,
/// else its object name).
pub fn declared_directions(db: &Db, run: &Run) -> HashMap<String, Direction> {
    let mut out = HashMap::new();
    let Some(eval) = run
        .evaluation_ref
        .as_deref()
        .and_then(|r| db.resolve_ref(r).ok().flatten())
    else {
        return out;
    };
    for (scorer, lower) in weave_types::eval::declared_directions(&eval.val) {
        out.insert(
            scorer,
            if lower {
                Direction::Lower
            } else {
                Direction::Higher
            },
        );
    }
    for s in eval.val["scorers"].as_array().into_iter().flatten() {
        let obj = match s {
            Value::String(uri) => match db.resolve_ref(uri).ok().flatten() {
                Some(o) => {
                    let name = o.val["name"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| o.object_id.clone());
                    (name, o.val)
                }
                None => continue,
            },
            Value::Object(m) => match m.get("name").and_then(Value::as_str) {
                Some(n) => (n.to_string(), s.clone()),
                None => continue,
            },
            _ => continue,
        };
        if let Some(d) = obj.1["direction"].as_str().and_then(Direction::parse) {
            out.insert(obj.0, d);
        }
    }
    out
}

/// The one-line headline of a summary: each scorer's main number, then latency and errors.
pub fn headline(summary: &Value) -> String {
    let Some(m) = summary.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    // `rows` is a count, not a score. A scorer that returns a map of metrics is shown
    // metric by metric, without its name when it is the only scorer (`passed 100%`).
    let scorers: Vec<(&String, &Value)> = m
        .iter()
        .filter(|(k, _)| !is_meta_key(k) && k.as_str() != "rows")
        .collect();
    let single = scorers.len() == 1;
    for (k, v) in scorers {
        match v {
            Value::Object(inner) if v.get("true_fraction").is_none() && v.get("mean").is_none() => {
                for (metric, x) in inner {
                    let label = if single {
                        metric.clone()
                    } else {
                        format!("{k}.{metric}")
                    };
                    parts.push(format!("{label} {}", main_number(x)));
                }
            }
            _ => parts.push(format!("{k} {}", main_number(v))),
        }
    }
    if let Some(l) = m.get("model_latency").and_then(|v| v["mean"].as_f64()) {
        parts.push(format!("latency {}", fmt::latency_s(l)));
    }
    if let Some(e) = m.get("errors").and_then(Value::as_u64).filter(|&e| e > 0) {
        parts.push(format!("errors {e}"));
    }
    parts.join("  ")
}

fn main_number(v: &Value) -> String {
    if let Some(f) = v["true_fraction"].as_f64() {
        return format!("{:.0}%", f * 100.0);
    }
    if let Some(x) = v["mean"].as_f64() {
        return fmt::number_prec(x, 2);
    }
    match v {
        Value::Number(_) | Value::Bool(_) => fmt::score(v),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", main_number(v)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => fmt::trunc(&v.to_string(), 20),
    }
}

/// One line per summary key: `key  sub=value ...`.
pub fn summary_lines(summary: &Value) -> Vec<(String, String)> {
    let Some(m) = summary.as_object() else {
        return vec![("summary".into(), summary.to_string())];
    };
    m.iter()
        .map(|(k, v)| {
            let text = if k == "model_latency" {
                v["mean"]
                    .as_f64()
                    .map(|x| format!("mean {}", fmt::latency_s(x)))
                    .unwrap_or_else(|| fmt::score(v))
            } else {
                match v {
                    Value::Object(inner) => {
                        let mut ls = Vec::new();
                        for (ik, iv) in inner {
                            let mut sub = Vec::new();
                            leaves("", iv, &mut sub);
                            match iv {
                                Value::Object(_) => {
                                    for (p, x) in sub {
                                        ls.push(format!("{ik}.{p} {}", fmt::number(x)));
                                    }
                                }
                                _ => ls.push(format!("{ik} {}", fmt::score(iv))),
                            }
                        }
                        ls.join("  ")
                    }
                    other => fmt::score(other),
                }
            };
            (k.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::headline;
    use serde_json::json;

    #[test]
    fn headline_shows_the_numbers_first() {
        let one = json!({
            "score_humaneval_test": {"passed": {"true_count": 164, "true_fraction": 1.0}},
            "rows": 164,
            "model_latency": {"mean": 0.024},
            "errors": 0
        });
        assert_eq!(headline(&one), "passed 100%  latency 24ms");
        let two = json!({
            "exact_match": {"true_count": 2, "true_fraction": 0.6667},
            "judge": {"ok": {"true_count": 1, "true_fraction": 0.5}, "score": {"mean": 3.25}},
            "errors": 2
        });
        assert_eq!(
            headline(&two),
            "exact_match 67%  judge.ok 50%  judge.score 3.25  errors 2"
        );
    }
}

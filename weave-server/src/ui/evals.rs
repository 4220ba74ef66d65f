//! Evaluation runs for the pages: `POST /ext/ui/evaluations` lists runs (model, dataset,
//! progress, headline scores) and `POST /ext/ui/compare` lines up two or more runs: summary
//! metrics side by side with deltas against the first run, and one row per dataset example
//! with each run's outputs and scores and a verdict (regressions first).
//!
//! A run is a call of `Evaluation.evaluate` with inputs `self` (the Evaluation object: `name`,
//! `dataset` ref, `scorers`, `trials`) and `model`, and output the summary. Its children of
//! op `Evaluation.predict_and_score` are the rows: input `example` (a row ref
//! `…/attr/rows/id/<row digest>` or the row itself), output `{output, scores, model_latency}`
//! (and `error`/`scorer_errors` from Rust clients). Rust and Python clients log this shape.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weave_store::TraceStore;
use weave_types::query::{Expr, Query, SortBy};
use weave_types::refs::{Edge, RefKind, WeaveRef};
use weave_types::summary::CallStatus;
use weave_types::{
    CallReadReq, CallSchema, CallsFilter, CallsQueryReq, CallsQueryStatsReq, ObjReadReq, ObjSchema,
    TableQueryReq, TableQueryStatsReq, TableRowFilter,
};

use super::calls::{exception_line, total_tokens};
use super::preview::shorten;
use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

/// Op of an evaluation run.
pub const EVALUATE: &str = "Evaluation.evaluate";
/// Op of one row (and trial) of a run.
pub const PREDICT_AND_SCORE: &str = "Evaluation.predict_and_score";
/// Most runs compared at once.
pub const MAX_RUNS: usize = 8;

/// Which runs to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvalRunsReq {
    /// `entity/project`.
    pub project_id: String,
    /// Only these runs (call ids); `None`: the newest runs of the project.
    #[serde(default)]
    pub call_ids: Option<Vec<String>>,
    /// At most this many (default 100, at most 500).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Runs skipped.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// An object a run refers to, named for people.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjLabel {
    /// `name:v<N>` when the version is known, else the name or a short ref.
    pub label: String,
    /// Object name.
    pub name: String,
    /// 0-based version number.
    pub version: Option<i64>,
    /// Version digest.
    pub digest: Option<String>,
    /// The ref.
    pub uri: Option<String>,
    /// Leaf class (`CodeGenerationPipeline`, `Dataset`...).
    pub class: Option<String>,
    /// Its scalar attributes (strings shortened), e.g. a model's `model_name`.
    pub attributes: Map<String, Value>,
}

/// One summary metric of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Dotted path in the summary (`score.passed.true_fraction`).
    pub path: String,
    /// Value (booleans as 1/0).
    pub value: f64,
    /// `fraction`, `count`, `seconds` or `number`: how to show it.
    pub kind: &'static str,
    /// Whether a smaller value is better (latencies, errors).
    pub lower_is_better: bool,
}

/// An evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRun {
    /// Call id of `Evaluation.evaluate`.
    pub id: String,
    /// Its trace.
    pub trace_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when finished.
    pub ended_at: Option<String>,
    /// Status of the run call.
    pub status: &'static str,
    /// Wall time, when finished.
    pub latency_ms: Option<i64>,
    /// `Type: message` when the run failed.
    pub exception: Option<String>,
    /// The Evaluation object.
    pub evaluation: ObjLabel,
    /// The model.
    pub model: ObjLabel,
    /// The dataset, when the evaluation names one.
    pub dataset: Option<ObjLabel>,
    /// Scorer names.
    pub scorers: Vec<String>,
    /// Runs per example.
    pub trials: u64,
    /// Rows the run will have (dataset rows times trials), when known.
    pub rows_expected: Option<u64>,
    /// Rows started so far.
    pub rows_started: u64,
    /// Rows finished so far.
    pub rows_done: u64,
    /// The run's output (its summary); `null` while running.
    pub summary: Value,
    /// The summary's numbers, flattened; while running, computed from the finished rows.
    pub metrics: Vec<Metric>,
    /// Tokens used, when recorded.
    pub tokens: Option<u64>,
    /// Scorers whose direction the evaluation declares (`true`: lower is better).
    #[serde(skip)]
    pub(crate) declared: HashMap<String, bool>,
}

/// Runs listed.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRunsRes {
    /// Newest first.
    pub runs: Vec<EvalRun>,
    /// Runs in the project (all pages).
    pub total: u64,
}

/// Runs to compare.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompareReq {
    /// `entity/project`.
    pub project_id: String,
    /// Call ids of `Evaluation.evaluate`; the first is the baseline.
    pub call_ids: Vec<String>,
    /// Longest string of an output or example sent (default 4,000 characters).
    #[serde(default)]
    pub max_chars: Option<usize>,
}

/// One metric across runs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    /// Dotted path in the summaries.
    pub path: String,
    /// How to show it.
    pub kind: &'static str,
    /// Whether a smaller value is better.
    pub lower_is_better: bool,
    /// Per run.
    pub values: Vec<Option<f64>>,
    /// Per run, minus the baseline's (`None` for the baseline or when either is missing).
    pub deltas: Vec<Option<f64>>,
    /// Per run, whether it is better than the baseline (`None`: equal or not comparable).
    pub better: Vec<Option<bool>>,
}

/// How a row's results differ between the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A run scores worse than the baseline.
    Regression,
    /// A run scores better than the baseline, and none worse.
    Improvement,
    /// Scores differ in ways that are neither (or the baseline lacks the row).
    Changed,
    /// A run lacks the row (still running, or failed).
    Missing,
    /// Every run scores the same.
    Same,
}

/// One trial of a row in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The `Evaluation.predict_and_score` call (open it to see the row's trace).
    pub call_id: String,
    /// Its status.
    pub status: &'static str,
    /// The model's output, long strings cut.
    pub output: Value,
    /// Whether the output was cut.
    pub truncated: bool,
    /// Scores by scorer.
    pub scores: Value,
    /// Predict or scorer error.
    pub error: Option<String>,
    /// Seconds in predict.
    pub latency_s: Option<f64>,
}

/// A row's results in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RowCell {
    /// Trials in the order they started.
    pub trials: Vec<Trial>,
    /// Per score path: the fraction of trials where a boolean score is true (a failed
    /// trial counts as false), or the mean of a numeric score.
    pub values: BTreeMap<String, f64>,
}

/// One dataset example across runs.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// Identity across runs: the row digest.
    pub key: String,
    /// `task_id`, `id` or `name` of the example, else `#<index>`.
    pub label: String,
    /// Position in the dataset, when known.
    pub index: Option<u64>,
    /// The example, long strings cut.
    pub example: Value,
    /// How the runs differ on it.
    pub verdict: Verdict,
    /// Per run (`None`: the run has no result for it).
    pub cells: Vec<Option<RowCell>>,
}

/// Counts over the rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompareCounts {
    /// Rows.
    pub rows: usize,
    /// Rows whose verdicts differ (regressions, improvements, changes).
    pub differ: usize,
    /// Rows where a run is worse than the baseline.
    pub regressions: usize,
    /// Rows where a run is better and none worse.
    pub improvements: usize,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRes {
    /// The runs, baseline first.
    pub runs: Vec<EvalRun>,
    /// Summary metrics side by side.
    pub metrics: Vec<MetricRow>,
    /// Score paths of the rows (`scorer.field`) and whether each is boolean.
    pub scores: Vec<ScorePath>,
    /// Rows: regressions first, then improvements, changes, missing, same; dataset order
    /// within each.
    pub rows: Vec<CompareRow>,
    /// Counts.
    pub counts: CompareCounts,
}

/// A score leaf of the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScorePath {
    /// `scorer` or `scorer.field`.
    pub path: String,
    /// Boolean (pass/fail) rather than numeric.
    pub boolean: bool,
}

/// Whether a smaller value of a metric path is better: as its scorer declares (`declared`,
/// from the evaluation's `score_directions`), else by its name (`weave_types::eval`'s rule,
/// the one `weave compare` follows).
fn lower_is_better(path: &str, declared: &HashMap<String, bool>) -> bool {
    weave_types::eval::lower_is_better(path, declared)
}

/// How to show a metric path.
fn metric_kind(path: &str) -> &'static str {
    let last = path.rsplit('.').next().unwrap_or(path);
    if last == "true_fraction" || last.starts_with("pass@") {
        "fraction"
    } else if path.contains("latency") {
        "seconds"
    } else if last == "true_count" || last == "rows" || path.starts_with("errors") {
        "count"
    } else {
        "number"
    }
}

/// Numeric leaves of a summary with dotted paths (booleans as 1/0), in order.
pub(crate) fn flatten_metrics(summary: &Value, declared: &HashMap<String, bool>) -> Vec<Metric> {
    fn walk(prefix: &str, v: &Value, declared: &HashMap<String, bool>, out: &mut Vec<Metric>) {
        let x = match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, declared, out);
                }
                None
            }
            _ => None,
        };
        if let (Some(x), false) = (x, prefix.is_empty()) {
            out.push(Metric {
                path: prefix.to_string(),
                value: x,
                kind: metric_kind(prefix),
                lower_is_better: lower_is_better(prefix, declared),
            });
        }
    }
    let mut out = Vec::new();
    walk("", summary, declared, &mut out);
    // Scores first (each scorer's fraction, pass@k, mean, then counts), then latency, errors
    // and counts; otherwise in the summary's order.
    let heads: Vec<String> = out
        .iter()
        .map(|m| m.path.split('.').next().unwrap_or("").to_string())
        .collect();
    let first = |h: &str| heads.iter().position(|x| x == h).unwrap_or(usize::MAX);
    let group = |head: &str| match head {
        "model_latency" => 1,
        "errors" => 2,
        "rows" | "error_count" => 3,
        _ => 0,
    };
    let leaf = |path: &str| {
        let last = path.rsplit('.').next().unwrap_or(path);
        match last {
            "true_fraction" => (0, 0),
            "mean" => (2, 0),
            "true_count" => (3, 0),
            l => match l.strip_prefix("pass@").and_then(|k| k.parse::<u64>().ok()) {
                Some(k) => (1, k),
                None => (4, 0),
            },
        }
    };
    let parents: Vec<String> = out
        .iter()
        .map(|m| {
            m.path
                .rsplit_once('.')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default()
        })
        .collect();
    let first_parent = |p: &str| parents.iter().position(|x| x == p).unwrap_or(usize::MAX);
    let mut keyed: Vec<_> = out
        .into_iter()
        .map(|m| {
            let head = m.path.split('.').next().unwrap_or("").to_string();
            let parent = m.path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            let key = (
                group(&head),
                first(&head),
                first_parent(parent),
                leaf(&m.path),
            );
            (key, m)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, m)| m).collect()
}

/// Caches object reads for one request.
struct Objects<'a> {
    store: &'a dyn TraceStore,
    cache: HashMap<String, Option<ObjSchema>>,
}

impl Objects<'_> {
    /// The object version a ref names (without its extra path), `None` when missing.
    async fn get(&mut self, uri: &str) -> Option<ObjSchema> {
        let r = WeaveRef::parse(uri).ok()?;
        if !matches!(r.kind, RefKind::Object | RefKind::Op) {
            return None;
        }
        let key = r.without_extra().to_string();
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let got = self
            .store
            .obj_read(ObjReadReq {
                project_id: r.project_id(),
                object_id: r.name.clone(),
                digest: r.digest.clone(),
                ..Default::default()
            })
            .await;
        let got = match got {
            Ok(res) => Some(res.obj),
            Err(e) => {
                // A missing object is shown by its ref; anything else is worth a log line.
                if !matches!(e, weave_store::StoreError::NotFound { .. }) {
                    tracing::warn!(error = %e, r#ref = uri, "reading an object for the UI");
                }
                None
            }
        };
        self.cache.insert(key, got.clone());
        got
    }

    /// A label for a value that is a ref (resolved) or an inline object.
    async fn label(&mut self, v: &Value) -> ObjLabel {
        match v {
            Value::String(uri) => match self.get(uri).await {
                Some(o) => ObjLabel {
                    label: format!("{}:v{}", o.object_id, o.version_index),
                    name: o.object_id.clone(),
                    version: Some(o.version_index),
                    digest: Some(o.digest.clone()),
                    uri: Some(o.uri()),
                    class: o
                        .leaf_object_class
                        .clone()
                        .or_else(|| o.val["_class_name"].as_str().map(str::to_string)),
                    attributes: scalar_attributes(&o.val),
                },
                None => {
                    let short = super::preview::short_ref(uri).unwrap_or_else(|| uri.clone());
                    ObjLabel {
                        label: short.clone(),
                        name: short,
                        uri: uri
                            .starts_with(weave_types::refs::REF_SCHEME)
                            .then(|| uri.clone()),
                        ..Default::default()
                    }
                }
            },
            Value::Object(m) => {
                let name = ["name", "_class_name", "_type"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str))
                    .unwrap_or("(inline)")
                    .to_string();
                ObjLabel {
                    label: name.clone(),
                    name,
                    class: m["_class_name"].as_str().map(str::to_string),
                    attributes: scalar_attributes(v),
                    ..Default::default()
                }
            }
            _ => ObjLabel {
                label: "-".into(),
                name: "-".into(),
                ..Default::default()
            },
        }
    }
}

/// The scalar attributes of an object value (not `_`-prefixed), strings shortened.
fn scalar_attributes(v: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, x) in m {
            if k.starts_with('_') || out.len() >= 12 {
                continue;
            }
            match x {
                Value::String(s) if s.starts_with(weave_types::refs::REF_SCHEME) => {}
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                    out.insert(k.clone(), shorten(x, 120, 1).0);
                }
                _ => {}
            }
        }
    }
    out
}

/// Op-name filter matching an op in any version, whether logged as a ref or a plain name.
fn op_filter(project_id: &str, op: &str) -> Vec<String> {
    vec![format!("weave:///{project_id}/op/{op}:*"), op.to_string()]
}

/// The run of an `Evaluation.evaluate` call: its objects and progress.
async fn run_of(
    store: &dyn TraceStore,
    objects: &mut Objects<'_>,
    call: &CallSchema,
) -> Result<EvalRun, AppError> {
    let evaluation = objects.label(&call.inputs["self"]).await;
    let model = objects.label(&call.inputs["model"]).await;
    let eval_val = match &call.inputs["self"] {
        Value::String(uri) => objects.get(uri).await.map(|o| o.val).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let dataset = match &eval_val["dataset"] {
        Value::Null => None,
        v => Some(objects.label(v).await),
    };
    let trials = eval_val["trials"].as_u64().unwrap_or(1).max(1);
    let declared = weave_types::eval::declared_directions(&eval_val);
    let scorers = eval_val["scorers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| match s {
                    Value::String(uri) => WeaveRef::parse(uri)
                        .map(|r| r.name)
                        .unwrap_or_else(|_| uri.clone()),
                    other => other["name"].as_str().unwrap_or("?").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    // Rows expected: the dataset's rows table times the trials.
    let mut rows_expected = None;
    if let Some(uri) = dataset.as_ref().and_then(|d| d.uri.clone()) {
        if let Some(ds) = objects.get(&uri).await {
            if let Some(table) = ds.val["rows"]
                .as_str()
                .and_then(|t| WeaveRef::parse(t).ok())
                .filter(|t| t.kind == RefKind::Table)
            {
                if let Ok(stats) = store
                    .table_query_stats(TableQueryStatsReq {
                        project_id: table.project_id(),
                        digest: table.digest.clone(),
                    })
                    .await
                {
                    rows_expected = Some(stats.count * trials);
                }
            }
        }
    }
    let rows_filter = CallsFilter {
        parent_ids: Some(vec![call.id.clone()]),
        op_names: Some(op_filter(&call.project_id, PREDICT_AND_SCORE)),
        ..Default::default()
    };
    let count = |query: Option<Query>| CallsQueryStatsReq {
        project_id: call.project_id.clone(),
        filter: Some(rows_filter.clone()),
        query,
        ..Default::default()
    };
    let rows_started = store.calls_query_stats(count(None)).await?.count;
    let rows_done = if matches!(call.status(), CallStatus::Running | CallStatus::Interrupted) {
        let not_running = Expr::negate(Expr::eq(
            Expr::field("summary.weave.status"),
            Expr::literal("running"),
        ));
        store
            .calls_query_stats(count(Some(Query { expr: not_running })))
            .await?
            .count
    } else {
        rows_started
    };
    let summary = call.output.clone().unwrap_or(Value::Null);
    Ok(EvalRun {
        id: call.id.clone(),
        trace_id: call.trace_id.clone(),
        started_at: call.started_at.clone(),
        ended_at: call.ended_at.clone(),
        status: call.status().as_str(),
        latency_ms: call.latency_ms(),
        exception: exception_line(call),
        evaluation,
        model,
        dataset,
        scorers,
        trials,
        rows_expected,
        rows_started,
        rows_done,
        metrics: flatten_metrics(&summary, &declared),
        summary,
        tokens: total_tokens(&call.summary),
        declared,
    })
}

/// Lists runs.
pub(crate) async fn list_runs(
    store: &dyn TraceStore,
    req: EvalRunsReq,
) -> Result<EvalRunsRes, AppError> {
    let mut filter = CallsFilter {
        op_names: Some(op_filter(&req.project_id, EVALUATE)),
        ..Default::default()
    };
    if let Some(ids) = &req.call_ids {
        filter.call_ids = Some(ids.clone());
    }
    let total = store
        .calls_query_stats(CallsQueryStatsReq {
            project_id: req.project_id.clone(),
            filter: Some(filter.clone()),
            ..Default::default()
        })
        .await?
        .count;
    let calls = store
        .calls_query_vec(CallsQueryReq {
            project_id: req.project_id.clone(),
            filter: Some(filter),
            sort_by: Some(vec![SortBy::desc("started_at")]),
            limit: Some(req.limit.unwrap_or(100).min(500)),
            offset: req.offset,
            ..Default::default()
        })
        .await?;
    let mut objects = Objects {
        store,
        cache: HashMap::new(),
    };
    let mut runs = Vec::with_capacity(calls.len());
    for c in &calls {
        runs.push(run_of(store, &mut objects, c).await?);
    }
    Ok(EvalRunsRes { runs, total })
}

/// `POST /ext/ui/evaluations`.
pub(crate) async fn runs(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<EvalRunsReq>,
) -> Result<Json<EvalRunsRes>, AppError> {
    Ok(Json(list_runs(state.store.as_ref(), req).await?))
}

/// Score leaves of one trial: `(path, value, boolean)`.
type Leaves = Vec<(String, f64, bool)>;
/// One run's trials by row key.
type RunRows = BTreeMap<String, Vec<(Trial, Leaves)>>;

/// The row digest an `example` input names: the `id` edge of a row ref, or the digest of an
/// inline row.
fn example_key(example: &Value) -> String {
    if let Some(r) = example.as_str().and_then(|s| WeaveRef::parse(s).ok()) {
        if let Some((_, id)) = r.extra.iter().rev().find(|(e, _)| *e == Edge::Id) {
            return id.clone();
        }
    }
    weave_types::digest::row_digest(example)
}

/// A person's name for an example: its id (`task_id`, `id`, `name`...), else its question or
/// input, else its first short text.
fn example_label(example: &Value) -> Option<String> {
    const KEYS: [&str; 10] = [
        "task_id",
        "id",
        "name",
        "question_id",
        "question",
        "input",
        "query",
        "prompt",
        "text",
        "title",
    ];
    let short = |v: &Value| match v {
        Value::String(s) if !s.is_empty() && !s.starts_with(weave_types::refs::REF_SCHEME) => {
            let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            Some(if one_line.chars().count() > 60 {
                format!("{}…", one_line.chars().take(60).collect::<String>())
            } else {
                one_line
            })
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    KEYS.iter()
        .find_map(|k| short(&example[*k]))
        .or_else(|| example.as_object()?.values().find_map(short))
}

/// Numeric and boolean leaves of scores (`scorer` or `scorer.field`), booleans flagged.
fn score_leaves(scores: &Value) -> Leaves {
    let mut out = Vec::new();
    if let Some(m) = scores.as_object() {
        for (name, v) in m {
            match v {
                Value::Bool(b) => out.push((name.clone(), f64::from(u8::from(*b)), true)),
                Value::Number(n) => out.extend(n.as_f64().map(|x| (name.clone(), x, false))),
                Value::Object(inner) => {
                    for (k, x) in inner {
                        let p = format!("{name}.{k}");
                        match x {
                            Value::Bool(b) => out.push((p, f64::from(u8::from(*b)), true)),
                            Value::Number(n) => out.extend(n.as_f64().map(|x| (p, x, false))),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// A row's error: the call's exception, the predict error, or the scorers' errors.
fn trial_error(c: &CallSchema, out: &Value) -> Option<String> {
    if let Some(e) = exception_line(c) {
        return Some(e);
    }
    if let Some(e) = out["error"].as_str() {
        return Some(e.to_string());
    }
    let errs = out["scorer_errors"].as_object()?;
    if errs.is_empty() {
        return None;
    }
    Some(
        errs.iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("failed")))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The verdict of a row from its cells, on the given score paths.
fn verdict(cells: &[Option<RowCell>], paths: &[&str], declared: &HashMap<String, bool>) -> Verdict {
    const EPS: f64 = 1e-9;
    let Some(Some(base)) = cells.first() else {
        return if cells.iter().skip(1).any(Option::is_some) {
            Verdict::Changed
        } else {
            Verdict::Missing
        };
    };
    let (mut worse, mut better, mut missing) = (false, false, false);
    for cell in cells.iter().skip(1) {
        let Some(cell) = cell else {
            missing = true;
            continue;
        };
        for p in paths {
            let (Some(b), Some(x)) = (base.values.get(*p), cell.values.get(*p)) else {
                continue;
            };
            // Compared as "higher is better": a lower-is-better score is negated.
            let (b, x) = if lower_is_better(p, declared) {
                (-*b, -*x)
            } else {
                (*b, *x)
            };
            if x + EPS < b {
                worse = true;
            } else if x - EPS > b {
                better = true;
            }
        }
    }
    if worse {
        Verdict::Regression
    } else if better {
        Verdict::Improvement
    } else if missing {
        Verdict::Missing
    } else {
        Verdict::Same
    }
}

/// The comparison of runs.
pub(crate) async fn compare_runs(
    store: &dyn TraceStore,
    req: CompareReq,
) -> Result<CompareRes, AppError> {
    if req.call_ids.is_empty() || req.call_ids.len() > MAX_RUNS {
        return Err(AppError::bad_request(
            "call_ids",
            format!(
                "give 1 to {MAX_RUNS} evaluation runs (Evaluation.evaluate call ids), got {}",
                req.call_ids.len()
            ),
        ));
    }
    let max_chars = req.max_chars.unwrap_or(4000).clamp(16, 1 << 20);
    let mut objects = Objects {
        store,
        cache: HashMap::new(),
    };
    let mut runs = Vec::new();
    // Per run: key -> trials, in start order; example value per key.
    let mut per_run: Vec<RunRows> = Vec::new();
    let mut examples: HashMap<String, Value> = HashMap::new();
    let mut first_seen: Vec<String> = Vec::new();
    let mut score_kinds: Vec<ScorePath> = Vec::new();
    let mut dataset_table: Option<WeaveRef> = None;
    for id in &req.call_ids {
        let call = store
            .call_read(CallReadReq {
                project_id: req.project_id.clone(),
                id: id.clone(),
                ..Default::default()
            })
            .await?
            .call
            .ok_or_else(|| {
                AppError::Store(weave_store::StoreError::not_found(format!("Call {id}")))
            })?;
        if call.op_display_name() != EVALUATE {
            return Err(AppError::bad_request(
                "call_ids",
                format!(
                    "call {id} is `{}`, not an evaluation run ({EVALUATE})",
                    call.op_display_name()
                ),
            ));
        }
        let run = run_of(store, &mut objects, &call).await?;
        if dataset_table.is_none() {
            if let Some(uri) = run.dataset.as_ref().and_then(|d| d.uri.clone()) {
                if let Some(ds) = objects.get(&uri).await {
                    dataset_table = ds.val["rows"]
                        .as_str()
                        .and_then(|t| WeaveRef::parse(t).ok())
                        .filter(|t| t.kind == RefKind::Table);
                }
            }
        }
        let children = store
            .calls_query_vec(CallsQueryReq {
                project_id: req.project_id.clone(),
                filter: Some(CallsFilter {
                    parent_ids: Some(vec![call.id.clone()]),
                    op_names: Some(op_filter(&req.project_id, PREDICT_AND_SCORE)),
                    ..Default::default()
                }),
                sort_by: Some(vec![SortBy::asc("started_at")]),
                ..Default::default()
            })
            .await?;
        let mut rows: RunRows = BTreeMap::new();
        for c in &children {
            let example = &c.inputs["example"];
            let key = example_key(example);
            if !examples.contains_key(&key) {
                examples.insert(key.clone(), example.clone());
                first_seen.push(key.clone());
            }
            let out = c.output.clone().unwrap_or(Value::Null);
            let (output, truncated) = shorten(&out["output"], max_chars, 200);
            let scores = out["scores"].clone();
            let leaves = score_leaves(&scores);
            for (p, _, boolean) in &leaves {
                if !score_kinds.iter().any(|s| &s.path == p) {
                    score_kinds.push(ScorePath {
                        path: p.clone(),
                        boolean: *boolean,
                    });
                }
            }
            let trial = Trial {
                call_id: c.id.clone(),
                status: c.status().as_str(),
                truncated,
                output,
                error: trial_error(c, &out),
                scores: shorten(&scores, 400, 50).0,
                latency_s: out["model_latency"]
                    .as_f64()
                    .or_else(|| c.latency_ms().map(|ms| ms as f64 / 1000.0)),
            };
            rows.entry(key).or_default().push((trial, leaves));
        }
        runs.push(run);
        per_run.push(rows);
    }

    // Examples that are refs resolve to the dataset's rows: their position and value.
    let mut positions: HashMap<String, u64> = HashMap::new();
    if let Some(table) = &dataset_table {
        let wanted: Vec<String> = first_seen.clone();
        for chunk in wanted.chunks(1000) {
            let res = store
                .table_query(TableQueryReq {
                    project_id: table.project_id(),
                    digest: table.digest.clone(),
                    filter: Some(TableRowFilter {
                        row_digests: Some(chunk.to_vec()),
                    }),
                    ..Default::default()
                })
                .await;
            if let Ok(res) = res {
                for r in res.rows {
                    if let Some(i) = r.original_index {
                        positions.insert(r.digest.clone(), i);
                    }
                    if let Some(ex) = examples.get_mut(&r.digest) {
                        if ex.is_string() {
                            *ex = r.val;
                        }
                    }
                }
            }
        }
    }

    // Cells: per score path, the fraction of trials passing (boolean) or the mean.
    let boolean_paths: Vec<&str> = score_kinds
        .iter()
        .filter(|s| s.boolean)
        .map(|s| s.path.as_str())
        .collect();
    let numeric_paths: Vec<&str> = score_kinds
        .iter()
        .filter(|s| !s.boolean)
        .map(|s| s.path.as_str())
        .collect();
    let verdict_paths = if boolean_paths.is_empty() {
        numeric_paths.clone()
    } else {
        boolean_paths.clone()
    };
    // Directions the runs' evaluations declare (the first run's win on a disagreement).
    let mut declared: HashMap<String, bool> = HashMap::new();
    for run in runs.iter().rev() {
        declared.extend(run.declared.clone());
    }
    let mut rows = Vec::new();
    for (order, key) in first_seen.iter().enumerate() {
        let mut cells = Vec::new();
        for run_rows in per_run.iter_mut() {
            let Some(trials) = run_rows.remove(key) else {
                cells.push(None);
                continue;
            };
            let mut values = BTreeMap::new();
            let n = trials.len() as f64;
            for p in &boolean_paths {
                let passed = trials
                    .iter()
                    .filter(|(_, leaves)| leaves.iter().any(|(q, x, _)| q == p && *x > 0.5))
                    .count() as f64;
                values.insert(p.to_string(), passed / n);
            }
            for p in &numeric_paths {
                let xs: Vec<f64> = trials
                    .iter()
                    .filter_map(|(_, leaves)| {
                        leaves.iter().find(|(q, _, _)| q == p).map(|(_, x, _)| *x)
                    })
                    .collect();
                if !xs.is_empty() {
                    values.insert(p.to_string(), xs.iter().sum::<f64>() / xs.len() as f64);
                }
            }
            cells.push(Some(RowCell {
                trials: trials.into_iter().map(|(t, _)| t).collect(),
                values,
            }));
        }
        let example = examples.get(key).cloned().unwrap_or(Value::Null);
        let index = positions.get(key).copied();
        let label = example_label(&example)
            .unwrap_or_else(|| format!("#{}", index.unwrap_or(order as u64)));
        let verdict = verdict(&cells, &verdict_paths, &declared);
        rows.push((
            index.unwrap_or(u64::MAX),
            order,
            CompareRow {
                key: key.clone(),
                label,
                index,
                example: shorten(&example, max_chars, 100).0,
                verdict,
                cells,
            },
        ));
    }
    rows.sort_by_key(|(index, order, r)| (r.verdict, *index, *order));
    let rows: Vec<CompareRow> = rows.into_iter().map(|(_, _, r)| r).collect();

    // While a run has no summary yet, its metrics come from the finished rows.
    for (i, run) in runs.iter_mut().enumerate() {
        if !run.summary.is_null() {
            continue;
        }
        let mut live = Vec::new();
        for s in &score_kinds {
            let xs: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.cells[i].as_ref()?.values.get(&s.path).copied())
                .collect();
            if xs.is_empty() {
                continue;
            }
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            let path = format!(
                "{}.{}",
                s.path,
                if s.boolean { "true_fraction" } else { "mean" }
            );
            live.push(Metric {
                kind: metric_kind(&path),
                lower_is_better: lower_is_better(&path, &declared),
                path,
                value: mean,
            });
        }
        run.metrics = live;
    }

    let mut paths: Vec<(String, &'static str, bool)> = Vec::new();
    for run in &runs {
        for m in &run.metrics {
            if !paths.iter().any(|(p, _, _)| p == &m.path) {
                paths.push((m.path.clone(), m.kind, m.lower_is_better));
            }
        }
    }
    let metrics = paths
        .into_iter()
        .map(|(path, kind, lower)| {
            let values: Vec<Option<f64>> = runs
                .iter()
                .map(|r| r.metrics.iter().find(|m| m.path == path).map(|m| m.value))
                .collect();
            let base = values[0];
            let deltas: Vec<Option<f64>> = values
                .iter()
                .enumerate()
                .map(|(i, v)| match (i, base, v) {
                    (0, _, _) => None,
                    (_, Some(b), Some(x)) => Some(x - b),
                    _ => None,
                })
                .collect();
            let better = deltas
                .iter()
                .map(|d| {
                    d.filter(|d| d.abs() > 1e-12)
                        .map(|d| if lower { d < 0.0 } else { d > 0.0 })
                })
                .collect();
            MetricRow {
                path,
                kind,
                lower_is_better: lower,
                values,
                deltas,
                better,
            }
        })
        .collect();

    let counts = CompareCounts {
        rows: rows.len(),
        differ: rows
            .iter()
            .filter(|r| {
                matches!(
                    r.verdict,
                    Verdict::Regression | Verdict::Improvement | Verdict::Changed
                )
            })
            .count(),
        regressions: rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count(),
        improvements: rows
            .iter()
            .filter(|r| r.verdict == Verdict::Improvement)
            .count(),
    };
    Ok(CompareRes {
        runs,
        metrics,
        scores: score_kinds,
        rows,
        counts,
    })
}

/// `POST /ext/ui/compare`.
pub(crate) async fn compare(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CompareReq>,
) -> Result<Json<CompareRes>, AppError> {
    Ok(Json(compare_runs(state.store.as_ref(), req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weave_types::{
        CallsCompleteReq, CompleteCallSchemaForInsert, ObjCreateReq, ObjSchemaForInsert,
        TableCreateReq, TableSchemaForInsert,
    };

    const P: &str = "e/p";

    async fn publish(store: &dyn TraceStore, name: &str, val: Value) -> String {
        let d = store
            .obj_create(ObjCreateReq {
                obj: ObjSchemaForInsert {
                    project_id: P.into(),
                    object_id: name.into(),
                    val,
                    ..Default::default()
                },
            })
            .await
            .unwrap()
            .digest;
        format!("weave:///{P}/object/{name}:{d}")
    }

    fn call(id: &str, parent: Option<&str>, op: &str, minute: u32) -> CompleteCallSchemaForInsert {
        CompleteCallSchemaForInsert {
            project_id: P.into(),
            id: id.into(),
            trace_id: format!("t-{}", parent.unwrap_or(id)),
            parent_id: parent.map(str::to_string),
            op_name: format!("weave:///{P}/op/{op}:d1g"),
            started_at: format!("2026-01-01T00:{minute:02}:00.000000Z"),
            ended_at: format!("2026-01-01T00:{minute:02}:30.000000Z"),
            ..Default::default()
        }
    }

    /// A dataset of `n` rows and one run per `verdicts` entry: `verdicts[run][row]` lists the
    /// pass/fail of each trial (empty: the row is missing, `None`: predict failed).
    async fn runs(store: &dyn TraceStore, verdicts: &[Vec<Vec<Option<bool>>>]) -> Vec<String> {
        let n = verdicts[0].len();
        let rows: Vec<Value> = (0..n)
            .map(|i| json!({"task_id": format!("T/{i}"), "q": i}))
            .collect();
        let table = store
            .table_create(TableCreateReq {
                table: TableSchemaForInsert {
                    project_id: P.into(),
                    rows,
                    expected_digest: None,
                },
            })
            .await
            .unwrap();
        let ds = publish(
            store,
            "ds",
            json!({"_class_name": "Dataset", "_bases": ["Object", "BaseModel"], "rows": format!("weave:///{P}/table/{}", table.digest)}),
        )
        .await;
        let trials = verdicts[0].iter().map(Vec::len).max().unwrap_or(1);
        let ev = publish(
            store,
            "ev",
            json!({"_class_name": "Evaluation", "_bases": ["Evaluation", "Object", "BaseModel"], "name": "ev", "dataset": ds, "scorers": ["check"], "trials": trials}),
        )
        .await;
        let mut ids = Vec::new();
        for (r, run) in verdicts.iter().enumerate() {
            let model = publish(
                store,
                "Model",
                json!({"_class_name": "M", "_bases": ["Model", "Object", "BaseModel"], "model_name": format!("m{r}")}),
            )
            .await;
            let id = format!("run{r}");
            let mut root = call(&id, None, EVALUATE, 10 * r as u32);
            root.inputs = json!({"self": ev, "model": model})
                .as_object()
                .cloned()
                .unwrap();
            let mut passed = 0;
            let mut total = 0;
            let mut batch = Vec::new();
            // Rows start in reverse dataset order: the comparison must still follow the dataset.
            for (i, trials) in run.iter().enumerate().rev() {
                for (k, v) in trials.iter().enumerate() {
                    let mut c = call(
                        &format!("{id}-{i}-{k}"),
                        Some(&id),
                        PREDICT_AND_SCORE,
                        10 * r as u32 + 1,
                    );
                    c.inputs = json!({"self": ev, "model": model,
                        "example": format!("{ds}/attr/rows/id/{}", table.row_digests[i])})
                    .as_object()
                    .cloned()
                    .unwrap();
                    total += 1;
                    c.output = match v {
                        Some(ok) => {
                            passed += usize::from(*ok);
                            json!({"output": format!("answer {i}"), "scores": {"check": {"passed": ok, "note": "x"}}, "model_latency": 0.5})
                        }
                        None => {
                            json!({"output": null, "scores": {}, "model_latency": 0.1, "error": "boom"})
                        }
                    };
                    batch.push(c);
                }
            }
            root.output = json!({"check": {"passed": {"true_count": passed, "true_fraction": passed as f64 / total as f64}}, "model_latency": {"mean": 0.5 + r as f64}});
            batch.push(root);
            store
                .calls_complete(CallsCompleteReq { batch })
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    }

    #[tokio::test]
    async fn compares_runs_row_by_row_with_regressions_first() {
        let t = crate::testing::fresh_store();
        let s = t.store.as_ref();
        let (y, n) = (Some(true), Some(false));
        let ids = runs(
            s,
            &[
                vec![vec![y], vec![y], vec![n], vec![y], vec![y]],
                vec![vec![y], vec![n], vec![y], vec![None], vec![]],
            ],
        )
        .await;
        let res = compare_runs(
            s,
            CompareReq {
                project_id: P.into(),
                call_ids: ids.clone(),
                max_chars: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(res.runs.len(), 2);
        assert_eq!(res.runs[0].model.label, "Model:v0");
        assert_eq!(res.runs[1].model.attributes["model_name"], "m1");
        assert_eq!(res.runs[0].dataset.as_ref().unwrap().label, "ds:v0");
        assert_eq!(
            (res.runs[0].rows_expected, res.runs[0].rows_done),
            (Some(5), 5)
        );
        assert_eq!(
            res.scores,
            vec![ScorePath {
                path: "check.passed".into(),
                boolean: true
            }]
        );
        let order: Vec<(&str, Verdict)> = res
            .rows
            .iter()
            .map(|r| (r.label.as_str(), r.verdict))
            .collect();
        assert_eq!(
            order,
            [
                ("T/1", Verdict::Regression),
                ("T/3", Verdict::Regression),
                ("T/2", Verdict::Improvement),
                ("T/4", Verdict::Missing),
                ("T/0", Verdict::Same),
            ]
        );
        let failed = &res.rows[1].cells[1].as_ref().unwrap().trials[0];
        assert_eq!(failed.error.as_deref(), Some("boom"));
        assert_eq!(res.rows[1].index, Some(3));
        assert_eq!(
            res.rows[1].example["q"], 3,
            "the example is the dataset row"
        );
        assert_eq!(
            (
                res.counts.rows,
                res.counts.differ,
                res.counts.regressions,
                res.counts.improvements
            ),
            (5, 3, 2, 1)
        );
        let frac = res
            .metrics
            .iter()
            .find(|m| m.path == "check.passed.true_fraction")
            .unwrap();
        assert_eq!(frac.values, [Some(0.8), Some(0.5)]);
        assert!((frac.deltas[1].unwrap() + 0.3).abs() < 1e-9);
        assert_eq!(frac.better, [None, Some(false)]);
        let lat = res
            .metrics
            .iter()
            .find(|m| m.path == "model_latency.mean")
            .unwrap();
        assert!(lat.lower_is_better);
        assert_eq!(lat.better, [None, Some(false)], "slower is worse");
        assert_eq!(
            res.metrics[0].path, "check.passed.true_fraction",
            "scores first"
        );

        // Listing: newest first, with progress and metrics.
        let list = list_runs(
            s,
            EvalRunsReq {
                project_id: P.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(list.total, 2);
        assert_eq!(
            list.runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["run1", "run0"]
        );
        assert_eq!(list.runs[0].rows_started, 4);
    }

    #[tokio::test]
    async fn trials_give_fractions_per_row() {
        let t = crate::testing::fresh_store();
        let s = t.store.as_ref();
        let (y, n) = (Some(true), Some(false));
        let ids = runs(s, &[vec![vec![y, n], vec![y, y], vec![n, n]]]).await;
        let res = compare_runs(
            s,
            CompareReq {
                project_id: P.into(),
                call_ids: ids,
                max_chars: Some(16),
            },
        )
        .await
        .unwrap();
        assert_eq!(res.runs[0].trials, 2);
        let fr: Vec<f64> = res
            .rows
            .iter()
            .map(|r| r.cells[0].as_ref().unwrap().values["check.passed"])
            .collect();
        assert_eq!(fr, [0.5, 1.0, 0.0], "dataset order for a single run");
        assert!(res.rows.iter().all(|r| r.verdict == Verdict::Same));
        assert_eq!(res.rows[0].cells[0].as_ref().unwrap().trials.len(), 2);
    }

    #[tokio::test]
    async fn a_running_run_reports_progress_and_live_metrics() {
        let t = crate::testing::fresh_store();
        let s = t.store.as_ref();
        let (y, n) = (Some(true), Some(false));
        let ids = runs(s, &[vec![vec![y], vec![n], vec![y], vec![y]]]).await;
        let done = s
            .call_read(weave_types::CallReadReq {
                project_id: P.into(),
                id: ids[0].clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .call
            .unwrap();
        // A second run of the same evaluation, started (eagerly, as Python does) and 3 rows in.
        s.call_start(weave_types::CallStartReq {
            start: weave_types::StartedCallSchemaForInsert {
                project_id: P.into(),
                id: Some("live".into()),
                trace_id: Some("tl".into()),
                op_name: EVALUATE.into(),
                started_at: "2026-01-01T01:00:00.000000Z".into(),
                inputs: done.inputs.clone(),
                ..Default::default()
            },
        })
        .await
        .unwrap();
        let mut rows = Vec::new();
        for (i, ok) in [true, false, true].into_iter().enumerate() {
            let mut c = call(&format!("l{i}"), Some("live"), PREDICT_AND_SCORE, 1);
            c.trace_id = "tl".into();
            // Inline rows (not refs) still find their dataset position by digest.
            c.inputs = json!({"example": {"task_id": format!("T/{i}"), "q": i}})
                .as_object()
                .cloned()
                .unwrap();
            c.output = json!({"output": i, "scores": {"check": {"passed": ok}}});
            rows.push(c);
        }
        s.calls_complete(CallsCompleteReq { batch: rows })
            .await
            .unwrap();
        let res = compare_runs(
            s,
            CompareReq {
                project_id: P.into(),
                call_ids: vec!["live".into()],
                max_chars: None,
            },
        )
        .await
        .unwrap();
        let r = &res.runs[0];
        assert_eq!(r.status, "running");
        assert_eq!(
            (r.rows_started, r.rows_done, r.rows_expected),
            (3, 3, Some(4))
        );
        assert!(r.summary.is_null());
        let live = r
            .metrics
            .iter()
            .find(|m| m.path == "check.passed.true_fraction")
            .unwrap();
        assert!((live.value - 2.0 / 3.0).abs() < 1e-9, "{live:?}");
        let idx: Vec<Option<u64>> = res.rows.iter().map(|r| r.index).collect();
        assert_eq!(idx, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn examples_are_named_by_id_else_question_else_first_text() {
        let label = |v: Value| example_label(&v);
        assert_eq!(
            label(json!({"prompt": "p", "task_id": "HumanEval/3"})).as_deref(),
            Some("HumanEval/3")
        );
        assert_eq!(
            label(json!({"expected": "Answer: HI", "question": "hi"})).as_deref(),
            Some("hi")
        );
        assert_eq!(
            label(json!({"a": [1], "b": "  two\n lines "})).as_deref(),
            Some("two lines")
        );
        let long = label(json!({"question": "q".repeat(100)})).unwrap();
        assert_eq!(long.chars().count(), 61);
        assert_eq!(label(json!({"a": [1]})), None);
    }

    /// A score going down is better when its scorer declares lower-is-better (the
    /// evaluation's `score_directions`) or its name says so (`abs_err`), as `weave compare`
    /// judges it.
    #[test]
    fn lower_is_better_scores_going_down_are_improvements() {
        let declared = weave_types::eval::declared_directions(
            &json!({"score_directions": {"miss": "lower_is_better"}}),
        );
        let m = flatten_metrics(
            &json!({"miss": {"mean": 1.0}, "hit": {"mean": 1.0}}),
            &declared,
        );
        let lower: Vec<(&str, bool)> = m
            .iter()
            .map(|m| (m.path.as_str(), m.lower_is_better))
            .collect();
        assert_eq!(lower, [("miss.mean", true), ("hit.mean", false)]);
        let cell = |x: f64| {
            Some(RowCell {
                trials: Vec::new(),
                values: [("miss".to_string(), x), ("abs_err".to_string(), x)]
                    .into_iter()
                    .collect(),
            })
        };
        assert_eq!(
            verdict(&[cell(2.0), cell(0.0)], &["miss", "abs_err"], &declared),
            Verdict::Improvement
        );
        assert_eq!(
            verdict(&[cell(0.0), cell(2.0)], &["miss", "abs_err"], &declared),
            Verdict::Regression
        );
    }

    #[test]
    fn metric_paths_and_kinds() {
        let m = flatten_metrics(
            &json!({
            "errors": {"predict": 2},
            "s": {"passed": {"true_count": 3, "true_fraction": 0.75, "pass@1": 0.7}},
            "model_latency": {"mean": 0.2},
            "rows": 4
            }),
            &HashMap::new(),
        );
        let got: Vec<(&str, &str, bool)> = m
            .iter()
            .map(|m| (m.path.as_str(), m.kind, m.lower_is_better))
            .collect();
        assert_eq!(
            got,
            [
                ("s.passed.true_fraction", "fraction", false),
                ("s.passed.pass@1", "fraction", false),
                ("s.passed.true_count", "count", false),
                ("model_latency.mean", "seconds", true),
                ("errors.predict", "count", true),
                ("rows", "count", false),
            ]
        );
    }
}

//! `Evaluation`: run a model over a dataset with bounded parallelism, score every output,
//! summarise, and record the whole call tree.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::dataset::Dataset;
use super::resume::{KeptRow, ResumeFrom, ResumePlan};
use super::scorer::{BoxError, Scorer};
use super::summary::summarize;
use crate::error::Error;
use crate::model::Model;

/// Environment variable setting the default number of rows evaluated at once.
pub const PARALLELISM_ENV: &str = "WEAVE_PARALLELISM";
const DEFAULT_PARALLELISM: usize = 20;

/// A model that can be evaluated on rows of type `Row`.
///
/// Implement it by calling the model's own `#[weave::op]` predict method, so that the trace
/// shows the model's version and its steps. The method is `predict_row`, so that it does not
/// collide with the model's own `predict` op (`self.predict(..)` is the op).
pub trait Predict<Row>: Model + Send + Sync {
    /// What the model returns; scorers receive it.
    type Output: Serialize + Send + Sync + 'static;
    /// Produces the output for one row.
    fn predict_row(&self, row: &Row)
        -> impl Future<Output = Result<Self::Output, BoxError>> + Send;
}

/// The result of one row (and trial) of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowResult {
    /// Index of the dataset row.
    pub example: usize,
    /// Trial number (0-based).
    pub trial: usize,
    /// Digest of the dataset row.
    pub row_digest: String,
    /// The model's output (`None` when predict failed).
    pub output: Option<Value>,
    /// Score per scorer that succeeded.
    pub scores: Map<String, Value>,
    /// Error per scorer that failed.
    pub scorer_errors: BTreeMap<String, String>,
    /// Seconds spent in predict.
    pub model_latency: f64,
    /// The predict error, if any.
    pub error: Option<String>,
}

/// What [`Evaluation::evaluate`] returns: the summary, every row's result, and the call
/// that recorded the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationResults {
    /// The summary, in W&B Weave's format.
    pub summary: Value,
    /// Per-row results, in dataset order (then trial order).
    pub rows: Vec<RowResult>,
    /// Id of the run's root call ([`EVALUATE`](super::EVALUATE)); `None` when tracing is off.
    pub call_id: Option<String>,
}

/// The output of `Evaluation.predict_and_score`, as Weave records it.
#[derive(Debug, Serialize)]
struct PredictAndScore {
    output: Option<Value>,
    scores: Map<String, Value>,
    model_latency: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    scorer_errors: BTreeMap<String, String>,
}

/// An evaluation of models on a dataset with a set of scorers.
pub struct Evaluation<Row, Out> {
    name: String,
    dataset: Dataset,
    scorers: Vec<Arc<dyn Scorer<Row, Out>>>,
    trials: usize,
    parallelism: Option<usize>,
    progress: bool,
}

impl<Row, Out> Evaluation<Row, Out>
where
    Row: DeserializeOwned + Send + Sync + 'static,
    Out: Serialize + Send + Sync + 'static,
{
    /// An evaluation named `name` over `dataset`.
    pub fn new(name: impl Into<String>, dataset: Dataset) -> Self {
        Evaluation {
            name: name.into(),
            dataset,
            scorers: Vec::new(),
            trials: 1,
            parallelism: None,
            progress: true,
        }
    }

    /// Adds a scorer.
    pub fn scorer(mut self, scorer: impl Scorer<Row, Out>) -> Self {
        self.scorers.push(Arc::new(scorer));
        self
    }

    /// Runs every row `n` times; the summary then has pass@k for boolean scores.
    pub fn trials(mut self, n: usize) -> Self {
        self.trials = n;
        self
    }

    /// Rows evaluated at once (default: `$WEAVE_PARALLELISM`, else 20).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = Some(n);
        self
    }

    /// Whether to show a progress bar on stderr (only ever drawn on a terminal).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    fn effective_parallelism(&self) -> Result<usize, Error> {
        if let Some(n) = self.parallelism {
            return if n == 0 {
                Err(Error::Evaluation("parallelism must be at least 1".into()))
            } else {
                Ok(n)
            };
        }
        match std::env::var(PARALLELISM_ENV) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Error::Evaluation(format!(
                    "{PARALLELISM_ENV}={v:?} is not a positive whole number"
                ))),
            },
            _ => Ok(DEFAULT_PARALLELISM),
        }
    }

    /// Evaluates `model`: checks every row against `Row` first (an error names the row and
    /// field before anything runs), then predicts and scores with bounded parallelism.
    pub async fn evaluate<M>(&self, model: &M) -> Result<EvaluationResults, Error>
    where
        M: Predict<Row, Output = Out>,
    {
        self.run(model, None).await
    }

    /// Reads an interrupted run of this evaluation from `store` (see [`ResumeFrom`]), checks
    /// that it ran the same model version, dataset version, scorers and trials (else
    /// [`Error::ResumeRefused`] names what differs, unless `force`), and collects the rows it
    /// finished. Call it under the client that recorded the run (refs name its project).
    /// The rules are in the [`resume`](super::resume) module.
    pub async fn plan_resume<M, S>(
        &self,
        store: &S,
        model: &M,
        from: &ResumeFrom,
        force: bool,
    ) -> Result<ResumePlan, Error>
    where
        M: Predict<Row, Output = Out>,
        S: weave_store::TraceStore,
    {
        let project_id = crate::context::dispatch()
            .map(|d| d.project_id().to_string())
            .ok_or_else(|| {
                Error::Evaluation("resuming needs a weave client (call weave::init)".into())
            })?;
        let model_version = crate::model::model_version(model);
        let eval_version = crate::model::model_version(self);
        let current = super::resume::Current {
            project_id: &project_id,
            evaluation_ref: eval_version.uri(),
            evaluation_name: eval_version.name.clone(),
            dataset_ref: crate::model::model_ref_value(&self.dataset),
            scorers: self.scorer_names(),
            trials: self.trials,
            model_ref: model_version.uri(),
            model_name: model_version.name.clone(),
            row_digests: self.dataset.row_digests(),
        };
        super::resume::plan(store, &current, from, force).await
    }

    /// Runs the rest of an interrupted run: the rows in `plan` are kept (recorded under the
    /// new run as calls returning the stored result), the others run. The summary and rows
    /// are those of an uninterrupted run with the same outputs.
    pub async fn resume<M>(&self, model: &M, plan: ResumePlan) -> Result<EvaluationResults, Error>
    where
        M: Predict<Row, Output = Out>,
    {
        self.run(model, Some(plan)).await
    }

    async fn run<M>(&self, model: &M, plan: Option<ResumePlan>) -> Result<EvaluationResults, Error>
    where
        M: Predict<Row, Output = Out>,
    {
        if self.trials == 0 {
            return Err(Error::Evaluation("trials must be at least 1".into()));
        }
        let parallelism = self.effective_parallelism()?;
        let mut names = std::collections::HashSet::new();
        for s in &self.scorers {
            if RESERVED_SUMMARY_KEYS.contains(&s.name()) {
                return Err(Error::Evaluation(format!(
                    "a scorer is named `{}`, a key the summary uses for itself; rename the \
                     scorer (reserved: {})",
                    s.name(),
                    RESERVED_SUMMARY_KEYS.join(", ")
                )));
            }
            if !names.insert(s.name().to_string()) {
                return Err(Error::Evaluation(format!(
                    "two scorers are named `{}`; scorer names must be unique",
                    s.name()
                )));
            }
        }
        let rows: Vec<Arc<Row>> = self
            .dataset
            .rows_as::<Row>()?
            .into_iter()
            .map(Arc::new)
            .collect();
        let results = std::sync::Mutex::new(Vec::with_capacity(rows.len() * self.trials));
        let call_id = std::sync::Mutex::new(None);
        let summary = self
            .evaluate_call(model, &rows, parallelism, &results, &call_id, plan.as_ref())
            .await;
        let mut rows_out = results.into_inner().unwrap_or_else(|e| e.into_inner());
        rows_out.sort_by_key(|r: &RowResult| (r.example, r.trial));
        Ok(EvaluationResults {
            summary,
            rows: rows_out,
            call_id: call_id.into_inner().unwrap_or_else(|e| e.into_inner()),
        })
    }

    // The op names here are `super::EVALUATE`, `PREDICT_AND_SCORE` and `SUMMARIZE` (an
    // attribute takes only a literal; a test checks they agree).
    #[crate::op(
        name = "Evaluation.evaluate",
        skip(rows, parallelism, results, call_id, plan)
    )]
    async fn evaluate_call<M>(
        &self,
        model: &M,
        rows: &[Arc<Row>],
        parallelism: usize,
        results: &std::sync::Mutex<Vec<RowResult>>,
        call_id: &std::sync::Mutex<Option<String>>,
        plan: Option<&ResumePlan>,
    ) -> Value
    where
        M: Predict<Row, Output = Out>,
    {
        *call_id.lock().unwrap_or_else(|e| e.into_inner()) =
            crate::context::current().map(|c| c.call_id());
        let kept = plan.map(ResumePlan::kept_by_slot).unwrap_or_default();
        if let Some(plan) = plan {
            let mut resume = json!({
                "resumed_from": plan.call_id,
                "reused_rows": plan.kept.len(),
            });
            if !plan.differences.is_empty() {
                resume["forced"] = json!(plan.differences);
            }
            crate::context::add_attributes(json!({ "resume": resume }));
        }
        let total = rows.len() * self.trials;
        let bar = if self.progress && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} rows  errors: {msg}  ETA {eta}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(self.name.clone());
            bar.set_message("0");
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let jobs = (0..self.trials).flat_map(|t| (0..rows.len()).map(move |i| (i, t)));
        let mut stream = futures::stream::iter(jobs)
            .map(|(i, trial)| {
                let example = &self.dataset.rows()[i];
                let reused = kept.get(&(i, trial)).copied();
                self.predict_and_score(model, example, rows[i].clone(), i, trial, reused)
                    .map(move |r| (i, trial, r))
            })
            .buffer_unordered(parallelism);
        let mut errors = 0usize;
        while let Some((i, trial, r)) = stream.next().await {
            if r.error.is_some() || !r.scorer_errors.is_empty() {
                errors += 1;
                bar.set_message(errors.to_string());
            }
            bar.inc(1);
            let row = RowResult {
                example: i,
                trial,
                row_digest: self.dataset.row_digests()[i].clone(),
                output: r.output,
                scores: r.scores,
                scorer_errors: r.scorer_errors,
                model_latency: r.model_latency,
                error: r.error,
            };
            results.lock().unwrap_or_else(|e| e.into_inner()).push(row);
        }
        bar.finish_and_clear();
        let mut rows = results.lock().unwrap_or_else(|e| e.into_inner());
        // Dataset order (then trial), as Weave sorts its rows before summarising.
        rows.sort_by_key(|r| (r.trial, r.example));
        self.summarize(&rows)
    }

    #[crate::op(name = "Evaluation.predict_and_score", skip(row, index, trial, reused))]
    async fn predict_and_score<M>(
        &self,
        model: &M,
        example: &Value,
        row: Arc<Row>,
        index: usize,
        trial: usize,
        reused: Option<&KeptRow>,
    ) -> PredictAndScore
    where
        M: Predict<Row, Output = Out>,
    {
        // Where the row is, so that a resumed run can find it (see `resume`).
        let mut attrs = json!({"eval_row": {
            "index": index,
            "trial": trial,
            "row_digest": self.dataset.row_digests()[index],
        }});
        if let Some(kept) = reused {
            attrs["resume"] = json!({"reused_from_call": kept.call_id});
            crate::context::add_attributes(attrs);
            let r = &kept.result;
            return PredictAndScore {
                output: r.output.clone(),
                scores: r.scores.clone(),
                model_latency: r.model_latency,
                error: None,
                scorer_errors: r.scorer_errors.clone(),
            };
        }
        crate::context::add_attributes(attrs);
        let started = Instant::now();
        let predicted = AssertUnwindSafe(model.predict_row(&row))
            .catch_unwind()
            .await;
        let model_latency = started.elapsed().as_secs_f64();
        let output = match predicted {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("predict panicked".to_string()),
        };
        let mut result = PredictAndScore {
            output: None,
            scores: Map::new(),
            model_latency,
            error: None,
            scorer_errors: BTreeMap::new(),
        };
        let output = match output {
            Ok(out) => out,
            Err(e) => {
                result.error = Some(e);
                return result;
            }
        };
        result.output =
            Some(serde_json::to_value(&output).unwrap_or_else(|e| {
                Value::String(format!("<output could not be serialised: {e}>"))
            }));
        let output = Arc::new(output);
        // Scorers of one row run concurrently; each one's failure stays its own.
        let scored = futures::future::join_all(self.scorers.iter().map(|s| {
            let fut = s.score(row.clone(), output.clone());
            AssertUnwindSafe(fut)
                .catch_unwind()
                .map(move |r| (s.name().to_string(), r))
        }))
        .await;
        for (name, r) in scored {
            match r {
                Ok(Ok(v)) => {
                    result.scores.insert(name, v);
                }
                Ok(Err(e)) => {
                    result.scorer_errors.insert(name, e.to_string());
                }
                Err(_) => {
                    result
                        .scorer_errors
                        .insert(name, "the scorer panicked".to_string());
                }
            }
        }
        result
    }

    #[crate::op(name = "Evaluation.summarize", skip(rows))]
    fn summarize(&self, rows: &[RowResult]) -> Value {
        summarize_rows(&self.scorer_names(), rows, self.trials)
    }

    fn scorer_names(&self) -> Vec<String> {
        self.scorers.iter().map(|s| s.name().to_string()).collect()
    }
}

/// Keys of an evaluation's summary besides the scorers' (a scorer may not take one).
pub const RESERVED_SUMMARY_KEYS: [&str; 4] = ["output", "model_latency", "errors", "rows"];

/// The summary of an evaluation's rows, as `Evaluation.summarize` returns it: Weave's keys
/// (`output` when the outputs can be summarised, one per scorer, `model_latency` over every
/// row), then this crate's `errors` (`predict` count, `scorers` count per scorer) and `rows`.
pub fn summarize_rows(scorer_names: &[String], rows: &[RowResult], trials: usize) -> Value {
    let mut summary = Map::new();
    let outputs: Vec<Value> = rows
        .iter()
        .map(|r| r.output.clone().unwrap_or(Value::Null))
        .collect();
    if let Some(s) = super::summary::auto_summarize(&outputs)
        .filter(|s| s.as_object().is_none_or(|m| !m.is_empty()))
    {
        summary.insert("output".into(), s);
    }
    let scores: Vec<Map<String, Value>> = rows.iter().map(|r| r.scores.clone()).collect();
    let examples: Vec<usize> = rows.iter().map(|r| r.example).collect();
    summary.extend(summarize(scorer_names, &scores, &examples, trials));
    let latencies: Vec<Value> = rows.iter().map(|r| json!(r.model_latency)).collect();
    if let Some(s) = super::summary::auto_summarize(&latencies)
        .filter(|s| s.as_object().is_none_or(|m| !m.is_empty()))
    {
        summary.insert("model_latency".into(), s);
    }
    let mut scorer_errors = Map::new();
    for n in scorer_names {
        let c = rows
            .iter()
            .filter(|r| r.scorer_errors.contains_key(n))
            .count();
        scorer_errors.insert(n.clone(), json!(c));
    }
    summary.insert(
        "errors".into(),
        json!({
            "predict": rows.iter().filter(|r| r.error.is_some()).count(),
            "scorers": scorer_errors,
        }),
    );
    summary.insert("rows".into(), json!(rows.len()));
    Value::Object(summary)
}

impl<Row: 'static, Out: 'static> Evaluation<Row, Out> {
    /// Declared directions, by scorer name.
    fn directions(&self) -> Vec<(String, super::scorer::Direction)> {
        self.scorers
            .iter()
            .filter_map(|s| Some((s.name().to_string(), s.direction()?)))
            .collect()
    }
}

impl<Row: 'static, Out: 'static> Model for Evaluation<Row, Out> {
    fn weave_type_name(&self) -> &'static str {
        "Evaluation"
    }
    fn __weave_object_name(&self) -> String {
        self.name.clone()
    }
    fn __weave_bases(&self) -> &'static [&'static str] {
        &["Object", "BaseModel"]
    }
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        self.dataset.__weave_fingerprint(out);
        for s in &self.scorers {
            out.push(0);
            out.extend_from_slice(s.name().as_bytes());
        }
        out.push(0);
        out.extend_from_slice(self.trials.to_string().as_bytes());
        for (name, d) in self.directions() {
            out.push(0);
            out.extend_from_slice(name.as_bytes());
            out.push(1);
            out.extend_from_slice(d.as_str().as_bytes());
        }
    }
    fn __weave_attributes(&self) -> Vec<(&'static str, Value)> {
        let mut attrs = vec![
            ("name", Value::from(self.name.clone())),
            ("dataset", crate::model::model_ref_value(&self.dataset)),
            (
                "scorers",
                Value::from(
                    self.scorers
                        .iter()
                        .map(|s| s.name().to_string())
                        .collect::<Vec<_>>(),
                ),
            ),
            ("trials", Value::from(self.trials)),
        ];
        // Only when declared, so that evaluations without keep their version.
        let directions = self.directions();
        if !directions.is_empty() {
            attrs.push((
                "score_directions",
                Value::Object(
                    directions
                        .into_iter()
                        .map(|(n, d)| (n, Value::from(d.as_str())))
                        .collect(),
                ),
            ));
        }
        attrs
    }
    fn __weave_type_id(&self) -> Option<std::any::TypeId> {
        None
    }
}

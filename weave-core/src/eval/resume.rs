//! Resuming an interrupted evaluation: find the run in the store, check that it is the same
//! evaluation (model version, dataset version, scorers, trials), and read back the rows it
//! finished, so that only the others run again.
//!
//! The rules:
//! - A run can be resumed when its `Evaluation.evaluate` call has no end (its process died)
//!   or ended `Cancelled` (Ctrl-C dropped it), and no later run resumed it already. A run
//!   whose status is still `running` (its process is alive, or cannot be checked and the run
//!   is younger than `INTERRUPTED_AFTER`, see `weave_types::summary`) is refused unless forced.
//! - A row is kept when its `Evaluation.predict_and_score` call finished without an exception
//!   and its predict did not fail (a failed predict, e.g. a rate-limit storm, is tried again).
//!   Rows whose scorers failed are kept as they are. Rows are matched by dataset-row digest and
//!   trial, both recorded in the row call's `eval_row` attribute.
//! - The resumed run is a **new** `Evaluation.evaluate` call, complete in itself: kept rows
//!   appear under it as `Evaluation.predict_and_score` calls that return the stored result
//!   without calling the model; each carries the attribute `resume.reused_from_call` (the row
//!   call it copies), and the new run carries `resume.resumed_from` (the interrupted run),
//!   `resume.reused_rows` and, when forced, `resume.forced` (what differed).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use weave_store::TraceStore;
use weave_types::{
    CallSchema, CallsFilter, CallsQueryReq, ObjReadReq, SortBy, SortDirection, WeaveRef,
};

use super::evaluation::RowResult;
use super::{EVALUATE, PREDICT_AND_SCORE};
use crate::error::Error;

/// Which interrupted run to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeFrom {
    /// The latest resumable run of the same evaluation (by name) and model (by name).
    Latest,
    /// The run whose `Evaluation.evaluate` call has this id.
    Call(String),
}

/// A row kept from the interrupted run.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptRow {
    /// The row's result, indexed in the current dataset.
    pub result: RowResult,
    /// The stored `Evaluation.predict_and_score` call it was read from.
    pub call_id: String,
}

/// What a resumed run starts from; made by
/// [`Evaluation::plan_resume`](super::Evaluation::plan_resume).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePlan {
    /// The interrupted run's `Evaluation.evaluate` call.
    pub call_id: String,
    /// Rows finished there, kept.
    pub kept: Vec<KeptRow>,
    /// What differs from the interrupted run (empty unless the resume was forced).
    pub differences: Vec<String>,
}

impl ResumePlan {
    pub(crate) fn kept_by_slot(&self) -> HashMap<(usize, usize), &KeptRow> {
        self.kept
            .iter()
            .map(|k| ((k.result.example, k.result.trial), k))
            .collect()
    }
}

/// The `eval_row` attribute of a row call: where the row is in its dataset.
#[derive(Debug, Deserialize)]
pub(crate) struct EvalRowAttr {
    pub(crate) index: usize,
    pub(crate) trial: usize,
    pub(crate) row_digest: String,
}

/// The output of a stored `Evaluation.predict_and_score` call.
#[derive(Debug, Deserialize)]
struct StoredRow {
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    scores: Map<String, Value>,
    #[serde(default)]
    model_latency: f64,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    scorer_errors: BTreeMap<String, String>,
}

/// What the current run is, to compare with the stored one.
pub(crate) struct Current<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) evaluation_ref: String,
    pub(crate) evaluation_name: String,
    pub(crate) dataset_ref: Value,
    pub(crate) scorers: Vec<String>,
    pub(crate) trials: usize,
    pub(crate) model_ref: String,
    pub(crate) model_name: String,
    /// Digest of each dataset row, in order.
    pub(crate) row_digests: &'a [String],
}

fn op_ref(project_id: &str, op: &str) -> String {
    format!("weave:///{project_id}/op/{op}:*")
}

fn store_err(e: weave_store::StoreError) -> Error {
    Error::Store(e)
}

/// Whether the call's run can be resumed: no end, or ended `Cancelled`.
pub fn is_resumable(call: &CallSchema) -> bool {
    match &call.exception {
        _ if call.ended_at.is_none() => true,
        Some(_) => call.exception_info().is_some_and(|e| e.kind == "Cancelled"),
        None => false,
    }
}

fn ref_name(v: &Value) -> Option<String> {
    WeaveRef::parse(v.as_str()?).ok().map(|r| r.name)
}

/// The latest resumable run of evaluation `evaluation_name` with model `model_name` in the
/// store, if any.
pub async fn latest_resumable<S: TraceStore>(
    store: &S,
    project_id: &str,
    evaluation_name: &str,
    model_name: &str,
) -> Result<Option<CallSchema>, Error> {
    Ok(
        resumable_runs(store, project_id, evaluation_name, model_name)
            .await?
            .into_iter()
            .next(),
    )
}

/// Resumable runs of evaluation `evaluation_name` with model `model_name`, newest first.
async fn resumable_runs<S: TraceStore>(
    store: &S,
    project_id: &str,
    evaluation_name: &str,
    model_name: &str,
) -> Result<Vec<CallSchema>, Error> {
    let runs = store
        .calls_query_vec(CallsQueryReq {
            project_id: project_id.to_string(),
            filter: Some(CallsFilter {
                op_names: Some(vec![op_ref(project_id, EVALUATE)]),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy {
                field: "started_at".into(),
                direction: SortDirection::Desc,
            }]),
            ..Default::default()
        })
        .await
        .map_err(store_err)?;
    let resumed: HashSet<&str> = runs
        .iter()
        .filter_map(|c| c.attributes.get("resume")?.get("resumed_from")?.as_str())
        .collect();
    Ok(runs
        .iter()
        .filter(|c| {
            ref_name(&c.inputs.get("self").cloned().unwrap_or_default()).as_deref()
                == Some(evaluation_name)
                && ref_name(&c.inputs.get("model").cloned().unwrap_or_default()).as_deref()
                    == Some(model_name)
                && is_resumable(c)
                && !resumed.contains(c.id.as_str())
        })
        .cloned()
        .collect())
}

/// Reads the run to resume, checks it against `current`, and collects its finished rows.
pub(crate) async fn plan<S: TraceStore>(
    store: &S,
    current: &Current<'_>,
    from: &ResumeFrom,
    force: bool,
) -> Result<ResumePlan, Error> {
    let project_id = current.project_id;
    let run = match from {
        // The latest run of this very model version; else the latest of this model name
        // (refused below, saying what differs).
        ResumeFrom::Latest => {
            let runs = resumable_runs(
                store,
                project_id,
                &current.evaluation_name,
                &current.model_name,
            )
            .await?;
            let same = runs.iter().position(|c| {
                c.inputs.get("model").and_then(Value::as_str) == Some(&current.model_ref)
            });
            runs.into_iter().nth(same.unwrap_or(0))
        }
        .ok_or_else(|| Error::NothingToResume {
            evaluation: current.evaluation_name.clone(),
            model: current.model_name.clone(),
        })?,
        ResumeFrom::Call(id) => {
            let found = store
                .calls_query_vec(CallsQueryReq {
                    project_id: project_id.to_string(),
                    filter: Some(CallsFilter {
                        call_ids: Some(vec![id.clone()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(store_err)?;
            let call = found.into_iter().next().ok_or_else(|| {
                Error::Evaluation(format!(
                    "cannot resume: no call {id} in project {project_id}"
                ))
            })?;
            if call.op_display_name() != EVALUATE {
                return Err(Error::Evaluation(format!(
                    "cannot resume: call {id} is a `{}` call, not an `{EVALUATE}` run",
                    call.op_display_name()
                )));
            }
            if !is_resumable(&call) && !force {
                return Err(Error::ResumeRefused {
                    call_id: id.clone(),
                    differences: vec![format!(
                        "the run already finished ({}); there is nothing left to run",
                        call.status().as_str()
                    )],
                });
            }
            call
        }
    };

    if run.status() == weave_types::CallStatus::Running && !force {
        let by = weave_types::summary::WriterProcess::from_attributes(&run.attributes)
            .map(|w| format!(" (process {} on {})", w.process_id, w.host))
            .unwrap_or_default();
        return Err(Error::ResumeRefused {
            call_id: run.id.clone(),
            differences: vec![format!(
                "the run is still running{by}; resuming it now would run its rows twice"
            )],
        });
    }
    let differences = differences(store, current, &run).await?;
    if !differences.is_empty() && !force {
        return Err(Error::ResumeRefused {
            call_id: run.id.clone(),
            differences,
        });
    }

    let rows = store
        .calls_query_vec(CallsQueryReq {
            project_id: project_id.to_string(),
            filter: Some(CallsFilter {
                parent_ids: Some(vec![run.id.clone()]),
                op_names: Some(vec![op_ref(project_id, PREDICT_AND_SCORE)]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map_err(store_err)?;
    let mut by_digest: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, d) in current.row_digests.iter().enumerate() {
        by_digest.entry(d.as_str()).or_default().push(i);
    }
    let mut kept: BTreeMap<(usize, usize), KeptRow> = BTreeMap::new();
    for call in rows {
        if call.ended_at.is_none() || call.exception.is_some() {
            continue;
        }
        let Some(attr) = call
            .attributes
            .get("eval_row")
            .and_then(|a| EvalRowAttr::deserialize(a).ok())
        else {
            continue;
        };
        let Some(stored) = call
            .output
            .as_ref()
            .and_then(|o| StoredRow::deserialize(o).ok())
        else {
            continue;
        };
        if stored.error.is_some() || attr.trial >= current.trials {
            continue;
        }
        // The same index when the row there is the same; else where that row is now.
        let index = if current.row_digests.get(attr.index) == Some(&attr.row_digest) {
            Some(attr.index)
        } else {
            by_digest
                .get(attr.row_digest.as_str())
                .and_then(|v| v.iter().find(|i| !kept.contains_key(&(**i, attr.trial))))
                .copied()
        };
        let Some(index) = index else { continue };
        kept.entry((index, attr.trial)).or_insert(KeptRow {
            result: RowResult {
                example: index,
                trial: attr.trial,
                row_digest: attr.row_digest,
                output: stored.output,
                scores: stored.scores,
                scorer_errors: stored.scorer_errors,
                model_latency: stored.model_latency,
                error: None,
            },
            call_id: call.id.clone(),
        });
    }
    Ok(ResumePlan {
        call_id: run.id,
        kept: kept.into_values().collect(),
        differences,
    })
}

/// What differs between the stored run and the current one, each as a sentence.
async fn differences<S: TraceStore>(
    store: &S,
    current: &Current<'_>,
    run: &CallSchema,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let stored_model = run
        .inputs
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("");
    if stored_model != current.model_ref {
        out.push(format!(
            "model version: the interrupted run used {stored_model}, this one is {}",
            current.model_ref
        ));
    }
    let stored_eval = run.inputs.get("self").and_then(Value::as_str).unwrap_or("");
    if stored_eval == current.evaluation_ref {
        return Ok(out);
    }
    let parsed = WeaveRef::parse(stored_eval).map_err(Error::InvalidRef)?;
    let obj = store
        .obj_read(ObjReadReq {
            project_id: parsed.project_id(),
            object_id: parsed.name.clone(),
            digest: parsed.digest.clone(),
            ..Default::default()
        })
        .await
        .map_err(store_err)?
        .obj;
    let val = &obj.val;
    if parsed.name != current.evaluation_name {
        out.push(format!(
            "evaluation: the interrupted run is `{}`, this one `{}`",
            parsed.name, current.evaluation_name
        ));
    }
    if val.get("dataset") != Some(&current.dataset_ref) {
        out.push(format!(
            "dataset version: the interrupted run used {}, this one is {}",
            val.get("dataset").unwrap_or(&Value::Null),
            current.dataset_ref
        ));
    }
    let stored_scorers: Vec<String> = val
        .get("scorers")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    if stored_scorers != current.scorers {
        out.push(format!(
            "scorers: the interrupted run had [{}], this one has [{}]",
            stored_scorers.join(", "),
            current.scorers.join(", ")
        ));
    }
    let stored_trials = val.get("trials").and_then(Value::as_u64);
    if stored_trials != Some(current.trials as u64) {
        out.push(format!(
            "trials: the interrupted run had {}, this one has {}",
            stored_trials.map_or("?".to_string(), |t| t.to_string()),
            current.trials
        ));
    }
    if out.is_empty() {
        out.push(format!(
            "evaluation version: the interrupted run used {stored_eval}, this one is {}",
            current.evaluation_ref
        ));
    }
    Ok(out)
}

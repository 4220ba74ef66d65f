//! The weave scorer for HumanEval+ and MBPP+: `score_evalplus`, one traced call per row,
//! whose `base` and `plus` booleans the evaluation summary turns into `pass@1 base` and
//! `pass@1 plus`.

use std::sync::Arc;

use serde::Serialize;

use super::check::{check_solution_async, CheckError, Outcome};
use super::data::PlusDataset;
use super::ground_truth::GroundTruth;
use super::Limits;
use crate::humaneval::Problem;
use crate::sandbox::Sandbox;

/// What `score_evalplus` returns for a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPlusScore {
    /// Passed the base inputs (`pass@1 base`).
    pub base: bool,
    /// Passed the base and the plus inputs (`pass@1 plus`).
    pub plus: bool,
    /// EvalPlus's base status (`pass`, `fail`, `timeout`).
    pub base_status: &'static str,
    /// EvalPlus's plus status.
    pub plus_status: Option<&'static str>,
    /// The base part's outcome in full.
    pub base_result: String,
    /// The plus part's outcome in full.
    pub plus_result: Option<String>,
    /// The base input that failed (0-based), when one did.
    pub base_failed_input: Option<usize>,
    /// The plus input that failed (0-based), when one did.
    pub plus_failed_input: Option<usize>,
}

impl From<&Outcome> for EvalPlusScore {
    fn from(o: &Outcome) -> Self {
        EvalPlusScore {
            base: o.base_passed(),
            plus: o.plus_passed(),
            base_status: o.base.status.as_str(),
            plus_status: o.plus.as_ref().map(|p| p.status.as_str()),
            base_result: o.base.detail.clone(),
            plus_result: o.plus.as_ref().map(|p| p.detail.clone()),
            base_failed_input: o.base.failed_input,
            plus_failed_input: o.plus.as_ref().and_then(|p| p.failed_input),
        }
    }
}

/// Everything scoring needs besides the row and the output. Cheap to clone.
#[derive(Clone)]
pub struct EvalPlusScorer {
    inner: Arc<Inner>,
}

struct Inner {
    dataset: Arc<PlusDataset>,
    truth: Arc<GroundTruth>,
    sandbox: Sandbox,
    limits: Limits,
}

impl EvalPlusScorer {
    /// A scorer for `dataset` with its ground truth, running programs in `sandbox` (see
    /// [`super::sandbox_config`]).
    pub fn new(
        dataset: Arc<PlusDataset>,
        truth: Arc<GroundTruth>,
        sandbox: Sandbox,
        limits: Limits,
    ) -> Self {
        EvalPlusScorer {
            inner: Arc::new(Inner {
                dataset,
                truth,
                sandbox,
                limits,
            }),
        }
    }
}

/// Scores the generated code on the problem's base and plus inputs (EvalPlus's rules). The
/// output is the whole solution (what EvalPlus calls `solution`).
#[weave::op(skip(scorer))]
pub async fn score_evalplus(
    problem: &Problem,
    output: &str,
    scorer: &EvalPlusScorer,
) -> Result<EvalPlusScore, CheckError> {
    let scorer = &scorer.inner;
    let sandbox = &scorer.sandbox;
    weave::add_attributes(serde_json::json!({
        "sandbox": {
            "protections": sandbox.protections().active(),
            "missing": sandbox.protections().missing(),
            "mode": sandbox.config().mode,
        },
        "evalplus": {
            "dataset": scorer.dataset.benchmark.to_string(),
            "hash": scorer.truth.hash(),
            "min_time_limit": scorer.limits.min_time_limit,
            "gt_time_limit_factor": scorer.limits.gt_time_limit_factor,
        }
    }));
    let plus_problem = scorer.dataset.problem(&problem.task_id).ok_or_else(|| {
        CheckError::GroundTruth(format!(
            "{} is not a {} problem",
            problem.task_id, scorer.dataset.benchmark
        ))
    })?;
    let truth = scorer.truth.task(&problem.task_id).ok_or_else(|| {
        CheckError::GroundTruth(format!("no ground truth for {}", problem.task_id))
    })?;
    let outcome = check_solution_async(
        scorer.dataset.benchmark,
        plus_problem,
        truth,
        output,
        sandbox,
        &scorer.limits,
        false,
    )
    .await?;
    Ok(EvalPlusScore::from(&outcome))
}

impl weave::eval::Scorer<Problem, String> for EvalPlusScorer {
    fn name(&self) -> &str {
        "score_evalplus"
    }

    fn score(&self, row: Arc<Problem>, output: Arc<String>) -> weave::eval::ScoreFuture {
        let scorer = self.clone();
        Box::pin(async move {
            let score = score_evalplus(&row, &output, &scorer).await?;
            Ok(serde_json::to_value(score)?)
        })
    }
}

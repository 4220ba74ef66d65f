//! Op names of an evaluation's call tree, as W&B Weave names them: the runtime records them,
//! the CLI and UIs recognise runs by them.

/// Op name of an evaluation run's root call (inputs `self`: the evaluation, `model`).
pub const EVALUATE: &str = "Evaluation.evaluate";
/// Op name of one row's call under the root (predict, then the scorers).
pub const PREDICT_AND_SCORE: &str = "Evaluation.predict_and_score";
/// Op name of the summary's call, the root's last child.
pub const SUMMARIZE: &str = "Evaluation.summarize";

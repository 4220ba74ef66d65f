//! Op names of an evaluation's call tree, as W&B Weave names them: the runtime records them,
//! the CLI and UIs recognise runs by them; and which way a score is better, one rule for
//! every reader.

use std::collections::HashMap;

use serde_json::Value;

/// Op name of an evaluation run's root call (inputs `self`: the evaluation, `model`).
pub const EVALUATE: &str = "Evaluation.evaluate";
/// Op name of one row's call under the root (predict, then the scorers).
pub const PREDICT_AND_SCORE: &str = "Evaluation.predict_and_score";
/// Op name of the summary's call, the root's last child.
pub const SUMMARIZE: &str = "Evaluation.summarize";

/// Name parts that mark a lower-is-better metric (`abs_err`, `loss`, `model_latency`, ...).
const LOWER_IS_BETTER: &[&str] = &[
    "err",
    "error",
    "errors",
    "loss",
    "latency",
    "distance",
    "mae",
    "mse",
    "rmse",
    "wer",
    "cer",
    "perplexity",
    "cost",
    "duration",
    "elapsed",
];

/// Whether a metric path (`abs_err.mean`, `judge.score`) is lower-is-better: as its scorer
/// (the path's first part) declares in `declared` (`true`: lower is better), else when a part
/// of its name is a known lower-is-better word (`abs_err` has `err`), else not (booleans
/// included: `true` is better).
pub fn lower_is_better(path: &str, declared: &HashMap<String, bool>) -> bool {
    let scorer = path.split('.').next().unwrap_or(path);
    if let Some(lower) = declared.get(scorer) {
        return *lower;
    }
    path.split(['.', '_', '-'])
        .any(|w| LOWER_IS_BETTER.contains(&w.to_ascii_lowercase().as_str()))
}

/// The directions an Evaluation object declares in `score_directions`
/// (`{"<scorer>": "lower_is_better" | "higher_is_better"}`, as the Rust client stores them;
/// `lower`/`minimize`/`min` and `higher`/`maximize`/`max` are read too): scorer to
/// "lower is better".
pub fn declared_directions(evaluation: &Value) -> HashMap<String, bool> {
    let mut out = HashMap::new();
    for (scorer, d) in evaluation["score_directions"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(lower) = d.as_str().and_then(parse_direction) {
            out.insert(scorer.clone(), lower);
        }
    }
    out
}

/// A declared direction: `Some(true)` for lower-is-better words, `Some(false)` for
/// higher-is-better ones (any case).
pub fn parse_direction(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "lower" | "minimize" | "min" | "lower_is_better" => Some(true),
        "higher" | "maximize" | "max" | "higher_is_better" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_directions_win_over_names() {
        let declared = declared_directions(&json!({"score_directions": {
            "miss": "lower_is_better", "abs_err": "higher_is_better", "odd": "sideways"}}));
        assert!(lower_is_better("miss.mean", &declared));
        assert!(!lower_is_better("abs_err.mean", &declared));
        assert!(!declared.contains_key("odd"));
        let none = HashMap::new();
        assert!(lower_is_better("abs_err.mean", &none));
        assert!(lower_is_better("model_latency.mean", &none));
        assert!(lower_is_better("errors.scorers.x", &none));
        assert!(!lower_is_better("miss.mean", &none));
        assert!(!lower_is_better("correct.true_fraction", &none));
    }
}

//! Summaries in W&B Weave's format: booleans -> `{true_count, true_fraction}`, numbers ->
//! `{mean}`, maps recursed; plus pass@k over trials.

use serde_json::{json, Map, Value};

/// Unbiased pass@k estimator `1 - C(n-c, k) / C(n, k)` (Chen et al. 2021), computed as a
/// product for numerical stability. Returns `None` when `k > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let mut prod = 1.0f64;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    Some(1.0 - prod)
}

/// One scored value with the example it belongs to (for pass@k across trials).
pub(crate) struct Sample<'a> {
    pub(crate) example: usize,
    pub(crate) value: Option<&'a Value>,
}

/// Aggregates one score across rows. `None` values (failed predict or scorer) count in the
/// denominator of boolean fractions. `trials > 1` adds `pass@k` for booleans.
pub(crate) fn aggregate(samples: &[Sample<'_>], trials: usize) -> Option<Value> {
    let first = samples
        .iter()
        .find_map(|s| s.value.filter(|v| !v.is_null()))?;
    match first {
        Value::Bool(_) => {
            let total = samples.len();
            let true_count = samples
                .iter()
                .filter(|s| s.value == Some(&Value::Bool(true)))
                .count();
            let mut m = Map::new();
            m.insert("true_count".into(), json!(true_count));
            m.insert(
                "true_fraction".into(),
                json!(if total == 0 {
                    0.0
                } else {
                    true_count as f64 / total as f64
                }),
            );
            if trials > 1 {
                let mut per_example: std::collections::BTreeMap<usize, (usize, usize)> =
                    Default::default();
                for s in samples {
                    let e = per_example.entry(s.example).or_default();
                    e.0 += 1;
                    if s.value == Some(&Value::Bool(true)) {
                        e.1 += 1;
                    }
                }
                for k in [1usize, 10, 100] {
                    let vals: Vec<f64> = per_example
                        .values()
                        .filter_map(|(n, c)| pass_at_k(*n, *c, k))
                        .collect();
                    if vals.len() == per_example.len() && !vals.is_empty() {
                        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                        m.insert(format!("pass@{k}"), json!(mean));
                    }
                }
            }
            Some(Value::Object(m))
        }
        Value::Number(_) => {
            let nums: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.value.and_then(Value::as_f64))
                .collect();
            if nums.is_empty() {
                return None;
            }
            Some(json!({"mean": nums.iter().sum::<f64>() / nums.len() as f64}))
        }
        Value::Object(_) => {
            let mut keys: Vec<&String> = Vec::new();
            for s in samples {
                if let Some(Value::Object(m)) = s.value {
                    for k in m.keys() {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
            }
            let mut out = Map::new();
            for k in keys {
                let sub: Vec<Sample<'_>> = samples
                    .iter()
                    .map(|s| Sample {
                        example: s.example,
                        value: s.value.and_then(|v| v.get(k)),
                    })
                    .collect();
                if let Some(v) = aggregate(&sub, trials) {
                    out.insert(k.clone(), v);
                }
            }
            if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        _ => None,
    }
}

/// Summarises per-row score maps (`scores[row][scorer]`) the way `Evaluation.summarize` does.
/// `examples[row]` says which dataset row each result came from (trials repeat them).
pub fn summarize(
    scorer_names: &[String],
    scores: &[Map<String, Value>],
    examples: &[usize],
    trials: usize,
) -> Map<String, Value> {
    let mut out = Map::new();
    for name in scorer_names {
        let samples: Vec<Sample<'_>> = scores
            .iter()
            .zip(examples)
            .map(|(s, e)| Sample {
                example: *e,
                value: s.get(name),
            })
            .collect();
        if let Some(v) = aggregate(&samples, trials) {
            out.insert(name.clone(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_hand_computed_values() {
        // n=5, c=2, k=1: 1 - C(3,1)/C(5,1) = 1 - 3/5 = 0.4
        assert!((pass_at_k(5, 2, 1).unwrap() - 0.4).abs() < 1e-12);
        // n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
        assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 0, 3), Some(0.0));
        assert_eq!(pass_at_k(5, 4, 2), Some(1.0));
        assert_eq!(pass_at_k(5, 1, 10), None);
    }
}

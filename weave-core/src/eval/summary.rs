//! Summaries exactly as W&B Weave's `auto_summarize` makes them: `null` values are dropped
//! first; then the first value decides: booleans (and other values by truthiness) ->
//! `{true_count, true_fraction}`, numbers -> `{mean}`, objects -> the same per key (a key whose
//! summary has that key itself is merged flat, as Weave does), anything else -> no summary.
//! A row whose predict or scorer failed has no score: Weave's evaluation fills in `{}` for
//! it, so it counts as `false` among booleans, and is dropped by numbers and by nested keys.
//! One deviation: Weave picks the kind from the first value even when that is such a `{}`
//! (a boolean scorer whose first row failed then has no summary); here the first real score
//! decides.
//!
//! Extra keys, under names Weave does not use: `pass@k` next to `true_count` when an
//! evaluation has more than one trial.

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

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Weave's `auto_summarize` of a list of values: `Some({})` for an empty list, `None` when
/// every value is `null` (or nothing in them can be summarised).
pub fn auto_summarize(values: &[Value]) -> Option<Value> {
    let samples: Vec<(usize, &Value)> = values.iter().enumerate().collect();
    summarize_samples(&samples, 1)
}

/// [`auto_summarize`] over `(example, value)` pairs; with `trials > 1`, boolean summaries
/// also get `pass@1`, `pass@10`, `pass@100` (where k <= trials) over the examples.
fn summarize_samples(samples: &[(usize, &Value)], trials: usize) -> Option<Value> {
    if samples.is_empty() {
        return Some(Value::Object(Map::new()));
    }
    let data: Vec<(usize, &Value)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_null())
        .collect();
    // Weave looks at the first value only, so a failed first row (`{}`) would hide a boolean
    // scorer's summary; the first real score decides here.
    let (_, first) = data
        .iter()
        .find(|(_, v)| v.as_object().is_none_or(|m| !m.is_empty()))
        .or(data.first())?;
    match first {
        Value::Bool(_) => {
            let true_count = data.iter().filter(|(_, v)| truthy(v)).count();
            let mut m = Map::new();
            m.insert("true_count".into(), json!(true_count));
            m.insert(
                "true_fraction".into(),
                json!(true_count as f64 / data.len() as f64),
            );
            if trials > 1 {
                // pass@k counts every sample, as its definition does: a failed or missing
                // one is a sample that did not pass.
                let mut per_example: std::collections::BTreeMap<usize, (usize, usize)> =
                    Default::default();
                for (e, v) in samples {
                    let t = per_example.entry(*e).or_default();
                    t.0 += 1;
                    if truthy(v) {
                        t.1 += 1;
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
            // Python's mean counts booleans as 0/1; other values would raise there, they
            // are left out here.
            let nums: Vec<f64> = data
                .iter()
                .filter_map(|(_, v)| match v {
                    Value::Bool(b) => Some(f64::from(u8::from(*b))),
                    v => v.as_f64(),
                })
                .collect();
            Some(json!({"mean": nums.iter().sum::<f64>() / nums.len() as f64}))
        }
        Value::Object(_) => {
            let mut keys: Vec<&String> = Vec::new();
            for (_, v) in &data {
                if let Value::Object(m) = v {
                    for k in m.keys() {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
            }
            let mut out = Map::new();
            for k in keys {
                // Every object, the failed rows' `{}` too (their `null` is dropped from the
                // counts, and is a failed sample for pass@k).
                let sub: Vec<(usize, &Value)> = data
                    .iter()
                    .filter_map(|(e, v)| v.as_object().map(|m| (*e, m.get(k).unwrap_or(&NULL))))
                    .collect();
                if let Some(s) = summarize_samples(&sub, trials) {
                    match s {
                        Value::Object(inner) if inner.contains_key(k.as_str()) => {
                            out.extend(inner);
                        }
                        s => {
                            out.insert(k.clone(), s);
                        }
                    }
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

static NULL: Value = Value::Null;
static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

/// Summarises per-row score maps (`scores[row][scorer]`) the way Weave's
/// `Evaluation.summarize` does: one entry per scorer, `null` when nothing could be
/// summarised; a row without a scorer's key (its predict or that scorer failed) counts as
/// Weave's `{}`. `examples[row]` says which dataset row each result came from (trials repeat
/// them), for pass@k.
pub fn summarize(
    scorer_names: &[String],
    scores: &[Map<String, Value>],
    examples: &[usize],
    trials: usize,
) -> Map<String, Value> {
    let mut out = Map::new();
    for name in scorer_names {
        let samples: Vec<(usize, &Value)> = scores
            .iter()
            .zip(examples)
            .map(|(s, e)| (*e, s.get(name).unwrap_or(&EMPTY)))
            .collect();
        out.insert(
            name.clone(),
            summarize_samples(&samples, trials).unwrap_or(Value::Null),
        );
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

    #[test]
    fn nulls_are_dropped_before_counting() {
        // Weave: auto_summarize([True, None, False]) == {"true_count": 1, "true_fraction": 0.5}
        let s = auto_summarize(&[json!(true), Value::Null, json!(false)]);
        assert_eq!(s, Some(json!({"true_count": 1, "true_fraction": 0.5})));
        assert_eq!(auto_summarize(&[Value::Null, Value::Null]), None);
        assert_eq!(auto_summarize(&[]), Some(json!({})));
        let s = auto_summarize(&[json!(1), Value::Null, json!(2)]);
        assert_eq!(s, Some(json!({"mean": 1.5})));
    }

    #[test]
    fn weave_quirks_are_kept() {
        // A failed row is `{}`: false among booleans, dropped under nested keys.
        let s = auto_summarize(&[json!(true), json!({}), json!(true), json!(false)]);
        assert_eq!(s, Some(json!({"true_count": 2, "true_fraction": 0.5})));
        let s = auto_summarize(&[json!({"ok": true}), json!({}), json!({"ok": false})]);
        assert_eq!(
            s,
            Some(json!({"ok": {"true_count": 1, "true_fraction": 0.5}}))
        );
        // A key whose summary holds that key is merged flat.
        let s = auto_summarize(&[json!({"mean": 1}), json!({"mean": 3})]);
        assert_eq!(s, Some(json!({"mean": 2.0})));
        // Strings have no summary; objects of only strings neither.
        assert_eq!(auto_summarize(&[json!("a"), json!("b")]), None);
        assert_eq!(auto_summarize(&[json!({"why": "x"})]), None);
        // A failed first row does not hide the booleans after it.
        let s = auto_summarize(&[json!({}), json!(true), json!(false)]);
        assert_eq!(
            s,
            Some(json!({"true_count": 1, "true_fraction": 1.0 / 3.0}))
        );
        // Numbers first: booleans count as 0/1.
        let s = auto_summarize(&[json!(2), json!(true)]);
        assert_eq!(s, Some(json!({"mean": 1.5})));
    }

    #[test]
    fn pass_at_k_counts_failed_samples() {
        // Example 0: 2 trials, one passed and one whose predict failed (`{}`).
        let rows = vec![
            Map::from_iter([("s".to_string(), json!({"passed": true}))]),
            Map::new(),
        ];
        let s = summarize(&["s".to_string()], &rows, &[0, 0], 2);
        // Weave's fraction leaves the failed row out; pass@1 = 1/2 counts it.
        assert_eq!(s["s"]["passed"]["true_fraction"], json!(1.0));
        assert_eq!(s["s"]["passed"]["pass@1"], json!(0.5));
    }

    #[test]
    fn summarize_gives_null_for_a_scorer_with_nothing_to_summarise() {
        let rows = vec![
            Map::from_iter([("a".to_string(), Value::Null)]),
            Map::from_iter([("a".to_string(), Value::Null)]),
        ];
        let s = summarize(&["a".to_string()], &rows, &[0, 1], 1);
        assert_eq!(Value::Object(s), json!({"a": null}));
    }
}

//! EvalPlus sample files in, EvalPlus's `eval_results.json` out: what `codegen-pipeline
//! score --dataset humaneval+|mbpp+` reads and writes.
//!
//! Samples are JSON lines with `task_id` and `solution` (the whole program) or `completion`
//! (appended to the prompt), or a directory of `<task_id with / as _>/<n>.py` files, as
//! `evalplus.evaluate` accepts. Results go to `<samples>.eval_results.json` (`.jsonl`
//! replaced; `<dir>/eval_results.json` for a directory; an existing legacy
//! `<samples>_eval_results.json` is overwritten instead), in EvalPlus's shape:
//! `{"date", "hash", "eval": {task_id: [{"task_id", "solution", "base_status",
//! "plus_status", "base_fail_tests", "plus_fail_tests"}]}, "pass_at_k": {"base": {...},
//! "plus": {...}}}`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::check::Outcome;
use super::data::{PlusDataset, RawInputs};
use super::Part;

/// One sample to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The problem.
    pub task_id: String,
    /// The whole program (EvalPlus's `solution`).
    pub solution: String,
    /// Where it came from (`<file> line N` or the `.py` path), for messages.
    pub origin: String,
}

/// Reads an EvalPlus samples file (`.jsonl`, `.jsonl.gz`) or directory. Every `task_id`
/// must be a problem of `dataset`; the error names the line or file of the first that is
/// not, or of a line without a string `solution` or `completion`.
pub fn read_samples(path: &Path, dataset: &PlusDataset) -> anyhow::Result<Vec<Sample>> {
    let samples = if path.is_dir() {
        read_dir_samples(path)?
    } else {
        read_file_samples(path, dataset)?
    };
    for s in &samples {
        if dataset.problem(&s.task_id).is_none() {
            bail!(
                "{}: task_id {:?} is not a {} problem",
                s.origin,
                s.task_id,
                dataset.benchmark
            );
        }
    }
    if samples.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(samples)
}

fn read_file_samples(path: &Path, dataset: &PlusDataset) -> anyhow::Result<Vec<Sample>> {
    let lines: Vec<Value> = crate::humaneval::read_jsonl(path)?;
    let mut out = Vec::with_capacity(lines.len());
    // read_jsonl skips blank lines; count lines for messages the same way EvalPlus does
    // (non-blank lines).
    for (i, v) in lines.into_iter().enumerate() {
        let origin = format!("{} (sample {})", path.display(), i + 1);
        let Some(task_id) = v.get("task_id").and_then(Value::as_str) else {
            bail!("{origin}: no string `task_id`");
        };
        let solution = match (v.get("solution"), v.get("completion")) {
            (Some(Value::String(s)), _) => s.clone(),
            (Some(_), _) => {
                bail!("{origin}: `solution` must be a string (repeat the task_id for more samples)")
            }
            (None, Some(Value::String(c))) => {
                let prompt = dataset.problem(task_id).map_or("", |p| p.prompt.as_str());
                format!("{prompt}{c}")
            }
            (None, Some(_)) => bail!(
                "{origin}: `completion` must be a string (repeat the task_id for more samples)"
            ),
            (None, None) => bail!("{origin}: no `solution` or `completion`"),
        };
        out.push(Sample {
            task_id: task_id.to_string(),
            solution,
            origin,
        });
    }
    Ok(out)
}

fn read_dir_samples(dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut tasks: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    tasks.sort();
    for task_dir in tasks {
        let task_id = task_dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('_', "/"))
            .unwrap_or_default();
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&task_dir)
            .with_context(|| format!("reading {}", task_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "py"))
            .map(|p| {
                let n = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                (n, p)
            })
            .collect();
        files.sort();
        for (_, file) in files {
            let solution = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            out.push(Sample {
                task_id: task_id.clone(),
                solution,
                origin: file.display().to_string(),
            });
        }
    }
    Ok(out)
}

/// Where the results go for `samples` (see the module docs).
pub fn results_path(samples: &Path) -> PathBuf {
    if samples.is_dir() {
        return samples.join("eval_results.json");
    }
    let name = samples
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".jsonl.gz")
        .or_else(|| name.strip_suffix(".jsonl"))
        .unwrap_or(&name);
    let legacy = samples.with_file_name(format!("{stem}_eval_results.json"));
    if legacy.is_file() {
        return legacy;
    }
    samples.with_file_name(format!("{stem}.eval_results.json"))
}

/// An input as it goes into `*_fail_tests`: its JSON text as is (big integers intact), or,
/// for the rare input JSON cannot hold (`NaN`, `Infinity`), that text as a string.
fn input_value(inputs: &RawInputs, i: usize) -> Box<RawValue> {
    let text = inputs.get(i).unwrap_or("null");
    RawValue::from_string(text.to_string()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::to_string(text).unwrap_or_else(|_| "null".into()))
            .unwrap_or_else(|_| RawValue::NULL.to_owned())
    })
}

/// pass@k for k in 1, 10, 100 where every task has at least k samples, from
/// `(samples, correct)` per task.
pub fn pass_at_k(counts: &[(usize, usize)]) -> Map<String, Value> {
    let mut out = Map::new();
    if counts.is_empty() {
        return out;
    }
    for k in [1usize, 10, 100] {
        if counts.iter().any(|&(n, _)| n < k) {
            continue;
        }
        let sum: f64 = counts
            .iter()
            .filter_map(|&(n, c)| weave::eval::pass_at_k(n, c, k))
            .sum();
        out.insert(format!("pass@{k}"), json!(sum / counts.len() as f64));
    }
    out
}

/// One sample's entry in `eval_results.json`.
#[derive(Debug, Serialize)]
pub struct SampleResult {
    /// The problem.
    pub task_id: String,
    /// The program scored.
    pub solution: String,
    /// `pass`, `fail` or `timeout`.
    pub base_status: &'static str,
    /// The same for the plus inputs (`null` with `--base-only`).
    pub plus_status: Option<&'static str>,
    /// The failing base input (EvalPlus stops at the first one), as its JSON.
    pub base_fail_tests: Vec<Box<RawValue>>,
    /// The failing plus input.
    pub plus_fail_tests: Vec<Box<RawValue>>,
}

/// `eval_results.json`.
#[derive(Debug, Serialize)]
pub struct EvalResults {
    /// When (local time, `%Y-%m-%d %H:%M`).
    pub date: String,
    /// EvalPlus's dataset hash.
    pub hash: String,
    /// Per task (in dataset order), each sample's result in sample order.
    #[serde(serialize_with = "ordered")]
    pub eval: Vec<(String, Vec<SampleResult>)>,
    /// `{"base": {"pass@1": ...}, "plus": {...}}`.
    pub pass_at_k: Map<String, Value>,
}

fn ordered<S: serde::Serializer>(
    eval: &[(String, Vec<SampleResult>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut m = s.serialize_map(Some(eval.len()))?;
    for (k, v) in eval {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// Builds `eval_results.json` from each sample's outcome (in sample order); tasks appear
/// in dataset order.
pub fn eval_results(
    dataset: &PlusDataset,
    samples: &[Sample],
    outcomes: &[Outcome],
) -> EvalResults {
    let mut eval = Vec::new();
    let mut base_counts = Vec::new();
    let mut plus_counts = Vec::new();
    let mut base_only = false;
    for problem in &dataset.problems {
        let mine: Vec<(&Sample, &Outcome)> = samples
            .iter()
            .zip(outcomes)
            .filter(|(s, _)| s.task_id == problem.task_id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let fail_tests = |part: Part, o: Option<&super::PartOutcome>| -> Vec<Box<RawValue>> {
            match o {
                Some(o) if !o.passed() => o
                    .failed_input
                    .map(|i| vec![input_value(problem.inputs(part), i)])
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        };
        let rows: Vec<SampleResult> = mine
            .iter()
            .map(|(s, o)| {
                base_only |= o.plus.is_none();
                SampleResult {
                    task_id: problem.task_id.clone(),
                    solution: s.solution.clone(),
                    base_status: o.base.status.as_str(),
                    plus_status: o.plus.as_ref().map(|p| p.status.as_str()),
                    base_fail_tests: fail_tests(Part::Base, Some(&o.base)),
                    plus_fail_tests: fail_tests(Part::Plus, o.plus.as_ref()),
                }
            })
            .collect();
        base_counts.push((
            mine.len(),
            mine.iter().filter(|(_, o)| o.base_passed()).count(),
        ));
        plus_counts.push((
            mine.len(),
            mine.iter().filter(|(_, o)| o.plus_passed()).count(),
        ));
        eval.push((problem.task_id.clone(), rows));
    }
    let mut pass = Map::new();
    pass.insert("base".into(), Value::Object(pass_at_k(&base_counts)));
    if !base_only {
        pass.insert("plus".into(), Value::Object(pass_at_k(&plus_counts)));
    }
    EvalResults {
        date: chrono::Local::now().format("%Y-%m-%d %H:%M").to_string(),
        hash: dataset.hash.clone(),
        eval,
        pass_at_k: pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_path_follows_evalplus() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("samples.jsonl");
        assert_eq!(
            results_path(&s),
            dir.path().join("samples.eval_results.json")
        );
        std::fs::write(dir.path().join("samples_eval_results.json"), "{}").unwrap();
        assert_eq!(
            results_path(&s),
            dir.path().join("samples_eval_results.json")
        );
        assert_eq!(
            results_path(dir.path()),
            dir.path().join("eval_results.json")
        );
    }

    #[test]
    fn pass_at_k_skips_k_above_the_smallest_sample_count() {
        let m = pass_at_k(&[(10, 5), (10, 0)]);
        assert_eq!(m["pass@1"], json!(0.25));
        assert!(m.contains_key("pass@10"));
        assert!(!m.contains_key("pass@100"));
    }

    #[test]
    fn fail_tests_keep_big_ints_and_survive_nan() {
        let inputs = RawInputs::new("[[123456789012345678901234567890], [NaN]]".into()).unwrap();
        assert_eq!(
            input_value(&inputs, 0).get(),
            "[123456789012345678901234567890]"
        );
        assert_eq!(input_value(&inputs, 1).get(), "\"[NaN]\"");
    }
}

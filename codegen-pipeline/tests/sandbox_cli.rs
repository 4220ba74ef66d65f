//! End-to-end test of the `score` subcommand.

use std::path::PathBuf;

use codegen_pipeline::humaneval::load_problems;
use codegen_pipeline::score_cli::{evaluate, results_path, run, SampleResult, ScoreArgs};

fn humaneval_path() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

fn args(samples: PathBuf, k: Vec<usize>) -> ScoreArgs {
    ScoreArgs {
        samples,
        evalplus: Default::default(),
        problems: Some(humaneval_path()),
        k,
        timeout: 3.0,
        workers: Some(2),
        fresh: false,
        allow_unsandboxed: false,
    }
}

#[test]
fn score_writes_results_and_pass_at_k() {
    let problems = load_problems(humaneval_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let mut lines = String::new();
    for p in problems.iter().take(4) {
        for completion in [
            p.canonical_solution.as_str(),
            p.canonical_solution.as_str(),
            "    return None\n",
        ] {
            lines.push_str(
                &serde_json::json!({"task_id": p.task_id, "completion": completion}).to_string(),
            );
            lines.push('\n');
        }
    }
    std::fs::write(&samples, lines).unwrap();

    let summary = evaluate(&args(samples.clone(), vec![1, 2, 10])).unwrap();
    assert_eq!(
        summary.len(),
        2,
        "pass@10 needs 10 samples per task: {summary:?}"
    );
    assert!((summary["pass@1"] - 2.0 / 3.0).abs() < 1e-9, "{summary:?}");
    assert!((summary["pass@2"] - 1.0).abs() < 1e-9, "{summary:?}");

    let out = results_path(&samples);
    assert_eq!(out, dir.path().join("samples.jsonl_results.jsonl"));
    let results: Vec<SampleResult> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 12);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.task_id, problems[i / 3].task_id);
        if i % 3 == 2 {
            assert!(!r.passed && r.result.starts_with("failed"), "{r:?}");
        } else {
            assert!(r.passed && r.result == "passed", "{r:?}");
        }
    }
    // `run` is the same path.
    run(args(samples, vec![1])).unwrap();
}

#[test]
fn score_reports_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("s.jsonl");
    std::fs::write(
        &samples,
        "{\"task_id\": \"HumanEval/0\", \"completion\": \"x\"}\nnot json\n",
    )
    .unwrap();
    let err = evaluate(&args(samples.clone(), vec![1]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("s.jsonl:2"), "{err}");

    std::fs::write(
        &samples,
        "{\"task_id\": \"Nope/1\", \"completion\": \"x\"}\n",
    )
    .unwrap();
    let err = evaluate(&args(samples, vec![1])).unwrap_err().to_string();
    assert!(err.contains("Nope/1"), "{err}");
}

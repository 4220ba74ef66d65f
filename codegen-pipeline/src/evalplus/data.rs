//! Loading HumanEval+ and MBPP+ files: problems with their test inputs kept as the file's
//! own JSON text, and EvalPlus's dataset hash.
//!
//! The inputs are not parsed into `serde_json::Value`: they hold integers beyond 64 bits
//! (which `Value` would round) and, in MBPP+, `NaN`/`Infinity` (which JSON does not allow
//! but Python's `json`, which EvalPlus uses, does). They go to the sandboxed driver as text,
//! and only Python reads them.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use md5::{Digest as _, Md5};
use serde::Deserialize;
use sha2::Sha256;

use super::Benchmark;

/// Errors loading a HumanEval+ or MBPP+ file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read or decompressed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a valid problem.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file holds no problem.
    #[error("{path}: no problems in the file")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The test inputs of one part (base or plus) of a problem: a JSON array of argument
/// lists, kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInputs {
    text: String,
    spans: Vec<Range<usize>>,
}

impl RawInputs {
    /// Parses the outline of a JSON array (the elements' extents) from `text`. An empty
    /// object counts as no inputs: MBPP+ v0.2.0 has `"plus_input": {}` for Mbpp/793, which
    /// EvalPlus iterates over as nothing.
    pub fn new(text: String) -> Result<Self, String> {
        let spans = match object_members(&text) {
            Ok(members) if members.is_empty() => Vec::new(),
            _ => array_elements(&text)?,
        };
        Ok(RawInputs { text, spans })
    }

    /// The array's JSON text (Python's dialect: `NaN` and `Infinity` may occur).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The JSON text of input `i` (its argument list).
    pub fn get(&self, i: usize) -> Option<&str> {
        self.spans.get(i).map(|r| &self.text[r.clone()])
    }
}

/// One HumanEval+ or MBPP+ problem.
#[derive(Debug, Clone)]
pub struct PlusProblem {
    /// E.g. `"HumanEval/0"` or `"Mbpp/2"`.
    pub task_id: String,
    /// What the model is given: a signature and docstring (HumanEval+) or a docstring
    /// with one example assertion (MBPP+).
    pub prompt: String,
    /// Name of the function under test.
    pub entry_point: String,
    /// The ground truth. EvalPlus runs `prompt + canonical_solution`.
    pub canonical_solution: String,
    /// HumanEval+: the original HumanEval `check` function; MBPP+: the `assertion` field.
    /// Not used for scoring (EvalPlus compares outputs with the ground truth's).
    pub test: String,
    /// The input validity assertions EvalPlus generated inputs against (informational).
    pub contract: String,
    /// Absolute tolerance for float outputs (0 means exact, see the scoring rules).
    pub atol: f64,
    /// The original benchmark's inputs.
    pub base_input: RawInputs,
    /// The inputs EvalPlus added.
    pub plus_input: RawInputs,
}

impl PlusProblem {
    /// The code EvalPlus runs as the ground truth: `prompt + canonical_solution`.
    pub fn ground_truth_code(&self) -> String {
        format!("{}{}", self.prompt, self.canonical_solution)
    }

    /// The inputs of `part`.
    pub fn inputs(&self, part: super::Part) -> &RawInputs {
        match part {
            super::Part::Base => &self.base_input,
            super::Part::Plus => &self.plus_input,
        }
    }

    /// SHA-256 (hex) of the two input arrays' text, so that a dataset row (which leaves the
    /// inputs out) still changes version when its inputs do.
    pub fn inputs_digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.base_input.text.as_bytes());
        h.update(b"\n");
        h.update(self.plus_input.text.as_bytes());
        hex(&h.finalize())
    }

    /// The row recorded in the weave dataset: the fields the pipeline reads (those of
    /// [`crate::humaneval::Problem`]), the tolerance, and the inputs' counts and digest
    /// instead of the inputs themselves (HumanEval+ has 120,000 of them).
    pub fn dataset_row(&self) -> serde_json::Value {
        serde_json::json!({
            "task_id": self.task_id,
            "prompt": self.prompt,
            "canonical_solution": self.canonical_solution,
            "test": self.test,
            "entry_point": self.entry_point,
            "atol": self.atol,
            "base_inputs": self.base_input.len(),
            "plus_inputs": self.plus_input.len(),
            "inputs_sha256": self.inputs_digest(),
        })
    }
}

/// A loaded HumanEval+ or MBPP+ file.
#[derive(Debug, Clone)]
pub struct PlusDataset {
    /// Which benchmark.
    pub benchmark: Benchmark,
    /// Where it was read from.
    pub path: PathBuf,
    /// EvalPlus's dataset hash: the MD5 (hex) of the decompressed file.
    pub hash: String,
    /// The problems, in file order.
    pub problems: Vec<PlusProblem>,
}

impl PlusDataset {
    /// Loads a `.jsonl` or `.jsonl.gz` file of `benchmark` problems.
    pub fn load(benchmark: Benchmark, path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut bytes = Vec::new();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            flate2::read::MultiGzDecoder::new(file)
                .read_to_end(&mut bytes)
                .map_err(io_err)?;
        } else {
            std::io::BufReader::new(file)
                .read_to_end(&mut bytes)
                .map_err(io_err)?;
        }
        let hash = hex(&Md5::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|e| {
            io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8: {e}"),
            ))
        })?;
        let mut problems = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let problem = parse_problem(benchmark, line).map_err(|message| DataError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            })?;
            problems.push(problem);
        }
        if problems.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(PlusDataset {
            benchmark,
            path: path.to_path_buf(),
            hash,
            problems,
        })
    }

    /// The problem with this task id.
    pub fn problem(&self, task_id: &str) -> Option<&PlusProblem> {
        self.problems.iter().find(|p| p.task_id == task_id)
    }
}

/// The scalar fields of a problem line (the two input arrays are cut out first).
#[derive(Deserialize)]
struct Fields {
    task_id: String,
    prompt: String,
    entry_point: String,
    canonical_solution: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    assertion: Option<String>,
    #[serde(default)]
    contract: String,
    #[serde(default)]
    atol: Option<f64>,
}

fn parse_problem(benchmark: Benchmark, line: &str) -> Result<PlusProblem, String> {
    let members = object_members(line)?;
    let mut rest = String::from("{");
    let mut base = None;
    let mut plus = None;
    for (key, value) in members {
        match key.as_str() {
            "base_input" => base = Some(RawInputs::new(line[value].to_string())),
            "plus_input" => plus = Some(RawInputs::new(line[value].to_string())),
            _ => {
                if rest.len() > 1 {
                    rest.push(',');
                }
                rest.push_str(&serde_json::to_string(&key).unwrap_or_default());
                rest.push(':');
                rest.push_str(&line[value]);
            }
        }
    }
    rest.push('}');
    let fields: Fields =
        serde_json::from_str(&rest).map_err(|e| format!("not a {} problem: {e}", benchmark))?;
    let where_ = |part: &str, r: Option<Result<RawInputs, String>>| match r {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(format!("{}: `{part}`: {e}", fields.task_id)),
        None => Err(format!("{}: no `{part}` field", fields.task_id)),
    };
    let base_input = where_("base_input", base)?;
    let plus_input = where_("plus_input", plus)?;
    let atol = fields.atol.unwrap_or(0.0);
    if !(atol.is_finite() && atol >= 0.0) {
        return Err(format!(
            "{}: `atol` must be a non-negative number",
            fields.task_id
        ));
    }
    let test = match benchmark {
        Benchmark::HumanEvalPlus => fields.test,
        Benchmark::MbppPlus => fields.assertion.or(fields.test),
    }
    .unwrap_or_default();
    Ok(PlusProblem {
        task_id: fields.task_id,
        prompt: fields.prompt,
        entry_point: fields.entry_point,
        canonical_solution: fields.canonical_solution,
        test,
        contract: fields.contract,
        atol,
        base_input,
        plus_input,
    })
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

// A scanner for the outline of JSON in Python's dialect (which adds `NaN`, `Infinity` and
// `-Infinity`): it finds where values start and end without interpreting them. Numbers and
// literals are taken as runs of characters up to the next delimiter; Python's json checks
// them when the driver reads the inputs.

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `b[i] == '"'`.
fn skip_string(b: &[u8], mut i: usize) -> Result<usize, String> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

/// End (exclusive) of the value starting at `i` (after whitespace).
fn skip_value(b: &[u8], i: usize) -> Result<usize, String> {
    let Some(&c) = b.get(i) else {
        return Err("unexpected end of input".into());
    };
    match c {
        b'"' => skip_string(b, i),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err("unterminated array or object".into())
        }
        b',' | b']' | b'}' | b':' => Err(format!("unexpected `{}` at byte {i}", c as char)),
        _ => {
            let mut j = i;
            while j < b.len()
                && !matches!(
                    b[j],
                    b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\n' | b'\r'
                )
            {
                j += 1;
            }
            Ok(j)
        }
    }
}

/// The extents of the elements of the JSON array that is all of `text`.
fn array_elements(text: &str) -> Result<Vec<Range<usize>>, String> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err("expected a JSON array".into());
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b']') {
        return trailing(b, i + 1).map(|_| out);
    }
    loop {
        let end = skip_value(b, i)?;
        out.push(i..end);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return trailing(b, i + 1).map(|_| out),
            _ => return Err(format!("expected `,` or `]` at byte {i}")),
        }
    }
}

fn trailing(b: &[u8], i: usize) -> Result<(), String> {
    let i = skip_ws(b, i);
    if i == b.len() {
        Ok(())
    } else {
        Err(format!("unexpected text after the value at byte {i}"))
    }
}

/// The members of the JSON object that is all of `text`: each key (decoded) and the extent
/// of its value.
fn object_members(text: &str) -> Result<Vec<(String, Range<usize>)>, String> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err("expected a JSON object".into());
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return trailing(b, i + 1).map(|_| out);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(format!("expected a key at byte {i}"));
        }
        let end = skip_string(b, i)?;
        let key: String = serde_json::from_str(&text[i..end]).map_err(|e| e.to_string())?;
        i = skip_ws(b, end);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected `:` at byte {i}"));
        }
        i = skip_ws(b, i + 1);
        let end = skip_value(b, i)?;
        out.push((key, i..end));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return trailing(b, i + 1).map(|_| out),
            _ => return Err(format!("expected `,` or `}}` at byte {i}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_keep_python_json_text() {
        let text =
            r#" [[1, "a,]\"b"], [-Infinity, NaN], [123456789012345678901234567890], {"k": [1]}] "#;
        let r = RawInputs::new(text.to_string()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(0), Some(r#"[1, "a,]\"b"]"#));
        assert_eq!(r.get(1), Some("[-Infinity, NaN]"));
        assert_eq!(r.get(2), Some("[123456789012345678901234567890]"));
        assert_eq!(r.get(3), Some(r#"{"k": [1]}"#));
        assert_eq!(RawInputs::new("[]".into()).unwrap().len(), 0);
        assert_eq!(RawInputs::new(" { } ".into()).unwrap().len(), 0);
        assert!(RawInputs::new("{\"a\": 1}".into()).is_err());
        assert!(RawInputs::new("[1, 2".into()).is_err());
        assert!(RawInputs::new("[1] x".into()).is_err());
    }

    #[test]
    fn problem_lines_keep_inputs_as_text() {
        let line = r#"{"task_id": "Mbpp/9", "prompt": "\"\"\"doc\"\"\"\n", "entry_point": "f", "canonical_solution": "def f(x):\n  return x\n", "base_input": [[1]], "atol": 0.0001, "plus_input": [[Infinity], [99999999999999999999999]], "contract": "", "assertion": "assert f(1) == 1"}"#;
        let p = parse_problem(Benchmark::MbppPlus, line).unwrap();
        assert_eq!(p.task_id, "Mbpp/9");
        assert_eq!(p.test, "assert f(1) == 1");
        assert_eq!(p.atol, 0.0001);
        assert_eq!(p.base_input.len(), 1);
        assert_eq!(p.plus_input.get(1), Some("[99999999999999999999999]"));
        assert_eq!(
            p.ground_truth_code(),
            "\"\"\"doc\"\"\"\ndef f(x):\n  return x\n"
        );
        let err = parse_problem(Benchmark::MbppPlus, r#"{"task_id": "x"}"#).unwrap_err();
        assert!(err.contains("not a MBPP+ problem"), "{err}");
        let err = parse_problem(
            Benchmark::HumanEvalPlus,
            r#"{"task_id": "t", "prompt": "", "entry_point": "f", "canonical_solution": "", "base_input": [[1]]}"#,
        )
        .unwrap_err();
        assert_eq!(err, "t: no `plus_input` field");
    }
}

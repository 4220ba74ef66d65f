//! The ground truth: each canonical solution run on every input in the sandbox (EvalPlus's
//! `get_groundtruth`), its outputs and per-input times cached per dataset hash.
//!
//! The cache is a directory per dataset version,
//! `<cache>/evalplus/<HumanEvalPlus|MbppPlus>-<md5>.v1/`, with one JSON file per problem
//! (`HumanEval_0.json`), where `<cache>` is `$WEAVE_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/weave`, else `~/.cache/weave`, and `<md5>` is EvalPlus's dataset hash
//! (the MD5 of the decompressed file). A problem is computed when it is first needed (a run
//! of three problems computes three), under a lock so that concurrent runs compute it once;
//! a file of another format, hash or shape is ignored and recomputed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check::driver_program;
use super::data::{PlusDataset, PlusProblem};
use super::Benchmark;
use crate::sandbox::{Sandbox, SandboxConfig};

const FORMAT: u32 = 1;
const MARKER: &str = "\n@@weave-evalplus-ground-truth@@\n";

/// The ground truth of one part: per-input times (seconds) and the outputs in the driver's
/// chunked encoding (`[count, base64 zlib JSON]`), passed back to the driver as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartTruth {
    /// Seconds each call of the canonical solution took.
    pub time: Vec<f64>,
    /// Expected outputs, encoded by the driver.
    pub chunks: Vec<(usize, String)>,
}

/// The ground truth of one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTruth {
    /// Base inputs.
    pub base: PartTruth,
    /// Plus inputs.
    pub plus: PartTruth,
}

impl TaskTruth {
    /// Total time of the canonical solution on every input (to schedule long tasks first).
    pub fn total_time(&self) -> f64 {
        self.base.time.iter().chain(&self.plus.time).sum()
    }
}

/// Errors computing or caching the ground truth.
#[derive(Debug, thiserror::Error)]
pub enum GroundTruthError {
    /// Canonical solutions that did not run to the end in the sandbox.
    #[error("the ground truth could not be computed for {}: {}", .0.len(), list(.0))]
    Failed(Vec<(String, String)>),
    /// The sandbox for the ground truth could not be started.
    #[error("starting the sandbox for the ground truth: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The cache could not be written.
    #[error("writing the ground-truth cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn list(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(t, e)| format!("{t} ({e})"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One problem's cache file.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: u32,
    hash: String,
    task_id: String,
    truth: TaskTruth,
}

/// Ground truths of (some of) a dataset's problems.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    hash: String,
    tasks: HashMap<String, Arc<TaskTruth>>,
    dir: PathBuf,
}

impl GroundTruth {
    /// The cache directory for `dataset` (see the module docs).
    pub fn cache_path(dataset: &PlusDataset) -> PathBuf {
        Self::cache_path_in(&crate::hub::cache_dir(), dataset)
    }

    /// The cache directory for `dataset` under the cache root `cache_dir`.
    pub fn cache_path_in(cache_dir: &Path, dataset: &PlusDataset) -> PathBuf {
        cache_dir.join("evalplus").join(format!(
            "{}-{}.v{FORMAT}",
            dataset.benchmark.file_stem(),
            dataset.hash
        ))
    }

    /// The cached ground truth of `task_ids`, computing (in `sandbox`, in parallel) and
    /// caching what is missing, in [`GroundTruth::cache_path`]. `progress` receives one
    /// line per notable step.
    pub fn ensure(
        dataset: &PlusDataset,
        task_ids: &[&str],
        sandbox: &Sandbox,
        progress: &dyn Fn(&str),
    ) -> Result<GroundTruth, GroundTruthError> {
        Self::ensure_at(
            Self::cache_path(dataset),
            dataset,
            task_ids,
            sandbox,
            progress,
        )
    }

    /// [`GroundTruth::ensure`] with the cache in directory `dir`.
    pub fn ensure_at(
        dir: PathBuf,
        dataset: &PlusDataset,
        task_ids: &[&str],
        sandbox: &Sandbox,
        progress: &dyn Fn(&str),
    ) -> Result<GroundTruth, GroundTruthError> {
        let mut truth = GroundTruth {
            hash: dataset.hash.clone(),
            tasks: HashMap::new(),
            dir,
        };
        let wanted: Vec<&PlusProblem> = dataset
            .problems
            .iter()
            .filter(|p| task_ids.contains(&p.task_id.as_str()))
            .collect();
        let mut missing = truth.read_cached(&wanted);
        if missing.is_empty() {
            return Ok(truth);
        }
        // One process computes at a time; the others wait and then find it cached.
        let _lock = CacheLock::acquire(&truth.dir).map_err(|source| GroundTruthError::Cache {
            path: truth.dir.clone(),
            source,
        })?;
        missing = truth.read_cached(&missing);
        if missing.is_empty() {
            return Ok(truth);
        }
        progress(&format!(
            "Computing the {} ground truth of {} problem(s) in the sandbox (once per dataset \
             version; cached in {})",
            dataset.benchmark,
            missing.len(),
            truth.dir.display()
        ));
        let start = Instant::now();
        // The same sandbox, with the ground truth's longer backstop.
        let gt_sandbox = Sandbox::new(SandboxConfig {
            timeout: super::GROUND_TRUTH_BACKSTOP,
            ..sandbox.config().clone()
        })?;
        let results = compute(dataset.benchmark, &missing, &gt_sandbox);
        let mut failures = Vec::new();
        for (problem, result) in missing.iter().zip(results) {
            match result {
                Ok(t) => {
                    truth.save(&problem.task_id, &t)?;
                    truth.tasks.insert(problem.task_id.clone(), Arc::new(t));
                }
                Err(e) => failures.push((problem.task_id.clone(), e)),
            }
        }
        progress(&format!(
            "Ground truth computed in {:.1} s",
            start.elapsed().as_secs_f64()
        ));
        if failures.is_empty() {
            Ok(truth)
        } else {
            Err(GroundTruthError::Failed(failures))
        }
    }

    /// The ground truth of `task_id`, if known.
    pub fn task(&self, task_id: &str) -> Option<&Arc<TaskTruth>> {
        self.tasks.get(task_id)
    }

    /// The dataset hash it belongs to.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The cache directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, task_id: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", task_id.replace(['/', '\\'], "_")))
    }

    /// Loads what the cache has of `problems`; returns the others.
    fn read_cached<'a>(&mut self, problems: &[&'a PlusProblem]) -> Vec<&'a PlusProblem> {
        let mut missing = Vec::new();
        for p in problems {
            match self.read_one(p) {
                Some(t) => {
                    self.tasks.insert(p.task_id.clone(), Arc::new(t));
                }
                None => missing.push(*p),
            }
        }
        missing
    }

    fn read_one(&self, problem: &PlusProblem) -> Option<TaskTruth> {
        let path = self.file(&problem.task_id);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<CacheEntry>(&bytes) {
            Ok(e) if e.format == FORMAT && e.hash == self.hash && e.task_id == problem.task_id => {
                check_counts(problem, &e.truth).ok().map(|_| e.truth)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable ground-truth cache file");
                None
            }
        }
    }

    fn save(&self, task_id: &str, truth: &TaskTruth) -> Result<(), GroundTruthError> {
        let path = self.file(task_id);
        let err = |source| GroundTruthError::Cache {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let entry = CacheEntry {
            format: FORMAT,
            hash: self.hash.clone(),
            task_id: task_id.to_string(),
            truth: truth.clone(),
        };
        let tmp = path.with_extension(format!("json.part{}", std::process::id()));
        let text = serde_json::to_vec(&entry).map_err(|e| err(e.into()))?;
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

/// An exclusive `flock` on `<cache dir>.lock`, released when dropped.
struct CacheLock(std::fs::File);

impl CacheLock {
    fn acquire(dir: &Path) -> std::io::Result<CacheLock> {
        use std::os::fd::AsRawFd as _;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.with_extension(format!("v{FORMAT}.lock")))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(CacheLock(file));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: unlocking a descriptor we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The program computing `problem`'s ground truth.
pub fn ground_truth_program(benchmark: Benchmark, problem: &PlusProblem) -> String {
    let job = json!({
        "mode": "ground_truth",
        "dataset": benchmark.evalplus_name(),
        "task_id": problem.task_id,
        "entry_point": problem.entry_point,
        "code": problem.ground_truth_code(),
    });
    let inputs = format!(
        "{{\"base\": {}, \"plus\": {}}}",
        problem.base_input.text(),
        problem.plus_input.text()
    );
    driver_program(&job, &inputs, None)
}

/// Runs `problems`' ground truths, longest inputs first, on all of the sandbox's workers.
fn compute(
    benchmark: Benchmark,
    problems: &[&PlusProblem],
    sandbox: &Sandbox,
) -> Vec<Result<TaskTruth, String>> {
    let mut order: Vec<usize> = (0..problems.len()).collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(problems[i].base_input.text().len() + problems[i].plus_input.text().len())
    });
    let slots: Vec<Mutex<Option<Result<TaskTruth, String>>>> =
        problems.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..sandbox.config().workers {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(n) else { break };
                let r = compute_one(benchmark, problems[i], sandbox);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err("not run".into()))
        })
        .collect()
}

fn compute_one(
    benchmark: Benchmark,
    problem: &PlusProblem,
    sandbox: &Sandbox,
) -> Result<TaskTruth, String> {
    let program = ground_truth_program(benchmark, problem);
    let (verdict, stdout) = sandbox.run_capturing(&program).map_err(|e| e.to_string())?;
    if !verdict.passed {
        let tail = verdict.stderr_tail.trim_end();
        return Err(if tail.is_empty() {
            verdict.result
        } else {
            format!("{}; stderr: {tail}", verdict.result)
        });
    }
    let limit = sandbox.config().output_limit;
    if stdout.len() >= limit {
        // The rest was thrown away: the line is cut short.
        return Err(format!(
            "the driver's output reached the sandbox's output limit ({limit} bytes)"
        ));
    }
    parse_output(problem, &stdout)
}

/// Reads the driver's ground-truth line and checks it against the problem's inputs.
fn parse_output(problem: &PlusProblem, stdout: &[u8]) -> Result<TaskTruth, String> {
    let text = String::from_utf8_lossy(stdout);
    let Some(pos) = text.rfind(MARKER) else {
        return Err("the driver wrote no ground truth".into());
    };
    let truth: TaskTruth = serde_json::from_str(text[pos + MARKER.len()..].trim_end())
        .map_err(|e| format!("unreadable ground truth: {e}"))?;
    check_counts(problem, &truth)?;
    Ok(truth)
}

/// Checks that `truth` has one output and one time per input.
fn check_counts(problem: &PlusProblem, truth: &TaskTruth) -> Result<(), String> {
    for (part, t) in [
        (super::Part::Base, &truth.base),
        (super::Part::Plus, &truth.plus),
    ] {
        let n = problem.inputs(part).len();
        let outputs: usize = t.chunks.iter().map(|(c, _)| c).sum();
        if t.time.len() != n || outputs != n {
            return Err(format!(
                "{} inputs: {} outputs and {} times for {n} inputs",
                part.name(),
                outputs,
                t.time.len()
            ));
        }
    }
    Ok(())
}

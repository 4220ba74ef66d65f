//! A loopback stand-in for an OpenAI-compatible LLM (the only part of the pipeline that cannot
//! be reached here): it answers the codegen pipeline's structured-output request for a
//! HumanEval problem with the reference solution, wrong code, a hostile value, or an HTTP 500,
//! as a rule of the problem's position and how often it was asked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use codegen_pipeline::humaneval::Problem;
use serde_json::{json, Value};

/// What the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The problem's canonical solution.
    Correct,
    /// A body that fails the tests (`return None`).
    Wrong,
    /// The canonical solution after a comment holding `<script>` and HTML.
    Hostile,
    /// HTTP 500 (the pipeline's predict fails).
    Fail,
}

/// The comment a [`Reply::Hostile`] answer starts with.
pub const HOSTILE_COMMENT: &str =
    "# <script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">";

type Rule = dyn Fn(usize, usize) -> Reply + Send + Sync;

struct Stand {
    problems: Vec<Problem>,
    by_prompt: HashMap<String, usize>,
    asked: Mutex<HashMap<usize, usize>>,
    rule: Box<Rule>,
}

/// Serves the stand-in on a free loopback port (on the current tokio runtime); `rule(index,
/// attempt)` picks the answer for the problem at `index` on its `attempt`-th request (0-based).
pub async fn serve(
    problems: Vec<Problem>,
    rule: impl Fn(usize, usize) -> Reply + Send + Sync + 'static,
) -> anyhow::Result<SocketAddr> {
    let by_prompt = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.prompt.clone(), i))
        .collect();
    let stand = Arc::new(Stand {
        problems,
        by_prompt,
        asked: Mutex::new(HashMap::new()),
        rule: Box::new(rule),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(stand);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn complete(State(stand): State<Arc<Stand>>, Json(req): Json<Value>) -> Response {
    let prompt = req["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    // The prompt alone, or after instructions in the same message.
    let found = stand.by_prompt.get(prompt).copied().or_else(|| {
        stand
            .problems
            .iter()
            .position(|p| prompt.ends_with(p.prompt.as_str()))
    });
    let Some(index) = found else {
        return (StatusCode::BAD_REQUEST, "unknown prompt").into_response();
    };
    let attempt = {
        let mut asked = stand.asked.lock().unwrap_or_else(|e| e.into_inner());
        let n = asked.entry(index).or_insert(0);
        *n += 1;
        *n - 1
    };
    let problem = &stand.problems[index];
    let body = match (stand.rule)(index, attempt) {
        Reply::Correct => problem.canonical_solution.clone(),
        Reply::Wrong => "    return None\n".to_string(),
        Reply::Hostile => format!("    {HOSTILE_COMMENT}\n{}", problem.canonical_solution),
        Reply::Fail => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"message": "the stand-in model is down for this one"}})),
            )
                .into_response()
        }
    };
    let content = json!({
        "function_signature": "",
        "function_args_with_docstring_within_triple_quotes": "",
        "code_logic": body,
    });
    let prompt_tokens = 40 + prompt.len() as u64 / 4;
    let completion_tokens = 10 + body.len() as u64 / 4;
    Json(json!({
        "id": format!("cmpl-{index}-{attempt}"),
        "object": "chat.completion",
        "model": req["model"].as_str().unwrap_or("stand-in"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content.to_string()}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    }))
    .into_response()
}

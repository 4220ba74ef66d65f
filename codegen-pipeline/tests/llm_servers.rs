//! The generator against loopback stand-ins for real OpenAI-compatible servers, each
//! reproducing what that server does with a request: which structured-output shapes it
//! accepts and how it rejects the others (status and message as the real server sends them),
//! whether its chat template keeps system messages, `finish_reason: length` at the output cap,
//! one generation at a time that goes on after the client has left (llama-cpp-python's
//! non-streaming path) or stops (Ollama, vLLM), and slow bodies. Every stand-in counts the
//! requests it is handling, so the tests can check that nothing piles up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weave::store::TraceStore as _;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use codegen_pipeline::generator::{
    list_models, GeneratedCode, Generator, GeneratorConfig, GeneratorError, Instructions,
    RetryPolicy, Streaming, StructuredOutput, TransportErrorKind, DEFAULT_MAX_TOKENS,
};
use serde_json::{json, Value};
use tokio::time::Instant;

const PROMPT: &str = "def add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    \"\"\"\n";

/// llama-cpp-python 0.3.36's reply to `response_format: {"type": "json_schema", ...}`, as
/// captured from the real server (FastAPI's validation error, wrapped as HTTP 500).
const LLAMA_CPP_REJECTION: &str = "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"/venv/lib/python3.11/site-packages/llama_cpp/server/app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions";

/// A prompt containing this makes a stand-in with `stall_after` hang mid-stream.
const STALLING: &str = "# (a problem the server hangs on)";

/// A prompt containing this makes the stand-in's model loop until it is stopped.
const LOOPING: &str = "# (a problem this model loops on)";

/// How a server constrains the output of one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Constraint {
    /// To the request's schema (grammar-constrained decoding).
    Schema,
    /// To some JSON object (JSON mode).
    AnyJson,
    /// Not at all.
    Free,
}

/// What a stand-in server does, modelled on a real one.
#[derive(Clone)]
struct Profile {
    /// Checks a request; `Err` is the server's error reply (status, JSON body).
    accepts: fn(&Value) -> Result<(), (u16, Value)>,
    /// How the server constrains the output of a request it accepted.
    constraint: fn(&Value) -> Constraint,
    /// The chat template drops system messages (llama-cpp-python's `gemma` format does).
    drops_system: bool,
    /// Generates one reply at a time; other requests wait for it.
    serial: bool,
    /// Stops generating when the client disconnects (otherwise the generation runs to its
    /// end, holding the server, as llama-cpp-python's non-streaming path does).
    stops_on_disconnect: bool,
    /// Time per generated token.
    per_token: Duration,
    /// Context window in tokens: without `max_tokens` a reply may run until it is full.
    n_ctx: u64,
    /// Models listed by `GET /v1/models`.
    models: &'static [&'static str],
    /// Sends usage in a streamed reply when asked (`stream_options.include_usage`).
    streams_usage: bool,
    /// A streamed reply to a prompt containing [`STALLING`] stops coming after this many
    /// chunks (a hung server).
    stall_after: Option<usize>,
}

fn response_format_type(req: &Value) -> Option<&str> {
    req.get("response_format")?.get("type")?.as_str()
}

/// llama-cpp-python 0.3.36 with `--chat_format gemma`: `response_format.type` must be `text`
/// or `json_object` (anything else is a validation error answered with HTTP 500);
/// `json_object` + `schema` constrains the output to the schema, `json_object` alone to JSON;
/// system messages are dropped; one generation at a time, which runs to its end even when the
/// client has gone; `max_tokens` is clamped to the context left, and no `max_tokens` means
/// "until the context is full".
fn llama_cpp_python() -> Profile {
    Profile {
        accepts: |req| match response_format_type(req) {
            None | Some("text" | "json_object") => Ok(()),
            Some(other) => Err((
                500,
                json!({"error": {
                    "message": LLAMA_CPP_REJECTION.replace("'input': 'json_schema'", &format!("'input': '{other}'")),
                    "type": "internal_server_error", "param": null, "code": null}}),
            )),
        },
        constraint: |req| match response_format_type(req) {
            Some("json_object") if req["response_format"].get("schema").is_some() => {
                Constraint::Schema
            }
            Some("json_object") => Constraint::AnyJson,
            _ => Constraint::Free,
        },
        drops_system: true,
        serial: true,
        stops_on_disconnect: false,
        per_token: Duration::from_millis(1),
        n_ctx: 4096,
        models: &["/models/gemma-3-270m-q4_k_m.gguf"],
        streams_usage: false,
        stall_after: None,
    }
}

/// Ollama 0.5+ (`/v1/chat/completions`): `json_schema` constrains to the schema,
/// `json_object` is JSON mode (a `schema` next to it is ignored), unknown types are ignored;
/// system messages are kept; a generation stops when its client disconnects.
fn ollama() -> Profile {
    Profile {
        accepts: |req| {
            if req["model"] != "llama3.2" {
                return Err((
                    404,
                    json!({"error": {"message": format!("model {} not found, try pulling it first", req["model"]),
                        "type": "not_found_error", "param": null, "code": null}}),
                ));
            }
            Ok(())
        },
        constraint: |req| match response_format_type(req) {
            Some("json_schema") => Constraint::Schema,
            Some("json_object") => Constraint::AnyJson,
            _ => Constraint::Free,
        },
        drops_system: false,
        serial: true,
        stops_on_disconnect: true,
        per_token: Duration::from_millis(1),
        n_ctx: 4096,
        models: &["llama3.2", "qwen2.5-coder:7b"],
        streams_usage: true,
        stall_after: None,
    }
}

/// vLLM 0.5 (before `json_schema` support): `response_format.type` must be `text` or
/// `json_object` (HTTP 400 from its pydantic validation otherwise); extra fields such as
/// `response_format.schema` are ignored; `guided_json` constrains to the schema; prompt plus
/// `max_tokens` beyond the context is a 400.
fn vllm_0_5() -> Profile {
    Profile {
        accepts: |req| {
            if let Some(t) = response_format_type(req) {
                if t != "text" && t != "json_object" {
                    return Err((
                        400,
                        json!({"object": "error",
                            "message": format!("[{{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': '{t}', 'ctx': {{'expected': \"'text' or 'json_object'\"}}}}]"),
                            "type": "BadRequestError", "param": null, "code": 400}),
                    ));
                }
            }
            let prompt = prompt_tokens(req, false);
            let max = req["max_tokens"].as_u64().unwrap_or(0);
            if prompt + max > 4096 {
                return Err((
                    400,
                    json!({"object": "error",
                        "message": format!("This model's maximum context length is 4096 tokens. However, you requested {} tokens ({prompt} in the messages, {max} in the completion). Please reduce the length of the messages or completion.", prompt + max),
                        "type": "BadRequestError", "param": null, "code": 400}),
                ));
            }
            Ok(())
        },
        constraint: |req| {
            if req.get("guided_json").is_some() {
                Constraint::Schema
            } else if response_format_type(req) == Some("json_object") {
                Constraint::AnyJson
            } else {
                Constraint::Free
            }
        },
        drops_system: false,
        serial: false,
        stops_on_disconnect: true,
        per_token: Duration::from_millis(1),
        n_ctx: 4096,
        models: &["Qwen/Qwen2.5-Coder-7B-Instruct"],
        streams_usage: true,
        stall_after: None,
    }
}

/// LM Studio: `response_format.type` must be `json_schema` or `text` (HTTP 400 otherwise).
fn lm_studio() -> Profile {
    Profile {
        accepts: |req| match response_format_type(req) {
            None | Some("json_schema" | "text") => Ok(()),
            Some(_) => Err((
                400,
                json!({"error": "'response_format.type' must be 'json_schema' or 'text'"}),
            )),
        },
        constraint: |req| match response_format_type(req) {
            Some("json_schema") => Constraint::Schema,
            _ => Constraint::Free,
        },
        drops_system: false,
        serial: true,
        stops_on_disconnect: true,
        per_token: Duration::from_millis(1),
        n_ctx: 4096,
        models: &["qwen2.5-coder-7b-instruct"],
        streams_usage: true,
        stall_after: None,
    }
}

/// Counts of what a stand-in saw.
#[derive(Default)]
struct Stats {
    /// Every request body, in arrival order.
    bodies: Mutex<Vec<Value>>,
    /// Requests whose handler is running (the client is connected and waiting).
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Generations running or queued, including ones whose client has gone.
    work: AtomicUsize,
    max_work: AtomicUsize,
    /// Handlers dropped before they answered (the client closed the connection).
    disconnects: AtomicUsize,
    /// Generations that ran to their end.
    finished: AtomicUsize,
}

impl Stats {
    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
    fn requests(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
    /// Requests whose structured-output shape is `mode`'s.
    fn requests_in(&self, mode: &str) -> usize {
        self.bodies().iter().filter(|b| shape_of(b) == mode).count()
    }
}

/// The structured-output mode a request body was sent in.
fn shape_of(body: &Value) -> &'static str {
    match (
        response_format_type(body),
        body["response_format"].get("schema"),
    ) {
        (Some("json_schema"), _) => "json_schema",
        (Some("json_object"), Some(_)) => "json_object_schema",
        (Some("json_object"), None) => "json_object",
        _ if body.get("guided_json").is_some() => "guided_json",
        _ if body.get("structured_outputs").is_some() => "structured_outputs",
        _ => "none",
    }
}

/// Increments a counter and its maximum; decrements on drop.
struct Gauge {
    state: Arc<ServerState>,
    now: fn(&Stats) -> &AtomicUsize,
}

impl Gauge {
    fn enter(
        state: &Arc<ServerState>,
        now: fn(&Stats) -> &AtomicUsize,
        max: fn(&Stats) -> &AtomicUsize,
    ) -> Self {
        let n = now(&state.stats).fetch_add(1, Ordering::SeqCst) + 1;
        max(&state.stats).fetch_max(n, Ordering::SeqCst);
        Self {
            state: state.clone(),
            now,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.now)(&self.state.stats).fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request dropped before it was answered in full (the client closed the
/// connection).
struct Disconnect {
    state: Arc<ServerState>,
    answered: bool,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        if !self.answered {
            self.state.stats.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct ServerState {
    profile: Profile,
    stats: Stats,
    /// Held by the running generation of a serial server.
    engine: Arc<tokio::sync::Mutex<()>>,
}

/// Approximate token count: four characters a token.
fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The text the chat template renders (without system messages when it drops them).
fn rendered(req: &Value, drops_system: bool) -> String {
    req["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| !(drops_system && m["role"] == "system"))
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn prompt_tokens(req: &Value, drops_system: bool) -> u64 {
    tokens(&rendered(req, drops_system))
}

fn code_json() -> Value {
    json!({
        "function_signature": "def add(a: int, b: int) -> int:",
        "function_args_with_docstring_within_triple_quotes": "    \"\"\"Return the sum of a and b.\"\"\"",
        "code_logic": "    return a + b",
    })
}

/// What the stand-in's "model" writes: the function as JSON when the output is constrained
/// to the schema or the model can see the instructions; otherwise, like a small model without
/// instructions, it rambles (inside a JSON string in JSON mode) until it is stopped.
/// Returns the content, the finish reason and the completion tokens.
fn generate(profile: &Profile, req: &Value) -> (String, &'static str, u64) {
    let prompt = prompt_tokens(req, profile.drops_system);
    let room = profile.n_ctx.saturating_sub(prompt);
    let cap = req["max_tokens"]
        .as_u64()
        .filter(|&m| m > 0)
        .map_or(room, |m| m.min(room));
    let text = rendered(req, profile.drops_system);
    let sees_instructions = text.contains("function_signature");
    if text.contains(LOOPING) {
        // A small model stuck repeating itself inside a JSON string (grammar-constrained
        // decoding lets it): it stops only at the cap or when the context is full.
        let repeated = format!(
            "{{\"function_signature\": \"def add(a: int, b: int) -> int:\", \"code_logic\": \"{}",
            "    return a + b\\n".repeat(2000)
        );
        let cut = (cap as usize * 4).min(repeated.len());
        return (repeated[..cut].to_owned(), "length", cap);
    }
    let answer = match (profile.constraint)(req) {
        Constraint::Schema => Some(code_json().to_string()),
        _ if sees_instructions => Some(code_json().to_string()),
        _ => None,
    };
    match answer {
        Some(text) if tokens(&text) <= cap => {
            let n = tokens(&text);
            (text, "stop", n)
        }
        Some(text) => (text[..(cap as usize * 4)].to_owned(), "length", cap),
        None => {
            let ramble = "Sure! Here is a Python function that adds two numbers. ".repeat(400);
            let ramble = match (profile.constraint)(req) {
                Constraint::AnyJson => format!("{{\"answer\": \"{ramble}"),
                _ => ramble,
            };
            let cut = (cap as usize * 4).min(ramble.len());
            (ramble[..cut].to_owned(), "length", cap)
        }
    }
}

async fn chat_completions(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.stats.bodies.lock().unwrap().push(req.clone());
    let in_flight = Gauge::enter(&state, |s| &s.in_flight, |s| &s.max_in_flight);
    let mut disconnect = Disconnect {
        state: state.clone(),
        answered: false,
    };
    if let Err((status, body)) = (state.profile.accepts)(&req) {
        disconnect.answered = true;
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let (content, finish_reason, completion_tokens) = generate(&state.profile, &req);
    let prompt = prompt_tokens(&req, state.profile.drops_system);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                       "total_tokens": prompt + completion_tokens});
    if req["stream"] == true {
        // Every server here stops a streamed generation when its client goes (the stream is
        // dropped with the connection); llama-cpp-python sends the headers with the first
        // token, once it holds the engine.
        let work = Gauge::enter(&state, |s| &s.work, |s| &s.max_work);
        let engine = if state.profile.serial {
            Some(state.engine.clone().lock_owned().await)
        } else {
            None
        };
        let mut events: Vec<String> = content
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|piece| {
                json!({"object": "chat.completion.chunk", "model": req["model"],
                       "choices": [{"index": 0, "delta": {"content": piece.iter().collect::<String>()},
                                    "finish_reason": null}]})
                .to_string()
            })
            .collect();
        events.push(
            json!({"object": "chat.completion.chunk", "model": req["model"],
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
            .to_string(),
        );
        if req["stream_options"]["include_usage"] == true && state.profile.streams_usage {
            events.push(
                json!({"object": "chat.completion.chunk", "choices": [], "usage": usage})
                    .to_string(),
            );
        }
        events.push("[DONE]".into());
        let per_token = state.profile.per_token;
        let stall_after = state
            .profile
            .stall_after
            .filter(|_| rendered(&req, false).contains(STALLING));
        let guards = Some((in_flight, disconnect, work, engine));
        let stream = futures_util::stream::unfold(
            (0usize, events, guards),
            move |(i, events, mut guards)| async move {
                if i >= events.len() {
                    return None;
                }
                if stall_after == Some(i) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if i + 1 < events.len() {
                    tokio::time::sleep(per_token).await;
                } else if let Some((in_flight, mut disconnect, work, engine)) = guards.take() {
                    // The reply is complete before the client can see its end.
                    disconnect.answered = true;
                    disconnect
                        .state
                        .stats
                        .finished
                        .fetch_add(1, Ordering::SeqCst);
                    drop((engine, work, disconnect, in_flight));
                }
                let event = Bytes::from(format!("data: {}\n\n", events[i]));
                Some((Ok::<_, std::io::Error>(event), (i + 1, events, guards)))
            },
        );
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let work = {
        let state = state.clone();
        async move {
            let _work = Gauge::enter(&state, |s| &s.work, |s| &s.max_work);
            let _engine = if state.profile.serial {
                Some(state.engine.lock().await)
            } else {
                None
            };
            tokio::time::sleep(state.profile.per_token * completion_tokens as u32).await;
            state.stats.finished.fetch_add(1, Ordering::SeqCst);
        }
    };
    if state.profile.stops_on_disconnect {
        work.await;
    } else {
        // Runs to its end whatever happens to this handler.
        let _ = tokio::spawn(work).await;
    }
    disconnect.answered = true;
    drop(in_flight);
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": req["model"],
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}],
        "usage": usage,
    }))
    .into_response()
}

async fn models(State(state): State<Arc<ServerState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .profile
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "me"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

struct StandIn {
    base_url: String,
    state: Arc<ServerState>,
}

impl StandIn {
    async fn start(profile: Profile) -> Self {
        let state = Arc::new(ServerState {
            profile,
            stats: Stats::default(),
            engine: Arc::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// The configuration a user gets by default (auto modes, limits for a local server),
    /// with fast retries.
    fn config(&self, model: &str) -> GeneratorConfig {
        GeneratorConfig::new(&self.base_url, model).with_retry(fast_retry(3))
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
    }
}

fn expected_code() -> GeneratedCode {
    serde_json::from_value(code_json()).unwrap()
}

/// Runs `rows` generations at once (as the evaluation does) and returns their results in
/// order.
async fn generate_rows(
    generator: &Generator,
    rows: usize,
) -> Vec<Result<codegen_pipeline::generator::Generation, GeneratorError>> {
    generate_prompts(generator, vec![PROMPT.to_owned(); rows]).await
}

/// Like [`generate_rows`], one row per prompt.
async fn generate_prompts(
    generator: &Generator,
    prompts: Vec<String>,
) -> Vec<Result<codegen_pipeline::generator::Generation, GeneratorError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, prompt) in prompts.into_iter().enumerate() {
        let g = generator.clone();
        set.spawn(async move { (i, g.generate(&prompt).await) });
    }
    let mut results: Vec<_> = set.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_python_auto_falls_back_once_for_the_whole_run() {
    let server = StandIn::start(llama_cpp_python()).await;
    // No limit on concurrent requests: the fallback must still be taken once, not per row.
    let generator =
        Generator::new(server.config("gemma").with_max_concurrent_requests(None)).unwrap();
    let results = generate_rows(&generator, 6).await;

    for r in &results {
        let g = r.as_ref().unwrap();
        assert_eq!(g.code, expected_code());
        assert_eq!(g.structured_output, StructuredOutput::JsonObjectSchema);
        assert_eq!(g.instructions, Instructions::User);
    }
    // One rejected `json_schema` request in the whole run, then every row in the mode the
    // server accepts.
    let stats = server.stats();
    assert_eq!(stats.requests_in("json_schema"), 1);
    assert_eq!(stats.requests_in("json_object_schema"), 6);
    assert_eq!(stats.requests(), 7);
    let attempts: Vec<u32> = results
        .iter()
        .map(|r| r.as_ref().unwrap().attempts)
        .collect();
    assert_eq!(attempts.iter().sum::<u32>(), 7, "{attempts:?}");
    assert_eq!(
        generator.structured_output(),
        Some(StructuredOutput::JsonObjectSchema)
    );
    let rejections = generator.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].mode, StructuredOutput::JsonSchema);
    assert_eq!(rejections[0].status, 500);
    assert!(
        rejections[0]
            .message
            .contains("Input should be 'text' or 'json_object'"),
        "{}",
        rejections[0].message
    );
    // The schema travelled as llama.cpp reads it, and the output was capped.
    let last = stats.bodies().pop().unwrap();
    assert_eq!(
        last["response_format"]["schema"],
        *generator.response_format().schema()
    );
    assert_eq!(last["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[tokio::test]
async fn llama_cpp_python_instructions_survive_a_template_without_system_messages() {
    let server = StandIn::start(llama_cpp_python()).await;
    // JSON mode without a schema: only the instructions tell the model what to write.
    let user = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonObject),
    )
    .unwrap();
    let g = user.generate(PROMPT).await.unwrap();
    assert_eq!(g.code, expected_code());
    let body = &server.stats().bodies()[0];
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    let text = messages[0]["content"].as_str().unwrap();
    assert!(
        text.starts_with("You are an expert Python programmer."),
        "{text}"
    );
    assert!(text.contains("JSON schema"), "{text}");
    assert!(text.ends_with(PROMPT), "{text}");

    // The same request with a system message: the template drops it, the model rambles
    // until the cap, and the error says so.
    let system = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonObject)
            .with_instructions(Instructions::System)
            .with_settings(codegen_pipeline::generator::GenerationSettings {
                max_tokens: Some(64),
                ..Default::default()
            }),
    )
    .unwrap();
    let err = system.generate(PROMPT).await.unwrap_err();
    match &err {
        GeneratorError::Truncated {
            max_tokens, head, ..
        } => {
            assert_eq!(*max_tokens, Some(64));
            assert!(head.starts_with("{\"answer\": \"Sure!"), "{head}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("cut off at the output cap (max_tokens 64"),
        "{text}"
    );
    assert!(text.contains("--max-tokens"), "{text}");
    // A cut-off reply is not retried.
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn openai_receives_what_it_received_before() {
    let config = GeneratorConfig::new("https://api.openai.com/v1", "gpt-4o-mini");
    assert_eq!(config.resolved_instructions(), Instructions::System);
    assert_eq!(config.max_concurrent_requests, None);
    assert_eq!(config.structured_output, StructuredOutput::Auto);
    let generator = Generator::new(config).unwrap();
    // json_schema is the first mode, without the schema in the prompt, instructions in the
    // system message, the prompt alone in the user message.
    let messages =
        generator.messages_for(PROMPT, StructuredOutput::JsonSchema, Instructions::System);
    assert_eq!(messages, Generator::messages(PROMPT));
    assert_eq!(
        StructuredOutput::AUTO_ORDER[0],
        StructuredOutput::JsonSchema
    );

    for local in [
        "http://localhost:8080/v1",
        "http://127.0.0.1:11434/v1",
        "http://[::1]:8000/v1",
        "http://192.168.1.20:1234/v1",
    ] {
        let c = GeneratorConfig::new(local, "m");
        assert_eq!(c.resolved_instructions(), Instructions::User, "{local}");
        assert_eq!(c.max_concurrent_requests, Some(1), "{local}");
    }
    let groq = GeneratorConfig::new("https://api.groq.com/openai/v1", "m");
    assert_eq!(groq.max_concurrent_requests, None);
}

#[tokio::test]
async fn output_cap_is_sent_and_a_cut_off_reply_is_its_own_error() {
    let server = StandIn::start(llama_cpp_python()).await;
    let generator = Generator::new(server.config("gemma").with_settings(
        codegen_pipeline::generator::GenerationSettings {
            max_tokens: Some(20),
            ..Default::default()
        },
    ))
    .unwrap();
    // The schema-constrained answer needs about 40 tokens.
    let err = generator.generate(PROMPT).await.unwrap_err();
    match &err {
        GeneratorError::Truncated {
            max_tokens, head, ..
        } => {
            assert_eq!(*max_tokens, Some(20));
            assert!(head.starts_with("{\"function_signature\""), "{head}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    // Rejected json_schema, then one json_object_schema request: not retried.
    assert_eq!(server.stats().requests(), 2);
    assert!(server
        .stats()
        .bodies()
        .iter()
        .all(|b| b["max_tokens"] == 20));
    // The server accepted the shape, so it is kept even though the reply was unusable.
    assert_eq!(
        generator.structured_output(),
        Some(StructuredOutput::JsonObjectSchema)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_no_cap_no_limit_piles_up_but_the_defaults_do_not() {
    // The issue's run: no max_tokens, every row at once, a request timeout shorter than a
    // generation that fills the context. llama-cpp-python keeps generating for clients that
    // have gone, so retried requests queue behind the abandoned ones.
    let server = StandIn::start(Profile {
        per_token: Duration::from_micros(400),
        ..llama_cpp_python()
    })
    .await;
    let old = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonObject)
            .with_instructions(Instructions::System)
            .with_settings(codegen_pipeline::generator::GenerationSettings {
                max_tokens: None,
                ..Default::default()
            })
            .with_max_concurrent_requests(None)
            .with_stream(Streaming::Off)
            .with_request_timeout(Duration::from_millis(600))
            .with_retry(fast_retry(2)),
    )
    .unwrap();
    let results = generate_rows(&old, 4).await;
    assert!(results.iter().all(Result::is_err));
    let piled_up = server.stats().max_work.load(Ordering::SeqCst);
    assert!(piled_up >= 4, "generations queued at once: {piled_up}");

    // The defaults: instructions in the user message, the output capped, streamed, one
    // request at a time to a local server. Every row completes and the server never holds more than the
    // one generation its client is waiting for.
    let server = StandIn::start(Profile {
        per_token: Duration::from_micros(400),
        ..llama_cpp_python()
    })
    .await;
    let generator = Generator::new(
        server
            .config("gemma")
            .with_request_timeout(Duration::from_millis(1000)),
    )
    .unwrap();
    // One row the model loops on: without a cap it would run for the whole context (longer
    // than the request timeout); at the cap it is cut off, and that row alone fails, once.
    let mut prompts = vec![PROMPT.to_owned(); 6];
    prompts[2] = format!("{LOOPING}\n{PROMPT}");
    let results = generate_prompts(&generator, prompts).await;
    for (i, r) in results.iter().enumerate() {
        if i == 2 {
            let err = r.as_ref().unwrap_err();
            assert!(
                matches!(
                    err,
                    GeneratorError::Truncated {
                        max_tokens: Some(DEFAULT_MAX_TOKENS),
                        ..
                    }
                ),
                "{err:?}"
            );
        } else {
            assert_eq!(r.as_ref().unwrap().code, expected_code());
        }
    }
    let stats = server.stats();
    assert_eq!(stats.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(stats.max_work.load(Ordering::SeqCst), 1);
    assert_eq!(stats.disconnects.load(Ordering::SeqCst), 0);
    assert_eq!(stats.requests(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_honoured() {
    let server = StandIn::start(Profile {
        per_token: Duration::from_millis(2),
        ..vllm_0_5()
    })
    .await;
    let generator = Generator::new(
        server
            .config("Qwen/Qwen2.5-Coder-7B-Instruct")
            .with_structured_output(StructuredOutput::GuidedJson)
            .with_max_concurrent_requests(Some(2)),
    )
    .unwrap();
    let results = generate_rows(&generator, 8).await;
    assert!(results.iter().all(Result::is_ok));
    let stats = server.stats();
    assert_eq!(stats.requests(), 8);
    assert_eq!(stats.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(stats.requests_in("guided_json"), 8);
    assert!(stats
        .bodies()
        .iter()
        .all(|b| b.get("response_format").is_none()));
}

#[tokio::test]
async fn request_errors_are_not_retried_and_carry_the_server_message() {
    // llama-cpp-python answers any validation error with HTTP 500; one that is not about
    // structured output is not a reason to fall back, and not worth retrying either.
    let server = StandIn::start(llama_cpp_python()).await;
    let generator = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonSchema),
    )
    .unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert!(err.is_request_error(), "{err:?}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.attempts(), Some(1));
    let text = err.to_string();
    assert!(text.contains("not retried"), "{text}");
    assert!(
        text.contains("Input should be 'text' or 'json_object'"),
        "{text}"
    );
    assert_eq!(server.stats().requests(), 1);

    // vLLM: prompt plus max_tokens beyond the context.
    let server = StandIn::start(vllm_0_5()).await;
    let generator = Generator::new(
        server
            .config("Qwen/Qwen2.5-Coder-7B-Instruct")
            .with_structured_output(StructuredOutput::GuidedJson)
            .with_settings(codegen_pipeline::generator::GenerationSettings {
                max_tokens: Some(8000),
                ..Default::default()
            }),
    )
    .unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("maximum context length is 4096"),
        "{err}"
    );
    assert_eq!(server.stats().requests(), 1);

    // Ollama: unknown model.
    let server = StandIn::start(ollama()).await;
    let generator = Generator::new(server.config("llama9")).unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().contains("not found, try pulling it first"),
        "{err}"
    );
    assert_eq!(server.stats().requests(), 1);
    // No shape was learnt from it.
    assert_eq!(generator.structured_output(), None);
}

#[tokio::test]
async fn ollama_takes_json_schema_keeps_system_messages_and_caps_output() {
    let server = StandIn::start(ollama()).await;
    let generator = Generator::new(server.config("llama3.2")).unwrap();
    let g = generator.generate(PROMPT).await.unwrap();
    assert_eq!(g.code, expected_code());
    assert_eq!(g.structured_output, StructuredOutput::JsonSchema);
    assert_eq!(g.attempts, 1);
    assert_eq!(server.stats().requests_in("json_schema"), 1);

    // JSON mode with a small cap: Ollama stops at num_predict with done_reason "length".
    let server = StandIn::start(ollama()).await;
    let generator = Generator::new(
        server
            .config("llama3.2")
            .with_structured_output(StructuredOutput::JsonObject)
            .with_settings(codegen_pipeline::generator::GenerationSettings {
                max_tokens: Some(10),
                ..Default::default()
            }),
    )
    .unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert!(
        matches!(
            err,
            GeneratorError::Truncated {
                max_tokens: Some(10),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn old_vllm_falls_back_and_the_schema_in_the_prompt_is_validated() {
    let server = StandIn::start(vllm_0_5()).await;
    let generator = Generator::new(server.config("Qwen/Qwen2.5-Coder-7B-Instruct")).unwrap();
    let g = generator.generate(PROMPT).await.unwrap();
    // json_schema rejected with 400; json_object + schema accepted (the schema is ignored,
    // JSON mode applies, and the model follows the schema given in the prompt).
    assert_eq!(g.structured_output, StructuredOutput::JsonObjectSchema);
    assert_eq!(g.attempts, 2);
    assert_eq!(generator.rejections()[0].status, 400);
}

#[tokio::test]
async fn lm_studio_fixed_json_object_is_rejected_at_once() {
    let server = StandIn::start(lm_studio()).await;
    let auto = Generator::new(server.config("qwen2.5-coder-7b-instruct")).unwrap();
    assert_eq!(
        auto.generate(PROMPT).await.unwrap().structured_output,
        StructuredOutput::JsonSchema
    );
    let fixed = Generator::new(
        server
            .config("qwen2.5-coder-7b-instruct")
            .with_structured_output(StructuredOutput::JsonObject),
    )
    .unwrap();
    let err = fixed.generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("must be 'json_schema' or 'text'"),
        "{err}"
    );
    // A fixed mode never falls back.
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn replies_are_validated_against_the_schema_in_every_mode() {
    // A server that ignores every structured-output field and answers with JSON of another
    // shape.
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            Json(json!({
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                    "content": "{\"function_signature\": \"def add(a, b):\", \"code\": \"return a + b\"}"}}],
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for mode in StructuredOutput::ALL {
        let generator = Generator::new(
            GeneratorConfig::new(format!("http://{addr}/v1"), "m").with_structured_output(mode),
        )
        .unwrap();
        let err = generator.generate(PROMPT).await.unwrap_err();
        match err {
            GeneratorError::InvalidOutput { reason, .. } => {
                assert!(
                    reason.contains("does not match the schema"),
                    "{mode}: {reason}"
                );
                assert!(reason.contains("code_logic"), "{mode}: {reason}");
            }
            other => panic!("{mode}: unexpected error: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_shape_rejected_is_reported_once_and_remembered() {
    let server = StandIn::start(Profile {
        accepts: |_| {
            Err((
                400,
                json!({"error": {"message": "structured output (response_format, guided decoding, schema in prompt) is disabled on this deployment", "type": "invalid_request_error"}}),
            ))
        },
        ..lm_studio()
    })
    .await;
    let generator = Generator::new(server.config("m")).unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    match &err {
        GeneratorError::NoStructuredOutput { rejections } => {
            let modes: Vec<StructuredOutput> = rejections.iter().map(|r| r.mode).collect();
            assert_eq!(modes, StructuredOutput::AUTO_ORDER);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(err.to_string().contains("--structured-output"), "{err}");
    assert_eq!(server.stats().requests(), 4);
    // Later rows fail at once, without sending the rejected shapes again.
    let again = generator.generate(PROMPT).await.unwrap_err();
    assert!(matches!(again, GeneratorError::NoStructuredOutput { .. }));
    assert_eq!(server.stats().requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_the_connection_so_a_server_that_notices_stops() {
    // Ollama stops generating when its client goes; a reply here takes about 2 s.
    let server = StandIn::start(Profile {
        per_token: Duration::from_millis(50),
        ..ollama()
    })
    .await;
    let generator = Generator::new(
        server
            .config("llama3.2")
            .with_stream(Streaming::Off)
            .with_request_timeout(Duration::from_millis(300))
            .with_retry(fast_retry(1)),
    )
    .unwrap();
    let started = Instant::now();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert!(
        matches!(
            err,
            GeneratorError::Transport {
                kind: TransportErrorKind::Timeout,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    // The server saw the connection close and dropped the generation long before its end.
    let stats = server.stats();
    wait_until(|| {
        stats.work.load(Ordering::SeqCst) == 0 && stats.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(stats.work.load(Ordering::SeqCst), 0);
    assert_eq!(stats.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(stats.disconnects.load(Ordering::SeqCst), 1);
    assert_eq!(stats.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_against_a_server_that_keeps_generating_stay_bounded() {
    // Without streaming llama-cpp-python does not notice: each timed-out generation runs to
    // its cap. With one request at a time the client never has more than one request open,
    // and the abandoned generations are bounded by the output cap.
    let server = StandIn::start(Profile {
        per_token: Duration::from_millis(10),
        ..llama_cpp_python()
    })
    .await;
    let generator = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonObjectSchema)
            .with_stream(Streaming::Off)
            .with_request_timeout(Duration::from_millis(200))
            .with_retry(fast_retry(2)),
    )
    .unwrap();
    let results = generate_rows(&generator, 3).await;
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert!(
            matches!(
                err,
                GeneratorError::Transport {
                    kind: TransportErrorKind::Timeout,
                    attempts: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.requests(), 6);
    // One request at a time from the client; the server may see the next one arrive a moment
    // before it has noticed that the previous one's connection closed.
    assert!(stats.max_in_flight.load(Ordering::SeqCst) <= 2);
    // The server notices the last close a moment after the client gave up.
    wait_until(|| stats.disconnects.load(Ordering::SeqCst) == 6).await;
    assert_eq!(stats.disconnects.load(Ordering::SeqCst), 6);
}

/// Waits up to a second for `condition`.
async fn wait_until(condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() && started.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_cut_by_the_request_timeout_and_the_deadline() {
    // Headers at once, then the body a byte every 100 ms: the timeout covers the whole
    // exchange, not only the wait for headers.
    let sent = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let app = {
        let (sent, dropped) = (sent.clone(), dropped.clone());
        Router::new().route(
            "/v1/chat/completions",
            post(move || {
                let (sent, dropped) = (sent.clone(), dropped.clone());
                async move {
                    struct OnDrop(Arc<AtomicUsize>);
                    impl Drop for OnDrop {
                        fn drop(&mut self) {
                            self.0.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let guard = OnDrop(dropped);
                    let stream = futures_util::stream::unfold(
                        (0usize, sent, guard),
                        |(i, sent, guard)| async move {
                            if i >= 100 {
                                return None;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            sent.fetch_add(1, Ordering::SeqCst);
                            Some((
                                Ok::<_, std::io::Error>(Bytes::from_static(b" ")),
                                (i + 1, sent, guard),
                            ))
                        },
                    );
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let generator = Generator::new(
        GeneratorConfig::new(format!("http://{addr}/v1"), "m")
            .with_request_timeout(Duration::from_millis(700))
            .with_deadline(Duration::from_millis(1200))
            .with_retry(fast_retry(5)),
    )
    .unwrap();
    let started = Instant::now();
    let err = generator.generate(PROMPT).await.unwrap_err();
    let elapsed = started.elapsed();
    // First attempt: 700 ms; the second is cut at the deadline.
    match &err {
        GeneratorError::DeadlineExceeded {
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(*attempts, 2);
            assert!(last_error.contains("timed out"), "{last_error}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(err.to_string().contains("deadline of 1s"), "{err}");
    assert!(elapsed >= Duration::from_millis(1100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4000), "{elapsed:?}");
    // Both bodies were abandoned: the server's streams were dropped with their connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    let bytes = sent.load(Ordering::SeqCst);
    assert!(bytes < 30, "{bytes} bytes sent after the client left");
}

#[tokio::test]
async fn model_listing_finds_the_only_model() {
    let server = StandIn::start(llama_cpp_python()).await;
    let models = list_models(&server.base_url, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(models, ["/models/gemma-3-270m-q4_k_m.gguf"]);
    let server = StandIn::start(ollama()).await;
    let models = list_models(&server.base_url, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(models, ["llama3.2", "qwen2.5-coder:7b"]);
    // A server without the endpoint.
    let app = Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let err = list_models(&format!("http://{addr}/v1"), None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string()
            .starts_with("cannot list the server's models (HTTP 404 Not Found)"),
        "{err}"
    );
    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let err = list_models(&url, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.status(), None);
    assert!(err.to_string().contains("Connect"), "{err}");
}

#[test]
fn the_mode_and_placement_are_recorded_on_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let client = weave::Settings::new("llm-servers")
        .db_path(&db)
        .quiet()
        .init()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = StandIn::start(llama_cpp_python()).await;
        let generator = Generator::new(server.config("gemma")).unwrap();
        traced_generate(&generator).await.unwrap();
        traced_generate(&generator).await.unwrap();
    });
    client.flush().expect("flush");
    let store = client.store().unwrap();
    let project = client.project_id();
    let mut calls =
        futures::executor::block_on(store.calls_query_vec(weave::types::CallsQueryReq {
            project_id: project.clone(),
            filter: Some(weave::types::CallsFilter {
                op_names: Some(vec![format!("weave:///{project}/op/traced_generate:*")]),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
    calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    assert_eq!(calls.len(), 2);
    let first = &calls[0].attributes["llm"];
    assert_eq!(first["structured_output"], "json_object_schema");
    assert_eq!(first["instructions"], "user");
    assert_eq!(
        first["structured_output_rejected"][0]["mode"],
        "json_schema"
    );
    assert_eq!(first["structured_output_rejected"][0]["status"], 500);
    // The fallback is recorded where it happened, not on every later call.
    let second = &calls[1].attributes["llm"];
    assert_eq!(second["structured_output"], "json_object_schema");
    assert!(
        second.get("structured_output_rejected").is_none(),
        "{second}"
    );
}

#[weave::op(skip(generator))]
async fn traced_generate(generator: &Generator) -> Result<GeneratedCode, GeneratorError> {
    Ok(generator.generate(PROMPT).await?.code)
}

fn humaneval_file() -> std::path::PathBuf {
    let shared = std::env::var_os("WEAVE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
        });
    shared.join("datasets/HumanEval.jsonl.gz")
}

/// Runs the `codegen-pipeline` binary on one problem against `base_url`, with `args`.
async fn run_cli(base_url: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_codegen-pipeline"));
    cmd.args(["--limit", "1", "--dataset-path"])
        .arg(humaneval_file())
        .arg("--db")
        .arg(dir.path().join("w.db"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_MODEL")
        .env("OPENAI_BASE_URL", base_url);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    drop(dir);
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uses_the_only_listed_model_and_reports_the_mode() {
    let server = StandIn::start(llama_cpp_python()).await;
    let out = run_cli(
        &server.base_url,
        &["--max-tokens", "300", "--request-timeout", "20"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Using /models/gemma-3-270m-q4_k_m.gguf, the only model"),
        "{stderr}"
    );
    assert!(
        stderr.contains("max_tokens 300, 1 request(s) at a time"),
        "{stderr}"
    );
    assert!(
        stdout.contains("structured output      json_object_schema"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected             json_schema (HTTP 500: 1 validation error:"),
        "{stdout}"
    );
    assert!(stdout.contains("predict errors         0"), "{stdout}");
    let bodies = server.stats().bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["model"], "/models/gemma-3-270m-q4_k_m.gguf");
    assert!(bodies.iter().all(|b| b["max_tokens"] == 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_asks_for_a_model_when_the_server_lists_several() {
    let server = StandIn::start(ollama()).await;
    let out = run_cli(&server.base_url, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("lists 2 models; pass --model with one of: llama3.2, qwen2.5-coder:7b"),
        "{stderr}"
    );
    assert_eq!(server.stats().requests(), 0);

    // A fixed mode and a model given: no listing, no fallback.
    let out = run_cli(
        &server.base_url,
        &[
            "--model",
            "llama3.2",
            "--structured-output",
            "json_object",
            "--llm-concurrency",
            "0",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("any number of request(s) at a time"),
        "{stderr}"
    );
    assert!(
        stdout.contains("structured output      json_object\n"),
        "{stdout}"
    );
    assert_eq!(server.stats().requests_in("json_object"), 1);

    let out = run_cli(&server.base_url, &["--structured-output", "xml"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown structured-output mode \"xml\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_is_not_cut_while_tokens_flow() {
    // About 50 tokens at 40 ms each: two seconds in all, never a second without a token.
    let profile = Profile {
        per_token: Duration::from_millis(40),
        ..llama_cpp_python()
    };
    let server = StandIn::start(profile.clone()).await;
    let config = server
        .config("gemma")
        .with_request_timeout(Duration::from_millis(1000));
    assert!(config.resolved_stream());
    let started = Instant::now();
    let g = Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(g.streamed);
    assert_eq!(g.code, expected_code());
    // llama-cpp-python sends no usage in a stream.
    assert_eq!(g.usage, None);
    let body = server.stats().bodies().pop().unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);

    // Without streaming the same reply is one long wait, cut by the same timeout.
    let server = StandIn::start(profile).await;
    let err = Generator::new(
        server
            .config("gemma")
            .with_stream(Streaming::Off)
            .with_structured_output(StructuredOutput::JsonObjectSchema)
            .with_request_timeout(Duration::from_millis(1000))
            .with_retry(fast_retry(1)),
    )
    .unwrap()
    .generate(PROMPT)
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            GeneratorError::Transport {
                kind: TransportErrorKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(server
        .stats()
        .bodies()
        .iter()
        .all(|b| b.get("stream").is_none()));

    // Ollama streams usage when asked.
    let server = StandIn::start(ollama()).await;
    let g = Generator::new(server.config("llama3.2"))
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();
    assert!(g.streamed);
    assert_eq!(g.usage.unwrap().completion_tokens, 47);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_times_out_and_frees_the_server() {
    // A serial server (llama-cpp-python) hangs mid-stream on one problem. The client gives
    // up after a second without a token and closes the stream; the server drops that
    // generation, so the next row is served at once.
    let server = StandIn::start(Profile {
        per_token: Duration::from_millis(5),
        stall_after: Some(5),
        ..llama_cpp_python()
    })
    .await;
    let generator = Generator::new(
        server
            .config("gemma")
            .with_structured_output(StructuredOutput::JsonObjectSchema)
            .with_request_timeout(Duration::from_millis(1000))
            .with_retry(fast_retry(2)),
    )
    .unwrap();
    let started = Instant::now();
    let results = generate_prompts(
        &generator,
        vec![format!("{STALLING}\n{PROMPT}"), PROMPT.to_owned()],
    )
    .await;
    let err = results[0].as_ref().unwrap_err();
    match err {
        GeneratorError::Transport {
            kind: TransportErrorKind::Timeout,
            attempts: 2,
            detail,
        } => assert!(detail.contains("no new chunk"), "{detail}"),
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(results[1].as_ref().unwrap().code, expected_code());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let stats = server.stats();
    wait_until(|| stats.work.load(Ordering::SeqCst) == 0).await;
    assert_eq!(stats.work.load(Ordering::SeqCst), 0);
    assert_eq!(stats.disconnects.load(Ordering::SeqCst), 2);
    // The next request may arrive a moment before the server has noticed the close.
    assert!(stats.max_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_cuts_a_slow_stream() {
    // 50 tokens at 100 ms: five seconds, against a one-second deadline.
    let server = StandIn::start(Profile {
        per_token: Duration::from_millis(100),
        ..ollama()
    })
    .await;
    let generator = Generator::new(
        server
            .config("llama3.2")
            .with_request_timeout(Duration::from_millis(500))
            .with_deadline(Duration::from_secs(1)),
    )
    .unwrap();
    let started = Instant::now();
    let err = generator.generate(PROMPT).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, GeneratorError::DeadlineExceeded { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3000), "{elapsed:?}");
    let stats = server.stats();
    wait_until(|| stats.work.load(Ordering::SeqCst) == 0).await;
    assert_eq!(stats.work.load(Ordering::SeqCst), 0);
    assert_eq!(stats.finished.load(Ordering::SeqCst), 0);
}

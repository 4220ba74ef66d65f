//! Generator client tests against a loopback OpenAI-compatible server whose replies each test
//! scripts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use codegen_pipeline::generator::{
    GeneratedCode, GenerationSettings, Generator, GeneratorConfig, GeneratorError, Instructions,
    RetryPolicy, StructuredOutput, TransportErrorKind, Usage, DEFAULT_MAX_TOKENS,
};
use serde_json::{json, Value};

const API_KEY: &str = "sk-test-super-secret-0123456789";
const MODEL: &str = "test-model";
const SERVED_MODEL: &str = "test-model-2024-08-06";
const PROMPT: &str = "def add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    \"\"\"\n";

/// One scripted reply.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"message": message, "type": "test_error", "code": null}}),
        )
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct ServerState {
    /// Replies in order; the last one is repeated once the others are used up.
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

async fn chat_completions(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = {
        let mut script = state.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().expect("no reply scripted")
        }
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl TestServer {
    async fn start(script: Vec<Reply>) -> Self {
        let state = Arc::new(ServerState {
            script: Mutex::new(script.into()),
            received: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A config with fast retries (10 ms base delay, 3 attempts).
    fn config(&self) -> GeneratorConfig {
        GeneratorConfig::new(self.base_url(), MODEL)
            .with_api_key(API_KEY)
            .with_retry(fast_retry(3))
            .with_request_timeout(Duration::from_secs(10))
    }

    fn generator(&self) -> Generator {
        Generator::new(self.config()).unwrap()
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn code_json() -> Value {
    json!({
        "function_signature": "def add(a: int, b: int) -> int:",
        "function_args_with_docstring_within_triple_quotes":
            "    \"\"\"Return the sum of a and b.\"\"\"",
        "code_logic": "    return a + b",
    })
}

fn completion_with(message: Value, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": SERVED_MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage,
    })
}

fn completion(content: &str) -> Value {
    completion_with(
        json!({"role": "assistant", "content": content, "refusal": null}),
        json!({"prompt_tokens": 120, "completion_tokens": 45, "total_tokens": 165}),
    )
}

fn success() -> Reply {
    Reply::ok(completion(&code_json().to_string()))
}

#[tokio::test]
async fn structured_output_is_parsed() {
    let server = TestServer::start(vec![success()]).await;
    let generation = server.generator().generate(PROMPT).await.unwrap();

    assert_eq!(
        generation.code,
        GeneratedCode {
            function_signature: "def add(a: int, b: int) -> int:".into(),
            function_args_with_docstring_within_triple_quotes:
                "    \"\"\"Return the sum of a and b.\"\"\"".into(),
            code_logic: "    return a + b".into(),
        }
    );
    assert_eq!(
        codegen_pipeline::formatter::assemble("", "add", &generation.code).code,
        "def add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n"
    );
    assert_eq!(generation.model, SERVED_MODEL);
    assert_eq!(generation.attempts, 1);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn usage_is_returned() {
    let server = TestServer::start(vec![success()]).await;
    let generation = server.generator().generate(PROMPT).await.unwrap();
    assert_eq!(
        generation.usage,
        Some(Usage {
            requests: 1,
            prompt_tokens: 120,
            completion_tokens: 45,
            total_tokens: 165,
        })
    );
    let serialised = serde_json::to_value(&generation).unwrap();
    assert_eq!(serialised["usage"]["total_tokens"], 165);
}

#[tokio::test]
async fn missing_usage_and_model_fall_back() {
    let mut body = completion(&code_json().to_string());
    body.as_object_mut().unwrap().remove("usage");
    body.as_object_mut().unwrap().remove("model");
    let server = TestServer::start(vec![Reply::ok(body)]).await;
    let generation = server.generator().generate(PROMPT).await.unwrap();
    assert_eq!(generation.usage, None);
    assert_eq!(generation.model, MODEL);

    // Servers that omit `total_tokens` get it computed.
    let partial = completion_with(
        json!({"role": "assistant", "content": code_json().to_string()}),
        json!({"prompt_tokens": 7, "completion_tokens": 5}),
    );
    let server = TestServer::start(vec![Reply::ok(partial)]).await;
    let generation = server.generator().generate(PROMPT).await.unwrap();
    assert_eq!(generation.usage.unwrap().total_tokens, 12);
}

#[tokio::test]
async fn request_carries_strict_schema_model_and_auth() {
    let server = TestServer::start(vec![success()]).await;
    // OpenAI's placement of the instructions (the default for api.openai.com).
    let config = server
        .config()
        .with_instructions(Instructions::System)
        .with_settings(GenerationSettings {
            temperature: Some(0.2),
            max_tokens: Some(512),
            seed: Some(42),
        });
    Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );

    let body = &request.body;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("Python"));
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["messages"][1]["content"], PROMPT);
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(body["max_tokens"], 512);
    assert_eq!(body["seed"], 42);

    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], Generator::SCHEMA_NAME);
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    // All three fields are required, in declaration order (the model generates them in order).
    let fields = [
        "function_signature",
        "function_args_with_docstring_within_triple_quotes",
        "code_logic",
    ];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, fields);
    let properties: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(properties, fields);
    assert!(!schema["description"].as_str().unwrap().contains("Rust"));
    for field in fields {
        let property = &schema["properties"][field];
        assert_eq!(property["type"], "string", "{field}");
        assert!(
            !property["description"].as_str().unwrap().is_empty(),
            "{field} has no description"
        );
    }
    for keyword in ["$schema", "title", "definitions", "$defs"] {
        assert!(schema.get(keyword).is_none(), "{keyword} in {schema}");
    }
}

#[tokio::test]
async fn default_settings_and_no_key_for_local_servers() {
    let server = TestServer::start(vec![success()]).await;
    let config = GeneratorConfig::new(server.base_url(), "llama3.1:8b");
    Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();
    let request = &server.received()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.body["model"], "llama3.1:8b");
    assert_eq!(request.body["temperature"], 0.0);
    assert_eq!(request.body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert!(request.body.get("seed").is_none());
    // A local server: the instructions open the only (user) message.
    let messages = request.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    assert!(messages[0]["content"].as_str().unwrap().ends_with(PROMPT));
}

#[tokio::test]
async fn rate_limit_then_success_honours_retry_after() {
    let server = TestServer::start(vec![
        Reply::error(429, "Rate limit reached").header("retry-after", "1"),
        success(),
    ])
    .await;
    let started = Instant::now();
    let generation = server.generator().generate(PROMPT).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(generation.attempts, 2);
    assert_eq!(server.received().len(), 2);
    // The backoff alone would wait at most 10 ms.
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
}

#[tokio::test]
async fn retry_after_is_capped() {
    let server = TestServer::start(vec![
        Reply::error(429, "slow down").header("retry-after", "3600"),
        success(),
    ])
    .await;
    let mut config = server.config();
    config.retry.max_retry_after = Duration::from_millis(100);
    let started = Instant::now();
    let generation = Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();
    assert_eq!(generation.attempts, 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn rate_limit_with_zero_retry_after_is_retried() {
    let server = TestServer::start(vec![
        Reply::error(429, "Rate limit reached").header("retry-after", "0"),
        Reply::error(429, "Rate limit reached").header("retry-after", "0"),
        success(),
    ])
    .await;
    let generation = server.generator().generate(PROMPT).await.unwrap();
    assert_eq!(generation.attempts, 3);
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn server_error_then_success() {
    let server = TestServer::start(vec![
        Reply::error(500, "The server had an error"),
        success(),
    ])
    .await;
    let generation = server.generator().generate(PROMPT).await.unwrap();
    assert_eq!(generation.attempts, 2);
    assert_eq!(generation.code.code_logic, "    return a + b");
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn retries_exhausted_names_status_and_message() {
    let server = TestServer::start(vec![Reply::error(503, "The engine is overloaded")]).await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    match &err {
        GeneratorError::Api {
            status,
            message,
            attempts,
        } => {
            assert_eq!(*status, 503);
            assert_eq!(message, "The engine is overloaded");
            assert_eq!(*attempts, 3);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("503 Service Unavailable"), "{text}");
    assert!(text.contains("The engine is overloaded"), "{text}");
    assert!(text.contains("3 attempt"), "{text}");
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    // A fixed mode: the rejection is final.
    let server = TestServer::start(vec![
        Reply::error(400, "Invalid schema for response_format 'generated_code'"),
        success(),
    ])
    .await;
    let generator = Generator::new(
        server
            .config()
            .with_structured_output(StructuredOutput::JsonSchema),
    )
    .unwrap();
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.attempts(), Some(1));
    assert!(err.to_string().contains("Invalid schema"), "{err}");
    assert_eq!(server.received().len(), 1);

    // Auto mode: an error that is not about the request's shape is final too.
    for status in [400, 401, 404, 422] {
        let server = TestServer::start(vec![
            Reply::error(status, "Invalid value for 'temperature': expected a number"),
            success(),
        ])
        .await;
        let err = server.generator().generate(PROMPT).await.unwrap_err();
        assert!(err.is_request_error(), "{err:?}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.attempts(), Some(1));
        assert!(
            err.to_string().contains("Invalid value for 'temperature'"),
            "{err}"
        );
        assert_eq!(server.received().len(), 1);
    }
}

#[tokio::test]
async fn server_errors_naming_an_invalid_field_are_not_retried() {
    // llama-cpp-python wraps validation errors in HTTP 500.
    let message = "1 validation error:\n  {'type': 'int_parsing', 'loc': ('body', 'max_tokens'), \
                   'msg': 'Input should be a valid integer', 'input': 'abc'}";
    let server = TestServer::start(vec![Reply::error(500, message), success()]).await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    assert!(
        matches!(
            &err,
            GeneratorError::Rejected {
                status: 500,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Input should be a valid integer"),
        "{err}"
    );
    assert_eq!(server.received().len(), 1);

    // 408, 409 and 429 are transient, like 5xx without such a message.
    for status in [408, 409, 429, 502] {
        let server =
            TestServer::start(vec![Reply::error(status, "try again later"), success()]).await;
        let generation = server.generator().generate(PROMPT).await.unwrap();
        assert_eq!(generation.attempts, 2, "HTTP {status}");
    }
}

#[tokio::test]
async fn non_json_error_body_is_reported() {
    let server = TestServer::start(vec![Reply {
        status: 502,
        headers: vec![("content-type", "text/html".into())],
        body: "<html>Bad gateway from proxy</html>".into(),
        delay: Duration::ZERO,
    }])
    .await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().contains("Bad gateway from proxy"), "{err}");
}

#[tokio::test]
async fn malformed_content_is_invalid_output() {
    let server = TestServer::start(vec![
        Reply::ok(completion(
            "Sure! Here is the code: def add(a, b): return a + b",
        )),
        success(),
    ])
    .await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    match &err {
        GeneratorError::InvalidOutput {
            head,
            finish_reason,
            usage,
            ..
        } => {
            assert!(head.starts_with("Sure! Here is the code"), "{head}");
            assert_eq!(finish_reason.as_deref(), Some("stop"));
            assert_eq!(usage.unwrap().total_tokens, 165);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(err.usage().unwrap().prompt_tokens, 120);
    // Not retried.
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn json_missing_a_field_is_invalid_output() {
    let content = json!({"function_signature": "def add(a, b):", "code_logic": "return a + b"});
    let server = TestServer::start(vec![Reply::ok(completion(&content.to_string()))]).await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    match err {
        GeneratorError::InvalidOutput { reason, .. } => {
            assert!(
                reason.contains("function_args_with_docstring_within_triple_quotes"),
                "{reason}"
            );
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[tokio::test]
async fn refusal_is_an_error() {
    let body = completion_with(
        json!({"role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that."}),
        json!({"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}),
    );
    let server = TestServer::start(vec![Reply::ok(body)]).await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    match err {
        GeneratorError::Refusal(text) => assert_eq!(text, "I'm sorry, I can't help with that."),
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn non_completion_body_is_malformed_response() {
    let server = TestServer::start(vec![Reply {
        status: 200,
        headers: vec![],
        body: "<html>captive portal</html>".into(),
        delay: Duration::ZERO,
    }])
    .await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    assert!(
        matches!(&err, GeneratorError::MalformedResponse(m) if m.contains("captive portal")),
        "{err:?}"
    );
    let server = TestServer::start(vec![Reply::ok(json!({"choices": []}))]).await;
    let err = server.generator().generate(PROMPT).await.unwrap_err();
    assert!(
        matches!(err, GeneratorError::MalformedResponse(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeout_is_retried_then_errors() {
    let server = TestServer::start(vec![success().delayed(Duration::from_secs(10))]).await;
    let config = server
        .config()
        .with_request_timeout(Duration::from_millis(200))
        .with_retry(fast_retry(2));
    let started = Instant::now();
    let err = Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap_err();
    match &err {
        GeneratorError::Transport { kind, attempts, .. } => {
            assert_eq!(*kind, TransportErrorKind::Timeout);
            assert_eq!(*attempts, 2);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(server.received().len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn timeout_then_success() {
    let server =
        TestServer::start(vec![success().delayed(Duration::from_secs(3)), success()]).await;
    let config = server
        .config()
        .with_request_timeout(Duration::from_millis(200));
    let generation = Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap();
    assert_eq!(generation.attempts, 2);
}

#[tokio::test]
async fn connection_errors_are_retried_then_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = GeneratorConfig::new(format!("http://{addr}/v1"), MODEL)
        .with_api_key(API_KEY)
        .with_retry(fast_retry(3));
    let err = Generator::new(config)
        .unwrap()
        .generate(PROMPT)
        .await
        .unwrap_err();
    match &err {
        GeneratorError::Transport { kind, attempts, .. } => {
            assert_eq!(*kind, TransportErrorKind::Connect);
            assert_eq!(*attempts, 3);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(!err.to_string().contains(API_KEY));
}

#[tokio::test]
async fn api_key_is_never_exposed() {
    let server = TestServer::start(vec![Reply::error(
        401,
        &format!("Incorrect API key provided: {API_KEY}."),
    )])
    .await;
    let config = server.config();

    let debug = format!("{config:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(debug.contains(MODEL), "{debug}");

    let serialised = serde_json::to_string(&config).unwrap();
    assert!(!serialised.contains(API_KEY), "{serialised}");
    let value: Value = serde_json::from_str(&serialised).unwrap();
    assert!(value.get("api_key").is_none(), "{value}");
    assert_eq!(value["model"], MODEL);
    assert_eq!(value["base_url"], server.base_url());
    assert_eq!(value["retry"]["max_attempts"], 3);

    let generator = Generator::new(config).unwrap();
    let debug = format!("{generator:?}");
    assert!(!debug.contains(API_KEY), "{debug}");

    // A server echoing the key does not leak it through the error.
    let err = generator.generate(PROMPT).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.attempts(), Some(1));
    let text = err.to_string();
    assert!(!text.contains(API_KEY), "{text}");
    assert!(!format!("{err:?}").contains(API_KEY));
    assert!(
        text.contains("Incorrect API key provided: <redacted>."),
        "{text}"
    );
}

#[test]
fn invalid_config_is_rejected() {
    let err = Generator::new(GeneratorConfig::new("localhost:11434", MODEL)).unwrap_err();
    assert!(
        matches!(err, GeneratorError::InvalidBaseUrl { .. }),
        "{err:?}"
    );
    let err = Generator::new(GeneratorConfig::new("http://localhost:11434/v1", " ")).unwrap_err();
    assert!(matches!(err, GeneratorError::InvalidConfig(_)), "{err:?}");
    assert!(GeneratorError::NotConfigured
        .to_string()
        .contains("OPENAI_BASE_URL"));
}

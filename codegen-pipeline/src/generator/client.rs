//! A minimal OpenAI-compatible Chat Completions client: one request shape per call, transient
//! failures retried with backoff within a deadline, request errors reported at once.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tracing::debug;

use super::stream::{Event, SseParser, StreamedReply};
use super::structured::names_invalid_request;
use super::{
    ApiKey, GenerationSettings, GeneratorConfig, GeneratorError, ResponseFormat, TransportErrorKind,
};

/// Maximum number of characters of server-provided text kept in error messages.
const MAX_ERROR_TEXT: usize = 500;
/// Number of characters of unusable model output kept in [`GeneratorError::InvalidOutput`].
const MAX_OUTPUT_HEAD: usize = 300;
/// Keys shorter than this are not scrubbed from server text (they are placeholders such as
/// `ollama`, and scrubbing them would mangle messages).
const MIN_REDACTED_KEY_LEN: usize = 8;

/// Author of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user's input.
    User,
    /// A previous model reply.
    Assistant,
}

/// One message of a chat conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote the message.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
}

/// Token usage reported by the server for one request: weave's own `Usage` (one request;
/// total tokens are the sum of the others when the server does not report them).
pub use weave::Usage;

/// A chat completion's first choice, as received.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The message's content (empty when the server sent none).
    pub content: String,
    /// The message's `refusal`, when set.
    pub refusal: Option<String>,
    /// Token usage, when the server reported it.
    pub usage: Option<Usage>,
    /// Model name reported by the server, or the requested one if it reported none.
    pub model: String,
    /// The choice's `finish_reason`, if reported.
    pub finish_reason: Option<String>,
    /// Number of HTTP requests made (1 when the first one succeeded).
    pub attempts: u32,
    /// Whether the reply was streamed.
    pub streamed: bool,
}

/// A parsed structured reply.
#[derive(Debug, Clone)]
pub struct StructuredCompletion<T> {
    /// The reply's content, deserialised.
    pub value: T,
    /// Token usage, when the server reported it.
    pub usage: Option<Usage>,
    /// Model name reported by the server, or the requested one if it reported none.
    pub model: String,
    /// The choice's `finish_reason`, if reported.
    pub finish_reason: Option<String>,
    /// Number of HTTP requests made (1 when the first one succeeded).
    pub attempts: u32,
}

/// An OpenAI-compatible Chat Completions client (OpenAI, Groq, vLLM, Ollama, llama.cpp server,
/// LM Studio, ...). Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ChatClient {
    config: GeneratorConfig,
    endpoint: Url,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// `{"include_usage": true}` when streaming (servers that do not know it ignore it).
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    /// Structured-output fields (`response_format`, `guided_json`, ...).
    #[serde(flatten)]
    fields: &'a Map<String, Value>,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl From<RawUsage> for Usage {
    fn from(raw: RawUsage) -> Self {
        let prompt_tokens = raw.prompt_tokens.unwrap_or(0);
        let completion_tokens = raw.completion_tokens.unwrap_or(0);
        Usage {
            requests: 1,
            prompt_tokens,
            completion_tokens,
            total_tokens: raw
                .total_tokens
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
        }
    }
}

/// Outcome of one failed HTTP attempt.
enum Failure {
    Status {
        status: StatusCode,
        message: String,
        retry_after: Option<Duration>,
        /// Whether the failure may go away on its own (see [`is_transient`]).
        transient: bool,
    },
    Transport {
        kind: TransportErrorKind,
        detail: String,
    },
    /// A streamed chunk that is not JSON (not retried).
    Malformed(String),
}

/// A successful exchange: a JSON body, or a streamed reply.
enum Received {
    Body(Vec<u8>),
    Stream(StreamedReply),
}

impl Failure {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { transient, .. } => *transient,
            Self::Transport { .. } => true,
            Self::Malformed(_) => false,
        }
    }

    fn into_error(self, attempts: u32) -> GeneratorError {
        match self {
            Self::Status {
                status,
                message,
                transient: true,
                ..
            } => GeneratorError::Api {
                status: status.as_u16(),
                message,
                attempts,
            },
            Self::Status {
                status, message, ..
            } => GeneratorError::Rejected {
                status: status.as_u16(),
                message,
                attempts,
            },
            Self::Transport { kind, detail } => GeneratorError::Transport {
                kind,
                detail,
                attempts,
            },
            Self::Malformed(detail) => GeneratorError::MalformedResponse(detail),
        }
    }
}

/// Whether an error status may succeed when retried: 408, 409, 429, and 5xx unless the body
/// says the request itself is invalid (llama-cpp-python reports validation errors as 500).
fn is_transient(status: StatusCode, message: &str) -> bool {
    match status.as_u16() {
        408 | 409 | 429 => true,
        500..=599 => !names_invalid_request(message),
        _ => false,
    }
}

impl ChatClient {
    /// Builds a client for `config`, validating the base URL and the model name.
    pub fn new(config: GeneratorConfig) -> Result<Self, GeneratorError> {
        if config.model.trim().is_empty() {
            return Err(GeneratorError::InvalidConfig(
                "the model name is empty".into(),
            ));
        }
        if config.request_timeout.is_zero() || config.deadline.is_zero() {
            return Err(GeneratorError::InvalidConfig(
                "the request timeout and the deadline must be positive".into(),
            ));
        }
        let endpoint = endpoint_url(&config.base_url, &["chat", "completions"])?;
        let http = http_client(config.request_timeout)?;
        Ok(Self {
            config,
            endpoint,
            http,
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The `.../chat/completions` URL requests are sent to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends `messages` with the structured-output request `fields` (top-level fields such as
    /// `response_format`) and `settings`, retrying transient failures until `deadline`, and
    /// returns the first choice.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        fields: &Map<String, Value>,
        settings: &GenerationSettings,
        deadline: Instant,
    ) -> Result<Completion, GeneratorError> {
        let stream = self.config.resolved_stream();
        let request = ChatRequest {
            model: &self.config.model,
            messages,
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
            seed: settings.seed,
            stream,
            stream_options: stream.then(|| json!({"include_usage": true})),
            fields,
        };
        let (received, attempts) = self.send_with_retries(&request, deadline).await?;
        let body = match received {
            Received::Stream(reply) => {
                return Ok(Completion {
                    content: reply.content,
                    refusal: Some(reply.refusal)
                        .filter(|r| !r.trim().is_empty())
                        .map(|r| self.scrub(r)),
                    usage: reply.usage,
                    model: reply.model.unwrap_or_else(|| self.config.model.clone()),
                    finish_reason: reply.finish_reason,
                    attempts,
                    streamed: true,
                })
            }
            Received::Body(body) => body,
        };

        let response: ChatResponse = serde_json::from_slice(&body).map_err(|e| {
            GeneratorError::MalformedResponse(format!(
                "{e}; body starts with {:?}",
                self.scrub(head(&String::from_utf8_lossy(&body), MAX_ERROR_TEXT))
            ))
        })?;
        let usage = response.usage.map(Usage::from);
        let model = response
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.config.model.clone());
        let choice = response.choices.into_iter().next().ok_or_else(|| {
            GeneratorError::MalformedResponse("the response contains no choices".into())
        })?;
        Ok(Completion {
            content: choice.message.content.unwrap_or_default(),
            refusal: choice
                .message
                .refusal
                .filter(|r| !r.trim().is_empty())
                .map(|r| self.scrub(r)),
            usage,
            model,
            finish_reason: choice.finish_reason,
            attempts,
            streamed: false,
        })
    }

    /// Sends `messages` with `response_format` and the configured settings, retrying transient
    /// failures within the configured deadline, and deserialises the first choice's content
    /// into `T`.
    ///
    /// A `refusal` in the reply gives [`GeneratorError::Refusal`]; a reply cut off at
    /// `max_tokens` gives [`GeneratorError::Truncated`]; other content that is not valid JSON
    /// for `T` gives [`GeneratorError::InvalidOutput`] (neither is retried).
    pub async fn complete_structured<T: DeserializeOwned>(
        &self,
        messages: &[ChatMessage],
        response_format: &ResponseFormat,
        settings: &GenerationSettings,
    ) -> Result<StructuredCompletion<T>, GeneratorError> {
        let mut fields = Map::new();
        fields.insert("response_format".into(), response_format.as_value().clone());
        let deadline = Instant::now() + self.config.deadline;
        let completion = self.complete(messages, &fields, settings, deadline).await?;
        let value = self.parse_reply(&completion, settings, |v| {
            serde_json::from_value::<T>(v).map_err(|e| e.to_string())
        })?;
        Ok(StructuredCompletion {
            value,
            usage: completion.usage,
            model: completion.model,
            finish_reason: completion.finish_reason,
            attempts: completion.attempts,
        })
    }

    /// Turns a completion's content into a value with `convert` (which sees the parsed JSON),
    /// mapping refusals, cut-off replies and unusable content to their errors.
    pub(crate) fn parse_reply<T>(
        &self,
        completion: &Completion,
        settings: &GenerationSettings,
        convert: impl FnOnce(Value) -> Result<T, String>,
    ) -> Result<T, GeneratorError> {
        if let Some(refusal) = &completion.refusal {
            return Err(GeneratorError::Refusal(refusal.clone()));
        }
        let content = &completion.content;
        match parse_json_content::<Value>(content).and_then(convert) {
            Ok(value) => Ok(value),
            Err(_) if completion.finish_reason.as_deref() == Some("length") => {
                Err(GeneratorError::Truncated {
                    max_tokens: settings.max_tokens,
                    head: self.scrub(head(content, MAX_OUTPUT_HEAD)),
                    usage: completion.usage,
                })
            }
            Err(reason) => Err(GeneratorError::InvalidOutput {
                reason,
                head: self.scrub(head(content, MAX_OUTPUT_HEAD)),
                finish_reason: completion.finish_reason.clone(),
                usage: completion.usage,
            }),
        }
    }

    /// Posts `request` until it succeeds, fails permanently, attempts run out or `deadline`
    /// passes; returns what the successful response brought and the number of attempts.
    async fn send_with_retries(
        &self,
        request: &ChatRequest<'_>,
        deadline: Instant,
    ) -> Result<(Received, u32), GeneratorError> {
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let past_deadline = |attempts: u32, last_error: String| GeneratorError::DeadlineExceeded {
            deadline: self.config.deadline,
            attempts,
            last_error,
        };
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(past_deadline(
                    attempt,
                    "the deadline passed before the request was sent".into(),
                ));
            }
            attempt += 1;
            let failure = match self.send_once(request, deadline).await {
                Ok(received) => return Ok((received, attempt)),
                Err(failure) => failure,
            };
            let timed_out = matches!(
                failure,
                Failure::Transport {
                    kind: TransportErrorKind::Timeout,
                    ..
                }
            );
            if timed_out && Instant::now() >= deadline {
                return Err(past_deadline(
                    attempt,
                    failure.into_error(attempt).to_string(),
                ));
            }
            if !failure.is_retryable() {
                return Err(failure.into_error(attempt));
            }
            if attempt >= max_attempts {
                let error = failure.into_error(attempt);
                debug!(attempts = attempt, %error, "chat completion request failed, giving up");
                return Err(error);
            }
            let retry_after = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                Failure::Transport { .. } | Failure::Malformed(_) => None,
            };
            let delay = match retry_after {
                Some(d) => d.min(policy.max_retry_after),
                None => policy.backoff(attempt),
            };
            let error = failure.into_error(attempt);
            if Instant::now() + delay >= deadline {
                return Err(past_deadline(attempt, error.to_string()));
            }
            debug!(
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                honoured_retry_after = retry_after.is_some(),
                %error,
                "retrying chat completion request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One POST. Without streaming, the request timeout (or what is left before `deadline`)
    /// bounds the whole exchange; with streaming, each wait for progress (the headers, the
    /// next chunk). When a wait expires the request future is dropped, which closes the
    /// connection (it cannot go back to the pool mid-response), so a server that notices can
    /// stop generating.
    async fn send_once(
        &self,
        request: &ChatRequest<'_>,
        deadline: Instant,
    ) -> Result<Received, Failure> {
        let limit = || {
            self.config
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now()))
        };
        let timed_out = |what: &str, after: Duration| Failure::Transport {
            kind: TransportErrorKind::Timeout,
            detail: format!(
                "{what} within {:.3}s; the connection was closed",
                after.as_secs_f64()
            ),
        };
        let mut builder = self.http.post(self.endpoint.clone()).json(request);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        if !request.stream {
            let timeout = limit();
            let exchange = async {
                let response = builder.send().await.map_err(|e| self.transport(&e))?;
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let body = response.bytes().await.map_err(|e| self.transport(&e))?;
                if !status.is_success() {
                    return Err(self.status_failure(status, retry_after, &body));
                }
                Ok(Received::Body(body.to_vec()))
            };
            return match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(timed_out("no complete response", timeout)),
            };
        }

        let timeout = limit();
        let mut response = match tokio::time::timeout(timeout, builder.send()).await {
            Ok(response) => response.map_err(|e| self.transport(&e))?,
            Err(_) => return Err(timed_out("no response headers", timeout)),
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let timeout = limit();
            let body = match tokio::time::timeout(timeout, response.bytes()).await {
                Ok(body) => body.map_err(|e| self.transport(&e))?,
                Err(_) => return Err(timed_out("no complete error response", timeout)),
            };
            return Err(self.status_failure(status, retry_after, &body));
        }
        let is_event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_event_stream {
            // A server that ignored `"stream": true` answers with one JSON body.
            let timeout = limit();
            return match tokio::time::timeout(timeout, response.bytes()).await {
                Ok(body) => Ok(Received::Body(
                    body.map_err(|e| self.transport(&e))?.to_vec(),
                )),
                Err(_) => Err(timed_out("no complete response", timeout)),
            };
        }
        let mut parser = SseParser::default();
        let mut reply = StreamedReply::default();
        loop {
            let timeout = limit();
            let chunk = match tokio::time::timeout(timeout, response.chunk()).await {
                Ok(chunk) => chunk.map_err(|e| self.transport(&e))?,
                Err(_) => return Err(timed_out("no new chunk of the streamed reply", timeout)),
            };
            let events = match &chunk {
                Some(bytes) => parser.push(bytes),
                None => parser.finish().into_iter().collect(),
            };
            for data in events {
                match reply
                    .add(&data)
                    .map_err(|e| Failure::Malformed(self.scrub(e)))?
                {
                    Event::Done => return Ok(Received::Stream(reply)),
                    Event::Chunk => {}
                    Event::Error(message) => {
                        let message = self.scrub(head(&message, MAX_ERROR_TEXT));
                        let status = StatusCode::INTERNAL_SERVER_ERROR;
                        return Err(Failure::Status {
                            status,
                            transient: is_transient(status, &message),
                            message,
                            retry_after: None,
                        });
                    }
                }
            }
            if chunk.is_none() {
                return if reply.is_complete() {
                    Ok(Received::Stream(reply))
                } else {
                    Err(Failure::Transport {
                        kind: TransportErrorKind::Other,
                        detail: "the stream ended before the reply was complete".into(),
                    })
                };
            }
        }
    }

    /// The failure an error status means, with the server's message.
    fn status_failure(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Failure {
        let message = self.scrub(error_message(status, body));
        Failure::Status {
            status,
            transient: is_transient(status, &message),
            message,
            retry_after,
        }
    }

    fn transport(&self, error: &reqwest::Error) -> Failure {
        let kind = if error.is_timeout() {
            TransportErrorKind::Timeout
        } else if error.is_connect() {
            TransportErrorKind::Connect
        } else {
            TransportErrorKind::Other
        };
        Failure::Transport {
            kind,
            detail: self.scrub(error_chain(error)),
        }
    }

    /// Removes the API key from server- or library-provided text.
    fn scrub(&self, text: String) -> String {
        scrub(self.config.api_key.as_ref(), text)
    }
}

/// Removes `key` from server- or library-provided text.
fn scrub(key: Option<&ApiKey>, text: String) -> String {
    match key {
        Some(key) if key.expose().len() >= MIN_REDACTED_KEY_LEN && text.contains(key.expose()) => {
            text.replace(key.expose(), "<redacted>")
        }
        _ => text,
    }
}

fn http_client(request_timeout: Duration) -> Result<reqwest::Client, GeneratorError> {
    reqwest::Client::builder()
        .connect_timeout(request_timeout.min(Duration::from_secs(30)))
        .user_agent(concat!(
            "weave-codegen-pipeline/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| GeneratorError::Client(error_chain(&e)))
}

#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// The model ids the server at `base_url` lists (`GET {base_url}/models`), in its order.
pub async fn list_models(
    base_url: &str,
    api_key: Option<&ApiKey>,
    timeout: Duration,
) -> Result<Vec<String>, GeneratorError> {
    let url = endpoint_url(base_url, &["models"])?;
    let mut builder = http_client(timeout)?.get(url).timeout(timeout);
    if let Some(key) = api_key {
        builder = builder.bearer_auth(key.expose());
    }
    let failed = |status: Option<u16>, message: String| GeneratorError::ModelList {
        status,
        message: scrub(api_key, message),
    };
    let response = builder
        .send()
        .await
        .map_err(|e| failed(None, error_chain(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| failed(Some(status.as_u16()), error_chain(&e)))?;
    if !status.is_success() {
        return Err(failed(Some(status.as_u16()), error_message(status, &body)));
    }
    let list: ModelList = serde_json::from_slice(&body).map_err(|e| {
        failed(
            None,
            format!(
                "the answer is not {{\"data\": [{{\"id\": ...}}]}} ({e}); it starts with {:?}",
                head(&String::from_utf8_lossy(&body), MAX_ERROR_TEXT)
            ),
        )
    })?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

/// `base_url` with the `segments` appended (keeping any query string).
fn endpoint_url(base_url: &str, segments: &[&str]) -> Result<Url, GeneratorError> {
    let invalid = |reason: String| GeneratorError::InvalidBaseUrl {
        url: base_url.to_owned(),
        reason,
    };
    let mut url = Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "unsupported scheme {:?} (expected http or https)",
            url.scheme()
        )));
    }
    url.path_segments_mut()
        .map_err(|()| invalid("the URL cannot be a base".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Parses a `retry-after-ms` (milliseconds) or `Retry-After` (seconds) header. HTTP-date
/// values are ignored (the exponential backoff is used instead).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let parse = |name: &str, scale: f64| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .and_then(|v| Duration::try_from_secs_f64(v * scale).ok())
    };
    parse("retry-after-ms", 1e-3).or_else(|| parse("retry-after", 1.0))
}

/// The server's error message: `error.message` (OpenAI), `error` (Ollama), `message` (vLLM),
/// `detail` (FastAPI), else the body's head, else the status's reason phrase.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let candidates = [
            &value["error"]["message"],
            &value["error"],
            &value["message"],
            &value["detail"],
        ];
        if let Some(message) = candidates.iter().find_map(|v| v.as_str()) {
            return head(message, MAX_ERROR_TEXT);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned()
    } else {
        head(text, MAX_ERROR_TEXT)
    }
}

/// Deserialises the model's content, tolerating surrounding whitespace and a Markdown code
/// fence (some local servers ignore `response_format` and the model wraps its JSON).
fn parse_json_content<T: DeserializeOwned>(content: &str) -> Result<T, String> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err("the reply has no content".into());
    }
    let unfenced = trimmed
        .strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
        .map(|inner| {
            let inner = inner.strip_prefix("json").unwrap_or(inner);
            inner.trim()
        })
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced).map_err(|e| e.to_string())
}

/// The first `max_chars` characters of `text`, with `…` appended when it was cut.
fn head(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An error's message followed by its sources' messages.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_appended_to_base_url() {
        for (base, expected) in [
            (
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "http://localhost:11434/v1/",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/chat/completions",
            ),
        ] {
            assert_eq!(
                endpoint_url(base, &["chat", "completions"])
                    .unwrap()
                    .as_str(),
                expected
            );
        }
        assert!(matches!(
            endpoint_url("ftp://example.com", &["models"]),
            Err(GeneratorError::InvalidBaseUrl { .. })
        ));
        assert!(endpoint_url("not a url", &["models"]).is_err());
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        let mut date = HeaderMap::new();
        date.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn error_messages_from_various_servers() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(s, br#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(
            error_message(s, br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            error_message(s, br#"{"object":"error","message":"m"}"#),
            "m"
        );
        assert_eq!(error_message(s, b"plain text"), "plain text");
        assert_eq!(error_message(s, b""), "Bad Request");
    }

    #[test]
    fn fenced_json_is_accepted() {
        let v: Value = parse_json_content("```json\n{\"a\": 1}\n```").unwrap();
        assert_eq!(v["a"], 1);
        assert!(parse_json_content::<Value>("  ").is_err());
    }

    #[test]
    fn head_cuts_on_char_boundaries() {
        assert_eq!(head("héllo", 2), "hé…");
        assert_eq!(head("hi", 5), "hi");
    }
}

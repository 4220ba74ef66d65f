//! A minimal OpenAI-compatible Chat Completions client with retries and structured outputs.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::debug;

use super::{
    GenerationSettings, GeneratorConfig, GeneratorError, ResponseFormat, TransportErrorKind,
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
    response_format: Option<&'a ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
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
    },
    Transport {
        kind: TransportErrorKind,
        detail: String,
    },
}

impl Failure {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Transport { .. } => true,
        }
    }

    fn into_error(self, attempts: u32) -> GeneratorError {
        match self {
            Self::Status {
                status, message, ..
            } => GeneratorError::Api {
                status: status.as_u16(),
                message,
                attempts,
            },
            Self::Transport { kind, detail } => GeneratorError::Transport {
                kind,
                detail,
                attempts,
            },
        }
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
        let endpoint = chat_completions_url(&config.base_url)?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!(
                "weave-codegen-pipeline/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| GeneratorError::Client(error_chain(&e)))?;
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

    /// Sends `messages` with `response_format` and the configured settings, retrying transient
    /// failures, and deserialises the first choice's content into `T`.
    ///
    /// A `refusal` in the reply gives [`GeneratorError::Refusal`]; content that is not valid
    /// JSON for `T` gives [`GeneratorError::InvalidOutput`] (not retried).
    pub async fn complete_structured<T: DeserializeOwned>(
        &self,
        messages: &[ChatMessage],
        response_format: &ResponseFormat,
        settings: &GenerationSettings,
    ) -> Result<StructuredCompletion<T>, GeneratorError> {
        let request = ChatRequest {
            model: &self.config.model,
            messages,
            response_format: Some(response_format),
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
            seed: settings.seed,
        };
        let (body, attempts) = self.send_with_retries(&request).await?;

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

        if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
            return Err(GeneratorError::Refusal(self.scrub(refusal)));
        }
        let content = choice.message.content.unwrap_or_default();
        match parse_json_content::<T>(&content) {
            Ok(value) => Ok(StructuredCompletion {
                value,
                usage,
                model,
                finish_reason: choice.finish_reason,
                attempts,
            }),
            Err(reason) => Err(GeneratorError::InvalidOutput {
                reason,
                head: self.scrub(head(&content, MAX_OUTPUT_HEAD)),
                finish_reason: choice.finish_reason,
                usage,
            }),
        }
    }

    /// Posts `request` until it succeeds, fails permanently or attempts run out; returns the
    /// body of the successful response and the number of attempts.
    async fn send_with_retries(
        &self,
        request: &ChatRequest<'_>,
    ) -> Result<(Vec<u8>, u32), GeneratorError> {
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.send_once(request).await {
                Ok(body) => return Ok((body, attempt)),
                Err(failure) => failure,
            };
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
                Failure::Transport { .. } => None,
            };
            let delay = match retry_after {
                Some(d) => d.min(policy.max_retry_after),
                None => policy.backoff(attempt),
            };
            let error = failure.into_error(attempt);
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

    async fn send_once(&self, request: &ChatRequest<'_>) -> Result<Vec<u8>, Failure> {
        let mut builder = self.http.post(self.endpoint.clone()).json(request);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = builder.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(Failure::Status {
            status,
            message: self.scrub(error_message(status, &body)),
            retry_after,
        })
    }

    fn transport(&self, error: &reqwest::Error) -> Failure {
        let kind = if error.is_timeout() {
            TransportErrorKind::Timeout
        } else if error.is_connect() {
            TransportErrorKind::Connect
        } else {
            TransportErrorKind::Other
        };
        let detail = if kind == TransportErrorKind::Timeout {
            format!(
                "no complete response within {:.3}s ({})",
                self.config.request_timeout.as_secs_f64(),
                error_chain(error)
            )
        } else {
            error_chain(error)
        };
        Failure::Transport {
            kind,
            detail: self.scrub(detail),
        }
    }

    /// Removes the API key from server- or library-provided text.
    fn scrub(&self, text: String) -> String {
        match &self.config.api_key {
            Some(key)
                if key.expose().len() >= MIN_REDACTED_KEY_LEN && text.contains(key.expose()) =>
            {
                text.replace(key.expose(), "<redacted>")
            }
            _ => text,
        }
    }
}

/// `base_url` with `/chat/completions` appended (keeping any query string).
fn chat_completions_url(base_url: &str) -> Result<Url, GeneratorError> {
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
        .extend(["chat", "completions"]);
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
            assert_eq!(chat_completions_url(base).unwrap().as_str(), expected);
        }
        assert!(matches!(
            chat_completions_url("ftp://example.com"),
            Err(GeneratorError::InvalidBaseUrl { .. })
        ));
        assert!(chat_completions_url("not a url").is_err());
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

//! Generator configuration: endpoint, credentials, sampling settings, request shape (structured
//! output mode, where the instructions go), limits (output cap, timeouts, concurrency) and retry
//! policy.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize, Serializer};

use super::{GeneratorError, StructuredOutput};

/// Default cap on generated tokens: room for a long HumanEval function with its docstring,
/// small enough that a model stuck repeating itself stops within a minute on a CPU.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Default timeout of one HTTP request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Default total time one generation may take (all attempts, backoff and fallbacks).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// Host of OpenAI's API (the only host where the `auto` settings keep OpenAI's request shape).
const OPENAI_HOST: &str = "api.openai.com";

/// Base URL used when only `OPENAI_API_KEY` is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";

/// Environment variable holding the base URL of an OpenAI-compatible API.
pub const BASE_URL_ENV: &str = "OPENAI_BASE_URL";

/// An API key. Its `Debug` output is redacted and it cannot be serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Sampling settings sent with every request. `None` fields are omitted from the request, so
/// the server's defaults apply (some models, e.g. OpenAI reasoning models, reject `temperature`
/// and `max_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSettings {
    /// Sampling temperature; defaults to `0.0` (greedy decoding, as usual for pass@1).
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens (`max_tokens`); defaults to [`DEFAULT_MAX_TOKENS`]. A
    /// reply cut off at the cap fails with [`GeneratorError::Truncated`].
    pub max_tokens: Option<u32>,
    /// Seed for best-effort deterministic sampling; defaults to `None`.
    pub seed: Option<u64>,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self {
            temperature: Some(0.0),
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            seed: None,
        }
    }
}

/// Where the instructions (the system prompt) are put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instructions {
    /// `system` for OpenAI's API, `user` for every other server (whose chat template may drop
    /// system messages, as llama.cpp's `gemma` format does).
    #[default]
    Auto,
    /// A system message, followed by the prompt as the user message (what OpenAI receives).
    System,
    /// A preamble of the single user message, before the prompt: every chat template keeps it.
    User,
}

impl Instructions {
    /// All values, in the order the command line lists them.
    pub const ALL: [Self; 3] = [Self::Auto, Self::System, Self::User];

    /// The name used on the command line and in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::System => "system",
            Self::User => "user",
        }
    }
}

impl fmt::Display for Instructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Instructions {
    type Err = GeneratorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| {
                GeneratorError::InvalidConfig(format!(
                    "unknown instructions placement {s:?} (expected one of: auto, system, user)"
                ))
            })
    }
}

/// Whether replies are streamed (`"stream": true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Streaming {
    /// Streamed from a server on this machine or a private network, not otherwise (what
    /// OpenAI receives is unchanged).
    #[default]
    Auto,
    /// Streamed: the request timeout bounds each wait for the next chunk, so a slow but
    /// working server is not cut off, and giving up closes a stream the server notices at its
    /// next token (llama-cpp-python stops generating only then).
    On,
    /// One JSON body: the request timeout bounds the whole request.
    Off,
}

impl Streaming {
    /// All values, in the order the command line lists them.
    pub const ALL: [Self; 3] = [Self::Auto, Self::On, Self::Off];

    /// The name used on the command line and in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

impl fmt::Display for Streaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Streaming {
    type Err = GeneratorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| {
                GeneratorError::InvalidConfig(format!(
                    "unknown streaming setting {s:?} (expected one of: auto, on, off)"
                ))
            })
    }
}

/// When and how failed requests are retried.
///
/// Transient failures are retried: HTTP 408, 409, 429, 5xx (unless the body says the request
/// itself is invalid), connection errors and timeouts. Request errors (other 4xx statuses and
/// 5xx bodies naming an invalid field) and unusable model output are not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Total number of requests made before giving up (at least 1). Default 5.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles on each further retry. Default 500 ms.
    #[serde(rename = "base_delay_s", serialize_with = "secs")]
    pub base_delay: Duration,
    /// Upper bound of the exponential backoff delay. Default 20 s.
    #[serde(rename = "max_delay_s", serialize_with = "secs")]
    pub max_delay: Duration,
    /// Upper bound applied to a server's `Retry-After` / `retry-after-ms` header. Default 60 s.
    #[serde(rename = "max_retry_after_s", serialize_with = "secs")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (1 for the first retry): `base_delay * 2^(retry-1)`,
    /// capped at `max_delay`, then scaled by a random factor in `[0.5, 1.0]` (jitter).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let delay = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let jitter: f64 = rand::thread_rng().gen_range(0.5..=1.0);
        delay.mul_f64(jitter)
    }
}

/// Configuration of the chat-completions client.
///
/// Serialising it (e.g. to record it in a trace) never includes the API key, and its `Debug`
/// output redacts the key.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; `/chat/completions` is appended to it.
    pub base_url: String,
    /// API key sent as `Authorization: Bearer <key>`; `None` sends no `Authorization` header.
    #[serde(skip)]
    pub api_key: Option<ApiKey>,
    /// Model name sent in the request.
    pub model: String,
    /// Sampling settings.
    pub settings: GenerationSettings,
    /// How structured output is requested; [`StructuredOutput::Auto`] by default.
    pub structured_output: StructuredOutput,
    /// Where the instructions go; [`Instructions::Auto`] by default.
    pub instructions: Instructions,
    /// Whether replies are streamed; [`Streaming::Auto`] by default.
    pub stream: Streaming,
    /// How long one request may go without progress: without streaming, the whole request
    /// (connect to end of body); with streaming, the wait for the response headers and for
    /// each next chunk. On expiry the connection is closed. Default
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    #[serde(rename = "request_timeout_s", serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Total time one generation may take from its first request: every attempt, backoff and
    /// structured-output fallback. Time spent waiting for a request slot (see
    /// `max_concurrent_requests`) or for `auto`'s first request is not counted. Default [`DEFAULT_DEADLINE`].
    #[serde(rename = "deadline_s", serialize_with = "secs")]
    pub deadline: Duration,
    /// Most generations in flight at once (each holds its slot through its retries); `None`
    /// for no limit. Default: 1 for a server on this machine or a private network (local
    /// servers such as llama.cpp's serve one request at a time and queue the rest, so that
    /// queued requests time out), no limit otherwise.
    pub max_concurrent_requests: Option<usize>,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl GeneratorConfig {
    /// A configuration for `model` at `base_url`, without an API key, with default settings.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into();
        let max_concurrent_requests = is_local_url(&base_url).then_some(1);
        Self {
            base_url,
            api_key: None,
            model: model.into(),
            settings: GenerationSettings::default(),
            structured_output: StructuredOutput::Auto,
            instructions: Instructions::Auto,
            stream: Streaming::Auto,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            max_concurrent_requests,
            retry: RetryPolicy::default(),
        }
    }

    /// Reads `OPENAI_API_KEY` and `OPENAI_BASE_URL` (default [`DEFAULT_BASE_URL`]).
    ///
    /// A base URL alone is enough (local servers such as Ollama need no key). When neither is
    /// set (or both are empty), returns [`GeneratorError::NotConfigured`].
    pub fn from_env(model: impl Into<String>) -> Result<Self, GeneratorError> {
        Self::from_lookup(model, |name| std::env::var(name).ok())
    }

    /// Like [`GeneratorConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        model: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GeneratorError> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let api_key = non_empty(API_KEY_ENV).map(ApiKey::new);
        let base_url = non_empty(BASE_URL_ENV);
        if api_key.is_none() && base_url.is_none() {
            return Err(GeneratorError::NotConfigured);
        }
        let mut config = Self::new(base_url.unwrap_or_else(|| DEFAULT_BASE_URL.into()), model);
        config.api_key = api_key;
        Ok(config)
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// Sets the sampling settings.
    pub fn with_settings(mut self, settings: GenerationSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the total deadline of one generation.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how structured output is requested.
    pub fn with_structured_output(mut self, mode: StructuredOutput) -> Self {
        self.structured_output = mode;
        self
    }

    /// Sets where the instructions go.
    pub fn with_instructions(mut self, instructions: Instructions) -> Self {
        self.instructions = instructions;
        self
    }

    /// Sets whether replies are streamed.
    pub fn with_stream(mut self, stream: Streaming) -> Self {
        self.stream = stream;
        self
    }

    /// Whether replies are streamed with this base URL ([`Streaming::Auto`] streams from local
    /// and private-network servers).
    pub fn resolved_stream(&self) -> bool {
        match self.stream {
            Streaming::Auto => is_local_url(&self.base_url),
            Streaming::On => true,
            Streaming::Off => false,
        }
    }

    /// Sets the most generations in flight at once (`None`: no limit).
    pub fn with_max_concurrent_requests(mut self, limit: Option<usize>) -> Self {
        self.max_concurrent_requests = limit;
        self
    }

    /// Whether the base URL is OpenAI's API.
    pub fn is_openai(&self) -> bool {
        url_host(&self.base_url).is_some_and(|h| h.eq_ignore_ascii_case(OPENAI_HOST))
    }

    /// The placement [`Instructions::Auto`] stands for with this base URL.
    pub fn resolved_instructions(&self) -> Instructions {
        match self.instructions {
            Instructions::Auto if self.is_openai() => Instructions::System,
            Instructions::Auto => Instructions::User,
            other => other,
        }
    }
}

/// The host of an `http(s)` URL, without brackets around IPv6 addresses.
fn url_host(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url.trim()).ok()?;
    let host = url.host_str()?;
    Some(
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned(),
    )
}

/// Whether `url` points at this machine (`localhost`, loopback) or a private or link-local
/// address, where a self-hosted server most likely runs.
pub fn is_local_url(url: &str) -> bool {
    let Some(host) = url_host(url) else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Ok(IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Err(_) => false,
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

//! Generator configuration: endpoint, credentials, sampling settings and retry policy.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize, Serializer};

use super::GeneratorError;

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
    /// Upper bound on generated tokens; defaults to `None` (server default).
    pub max_tokens: Option<u32>,
    /// Seed for best-effort deterministic sampling; defaults to `None`.
    pub seed: Option<u64>,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self {
            temperature: Some(0.0),
            max_tokens: None,
            seed: None,
        }
    }
}

/// When and how failed requests are retried.
///
/// HTTP 429, HTTP 5xx, connection errors and timeouts are retried; other 4xx statuses and
/// unusable model output are not.
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
    /// Timeout of each individual HTTP request (connect to end of body). Default 60 s.
    #[serde(rename = "request_timeout_s", serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

impl GeneratorConfig {
    /// A configuration for `model` at `base_url`, without an API key, with default settings.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            settings: GenerationSettings::default(),
            request_timeout: Duration::from_secs(60),
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

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

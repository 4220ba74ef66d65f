//! Errors returned by the generator client.

use std::fmt;
use std::time::Duration;

use super::{Rejection, Usage};

/// Why a request failed below the HTTP layer (no response status was received).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The per-request timeout elapsed before the response was complete.
    Timeout,
    /// The connection could not be established (refused, DNS failure, TLS failure, ...).
    Connect,
    /// Any other failure while sending the request or reading the response body.
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Connect => "connection failed",
            Self::Other => "transport error",
        })
    }
}

/// Errors produced while configuring the generator or generating code.
///
/// None of the variants ever contains the API key: server-provided text is scrubbed of it
/// before it is stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// Neither `OPENAI_API_KEY` nor `OPENAI_BASE_URL` is set.
    #[error(
        "LLM generator is not configured: set OPENAI_API_KEY (to use {default}) or \
         OPENAI_BASE_URL (to use a local OpenAI-compatible server such as Ollama, vLLM or \
         llama.cpp, which need no key)",
        default = super::DEFAULT_BASE_URL
    )]
    NotConfigured,

    /// The configured base URL is not a usable `http(s)` URL.
    #[error("invalid OpenAI base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The rejected URL.
        url: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The configuration is otherwise invalid (for example an empty model name).
    #[error("invalid generator configuration: {0}")]
    InvalidConfig(String),

    /// The HTTP client could not be built.
    #[error("failed to build HTTP client: {0}")]
    Client(String),

    /// A Rust type's JSON schema cannot be expressed in OpenAI's strict structured-output subset.
    #[error("cannot build strict JSON schema: {0}")]
    Schema(String),

    /// The server answered with a transient error status (429, 5xx, ...) on every attempt.
    #[error("chat completion request failed with HTTP {} after {attempts} attempt(s): {message}", status_text(*status))]
    Api {
        /// HTTP status code of the last response.
        status: u16,
        /// The server's error message (from `error.message` when present, otherwise the body head).
        message: String,
        /// Number of requests made.
        attempts: u32,
    },

    /// The server rejected the request itself (HTTP 400, 404, 422, ..., or a 5xx whose body
    /// names an invalid field); such a request is not retried.
    #[error(
        "the server rejected the chat completion request with HTTP {} (not retried: the \
         request itself is invalid): {message}",
        status_text(*status)
    )]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// The server's error message.
        message: String,
        /// Number of requests made (earlier ones may have failed transiently).
        attempts: u32,
    },

    /// The server rejected every structured-output request shape `auto` tried.
    #[error(
        "the server rejected every structured-output request shape: {}; choose one it \
         accepts with --structured-output",
        join(rejections)
    )]
    NoStructuredOutput {
        /// Each mode tried and the server's answer.
        rejections: Vec<Rejection>,
    },

    /// No HTTP response was received (after retries).
    #[error("chat completion request {kind} after {attempts} attempt(s): {detail}")]
    Transport {
        /// What kind of failure happened on the last attempt.
        kind: TransportErrorKind,
        /// Description of the failure, including its underlying causes.
        detail: String,
        /// Number of requests made.
        attempts: u32,
    },

    /// The server's model list (`GET /models`) could not be read.
    #[error("cannot list the server's models{}: {message}", status.map(|s| format!(" (HTTP {})", status_text(s))).unwrap_or_default())]
    ModelList {
        /// HTTP status of the answer, when there was one.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },

    /// The generation's total deadline passed before an answer arrived.
    #[error(
        "no answer within the generation deadline of {:.0}s ({attempts} attempt(s)); last \
         error: {last_error}",
        deadline.as_secs_f64()
    )]
    DeadlineExceeded {
        /// The deadline.
        deadline: Duration,
        /// Number of requests made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },

    /// The server answered with a success status but the body is not a chat completion.
    #[error("malformed chat completion response: {0}")]
    MalformedResponse(String),

    /// The model refused to answer (the message's `refusal` field was set).
    #[error("model refused the request: {0}")]
    Refusal(String),

    /// The reply was cut off at the output cap (`finish_reason: length`) before its JSON was
    /// complete.
    #[error(
        "the reply was cut off at the output cap ({}, finish_reason: length) before its JSON \
         was complete; raise --max-tokens if the model needs more room; content starts with \
         {head:?}",
        cap_text(*max_tokens, usage.as_ref())
    )]
    Truncated {
        /// The `max_tokens` sent, if any (without one the server's own limit applied).
        max_tokens: Option<u32>,
        /// The first characters of the reply's content.
        head: String,
        /// Token usage reported for the (billed) request.
        usage: Option<Usage>,
    },

    /// The model's reply is not valid JSON for the requested schema.
    #[error(
        "model output is not valid JSON for the schema: {reason} (finish_reason: {}); content starts with {head:?}",
        finish_reason.as_deref().unwrap_or("unknown")
    )]
    InvalidOutput {
        /// Why parsing failed.
        reason: String,
        /// The first characters of the reply's content.
        head: String,
        /// The choice's `finish_reason` (`"length"` means the output was truncated).
        finish_reason: Option<String>,
        /// Token usage reported for the (billed) request.
        usage: Option<Usage>,
    },
}

impl GeneratorError {
    /// Token usage reported by the server for a request that was answered but whose answer
    /// could not be used, so that it can still be accounted for.
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            Self::InvalidOutput { usage, .. } | Self::Truncated { usage, .. } => usage.as_ref(),
            _ => None,
        }
    }

    /// Whether the server said the request itself is invalid (it is not retried).
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. } | Self::NoStructuredOutput { .. }
        )
    }

    /// Number of HTTP requests made before giving up, when known.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Api { attempts, .. }
            | Self::Rejected { attempts, .. }
            | Self::Transport { attempts, .. }
            | Self::DeadlineExceeded { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// HTTP status of the failed response, for [`GeneratorError::Api`] and
    /// [`GeneratorError::Rejected`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Rejected { status, .. } => Some(*status),
            Self::ModelList { status, .. } => *status,
            _ => None,
        }
    }
}

/// `"max_tokens 1024, 1024 tokens generated"`.
fn cap_text(max_tokens: Option<u32>, usage: Option<&Usage>) -> String {
    let cap = match max_tokens {
        Some(n) => format!("max_tokens {n}"),
        None => "the server's own limit: no max_tokens was sent".into(),
    };
    match usage {
        Some(u) if u.completion_tokens > 0 => {
            format!("{cap}, {} tokens generated", u.completion_tokens)
        }
        _ => cap,
    }
}

fn join(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `"429 Too Many Requests"`, or just the number for unknown codes.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

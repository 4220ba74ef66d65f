//! Errors returned by the generator client.

use std::fmt;

use super::Usage;

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

    /// The server answered with an error status (after retries, for retryable statuses).
    #[error("chat completion request failed with HTTP {} after {attempts} attempt(s): {message}", status_text(*status))]
    Api {
        /// HTTP status code of the last response.
        status: u16,
        /// The server's error message (from `error.message` when present, otherwise the body head).
        message: String,
        /// Number of requests made.
        attempts: u32,
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

    /// The server answered with a success status but the body is not a chat completion.
    #[error("malformed chat completion response: {0}")]
    MalformedResponse(String),

    /// The model refused to answer (the message's `refusal` field was set).
    #[error("model refused the request: {0}")]
    Refusal(String),

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
            Self::InvalidOutput { usage, .. } => usage.as_ref(),
            _ => None,
        }
    }

    /// Number of HTTP requests made before giving up, when known.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Api { attempts, .. } | Self::Transport { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// HTTP status of the failed response, for [`GeneratorError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
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

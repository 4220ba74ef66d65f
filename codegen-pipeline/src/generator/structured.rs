//! Structured-output modes: how a request asks the server for JSON matching a schema, which
//! modes `auto` tries in turn, and when a server's error means it rejected the request's shape.
//!
//! Servers differ: OpenAI takes `response_format: {"type": "json_schema", ...}`; llama.cpp's
//! Python server only `{"type": "json_object", "schema": S}`; vLLM also its own `guided_json`
//! (before 0.12) or `structured_outputs` fields; old servers only `{"type": "json_object"}`.
//! Whatever the mode, the reply is validated against the schema afterwards.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::GeneratorError;

/// How the request asks for structured output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Start with [`StructuredOutput::JsonSchema`]; when the server rejects that request shape,
    /// fall back (once per run) to the next of [`StructuredOutput::AUTO_ORDER`] and keep it.
    #[default]
    Auto,
    /// `response_format: {"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`:
    /// OpenAI, Ollama 0.5+, vLLM, LM Studio, llama.cpp's `llama-server`.
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": S}`, the schema also in the prompt:
    /// llama.cpp's Python server (`llama-cpp-python`) and `llama-server` constrain the output
    /// to S; servers that ignore `schema` (Ollama, vLLM) at least return JSON.
    JsonObjectSchema,
    /// `response_format: {"type": "json_object"}` with the schema only in the prompt (JSON mode
    /// of older servers).
    JsonObject,
    /// vLLM's extra field `guided_json: S` (vLLM before 0.12), no `response_format`.
    GuidedJson,
    /// vLLM's extra field `structured_outputs: {"json": S}` (vLLM 0.10.2+), no
    /// `response_format`.
    StructuredOutputs,
    /// No structured-output field at all: the schema only in the prompt.
    None,
}

impl StructuredOutput {
    /// All values, in the order the command line lists them.
    pub const ALL: [Self; 7] = [
        Self::Auto,
        Self::JsonSchema,
        Self::JsonObjectSchema,
        Self::JsonObject,
        Self::GuidedJson,
        Self::StructuredOutputs,
        Self::None,
    ];

    /// The modes `auto` tries, in order, each after the server rejected the previous one's
    /// request shape.
    pub const AUTO_ORDER: [Self; 4] = [
        Self::JsonSchema,
        Self::JsonObjectSchema,
        Self::JsonObject,
        Self::None,
    ];

    /// The name used on the command line and in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::JsonSchema => "json_schema",
            Self::JsonObjectSchema => "json_object_schema",
            Self::JsonObject => "json_object",
            Self::GuidedJson => "guided_json",
            Self::StructuredOutputs => "structured_outputs",
            Self::None => "none",
        }
    }

    /// The modes tried for this setting, in order.
    pub fn candidates(self) -> &'static [Self] {
        match self {
            Self::Auto => &Self::AUTO_ORDER,
            Self::JsonSchema => &[Self::JsonSchema],
            Self::JsonObjectSchema => &[Self::JsonObjectSchema],
            Self::JsonObject => &[Self::JsonObject],
            Self::GuidedJson => &[Self::GuidedJson],
            Self::StructuredOutputs => &[Self::StructuredOutputs],
            Self::None => &[Self::None],
        }
    }

    /// Whether the prompt must describe the schema because the server may not enforce it.
    pub fn schema_in_prompt(self) -> bool {
        matches!(
            self,
            Self::JsonObjectSchema | Self::JsonObject | Self::None | Self::Auto
        )
    }

    /// The top-level request fields this mode adds for `schema` (named `name`).
    pub fn request_fields(self, name: &str, schema: &Value) -> Map<String, Value> {
        let mut fields = Map::new();
        match self {
            Self::Auto | Self::JsonSchema => {
                fields.insert(
                    "response_format".into(),
                    json!({
                        "type": "json_schema",
                        "json_schema": {"name": name, "strict": true, "schema": schema},
                    }),
                );
            }
            Self::JsonObjectSchema => {
                fields.insert(
                    "response_format".into(),
                    json!({"type": "json_object", "schema": schema}),
                );
            }
            Self::JsonObject => {
                fields.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Self::GuidedJson => {
                fields.insert("guided_json".into(), schema.clone());
            }
            Self::StructuredOutputs => {
                fields.insert("structured_outputs".into(), json!({"json": schema}));
            }
            Self::None => {}
        }
        fields
    }
}

impl fmt::Display for StructuredOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StructuredOutput {
    type Err = GeneratorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
                GeneratorError::InvalidConfig(format!(
                    "unknown structured-output mode {s:?} (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// A request shape the server rejected, kept to explain a fallback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The rejected mode.
    pub mode: StructuredOutput,
    /// HTTP status of the rejection.
    pub status: u16,
    /// The server's message.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}: {})", self.mode, self.status, self.message)
    }
}

/// Phrases by which servers say a request is invalid (pydantic, FastAPI, OpenAI, vLLM, Ollama,
/// LM Studio), matched case-insensitively in the message of a 5xx reply to tell a request
/// error wrapped as a server error (llama-cpp-python answers every validation error with HTTP
/// 500) from a transient failure.
const INVALID_REQUEST_PHRASES: &[&str] = &[
    "validation error",
    "input should be",
    "field required",
    "extra inputs are not permitted",
    "extra_forbidden",
    "literal_error",
    "invalid_request_error",
    "unrecognized request argument",
    "unsupported parameter",
    "unsupported value",
    "is not supported",
    "not supported with this model",
    "must be one of",
    "invalid value",
    "invalid type",
    "invalid request",
    "exceed context window",
    "maximum context length",
];

/// Words that tie a rejection to the structured-output part of the request.
const STRUCTURED_OUTPUT_WORDS: &[&str] = &[
    "response_format",
    "response format",
    "json_schema",
    "json_object",
    "schema",
    "guided_json",
    "structured_outputs",
    "structured output",
];

/// Whether a 5xx body's message says the request itself is invalid.
pub(crate) fn names_invalid_request(message: &str) -> bool {
    let lower = message.to_lowercase();
    INVALID_REQUEST_PHRASES.iter().any(|p| lower.contains(p))
}

/// Whether a request error's message is about the structured-output fields.
pub(crate) fn names_structured_output(message: &str) -> bool {
    let lower = message.to_lowercase();
    STRUCTURED_OUTPUT_WORDS.iter().any(|w| lower.contains(w))
}

/// What `auto` has learnt about the server during this run; shared by clones of a generator.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    /// The mode in use once a server accepted it (or the only mode of a fixed setting).
    settled: OnceLock<StructuredOutput>,
    /// Held by the one generation probing the server while no mode is settled; the others
    /// wait for it, so a rejected shape is sent once per run, not once per row.
    pub(crate) probe: tokio::sync::Mutex<ProbeState>,
    /// Every mode the server rejected, in order.
    rejections: Mutex<Vec<Rejection>>,
}

/// Where the probing stands.
#[derive(Debug, Default)]
pub(crate) struct ProbeState {
    /// Index of the candidate to try next.
    pub(crate) next: usize,
    /// Set when the server rejected every candidate.
    pub(crate) exhausted: bool,
}

impl Negotiation {
    /// A negotiation for `setting`; a fixed mode is settled from the start.
    pub(crate) fn new(setting: StructuredOutput) -> Self {
        let negotiation = Self::default();
        if setting != StructuredOutput::Auto {
            let _ = negotiation.settled.set(setting);
        }
        negotiation
    }

    /// The settled mode, if any.
    pub(crate) fn settled(&self) -> Option<StructuredOutput> {
        self.settled.get().copied()
    }

    /// Keeps `mode` for the rest of the run.
    pub(crate) fn settle(&self, mode: StructuredOutput) {
        let _ = self.settled.set(mode);
    }

    /// Records a rejected mode.
    pub(crate) fn reject(&self, rejection: Rejection) {
        if let Ok(mut r) = self.rejections.lock() {
            r.push(rejection);
        }
    }

    /// The rejections so far.
    pub(crate) fn rejections(&self) -> Vec<Rejection> {
        self.rejections
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in StructuredOutput::ALL {
            assert_eq!(mode.as_str().parse::<StructuredOutput>().unwrap(), mode);
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                Value::String(mode.as_str().into())
            );
        }
        let err = "json".parse::<StructuredOutput>().unwrap_err().to_string();
        assert!(err.contains("json_object_schema"), "{err}");
    }

    #[test]
    fn request_fields_per_mode() {
        let schema = json!({"type": "object"});
        let f = |m: StructuredOutput| Value::Object(m.request_fields("n", &schema));
        assert_eq!(
            f(StructuredOutput::JsonSchema),
            json!({"response_format": {"type": "json_schema",
                "json_schema": {"name": "n", "strict": true, "schema": schema}}})
        );
        assert_eq!(
            f(StructuredOutput::JsonObjectSchema),
            json!({"response_format": {"type": "json_object", "schema": schema}})
        );
        assert_eq!(
            f(StructuredOutput::JsonObject),
            json!({"response_format": {"type": "json_object"}})
        );
        assert_eq!(
            f(StructuredOutput::GuidedJson),
            json!({"guided_json": schema})
        );
        assert_eq!(
            f(StructuredOutput::StructuredOutputs),
            json!({"structured_outputs": {"json": schema}})
        );
        assert_eq!(f(StructuredOutput::None), json!({}));
    }

    #[test]
    fn invalid_request_messages_are_recognised() {
        // llama-cpp-python 0.3.x wraps FastAPI's validation error in an HTTP 500.
        let llama = "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', \
                     'response_format', 'type'), 'msg': \"Input should be 'text' or \
                     'json_object'\", 'input': 'json_schema'}";
        assert!(names_invalid_request(llama));
        assert!(names_structured_output(llama));
        assert!(!names_invalid_request("CUDA out of memory"));
        assert!(!names_invalid_request(
            "The server had an error processing your request"
        ));
        assert!(names_invalid_request(
            "Requested tokens (5000) exceed context window of 4096"
        ));
        assert!(!names_structured_output(
            "Requested tokens (5000) exceed context window of 4096"
        ));
    }
}

//! LLM code generator: asks an OpenAI-compatible Chat Completions API to complete a HumanEval
//! prompt, using structured outputs so the reply parses into [`GeneratedCode`].
//!
//! ```no_run
//! # async fn run() -> Result<(), codegen_pipeline::generator::GeneratorError> {
//! use codegen_pipeline::generator::{Generator, GeneratorConfig};
//!
//! let config = GeneratorConfig::from_env("gpt-4o-mini")?;
//! let generator = Generator::new(config)?;
//! let generation = generator
//!     .generate("def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n")
//!     .await?;
//! let program = codegen_pipeline::formatter::assemble(
//!     "def add(a: int, b: int) -> int:\n",
//!     "add",
//!     &generation.code,
//! );
//! println!("{}", program.code);
//! # Ok(())
//! # }
//! ```
//!
//! Configuration comes from `OPENAI_API_KEY` and `OPENAI_BASE_URL` (default
//! `https://api.openai.com/v1`), so OpenAI, Groq, vLLM, Ollama, llama.cpp server and LM Studio
//! all work. Servers differ in how they take structured output: [`StructuredOutput::Auto`]
//! starts with OpenAI's `json_schema` and, when the server rejects that request shape, falls
//! back once per run to the next shape it accepts (see [`StructuredOutput`]); the reply is
//! validated against the schema in every mode. Transient failures (HTTP 408/409/429, 5xx,
//! connection errors, timeouts) are retried with exponential backoff and jitter within a total
//! deadline; request errors (other 4xx, 5xx bodies naming an invalid field) fail at once with
//! the server's message. Output is capped (`max_tokens`), a reply cut off at the cap is its own
//! error, and a limit on concurrent requests keeps a local server's queue short. The API key
//! never appears in errors, `Debug` output or the serialised configuration.

mod client;
mod config;
mod error;
mod schema;
mod stream;
mod structured;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::info;

pub use client::{
    list_models, ChatClient, ChatMessage, Completion, Role, StructuredCompletion, Usage,
};
pub use config::{
    is_local_url, ApiKey, GenerationSettings, GeneratorConfig, Instructions, RetryPolicy,
    Streaming, API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, DEFAULT_DEADLINE, DEFAULT_MAX_TOKENS,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use error::{GeneratorError, TransportErrorKind};
pub use schema::{make_strict, strict_schema_for, ResponseFormat};
pub use structured::{Rejection, StructuredOutput};

use structured::{names_structured_output, Negotiation};

/// System message sent before the HumanEval prompt.
pub const SYSTEM_PROMPT: &str = "\
You are an expert Python programmer. The user sends the beginning of a Python module from the \
HumanEval benchmark: optional imports and helper functions, then the signature and docstring of \
a function to implement. Write a correct, efficient implementation of that last function.

Rules:
- Keep the function name, parameters, type annotations and return annotation exactly as given.
- Use only the Python standard library. Put any import you need inside the function body.
- Do not include tests, example usage, print statements or explanations.

Answer with the three parts of the function:
- function_signature: the `def` line exactly as in the prompt, ending with a colon.
- function_args_with_docstring_within_triple_quotes: the function's docstring as in the \
prompt, including the enclosing triple quotes.
- code_logic: the function body implementing the logic (without the signature and the \
docstring), indented by four spaces as it appears inside the function.";

/// A Python function completing the prompt, split into its signature, its docstring and the
/// body implementing its logic.
//
// (Split as in W&B Weave's code-generation cookbook. The doc comments of the type and its
// fields become the JSON schema descriptions the model sees; the fields are generated in
// declaration order, so the logic comes last.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GeneratedCode {
    /// The function's `def` line exactly as given in the prompt, including the function name,
    /// parameters with type annotations and the return annotation, ending with a colon.
    pub function_signature: String,
    /// The function's docstring describing its arguments and behaviour, including the
    /// enclosing triple quotes (`"""`).
    pub function_args_with_docstring_within_triple_quotes: String,
    /// The Python statements of the function body that implement the logic, without the
    /// signature and the docstring, indented by four spaces as inside the function.
    pub code_logic: String,
}

/// The result of one successful generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generation {
    /// The parsed structured reply.
    pub code: GeneratedCode,
    /// Token usage, when the server reported it.
    pub usage: Option<Usage>,
    /// Model name reported by the server, else the requested one.
    pub model: String,
    /// Number of HTTP requests made, rejected request shapes included (1 when the first one
    /// succeeded).
    pub attempts: u32,
    /// The structured-output mode of the successful request.
    pub structured_output: StructuredOutput,
    /// Where the instructions were put.
    pub instructions: Instructions,
    /// Whether the reply was streamed.
    pub streamed: bool,
}

/// Generates HumanEval completions with structured outputs. Cheap to clone; clones share the
/// connection pool, the request slots and what `auto` learnt about the server.
#[derive(Debug, Clone)]
pub struct Generator {
    client: ChatClient,
    response_format: ResponseFormat,
    validator: Arc<jsonschema::Validator>,
    negotiation: Arc<Negotiation>,
    slots: Option<Arc<Semaphore>>,
}

impl Generator {
    /// Name of the JSON schema sent in `response_format`.
    pub const SCHEMA_NAME: &'static str = "generated_code";

    /// Builds a generator (and its HTTP client) for `config`.
    pub fn new(config: GeneratorConfig) -> Result<Self, GeneratorError> {
        Self::from_client(ChatClient::new(config)?)
    }

    /// Builds a generator on an existing client.
    pub fn from_client(client: ChatClient) -> Result<Self, GeneratorError> {
        let response_format = ResponseFormat::json_schema::<GeneratedCode>(Self::SCHEMA_NAME)?;
        let validator = jsonschema::validator_for(response_format.schema())
            .map_err(|e| GeneratorError::Schema(format!("cannot compile the schema: {e}")))?;
        let config = client.config();
        let slots = match config.max_concurrent_requests {
            Some(0) => {
                return Err(GeneratorError::InvalidConfig(
                    "the request concurrency limit must be at least 1".into(),
                ))
            }
            Some(n) => Some(Arc::new(Semaphore::new(n))),
            None => None,
        };
        Ok(Self {
            negotiation: Arc::new(Negotiation::new(config.structured_output)),
            client,
            response_format,
            validator: Arc::new(validator),
            slots,
        })
    }

    /// The underlying chat client.
    pub fn client(&self) -> &ChatClient {
        &self.client
    }

    /// The configuration in use.
    pub fn config(&self) -> &GeneratorConfig {
        self.client.config()
    }

    /// The `response_format` of the `json_schema` mode (the strict schema of
    /// [`GeneratedCode`]).
    pub fn response_format(&self) -> &ResponseFormat {
        &self.response_format
    }

    /// The structured-output mode in use: the configured one, or what `auto` settled on
    /// (`None` while `auto` has not yet heard the server accept a request).
    pub fn structured_output(&self) -> Option<StructuredOutput> {
        self.negotiation.settled()
    }

    /// The request shapes the server rejected so far (each is tried once per run).
    pub fn rejections(&self) -> Vec<Rejection> {
        self.negotiation.rejections()
    }

    /// The messages sent for `prompt`: [`SYSTEM_PROMPT`] as a system message, then the prompt
    /// as the user message (what OpenAI receives).
    pub fn messages(prompt: &str) -> Vec<ChatMessage> {
        vec![
            ChatMessage::system(SYSTEM_PROMPT),
            ChatMessage::user(prompt),
        ]
    }

    /// The messages sent for `prompt` in `mode` with the instructions at `placement`: the
    /// schema is appended to the instructions when the mode may not enforce it, and with
    /// [`Instructions::User`] the instructions open the user message.
    pub fn messages_for(
        &self,
        prompt: &str,
        mode: StructuredOutput,
        placement: Instructions,
    ) -> Vec<ChatMessage> {
        let mut instructions = SYSTEM_PROMPT.to_owned();
        if mode.schema_in_prompt() {
            let schema =
                serde_json::to_string_pretty(self.response_format.schema()).unwrap_or_default();
            instructions.push_str(
                "\n\nReply with a single JSON object, and nothing else, matching this JSON \
                 schema:\n",
            );
            instructions.push_str(&schema);
        }
        match placement {
            Instructions::User => vec![ChatMessage::user(format!(
                "{instructions}\n\nThe beginning of the Python module:\n\n{prompt}"
            ))],
            Instructions::System | Instructions::Auto => {
                vec![ChatMessage::system(instructions), ChatMessage::user(prompt)]
            }
        }
    }

    /// Asks the model to complete the HumanEval `prompt` with the configured settings.
    pub async fn generate(&self, prompt: &str) -> Result<Generation, GeneratorError> {
        self.generate_with(prompt, &self.config().settings).await
    }

    /// Like [`Generator::generate`], with explicit sampling settings.
    ///
    /// Waits for a request slot when the concurrency limit is reached, then has
    /// [`GeneratorConfig::deadline`] for all its attempts (counted once it may send). With
    /// [`StructuredOutput::Auto`], the first generation of a run probes the server while the
    /// others wait; a rejected request shape is replaced by the next mode, which every later
    /// generation uses. The mode and the instructions' placement are recorded as attributes
    /// of the current weave call.
    pub async fn generate_with(
        &self,
        prompt: &str,
        settings: &GenerationSettings,
    ) -> Result<Generation, GeneratorError> {
        let _slot =
            match &self.slots {
                Some(slots) => {
                    Some(slots.clone().acquire_owned().await.map_err(|_| {
                        GeneratorError::Client("the request slots were closed".into())
                    })?)
                }
                None => None,
            };
        let placement = self.config().resolved_instructions();
        let mut fallback = Vec::new();
        let result = self
            .negotiate(prompt, settings, placement, &mut fallback)
            .await;
        let mut attributes = json!({
            "instructions": placement.as_str(),
            "stream": self.config().resolved_stream(),
        });
        match &result {
            Ok(generation) => {
                attributes["structured_output"] = json!(generation.structured_output.as_str());
            }
            Err(_) => {
                if let Some(mode) = self.negotiation.settled() {
                    attributes["structured_output"] = json!(mode.as_str());
                }
            }
        }
        if !fallback.is_empty() {
            attributes["structured_output_rejected"] = json!(fallback);
        }
        weave::add_attributes(json!({ "llm": attributes }));
        result
    }

    /// Runs one generation in the settled mode, or probes the server for one.
    async fn negotiate(
        &self,
        prompt: &str,
        settings: &GenerationSettings,
        placement: Instructions,
        fallback: &mut Vec<Rejection>,
    ) -> Result<Generation, GeneratorError> {
        // The deadline starts when this generation may send its first request: after its
        // wait for a slot and for the probe.
        let deadline = || Instant::now() + self.config().deadline;
        if let Some(mode) = self.negotiation.settled() {
            return self
                .attempt(prompt, settings, mode, placement, deadline(), 0)
                .await;
        }
        let mut probe = self.negotiation.probe.lock().await;
        if let Some(mode) = self.negotiation.settled() {
            drop(probe);
            return self
                .attempt(prompt, settings, mode, placement, deadline(), 0)
                .await;
        }
        let deadline = deadline();
        let candidates = self.config().structured_output.candidates();
        if probe.exhausted {
            return Err(GeneratorError::NoStructuredOutput {
                rejections: self.negotiation.rejections(),
            });
        }
        let mut earlier_attempts = 0;
        loop {
            let mode = candidates[probe.next];
            let result = self
                .attempt(
                    prompt,
                    settings,
                    mode,
                    placement,
                    deadline,
                    earlier_attempts,
                )
                .await;
            match result {
                Err(GeneratorError::Rejected {
                    status,
                    message,
                    attempts,
                }) if names_structured_output(&message) => {
                    let rejection = Rejection {
                        mode,
                        status,
                        message,
                    };
                    info!(%rejection, "the server rejected this structured-output request shape");
                    self.negotiation.reject(rejection.clone());
                    fallback.push(rejection);
                    earlier_attempts = attempts;
                    if probe.next + 1 < candidates.len() {
                        probe.next += 1;
                        info!(
                            mode = candidates[probe.next].as_str(),
                            "falling back to the next structured-output mode"
                        );
                        continue;
                    }
                    probe.exhausted = true;
                    return Err(GeneratorError::NoStructuredOutput {
                        rejections: self.negotiation.rejections(),
                    });
                }
                // The server accepted the request shape: keep it, whatever the reply was.
                Ok(_)
                | Err(
                    GeneratorError::InvalidOutput { .. }
                    | GeneratorError::Truncated { .. }
                    | GeneratorError::Refusal(_)
                    | GeneratorError::MalformedResponse(_),
                ) => {
                    if self.negotiation.settled().is_none() && candidates.len() > 1 {
                        info!(mode = mode.as_str(), "structured-output mode chosen");
                    }
                    self.negotiation.settle(mode);
                    return result;
                }
                // Nothing learnt (transient failures, other request errors): the next
                // generation probes again.
                Err(_) => return result,
            }
        }
    }

    /// One generation in `mode`: the request (with its retries) and the reply's validation.
    async fn attempt(
        &self,
        prompt: &str,
        settings: &GenerationSettings,
        mode: StructuredOutput,
        placement: Instructions,
        deadline: Instant,
        earlier_attempts: u32,
    ) -> Result<Generation, GeneratorError> {
        let messages = self.messages_for(prompt, mode, placement);
        let fields = mode.request_fields(Self::SCHEMA_NAME, self.response_format.schema());
        let completion = self
            .client
            .complete(&messages, &fields, settings, deadline)
            .await
            .map_err(|e| add_attempts(e, earlier_attempts))?;
        let code = self
            .client
            .parse_reply(&completion, settings, |value| self.validate(value))?;
        Ok(Generation {
            code,
            usage: completion.usage,
            model: completion.model,
            attempts: completion.attempts + earlier_attempts,
            structured_output: mode,
            instructions: placement,
            streamed: completion.streamed,
        })
    }

    /// Checks the reply against the schema (whatever the mode, the server may not have
    /// enforced it), then deserialises it.
    fn validate(&self, value: Value) -> Result<GeneratedCode, String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(3)
            .map(|e| {
                let path = e.instance_path().to_string();
                let path = if path.is_empty() { "/".into() } else { path };
                format!("at {path}: {}", e.masked())
            })
            .collect();
        if !problems.is_empty() {
            return Err(format!(
                "the reply does not match the schema: {}",
                problems.join("; ")
            ));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Adds the requests of rejected request shapes to an error's attempt count.
fn add_attempts(error: GeneratorError, earlier: u32) -> GeneratorError {
    if earlier == 0 {
        return error;
    }
    match error {
        GeneratorError::Api {
            status,
            message,
            attempts,
        } => GeneratorError::Api {
            status,
            message,
            attempts: attempts + earlier,
        },
        GeneratorError::Rejected {
            status,
            message,
            attempts,
        } => GeneratorError::Rejected {
            status,
            message,
            attempts: attempts + earlier,
        },
        GeneratorError::Transport {
            kind,
            detail,
            attempts,
        } => GeneratorError::Transport {
            kind,
            detail,
            attempts: attempts + earlier,
        },
        GeneratorError::DeadlineExceeded {
            deadline,
            attempts,
            last_error,
        } => GeneratorError::DeadlineExceeded {
            deadline,
            attempts: attempts + earlier,
            last_error,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_code_schema_is_strict() {
        let schema = strict_schema_for::<GeneratedCode>().unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        // Declaration order: the model writes the logic after the signature and docstring.
        let fields = [
            "function_signature",
            "function_args_with_docstring_within_triple_quotes",
            "code_logic",
        ];
        assert_eq!(schema["required"], serde_json::json!(fields));
        let properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(properties, fields);
        for field in ["function_signature", "code_logic"] {
            let description = schema["properties"][field]["description"].as_str().unwrap();
            assert!(!description.is_empty());
        }
    }

    #[test]
    fn from_lookup_requires_key_or_base_url() {
        let none = GeneratorConfig::from_lookup("m", |_| None);
        assert!(matches!(none, Err(GeneratorError::NotConfigured)));
        let empty = GeneratorConfig::from_lookup("m", |_| Some("  ".into()));
        assert!(matches!(empty, Err(GeneratorError::NotConfigured)));

        let local = GeneratorConfig::from_lookup("llama3", |name| {
            (name == BASE_URL_ENV).then(|| "http://localhost:11434/v1".into())
        })
        .unwrap();
        assert_eq!(local.base_url, "http://localhost:11434/v1");
        assert!(local.api_key.is_none());
        assert_eq!(local.model, "llama3");

        let openai = GeneratorConfig::from_lookup("gpt-4o-mini", |name| {
            (name == API_KEY_ENV).then(|| "sk-test-123456".into())
        })
        .unwrap();
        assert_eq!(openai.base_url, DEFAULT_BASE_URL);
        assert_eq!(openai.api_key.as_ref().unwrap().expose(), "sk-test-123456");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: std::time::Duration::from_millis(100),
            max_delay: std::time::Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let ms = |retry| policy.backoff(retry).as_millis();
        assert!((50..=100).contains(&ms(1)), "{}", ms(1));
        assert!((100..=200).contains(&ms(2)), "{}", ms(2));
        assert!((175..=350).contains(&ms(3)), "{}", ms(3));
        assert!((175..=350).contains(&ms(40)), "{}", ms(40));
    }
}

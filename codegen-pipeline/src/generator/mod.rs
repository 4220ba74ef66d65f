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
//! all work. Transient failures (HTTP 429, 5xx, connection errors, timeouts) are retried with
//! exponential backoff and jitter; the API key never appears in errors, `Debug` output or the
//! serialised configuration.

mod client;
mod config;
mod error;
mod schema;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use client::{ChatClient, ChatMessage, Role, StructuredCompletion, Usage};
pub use config::{
    ApiKey, GenerationSettings, GeneratorConfig, RetryPolicy, API_KEY_ENV, BASE_URL_ENV,
    DEFAULT_BASE_URL,
};
pub use error::{GeneratorError, TransportErrorKind};
pub use schema::{make_strict, strict_schema_for, ResponseFormat};

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
    /// Number of HTTP requests made (1 when the first one succeeded).
    pub attempts: u32,
}

/// Generates HumanEval completions with structured outputs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Generator {
    client: ChatClient,
    response_format: ResponseFormat,
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
        Ok(Self {
            client,
            response_format: ResponseFormat::json_schema::<GeneratedCode>(Self::SCHEMA_NAME)?,
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

    /// The `response_format` sent with each request (the strict schema of [`GeneratedCode`]).
    pub fn response_format(&self) -> &ResponseFormat {
        &self.response_format
    }

    /// The messages sent for `prompt`: [`SYSTEM_PROMPT`], then the prompt as the user message.
    pub fn messages(prompt: &str) -> Vec<ChatMessage> {
        vec![
            ChatMessage::system(SYSTEM_PROMPT),
            ChatMessage::user(prompt),
        ]
    }

    /// Asks the model to complete the HumanEval `prompt` with the configured settings.
    pub async fn generate(&self, prompt: &str) -> Result<Generation, GeneratorError> {
        self.generate_with(prompt, &self.config().settings).await
    }

    /// Like [`Generator::generate`], with explicit sampling settings.
    pub async fn generate_with(
        &self,
        prompt: &str,
        settings: &GenerationSettings,
    ) -> Result<Generation, GeneratorError> {
        let completion = self
            .client
            .complete_structured::<GeneratedCode>(
                &Self::messages(prompt),
                &self.response_format,
                settings,
            )
            .await?;
        Ok(Generation {
            code: completion.value,
            usage: completion.usage,
            model: completion.model,
            attempts: completion.attempts,
        })
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

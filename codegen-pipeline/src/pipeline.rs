//! `CodeGenerationPipeline`: the model evaluated on HumanEval. `predict` calls `generate_code`
//! (the LLM, or the dataset's reference solution), `assemble`, then the formatter's own
//! orchestration with each stage (`prepare`, then every `FormatStep`) a traced op returning
//! `{code, changed, note}`, so the trace shows what each step changed, and why a step left the
//! code as it was.

use std::sync::Arc;

use serde::Serialize;

use crate::formatter::{assemble, Assembly, CodeFormatter, FormatStep, Stage, StepOutput};
use crate::generator::{GeneratedCode, GenerationSettings, Generator};
use crate::humaneval::Problem;
use crate::sandbox::{Sandbox, Verdict};

/// Where the code comes from.
#[derive(Clone)]
pub enum Source {
    /// An OpenAI-compatible LLM.
    Llm(Box<Generator>),
    /// The dataset's canonical solutions (no LLM is called).
    Reference,
}

/// The pipeline model: generation settings plus the formatter.
#[derive(weave::Model, Serialize, Clone)]
pub struct CodeGenerationPipeline {
    /// Model name (`reference` for the canonical solutions).
    pub model_name: String,
    /// The formatter and its settings.
    pub formatter: CodeFormatter,
    /// Generation settings sent to the LLM.
    pub settings: GenerationSettings,
    #[weave(skip)]
    #[serde(skip)]
    source: Option<Source>,
}

/// Errors of one prediction.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The LLM call failed.
    #[error(transparent)]
    Generator(#[from] crate::generator::GeneratorError),
    /// The formatting task failed (it panicked or was cancelled).
    #[error("formatting failed: {0}")]
    Formatter(String),
}

impl CodeGenerationPipeline {
    /// A pipeline calling `generator`.
    pub fn llm(generator: Generator) -> Self {
        CodeGenerationPipeline {
            model_name: generator.config().model.clone(),
            formatter: CodeFormatter::default(),
            settings: generator.config().settings.clone(),
            source: Some(Source::Llm(Box::new(generator))),
        }
    }

    /// A pipeline returning the dataset's reference solutions.
    pub fn reference() -> Self {
        CodeGenerationPipeline {
            model_name: "reference".into(),
            formatter: CodeFormatter::default(),
            settings: GenerationSettings::default(),
            source: Some(Source::Reference),
        }
    }
}

#[weave::ops]
impl CodeGenerationPipeline {
    /// Generates, assembles and formats the function for one HumanEval problem.
    #[weave::op]
    pub async fn predict(&self, problem: &Problem) -> Result<String, PredictError> {
        let generated = self.generate_code(problem).await?;
        // Formatting is CPU work: run it on the blocking pool, inside this call, so that other
        // rows keep going.
        let this = self.clone();
        let (prompt, entry_point) = (problem.prompt.clone(), problem.entry_point.clone());
        let ctx = weave::context::current();
        tokio::task::spawn_blocking(move || {
            weave::context::in_scope(ctx, || {
                let assembly = this.assemble(&prompt, &entry_point, &generated);
                this.formatter
                    .orchestrate(&assembly.code, &mut |stage, code| {
                        this.run_stage(stage, code)
                    })
                    .code
            })
        })
        .await
        .map_err(|e| PredictError::Formatter(e.to_string()))
    }

    /// Asks the LLM for the function (structured output), adding token usage to the trace.
    #[weave::op(skip(problem))]
    pub async fn generate_code(&self, problem: &Problem) -> Result<GeneratedCode, PredictError> {
        match &self.source {
            Some(Source::Llm(g)) => {
                let generation = g.generate(&problem.prompt).await?;
                if let Some(u) = generation.usage {
                    weave::add_usage(&generation.model, u);
                }
                Ok(generation.code)
            }
            _ => Ok(reference_parts(problem)),
        }
    }

    /// Puts the generated parts together after what the prompt defines before the function;
    /// the notes say what had to be decided.
    #[weave::op]
    pub fn assemble(&self, prompt: &str, entry_point: &str, generated: &GeneratedCode) -> Assembly {
        assemble(prompt, entry_point, generated)
    }

    /// Runs one formatter stage as its own traced op.
    fn run_stage(&self, stage: Stage, code: &str) -> StepOutput {
        match stage {
            Stage::Prepare => self.prepare(code),
            Stage::Step(FormatStep::RemoveUnused) => self.remove_unused(code),
            Stage::Step(FormatStep::SortImports) => self.sort_imports(code),
            Stage::Step(FormatStep::AddMissingTypingImports) => {
                self.add_missing_typing_imports(code)
            }
            Stage::Step(FormatStep::FormatPep8) => self.format_pep8(code),
        }
    }

    /// Checks that the code parses, repairing its indentation once if needed.
    #[weave::op]
    pub fn prepare(&self, code: &str) -> StepOutput {
        self.formatter.run_stage(Stage::Prepare, code)
    }

    /// Removes unused imports and variables (Ruff F401, F841).
    #[weave::op]
    pub fn remove_unused(&self, code: &str) -> StepOutput {
        self.formatter
            .run_stage(Stage::Step(FormatStep::RemoveUnused), code)
    }

    /// Sorts imports (Ruff I001).
    #[weave::op]
    pub fn sort_imports(&self, code: &str) -> StepOutput {
        self.formatter
            .run_stage(Stage::Step(FormatStep::SortImports), code)
    }

    /// Adds `from typing import ...` for undefined typing names (Ruff F821).
    #[weave::op]
    pub fn add_missing_typing_imports(&self, code: &str) -> StepOutput {
        self.formatter
            .run_stage(Stage::Step(FormatStep::AddMissingTypingImports), code)
    }

    /// PEP 8 formatting (ruff_python_formatter).
    #[weave::op]
    pub fn format_pep8(&self, code: &str) -> StepOutput {
        self.formatter
            .run_stage(Stage::Step(FormatStep::FormatPep8), code)
    }
}

/// The canonical solution split the way an LLM returns code: the prompt's signature and
/// docstring, then the body.
fn reference_parts(problem: &Problem) -> GeneratedCode {
    GeneratedCode {
        function_signature: String::new(),
        function_args_with_docstring_within_triple_quotes: String::new(),
        code_logic: problem.canonical_solution.clone(),
    }
}

impl weave::eval::Predict<Problem> for CodeGenerationPipeline {
    type Output = String;
    async fn predict_row(&self, row: &Problem) -> Result<String, weave::eval::BoxError> {
        Ok(CodeGenerationPipeline::predict(self, row).await?)
    }
}

/// Runs the generated code against the problem's tests in the sandbox:
/// `code + "\n" + test + "\n" + check(entry_point)`.
#[weave::op(skip(sandbox))]
pub async fn score_humaneval_test(problem: &Problem, output: &str, sandbox: &Sandbox) -> Verdict {
    weave::add_attributes(serde_json::json!({
        "sandbox": {
            "protections": sandbox.protections().active(),
            "missing": sandbox.protections().missing(),
            "mode": sandbox.config().mode,
            "timeout_s": sandbox.config().timeout.as_secs_f64(),
        }
    }));
    let standalone = Problem {
        prompt: String::new(),
        ..problem.clone()
    };
    crate::humaneval::score_humaneval_test_async(&standalone, output, sandbox).await
}

/// The scorer used by the evaluation: `passed` from [`score_humaneval_test`].
pub struct HumanEvalScorer {
    sandbox: Sandbox,
}

impl HumanEvalScorer {
    /// A scorer running programs in `sandbox`.
    pub fn new(sandbox: Sandbox) -> Self {
        HumanEvalScorer { sandbox }
    }
}

impl weave::eval::Scorer<Problem, String> for HumanEvalScorer {
    fn name(&self) -> &str {
        "score_humaneval_test"
    }

    fn score(&self, row: Arc<Problem>, output: Arc<String>) -> weave::eval::ScoreFuture {
        let sandbox = self.sandbox.clone();
        Box::pin(async move {
            let v = score_humaneval_test(&row, &output, &sandbox).await;
            Ok(serde_json::json!({"passed": v.passed, "result": v.result}))
        })
    }
}

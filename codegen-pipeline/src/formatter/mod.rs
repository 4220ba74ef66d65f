//! Code formatter for generated Python, built on Ruff's crates (in process, no
//! Python needed).
//!
//! It does the job of the seed's Python `CodeFormatter` (autoflake + isort +
//! autopep8 + `add_imports`) in steps that can each be called (and traced) on
//! their own:
//!
//! 1. [`CodeFormatter::remove_unused`]: Ruff's fixes for F401 (unused import) and F841 (unused
//!    local variable, an unsafe fix, enabled here).
//! 2. [`CodeFormatter::sort_imports`]: Ruff's fix for I001 (isort-style import sorting).
//! 3. [`CodeFormatter::add_missing_typing_imports`]: names that Ruff reports as undefined
//!    (F821) and that `typing` (or `collections`, see [`known_names`]) exports
//!    get an import line, then imports are sorted again.
//! 4. [`CodeFormatter::format_pep8`]: Ruff's formatter (Black style, PEP 8 compliant).
//!
//! [`CodeFormatter::orchestrate`] is the one place that runs them: first
//! [`Stage::Prepare`] (source that does not parse gets one repair attempt,
//! [`repair_indentation`]: leading tabs become four spaces and common
//! indentation is removed; if it still does not parse, formatting stops and the
//! code is returned unchanged with the reason), then [`FormatStep::ALL`] in
//! order. Each stage returns a [`StepOutput`] (`{code, changed, note}`); a step
//! that fails leaves the code as it was and says why. [`CodeFormatter::format_all`]
//! runs the stages directly; the pipeline runs each one as a traced op.
//!
//! [`assemble`] builds the program to format from a HumanEval prompt and the
//! [`GeneratedCode`](crate::generator::GeneratedCode) the model returned.

mod assemble;
pub mod known_names;
mod steps;
mod text;

use serde::{Deserialize, Serialize};

pub use assemble::{assemble, Assembly};

/// Errors of the formatter steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The source is not valid Python.
    #[error("invalid syntax at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column (in characters) of the first error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A rule code in the settings is unknown to Ruff.
    #[error("unknown rule code `{0}`")]
    UnknownRule(String),
    /// Ruff could not apply its fixes (for example a fix would have broken the
    /// code).
    #[error("ruff could not apply fixes: {0}")]
    Fix(String),
    /// Ruff's formatter failed.
    #[error("ruff formatter failed: {0}")]
    Format(String),
}

/// Rule code: unused import.
pub const UNUSED_IMPORT: &str = "F401";
/// Rule code: unused local variable.
pub const UNUSED_VARIABLE: &str = "F841";
/// Rule code: unsorted imports.
pub const UNSORTED_IMPORTS: &str = "I001";
/// Rule code: undefined name.
pub const UNDEFINED_NAME: &str = "F821";

/// The rule codes enabled by default.
pub const DEFAULT_RULES: [&str; 4] = [
    UNUSED_IMPORT,
    UNUSED_VARIABLE,
    UNSORTED_IMPORTS,
    UNDEFINED_NAME,
];

/// Default maximum line length (Black's and Ruff's).
pub const DEFAULT_LINE_LENGTH: u16 = 88;

/// One step of [`CodeFormatter::format_all`], in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatStep {
    /// [`CodeFormatter::remove_unused`].
    RemoveUnused,
    /// [`CodeFormatter::sort_imports`].
    SortImports,
    /// [`CodeFormatter::add_missing_typing_imports`].
    AddMissingTypingImports,
    /// [`CodeFormatter::format_pep8`].
    FormatPep8,
}

impl FormatStep {
    /// All steps, in the order [`CodeFormatter::format_all`] runs them.
    pub const ALL: [FormatStep; 4] = [
        FormatStep::RemoveUnused,
        FormatStep::SortImports,
        FormatStep::AddMissingTypingImports,
        FormatStep::FormatPep8,
    ];

    /// The step's name, usable as an op name (`remove_unused`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FormatStep::RemoveUnused => "remove_unused",
            FormatStep::SortImports => "sort_imports",
            FormatStep::AddMissingTypingImports => "add_missing_typing_imports",
            FormatStep::FormatPep8 => "format_pep8",
        }
    }
}

impl std::fmt::Display for FormatStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stage of [`CodeFormatter::orchestrate`]: the parse check (and repair),
/// then the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// [`CodeFormatter::prepare`].
    Prepare,
    /// One of [`FormatStep::ALL`].
    Step(FormatStep),
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Prepare => f.write_str("prepare"),
            Stage::Step(s) => s.fmt(f),
        }
    }
}

/// What one stage did: the code after it, whether it changed, and a note (what
/// it did, or why it left the code as it was).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutput {
    /// The code after the stage (the input when the stage could not run).
    pub code: String,
    /// Whether `code` differs from the input.
    pub changed: bool,
    /// What the stage did (`added from typing import List`, a repair), if
    /// anything worth saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the stage left the code unchanged (it failed), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Result of [`CodeFormatter::format_all`] and [`CodeFormatter::orchestrate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FormatOutcome {
    /// The formatted code, or the input unchanged if it could not be parsed.
    pub code: String,
    /// Whether `code` differs from the input.
    pub changed: bool,
    /// Why the input was returned unchanged (it does not parse, even after
    /// the indentation repair), or `None` on success.
    pub error: Option<String>,
    /// What the steps did, e.g. the repair, added imports, or a step that was
    /// skipped because it failed.
    pub notes: Vec<String>,
}

/// The formatter and its settings. A weave model: the pipeline stores it as a ref to its own
/// versioned object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, weave::Model)]
pub struct CodeFormatter {
    /// Maximum line length for the formatter and the import sorter.
    pub line_length: u16,
    /// Enabled Ruff rule codes. Of these, `F401`/`F841` drive
    /// [`Self::remove_unused`], `I001` drives [`Self::sort_imports`] and
    /// `F821` drives [`Self::add_missing_typing_imports`]; other codes are
    /// accepted and ignored.
    pub rules: Vec<String>,
}

impl Default for CodeFormatter {
    fn default() -> Self {
        Self {
            line_length: DEFAULT_LINE_LENGTH,
            rules: DEFAULT_RULES.iter().map(|r| r.to_string()).collect(),
        }
    }
}

impl CodeFormatter {
    /// Whether `code` is enabled (after checking every configured code is
    /// known to Ruff).
    fn enabled(&self, code: &str) -> Result<bool, FormatError> {
        let mut found = false;
        for rule in &self.rules {
            steps::parse_rule(rule)?;
            found |= rule.trim().eq_ignore_ascii_case(code);
        }
        Ok(found)
    }

    fn rules_among(&self, codes: &[&str]) -> Result<Vec<ruff_linter::registry::Rule>, FormatError> {
        let mut rules = Vec::new();
        for code in codes {
            if self.enabled(code)? {
                rules.push(steps::parse_rule(code)?);
            }
        }
        Ok(rules)
    }

    /// Removes unused imports (F401) and unused local variables (F841) with
    /// Ruff's fixes. An unused variable assigned from a call keeps the call.
    pub fn remove_unused(&self, src: &str) -> Result<String, FormatError> {
        let rules = self.rules_among(&[UNUSED_IMPORT, UNUSED_VARIABLE])?;
        steps::apply_fixes(src, &rules, self.line_length)
    }

    /// Sorts and groups imports with Ruff's isort implementation (I001).
    pub fn sort_imports(&self, src: &str) -> Result<String, FormatError> {
        let rules = self.rules_among(&[UNSORTED_IMPORTS])?;
        steps::apply_fixes(src, &rules, self.line_length)
    }

    /// Names that Ruff reports as undefined (F821), in order of first use.
    pub fn undefined_names(&self, src: &str) -> Result<Vec<String>, FormatError> {
        if !self.enabled(UNDEFINED_NAME)? {
            steps::check_syntax(src)?;
            return Ok(Vec::new());
        }
        steps::undefined_names(src)
    }

    /// Adds `from typing import ...` (and `from collections import ...`) for
    /// the undefined names those modules export, then sorts the imports again.
    pub fn add_missing_typing_imports(&self, src: &str) -> Result<String, FormatError> {
        self.add_missing_imports_detailed(src).map(|(code, _)| code)
    }

    /// Like [`Self::add_missing_typing_imports`], also returning the import
    /// lines that were added.
    pub fn add_missing_imports_detailed(
        &self,
        src: &str,
    ) -> Result<(String, Vec<String>), FormatError> {
        let names = self.undefined_names(src)?;
        let missing = steps::missing_imports(&names);
        if missing.is_empty() {
            return Ok((src.to_string(), Vec::new()));
        }
        let added: Vec<String> = missing
            .iter()
            .map(|(module, names)| format!("from {module} import {}", names.join(", ")))
            .collect();
        let block: String = added.iter().map(|line| format!("{line}\n")).collect();
        let with_imports = steps::insert_imports(src, &block)?;
        // Merge with the existing imports and sort; also when I001 is not
        // among the configured rules, since the inserted lines need it.
        let sorted = steps::apply_fixes(
            &with_imports,
            &[steps::parse_rule(UNSORTED_IMPORTS)?],
            self.line_length,
        )?;
        Ok((sorted, added))
    }

    /// Formats the code with Ruff's formatter (Black style) at
    /// [`Self::line_length`].
    pub fn format_pep8(&self, src: &str) -> Result<String, FormatError> {
        steps::format_source(src, self.line_length)
    }

    /// Runs one step.
    pub fn apply(&self, step: FormatStep, src: &str) -> Result<String, FormatError> {
        match step {
            FormatStep::RemoveUnused => self.remove_unused(src),
            FormatStep::SortImports => self.sort_imports(src),
            FormatStep::AddMissingTypingImports => self.add_missing_typing_imports(src),
            FormatStep::FormatPep8 => self.format_pep8(src),
        }
    }

    /// Makes sure `src` parses, repairing its indentation once if needed.
    /// Returns the code to format and a note when it was repaired, or the
    /// reason it cannot be formatted.
    pub fn prepare(&self, src: &str) -> Result<(String, Option<String>), FormatError> {
        match steps::check_syntax(src) {
            Ok(()) => Ok((src.to_string(), None)),
            Err(first) => {
                let repaired = repair_indentation(src);
                if repaired != src && steps::check_syntax(&repaired).is_ok() {
                    Ok((
                        repaired,
                        Some(format!(
                            "repaired indentation (tabs to spaces) after: {first}"
                        )),
                    ))
                } else {
                    Err(first)
                }
            }
        }
    }

    /// Runs one stage. Never fails: a stage that cannot run returns the code
    /// unchanged with the reason in [`StepOutput::error`].
    pub fn run_stage(&self, stage: Stage, src: &str) -> StepOutput {
        let result = match stage {
            Stage::Prepare => self.prepare(src),
            Stage::Step(FormatStep::AddMissingTypingImports) => {
                self.add_missing_imports_detailed(src).map(|(code, added)| {
                    let note = (!added.is_empty()).then(|| format!("added {}", added.join("; ")));
                    (code, note)
                })
            }
            Stage::Step(step) => self.apply(step, src).map(|code| (code, None)),
        };
        match result {
            Ok((code, note)) => StepOutput {
                changed: code != src,
                code,
                note,
                error: None,
            },
            Err(error) => {
                tracing::debug!(%error, %stage, "formatter stage left the code unchanged");
                StepOutput {
                    code: src.to_string(),
                    changed: false,
                    note: None,
                    error: Some(error.to_string()),
                }
            }
        }
    }

    /// The one orchestration: [`Stage::Prepare`], then each of
    /// [`FormatStep::ALL`], each run by `run` (which gets the stage and the
    /// current code). A step that fails is skipped (and noted); source that does
    /// not parse, even after the repair, is returned unchanged with the reason in
    /// [`FormatOutcome::error`] and no step runs.
    pub fn orchestrate(
        &self,
        src: &str,
        run: &mut dyn FnMut(Stage, &str) -> StepOutput,
    ) -> FormatOutcome {
        let mut notes = Vec::new();
        let prepared = run(Stage::Prepare, src);
        if let Some(error) = prepared.error {
            return FormatOutcome {
                code: src.to_string(),
                changed: false,
                error: Some(error),
                notes,
            };
        }
        notes.extend(prepared.note);
        let mut code = prepared.code;
        for step in FormatStep::ALL {
            let out = run(Stage::Step(step), &code);
            match (&out.error, &out.note) {
                (Some(error), _) => notes.push(format!("{step}: skipped: {error}")),
                (None, Some(note)) => notes.push(format!("{step}: {note}")),
                (None, None) if out.changed => notes.push(format!("{step}: changed")),
                (None, None) => {}
            }
            if out.error.is_none() {
                code = out.code;
            }
        }
        FormatOutcome {
            changed: code != src,
            code,
            error: None,
            notes,
        }
    }

    /// Runs every stage ([`CodeFormatter::orchestrate`] with
    /// [`CodeFormatter::run_stage`]).
    pub fn format_all(&self, src: &str) -> FormatOutcome {
        self.orchestrate(src, &mut |stage, code| self.run_stage(stage, code))
    }
}

/// Replaces the tabs in the leading whitespace of each line by four spaces
/// and removes the indentation common to all lines (text inside multi-line
/// strings is left alone). This is the repair [`CodeFormatter::prepare`] tries
/// once when the source does not parse.
pub fn repair_indentation(src: &str) -> String {
    let keep_no_final_newline = !src.ends_with('\n');
    let mut out = text::dedent(src);
    if keep_no_final_newline {
        out.pop();
    }
    out
}

/// Checks that `src` parses as a Python module.
pub fn check_syntax(src: &str) -> Result<(), FormatError> {
    steps::check_syntax(src)
}

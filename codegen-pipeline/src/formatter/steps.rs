//! The formatter steps that call Ruff's crates in process.

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::path::Path;

use ruff_linter::line_width::LineLength;
use ruff_linter::linter::{lint_fix, lint_only, ParseSource};
use ruff_linter::registry::Rule;
use ruff_linter::settings::flags;
use ruff_linter::settings::types::UnsafeFixes;
use ruff_linter::settings::LinterSettings;
use ruff_linter::source_kind::SourceKind;
use ruff_python_ast::{PySourceType, PythonVersion, Stmt};
use ruff_python_formatter::{format_module_source, PyFormatOptions};
use ruff_python_parser::{parse_module, ParseError};
use ruff_text_size::Ranged;

use super::known_names::module_for;
use super::FormatError;

/// The Python version the code is checked and formatted for (the sandbox runs
/// CPython 3.11).
pub(crate) const TARGET_VERSION: PythonVersion = PythonVersion::PY311;

/// File name reported to Ruff. It only matters for per-file settings and
/// messages; nothing is read from or written to disk.
const VIRTUAL_PATH: &str = "generated.py";

/// Checks that `src` parses as a Python module.
pub(crate) fn check_syntax(src: &str) -> Result<(), FormatError> {
    parse_module(src)
        .map(drop)
        .map_err(|error| syntax_error(src, &error))
}

/// Converts a parse error into [`FormatError::Syntax`] with a line and column.
fn syntax_error(src: &str, error: &ParseError) -> FormatError {
    let offset = error.location.start().to_usize().min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    FormatError::Syntax {
        line,
        column,
        message: error.error.to_string(),
    }
}

/// Parses a rule code such as `"F401"`.
pub(crate) fn parse_rule(code: &str) -> Result<Rule, FormatError> {
    Rule::from_code(code.trim()).map_err(|_| FormatError::UnknownRule(code.to_string()))
}

/// Linter settings that enable exactly `rules`. The settings do not depend on
/// the working directory: no `src` roots, so isort only knows the standard
/// library (first section) and everything else (third party).
fn linter_settings(rules: &[Rule], line_length: u16) -> LinterSettings {
    let mut settings =
        LinterSettings::for_rules(rules.iter().copied()).with_target_version(TARGET_VERSION);
    settings.src = Vec::new();
    if let Ok(length) = LineLength::try_from(line_length) {
        settings.line_length = length;
    }
    settings
}

fn source_kind(src: &str) -> SourceKind {
    SourceKind::Python {
        code: src.to_string(),
        is_stub: false,
    }
}

/// Applies the fixes of `rules` (unsafe fixes included) until the code is
/// stable, and returns the fixed code.
pub(crate) fn apply_fixes(
    src: &str,
    rules: &[Rule],
    line_length: u16,
) -> Result<String, FormatError> {
    check_syntax(src)?;
    if rules.is_empty() {
        return Ok(src.to_string());
    }
    let settings = linter_settings(rules, line_length);
    let kind = source_kind(src);
    let result = lint_fix(
        Path::new(VIRTUAL_PATH),
        None,
        flags::Noqa::Enabled,
        UnsafeFixes::Enabled,
        &settings,
        &kind,
        PySourceType::Python,
    )
    .map_err(|e| FormatError::Fix(e.to_string()))?;
    let fixed = result.transformed.source_code().to_string();
    // Ruff already refuses fixes that break a valid file; this is a cheap guard.
    check_syntax(&fixed).map_err(|e| FormatError::Fix(format!("fix broke the code: {e}")))?;
    Ok(fixed)
}

/// Names reported by F821 (undefined name), in order of first use, without
/// duplicates.
pub(crate) fn undefined_names(src: &str) -> Result<Vec<String>, FormatError> {
    check_syntax(src)?;
    let settings = linter_settings(&[Rule::UndefinedName], 88);
    let kind = source_kind(src);
    let result = lint_only(
        Path::new(VIRTUAL_PATH),
        None,
        &settings,
        flags::Noqa::Enabled,
        &kind,
        PySourceType::Python,
        ParseSource::None,
    );
    let mut names: Vec<String> = Vec::new();
    for diagnostic in &result.diagnostics {
        if diagnostic.secondary_code().map(|c| c.as_str()) != Some("F821") {
            continue;
        }
        let from_range = diagnostic
            .range()
            .and_then(|r| src.get(r.start().to_usize()..r.end().to_usize()))
            .filter(|s| is_identifier(s))
            .map(str::to_string);
        // Names inside string annotations have the string's range; the message
        // ("Undefined name `X`") names them in backticks.
        let name = from_range.or_else(|| {
            let message = diagnostic.concise_message().to_string();
            message
                .split('`')
                .nth(1)
                .filter(|s| is_identifier(s))
                .map(str::to_string)
        });
        if let Some(name) = name {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Groups the known names among `names` by module: `{"typing": ["List"]}`.
pub(crate) fn missing_imports(names: &[String]) -> BTreeMap<&'static str, Vec<String>> {
    let mut by_module: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for name in names {
        if let Some(module) = module_for(name) {
            let entry = by_module.entry(module).or_default();
            if !entry.contains(name) {
                entry.push(name.clone());
            }
        }
    }
    for entry in by_module.values_mut() {
        entry.sort();
    }
    by_module
}

/// Inserts `lines` (each a full import statement with a trailing newline) at
/// the top of the module: after the module docstring and `__future__`
/// imports, right before the first other statement, so that the new imports
/// join the existing top import block (if any) and isort can merge them.
pub(crate) fn insert_imports(src: &str, lines: &str) -> Result<String, FormatError> {
    let parsed = parse_module(src).map_err(|e| syntax_error(src, &e))?;
    let body = &parsed.syntax().body;
    let mut index = 0;
    if let Some(Stmt::Expr(expr)) = body.first() {
        if expr.value.is_string_literal_expr() {
            index = 1;
        }
    }
    while let Some(Stmt::ImportFrom(import)) = body.get(index) {
        if import.module.as_ref().map(|m| m.as_str()) == Some("__future__") {
            index += 1;
        } else {
            break;
        }
    }
    let offset = match body.get(index) {
        Some(stmt) => {
            // Start of the statement's line.
            let start = stmt.start().to_usize().min(src.len());
            src.get(..start)
                .and_then(|s| s.rfind('\n'))
                .map_or(0, |i| i + 1)
        }
        None => src.len(),
    };
    let mut out = String::with_capacity(src.len() + lines.len() + 1);
    out.push_str(&src[..offset]);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(lines);
    out.push_str(&src[offset..]);
    Ok(out)
}

/// Formats `src` with Ruff's formatter (Black-compatible style).
pub(crate) fn format_source(src: &str, line_length: u16) -> Result<String, FormatError> {
    check_syntax(src)?;
    let width = NonZeroU16::new(line_length)
        .or(NonZeroU16::new(88))
        .ok_or_else(|| FormatError::Format("invalid line length".to_string()))?;
    let options = PyFormatOptions::from_source_type(PySourceType::Python)
        .with_line_width(width.into())
        .with_target_version(TARGET_VERSION);
    format_module_source(src, options)
        .map(|printed| printed.into_code())
        .map_err(|e| FormatError::Format(e.to_string()))
}

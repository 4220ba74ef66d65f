//! Indentation helpers that know about multi-line string literals.
//!
//! Python source is re-indented line by line, but a line that starts *inside* a
//! multi-line string (a triple-quoted string, or a string continued with a
//! backslash) is string content: changing its leading whitespace would change
//! the program. The lines to leave alone are found with Ruff's lexer, which
//! keeps going after errors, so badly indented code is handled too.

use ruff_python_parser::{parse_unchecked, Mode, ParseOptions};
use ruff_text_size::Ranged;

/// Number of spaces a leading tab is replaced by.
pub(crate) const TAB_WIDTH: usize = 4;

/// One physical line of a source text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// The line without its line terminator.
    pub(crate) text: &'a str,
    /// Whether the line starts inside a multi-line token (string content).
    pub(crate) protected: bool,
}

impl Line<'_> {
    /// Whether the line holds only whitespace.
    pub(crate) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Width of the leading whitespace (tabs counted as [`TAB_WIDTH`] columns).
    pub(crate) fn indent_width(&self) -> usize {
        leading_width(self.text)
    }
}

/// Width of the leading whitespace of `line`, tabs counted as [`TAB_WIDTH`].
pub(crate) fn leading_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { TAB_WIDTH } else { 1 })
        .sum()
}

/// Splits `src` into lines (accepting `\n` and `\r\n`) and marks the ones that
/// start inside a multi-line token.
pub(crate) fn lines(src: &str) -> Vec<Line<'_>> {
    let parsed = parse_unchecked(src, ParseOptions::from(Mode::Module));
    let multiline: Vec<(usize, usize)> = parsed
        .tokens()
        .iter()
        .map(|token| {
            let range = token.range();
            (range.start().to_usize(), range.end().to_usize())
        })
        .filter(|&(start, end)| src.get(start..end).is_some_and(|t| t.contains('\n')))
        .collect();

    let mut out = Vec::new();
    let mut offset = 0usize;
    for raw in src.split_inclusive('\n') {
        let text = raw.strip_suffix('\n').unwrap_or(raw);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let protected = multiline
            .iter()
            .any(|&(start, end)| start < offset && offset < end);
        out.push(Line { text, protected });
        offset += raw.len();
    }
    out
}

/// Joins lines with `\n`, ending with a newline when there is any content.
fn join(lines: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Replaces every tab in the leading whitespace of code lines by
/// [`TAB_WIDTH`] spaces. Lines inside multi-line strings are left alone.
pub(crate) fn expand_leading_tabs(src: &str) -> String {
    if !src.contains('\t') {
        return src.to_string();
    }
    let keep_final_newline = src.ends_with('\n');
    let mut out = join(lines(src).into_iter().map(|line| {
        if line.protected {
            return line.text.to_string();
        }
        let rest = line.text.trim_start_matches([' ', '\t']);
        let lead = &line.text[..line.text.len() - rest.len()];
        let mut new = lead.replace('\t', &" ".repeat(TAB_WIDTH));
        new.push_str(rest);
        new
    }));
    if !keep_final_newline {
        out.pop();
    }
    out
}

/// Removes the common leading whitespace of the code lines (after expanding
/// tabs), like Python's `textwrap.dedent`, but leaves string content alone.
/// Blank lines become empty. The result ends with a newline.
pub(crate) fn dedent(src: &str) -> String {
    let expanded = expand_leading_tabs(src);
    let lines = lines(&expanded);
    let common = lines
        .iter()
        .filter(|l| !l.protected && !l.is_blank())
        .map(Line::indent_width)
        .min()
        .unwrap_or(0);
    join(lines.into_iter().map(|line| {
        if line.protected {
            line.text.to_string()
        } else if line.is_blank() {
            String::new()
        } else {
            line.text[common.min(line.text.len())..].to_string()
        }
    }))
}

/// Prefixes every non-blank code line with `prefix`. String content is left
/// alone. The result ends with a newline.
pub(crate) fn indent(src: &str, prefix: &str) -> String {
    join(lines(src).into_iter().map(|line| {
        if line.protected {
            line.text.to_string()
        } else if line.is_blank() {
            String::new()
        } else {
            format!("{prefix}{}", line.text)
        }
    }))
}

/// Drops the lines that open or close a Markdown code fence (```` ``` ````).
pub(crate) fn strip_code_fences(src: &str) -> String {
    if !src.contains("```") {
        return src.to_string();
    }
    join(
        lines(src)
            .into_iter()
            .filter(|l| l.protected || !l.text.trim_start().starts_with("```"))
            .map(|l| l.text.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_keeps_string_content() {
        let src = "    x = '''\n  keep\n'''\n    y = 1\n";
        assert_eq!(dedent(src), "x = '''\n  keep\n'''\ny = 1\n");
    }

    #[test]
    fn indent_skips_blank_and_string_lines() {
        let src = "s = \"\"\"a\nb\"\"\"\n\nreturn s\n";
        assert_eq!(
            indent(src, "    "),
            "    s = \"\"\"a\nb\"\"\"\n\n    return s\n"
        );
    }

    #[test]
    fn tabs_expand_only_in_leading_whitespace() {
        assert_eq!(
            expand_leading_tabs("if x:\n\ty = 'a\tb'\n"),
            "if x:\n    y = 'a\tb'\n"
        );
    }
}

//! Terminal output: colour (only on a TTY, `NO_COLOR` honoured), a small column table that fits
//! [`line_width()`] columns, and short renderings of times, latencies, tokens and JSON values.

use std::io::{self, IsTerminal, Write};

use serde_json::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
use weave_types::{CallStatus, ObjSchema};

/// Width when neither `COLUMNS` nor the terminal says (e.g. output to a pipe).
pub const DEFAULT_WIDTH: usize = 100;
const MIN_WIDTH: usize = DEFAULT_WIDTH;
const MAX_WIDTH: usize = 240;

/// Every line we print fits this many columns (except values shown whole on request):
/// `$COLUMNS` if set, else the terminal's width when stdout is one, else
/// [`DEFAULT_WIDTH`]; at least [`DEFAULT_WIDTH`] (the narrowest layout the tables have),
/// at most 240.
pub fn line_width() -> usize {
    static WIDTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WIDTH.get_or_init(|| {
        let terminal = || {
            io::stdout()
                .is_terminal()
                .then(|| console::Term::stdout().size_checked())
                .flatten()
                .map(|(_rows, cols)| cols as usize)
        };
        choose_width(std::env::var("COLUMNS").ok().as_deref(), terminal)
    })
}

fn choose_width(columns: Option<&str>, terminal: impl FnOnce() -> Option<usize>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(terminal)
        .unwrap_or(DEFAULT_WIDTH)
        .clamp(MIN_WIDTH, MAX_WIDTH)
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn new(choice: ColorChoice) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let on = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && io::stdout().is_terminal(),
        };
        Style { on }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.on && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }

    /// Applies a named colour.
    pub fn apply(&self, c: Color, s: &str) -> String {
        match c {
            Color::Plain => s.to_string(),
            Color::Bold => self.bold(s),
            Color::Dim => self.dim(s),
            Color::Red => self.red(s),
            Color::Green => self.green(s),
            Color::Yellow => self.yellow(s),
            Color::Cyan => self.cyan(s),
        }
    }
}

/// A colour for a table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Plain,
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

/// Display width of `s`.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cuts `s` to at most `max` columns, ending in `…` when cut. Newlines become spaces.
pub fn trunc(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    if width(&flat) <= max {
        return flat;
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in flat.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Cuts `s` to at most `max` columns, keeping its end: `…/tests/cli.rs:12`.
pub fn trunc_left(s: &str, max: usize) -> String {
    if width(s) <= max || max == 0 {
        return trunc(s, max);
    }
    let mut kept: Vec<char> = Vec::new();
    let mut w = 1;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw > max {
            break;
        }
        kept.push(c);
        w += cw;
    }
    let mut out = String::from("…");
    out.extend(kept.iter().rev());
    out
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let n = w.saturating_sub(width(s));
    if right {
        format!("{}{s}", " ".repeat(n))
    } else {
        format!("{s}{}", " ".repeat(n))
    }
}

/// One table cell.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    color: Color,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            color: Color::Plain,
        }
    }
    pub fn colored(text: impl Into<String>, color: Color) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::new(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::new(s)
    }
}

/// A table whose one flexible column shrinks so that lines fit [`line_width()`].
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    flex: Option<usize>,
    flex_left: bool,
    hide_empty: bool,
    rows: Vec<Vec<Cell>>,
    indent: usize,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            right: vec![false; headers.len()],
            flex: None,
            flex_left: false,
            hide_empty: false,
            rows: Vec::new(),
            indent: 0,
        }
    }

    /// Right-aligns column `i`.
    pub fn right(mut self, i: usize) -> Table {
        self.right[i] = true;
        self
    }

    /// Column `i` is cut to make lines fit.
    pub fn flex(mut self, i: usize) -> Table {
        self.flex = Some(i);
        self
    }

    /// Column `i` is cut at its start (for paths) to make lines fit.
    pub fn flex_left(mut self, i: usize) -> Table {
        self.flex = Some(i);
        self.flex_left = true;
        self
    }

    /// Leaves out columns that are empty in every row.
    pub fn hide_empty(mut self) -> Table {
        self.hide_empty = true;
        self
    }

    /// Indents every line.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn print(&self, out: &mut dyn Write, st: &Style) -> io::Result<()> {
        if self.hide_empty {
            let keep: Vec<usize> = (0..self.headers.len())
                .filter(|&i| {
                    Some(i) == self.flex
                        || self
                            .rows
                            .iter()
                            .any(|r| r.get(i).is_some_and(|c| !c.text.is_empty()))
                })
                .collect();
            if keep.len() < self.headers.len() {
                let pick = |v: &[Cell]| -> Vec<Cell> {
                    keep.iter().filter_map(|&i| v.get(i).cloned()).collect()
                };
                let t = Table {
                    headers: keep.iter().map(|&i| self.headers[i].clone()).collect(),
                    right: keep.iter().map(|&i| self.right[i]).collect(),
                    flex: self.flex.and_then(|f| keep.iter().position(|&i| i == f)),
                    flex_left: self.flex_left,
                    hide_empty: false,
                    rows: self.rows.iter().map(|r| pick(r)).collect(),
                    indent: self.indent,
                };
                return t.print(out, st);
            }
        }
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(width(&c.text));
            }
        }
        let total = |w: &[usize]| self.indent + w.iter().sum::<usize>() + 2 * (n - 1);
        if let Some(f) = self.flex {
            let over = total(&widths).saturating_sub(line_width());
            let min = width(&self.headers[f]).max(8);
            widths[f] = widths[f].saturating_sub(over).max(min);
        }
        let line = |cells: Vec<(String, Color)>| -> String {
            let mut s = " ".repeat(self.indent);
            let last = cells.len().saturating_sub(1);
            for (i, (text, color)) in cells.into_iter().enumerate() {
                let text = if self.flex_left && Some(i) == self.flex {
                    trunc_left(&text, widths[i])
                } else {
                    trunc(&text, widths[i])
                };
                let padded = if i == last && !self.right[i] {
                    text
                } else {
                    pad(&text, widths[i], self.right[i])
                };
                s.push_str(&st.apply(color, &padded));
                if i != last {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let header = line(
            self.headers
                .iter()
                .map(|h| (h.clone(), Color::Dim))
                .collect(),
        );
        writeln!(out, "{header}")?;
        for r in &self.rows {
            let cells = (0..n)
                .map(|i| {
                    r.get(i)
                        .map(|c| (c.text.clone(), c.color))
                        .unwrap_or((String::new(), Color::Plain))
                })
                .collect();
            writeln!(out, "{}", line(cells))?;
        }
        Ok(())
    }
}

/// `2025-05-01 12:03:04` in local time, from RFC 3339.
pub fn time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `2025-05-01 12:03` in local time, from RFC 3339.
pub fn time_short(rfc3339: &str) -> String {
    let t = time(rfc3339);
    match t.len() {
        19 => t[..16].to_string(),
        _ => t,
    }
}

/// `12ms`, `1.25s`, `2m03s`.
pub fn latency_ms(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.2}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Seconds (as evaluations record latency) to the same format.
pub fn latency_s(s: f64) -> String {
    latency_ms(Some((s * 1000.0).round() as i64))
}

/// Total tokens of a call summary's `usage`, if any.
pub fn tokens(summary: &Value) -> Option<u64> {
    let usage = summary.get("usage")?.as_object()?;
    let mut total = 0;
    for u in usage.values() {
        total += u["total_tokens"].as_u64().unwrap_or_else(|| {
            u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0)
        });
    }
    Some(total)
}

/// A number with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A JSON value on one line: strings bare when `bare_str`, else JSON.
pub fn inline(v: &Value, bare_str: bool) -> String {
    match v {
        Value::String(s) if bare_str => s.clone(),
        other => other.to_string(),
    }
}

/// A number: integers as such, others with up to 4 decimals.
pub fn number(x: f64) -> String {
    number_prec(x, 4)
}

/// A number: integers as such, others with up to `prec` decimals.
pub fn number_prec(x: f64, prec: usize) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        let s = format!("{x:.prec$}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }
}

/// A score or metric for a table: booleans as ✓/✗, numbers short, objects as `k=v`.
pub fn score(v: &Value) -> String {
    match v {
        Value::Bool(true) => "✓".into(),
        Value::Bool(false) => "✗".into(),
        Value::Number(n) => n.as_f64().map(number).unwrap_or_else(|| n.to_string()),
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", score(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(_) => v.to_string(),
    }
}

/// `name:vN` of an object version.
pub fn label(o: &ObjSchema) -> String {
    format!("{}:v{}", o.object_id, o.version_index)
}

/// A ref string shortened to `name:digest8` (`table:digest8` for tables).
pub fn short_ref(s: &str) -> Option<String> {
    let r = weave_types::WeaveRef::parse(s).ok()?;
    let name = if r.name.is_empty() {
        r.kind.as_str()
    } else {
        r.name.as_str()
    };
    Some(format!("{name}:{}", &r.digest[..r.digest.len().min(8)]))
}

/// The colour of a call status.
pub fn status_color(s: CallStatus) -> Color {
    match s {
        CallStatus::Success => Color::Green,
        CallStatus::Error => Color::Red,
        CallStatus::DescendantError => Color::Yellow,
        CallStatus::Running => Color::Cyan,
        CallStatus::Interrupted => Color::Yellow,
    }
}

/// A value on one line, with refs shown by `ref_label` (`name:vN`).
pub fn inline_value(v: &Value, ref_label: &dyn Fn(&str) -> String) -> String {
    match v {
        Value::String(s) if s.starts_with("weave:///") => ref_label(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| inline_value(x, ref_label))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", inline_value(v, ref_label)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Pretty JSON, with long strings cut unless `full`; every line indented by `indent`.
pub fn block(v: &Value, indent: usize, full: bool) -> String {
    let shown = if full {
        v.clone()
    } else {
        cut_strings(v, 2000)
    };
    let text = serde_json::to_string_pretty(&shown).unwrap_or_else(|_| v.to_string());
    let pad = " ".repeat(indent);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cut_strings(v: &Value, max: usize) -> Value {
    match v {
        Value::String(s) if s.chars().count() > max => {
            let head: String = s.chars().take(max).collect();
            Value::String(format!(
                "{head}… ({} more chars; --full shows all)",
                s.chars().count() - max
            ))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| cut_strings(x, max)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), cut_strings(x, max)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Pretty JSON to stdout, for `--json`.
pub fn json(out: &mut dyn Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_comes_from_columns_then_the_terminal() {
        assert_eq!(choose_width(Some("180"), || Some(120)), 180);
        assert_eq!(choose_width(Some(" 150 "), || None), 150);
        assert_eq!(choose_width(None, || Some(132)), 132);
        assert_eq!(choose_width(Some("wide"), || Some(132)), 132);
        assert_eq!(choose_width(Some("0"), || None), DEFAULT_WIDTH);
        assert_eq!(choose_width(None, || None), DEFAULT_WIDTH);
        assert_eq!(
            choose_width(Some("40"), || None),
            DEFAULT_WIDTH,
            "never narrower"
        );
        assert_eq!(choose_width(Some("1000"), || None), 240, "never wider");
    }

    #[test]
    fn trunc_cuts_with_ellipsis() {
        assert_eq!(trunc("hello", 10), "hello");
        assert_eq!(trunc("hello world", 6), "hello…");
        assert_eq!(trunc("a\nb", 5), "a b");
        assert_eq!(trunc_left("src/tests/cli.rs", 8), "…/cli.rs");
    }

    #[test]
    fn formats() {
        assert_eq!(latency_ms(Some(12)), "12ms");
        assert_eq!(latency_ms(Some(1250)), "1.25s");
        assert_eq!(latency_ms(Some(123_000)), "2m03s");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(number(0.8), "0.8");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(1.0 / 3.0), "0.3333");
    }

    #[test]
    fn refs_shorten() {
        assert_eq!(
            short_ref("weave:///e/p/object/M:abcdef0123456789").as_deref(),
            Some("M:abcdef01")
        );
        assert_eq!(
            short_ref("weave:///e/p/table/0123456789abcdef").as_deref(),
            Some("table:01234567")
        );
        assert_eq!(short_ref("nope"), None);
        let v = serde_json::json!({"m": "weave:///e/p/object/M:d", "n": [1, "x"]});
        assert_eq!(
            inline_value(&v, &|s| format!("<{s}>")),
            "{m: <weave:///e/p/object/M:d>, n: [1, \"x\"]}"
        );
    }
}

//! `weave calls`, `weave call`, `weave trace`, `weave export`.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use weave_types::{CallSchema, CallStatus};

use crate::db::{CallQuery, Db};
use crate::fmt::{self, status_color, Cell, Color, Style, Table};

/// Filters shared by `calls` and `export`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only calls of this op: a name, `name:vN`, or an op ref. A name matches the op of that
    /// name, else every op whose part after the last `.` is that name (`predict` matches
    /// `Model.predict`), else the same ignoring case. A name that matches no op is an error
    /// (exit status 1) listing the ops there are.
    #[arg(long, value_name = "OP")]
    pub op: Option<String>,
    /// Only calls of this trace (a trace id or any call id in it, or a unique prefix).
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Only direct children of this call.
    #[arg(long, value_name = "ID")]
    pub parent: Option<String>,
    /// Only root calls.
    #[arg(long)]
    pub roots: bool,
    /// Only calls that failed.
    #[arg(long)]
    pub errors: bool,
    /// Only calls started since: RFC 3339, `YYYY-MM-DD`, or an age like `30m`, `2h`, `7d`.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
}

impl FilterArgs {
    pub fn to_query(&self, db: &Db, limit: Option<usize>, oldest_first: bool) -> Result<CallQuery> {
        let ops = match &self.op {
            Some(op) if op.starts_with("weave:///") => vec![op.clone()],
            Some(op) if op.contains(':') => vec![db.resolve_object(op)?.uri()],
            Some(op) => db.match_op_names(op)?,
            None => Vec::new(),
        };
        let trace_id = match &self.trace {
            Some(t) => Some(db.resolve_call(t)?.trace_id),
            None => None,
        };
        let parent_id = match &self.parent {
            Some(p) => Some(db.resolve_call(p)?.id),
            None => None,
        };
        let since = match &self.since {
            Some(s) => Some(parse_since(s)?),
            None => None,
        };
        Ok(CallQuery {
            ops,
            trace_id,
            parent_id,
            roots: self.roots,
            errors: self.errors,
            since,
            limit,
            oldest_first,
        })
    }
}

/// `--since` to the stored timestamp format (RFC 3339 UTC, microseconds).
pub fn parse_since(s: &str) -> Result<String> {
    use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
    let s = s.trim();
    let t: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let local = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        match chrono::Local.from_local_datetime(&local).earliest() {
            Some(t) => t.with_timezone(&Utc),
            None => Utc.from_utc_datetime(&local),
        }
    } else {
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: i64 = match num.parse() {
            Ok(n) => n,
            Err(_) => bail!(
                "invalid --since `{s}`: expected RFC 3339, YYYY-MM-DD, or an age like 30m, 2h, 7d"
            ),
        };
        let secs = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => bail!("invalid --since `{s}`: unknown unit `{unit}` (use s, m, h, d or w)"),
        };
        Utc::now() - chrono::Duration::seconds(n.saturating_mul(secs))
    };
    Ok(t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub fn status_cell(c: &CallSchema) -> Cell {
    let s = c.status();
    Cell::colored(s.as_str(), status_color(s))
}

/// `weave calls`.
pub fn list(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    args: &FilterArgs,
    limit: usize,
    as_json: bool,
) -> Result<()> {
    let q = args.to_query(db, Some(limit), false)?;
    let calls = db.calls(&q)?;
    if as_json {
        return fmt::json(out, &calls);
    }
    if calls.is_empty() {
        writeln!(out, "no calls")?;
        return Ok(());
    }
    let n = db.short_len(calls.iter().map(|c| c.id.as_str()))?;
    let mut t = Table::new(&["TIME", "ID", "OP", "STATUS", "LATENCY", "TOKENS"])
        .flex(2)
        .hide_empty()
        .right(4)
        .right(5);
    for c in &calls {
        t.row(vec![
            Cell::colored(fmt::time(&c.started_at), Color::Dim),
            Cell::colored(&c.id[..n], Color::Cyan),
            Cell::new(db.op_label(c)),
            status_cell(c),
            Cell::new(fmt::latency_ms(c.latency_ms())),
            Cell::new(
                fmt::tokens(&Value::Object(c.summary.clone()))
                    .map(fmt::thousands)
                    .unwrap_or_default(),
            ),
        ]);
    }
    t.print(out, st)?;
    if calls.len() == limit {
        writeln!(
            out,
            "{}",
            st.dim(&format!("(the newest {limit}; --limit N shows more)"))
        )?;
    }
    Ok(())
}

/// A value on one line, with refs shown as `name:vN`.
pub fn inline_value(db: &Db, v: &Value) -> String {
    fmt::inline_value(v, &|s| db.ref_label(s))
}

/// `(a=1, b="x")`.
pub fn inline_inputs(db: &Db, inputs: &serde_json::Map<String, Value>) -> String {
    format!(
        "({})",
        inputs
            .iter()
            .map(|(k, v)| format!("{k}={}", inline_value(db, v)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What a call produced, on one line: the output, or `Type: message`.
pub fn inline_result(db: &Db, c: &CallSchema) -> String {
    if let Some(e) = c.exception_info() {
        return format!("{}: {}", e.kind, e.message);
    }
    if let Some(e) = &c.exception {
        return e.clone();
    }
    match &c.output {
        Some(v) if c.ended_at.is_some() => inline_value(db, v),
        _ => "…".into(),
    }
}

/// `weave call <id>`.
pub fn show(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    id: &str,
    as_json: bool,
    full: bool,
) -> Result<()> {
    let c = db.resolve_call(id)?;
    let children = db.children(&c)?;
    if as_json {
        let mut v = serde_json::to_value(&c)?;
        v["children"] = json!(children.iter().map(|c| &c.id).collect::<Vec<_>>());
        return fmt::json(out, &v);
    }
    let status = c.status();
    let label = db.op_label(&c);
    writeln!(out, "{} {}", st.bold("call"), st.cyan(&c.id))?;
    // Pad the plain key: colour codes would upset `{:<10}`.
    let kv = |out: &mut dyn Write, k: &str, v: String| {
        writeln!(
            out,
            "  {}{} {v}",
            st.dim(k),
            " ".repeat(10usize.saturating_sub(k.len()))
        )
    };
    kv(out, "op", st.bold(&label))?;
    kv(out, "op ref", st.dim(&c.op_name))?;
    if let Some(d) = &c.display_name {
        kv(out, "name", d.clone())?;
    }
    kv(
        out,
        "status",
        format!(
            "{}  {}",
            st.apply(status_color(status), status.as_str()),
            fmt::latency_ms(c.latency_ms())
        ),
    )?;
    kv(
        out,
        "started",
        format!(
            "{}{}",
            fmt::time(&c.started_at),
            c.ended_at
                .as_deref()
                .map(|e| format!("  ended {}", fmt::time(e)))
                .unwrap_or_default()
        ),
    )?;
    kv(out, "project", c.project_id.clone())?;
    kv(
        out,
        "trace",
        if c.trace_id == c.id {
            format!("{} (this call is the root)", c.trace_id)
        } else {
            c.trace_id.clone()
        },
    )?;
    if let Some(p) = &c.parent_id {
        kv(out, "parent", p.clone())?;
    }
    if let Some(t) = fmt::tokens(&Value::Object(c.summary.clone())) {
        kv(out, "tokens", fmt::thousands(t))?;
    }

    writeln!(out, "\n{}", st.bold("inputs"))?;
    writeln!(
        out,
        "{}",
        fmt::block(&Value::Object(c.inputs.clone()), 2, full)
    )?;
    if let Some(e) = c.exception_info() {
        writeln!(out, "\n{}", st.bold("exception"))?;
        writeln!(out, "  {}", st.red(&format!("{}: {}", e.kind, e.message)))?;
        for l in e.traceback_lines().iter().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "    {}", st.dim(l))?;
        }
    } else if let Some(e) = &c.exception {
        writeln!(out, "\n{}\n  {}", st.bold("exception"), st.red(e))?;
    } else {
        writeln!(out, "\n{}", st.bold("output"))?;
        match (&c.output, &c.ended_at) {
            (_, None) => writeln!(out, "  {}", st.dim("(still running)"))?,
            (Some(v), _) => writeln!(out, "{}", fmt::block(v, 2, full))?,
            (None, _) => writeln!(out, "  null")?,
        }
    }
    writeln!(out, "\n{}", st.bold("summary"))?;
    writeln!(
        out,
        "{}",
        fmt::block(&Value::Object(c.summary.clone()), 2, full)
    )?;
    writeln!(out, "\n{}", st.bold("attributes"))?;
    writeln!(
        out,
        "{}",
        fmt::block(&Value::Object(c.attributes.clone()), 2, full)
    )?;

    writeln!(out, "\n{} ({})", st.bold("children"), children.len())?;
    if !children.is_empty() {
        let n = db.short_len(children.iter().map(|c| c.id.as_str()))?;
        let mut t = Table::new(&["ID", "OP", "STATUS", "LATENCY", "OUTPUT"])
            .flex(4)
            .right(3)
            .indent(2);
        for ch in &children {
            t.row(vec![
                Cell::colored(&ch.id[..n], Color::Cyan),
                Cell::new(db.op_label(ch)),
                status_cell(ch),
                Cell::new(fmt::latency_ms(ch.latency_ms())),
                Cell::new(inline_result(db, ch)),
            ]);
        }
        t.print(out, st)?;
    }
    writeln!(
        out,
        "\n{} {}",
        st.bold("code:"),
        st.cyan(&format!("weave show {label}"))
    )?;
    Ok(())
}

/// `weave trace <id>`.
pub fn trace(db: &Db, st: &Style, out: &mut dyn Write, id: &str, as_json: bool) -> Result<()> {
    let start = db.resolve_call(id)?;
    let calls = db.trace(&start)?;
    let ids: std::collections::HashSet<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    let mut kids: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        match c.parent_id.as_deref().filter(|p| ids.contains(p)) {
            Some(p) => kids.entry(p).or_default().push(i),
            None => roots.push(i),
        }
    }
    if as_json {
        fn node(calls: &[CallSchema], kids: &HashMap<&str, Vec<usize>>, i: usize) -> Value {
            let mut v = serde_json::to_value(&calls[i]).unwrap_or(Value::Null);
            let children: Vec<Value> = kids
                .get(calls[i].id.as_str())
                .map(|k| k.iter().map(|&j| node(calls, kids, j)).collect())
                .unwrap_or_default();
            v["children"] = Value::Array(children);
            v
        }
        let tree: Vec<Value> = roots.iter().map(|&i| node(&calls, &kids, i)).collect();
        return fmt::json(out, &json!({"trace_id": start.trace_id, "calls": tree}));
    }
    let errors = calls.iter().filter(|c| c.exception.is_some()).count();
    let root_latency = roots.first().and_then(|&i| calls[i].latency_ms());
    writeln!(
        out,
        "{} {}  {} calls{}  {}",
        st.bold("trace"),
        st.cyan(&start.trace_id),
        calls.len(),
        if errors > 0 {
            st.red(&format!(", {errors} failed"))
        } else {
            String::new()
        },
        fmt::latency_ms(root_latency)
    )?;
    let n = db.short_len(calls.iter().map(|c| c.id.as_str()))?;
    // Depth-first, iteratively: (index, prefix for children, is last sibling, depth).
    let mut stack: Vec<(usize, String, bool, usize)> = roots
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &i)| (i, String::new(), k == 0, 0))
        .collect();
    while let Some((i, prefix, last, depth)) = stack.pop() {
        let c = &calls[i];
        let branch = if depth == 0 {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        let status = c.status();
        let mark = match status {
            CallStatus::Success => st.green("✓"),
            CallStatus::Error => st.red("✗"),
            CallStatus::DescendantError => st.yellow("!"),
            CallStatus::Running => st.cyan("…"),
            CallStatus::Interrupted => st.yellow("⊘"),
        };
        let label = db.op_label(c);
        let lat = fmt::latency_ms(c.latency_ms());
        let status_txt = if status == CallStatus::Success {
            String::new()
        } else {
            format!("  {}", status.as_str())
        };
        let short = &c.id[..n];
        let marker = if c.id == start.id && start.id != start.trace_id {
            " ◀"
        } else {
            ""
        };
        let plain_len = fmt::width(&prefix)
            + fmt::width(branch)
            + 2
            + fmt::width(&label)
            + 2
            + lat.len()
            + status_txt.len()
            + 2
            + short.len()
            + marker.len();
        let room = fmt::line_width().saturating_sub(plain_len + 2);
        let detail = if room >= 12 {
            let text = if c.exception.is_some() {
                inline_result(db, c)
            } else {
                format!(
                    "{} → {}",
                    inline_inputs(db, &c.inputs),
                    inline_result(db, c)
                )
            };
            let text = fmt::trunc(&text, room);
            if c.exception.is_some() {
                format!("  {}", st.red(&text))
            } else {
                format!("  {}", st.dim(&text))
            }
        } else {
            String::new()
        };
        writeln!(
            out,
            "{}{}{mark} {}  {lat}{}  {}{}{detail}",
            st.dim(&prefix),
            st.dim(branch),
            st.bold(&label),
            st.apply(status_color(status), &status_txt),
            st.cyan(short),
            st.yellow(marker),
        )?;
        if let Some(children) = kids.get(c.id.as_str()) {
            let child_prefix = if depth == 0 {
                String::new()
            } else if last {
                format!("{prefix}   ")
            } else {
                format!("{prefix}│  ")
            };
            for (k, &j) in children.iter().enumerate().rev() {
                stack.push((j, child_prefix.clone(), k == children.len() - 1, depth + 1));
            }
        }
    }
    Ok(())
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line, in W&B Weave's call schema.
    Jsonl,
}

/// `weave export`.
pub fn export(
    db: &Db,
    out: &mut dyn Write,
    args: &FilterArgs,
    limit: Option<usize>,
    _format: ExportFormat,
) -> Result<usize> {
    let q = args.to_query(db, limit, true)?;
    let calls = db.calls(&q)?;
    for c in &calls {
        serde_json::to_writer(&mut *out, c)?;
        writeln!(out)?;
    }
    Ok(calls.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(
            parse_since("2025-01-02T03:04:05Z").unwrap(),
            "2025-01-02T03:04:05.000000Z"
        );
        assert!(parse_since("2h").unwrap().ends_with('Z'));
        assert!(parse_since("2025-01-02").is_ok());
        assert!(parse_since("soon").is_err());
        assert!(parse_since("3y").is_err());
    }
}

//! `weave evals`, `weave eval`, `weave compare`.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use crate::db::Db;
use crate::evalshape::{self, Direction, Row, Run};
use crate::fmt::{self, Cell, Color, Style, Table};

/// `weave evals`.
pub fn list(db: &Db, st: &Style, out: &mut dyn Write, limit: usize, as_json: bool) -> Result<()> {
    let runs = evalshape::runs(db, limit)?;
    if as_json {
        return fmt::json(out, &runs);
    }
    if runs.is_empty() {
        writeln!(out, "no evaluation runs")?;
        return Ok(());
    }
    let n = db.short_len(runs.iter().map(|r| r.id.as_str()))?;
    let mut t = Table::new(&["DATE", "ID", "EVALUATION", "MODEL", "DATASET", "SUMMARY"]).flex(5);
    for r in &runs {
        let headline = match r.call.status() {
            weave_types::CallStatus::Running => "running".to_string(),
            weave_types::CallStatus::Interrupted => "interrupted (its process is gone)".to_string(),
            weave_types::CallStatus::Error => r
                .call
                .exception_info()
                .map(|e| format!("failed: {}", e.message))
                .unwrap_or_else(|| "failed".into()),
            _ => evalshape::headline(&r.summary),
        };
        t.row(vec![
            Cell::colored(fmt::time_short(&r.started_at), Color::Dim),
            Cell::colored(&r.id[..n], Color::Cyan),
            Cell::new(fmt::trunc(&r.evaluation, 20)),
            Cell::colored(fmt::trunc(&r.model, 24), Color::Bold),
            Cell::new(fmt::trunc(r.dataset.as_deref().unwrap_or("-"), 20)),
            Cell::colored(headline, fmt::status_color(r.call.status())),
        ]);
    }
    t.print(out, st)?;
    writeln!(
        out,
        "{}",
        st.dim("(weave eval ID for rows; weave compare ID ID)")
    )?;
    Ok(())
}

fn run_header(st: &Style, out: &mut dyn Write, r: &Run, rows: Option<usize>) -> Result<()> {
    let kv = |out: &mut dyn Write, k: &str, v: String| -> std::io::Result<()> {
        writeln!(
            out,
            "  {}{} {v}",
            st.dim(k),
            " ".repeat(9usize.saturating_sub(k.len()))
        )
    };
    writeln!(
        out,
        "{} {}  {}",
        st.bold("evaluation"),
        st.bold(&r.evaluation),
        st.cyan(&r.id)
    )?;
    kv(out, "model", st.bold(&r.model))?;
    if let Some(d) = &r.dataset {
        let count = rows.map(|n| format!(" ({n} rows)")).unwrap_or_default();
        kv(out, "dataset", format!("{d}{count}"))?;
    }
    kv(
        out,
        "date",
        format!(
            "{}  {}  {}",
            fmt::time(&r.started_at),
            st.apply(fmt::status_color(r.call.status()), &r.status),
            fmt::latency_ms(r.latency_ms)
        ),
    )?;
    Ok(())
}

fn scores_inline(scores: &serde_json::Map<String, Value>) -> String {
    scores
        .iter()
        .map(|(k, v)| format!("{k}={}", fmt::score(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `weave eval <id>`.
pub fn show(db: &Db, st: &Style, out: &mut dyn Write, id: &str, as_json: bool) -> Result<()> {
    let run = evalshape::resolve_run(db, id)?;
    let rows = evalshape::rows(db, &run)?;
    if as_json {
        let mut v = serde_json::to_value(&run)?;
        v["rows"] = serde_json::to_value(&rows)?;
        return fmt::json(out, &v);
    }
    run_header(st, out, &run, Some(rows.len()))?;
    writeln!(out, "\n{}", st.bold("summary"))?;
    if let Some(e) = run.call.exception_info() {
        writeln!(out, "  {}", st.red(&format!("{}: {}", e.kind, e.message)))?;
    }
    let lines = evalshape::summary_lines(&run.summary);
    let kw = lines.iter().map(|(k, _)| fmt::width(k)).max().unwrap_or(0);
    for (k, v) in &lines {
        let text = fmt::trunc(v, fmt::line_width().saturating_sub(kw + 4));
        writeln!(
            out,
            "  {}{}  {text}",
            st.bold(k),
            " ".repeat(kw - fmt::width(k))
        )?;
    }
    writeln!(out, "\n{} ({})", st.bold("rows"), rows.len())?;
    if rows.is_empty() {
        return Ok(());
    }
    // One column per scorer (in first-seen order).
    let mut scorers: Vec<String> = Vec::new();
    for r in &rows {
        for k in r.scores.keys() {
            if !scorers.contains(k) {
                scorers.push(k.clone());
            }
        }
    }
    let mut headers = vec!["ROW", "INPUT", "OUTPUT"];
    headers.extend(scorers.iter().map(String::as_str));
    headers.extend(["LATENCY", "ERROR"]);
    let mut t = Table::new(&headers)
        .flex(2)
        .right(3 + scorers.len())
        .indent(2)
        .hide_empty();
    for r in &rows {
        let input = match &r.example {
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| k.as_str() != "id")
                .map(|(_, v)| fmt::inline(v, true))
                .next()
                .unwrap_or_default(),
            other => fmt::inline(other, true),
        };
        let mut cells = vec![
            Cell::colored(fmt::trunc(&r.row, 12), Color::Cyan),
            Cell::new(fmt::trunc(&input, 20)),
            Cell::new(fmt::inline(&r.output, true)),
        ];
        for s in &scorers {
            let v = r.scores.get(s).cloned().unwrap_or(Value::Null);
            let color = match &v {
                Value::Bool(true) => Color::Green,
                Value::Bool(false) => Color::Red,
                _ => Color::Plain,
            };
            cells.push(Cell::colored(fmt::trunc(&fmt::score(&v), 16), color));
        }
        cells.push(Cell::new(
            r.latency_s
                .map(fmt::latency_s)
                .unwrap_or_else(|| "-".into()),
        ));
        cells.push(Cell::colored(
            fmt::trunc(r.error.as_deref().unwrap_or(""), 30),
            Color::Red,
        ));
        t.row(cells);
    }
    t.print(out, st)?;
    Ok(())
}

/// How a row's scores moved from run A to run B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    Regression,
    Improvement,
    Changed,
}

/// A matched row's change from A to B, and its gain (the sum of its scores' moves, each
/// counted positive when it is for the better). A row whose predict failed on one side only
/// is `Changed`; otherwise each numeric score present on both sides gives a verdict (better,
/// worse, same) by its direction: only worse ones make a regression, only better ones an
/// improvement, both (or scores that differ in other ways) a change.
fn classify(a: &Row, b: &Row, dir: &dyn Fn(&str) -> Direction) -> (Change, f64) {
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    evalshape::leaves("", &Value::Object(a.scores.clone()), &mut la);
    evalshape::leaves("", &Value::Object(b.scores.clone()), &mut lb);
    let get = |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map(|(_, x)| *x);
    let (mut better, mut worse, mut gain) = (false, false, 0.0);
    for (k, x) in &la {
        if let Some(y) = get(&lb, k) {
            let g = match dir(k) {
                Direction::Higher => y - x,
                Direction::Lower => x - y,
            };
            gain += g;
            better |= g > 0.0;
            worse |= g < 0.0;
        }
    }
    let change = if a.error.is_some() != b.error.is_some() || better == worse {
        Change::Changed
    } else if worse {
        Change::Regression
    } else {
        Change::Improvement
    };
    (change, gain)
}

/// `weave compare <a> <b>`.
pub fn compare(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    a: &str,
    b: &str,
    limit: usize,
    as_json: bool,
) -> Result<()> {
    let ra = evalshape::resolve_run(db, a)?;
    let rb = evalshape::resolve_run(db, b)?;

    // Summary metrics: A's order, then B's new ones.
    let (mut ma, mut mb) = (Vec::new(), Vec::new());
    evalshape::leaves("", &ra.summary, &mut ma);
    evalshape::leaves("", &rb.summary, &mut mb);
    let mut names: Vec<String> = ma.iter().map(|(k, _)| k.clone()).collect();
    for (k, _) in &mb {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    let get = |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map(|(_, x)| *x);
    let metrics: Vec<(String, Option<f64>, Option<f64>)> = names
        .iter()
        .map(|k| (k.clone(), get(&ma, k), get(&mb, k)))
        .collect();

    // Each scorer's direction: declared by either run's scorer objects, else inferred.
    let mut declared = evalshape::declared_directions(db, &ra);
    for (k, d) in evalshape::declared_directions(db, &rb) {
        declared.entry(k).or_insert(d);
    }
    let dir = |path: &str| evalshape::direction(path, &declared);

    // Rows matched by example id (or the example itself), classified by their verdicts.
    let rows_a = evalshape::rows(db, &ra)?;
    let rows_b = evalshape::rows(db, &rb)?;
    let by_key: HashMap<&str, &Row> = rows_b.iter().map(|r| (r.key.as_str(), r)).collect();
    let keys_a: BTreeSet<&str> = rows_a.iter().map(|r| r.key.as_str()).collect();
    let mut diffs: Vec<(Change, f64, &Row, &Row)> = Vec::new();
    for r in &rows_a {
        let Some(o) = by_key.get(r.key.as_str()) else {
            continue;
        };
        if r.scores == o.scores && r.error.is_some() == o.error.is_some() {
            continue;
        }
        let (change, gain) = classify(r, o, &dir);
        diffs.push((change, gain, r, o));
    }
    diffs.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    let only_a = rows_a
        .iter()
        .filter(|r| !by_key.contains_key(r.key.as_str()))
        .count();
    let only_b = rows_b
        .iter()
        .filter(|r| !keys_a.contains(r.key.as_str()))
        .count();

    if as_json {
        return fmt::json(
            out,
            &json!({
                "a": ra,
                "b": rb,
                "summary": metrics.iter().map(|(k, x, y)| {
                    let d = dir(k);
                    let delta = x.zip(*y).map(|(x, y)| y - x);
                    json!({
                        "metric": k, "a": x, "b": y, "delta": delta, "direction": d,
                        "better": delta.filter(|d| *d != 0.0)
                            .map(|delta| (delta > 0.0) == (d == Direction::Higher)),
                    })
                }).collect::<Vec<_>>(),
                "rows": diffs.iter().map(|(c, d, r, o)| json!({
                    "row": r.row, "change": c, "gain": d,
                    "example": r.example,
                    "a": {"call_id": r.call_id, "output": r.output, "scores": r.scores,
                          "error": r.error},
                    "b": {"call_id": o.call_id, "output": o.output, "scores": o.scores,
                          "error": o.error},
                })).collect::<Vec<_>>(),
                "only_in_a": only_a,
                "only_in_b": only_b,
            }),
        );
    }

    let n = db.short_len([ra.id.as_str(), rb.id.as_str()])?;
    for (name, r) in [("A", &ra), ("B", &rb)] {
        writeln!(
            out,
            "{}  {}  {}  {}  {}  {}",
            st.bold(name),
            st.cyan(&r.id[..n]),
            st.bold(&r.model),
            r.dataset.as_deref().unwrap_or("-"),
            st.dim(&fmt::time(&r.started_at)),
            st.dim(&fmt::trunc(&r.evaluation, 30)),
        )?;
    }
    if ra.dataset != rb.dataset {
        writeln!(
            out,
            "{}",
            st.yellow(&format!(
                "note: different datasets: {} vs {}",
                ra.dataset.as_deref().unwrap_or("-"),
                rb.dataset.as_deref().unwrap_or("-")
            ))
        )?;
    }
    writeln!(out)?;
    let mut t = Table::new(&["METRIC", "A", "B", "DELTA"])
        .right(1)
        .right(2)
        .right(3)
        .flex(0);
    for (k, x, y) in &metrics {
        let show = |v: &Option<f64>| {
            v.map(|v| {
                if k.contains("latency") {
                    fmt::latency_s(v)
                } else {
                    fmt::number(v)
                }
            })
            .unwrap_or_else(|| "-".into())
        };
        let (delta, color) = match (x, y) {
            (Some(x), Some(y)) if (y - x).abs() > f64::EPSILON => {
                let d = y - x;
                let better = (d > 0.0) == (dir(k) == Direction::Higher);
                let text = if k.contains("latency") {
                    format!(
                        "{}{}",
                        if d > 0.0 { "+" } else { "-" },
                        fmt::latency_s(d.abs())
                    )
                } else {
                    format!("{}{}", if d > 0.0 { "+" } else { "" }, fmt::number(d))
                };
                (text, if better { Color::Green } else { Color::Red })
            }
            (Some(_), Some(_)) => ("=".to_string(), Color::Dim),
            _ => (String::new(), Color::Plain),
        };
        t.row(vec![
            Cell::new(k.as_str()),
            Cell::new(show(x)),
            Cell::new(show(y)),
            Cell::colored(delta, color),
        ]);
    }
    t.print(out, st)?;

    let regressions = diffs.iter().filter(|d| d.0 == Change::Regression).count();
    let improvements = diffs.iter().filter(|d| d.0 == Change::Improvement).count();
    writeln!(
        out,
        "\n{} ({} differ: {} regressed, {} improved)",
        st.bold("rows whose scores differ"),
        diffs.len(),
        regressions,
        improvements
    )?;
    if !diffs.is_empty() {
        let mut t = Table::new(&["", "ROW", "SCORES A", "SCORES B", "OUTPUT A → B"])
            .flex(4)
            .indent(2);
        for (c, _, r, o) in diffs.iter().take(limit) {
            let (mark, color) = match c {
                Change::Regression => ("▼", Color::Red),
                Change::Improvement => ("▲", Color::Green),
                Change::Changed => ("~", Color::Yellow),
            };
            let outputs = if r.output == o.output {
                format!("(same) {}", fmt::inline(&o.output, true))
            } else {
                format!(
                    "{} → {}",
                    fmt::trunc(&fmt::inline(&r.output, true), 20),
                    fmt::inline(&o.output, true)
                )
            };
            t.row(vec![
                Cell::colored(mark, color),
                Cell::colored(fmt::trunc(&r.row, 12), Color::Cyan),
                Cell::new(fmt::trunc(&scores_inline(&r.scores), 22)),
                Cell::colored(fmt::trunc(&scores_inline(&o.scores), 22), color),
                Cell::new(outputs),
            ]);
        }
        t.print(out, st)?;
        if diffs.len() > limit {
            writeln!(
                out,
                "  {}",
                st.dim(&format!("… {} more (--limit N)", diffs.len() - limit))
            )?;
        }
    }
    if only_a + only_b > 0 {
        writeln!(
            out,
            "{}",
            st.dim(&format!("rows only in A: {only_a}, only in B: {only_b}"))
        )?;
    }
    Ok(())
}

//! `weave ops`, `weave models`, `weave show`, `weave diff`.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Map, Value};
use similar::{ChangeTag, TextDiff};
use weave_types::refs::{RefKind, WeaveRef};
use weave_types::ObjSchema;

use crate::db::{Db, Kind};
use crate::fmt::{self, label, Cell, Color, Style, Table};

/// Keys of a model's value that are bookkeeping, not attributes.
fn is_internal(k: &str) -> bool {
    k.starts_with('_')
}

/// An op ref stored as a model attribute.
fn op_ref(v: &Value) -> Option<WeaveRef> {
    let r = WeaveRef::parse(v.as_str()?).ok()?;
    (r.kind == RefKind::Op).then_some(r)
}

/// A value on one line, refs as `name:vN`.
fn inline(db: &Db, v: &Value) -> String {
    fmt::inline_value(v, &|s| db.ref_label(s))
}

/// Where an op's source is: `(file, line, module)`, from the version's metadata (or, in
/// stores written before Weave's op shape, from its value).
fn source(o: &ObjSchema) -> Option<(String, u64, Option<String>)> {
    let m = o.metadata.as_ref().unwrap_or(&o.val);
    Some((
        m.get("file")?.as_str()?.to_string(),
        m.get("line")?.as_u64()?,
        m.get("module").and_then(Value::as_str).map(str::to_string),
    ))
}

fn short_digest(d: &str) -> &str {
    &d[..d.len().min(8)]
}

/// Attributes of a model (or fields of any object) as `k=v`, op refs left out.
fn attributes_inline(db: &Db, val: &Value) -> String {
    val.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| !is_internal(k) && op_ref(v).is_none())
                .map(|(k, v)| format!("{k}={}", inline(db, v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `weave ops` / `weave models`.
pub fn list(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    kind: Kind,
    all_versions: bool,
    as_json: bool,
) -> Result<()> {
    let objects = db.latest(kind)?;
    let mut entries = Vec::new();
    for o in objects {
        let versions = db.versions(&o.project_id, &o.object_id)?;
        entries.push((o, versions));
    }
    let is_op = kind == Kind::Op;
    if as_json {
        let v: Vec<Value> = entries
            .iter()
            .map(|(o, versions)| {
                json!({
                    "name": o.object_id,
                    "base_object_class": o.base_object_class,
                    "latest": o,
                    "ref": o.uri(),
                    "versions": versions.iter().map(|v| json!({
                        "version_index": v.version_index,
                        "digest": v.digest,
                        "created_at": v.created_at,
                        "is_latest": v.latest(),
                        "ref": v.uri(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return fmt::json(out, &v);
    }
    if entries.is_empty() {
        let what = if is_op { "ops" } else { "models" };
        writeln!(out, "no {what}")?;
        return Ok(());
    }
    let last = if is_op { "SOURCE" } else { "ATTRIBUTES" };
    let t = Table::new(&["NAME", "VERSIONS", "LATEST", "DIGEST", "UPDATED", last]).right(1);
    let mut t = if is_op { t.flex_left(5) } else { t.flex(5) };
    let detail = |o: &ObjSchema| {
        if is_op {
            match source(o) {
                Some((f, l, _)) => format!("{f}:{l}"),
                None => String::new(),
            }
        } else {
            attributes_inline(db, &o.val)
        }
    };
    for (o, versions) in &entries {
        t.row(vec![
            Cell::colored(o.object_id.as_str(), Color::Bold),
            Cell::new(versions.len().to_string()),
            Cell::new(format!("v{}", o.version_index)),
            Cell::colored(short_digest(&o.digest), Color::Cyan),
            Cell::colored(fmt::time(&o.created_at), Color::Dim),
            Cell::new(detail(o)),
        ]);
        if all_versions {
            for v in versions.iter().rev().filter(|v| v.digest != o.digest) {
                t.row(vec![
                    Cell::colored("  └", Color::Dim),
                    Cell::new(""),
                    Cell::new(format!("v{}", v.version_index)),
                    Cell::colored(short_digest(&v.digest), Color::Cyan),
                    Cell::colored(fmt::time(&v.created_at), Color::Dim),
                    Cell::new(detail(v)),
                ]);
            }
        }
    }
    t.print(out, st)?;
    writeln!(out, "{}", st.dim("(weave show NAME[:vN] prints one)"))?;
    Ok(())
}

fn header(db: &Db, st: &Style, out: &mut dyn Write, o: &ObjSchema) -> Result<()> {
    let class = match (&o.base_object_class, o.kind.as_str()) {
        (Some(c), _) => c.as_str(),
        (None, "op") => "Op",
        (None, k) => k,
    };
    let count = db.versions(&o.project_id, &o.object_id)?.len();
    writeln!(
        out,
        "{} {}  {}",
        st.dim(class),
        st.bold(&label(o)),
        st.dim(&format!(
            "({count} version{}{})",
            if count == 1 { "" } else { "s" },
            if o.latest() { ", latest" } else { "" }
        ))
    )?;
    writeln!(out, "  {}      {}", st.dim("ref"), o.uri())?;
    writeln!(out, "  {}  {}", st.dim("created"), fmt::time(&o.created_at))?;
    Ok(())
}

/// Op source with line numbers, from the op's recorded line.
fn print_code(st: &Style, out: &mut dyn Write, code: &str, first: usize) -> Result<()> {
    let w = (first + code.lines().count()).to_string().len();
    for (i, l) in code.lines().enumerate() {
        writeln!(out, "  {} {l}", st.dim(&format!("{:>w$} │", first + i)))?;
    }
    Ok(())
}

/// `weave show <ref>`.
pub fn show(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    spec: &str,
    as_json: bool,
    full: bool,
) -> Result<()> {
    let o = db.resolve_object(spec)?;
    let code = if o.kind == "op" { db.op_code(&o) } else { None };
    if as_json {
        let mut v = serde_json::to_value(&o)?;
        v["ref"] = json!(o.uri());
        if let Some(code) = &code {
            v["code"] = json!(code);
        }
        return fmt::json(out, &v);
    }
    header(db, st, out, &o)?;
    let class = o.base_object_class.as_deref().unwrap_or("");
    if o.kind == "op" {
        let src = source(&o);
        if let Some((f, l, module)) = &src {
            let module = module
                .as_deref()
                .map(|m| format!("  ({m})"))
                .unwrap_or_default();
            writeln!(out, "  {}   {f}:{l}{}", st.dim("source"), st.dim(&module))?;
        }
        writeln!(out)?;
        let first = src.map_or(1, |(_, l, _)| l as usize);
        print_code(st, out, code.as_deref().unwrap_or(""), first)?;
    } else if class == "Model" || o.val.get("_bases").is_some() {
        let m = o.val.as_object().cloned().unwrap_or_default();
        writeln!(out, "\n{}", st.bold("attributes"))?;
        let mut any = false;
        for (k, v) in m
            .iter()
            .filter(|(k, v)| !is_internal(k) && op_ref(v).is_none())
        {
            any = true;
            let text = inline(db, v);
            let text = if full {
                text
            } else {
                fmt::trunc(&text, fmt::line_width().saturating_sub(6 + k.len()))
            };
            writeln!(out, "  {k} = {text}")?;
        }
        if !any {
            writeln!(out, "  {}", st.dim("(none)"))?;
        }
        let ops: Vec<(&String, &Value)> = m.iter().filter(|(_, v)| op_ref(v).is_some()).collect();
        if !ops.is_empty() {
            writeln!(out, "\n{}", st.bold("ops"))?;
            for (k, v) in ops {
                let l = db.ref_label(v.as_str().unwrap_or(""));
                writeln!(out, "  {k}  {}  {}", l, st.dim(&format!("weave show {l}")))?;
            }
        }
    } else {
        writeln!(out, "\n{}", st.bold("value"))?;
        writeln!(out, "{}", fmt::block(&o.val, 2, full))?;
    }
    // A dataset (any object holding a table in `rows`) shows its rows.
    if let Some(table) = table_ref(&o.val["rows"]) {
        if let Ok(rows) = db.table_rows(&table.project_id(), &table.digest) {
            writeln!(out, "\n{} ({})", st.bold("rows"), rows.len())?;
            let shown = if full { rows.len() } else { 10 };
            for (i, r) in rows.iter().take(shown).enumerate() {
                let text = fmt::trunc(&inline(db, r), fmt::line_width() - 8);
                writeln!(out, "  {:>3}  {text}", i)?;
            }
            if rows.len() > shown {
                writeln!(
                    out,
                    "  {}",
                    st.dim(&format!("… {} more (--full)", rows.len() - shown))
                )?;
            }
        }
    }
    let versions = db.versions(&o.project_id, &o.object_id)?;
    if versions.len() > 1 {
        let list: Vec<String> = versions
            .iter()
            .rev()
            .take(8)
            .map(|v| {
                let s = format!("v{} {}", v.version_index, short_digest(&v.digest));
                if v.digest == o.digest {
                    st.bold(&s)
                } else {
                    s
                }
            })
            .collect();
        writeln!(out, "\n{} {}", st.dim("versions:"), list.join(", "))?;
    }
    Ok(())
}

/// A `weave:///e/p/table/<digest>` ref.
fn table_ref(v: &Value) -> Option<WeaveRef> {
    let r = WeaveRef::parse(v.as_str()?).ok()?;
    (r.kind == RefKind::Table).then_some(r)
}

/// One field that differs.
struct FieldChange {
    key: String,
    a: Option<Value>,
    b: Option<Value>,
}

fn field_changes(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    keep: impl Fn(&str, &Value) -> bool,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for (k, va) in a.iter().filter(|(k, v)| keep(k, v)) {
        match b.get(k) {
            Some(vb) if vb == va => {}
            vb => out.push(FieldChange {
                key: k.clone(),
                a: Some(va.clone()),
                b: vb.cloned(),
            }),
        }
    }
    for (k, vb) in b.iter().filter(|(k, v)| keep(k, v)) {
        if !a.contains_key(k) {
            out.push(FieldChange {
                key: k.clone(),
                a: None,
                b: Some(vb.clone()),
            });
        }
    }
    out
}

fn print_code_diff(st: &Style, out: &mut dyn Write, a: &str, b: &str) -> Result<()> {
    let diff = TextDiff::from_lines(a, b);
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let (o0, o1) = (first.old_range().start, last.old_range().end);
        let (n0, n1) = (first.new_range().start, last.new_range().end);
        writeln!(
            out,
            "  {}",
            st.cyan(&format!(
                "@@ -{},{} +{},{} @@",
                o0 + 1,
                o1 - o0,
                n0 + 1,
                n1 - n0
            ))
        )?;
        for op in &group {
            for change in diff.iter_changes(op) {
                let line = change.value().trim_end_matches('\n');
                match change.tag() {
                    ChangeTag::Delete => writeln!(out, "  {}", st.red(&format!("-{line}")))?,
                    ChangeTag::Insert => writeln!(out, "  {}", st.green(&format!("+{line}")))?,
                    ChangeTag::Equal => writeln!(out, "   {line}")?,
                }
            }
        }
    }
    Ok(())
}

fn unified(a: &str, b: &str, ha: &str, hb: &str) -> String {
    TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(ha, hb)
        .to_string()
}

/// `weave diff <a> <b>`.
pub fn diff(
    db: &Db,
    st: &Style,
    out: &mut dyn Write,
    a: &str,
    b: &str,
    as_json: bool,
) -> Result<()> {
    let oa = db.resolve_object(a)?;
    let ob = db.resolve_object(b)?;
    let (la, lb) = (label(&oa), label(&ob));
    let empty = Map::new();
    let ma = oa.val.as_object().unwrap_or(&empty);
    let mb = ob.val.as_object().unwrap_or(&empty);

    // Fields (attributes), op refs, and code: for an op its own, for a model its ops'.
    let is_op = oa.kind == "op" && ob.kind == "op";
    let fields = if is_op {
        field_changes(ma, mb, |k, _| {
            !matches!(
                k,
                "code" | "line" | "_type" | "name" | "files" | "weave_type"
            )
        })
    } else {
        field_changes(ma, mb, |k, v| !is_internal(k) && op_ref(v).is_none())
    };
    let ops = if is_op {
        Vec::new()
    } else {
        field_changes(ma, mb, |_, v| op_ref(v).is_some())
    };
    let mut code: Vec<(String, String, String, String, String)> = Vec::new(); // name, la, lb, a, b
    if is_op {
        let (ca, cb) = (db.op_code(&oa), db.op_code(&ob));
        if ca != cb {
            code.push((
                oa.object_id.clone(),
                la.clone(),
                lb.clone(),
                ca.unwrap_or_default(),
                cb.unwrap_or_default(),
            ));
        }
    } else {
        for ch in &ops {
            let get = |v: &Option<Value>| -> Result<(String, String)> {
                let Some(uri) = v.as_ref().and_then(Value::as_str) else {
                    return Ok((String::from("(none)"), String::new()));
                };
                Ok(match db.resolve_ref(uri)? {
                    Some(o) => (label(&o), db.op_code(&o).unwrap_or_default()),
                    None => (db.ref_label(uri), String::new()),
                })
            };
            let (l1, c1) = get(&ch.a)?;
            let (l2, c2) = get(&ch.b)?;
            if c1 != c2 {
                code.push((ch.key.clone(), l1, l2, c1, c2));
            }
        }
    }

    if as_json {
        let changes = |v: &[FieldChange]| -> Vec<Value> {
            v.iter()
                .map(|c| json!({"key": c.key, "a": c.a, "b": c.b}))
                .collect()
        };
        return fmt::json(
            out,
            &json!({
                "a": oa.uri(),
                "b": ob.uri(),
                "same": oa.digest == ob.digest && oa.object_id == ob.object_id,
                "fields": changes(&fields),
                "ops": changes(&ops),
                "code": code.iter().map(|(name, l1, l2, c1, c2)| json!({
                    "name": name, "a": l1, "b": l2, "diff": unified(c1, c2, l1, l2),
                })).collect::<Vec<_>>(),
            }),
        );
    }

    writeln!(
        out,
        "{} {} → {}",
        st.bold("diff"),
        st.red(&la),
        st.green(&lb)
    )?;
    if oa.digest == ob.digest && oa.object_id == ob.object_id {
        writeln!(out, "  {}", st.dim("same version: no differences"))?;
        return Ok(());
    }
    if fields.is_empty() && ops.is_empty() && code.is_empty() {
        writeln!(out, "  {}", st.dim("no differences in attributes or code"))?;
        return Ok(());
    }
    let show = |v: &Value| fmt::trunc(&inline(db, v), fmt::line_width() - 20);
    if !fields.is_empty() {
        writeln!(
            out,
            "\n{}",
            st.bold(if is_op { "fields" } else { "attributes" })
        )?;
        for c in &fields {
            match (&c.a, &c.b) {
                (Some(a), Some(b)) => writeln!(
                    out,
                    "  {}: {} → {}",
                    c.key,
                    st.red(&show(a)),
                    st.green(&show(b))
                )?,
                (Some(a), None) => {
                    writeln!(out, "  {}", st.red(&format!("- {}: {}", c.key, show(a))))?
                }
                (None, Some(b)) => {
                    writeln!(out, "  {}", st.green(&format!("+ {}: {}", c.key, show(b))))?
                }
                (None, None) => {}
            }
        }
    }
    if !ops.is_empty() {
        writeln!(out, "\n{}", st.bold("ops"))?;
        for c in &ops {
            let l = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(Value::as_str)
                    .map(|u| db.ref_label(u))
                    .unwrap_or_else(|| "(none)".into())
            };
            writeln!(
                out,
                "  {}: {} → {}",
                c.key,
                st.red(&l(&c.a)),
                st.green(&l(&c.b))
            )?;
        }
    }
    for (name, l1, l2, c1, c2) in &code {
        writeln!(
            out,
            "\n{} {}  {}",
            st.bold("code of"),
            st.bold(name),
            st.dim(&format!("({l1} → {l2})"))
        )?;
        print_code_diff(st, out, c1, c2)?;
    }
    Ok(())
}

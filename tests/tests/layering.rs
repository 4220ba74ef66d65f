//! The module layering of weave-core and weave-cli, checked from their source: every
//! `crate::` and `super::` path (in `use` items and inline) is an edge between top-level
//! modules, and every edge must be allowed by the table below. The table itself must be
//! acyclic, so no import cycle can come back.
//!
//! Run it alone with `cargo nextest run -p weave-tests -E 'test(layering)'`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// weave-core: who may use whom. `lib` is `lib.rs` (re-exports, `__private`, and the
/// `#[weave::op]` attribute the crate uses on its own ops).
const CORE: &[(&str, &[&str])] = &[
    // Leaves: plain data and definitions.
    ("record", &[]),
    ("error", &[]),
    ("ids", &[]),
    ("batch", &[]),
    ("redact", &[]),
    ("config", &["error"]),
    // The hot path: timestamps, per-thread queues, then where records go, then the call tree.
    ("clock", &["record"]),
    ("queue", &["record"]),
    ("dispatch", &["queue", "record", "redact"]),
    ("context", &["dispatch", "record", "redact"]),
    ("capture", &["context", "record"]),
    // What callers scope around calls (attributes, the call a closure made).
    ("scope", &["context"]),
    (
        "call",
        &[
            "clock", "context", "dispatch", "ids", "queue", "record", "scope",
        ],
    ),
    (
        "model",
        &["capture", "context", "dispatch", "record", "redact"],
    ),
    // The writer side: pure encoding, then the sinks.
    ("encode", &["batch", "clock", "record", "redact"]),
    ("sink", &["batch", "clock", "encode", "queue", "record"]),
    // Built from ops.
    (
        "eval",
        &["context", "error", "lib", "model", "record", "redact"],
    ),
    // The composition root: may use everything; nothing uses it.
    (
        "client",
        &[
            "batch", "call", "capture", "config", "context", "dispatch", "encode", "error", "ids",
            "model", "queue", "record", "redact", "sink",
        ],
    ),
];

/// weave-cli: `fmt` is a leaf, `db` is the only door to the store, commands sit on top.
const CLI: &[(&str, &[&str])] = &[
    ("fmt", &[]),
    ("db", &["fmt"]),
    ("calls", &["db", "fmt"]),
    ("objects", &["db", "fmt"]),
    ("evalshape", &["db", "fmt"]),
    ("evals", &["db", "evalshape", "fmt"]),
    // `weave copy`: one store to another, through `db`'s stores.
    ("copy", &["db", "fmt"]),
    // `weave serve`: the server crate over a store of its own choosing; no CLI module.
    ("serve", &[]),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`lib`/`main` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("component")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of each item of a `{a, b::c, d as e}` group starting at `s`.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    start = true;
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                start = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && start && !c.is_whitespace() {
            heads.push(ident_at(&s[i..]));
            start = false;
        }
    }
    heads
}

/// `(module, target)` for each `crate::`/`super::` path in a file, with its line.
fn edges_of(src: &Path, file: &Path, modules: &BTreeSet<String>) -> Vec<(String, String, usize)> {
    let text = std::fs::read_to_string(file).expect("read");
    let me = module_of(src, file);
    let nested = file.parent() != Some(src);
    let is_mod_rs = file.file_name().is_some_and(|f| f == "mod.rs");
    let mut out = Vec::new();
    let mut in_tests = false;
    let target = |name: &str| -> String {
        if modules.contains(name) {
            name.to_string()
        } else {
            // A crate-root item (a re-export or macro).
            "lib".to_string()
        }
    };
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if code.starts_with("mod tests") {
            in_tests = true;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            // `weave_macros::crate::` does not exist; `$crate::` is a macro's own crate.
            let prev = rest[..i].chars().last();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                rest = after;
                continue;
            }
            let heads = if after.starts_with('{') {
                group_heads(after)
            } else {
                vec![ident_at(after)]
            };
            for h in heads.into_iter().filter(|h| !h.is_empty()) {
                out.push((me.clone(), target(&h), n + 1));
            }
            rest = after;
        }
        let mut rest = line;
        while let Some(i) = rest.find("super::") {
            let after = &rest[i + "super::".len()..];
            // `super::` from a file at the top, or from a `mod.rs`, is the crate root; from
            // other nested files it is their own top-level module; inside `mod tests` it is
            // the file's own module.
            let (root_relative, tail) = if let Some(t) = after.strip_prefix("super::") {
                (true, t)
            } else {
                ((!nested || is_mod_rs) && !in_tests, after)
            };
            if root_relative {
                let heads = if tail.starts_with('{') {
                    group_heads(tail)
                } else {
                    vec![ident_at(tail)]
                };
                for h in heads.into_iter().filter(|h| !h.is_empty()) {
                    out.push((me.clone(), target(&h), n + 1));
                }
            }
            rest = after;
        }
    }
    out
}

fn check(crate_dir: &str, root: &str, table: &[(&str, &[&str])]) {
    let src = workspace().join(crate_dir).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    modules.insert("lib".into());
    let allowed: BTreeMap<&str, BTreeSet<&str>> = table
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();

    // Every module is in the table (a new module must be placed in the layering).
    for m in &modules {
        if m != root && m != "lib" {
            assert!(
                allowed.contains_key(m.as_str()),
                "{crate_dir}: module `{m}` is not in the layering table of tests/tests/layering.rs"
            );
        }
    }
    // The table is acyclic: repeatedly remove modules whose dependencies are all removed.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = allowed.clone();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| *m)
            .collect();
        assert!(
            !ready.is_empty(),
            "{crate_dir}: the layering table has a cycle among {:?}",
            left.keys().collect::<Vec<_>>()
        );
        for m in ready {
            left.remove(m);
        }
    }
    // Every edge is allowed.
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &files {
        for (from, to, line) in edges_of(&src, f, &modules) {
            seen += 1;
            if from == to || from == root {
                continue;
            }
            let ok = allowed
                .get(from.as_str())
                .is_some_and(|deps| deps.contains(to.as_str()));
            if !ok {
                bad.push(format!(
                    "{}:{line}: `{from}` uses `{to}`, which the layering does not allow",
                    f.strip_prefix(workspace()).unwrap_or(f).display()
                ));
            }
        }
    }
    assert!(
        seen > 10,
        "{crate_dir}: found only {seen} edges: is the parser broken?"
    );
    assert!(
        bad.is_empty(),
        "{crate_dir}: layering violations:\n{}",
        bad.join("\n")
    );
}

#[test]
fn weave_core_modules_follow_the_layering() {
    check("weave-core", "lib", CORE);
}

#[test]
fn weave_cli_modules_follow_the_layering() {
    check("weave-cli", "main", CLI);
}

#[test]
fn the_checker_catches_a_forbidden_edge() {
    // A fake crate with `record` using `client`, through a group import and an inline path.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sink")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod record;\nmod client;\nmod sink;\n").expect("write");
    std::fs::write(
        src.join("record.rs"),
        "// use crate::client; (a comment is not an edge)\nuse crate::{client::Thing, sink};\nfn f() { crate::client::go(); }\n",
    )
    .expect("write");
    std::fs::write(src.join("client.rs"), "use crate::record;\n").expect("write");
    std::fs::write(src.join("sink/mod.rs"), "use super::record::X;\nmod w;\n").expect("write");
    std::fs::write(
        src.join("sink/w.rs"),
        "use super::X;\nuse super::super::client::Y;\n",
    )
    .expect("write");
    let modules: BTreeSet<String> = ["lib", "record", "client", "sink"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut edges: Vec<(String, String)> = Vec::new();
    for f in ["record.rs", "client.rs", "sink/mod.rs", "sink/w.rs"] {
        edges.extend(
            edges_of(&src, &src.join(f), &modules)
                .into_iter()
                .map(|(a, b, _)| (a, b)),
        );
    }
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        edges,
        vec![
            e("record", "client"),
            e("record", "sink"),
            e("record", "client"),
            e("client", "record"),
            e("sink", "record"),
            e("sink", "client"),
        ]
    );
}

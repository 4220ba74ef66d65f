//! Shortening untrusted values for the pages: a one-line preview within a character budget
//! (the traces table), and a value whose long strings and lists are cut (the comparison
//! table), so that a 1 MiB input never travels to a page that shows forty characters of it.

use serde_json::{Map, Value};
use weave_types::refs::{RefKind, WeaveRef, REF_SCHEME};

/// `name:digest` (first 8 characters) of a ref, `table:…`/`call:…` for tables and calls,
/// `…` appended when the ref has an extra path; `None` when `s` is not a ref.
pub(crate) fn short_ref(s: &str) -> Option<String> {
    if !s.starts_with(REF_SCHEME) {
        return None;
    }
    let r = WeaveRef::parse(s).ok()?;
    let digest: String = r.digest.chars().take(8).collect();
    let mut out = match r.kind {
        RefKind::Object | RefKind::Op => format!("{}:{digest}", r.name),
        RefKind::Table => format!("table:{digest}"),
        RefKind::Call => format!("call:{digest}"),
    };
    if let Some((_, last)) = r.extra.last() {
        out.push_str(&format!("/…/{}", last.chars().take(8).collect::<String>()));
    }
    Some(out)
}

/// A one-line preview of `v` in at most `max` characters (plus a final `…` when cut). An
/// object at the top shows as `key: value, ...` (how inputs read, a method's `self` last); strings are quoted with
/// whitespace runs collapsed; refs show as `name:digest`; deep nesting as `{…}`.
pub(crate) fn preview(v: &Value, max: usize) -> String {
    let mut w = Budget {
        out: String::new(),
        left: max,
        cut: false,
    };
    match v {
        Value::Object(m) if !m.is_empty() => write_entries(m, &mut w, 0),
        Value::Object(_) => {
            w.put("{}");
        }
        other => write(other, &mut w, 0),
    }
    if w.cut {
        w.out.push('…');
    }
    w.out
}

struct Budget {
    out: String,
    left: usize,
    cut: bool,
}

impl Budget {
    /// Appends as much of `s` as fits; false once the budget is spent.
    fn put(&mut self, s: &str) -> bool {
        if self.cut {
            return false;
        }
        for c in s.chars() {
            if self.left == 0 {
                self.cut = true;
                return false;
            }
            self.out.push(c);
            self.left -= 1;
        }
        true
    }
}

fn write_entries(m: &Map<String, Value>, w: &mut Budget, depth: usize) {
    // A method's `self` (the same model ref on every call) comes last, after what varies.
    let entries = m
        .iter()
        .filter(|(k, _)| depth > 0 || k.as_str() != "self")
        .chain(m.get_key_value("self").filter(|_| depth == 0));
    for (i, (k, v)) in entries.enumerate() {
        if (i > 0 && !w.put(", ")) || !w.put(k) || !w.put(": ") {
            return;
        }
        write(v, w, depth + 1);
        if w.cut {
            return;
        }
    }
}

fn write(v: &Value, w: &mut Budget, depth: usize) {
    match v {
        Value::Null => {
            w.put("null");
        }
        Value::Bool(b) => {
            w.put(if *b { "true" } else { "false" });
        }
        Value::Number(n) => {
            w.put(&n.to_string());
        }
        Value::String(s) => {
            if let Some(r) = short_ref(s) {
                w.put(&r);
                return;
            }
            // Collapse whitespace, and never look at more of a huge string than can show.
            let mut text = String::new();
            let (mut space, mut more) = (false, false);
            for (i, c) in s.chars().enumerate() {
                if i == 4096 {
                    more = true;
                    break;
                }
                if c.is_whitespace() {
                    space = true;
                } else {
                    if space && !text.is_empty() {
                        text.push(' ');
                    }
                    space = false;
                    text.push(c);
                }
            }
            let shown: String = text.chars().take(80).collect();
            let cut = more || text.chars().count() > 80;
            if w.put("\"") && w.put(&shown) {
                if cut {
                    w.put("…");
                }
                w.put("\"");
            }
        }
        Value::Array(a) => {
            if depth >= 3 && !a.is_empty() {
                w.put("[…]");
                return;
            }
            if !w.put("[") {
                return;
            }
            for (i, x) in a.iter().enumerate() {
                if i == 5 {
                    w.put(&format!(", …+{}", a.len() - 5));
                    break;
                }
                if i > 0 && !w.put(", ") {
                    return;
                }
                write(x, w, depth + 1);
                if w.cut {
                    return;
                }
            }
            w.put("]");
        }
        Value::Object(m) => {
            if depth >= 3 && !m.is_empty() {
                w.put("{…}");
                return;
            }
            if !w.put("{") {
                return;
            }
            write_entries(m, w, depth);
            w.put("}");
        }
    }
}

/// `v` with strings longer than `max_chars` cut (ending in `…`) and lists and maps longer
/// than `max_items` cut; the flag tells whether anything was cut.
pub(crate) fn shorten(v: &Value, max_chars: usize, max_items: usize) -> (Value, bool) {
    let mut cut = false;
    let out = shorten_into(v, max_chars, max_items, &mut cut);
    (out, cut)
}

fn shorten_into(v: &Value, max_chars: usize, max_items: usize, cut: &mut bool) -> Value {
    match v {
        Value::String(s) => {
            if s.len() > max_chars && s.chars().nth(max_chars).is_some() {
                *cut = true;
                let mut t: String = s.chars().take(max_chars).collect();
                t.push('…');
                Value::String(t)
            } else {
                v.clone()
            }
        }
        Value::Array(a) => {
            if a.len() > max_items {
                *cut = true;
            }
            Value::Array(
                a.iter()
                    .take(max_items)
                    .map(|x| shorten_into(x, max_chars, max_items, cut))
                    .collect(),
            )
        }
        Value::Object(m) => {
            if m.len() > max_items {
                *cut = true;
            }
            Value::Object(
                m.iter()
                    .take(max_items)
                    .map(|(k, x)| (k.clone(), shorten_into(x, max_chars, max_items, cut)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previews_read_like_inputs() {
        // (Keys in sorted order: serde_json may or may not keep insertion order.)
        let v = json!({"k": 3, "problem": {"prompt": "from typing import List\n\n\ndef f(x):\n    pass", "task_id": "HumanEval/0"}});
        assert_eq!(
            preview(&v, 200),
            r#"k: 3, problem: {prompt: "from typing import List def f(x): pass", task_id: "HumanEval/0"}"#
        );
        assert_eq!(preview(&json!("abc"), 10), r#""abc""#);
        assert_eq!(preview(&json!(null), 10), "null");
        assert_eq!(
            preview(&json!([1, 2, 3, 4, 5, 6, 7]), 100),
            "[1, 2, 3, 4, 5, …+2]"
        );
        assert_eq!(
            preview(&json!({"a": {"b": {"c": {"d": 1}}}}), 100),
            "a: {b: {c: {…}}}"
        );
    }

    #[test]
    fn a_method_s_self_comes_last_in_a_preview() {
        // ("self" sorts before "x" whether or not the map keeps insertion order.)
        let v = json!({"self": "weave:///e/p/object/Model:abcdef123456", "x": {"task_id": "HumanEval/2"}});
        assert_eq!(
            preview(&v, 200),
            r#"x: {task_id: "HumanEval/2"}, self: Model:abcdef12"#
        );
        assert_eq!(
            preview(
                &json!({"self": "weave:///e/p/object/Model:abcdef123456"}),
                200
            ),
            "self: Model:abcdef12"
        );
    }

    #[test]
    fn previews_stay_within_budget_even_for_huge_values() {
        let huge = "x".repeat(2 << 20);
        let p = preview(&json!({"a": 1, "text": huge}), 60);
        assert_eq!(p.chars().count(), 61, "{p}");
        assert!(
            p.starts_with("a: 1, text: \"xxx") && p.ends_with('…'),
            "{p}"
        );
        // A long string inside the budget is cut at 80 characters and marked.
        let long = "y".repeat(300);
        let p = preview(&json!(long), 500);
        assert_eq!(p, format!("\"{}…\"", "y".repeat(80)));
    }

    #[test]
    fn refs_show_as_name_and_digest() {
        let r = "weave:///e/p/object/HumanEval:abcdef0123456789/attr/rows/id/0123456789abcdef";
        assert_eq!(short_ref(r).unwrap(), "HumanEval:abcdef01/…/01234567");
        assert_eq!(
            preview(&json!({"self": "weave:///e/p/op/f:XYZ"}), 100),
            "self: f:XYZ"
        );
        assert_eq!(short_ref("plain"), None);
        assert_eq!(short_ref("weave:///broken"), None);
    }

    #[test]
    fn shorten_cuts_and_says_so() {
        let (v, cut) = shorten(&json!({"a": "é".repeat(10), "b": [1, 2, 3]}), 4, 10);
        assert_eq!(v, json!({"a": "éééé…", "b": [1, 2, 3]}));
        assert!(cut);
        let (v, cut) = shorten(&json!({"a": "abc", "b": [1, 2, 3]}), 4, 2);
        assert_eq!(v, json!({"a": "abc", "b": [1, 2]}));
        assert!(cut);
        let same = json!({"a": "abcd", "b": [1]});
        assert_eq!(shorten(&same, 4, 2), (same.clone(), false));
    }
}

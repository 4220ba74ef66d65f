//! Canonical JSON and digests, byte-compatible with W&B Weave (spec §9).
//!
//! Weave hashes `json.dumps(val, sort_keys=True, separators=(", ", ": "))` (ASCII escapes, Python
//! float repr) with sha256, encodes it as URL-safe base64 without padding and replaces `-` by `X`
//! and `_` by `Y`. Table digests are the exception: lowercase hex. Values that hold refs are
//! hashed after ref internalisation: see [`object_digest`] and [`row_digest`].

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::refs::internalize_value;

/// Canonical JSON text of `value`, as Python's `json.dumps(value, sort_keys=True,
/// separators=(", ", ": "))` writes it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Weave digest of arbitrary bytes.
pub fn digest_bytes(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hash)
        .replace('-', "X")
        .replace('_', "Y")
}

/// Weave digest of a string (its UTF-8 bytes).
pub fn digest_str(text: &str) -> String {
    digest_bytes(text.as_bytes())
}

/// Weave digest of a JSON value as it is: the digest of its canonical JSON. Values holding
/// `weave:///` refs hash differently on a server: use [`object_digest`] for those.
pub fn digest_value(value: &Value) -> String {
    digest_bytes(canonical_json(value).as_bytes())
}

/// The digest a Weave server gives an object version: the digest of `val` after every
/// `weave:///<entity>/<project>/...` ref in it is rewritten to its internal form
/// (`weave-trace-internal:///<internal project id>/...`, see
/// [`internal_project_id`](crate::refs::internal_project_id)).
pub fn object_digest(val: &Value) -> String {
    match internalize_value(val) {
        Some(internal) => digest_value(&internal),
        None => digest_value(val),
    }
}

/// The digest of one table row: like [`object_digest`] (rows must be JSON objects; that is
/// checked where tables are created, not here).
pub fn row_digest(row: &Value) -> String {
    object_digest(row)
}

/// A table's digest: lowercase hex sha256 of its row digests concatenated, in order.
pub fn table_digest<S: AsRef<str>>(row_digests: &[S]) -> String {
    let mut h = Sha256::new();
    for d in row_digests {
        h.update(d.as_ref().as_bytes());
    }
    let hash = h.finalize();
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        out.push(char::from_digit((b & 0xF) as u32, 16).unwrap_or('0'));
    }
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // Python sorts str keys by code point; Rust's str order is UTF-8 byte order,
            // which is the same order.
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                write_value(out, &map[k]);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let Some(f) = n.as_f64() else {
        out.push_str(&n.to_string());
        return;
    };
    out.push_str(&python_float_repr(f));
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16,
/// written `1e-05` / `1.5e+16`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', (int_len - n) as usize));
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len as usize]);
                s.push('.');
                s.push_str(&digits[int_len as usize..]);
            }
        } else {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.abs()));
    }
    s
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Python's `ensure_ascii` escapes everything outside ' '..='~', DEL included.
            c if !(' '..='~').contains(&c) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python_rules() {
        assert_eq!(python_float_repr(1.0), "1.0");
        assert_eq!(python_float_repr(0.1), "0.1");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e16), "1.5e+16");
        assert_eq!(python_float_repr(1e15), "1000000000000000.0");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(0.00001), "1e-05");
        assert_eq!(python_float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(python_float_repr(123.456), "123.456");
    }

    #[test]
    fn spec_example_canonicalises_like_python() {
        let v: Value = serde_json::from_str(
            r#"{"b": 1.0, "a": "é😀", "c": [1e-05, 1e+16, true, null, "\u007f/\n"]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a": "\u00e9\ud83d\ude00", "b": 1.0, "c": [1e-05, 1e+16, true, null, "\u007f/\n"]}"#
        );
    }

    #[test]
    fn spec_digest_vectors() {
        // spec §9, verified against the recorded server.
        let code =
            "import weave\n\n@weave.op\ndef inner_add(a: int, b: int) -> int:\n    return a + b\n";
        assert_eq!(
            digest_str(code),
            "EScHZw6820riMXyO7hVvogN2IgF7z0mBSYrPHzVX07U"
        );
        let op: Value = serde_json::json!({"_type": "CustomWeaveType", "files": {"obj.py": "EScHZw6820riMXyO7hVvogN2IgF7z0mBSYrPHzVX07U"}, "weave_type": {"type": "Op"}});
        assert_eq!(
            object_digest(&op),
            "RlwwfDW23KS96aGmTry7sYVX8K9H1hgQtj8BOYYgOv8"
        );
        let rows = [
            serde_json::json!({"question": "hi", "expected": "Answer: HI"}),
            serde_json::json!({"question": "yo", "expected": "nope"}),
            serde_json::json!({"question": "abc", "expected": "Answer: ABC"}),
        ];
        let digests: Vec<String> = rows.iter().map(row_digest).collect();
        assert_eq!(
            digests,
            [
                "DBS0LjHpJq75k8yOnYFiMpaPvMhyy0dWRzmLVFWW4SM",
                "0G2Cp8RXyvKZqVAaGEdqgdzerPNQaBFxgsY3e4t7PfY",
                "QgwmY8tZklQ6Ne7vDXBTn8oHXXRjRMelOcJLyeaFdr8"
            ]
        );
        assert_eq!(
            table_digest(&digests),
            "3052b340be7ec96ac4890a918aa7e6e068c99739a8bf0d85014597b883577abb"
        );
        assert_eq!(
            table_digest::<&str>(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let dataset = serde_json::json!({"_bases": ["Object", "BaseModel"], "_class_name": "Dataset", "_type": "Dataset", "description": null, "name": "qa-rows", "rows": "weave:///myent/myproj/table/3052b340be7ec96ac4890a918aa7e6e068c99739a8bf0d85014597b883577abb"});
        assert_eq!(
            object_digest(&dataset),
            "2rSt0XLOnQgQbb3k5tmR6auQjkWG2djpIbOJSt63fwQ"
        );
    }
}

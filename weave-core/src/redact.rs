//! The one redaction rule: which keys are secret, and how their values are replaced, in JSON
//! values and in `Debug` text. Every stored record passes through it once: calls in the
//! writer's encoder, objects and table rows before they are digested (so that a digest is the
//! digest of what is stored, and refs point at it), `Debug` captures when they are made.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// What redacted values are replaced with.
pub const REDACTED: &str = "REDACTED";

/// The default secret-looking keys.
pub fn default_redact_keys() -> Vec<String> {
    [
        "api_key",
        "apikey",
        "authorization",
        "auth_headers",
        "password",
        "passwd",
        "token",
        "secret",
        "cookie",
        "private_key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A client's list of secret keys, split into words once. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct RedactKeys {
    keys: Arc<[Vec<String>]>,
    id: u64,
}

impl RedactKeys {
    /// The rule for these keys (see [`RedactKeys::is_secret`]).
    pub fn new(keys: &[String]) -> RedactKeys {
        let keys: Vec<Vec<String>> = keys
            .iter()
            .map(|k| split_words(k))
            .filter(|w| !w.is_empty())
            .collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        keys.hash(&mut h);
        RedactKeys {
            keys: keys.into(),
            id: h.finish(),
        }
    }

    /// The rule for [`default_redact_keys`], made once.
    pub fn defaults() -> RedactKeys {
        static DEFAULTS: OnceLock<RedactKeys> = OnceLock::new();
        DEFAULTS
            .get_or_init(|| RedactKeys::new(&default_redact_keys()))
            .clone()
    }

    /// Equal for equal key lists: tells digests made under one rule from another's.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A key is secret when its words (split on `_`, `-`, `.`, space and case changes) contain
    /// one of the configured keys' words as a contiguous run: `openai_api_key`, `X-Api-Key`,
    /// `apiKey` and `access_token` match `api_key` / `token`; `max_tokens` does not match
    /// `token`.
    pub fn is_secret(&self, key: &str) -> bool {
        let words = split_words(key);
        self.keys
            .iter()
            .any(|kw| words.windows(kw.len()).any(|w| w == kw.as_slice()))
    }

    /// Redacts `value` in place.
    pub fn redact(&self, value: &mut Value) {
        redact_with(value, &mut |k| self.is_secret(k));
    }

    /// `value` redacted: borrowed when it holds no secret key (no copy), else a redacted copy.
    pub fn redacted<'a>(&self, value: &'a Value) -> Cow<'a, Value> {
        if self.holds_secret(value) {
            let mut v = value.clone();
            self.redact(&mut v);
            Cow::Owned(v)
        } else {
            Cow::Borrowed(value)
        }
    }

    fn holds_secret(&self, value: &Value) -> bool {
        match value {
            Value::Object(m) => m.iter().any(|(k, v)| {
                (self.is_secret(k) && v.as_str() != Some(REDACTED)) || self.holds_secret(v)
            }),
            Value::Array(items) => items.iter().any(|v| self.holds_secret(v)),
            _ => false,
        }
    }

    /// `Debug` text with the values of secret fields replaced: `Req { api_key: "sk-1", n: 2 }`
    /// becomes `Req { api_key: "REDACTED", n: 2 }`; map entries (`{"token": Some("t")}`) too.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact_text_with(text, &mut |k| self.is_secret(k))
    }
}

/// A [`RedactKeys`] remembering each key's verdict: the writer sees the same few keys
/// (argument names, settings) over and over.
pub struct Redactor {
    keys: RedactKeys,
    verdicts: HashMap<String, bool>,
}

/// Verdicts remembered at most; past this (keys made of data), the cache starts over.
const MAX_VERDICTS: usize = 4096;

impl Redactor {
    /// A redactor for these keys.
    pub fn new(keys: RedactKeys) -> Self {
        Redactor {
            keys,
            verdicts: HashMap::new(),
        }
    }

    /// The rule.
    pub fn keys(&self) -> &RedactKeys {
        &self.keys
    }

    /// Redacts `value` in place.
    pub fn redact(&mut self, value: &mut Value) {
        redact_with(value, &mut |k| self.is_secret(k));
    }

    /// Redacts a JSON object in place.
    pub fn redact_map(&mut self, map: &mut Map<String, Value>) {
        redact_map_with(map, &mut |k| self.is_secret(k));
    }

    /// See [`RedactKeys::redact_text`].
    pub fn redact_text<'a>(&mut self, text: &'a str) -> Cow<'a, str> {
        redact_text_with(text, &mut |k| self.is_secret(k))
    }

    /// See [`RedactKeys::is_secret`].
    pub fn is_secret(&mut self, key: &str) -> bool {
        if let Some(&secret) = self.verdicts.get(key) {
            return secret;
        }
        let secret = self.keys.is_secret(key);
        if self.verdicts.len() >= MAX_VERDICTS {
            self.verdicts.clear();
        }
        self.verdicts.insert(key.to_string(), secret);
        secret
    }
}

fn redact_with(value: &mut Value, secret: &mut dyn FnMut(&str) -> bool) {
    match value {
        Value::Object(map) => redact_map_with(map, secret),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_with(v, secret)),
        _ => {}
    }
}

fn redact_map_with(map: &mut Map<String, Value>, secret: &mut dyn FnMut(&str) -> bool) {
    for (k, v) in map.iter_mut() {
        if secret(k) {
            *v = Value::String(REDACTED.into());
        } else {
            redact_with(v, secret);
        }
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Where the `Debug` value starting at `start` ends: at a `,` or an unmatched closing bracket
/// outside strings, or at the end.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let quote = b[i];
                i += 1;
                while i < b.len() && b[i] != quote {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            b',' if depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    // Trailing spaces (`{ api_key: "x" }`) and newlines (`{:#?}`) stay outside the value.
    let mut end = i.min(b.len());
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

fn redact_text_with<'a>(text: &'a str, secret: &mut dyn FnMut(&str) -> bool) -> Cow<'a, str> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(p) = text[from..].find(": ") {
        let colon = from + p;
        from = colon + 1;
        // `key: ` (struct fields) or `"key": ` (map entries).
        let quoted = colon > 0 && b[colon - 1] == b'"';
        let key_end = if quoted { colon - 1 } else { colon };
        let mut key_start = key_end;
        while key_start > 0 && is_key_byte(b[key_start - 1]) {
            key_start -= 1;
        }
        if key_start == key_end || (quoted && (key_start == 0 || b[key_start - 1] != b'"')) {
            continue;
        }
        if !secret(&text[key_start..key_end]) {
            continue;
        }
        let value_start = colon + 2;
        let end = value_end(b, value_start);
        if end > value_start && &text[value_start..end] != "\"REDACTED\"" {
            out.push_str(&text[copied..value_start]);
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
            copied = end;
        }
        from = end.max(from);
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn is_secret_key(key: &str) -> bool {
        RedactKeys::defaults().is_secret(key)
    }

    #[test]
    fn secret_keys() {
        for s in [
            "api_key",
            "OPENAI_API_KEY",
            "x-api-key",
            "apiKey",
            "Authorization",
            "access_token",
            "token",
            "client_secret",
            "password",
        ] {
            assert!(is_secret_key(s), "{s} should be secret");
        }
        for s in [
            "max_tokens",
            "prompt_tokens",
            "tokenizer",
            "model",
            "keys",
            "author",
        ] {
            assert!(!is_secret_key(s), "{s} should not be secret");
        }
    }

    #[test]
    fn debug_text_loses_the_values_of_secret_fields_only() {
        let k = RedactKeys::defaults();
        let cases = [
            (
                r#"Req { model: "m", api_key: "sk-1, \"x\"", max_tokens: 5 }"#,
                r#"Req { model: "m", api_key: "REDACTED", max_tokens: 5 }"#,
            ),
            (
                r#"Cfg { auth: Auth { token: Some("t-2") }, n: [1, 2] }"#,
                r#"Cfg { auth: Auth { token: "REDACTED" }, n: [1, 2] }"#,
            ),
            (
                r#"{"x-api-key": "k-3", "host": "h"}"#,
                r#"{"x-api-key": "REDACTED", "host": "h"}"#,
            ),
            (
                "Req {\n    password: Secret(\n        \"p-4\",\n    ),\n    n: 1,\n}",
                "Req {\n    password: \"REDACTED\",\n    n: 1,\n}",
            ),
            ("Pair(\"a\", 1)", "Pair(\"a\", 1)"),
            ("tokens: 5, note: a: b", "tokens: 5, note: a: b"),
        ];
        for (text, want) in cases {
            assert_eq!(k.redact_text(text), want, "{text}");
            // Idempotent: redacting again changes nothing.
            assert_eq!(k.redact_text(want), want);
        }
        assert!(matches!(k.redact_text("Plain { n: 1 }"), Cow::Borrowed(_)));
    }

    #[test]
    fn redacted_copies_only_values_with_secrets() {
        let k = RedactKeys::defaults();
        let clean = json!({"a": [{"b": 1}], "max_tokens": 3});
        assert!(matches!(k.redacted(&clean), Cow::Borrowed(_)));
        let dirty = json!({"a": [{"password": "p"}]});
        assert_eq!(
            k.redacted(&dirty).into_owned(),
            json!({"a": [{"password": "REDACTED"}]})
        );
        let done = json!({"a": [{"password": "REDACTED"}]});
        assert!(matches!(k.redacted(&done), Cow::Borrowed(_)));
        assert_eq!(
            RedactKeys::new(&["token".into()]).id(),
            RedactKeys::new(&["token".into()]).id()
        );
        assert_ne!(RedactKeys::defaults().id(), RedactKeys::new(&[]).id());
    }
}

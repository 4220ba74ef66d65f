//! Turning arbitrary values into JSON for a call's inputs and output.
//!
//! The choice is made at compile time by autoref specialisation, so `#[weave::op]` puts no
//! bounds on the user's types: a [`Model`](crate::Model) is recorded as its ref, a
//! `serde::Serialize` value as its JSON, a `Debug` value as its debug text, anything else as
//! its type name. Errors are recorded as `{type, message, traceback}` using, in order,
//! `std::error::Error` (the source chain becomes the traceback), `Display`, `Debug`.

use std::collections::HashMap;
use std::fmt::{Debug, Display};

use serde::Serialize;
use serde_json::Value;

use crate::model::Model;

/// Borrowed value under capture; the number of `&` in front of it picks the strategy.
#[doc(hidden)]
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

/// Highest priority: a model is recorded as the ref of its current version.
#[doc(hidden)]
pub trait CaptureModel {
    fn __weave_capture(&self) -> Value;
}
impl<T: Model + ?Sized> CaptureModel for &&&Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        crate::model::model_ref_value(self.0)
    }
}

/// Serialisable values are recorded as their JSON.
#[doc(hidden)]
pub trait CaptureSerialize {
    fn __weave_capture(&self) -> Value;
}
impl<T: Serialize + ?Sized> CaptureSerialize for &&Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        match serde_json::to_value(self.0) {
            Ok(v) => v,
            Err(e) => Value::String(format!(
                "<{} could not be serialised: {e}>",
                std::any::type_name::<T>()
            )),
        }
    }
}

/// `Debug` values are recorded as their debug text.
#[doc(hidden)]
pub trait CaptureDebug {
    fn __weave_capture(&self) -> Value;
}
impl<T: Debug + ?Sized> CaptureDebug for &Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        Value::String(format!("{:?}", self.0))
    }
}

/// Anything else is recorded as its type name.
#[doc(hidden)]
pub trait CaptureAny {
    fn __weave_capture(&self) -> Value;
}
impl<T: ?Sized> CaptureAny for Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        Value::String(format!("<{}>", std::any::type_name::<T>()))
    }
}

/// A recorded exception, stored as the JSON string `{"type","message","traceback"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Exception {
    /// Type of the error (Rust type name, or `panic`, or `Cancelled`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
    /// Source chain, panic location, or empty.
    pub traceback: String,
}

/// Errors implementing `std::error::Error`: message plus the chain of sources.
#[doc(hidden)]
pub trait ErrError {
    fn __weave_error(&self) -> Exception;
}
impl<T: std::error::Error + ?Sized> ErrError for &&&Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        let mut traceback = String::new();
        let mut source = self.0.source();
        while let Some(s) = source {
            traceback.push_str("caused by: ");
            traceback.push_str(&s.to_string());
            traceback.push('\n');
            source = s.source();
        }
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: self.0.to_string(),
            traceback,
        }
    }
}

/// `Display` errors (e.g. `anyhow::Error`): the alternate form carries the context chain.
#[doc(hidden)]
pub trait ErrDisplay {
    fn __weave_error(&self) -> Exception;
}
impl<T: Display + ?Sized> ErrDisplay for &&Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: format!("{:#}", self.0),
            traceback: String::new(),
        }
    }
}

/// `Debug` errors.
#[doc(hidden)]
pub trait ErrDebug {
    fn __weave_error(&self) -> Exception;
}
impl<T: Debug + ?Sized> ErrDebug for &Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: format!("{:?}", self.0),
            traceback: String::new(),
        }
    }
}

/// Errors with nothing to show but their type.
#[doc(hidden)]
pub trait ErrAny {
    fn __weave_error(&self) -> Exception;
}
impl<T: ?Sized> ErrAny for Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: String::new(),
            traceback: String::new(),
        }
    }
}

/// Largest stored size of one captured value, in bytes of JSON.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Replaces a value whose JSON is over [`MAX_VALUE_BYTES`] by a string holding its head and a
/// `[weave: truncated ...]` marker. Never fails.
pub(crate) fn cap_size(value: Value) -> Value {
    match &value {
        Value::Null | Value::Bool(_) | Value::Number(_) => return value,
        Value::String(s) if s.len() <= MAX_VALUE_BYTES => return value,
        _ => {}
    }
    let text = match &value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let keep = MAX_VALUE_BYTES - 200;
    let mut cut = keep;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!(
        "{}...[weave: truncated, {} bytes in all]",
        &text[..cut],
        text.len()
    ))
}

/// Replaces the values of keys that look like secrets by `"REDACTED"`, recursively.
///
/// The configured keys are split into words once, and each key's verdict is remembered: the
/// writer sees the same few keys (argument names, settings) over and over.
pub(crate) struct Redactor {
    keys: Vec<Vec<String>>,
    verdicts: HashMap<String, bool>,
}

/// Verdicts remembered at most; past this (keys made of data), the cache starts over.
const MAX_VERDICTS: usize = 4096;

impl Redactor {
    pub(crate) fn new(keys: &[String]) -> Self {
        Redactor {
            keys: keys
                .iter()
                .map(|k| split_words(k))
                .filter(|w| !w.is_empty())
                .collect(),
            verdicts: HashMap::new(),
        }
    }

    /// Redacts `value` in place.
    pub(crate) fn redact(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret(k) {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.redact(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }

    /// A key is secret when its words (split on `_`, `-`, `.`, space and case changes) contain
    /// one of the configured keys' words as a contiguous run: `openai_api_key`, `X-Api-Key`,
    /// `apiKey` and `access_token` match `api_key` / `token`; `max_tokens` does not match
    /// `token`.
    pub(crate) fn is_secret(&mut self, key: &str) -> bool {
        if let Some(&secret) = self.verdicts.get(key) {
            return secret;
        }
        let secret = matches_words(&split_words(key), &self.keys);
        if self.verdicts.len() >= MAX_VERDICTS {
            self.verdicts.clear();
        }
        self.verdicts.insert(key.to_string(), secret);
        secret
    }
}

/// What redacted values are replaced with.
pub const REDACTED: &str = "REDACTED";

/// [`Redactor::is_secret`] with no cache.
#[cfg(test)]
pub(crate) fn is_secret_key(key: &str, keys: &[String]) -> bool {
    Redactor::new(keys).is_secret(key)
}

fn matches_words(words: &[String], keys: &[Vec<String>]) -> bool {
    keys.iter()
        .any(|kw| words.windows(kw.len()).any(|w| w == kw.as_slice()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        let k = default_redact_keys();
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
            assert!(is_secret_key(s, &k), "{s} should be secret");
        }
        for s in [
            "max_tokens",
            "prompt_tokens",
            "tokenizer",
            "model",
            "keys",
            "author",
        ] {
            assert!(!is_secret_key(s, &k), "{s} should not be secret");
        }
    }

    #[test]
    fn cap_size_truncates_with_marker() {
        let big = Value::String("x".repeat(MAX_VALUE_BYTES + 10));
        let Value::String(s) = cap_size(big) else {
            panic!("string expected")
        };
        assert!(s.len() <= MAX_VALUE_BYTES);
        assert!(s.ends_with(&format!(
            "[weave: truncated, {} bytes in all]",
            MAX_VALUE_BYTES + 10
        )));
        assert_eq!(cap_size(Value::from(3)), Value::from(3));
    }
}

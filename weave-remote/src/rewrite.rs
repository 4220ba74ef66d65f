//! Digest rewriting for servers whose internal project id differs from the client's
//! assumption: maps the ref a client made (`weave:///e/p/object/name:<our digest>`) to the one
//! the server answered, and rewrites refs in records sent afterwards.

use std::collections::HashMap;

use serde_json::Value;

/// Ref prefixes to replace: ours → the server's.
#[derive(Debug, Default)]
pub(crate) struct Rewrites(HashMap<String, String>);

impl Rewrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records that the server stored `ours` (a ref without extra path) as `theirs`.
    pub(crate) fn insert(&mut self, ours: String, theirs: String) {
        if ours != theirs {
            tracing::info!(%ours, %theirs, "weave: the server digests differently; rewriting refs");
            self.0.insert(ours, theirs);
        }
    }

    /// `s` with a known ref prefix replaced.
    fn rewrite_str(&self, s: &str) -> Option<String> {
        if !s.starts_with(weave_types::refs::REF_SCHEME) {
            return None;
        }
        self.0.iter().find_map(|(ours, theirs)| {
            let rest = s.strip_prefix(ours.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{theirs}{rest}"))
        })
    }

    /// Rewrites every string in `v` in place.
    pub(crate) fn apply(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(new) = self.rewrite_str(s) {
                    *s = new;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.apply(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.apply(x)),
            _ => {}
        }
    }

    /// Rewrites a string field in place.
    pub(crate) fn apply_str(&self, s: &mut String) {
        if let Some(new) = self.rewrite_str(s) {
            *s = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_refs_and_their_extra_paths_only() {
        let mut r = Rewrites::default();
        r.insert(
            "weave:///e/p/object/m:AAA".into(),
            "weave:///e/p/object/m:BBB".into(),
        );
        let mut v = json!({
            "self": "weave:///e/p/object/m:AAA",
            "deep": ["weave:///e/p/object/m:AAA/attr/x", "weave:///e/p/object/m:AAAB"],
            "n": 1, "other": "weave:///e/p/object/n:AAA"
        });
        r.apply(&mut v);
        assert_eq!(
            v,
            json!({
                "self": "weave:///e/p/object/m:BBB",
                "deep": ["weave:///e/p/object/m:BBB/attr/x", "weave:///e/p/object/m:AAAB"],
                "n": 1, "other": "weave:///e/p/object/n:AAA"
            })
        );
        // Equal digests record nothing.
        let mut same = Rewrites::default();
        same.insert("a".into(), "a".into());
        assert!(same.is_empty());
    }
}

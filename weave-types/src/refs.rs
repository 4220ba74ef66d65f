//! Weave refs (spec §7): parsing and printing the full grammar, the internal form used for
//! digests, and finding refs inside JSON values.
//!
//! External form: `weave:///<entity>/<project>/<kind>/<target>[/<edge>/<value>]*` where kind and
//! target are `object/<name>:<digest>`, `op/<name>:<digest>`, `table/<digest>` or
//! `call/<call id>`, and each extra edge is `attr`, `key`, `index` or `id` followed by a
//! percent-encoded value. Internal form: `weave-trace-internal:///<internal project id>/...`
//! with the same tail, where the internal project id is base64 of `entity/project` (the
//! scheme of the recording server, which reproduces its digests).

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// Scheme of external refs.
pub const REF_SCHEME: &str = "weave:///";
/// Scheme of internal refs (storage and digests).
pub const INTERNAL_REF_SCHEME: &str = "weave-trace-internal:///";

/// A malformed ref.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid weave ref `{uri}`: {reason}; expected weave:///<entity>/<project>/<object|op>/<name>:<digest>, .../table/<digest> or .../call/<id>")]
pub struct RefError {
    /// What was given.
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What a ref points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// An object version (model, dataset, evaluation...).
    Object,
    /// An op version.
    Op,
    /// A table (by digest; no name).
    Table,
    /// A call (by id; no name).
    Call,
}

impl RefKind {
    /// The path segment: `object`, `op`, `table`, `call`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Object => "object",
            RefKind::Op => "op",
            RefKind::Table => "table",
            RefKind::Call => "call",
        }
    }
}

/// One step of a ref's extra path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// An object attribute.
    Attr,
    /// A dict key.
    Key,
    /// A list index.
    Index,
    /// A table row, by row digest.
    Id,
}

impl Edge {
    /// The path segment: `attr`, `key`, `index`, `id`.
    pub fn as_str(self) -> &'static str {
        match self {
            Edge::Attr => "attr",
            Edge::Key => "key",
            Edge::Index => "index",
            Edge::Id => "id",
        }
    }

    fn parse(s: &str) -> Option<Edge> {
        Some(match s {
            "attr" => Edge::Attr,
            "key" => Edge::Key,
            "index" => Edge::Index,
            "id" => Edge::Id,
            _ => return None,
        })
    }
}

/// A parsed ref.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WeaveRef {
    /// Entity.
    pub entity: String,
    /// Project.
    pub project: String,
    /// What it points at.
    pub kind: RefKind,
    /// Object or op name; empty for tables and calls.
    pub name: String,
    /// Version digest (or `latest` / `v<N>` in user input) for objects and ops, the digest of a
    /// table, the id of a call.
    pub digest: String,
    /// Extra path, decoded.
    pub extra: Vec<(Edge, String)>,
}

impl WeaveRef {
    /// A ref to an object or op version.
    pub fn object(project_id: &str, kind: RefKind, name: &str, digest: &str) -> WeaveRef {
        let (entity, project) = split_project_id(project_id).unwrap_or((project_id, ""));
        WeaveRef {
            entity: entity.into(),
            project: project.into(),
            kind,
            name: name.into(),
            digest: digest.into(),
            extra: Vec::new(),
        }
    }

    /// Parses an external ref (`weave:///...`).
    pub fn parse(uri: &str) -> Result<WeaveRef, RefError> {
        let rest = uri.strip_prefix(REF_SCHEME).ok_or_else(|| RefError {
            uri: uri.into(),
            reason: "does not start with weave:///".into(),
        })?;
        let mut parts = rest.splitn(3, '/');
        let (Some(entity), Some(project), Some(tail)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(RefError {
                uri: uri.into(),
                reason: "missing parts".into(),
            });
        };
        if entity.is_empty() || project.is_empty() {
            return Err(RefError {
                uri: uri.into(),
                reason: "empty entity or project".into(),
            });
        }
        let mut r = parse_tail(uri, tail)?;
        r.entity = entity.into();
        r.project = project.into();
        Ok(r)
    }

    /// Parses an internal ref (`weave-trace-internal:///<internal id>/...`), returning the
    /// internal project id and the ref (whose entity and project are decoded from the id when
    /// it is base64 of `entity/project`, else empty).
    pub fn parse_internal(uri: &str) -> Result<(String, WeaveRef), RefError> {
        let rest = uri
            .strip_prefix(INTERNAL_REF_SCHEME)
            .ok_or_else(|| RefError {
                uri: uri.into(),
                reason: "does not start with weave-trace-internal:///".into(),
            })?;
        let Some((internal, tail)) = rest.split_once('/') else {
            return Err(RefError {
                uri: uri.into(),
                reason: "missing parts".into(),
            });
        };
        let mut r = parse_tail(uri, tail)?;
        if let Some((e, p)) = external_project_id(internal)
            .as_deref()
            .and_then(split_project_id)
        {
            r.entity = e.into();
            r.project = p.into();
        }
        Ok((internal.to_string(), r))
    }

    /// `entity/project`.
    pub fn project_id(&self) -> String {
        format!("{}/{}", self.entity, self.project)
    }

    /// The same ref without its extra path.
    pub fn without_extra(&self) -> WeaveRef {
        WeaveRef {
            extra: Vec::new(),
            ..self.clone()
        }
    }

    /// The ref with one more step of extra path.
    pub fn with_edge(mut self, edge: Edge, value: impl Into<String>) -> WeaveRef {
        self.extra.push((edge, value.into()));
        self
    }

    fn write_tail(&self, f: &mut impl fmt::Write) -> fmt::Result {
        write!(f, "{}/", self.kind.as_str())?;
        match self.kind {
            RefKind::Object | RefKind::Op => write!(f, "{}:{}", self.name, self.digest)?,
            RefKind::Table | RefKind::Call => f.write_str(&self.digest)?,
        }
        for (edge, value) in &self.extra {
            write!(f, "/{}/{}", edge.as_str(), quote(value))?;
        }
        Ok(())
    }

    /// The internal form, `weave-trace-internal:///<base64(entity/project)>/...`.
    pub fn to_internal(&self) -> String {
        let mut s = format!(
            "{INTERNAL_REF_SCHEME}{}/",
            internal_project_id(&self.project_id())
        );
        let _ = self.write_tail(&mut s);
        s
    }
}

impl fmt::Display for WeaveRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REF_SCHEME}{}/{}/", self.entity, self.project)?;
        self.write_tail(f)
    }
}

impl std::str::FromStr for WeaveRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WeaveRef::parse(s)
    }
}

fn parse_tail(uri: &str, tail: &str) -> Result<WeaveRef, RefError> {
    let bad = |reason: &str| RefError {
        uri: uri.into(),
        reason: reason.into(),
    };
    let mut segs = tail.split('/');
    let kind = match segs.next() {
        Some("object") => RefKind::Object,
        Some("op") => RefKind::Op,
        Some("table") => RefKind::Table,
        Some("call") => RefKind::Call,
        Some(other) => {
            return Err(bad(&format!(
                "unknown kind `{other}` (expected object, op, table or call)"
            )))
        }
        None => return Err(bad("missing kind")),
    };
    let target = segs.next().ok_or_else(|| bad("missing name and digest"))?;
    let (name, digest) = match kind {
        RefKind::Object | RefKind::Op => {
            let (n, d) = target
                .rsplit_once(':')
                .ok_or_else(|| bad("missing `:<digest>` after the name"))?;
            if n.is_empty() || d.is_empty() {
                return Err(bad("empty name or digest"));
            }
            (n.to_string(), d.to_string())
        }
        RefKind::Table | RefKind::Call => {
            if target.is_empty() {
                return Err(bad("empty digest or id"));
            }
            (String::new(), target.to_string())
        }
    };
    let mut extra = Vec::new();
    while let Some(edge) = segs.next() {
        let edge =
            Edge::parse(edge).ok_or_else(|| bad(&format!("unknown extra path edge `{edge}`")))?;
        let value = segs
            .next()
            .ok_or_else(|| bad("extra path edge without a value"))?;
        let value = unquote(value).ok_or_else(|| bad("bad percent-encoding in extra path"))?;
        extra.push((edge, value));
    }
    Ok(WeaveRef {
        entity: String::new(),
        project: String::new(),
        kind,
        name,
        digest,
        extra,
    })
}

/// Splits `entity/project`; `None` unless both parts are non-empty and there is exactly one `/`.
pub fn split_project_id(project_id: &str) -> Option<(&str, &str)> {
    let (e, p) = project_id.split_once('/')?;
    (!e.is_empty() && !p.is_empty() && !p.contains('/')).then_some((e, p))
}

/// The internal project id of `entity/project`: its standard base64.
pub fn internal_project_id(project_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(project_id.as_bytes())
}

/// The `entity/project` an internal project id stands for, when it is base64 of one.
pub fn external_project_id(internal: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(internal)
        .ok()?;
    let s = String::from_utf8(bytes).ok()?;
    split_project_id(&s).is_some().then_some(s)
}

/// The internal form of a string holding an external ref (only its `weave:///e/p/` prefix is
/// rewritten); `None` for any other string.
pub fn internalize_str(s: &str) -> Option<String> {
    let rest = s.strip_prefix(REF_SCHEME)?;
    let mut parts = rest.splitn(3, '/');
    let (Some(e), Some(p), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if e.is_empty() || p.is_empty() {
        return None;
    }
    Some(format!(
        "{INTERNAL_REF_SCHEME}{}/{tail}",
        internal_project_id(&format!("{e}/{p}"))
    ))
}

/// The external form of a string holding an internal ref whose project id decodes; `None`
/// for any other string.
pub fn externalize_str(s: &str) -> Option<String> {
    let rest = s.strip_prefix(INTERNAL_REF_SCHEME)?;
    let (internal, tail) = rest.split_once('/')?;
    let project = external_project_id(internal)?;
    Some(format!("{REF_SCHEME}{project}/{tail}"))
}

fn map_strings(v: &Value, f: &impl Fn(&str) -> Option<String>) -> Option<Value> {
    match v {
        Value::String(s) => f(s).map(Value::String),
        Value::Array(items) => {
            let mut changed: Option<Vec<Value>> = None;
            for (i, item) in items.iter().enumerate() {
                if let Some(new) = map_strings(item, f) {
                    changed.get_or_insert_with(|| items.clone())[i] = new;
                }
            }
            changed.map(Value::Array)
        }
        Value::Object(map) => {
            let mut changed: Option<serde_json::Map<String, Value>> = None;
            for (k, item) in map {
                if let Some(new) = map_strings(item, f) {
                    changed.get_or_insert_with(|| map.clone())[k] = new;
                }
            }
            changed.map(Value::Object)
        }
        _ => None,
    }
}

/// `value` with every external ref string rewritten to its internal form; `None` when it
/// holds no ref (nothing to copy).
pub fn internalize_value(value: &Value) -> Option<Value> {
    map_strings(value, &internalize_str)
}

/// `value` with every internal ref string rewritten to its external form; `None` when it
/// holds none.
pub fn externalize_value(value: &Value) -> Option<Value> {
    map_strings(value, &externalize_str)
}

/// Every string in `value` (at any depth) that starts with `weave:///`, in order.
pub fn extract_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) if s.starts_with(REF_SCHEME) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| extract_refs(v, out)),
        Value::Object(map) => map.values().for_each(|v| extract_refs(v, out)),
        _ => {}
    }
}

/// The op's name in an op ref (`weave:///e/p/op/<name>:<digest>` -> `<name>`), or the whole
/// string when it is not an op ref (Weave's `trace_name`).
pub fn op_display_name(op_name: &str) -> &str {
    match op_name
        .strip_prefix(REF_SCHEME)
        .and_then(|rest| rest.split_once("/op/"))
    {
        Some((_, tail)) => {
            let tail = tail.split('/').next().unwrap_or(tail);
            tail.rsplit_once(':').map_or(tail, |(n, _)| n)
        }
        None => op_name,
    }
}

/// Python's `urllib.parse.quote(s, safe="")`: everything but `A-Za-z0-9_.-~` percent-encoded.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
pub fn unquote(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `name` is an object name a Weave server accepts: 1 to 128 characters, each a
/// letter, digit, `_`, `.` or `-`.
pub fn is_valid_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Makes `name` a valid object name the way the Python client does: every run of other
/// characters becomes `-`, leading and trailing `-` go, at most 128 characters. An empty
/// result becomes `object`.
pub fn sanitize_object_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_bad = false;
    for c in name.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('-');
            in_bad = true;
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(128).collect();
    if trimmed.is_empty() {
        "object".into()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_round_trips() {
        for uri in [
            "weave:///myent/myproj/object/qa-model:7Q5eiCJYql2k6MBjmf65DfFplqW0B28gA9QxhyKsMHE",
            "weave:///myent/myproj/op/inner_add:RlwwfDW23KS96aGmTry7sYVX8K9H1hgQtj8BOYYgOv8",
            "weave:///myent/myproj/table/3052b340be7ec96ac4890a918aa7e6e068c99739a8bf0d85014597b883577abb",
            "weave:///myent/myproj/call/01a227a3-98f8-7eb1-8649-5b02d1348e3a",
            "weave:///e/p/object/ds:abc/attr/rows/id/DBS0LjHp/key/question",
            "weave:///e/p/object/m:abc/attr/items/index/3",
            "weave:///e/p/object/Name:with:colons:d1",
        ] {
            let r = WeaveRef::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(r.to_string(), uri);
        }
        let r =
            WeaveRef::parse("weave:///e/p/object/ds:abc/attr/rows/id/D1/key/a%2Fb%20c").unwrap();
        assert_eq!(r.kind, RefKind::Object);
        assert_eq!((r.name.as_str(), r.digest.as_str()), ("ds", "abc"));
        assert_eq!(
            r.extra,
            vec![
                (Edge::Attr, "rows".to_string()),
                (Edge::Id, "D1".to_string()),
                (Edge::Key, "a/b c".to_string())
            ]
        );
        let t = WeaveRef::parse("weave:///e/p/table/ff00").unwrap();
        assert_eq!(
            (t.kind, t.name.as_str(), t.digest.as_str()),
            (RefKind::Table, "", "ff00")
        );
        let c = WeaveRef::parse("weave:///e/p/call/123").unwrap();
        assert_eq!((c.kind, c.digest.as_str()), (RefKind::Call, "123"));
    }

    #[test]
    fn malformed_refs_name_the_problem() {
        for (uri, why) in [
            ("", "weave:///"),
            ("weave://e/p/object/n:d", "weave:///"),
            ("weave:///e/p/object/n", "`:<digest>`"),
            ("weave:///e/p/thing/n:d", "unknown kind `thing`"),
            ("weave:///e/p", "missing parts"),
            ("weave:////p/object/n:d", "empty entity"),
            ("weave:///e/p/object/:d", "empty name"),
            ("weave:///e/p/object/n:", "empty name or digest"),
            ("weave:///e/p/object/n:d/attr", "without a value"),
            ("weave:///e/p/object/n:d/bogus/x", "unknown extra path edge"),
            ("weave:///e/p/object/n:d/key/%zz", "percent-encoding"),
            ("weave:///e/p/table/", "empty digest"),
        ] {
            let e = WeaveRef::parse(uri).expect_err(uri);
            assert_eq!(e.uri, uri);
            assert!(e.to_string().contains(why), "{uri}: {e}");
            assert!(e.to_string().starts_with("invalid weave ref"), "{e}");
        }
    }

    #[test]
    fn internal_form_uses_base64_of_the_project() {
        assert_eq!(internal_project_id("myent/myproj"), "bXllbnQvbXlwcm9q");
        assert_eq!(
            external_project_id("bXllbnQvbXlwcm9q").as_deref(),
            Some("myent/myproj")
        );
        let ext = "weave:///myent/myproj/op/QAModel.predict:3ShV";
        let int = "weave-trace-internal:///bXllbnQvbXlwcm9q/op/QAModel.predict:3ShV";
        assert_eq!(internalize_str(ext).as_deref(), Some(int));
        assert_eq!(externalize_str(int).as_deref(), Some(ext));
        assert_eq!(WeaveRef::parse(ext).unwrap().to_internal(), int);
        let (id, r) = WeaveRef::parse_internal(int).unwrap();
        assert_eq!(id, "bXllbnQvbXlwcm9q");
        assert_eq!(r.to_string(), ext);
        assert_eq!(internalize_str("weave:///nope"), None);
        assert_eq!(internalize_str("plain text"), None);

        let v = json!({"a": [ext, 1, {"b": "x"}], "c": "weave:///e/p/table/ab"});
        let i = internalize_value(&v).unwrap();
        assert_eq!(i["a"][0], json!(int));
        assert_eq!(i["a"][2], json!({"b": "x"}));
        assert_eq!(externalize_value(&i).unwrap(), v);
        assert_eq!(internalize_value(&json!({"x": [1, "y"]})), None);
    }

    #[test]
    fn refs_are_found_at_any_depth() {
        let v = json!({"self": "weave:///e/p/object/m:d", "x": [{"y": "weave:///e/p/op/f:d"}], "z": "weave"});
        let mut out = Vec::new();
        extract_refs(&v, &mut out);
        assert_eq!(out, vec!["weave:///e/p/object/m:d", "weave:///e/p/op/f:d"]);
    }

    #[test]
    fn op_display_names() {
        assert_eq!(
            op_display_name("weave:///myent/myproj/op/outer_compute:0YAj"),
            "outer_compute"
        );
        assert_eq!(op_display_name("plain_name"), "plain_name");
        assert_eq!(op_display_name("weave:///e/p/op/A.b:d/attr/x"), "A.b");
    }

    #[test]
    fn quoting_matches_python() {
        assert_eq!(quote("a/b c:d~_.-é"), "a%2Fb%20c%3Ad~_.-%C3%A9");
        assert_eq!(
            unquote("a%2Fb%20c%3Ad~_.-%C3%A9").as_deref(),
            Some("a/b c:d~_.-é")
        );
        assert_eq!(unquote("%4"), None);
    }

    #[test]
    fn object_names() {
        assert!(is_valid_object_name("Evaluation.predict_and_score"));
        assert!(is_valid_object_name("qa-rows"));
        assert!(!is_valid_object_name("a b"));
        assert!(!is_valid_object_name(""));
        assert!(!is_valid_object_name(&"x".repeat(129)));
        assert_eq!(sanitize_object_name("my op (v2)!"), "my-op-v2");
        assert_eq!(sanitize_object_name("Foo<Bar>::baz"), "Foo-Bar-baz");
        assert_eq!(sanitize_object_name("???"), "object");
        assert_eq!(sanitize_object_name(&"y".repeat(300)).len(), 128);
    }
}

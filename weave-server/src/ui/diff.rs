//! `POST /ext/ui/diff`: what changed between two versions of an op or object — the code of
//! an op (its files: `obj.py` of Python ops, `obj.rs` of Rust ones; inline `code` of older
//! Rust clients), the attributes of any other object as JSON with sorted keys — as a line
//! diff in hunks with context.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weave_store::TraceStore;
use weave_types::{FileContentReadReq, ObjReadReq, ObjSchema};

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// Diff lines answered at most (a diff larger than this is cut, and says so).
const MAX_LINES: usize = 20_000;

/// Two versions of one object to compare.
#[derive(Debug, Clone, Deserialize)]
pub struct DiffReq {
    /// `entity/project`.
    pub project_id: String,
    /// Object or op name.
    pub object_id: String,
    /// The older version: digest, `v<N>` or `latest`.
    pub a: String,
    /// The newer version.
    pub b: String,
}

/// One version, as the diff names it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Digest.
    pub digest: String,
    /// 0-based version number.
    pub version_index: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `equal`, `delete` or `insert`.
    pub tag: &'static str,
    /// 1-based line in the older text (not for inserts).
    pub old: Option<usize>,
    /// 1-based line in the newer text (not for deletes).
    pub new: Option<usize>,
    /// The line, without its newline.
    pub text: String,
}

/// The diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRes {
    /// `code` (an op's source) or `json` (an object's value).
    pub kind: &'static str,
    /// Source language of an op (`python`, `rust`), when known.
    pub language: Option<String>,
    /// The older version.
    pub a: VersionInfo,
    /// The newer version.
    pub b: VersionInfo,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
    /// Changed regions with context; empty when the texts are equal.
    pub hunks: Vec<Vec<DiffLine>>,
    /// Whether hunks were left out (more than 20,000 lines).
    pub truncated: bool,
}

/// A JSON value with every object's keys sorted (stable text whatever the map order).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The text a version is compared by, its kind and language.
pub(crate) async fn version_text(
    store: &dyn TraceStore,
    obj: &ObjSchema,
) -> Result<(String, &'static str, Option<String>), AppError> {
    if let Some(code) = obj.val.get("code").and_then(Value::as_str) {
        let lang = obj.val["language"].as_str().map(str::to_string);
        return Ok((code.to_string(), "code", lang));
    }
    if let Some(files) = obj.val.get("files").and_then(Value::as_object) {
        let mut names: Vec<&String> = files.keys().collect();
        names.sort();
        let mut text = String::new();
        for name in &names {
            let Some(digest) = files[*name].as_str() else {
                continue;
            };
            let content = store
                .file_content_read(FileContentReadReq {
                    project_id: obj.project_id.clone(),
                    digest: digest.to_string(),
                })
                .await?
                .content;
            if names.len() > 1 {
                text.push_str(&format!("# --- {name} ---\n"));
            }
            text.push_str(&String::from_utf8_lossy(&content));
        }
        let lang_of = |n: &str| {
            if n.ends_with(".py") {
                Some("python")
            } else if n.ends_with(".rs") {
                Some("rust")
            } else {
                None
            }
        };
        let first = names.first().and_then(|n| lang_of(n));
        let lang = first
            .filter(|l| names.iter().all(|n| lang_of(n) == Some(*l)))
            .map(str::to_string);
        return Ok((text, "code", lang));
    }
    let text = serde_json::to_string_pretty(&sorted(&obj.val))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((text + "\n", "json", None))
}

/// The line diff of two texts in hunks with context, and the added/removed counts.
pub(crate) fn line_diff(old: &str, new: &str) -> (Vec<Vec<DiffLine>>, usize, usize, bool) {
    let diff = similar::TextDiff::from_lines(old, new);
    let (mut added, mut removed, mut total) = (0, 0, 0);
    let mut truncated = false;
    let mut hunks = Vec::new();
    for group in diff.grouped_ops(CONTEXT) {
        let mut lines = Vec::new();
        for op in &group {
            for change in diff.iter_changes(op) {
                let tag = match change.tag() {
                    similar::ChangeTag::Equal => "equal",
                    similar::ChangeTag::Delete => {
                        removed += 1;
                        "delete"
                    }
                    similar::ChangeTag::Insert => {
                        added += 1;
                        "insert"
                    }
                };
                total += 1;
                if total > MAX_LINES {
                    truncated = true;
                    continue;
                }
                lines.push(DiffLine {
                    tag,
                    old: change.old_index().map(|i| i + 1),
                    new: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
        if !lines.is_empty() {
            hunks.push(lines);
        }
    }
    (hunks, added, removed, truncated)
}

/// The diff for `req`.
pub(crate) async fn compute(store: &dyn TraceStore, req: DiffReq) -> Result<DiffRes, AppError> {
    let read = |digest: String| ObjReadReq {
        project_id: req.project_id.clone(),
        object_id: req.object_id.clone(),
        digest,
        ..Default::default()
    };
    let a = store.obj_read(read(req.a.clone())).await?.obj;
    let b = store.obj_read(read(req.b.clone())).await?.obj;
    let (ta, kind_a, lang_a) = version_text(store, &a).await?;
    let (tb, kind_b, lang_b) = version_text(store, &b).await?;
    let (hunks, added, removed, truncated) = line_diff(&ta, &tb);
    let info = |o: &ObjSchema| VersionInfo {
        digest: o.digest.clone(),
        version_index: o.version_index,
        created_at: o.created_at.clone(),
    };
    Ok(DiffRes {
        kind: if kind_a == kind_b { kind_b } else { "json" },
        language: lang_b.or(lang_a),
        a: info(&a),
        b: info(&b),
        added,
        removed,
        hunks,
        truncated,
    })
}

/// `POST /ext/ui/diff`.
pub(crate) async fn diff(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<DiffReq>,
) -> Result<Json<DiffRes>, AppError> {
    Ok(Json(compute(state.store.as_ref(), req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weave_types::{ObjCreateReq, ObjSchemaForInsert};

    #[test]
    fn hunks_carry_line_numbers_and_counts() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\nk\n";
        let (hunks, added, removed, truncated) = line_diff(old, new);
        assert_eq!((added, removed, truncated), (2, 1, false));
        assert_eq!(hunks.len(), 1, "{hunks:?}");
        let h = &hunks[0];
        assert_eq!(h[0].text, "b", "three lines of context before");
        let del = h.iter().find(|l| l.tag == "delete").unwrap();
        assert_eq!((del.old, del.new, del.text.as_str()), (Some(5), None, "e"));
        let ins = h.iter().find(|l| l.tag == "insert").unwrap();
        assert_eq!((ins.old, ins.new, ins.text.as_str()), (None, Some(5), "E"));
        assert_eq!(h.last().unwrap().text, "k");
        assert!(line_diff("same\n", "same\n").0.is_empty());
    }

    #[tokio::test]
    async fn diffs_rust_op_code_and_object_attributes() {
        let t = crate::testing::fresh_store();
        let create = |id: &str, val: Value| ObjCreateReq {
            obj: ObjSchemaForInsert {
                project_id: "e/p".into(),
                object_id: id.into(),
                val,
                ..Default::default()
            },
        };
        let op = |code: &str| json!({"_type": "Op", "name": "f", "code": code, "language": "rust"});
        let s = t.store.as_ref();
        s.obj_create(create("f", op("fn f() -> i32 {\n    1\n}\n")))
            .await
            .unwrap();
        s.obj_create(create("f", op("fn f() -> i32 {\n    2\n}\n")))
            .await
            .unwrap();
        let d = compute(
            s,
            DiffReq {
                project_id: "e/p".into(),
                object_id: "f".into(),
                a: "v0".into(),
                b: "latest".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!((d.kind, d.language.as_deref()), ("code", Some("rust")));
        assert_eq!((d.a.version_index, d.b.version_index), (0, 1));
        assert_eq!((d.added, d.removed), (1, 1));
        let changed: Vec<&str> = d.hunks[0]
            .iter()
            .filter(|l| l.tag != "equal")
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(changed, ["    1", "    2"]);

        let model = |t: f64| json!({"_class_name": "M", "_bases": ["Model", "Object", "BaseModel"], "temperature": t, "name": "m"});
        s.obj_create(create("m", model(0.0))).await.unwrap();
        s.obj_create(create("m", model(0.7))).await.unwrap();
        let d = compute(
            s,
            DiffReq {
                project_id: "e/p".into(),
                object_id: "m".into(),
                a: "v0".into(),
                b: "v1".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(d.kind, "json");
        let changed: Vec<String> = d.hunks[0]
            .iter()
            .filter(|l| l.tag != "equal")
            .map(|l| format!("{} {}", l.tag, l.text.trim()))
            .collect();
        assert_eq!(
            changed,
            ["delete \"temperature\": 0.0", "insert \"temperature\": 0.7"]
        );

        let missing = compute(
            s,
            DiffReq {
                project_id: "e/p".into(),
                object_id: "m".into(),
                a: "v0".into(),
                b: "v9".into(),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(missing.status(), axum::http::StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn diffs_op_code_kept_in_files() {
        let t = crate::testing::fresh_store();
        let s = t.store.as_ref();
        for (name, file, code) in [
            ("py_op", "obj.py", "def f():\n    return 1\n"),
            ("py_op", "obj.py", "def f():\n    return 2\n"),
            ("rs_op", "obj.rs", "fn f() -> u8 {\n    1\n}\n"),
            ("rs_op", "obj.rs", "fn f() -> u8 {\n    3\n}\n"),
        ] {
            let digest = s
                .file_create(weave_types::FileCreateReq {
                    project_id: "e/p".into(),
                    name: file.into(),
                    content: code.as_bytes().to_vec(),
                    expected_digest: None,
                })
                .await
                .unwrap()
                .digest;
            s.obj_create(ObjCreateReq {
                obj: ObjSchemaForInsert {
                    project_id: "e/p".into(),
                    object_id: name.into(),
                    val: json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {file: digest}}),
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        }
        for (name, lang, old, new) in [
            ("py_op", "python", "    return 1", "    return 2"),
            ("rs_op", "rust", "    1", "    3"),
        ] {
            let d = compute(
                s,
                DiffReq {
                    project_id: "e/p".into(),
                    object_id: name.into(),
                    a: "v0".into(),
                    b: "v1".into(),
                },
            )
            .await
            .unwrap();
            assert_eq!((d.kind, d.language.as_deref()), ("code", Some(lang)));
            let changed: Vec<&str> = d.hunks[0]
                .iter()
                .filter(|l| l.tag != "equal")
                .map(|l| l.text.as_str())
                .collect();
            assert_eq!(changed, [old, new], "{name}");
        }
    }
}

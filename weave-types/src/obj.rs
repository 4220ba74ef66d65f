//! Objects and ops on the wire (spec §6): create, read by digest / `latest` / `v<N>`, query;
//! and the rules that classify a stored value.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::SortBy;
use crate::serde_util::null_as_default;

/// An object version to create (`ObjSchemaForInsert`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjSchemaForInsert {
    /// `entity/project`.
    pub project_id: String,
    /// Object name: letters, digits, `_`, `.`, `-`; at most 128.
    pub object_id: String,
    /// The value; `weave:///` refs inside it are hashed in their internal form.
    pub val: Value,
    /// Accepted, ignored.
    #[serde(default)]
    pub builtin_object_class: Option<String>,
    /// Accepted, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_base_object_class: Option<String>,
    /// When given, the server's digest must equal it (else a digest mismatch).
    #[serde(default)]
    pub expected_digest: Option<String>,
    /// Filled by the server.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// Extension (Python never sends it): metadata stored with the version but not hashed,
    /// e.g. where a Rust op's source is. Creating an identical version again replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// `POST /obj/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjCreateReq {
    /// The version.
    pub obj: ObjSchemaForInsert,
}

/// Answer to [`ObjCreateReq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjCreateRes {
    /// The version's digest.
    pub digest: String,
    /// The object's name.
    #[serde(default)]
    pub object_id: Option<String>,
}

/// `POST /obj/read`: `digest` is a digest, `latest`, or `v<N>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjReadReq {
    /// `entity/project`.
    pub project_id: String,
    /// Object name.
    pub object_id: String,
    /// Digest, `latest` or `v<N>` (0-based version index).
    pub digest: String,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_tags_and_aliases: bool,
    /// Leave `val` out (`null`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata_only: bool,
}

/// Answer to [`ObjReadReq`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjReadRes {
    /// The version.
    pub obj: ObjSchema,
}

/// Which object versions `objs/query` returns; keys are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersionFilter {
    /// Base classes (`Model`, `Dataset`, `Evaluation`...).
    #[serde(default)]
    pub base_object_classes: Option<Vec<String>>,
    /// Base classes left out.
    #[serde(default)]
    pub exclude_base_object_classes: Option<Vec<String>>,
    /// Leaf classes.
    #[serde(default)]
    pub leaf_object_classes: Option<Vec<String>>,
    /// Object names.
    #[serde(default)]
    pub object_ids: Option<Vec<String>>,
    /// Ops only (`true`) or no ops (`false`).
    #[serde(default)]
    pub is_op: Option<bool>,
    /// Only each object's latest version.
    #[serde(default)]
    pub latest_only: Option<bool>,
    /// Accepted, not implemented.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Accepted, not implemented.
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
}

/// `POST /objs/query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjQueryReq {
    /// `entity/project`.
    pub project_id: String,
    /// Filter.
    #[serde(default)]
    pub filter: Option<ObjectVersionFilter>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Order: fields `object_id`, `created_at`, `version_index`; default `created_at` then
    /// `version_index`, ascending.
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    /// Leave `val` out.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata_only: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_storage_size: bool,
    /// Accepted, not implemented.
    #[serde(default, deserialize_with = "null_as_default")]
    pub include_tags_and_aliases: bool,
}

/// Answer to [`ObjQueryReq`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjQueryRes {
    /// Matching versions.
    pub objs: Vec<ObjSchema>,
}

/// A stored object version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjSchema {
    /// `entity/project`.
    pub project_id: String,
    /// Object name.
    pub object_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// When deleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// Version digest.
    pub digest: String,
    /// 0-based version number per name.
    pub version_index: i64,
    /// 1 for the latest version, else 0.
    pub is_latest: i64,
    /// `op` or `object`.
    pub kind: String,
    /// `Model`, `Dataset`, `Evaluation`...; `None` for ops.
    #[serde(default)]
    pub base_object_class: Option<String>,
    /// The value's own class.
    #[serde(default)]
    pub leaf_object_class: Option<String>,
    /// The stored value (refs in external form).
    #[serde(default)]
    pub val: Value,
    /// User.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    /// Extension: metadata kept with the version but not part of its value or digest (for
    /// a Rust op: `language`, `module`, `file`, `line`; updated when an identical version is
    /// created again). Absent for objects created without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl ObjSchema {
    /// Whether this is the latest version.
    pub fn latest(&self) -> bool {
        self.is_latest != 0
    }

    /// `weave:///entity/project/op|object/name:digest`.
    pub fn uri(&self) -> String {
        let kind = if self.kind == KIND_OP { "op" } else { "object" };
        format!(
            "weave:///{}/{}/{}:{}",
            self.project_id, kind, self.object_id, self.digest
        )
    }
}

/// The file a Rust op's code is stored under, in its op value's `files`.
pub const RUST_OP_FILE: &str = "obj.rs";

/// Weave's value of an op version whose code is the file `file_name` with digest
/// `file_digest`: `{"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {...}}`.
pub fn op_val(file_name: &str, file_digest: &str) -> Value {
    let mut files = serde_json::Map::new();
    files.insert(file_name.to_string(), Value::from(file_digest));
    let mut weave_type = serde_json::Map::new();
    weave_type.insert("type".into(), Value::from("Op"));
    let mut v = serde_json::Map::new();
    v.insert("_type".into(), Value::from("CustomWeaveType"));
    v.insert("weave_type".into(), Value::Object(weave_type));
    v.insert("files".into(), Value::Object(files));
    Value::Object(v)
}

/// The version digest of a Rust op whose code has digest `code_digest`.
pub fn rust_op_version(code_digest: &str) -> String {
    crate::digest::object_digest(&op_val(RUST_OP_FILE, code_digest))
}

/// `kind` of an op version.
pub const KIND_OP: &str = "op";
/// `kind` of any other object version.
pub const KIND_OBJECT: &str = "object";

/// `op` when `val` is `{"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, ...}`,
/// else `object` (spec §6.2).
pub fn object_kind(val: &Value) -> &'static str {
    let is_op = val.get("_type").and_then(Value::as_str) == Some("CustomWeaveType")
        && val
            .get("weave_type")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            == Some("Op");
    if is_op {
        KIND_OP
    } else {
        KIND_OBJECT
    }
}

/// `(base_object_class, leaf_object_class)` from `_bases` and `_class_name` (spec §6.2): when
/// `_bases` ends with `Object` or `BaseObject` then `BaseModel`, the leaf is `_class_name`
/// and the base is `_bases[-3]` when there are more than two bases, else `_class_name`.
/// `(None, None)` otherwise (ops included).
pub fn object_classes(val: &Value) -> (Option<String>, Option<String>) {
    let Some(class) = val.get("_class_name").and_then(Value::as_str) else {
        return (None, None);
    };
    let Some(bases) = val.get("_bases").and_then(Value::as_array) else {
        return (None, None);
    };
    let bases: Vec<&str> = bases.iter().filter_map(Value::as_str).collect();
    let n = bases.len();
    if n < 2 || bases[n - 1] != "BaseModel" || !matches!(bases[n - 2], "Object" | "BaseObject") {
        return (None, None);
    }
    let base = if n > 2 { bases[n - 3] } else { class };
    (Some(base.to_string()), Some(class.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_as_the_spec_says() {
        let model = json!({"_class_name": "QAModel", "_bases": ["Model", "Object", "BaseModel"]});
        assert_eq!(
            object_classes(&model),
            (Some("Model".into()), Some("QAModel".into()))
        );
        let ds = json!({"_class_name": "Dataset", "_bases": ["Object", "BaseModel"]});
        assert_eq!(
            object_classes(&ds),
            (Some("Dataset".into()), Some("Dataset".into()))
        );
        let op = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {}});
        assert_eq!(object_classes(&op), (None, None));
        assert_eq!(object_kind(&op), KIND_OP);
        assert_eq!(object_kind(&model), KIND_OBJECT);
        assert_eq!(
            object_classes(&json!({"_class_name": "X", "_bases": ["Foo"]})),
            (None, None)
        );
    }
}

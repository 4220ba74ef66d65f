//! Versioned models: `#[derive(Model)]` plus `#[weave::ops]` on the impl blocks.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::call::OpInfo;
use crate::client;
use crate::digest::digest_value;
use crate::sink::{Msg, ObjectRecord};

/// A versioned model. Derive it with `#[derive(weave::Model)]`; mark the impl blocks holding
/// its ops with `#[weave::ops]`.
///
/// The version digest covers the type name, the attributes (fields not marked
/// `#[weave(skip)]`; nested models by their own ref) and the digests of the ops in the type's
/// `#[weave::ops]` impl blocks.
pub trait Model {
    /// The type's name, used as the object name.
    fn weave_type_name(&self) -> &'static str;
    #[doc(hidden)]
    fn __weave_attributes(&self) -> Vec<(&'static str, Value)>;
    #[doc(hidden)]
    fn __weave_type_id(&self) -> Option<TypeId>;
    #[doc(hidden)]
    fn __weave_object_name(&self) -> String {
        self.weave_type_name().to_string()
    }
    #[doc(hidden)]
    fn __weave_bases(&self) -> &'static [&'static str] {
        &["Model", "Object", "BaseModel"]
    }
    #[doc(hidden)]
    fn __weave_before_publish(&self) {}

    /// The current version: stored value and digest.
    fn weave_version(&self) -> ModelVersion {
        model_version(self)
    }
}

impl<T: Model + ?Sized> Model for &T {
    fn weave_type_name(&self) -> &'static str {
        (**self).weave_type_name()
    }
    fn __weave_attributes(&self) -> Vec<(&'static str, Value)> {
        (**self).__weave_attributes()
    }
    fn __weave_type_id(&self) -> Option<TypeId> {
        (**self).__weave_type_id()
    }
    fn __weave_object_name(&self) -> String {
        (**self).__weave_object_name()
    }
    fn __weave_bases(&self) -> &'static [&'static str] {
        (**self).__weave_bases()
    }
    fn __weave_before_publish(&self) {
        (**self).__weave_before_publish()
    }
}

/// A model's stored value and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// Object name (the type name).
    pub name: String,
    /// Version digest.
    pub digest: String,
    /// The stored value: `_type`, `_class_name`, `_bases`, attributes, op refs.
    pub val: Value,
}

impl ModelVersion {
    /// `weave:///entity/project/object/name:digest` for the current client's project.
    pub fn uri(&self) -> String {
        format!("{}object/{}:{}", ref_prefix(), self.name, self.digest)
    }
}

/// One `#[weave::op]` method registered by `#[weave::ops]`.
#[doc(hidden)]
#[derive(Debug)]
pub struct MethodOp {
    /// Method name.
    pub attribute: &'static str,
    /// Explicit op name, if given.
    pub name: Option<&'static str>,
    /// Op digest.
    pub digest: &'static str,
}

/// The ops of one `#[weave::ops]` impl block.
#[doc(hidden)]
#[derive(Debug)]
pub struct ModelOps {
    /// Type the impl is for.
    pub type_id: fn() -> TypeId,
    /// Its short name.
    pub type_name: &'static str,
    /// The methods marked `#[weave::op]`.
    pub ops: &'static [MethodOp],
}
inventory::collect!(ModelOps);

/// An op, registered by `#[weave::op]`.
#[doc(hidden)]
#[derive(Debug)]
pub struct RegisteredOp(pub &'static OpInfo);
inventory::collect!(RegisteredOp);

fn method_index() -> &'static HashMap<TypeId, Vec<(&'static str, &'static MethodOp)>> {
    static INDEX: OnceLock<HashMap<TypeId, Vec<(&'static str, &'static MethodOp)>>> =
        OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: HashMap<TypeId, Vec<(&'static str, &'static MethodOp)>> = HashMap::new();
        for entry in inventory::iter::<ModelOps> {
            let v = map.entry((entry.type_id)()).or_default();
            v.extend(entry.ops.iter().map(|m| (entry.type_name, m)));
        }
        for v in map.values_mut() {
            v.sort_by_key(|(_, m)| m.attribute);
        }
        map
    })
}

fn op_by_digest(digest: &str) -> Option<&'static OpInfo> {
    static INDEX: OnceLock<HashMap<&'static str, &'static OpInfo>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            inventory::iter::<RegisteredOp>
                .into_iter()
                .map(|r| (r.0.digest, r.0))
                .collect()
        })
        .get(digest)
        .copied()
}

pub(crate) fn ref_prefix() -> String {
    match client::current_client() {
        Some(c) => c.ref_prefix(),
        None => "weave:///local/unpublished/".to_string(),
    }
}

/// The op name a method op is stored under.
fn method_op_name(type_name: &str, m: &MethodOp) -> String {
    match m.name {
        Some(n) => n.to_string(),
        None => format!("{type_name}.{}", m.attribute),
    }
}

/// Computes a model's value and digest.
pub fn model_version<M: Model + ?Sized>(m: &M) -> ModelVersion {
    let type_name = m.weave_type_name();
    let mut val = Map::new();
    val.insert("_type".into(), Value::from(type_name));
    val.insert("_class_name".into(), Value::from(type_name));
    val.insert("_bases".into(), Value::from(m.__weave_bases().to_vec()));
    for (k, v) in m.__weave_attributes() {
        val.insert(k.into(), v);
    }
    if let Some(ops) = m.__weave_type_id().and_then(|t| method_index().get(&t)) {
        let prefix = ref_prefix();
        for (type_name, op) in ops {
            let op_name = method_op_name(type_name, op);
            val.insert(
                op.attribute.into(),
                Value::from(format!("{prefix}op/{op_name}:{}", op.digest)),
            );
        }
    }
    let val = Value::Object(val);
    ModelVersion {
        name: m.__weave_object_name(),
        digest: digest_value(&val),
        val,
    }
}

/// Publishes the model's current version (once per client) and returns its ref as a JSON
/// string; used when a model is an op input or a nested attribute.
pub(crate) fn model_ref_value<M: Model + ?Sized>(m: &M) -> Value {
    let v = model_version(m);
    let uri = v.uri();
    if let Some(client) = client::current_client() {
        if client.first_publish(&uri) {
            m.__weave_before_publish();
            if let Some(ops) = m.__weave_type_id().and_then(|t| method_index().get(&t)) {
                for (type_name, op) in ops {
                    if let Some(info) = op_by_digest(op.digest) {
                        client.send(Msg::Op {
                            op: info,
                            name: method_op_name(type_name, op),
                        });
                    }
                }
            }
            client.send(Msg::Object(Box::new(ObjectRecord {
                name: v.name,
                digest: v.digest,
                kind: "object",
                base_object_class: m.__weave_bases().first().map(|b| b.to_string()),
                val: v.val,
            })));
        }
    }
    Value::String(uri)
}

//! Versioned models: `#[derive(Model)]` plus `#[weave::ops]` on the impl blocks. A model used
//! as an op input is recorded as the ref of its current version, published once per client.
//!
//! Finding that ref is cached per value: the model's attributes are written as bytes (a
//! fingerprint) and looked up in a per-thread cache, so a method op called again on an
//! unchanged model does not rebuild the model's JSON, canonicalise it and hash it.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::capture::CaptureRef;
use crate::context;
use crate::dispatch::Dispatch;
use crate::record::{Msg, ObjectRecord, OpInfo};
use crate::redact::RedactKeys;

/// A versioned model. Derive it with `#[derive(weave::Model)]`; mark the impl blocks holding
/// its ops with `#[weave::ops]`.
///
/// The version digest covers the type name, the attributes (fields not marked
/// `#[weave(skip)]`; nested models by their own ref) and the versions of the ops in the type's
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
    /// Writes bytes that change whenever the attributes do (the derive writes each field
    /// straight to bytes; this default serialises the attributes).
    #[doc(hidden)]
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        for (k, v) in self.__weave_attributes() {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            let _ = serde_json::to_writer(&mut *out, &v);
            out.push(0);
        }
    }

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
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        (**self).__weave_fingerprint(out)
    }
}

impl<T: Model + ?Sized> CaptureRef for T {
    fn __weave_capture_ref(&self) -> Value {
        Value::String(model_ref(self).to_string())
    }
}

/// A model's stored value and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    /// Object name (the type name).
    pub name: String,
    /// Version digest: Weave's object digest of `val`.
    pub digest: String,
    /// The stored value: `_type`, `_class_name`, `_bases`, attributes, op refs.
    pub val: Value,
    prefix: String,
}

impl ModelVersion {
    /// `weave:///entity/project/object/name:digest` for the client it was made under.
    pub fn uri(&self) -> String {
        format!("{}object/{}:{}", self.prefix, self.name, self.digest)
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
    /// Digest of the op's code.
    pub digest: &'static str,
    /// The op's version digest.
    pub version: &'static str,
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

type MethodIndex = HashMap<TypeId, Vec<(&'static str, &'static MethodOp)>>;

fn method_index() -> &'static MethodIndex {
    static INDEX: OnceLock<MethodIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: MethodIndex = HashMap::new();
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

/// `weave:///entity/project/` of the client records go to here, or a placeholder.
pub(crate) fn ref_prefix_of(d: Option<&Dispatch>) -> String {
    match d {
        Some(d) => d.ref_prefix().to_string(),
        None => "weave:///local/unpublished/".to_string(),
    }
}

/// `weave:///entity/project/` of the client records go to here, or a placeholder.
pub(crate) fn ref_prefix() -> String {
    ref_prefix_of(context::dispatch().as_deref())
}

/// The op name a method op is stored under.
fn method_op_name(type_name: &str, m: &MethodOp) -> String {
    let name = match m.name {
        Some(n) => n.to_string(),
        None => format!("{type_name}.{}", m.attribute),
    };
    weave_types::refs::sanitize_object_name(&name)
}

/// The model's version: its value, redacted with `keys` (so that the digest, and the refs
/// holding it, are of what is stored), and the digest.
fn version_with_prefix<M: Model + ?Sized>(
    m: &M,
    prefix: String,
    keys: &RedactKeys,
) -> ModelVersion {
    let type_name = m.weave_type_name();
    let mut val = Map::new();
    val.insert("_type".into(), Value::from(type_name));
    val.insert("_class_name".into(), Value::from(type_name));
    val.insert("_bases".into(), Value::from(m.__weave_bases().to_vec()));
    for (k, v) in m.__weave_attributes() {
        val.insert(k.into(), v);
    }
    if let Some(ops) = m.__weave_type_id().and_then(|t| method_index().get(&t)) {
        for (type_name, op) in ops {
            let op_name = method_op_name(type_name, op);
            val.insert(
                op.attribute.into(),
                Value::from(format!("{prefix}op/{op_name}:{}", op.version)),
            );
        }
    }
    let mut val = Value::Object(val);
    keys.redact(&mut val);
    ModelVersion {
        name: weave_types::refs::sanitize_object_name(&m.__weave_object_name()),
        digest: weave_types::digest::object_digest(&val),
        val,
        prefix,
    }
}

/// Computes a model's value and digest (refs in it name the current client's project; values
/// of secret-looking keys are redacted with its keys, as they are stored).
pub fn model_version<M: Model + ?Sized>(m: &M) -> ModelVersion {
    version_with_prefix(m, ref_prefix(), &context::redact_keys())
}

/// Models' refs known on this thread, by client and fingerprint.
struct RefCache {
    refs: HashMap<(u64, Vec<u8>), Arc<str>>,
    /// A buffer for fingerprints, reused.
    scratch: Vec<u8>,
}

/// Entries kept at most; past this (models that change all the time) the cache starts over.
const MAX_CACHED_REFS: usize = 1024;

thread_local! {
    static REFS: RefCell<RefCache> = RefCell::new(RefCache {
        refs: HashMap::new(),
        scratch: Vec::new(),
    });
}

fn fingerprint<M: Model + ?Sized>(m: &M, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(m.weave_type_name().as_bytes());
    out.push(0);
    out.extend_from_slice(m.__weave_object_name().as_bytes());
    out.push(0);
    m.__weave_fingerprint(out);
}

/// Publishes the model's current version (once per client) and returns its ref; used when a
/// model is an op input or a nested attribute.
pub(crate) fn model_ref<M: Model + ?Sized>(m: &M) -> Arc<str> {
    let d = context::dispatch();
    let key_id = d.as_ref().map_or(0, |d| d.id());
    // Fingerprint into the thread's scratch buffer (taken out while the model writes, which
    // may recurse into here for nested models).
    let mut fp = REFS
        .try_with(|c| std::mem::take(&mut c.borrow_mut().scratch))
        .unwrap_or_default();
    fingerprint(m, &mut fp);
    let key = (key_id, fp);
    if let Some(r) = REFS
        .try_with(|c| c.borrow().refs.get(&key).cloned())
        .ok()
        .flatten()
    {
        let (_, fp) = key;
        let _ = REFS.try_with(|c| c.borrow_mut().scratch = fp);
        return r;
    }
    let keys = d
        .as_ref()
        .map_or_else(RedactKeys::defaults, |d| d.redact_keys().clone());
    let v = version_with_prefix(m, ref_prefix_of(d.as_deref()), &keys);
    let uri: Arc<str> = v.uri().into();
    if let Some(d) = &d {
        publish(d, m, v);
    }
    let _ = REFS.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.refs.len() >= MAX_CACHED_REFS {
            c.refs.clear();
        }
        c.refs.insert(key, uri.clone());
    });
    uri
}

/// Sends a model version (and its method ops) to the writer, once per client.
fn publish<M: Model + ?Sized>(d: &Dispatch, m: &M, v: ModelVersion) {
    if !d.first_publish(&v.uri()) {
        return;
    }
    m.__weave_before_publish();
    if let Some(ops) = m.__weave_type_id().and_then(|t| method_index().get(&t)) {
        for (type_name, op) in ops {
            if let Some(info) = op_by_digest(op.digest) {
                d.send(Msg::Op {
                    op: info,
                    name: method_op_name(type_name, op),
                });
            }
        }
    }
    d.send(Msg::Object(Box::new(ObjectRecord {
        name: v.name,
        digest: v.digest,
        val: v.val,
    })));
}

/// The model's ref as a JSON string, publishing it if needed.
pub(crate) fn model_ref_value<M: Model + ?Sized>(m: &M) -> Value {
    Value::String(model_ref(m).to_string())
}

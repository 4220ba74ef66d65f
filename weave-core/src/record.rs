//! Plain data that travels from the calling thread to the writer: call starts and ends with
//! their inputs, op descriptions, exceptions, usage, objects, tables and control messages.
//!
//! A leaf: it imports nothing from this crate, so every other module may use it.

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use weave_types::Usage;

/// When something happened on a calling thread, as taken there by `clock::now` (cheap) and
/// turned into wall-clock time on the writer: either nanoseconds since the Unix epoch, or,
/// with the high bit set, a reading of the CPU's time-stamp counter.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub u64);

impl Stamp {
    /// The high bit: the rest is a time-stamp counter reading.
    pub const TSC: u64 = 1 << 63;

    /// A wall-clock time (clamped to the Unix epoch .. year 2262).
    pub fn from_system_time(t: SystemTime) -> Stamp {
        let nanos = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(u128::from(Stamp::TSC - 1)) as u64);
        Stamp(nanos)
    }
}

/// Static description of an op, emitted by `#[weave::op]` into the function.
#[doc(hidden)]
#[derive(Debug)]
pub struct OpInfo {
    /// Function name, or the `name = "..."` given.
    pub name: &'static str,
    /// Whether `name` was given explicitly.
    pub explicit_name: bool,
    /// Digest of `code` (Weave's file digest of the text).
    pub digest: &'static str,
    /// Digest of the op's version: Weave's object digest of the op value that refers to the
    /// code file (`{"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": ...}`).
    pub version: &'static str,
    /// Source of the function.
    pub code: &'static str,
    /// `module_path!()` where the op is defined.
    pub module_path: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()`.
    pub line: u32,
}

impl OpInfo {
    /// The op's name as stored: `Type.method` for methods (unless named explicitly).
    pub fn full_name(&self, self_type: Option<&str>) -> String {
        let name = match self_type {
            Some(t) if !self.explicit_name => format!("{}.{}", short_type_name(t), self.name),
            _ => self.name.to_string(),
        };
        weave_types::refs::sanitize_object_name(&name)
    }
}

/// `a::b::Foo<c::D>` -> `Foo`.
pub fn short_type_name(t: &str) -> &str {
    let base = t.split('<').next().unwrap_or(t);
    base.rsplit("::").next().unwrap_or(base)
}

/// A captured value in a record: a JSON value in 32 bytes rather than a `Value`'s 72 (with
/// ordered maps). Records are written on the calling thread and read on the writer's, so
/// their size is memory traffic on every call. Objects are boxed; the rest is inline.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Captured {
    /// `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Box<serde_json::Map<String, Value>>),
}

impl From<Value> for Captured {
    #[inline]
    fn from(v: Value) -> Self {
        match v {
            Value::Null => Captured::Null,
            Value::Bool(b) => Captured::Bool(b),
            Value::Number(n) => Captured::Number(n),
            Value::String(s) => Captured::String(s),
            Value::Array(a) => Captured::Array(a),
            Value::Object(o) => Captured::Object(Box::new(o)),
        }
    }
}

impl From<Captured> for Value {
    fn from(c: Captured) -> Self {
        match c {
            Captured::Null => Value::Null,
            Captured::Bool(b) => Value::Bool(b),
            Captured::Number(n) => Value::Number(n),
            Captured::String(s) => Value::String(s),
            Captured::Array(a) => Value::Array(a),
            Captured::Object(o) => Value::Object(*o),
        }
    }
}

/// Inputs kept inline (no allocation) in a call's start record; more spill to a `Vec`.
const INLINE_INPUTS: usize = 2;

/// Captured inputs of a call, in argument order.
#[doc(hidden)]
pub struct Inputs {
    len: usize,
    inline: [(&'static str, Captured); INLINE_INPUTS],
    spill: Vec<(&'static str, Captured)>,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            len: 0,
            inline: [const { ("", Captured::Null) }; INLINE_INPUTS],
            spill: Vec::new(),
        }
    }
}

impl Inputs {
    /// Adds one input.
    #[inline]
    pub fn push(&mut self, name: &'static str, value: Value) {
        let value = Captured::from(value);
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = (name, value),
            None => self.spill.push((name, value)),
        }
        self.len += 1;
    }

    /// The inputs, in argument order.
    pub fn into_values(self) -> impl Iterator<Item = (&'static str, Value)> {
        let inline = self.len.min(INLINE_INPUTS);
        self.inline
            .into_iter()
            .take(inline)
            .chain(self.spill)
            .map(|(k, v)| (k, Value::from(v)))
    }
}

/// A recorded error, stored as the JSON string `{"type","message","traceback"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Type of the error (Rust type name, or `panic`, or `Cancelled`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
    /// Source chain, panic location, or empty.
    pub traceback: String,
}

/// A call has started.
pub struct Start {
    /// Call id.
    pub id: Uuid,
    /// Trace id (the root's id).
    pub trace_id: Uuid,
    /// Parent call, if any.
    pub parent_id: Option<Uuid>,
    /// The op.
    pub op: &'static OpInfo,
    /// `type_name::<Self>()` for methods.
    pub self_type: Option<&'static str>,
    /// When.
    pub started_at: Stamp,
    /// Captured inputs.
    pub inputs: Inputs,
    /// What only some calls have (a display name, scoped attributes, postprocessed inputs);
    /// boxed so that calls without it stay small.
    pub extra: Option<Box<StartExtra>>,
}

/// The rarer parts of a call's start.
#[derive(Debug, Default)]
pub struct StartExtra {
    /// The call's display name.
    pub display_name: Option<String>,
    /// Attributes of the scopes the call started in (`weave::attributes`).
    pub attributes: Option<std::sync::Arc<serde_json::Map<String, Value>>>,
    /// The inputs as `postprocess_inputs` returned them; replace [`Start::inputs`].
    pub inputs: Option<serde_json::Map<String, Value>>,
}

/// A call has ended.
pub struct End {
    /// Call id.
    pub id: Uuid,
    /// When.
    pub ended_at: Stamp,
    /// Captured output (`null` for errors).
    pub output: Captured,
    /// Boxed: rare, and large next to the rest of the record.
    pub exception: Option<Box<Exception>>,
    /// Calls of this subtree that succeeded (this one included).
    pub success: u64,
    /// Calls of this subtree that failed.
    pub error: u64,
    /// Token usage of this subtree, per model.
    pub usage: Option<BTreeMap<String, Usage>>,
}

/// A call record, as queued per thread.
pub enum CallMsg {
    /// A start.
    Start(Start),
    /// An end.
    End(End),
}

/// A versioned object to publish (model, dataset, evaluation...).
pub struct ObjectRecord {
    /// Object name.
    pub name: String,
    /// The digest the caller computed (and used in refs).
    pub digest: String,
    /// The value, refs in external form.
    pub val: Value,
}

/// A table of rows to store.
pub struct TableRecord {
    /// Table digest.
    pub digest: String,
    /// Row digests and rows, in order.
    pub rows: Vec<(String, Value)>,
}

/// Records a sink failed to write: the writer's answer to a flush (since the previous
/// answer), and its count at shutdown (in all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses {
    /// Records lost for good.
    pub lost: u64,
    /// Records not delivered yet (a remote sink keeps trying them).
    pub pending: u64,
    /// The first failure.
    pub reason: Option<String>,
}

impl Losses {
    /// Whether nothing was lost or left pending.
    pub fn is_empty(&self) -> bool {
        self.lost == 0 && self.pending == 0
    }
}

/// What goes over the channel to the writer; big messages are boxed. Call records go
/// through the per-thread buffers instead.
pub enum Msg {
    /// Publish an object version.
    Object(Box<ObjectRecord>),
    /// Store a table.
    Table(Box<TableRecord>),
    /// Attributes added to a started call.
    Attributes {
        /// The call.
        id: Uuid,
        /// A JSON object merged into the call's attributes.
        attrs: Box<Value>,
    },
    /// Publish an op without a call (a model's method op).
    Op {
        /// The op.
        op: &'static OpInfo,
        /// Its stored name.
        name: String,
    },
    /// Answer once everything sent before is written, with what was not.
    Flush(SyncSender<Losses>),
    /// Write what is pending and stop.
    Shutdown,
}

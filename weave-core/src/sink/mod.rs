//! The sink: records travel from the calling thread to one background writer thread, which
//! redacts, caps, batches and writes them to the store. The caller never waits on I/O.
//!
//! Call records (the hot path) go into per-thread buffers ([`queue`]) that the writer collects
//! every few milliseconds; everything else (objects, tables, attributes, flush, shutdown) goes
//! over a channel, which also wakes the writer.

pub(crate) mod queue;
mod writer;

pub(crate) use writer::spawn_writer;

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::time::SystemTime;

use serde_json::Value;
use uuid::Uuid;

use crate::call::{Inputs, OpInfo};
use crate::capture::Exception;
use crate::usage::Usage;

/// A call has started.
pub(crate) struct StartRecord {
    pub(crate) id: Uuid,
    pub(crate) trace_id: Uuid,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) op: &'static OpInfo,
    pub(crate) self_type: Option<&'static str>,
    pub(crate) started_at: SystemTime,
    pub(crate) inputs: Inputs,
}

/// A call has ended.
pub(crate) struct EndRecord {
    pub(crate) id: Uuid,
    pub(crate) ended_at: SystemTime,
    pub(crate) output: Value,
    /// Boxed: rare, and large next to the rest of the record.
    pub(crate) exception: Option<Box<Exception>>,
    pub(crate) success: u64,
    pub(crate) error: u64,
    pub(crate) usage: Option<BTreeMap<String, Usage>>,
}

/// A versioned object to publish (model, dataset, evaluation, ...).
pub(crate) struct ObjectRecord {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) kind: &'static str,
    pub(crate) base_object_class: Option<String>,
    pub(crate) val: Value,
}

/// A table (dataset rows) to store.
pub(crate) struct TableRecord {
    pub(crate) digest: String,
    pub(crate) rows: Vec<(String, Value)>,
}

/// What goes over the channel; big messages are boxed. Call records go through [`queue`].
pub(crate) enum Msg {
    Object(Box<ObjectRecord>),
    Table(Box<TableRecord>),
    /// Attributes added to a started call.
    Attributes {
        id: Uuid,
        attrs: Box<Value>,
    },
    /// Publish an op object without a call (a model's method op).
    Op {
        op: &'static OpInfo,
        name: String,
    },
    Flush(SyncSender<()>),
    Shutdown,
}

/// RFC 3339 UTC with microseconds, as Weave writes timestamps.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

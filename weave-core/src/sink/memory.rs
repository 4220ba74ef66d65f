//! [`MemorySink`]: keeps every batch in memory, for tests (like fastrace's test reporter).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use weave_types::{CallSchema, ObjSchemaForInsert};

use super::{Batch, CallItem, SinkError, TraceSink};

/// Keeps batches in memory; clones share them, so a test keeps one clone to read.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Batch>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every batch written so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.lock().clone()
    }

    /// Every call written so far, starts, ends and complete records merged per id as a
    /// store would show them (with `summary.weave`), in start order.
    pub fn calls(&self) -> Vec<CallSchema> {
        let mut calls: BTreeMap<String, (usize, CallSchema)> = BTreeMap::new();
        let mut order = 0;
        for b in self.lock().iter() {
            for item in &b.calls {
                let (start, end) = match item.clone() {
                    CallItem::Complete(c) => {
                        let (s, e) = c.split();
                        (Some(s), Some(e))
                    }
                    CallItem::Start(s) => (Some(s), None),
                    CallItem::End(e) => (None, Some(e)),
                };
                let id = start
                    .as_ref()
                    .and_then(|s| s.id.clone())
                    .or_else(|| end.as_ref().map(|e| e.id.clone()))
                    .unwrap_or_default();
                let entry = calls.entry(id.clone()).or_insert_with(|| {
                    order += 1;
                    (
                        order,
                        CallSchema {
                            id,
                            ..Default::default()
                        },
                    )
                });
                let c = &mut entry.1;
                if let Some(s) = start {
                    c.project_id = s.project_id;
                    c.op_name = s.op_name;
                    c.trace_id = s.trace_id.unwrap_or_default();
                    c.parent_id = s.parent_id;
                    c.started_at = s.started_at;
                    c.inputs = s.inputs;
                    c.attributes = s.attributes.into_map();
                }
                if let Some(e) = end {
                    c.ended_at = Some(e.ended_at);
                    c.output = Some(e.output);
                    c.exception = e.exception;
                    c.summary = e.summary.into_map();
                }
            }
            for u in &b.call_updates {
                if let (Some((_, c)), Some(attrs)) = (calls.get_mut(&u.call_id), &u.attributes) {
                    for (k, v) in attrs {
                        c.attributes.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut out: Vec<(usize, CallSchema)> = calls.into_values().collect();
        out.sort_by_key(|(o, c)| (c.started_at.clone(), *o));
        out.into_iter()
            .map(|(_, mut c)| {
                weave_types::summary::add_summary_weave(&mut c);
                c
            })
            .collect()
    }

    /// Every object version written so far (ops included), in order.
    pub fn objects(&self) -> Vec<ObjSchemaForInsert> {
        self.lock().iter().flat_map(|b| b.objs.clone()).collect()
    }

    /// The rows of every table written so far, in order.
    pub fn tables(&self) -> Vec<Vec<Value>> {
        self.lock()
            .iter()
            .flat_map(|b| b.tables.iter().map(|t| t.rows.clone()))
            .collect()
    }
}

impl TraceSink for MemorySink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.lock().push(batch.clone());
        Ok(())
    }
}

//! [`Batch`]: what the writer hands to a sink each round, in W&B Weave's wire types. It holds
//! everything a store or a remote server needs to record the round: op code files, op and
//! object versions, tables, call starts, ends and complete calls, and call updates.

use weave_types::{
    CallUpdateReq, CompleteCallSchemaForInsert, EndedCallSchemaForInsert, FileCreateReq,
    ObjSchemaForInsert, StartedCallSchemaForInsert, TableSchemaForInsert,
};

/// One call record of a batch.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // The large variant is the common one; boxing it costs an allocation per call.
pub enum CallItem {
    /// A call that started and ended within the round: one record.
    Complete(CompleteCallSchemaForInsert),
    /// A call that started and has not ended yet.
    Start(StartedCallSchemaForInsert),
    /// The end of a call started in an earlier round.
    End(EndedCallSchemaForInsert),
}

/// The encoded records of one writer round. Apply in field order: files, objects, tables,
/// calls, call updates (stores accept any order; this one never refers to a later item).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Files (an op's code) before the objects that name them.
    pub files: Vec<FileCreateReq>,
    /// Op and object versions.
    pub objs: Vec<ObjSchemaForInsert>,
    /// Tables (dataset rows).
    pub tables: Vec<TableSchemaForInsert>,
    /// Calls.
    pub calls: Vec<CallItem>,
    /// Attributes added to calls after they started.
    pub call_updates: Vec<CallUpdateReq>,
}

impl Batch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.files.len()
            + self.objs.len()
            + self.tables.len()
            + self.calls.len()
            + self.call_updates.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.files.clear();
        self.objs.clear();
        self.tables.clear();
        self.calls.clear();
        self.call_updates.clear();
    }
}

//! [`Record`]: one thing to send, in Weave's wire types.

use weave_types::{
    CallUpdateReq, CompleteCallSchemaForInsert, EndedCallSchemaForInsert, FileCreateReq,
    ObjSchemaForInsert, StartedCallSchemaForInsert, TableSchemaForInsert,
};

/// A trace record to deliver.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // Calls are the common, large case; boxing costs an allocation each.
pub enum Record {
    /// A file (an op's code).
    File(FileCreateReq),
    /// An op or object version.
    Obj(ObjSchemaForInsert),
    /// A table (dataset rows).
    Table(TableSchemaForInsert),
    /// A finished call.
    Complete(CompleteCallSchemaForInsert),
    /// A call's start (its end follows later).
    Start(StartedCallSchemaForInsert),
    /// A call's end.
    End(EndedCallSchemaForInsert),
    /// A change to a call (display name, attributes).
    Update(CallUpdateReq),
}

impl Record {
    /// Whether this is a call record (what the buffer drops first when full).
    pub fn is_call(&self) -> bool {
        matches!(
            self,
            Record::Complete(_) | Record::Start(_) | Record::End(_)
        )
    }

    /// The record's `entity/project`.
    pub fn project_id(&self) -> &str {
        match self {
            Record::File(f) => &f.project_id,
            Record::Obj(o) => &o.project_id,
            Record::Table(t) => &t.project_id,
            Record::Complete(c) => &c.project_id,
            Record::Start(s) => &s.project_id,
            Record::End(e) => &e.project_id,
            Record::Update(u) => &u.project_id,
        }
    }
}

/// A start and its end as one finished call.
pub(crate) fn merge(s: StartedCallSchemaForInsert, e: EndedCallSchemaForInsert) -> Record {
    Record::Complete(CompleteCallSchemaForInsert {
        project_id: s.project_id,
        id: s.id.unwrap_or(e.id),
        trace_id: s.trace_id.or(e.trace_id).unwrap_or_default(),
        op_name: s.op_name,
        started_at: s.started_at,
        ended_at: e.ended_at,
        display_name: s.display_name,
        parent_id: s.parent_id,
        thread_id: s.thread_id,
        turn_id: s.turn_id,
        attributes: s.attributes,
        inputs: s.inputs,
        output: e.output,
        summary: e.summary,
        exception: e.exception,
        otel_dump: s.otel_dump,
        wb_user_id: s.wb_user_id,
        wb_run_id: s.wb_run_id,
        wb_run_step: s.wb_run_step,
        wb_run_step_end: e.wb_run_step_end,
    })
}

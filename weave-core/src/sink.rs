//! The sink: records travel from the calling thread over a channel to one background writer
//! thread, which redacts, caps, batches and writes them to the store. The caller never waits on
//! I/O.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::call::{Inputs, OpInfo};
use crate::capture::{cap_size, redact, Exception};
use crate::error::Error;
use crate::store::write::{self, CallRow, ObjectRow};
use crate::store::Store;
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

/// Call records travel inline (not boxed): the channel stores messages in blocks of slots, so
/// a call costs the caller no allocation of its own for them, and the writer frees no
/// allocation per record. Rarer, bigger messages are boxed.
pub(crate) enum Msg {
    Start(StartRecord),
    End(EndRecord),
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

const MAX_BATCH: usize = 4096;

/// RFC 3339 UTC with microseconds, as Weave writes timestamps.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

struct Writer {
    store: Store,
    state: WriterState,
}

struct WriterState {
    project_id: String,
    redact_keys: Vec<String>,
    attributes: String,
    published_ops: HashSet<String>,
}

pub(crate) fn spawn_writer(
    store: Store,
    rx: Receiver<Msg>,
    project_id: String,
    redact_keys: Vec<String>,
) -> Result<JoinHandle<()>, Error> {
    let mut attributes = json!({
        "weave": {
            "source": "rust-sdk",
            "client_version": env!("CARGO_PKG_VERSION"),
            "os_name": std::env::consts::OS,
            "os_arch": std::env::consts::ARCH,
            "os_family": std::env::consts::FAMILY,
            "process_id": std::process::id(),
        }
    });
    redact(&mut attributes, &redact_keys);
    let mut writer = Writer {
        store,
        state: WriterState {
            project_id,
            redact_keys,
            attributes: attributes.to_string(),
            published_ops: HashSet::new(),
        },
    };
    std::thread::Builder::new()
        .name("weave-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| Error::Io {
            path: "weave-writer thread".into(),
            source,
        })
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut flushes = Vec::new();
            let mut shutdown = false;
            if let Err(e) = self.write_batch(batch, &mut flushes, &mut shutdown) {
                tracing::error!("weave: writing traces failed: {e}");
            }
            for f in flushes {
                let _ = f.send(());
            }
            if shutdown {
                // Drain what raced in after the shutdown request.
                let rest: Vec<Msg> = rx.try_iter().collect();
                let mut flushes = Vec::new();
                let _ = self.write_batch(rest, &mut flushes, &mut false);
                for f in flushes {
                    let _ = f.send(());
                }
                return;
            }
        }
    }

    fn write_batch(
        &mut self,
        batch: Vec<Msg>,
        flushes: &mut Vec<SyncSender<()>>,
        shutdown: &mut bool,
    ) -> Result<(), Error> {
        let path = self.store.path.clone();
        let tx = self
            .store
            .conn
            .transaction()
            .map_err(|source| Error::Store {
                path: path.clone(),
                source,
            })?;
        let mut failed = None;
        let state = &mut self.state;
        for msg in batch {
            let r = match msg {
                Msg::Start(s) => {
                    let op_ref = state.op_ref(&tx, &s);
                    op_ref.and_then(|op_ref| state.start(&tx, &s, &op_ref))
                }
                Msg::End(e) => state.end(&tx, e),
                Msg::Object(o) => write::insert_object(
                    &tx,
                    &ObjectRow {
                        project_id: &state.project_id,
                        name: &o.name,
                        digest: &o.digest,
                        kind: o.kind,
                        base_object_class: o.base_object_class.as_deref(),
                        val: &o.val,
                        created_at: &rfc3339(SystemTime::now()),
                    },
                ),
                Msg::Table(t) => write::insert_table(
                    &tx,
                    &state.project_id,
                    &t.digest,
                    &t.rows,
                    &rfc3339(SystemTime::now()),
                ),
                Msg::Attributes { id, mut attrs } => {
                    redact(&mut attrs, &state.redact_keys);
                    write::add_attributes(&tx, &id.to_string(), &attrs.to_string())
                }
                Msg::Op { op, name } => state.publish_op(&tx, op, &name).map(|_| ()),
                Msg::Flush(f) => {
                    flushes.push(f);
                    Ok(())
                }
                Msg::Shutdown => {
                    *shutdown = true;
                    Ok(())
                }
            };
            if let Err(e) = r {
                // One bad record must not lose the others.
                tracing::error!("weave: dropping a record: {e}");
                failed = Some(e);
            }
        }
        tx.commit()
            .map_err(|source| Error::Store { path, source })?;
        match failed {
            Some(e) => Err(Error::Evaluation(format!(
                "some records were not stored: {e}"
            ))),
            None => Ok(()),
        }
    }
}

impl WriterState {
    fn op_ref(&mut self, tx: &rusqlite::Transaction<'_>, s: &StartRecord) -> Result<String, Error> {
        let name = s.op.full_name(s.self_type);
        self.publish_op(tx, s.op, &name)
    }

    fn publish_op(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        op: &'static OpInfo,
        name: &str,
    ) -> Result<String, Error> {
        let s = op;
        let op_ref = format!("weave:///{}/op/{}:{}", self.project_id, name, s.digest);
        if !self.published_ops.contains(&op_ref) {
            let val = json!({
                "_type": "Op",
                "name": name,
                "code": s.code,
                "module": s.module_path,
                "file": s.file,
                "line": s.line,
                "language": "rust",
            });
            write::insert_object(
                tx,
                &ObjectRow {
                    project_id: &self.project_id,
                    name,
                    digest: s.digest,
                    kind: "op",
                    base_object_class: Some("Op"),
                    val: &val,
                    created_at: &rfc3339(SystemTime::now()),
                },
            )?;
            self.published_ops.insert(op_ref.clone());
        }
        Ok(op_ref)
    }

    fn start(
        &self,
        tx: &rusqlite::Transaction<'_>,
        s: &StartRecord,
        op_ref: &str,
    ) -> Result<(), Error> {
        let mut inputs = Map::new();
        for (k, v) in s.inputs.iter() {
            inputs.insert((*k).to_string(), cap_size(v.clone()));
        }
        let mut inputs = Value::Object(inputs);
        redact(&mut inputs, &self.redact_keys);
        write::insert_call(
            tx,
            &CallRow {
                id: &s.id.to_string(),
                project_id: &self.project_id,
                op_name: op_ref,
                trace_id: &s.trace_id.to_string(),
                parent_id: s.parent_id.map(|p| p.to_string()).as_deref(),
                started_at: &rfc3339(s.started_at),
                inputs: &inputs.to_string(),
                attributes: &self.attributes,
            },
        )
    }

    fn end(&self, tx: &rusqlite::Transaction<'_>, e: EndRecord) -> Result<(), Error> {
        let mut output = cap_size(e.output);
        redact(&mut output, &self.redact_keys);
        let exception = e
            .exception
            .map(|x| serde_json::to_string(&x).unwrap_or_default());
        let mut summary = json!({
            "status_counts": {"success": e.success, "error": e.error},
        });
        if let Some(usage) = e.usage {
            summary["usage"] = serde_json::to_value(usage).unwrap_or(Value::Null);
        }
        write::end_call(
            tx,
            &e.id.to_string(),
            &rfc3339(e.ended_at),
            &output.to_string(),
            exception.as_deref(),
            &summary.to_string(),
        )
    }
}

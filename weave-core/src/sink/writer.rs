//! The background writer: collects call records and channel messages, writes them in one
//! transaction per round.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::Transaction;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::queue::{CallMsg, Registry};
use super::{rfc3339, EndRecord, Msg, StartRecord};
use crate::call::OpInfo;
use crate::capture::{cap_size, Redactor};
use crate::error::Error;
use crate::store::write::{self, CallEnd, CallRow, ObjectRow};
use crate::store::Store;

/// How often the writer collects the per-thread buffers: bounds what a crash loses.
const INTERVAL: Duration = Duration::from_millis(10);
/// Channel messages taken in one round at most.
const MAX_BATCH: usize = 4096;

struct Writer {
    store: Store,
    calls: Arc<Registry>,
    /// Emptied buffers, swapped back into the threads' buffers.
    spares: Vec<Vec<CallMsg>>,
    state: WriterState,
}

struct WriterState {
    project_id: String,
    redactor: Redactor,
    attributes: String,
    published_ops: HashSet<String>,
    /// Op ref per (op, self type), once its op object is published.
    op_refs: HashMap<(usize, Option<&'static str>), String>,
}

pub(crate) fn spawn_writer(
    store: Store,
    rx: Receiver<Msg>,
    calls: Arc<Registry>,
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
    let mut redactor = Redactor::new(&redact_keys);
    redactor.redact(&mut attributes);
    let mut writer = Writer {
        store,
        calls,
        spares: Vec::new(),
        state: WriterState {
            project_id,
            redactor,
            attributes: attributes.to_string(),
            published_ops: HashSet::new(),
            op_refs: HashMap::new(),
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
            // Channel messages first, then the buffers: a message (attributes, flush) sent after
            // a call record finds that record collected in the same round.
            let mut messages = Vec::new();
            let mut shutdown = false;
            match rx.recv_timeout(INTERVAL) {
                Ok(m) => messages.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => shutdown = true,
            }
            messages.extend(rx.try_iter().take(MAX_BATCH));
            let mut flushes = Vec::new();
            self.round(messages, &mut flushes, &mut shutdown);
            if shutdown {
                // What raced in after the shutdown request.
                let rest: Vec<Msg> = rx.try_iter().collect();
                self.round(rest, &mut flushes, &mut false);
            }
            for f in flushes {
                let _ = f.send(());
            }
            if shutdown {
                return;
            }
        }
    }

    /// Collects the buffers and writes them with `messages`.
    fn round(
        &mut self,
        messages: Vec<Msg>,
        flushes: &mut Vec<SyncSender<()>>,
        shutdown: &mut bool,
    ) {
        let calls = self.calls.drain(&mut self.spares);
        if calls.is_empty() && messages.is_empty() {
            return;
        }
        if let Err(e) = self.write_batch(calls, messages, flushes, shutdown) {
            tracing::error!("weave: writing traces failed: {e}");
        }
    }

    fn write_batch(
        &mut self,
        calls: Vec<Vec<CallMsg>>,
        messages: Vec<Msg>,
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
        let state = &mut self.state;
        let mut failed = None;
        let mut note = |r: Result<(), Error>| {
            if let Err(e) = r {
                // One bad record must not lose the others.
                tracing::error!("weave: dropping a record: {e}");
                failed = Some(e);
            }
        };

        // A call that started and ended within the round is one INSERT.
        let mut started: Vec<(StartRecord, Option<EndRecord>)> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        let mut ended: Vec<EndRecord> = Vec::new();
        for mut records in calls {
            for msg in records.drain(..) {
                match msg {
                    CallMsg::Start(s) => {
                        index.insert(s.id, started.len());
                        started.push((s, None));
                    }
                    CallMsg::End(e) => match index.get(&e.id) {
                        Some(&i) => started[i].1 = Some(e),
                        None => ended.push(e),
                    },
                }
            }
            Registry::recycle(&mut self.spares, records);
        }
        for (s, e) in started {
            note(state.insert_call(&tx, s, e));
        }
        for e in ended {
            note(state.end(&tx, e));
        }

        for msg in messages {
            let r = match msg {
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
                    state.redactor.redact(&mut attrs);
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
            note(r);
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

/// A call's end, as stored.
struct EndText {
    ended_at: String,
    output: String,
    exception: Option<String>,
    summary: String,
}

impl WriterState {
    fn op_ref(&mut self, tx: &Transaction<'_>, s: &StartRecord) -> Result<String, Error> {
        let key = (s.op as *const OpInfo as usize, s.self_type);
        if let Some(op_ref) = self.op_refs.get(&key) {
            return Ok(op_ref.clone());
        }
        let name = s.op.full_name(s.self_type);
        let op_ref = self.publish_op(tx, s.op, &name)?;
        self.op_refs.insert(key, op_ref.clone());
        Ok(op_ref)
    }

    fn publish_op(
        &mut self,
        tx: &Transaction<'_>,
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

    /// Inserts a started call, ended too when `end` is given.
    fn insert_call(
        &mut self,
        tx: &Transaction<'_>,
        s: StartRecord,
        end: Option<EndRecord>,
    ) -> Result<(), Error> {
        let op_ref = self.op_ref(tx, &s)?;
        let mut inputs = Map::new();
        for (k, v) in s.inputs.into_values() {
            inputs.insert(k.to_string(), cap_size(v));
        }
        let mut inputs = Value::Object(inputs);
        self.redactor.redact(&mut inputs);
        let end = end.map(|e| self.end_text(e));
        write::insert_call(
            tx,
            &CallRow {
                id: &s.id.to_string(),
                project_id: &self.project_id,
                op_name: &op_ref,
                trace_id: &s.trace_id.to_string(),
                parent_id: s.parent_id.map(|p| p.to_string()).as_deref(),
                started_at: &rfc3339(s.started_at),
                inputs: &inputs.to_string(),
                attributes: &self.attributes,
                end: end.as_ref().map(|e| CallEnd {
                    ended_at: &e.ended_at,
                    output: &e.output,
                    exception: e.exception.as_deref(),
                    summary: &e.summary,
                }),
            },
        )
    }

    /// Ends a call inserted in an earlier round.
    fn end(&mut self, tx: &Transaction<'_>, e: EndRecord) -> Result<(), Error> {
        let id = e.id.to_string();
        let text = self.end_text(e);
        write::end_call(
            tx,
            &id,
            &CallEnd {
                ended_at: &text.ended_at,
                output: &text.output,
                exception: text.exception.as_deref(),
                summary: &text.summary,
            },
        )
    }

    fn end_text(&mut self, e: EndRecord) -> EndText {
        let mut output = cap_size(e.output);
        self.redactor.redact(&mut output);
        let exception = e
            .exception
            .map(|x| serde_json::to_string(&x).unwrap_or_default());
        let summary = match e.usage {
            None => format!(
                r#"{{"status_counts":{{"success":{},"error":{}}}}}"#,
                e.success, e.error
            ),
            Some(usage) => json!({
                "status_counts": {"success": e.success, "error": e.error},
                "usage": serde_json::to_value(usage).unwrap_or(Value::Null),
            })
            .to_string(),
        };
        EndText {
            ended_at: rfc3339(e.ended_at),
            output: output.to_string(),
            exception,
            summary,
        }
    }
}

//! Records to W&B Weave's wire types, on the writer thread: redaction of secret-looking keys
//! (the rule is [`crate::redact`]'s), the size cap on captured values, op objects and their
//! code files, call summaries and RFC 3339 times. Pure: no I/O, the same records always give the same batch.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::SyncSender;

use serde_json::{Map, Value};
use uuid::Uuid;
use weave_types::obj::RUST_OP_FILE;
use weave_types::{
    CallUpdateReq, CompleteCallSchemaForInsert, EndedCallSchemaForInsert, FileCreateReq,
    JsonObject, ObjSchemaForInsert, StartedCallSchemaForInsert, TableSchemaForInsert,
};

use weave_types::time::format_micros;

use crate::batch::{Batch, CallItem};
use crate::clock;
use crate::record::{CallMsg, End, Losses, Msg, OpInfo, Start, Usage};
use crate::redact::{RedactKeys, Redactor};

/// Largest stored size of one captured value, in bytes of JSON.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Calls per batch at most: a round with more (a burst) is handed to the sink in several
/// batches, so that the encoded form of a burst never sits in memory whole.
pub const MAX_BATCH_CALLS: usize = 4096;

/// Replaces a value whose JSON is over [`MAX_VALUE_BYTES`] by a string holding its head and a
/// `[weave: truncated ...]` marker. Never fails.
pub fn cap_size(value: Value) -> Value {
    match &value {
        Value::Null | Value::Bool(_) | Value::Number(_) => return value,
        Value::String(s) if s.len() <= MAX_VALUE_BYTES => return value,
        _ => {}
    }
    let text = match &value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let keep = MAX_VALUE_BYTES - 200;
    let mut cut = keep;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!(
        "{}...[weave: truncated, {} bytes in all]",
        &text[..cut],
        text.len()
    ))
}

/// The client's own attributes (`attributes.weave`), as Weave clients record them.
pub fn client_attributes() -> Map<String, Value> {
    let mut weave = Map::new();
    weave.insert("source".into(), Value::from("rust-sdk"));
    weave.insert(
        "client_version".into(),
        Value::from(env!("CARGO_PKG_VERSION")),
    );
    weave.insert("os_name".into(), Value::from(std::env::consts::OS));
    weave.insert("os_arch".into(), Value::from(std::env::consts::ARCH));
    weave.insert("os_family".into(), Value::from(std::env::consts::FAMILY));
    weave.insert("process_id".into(), Value::from(std::process::id()));
    // Where the calls are written, so that readers can tell an interrupted call from a
    // running one (`weave_types::summary::WriterProcess`).
    if let Some(w) = weave_types::summary::WriterProcess::this_process() {
        weave.insert("host".into(), Value::from(w.host));
        weave.insert("boot_id".into(), Value::from(w.boot_id));
        weave.insert("process_start".into(), Value::from(w.process_start));
    }
    let mut m = Map::new();
    m.insert("weave".into(), Value::Object(weave));
    m
}

/// A call summary: `{"status_counts": {"success", "error"}, "usage"?: {model: usage}}`.
pub fn summary(
    success: u64,
    error: u64,
    usage: Option<&BTreeMap<String, Usage>>,
) -> Map<String, Value> {
    let mut counts = Map::new();
    counts.insert("success".into(), Value::from(success));
    counts.insert("error".into(), Value::from(error));
    let mut m = Map::new();
    m.insert("status_counts".into(), Value::Object(counts));
    if let Some(usage) = usage {
        m.insert(
            "usage".into(),
            serde_json::to_value(usage).unwrap_or(Value::Null),
        );
    }
    m
}

/// Where an op's source is, kept with its version as metadata (not hashed).
pub fn op_metadata(op: &OpInfo) -> Value {
    let mut m = Map::new();
    m.insert("language".into(), Value::from("rust"));
    m.insert("module".into(), Value::from(op.module_path));
    m.insert("file".into(), Value::from(op.file));
    m.insert("line".into(), Value::from(op.line));
    Value::Object(m)
}

/// Hashes call ids (UUIDv7: 74 random bits) by their last 64 bits, without SipHash: the
/// writer looks every call up once per round.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A `Uuid` hashes as its 16 bytes: keep the random tail.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

/// Control messages of a round, for the writer.
#[derive(Debug, Default)]
pub struct Control {
    /// Flush requests to answer once the round is written.
    pub flushes: Vec<SyncSender<Losses>>,
    /// Whether to stop after the round.
    pub shutdown: bool,
}

/// Turns one writer round of records into a [`Batch`], remembering which ops it published.
pub struct Encoder {
    project_id: String,
    ref_prefix: String,
    redactor: Redactor,
    /// The client's attributes, shared by every call (cloning them is a reference count).
    attributes: JsonObject,
    /// Op ref per (op, self type).
    op_refs: HashMap<(usize, Option<&'static str>), String>,
    /// Ops published, by stored name and version.
    published: HashSet<(String, &'static str)>,
    /// Summaries without usage, by status counts.
    summaries: HashMap<(u64, u64), JsonObject>,
}

/// Shared summaries kept at most.
const MAX_SHARED_SUMMARIES: usize = 256;

impl Encoder {
    /// An encoder for `project_id` (`entity/project`) redacting with `keys`.
    pub fn new(project_id: &str, keys: RedactKeys) -> Encoder {
        let mut redactor = Redactor::new(keys);
        let mut attributes = client_attributes();
        redactor.redact_map(&mut attributes);
        Encoder {
            project_id: project_id.to_string(),
            ref_prefix: format!("weave:///{project_id}/"),
            redactor,
            attributes: attributes.into(),
            op_refs: HashMap::new(),
            published: HashSet::new(),
            summaries: HashMap::new(),
        }
    }

    /// Encodes a round: the call records drained from the buffers (each vector is left
    /// empty, for reuse) and the channel messages. A call that started and ended in the round
    /// becomes one complete record. Whenever `batch` holds [`MAX_BATCH_CALLS`] calls it is
    /// handed to `full` (which empties it); what is left at the end stays in `batch`.
    pub fn encode(
        &mut self,
        calls: &mut [Vec<CallMsg>],
        messages: Vec<Msg>,
        batch: &mut Batch,
        control: &mut Control,
        full: &mut dyn FnMut(&mut Batch),
    ) {
        let records: usize = calls.iter().map(Vec::len).sum();
        let mut started: Vec<(Start, Option<End>)> = Vec::with_capacity(records / 2 + 1);
        let mut index: HashMap<Uuid, usize, IdHash> =
            HashMap::with_capacity_and_hasher(records / 2 + 1, IdHash);
        let mut ended: Vec<End> = Vec::new();
        for records in calls.iter_mut() {
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
        }
        let mut push = |batch: &mut Batch, item: CallItem| {
            batch.calls.push(item);
            if batch.calls.len() >= MAX_BATCH_CALLS {
                full(batch);
            }
        };
        for (s, e) in started {
            let item = self.call(s, e, batch);
            push(batch, item);
        }
        for e in ended {
            let end = self.end(e);
            push(batch, CallItem::End(end));
        }
        for msg in messages {
            self.message(msg, batch, control);
        }
    }

    fn message(&mut self, msg: Msg, batch: &mut Batch, control: &mut Control) {
        match msg {
            // Objects and rows were redacted before they were digested (their digests are in
            // refs already); redacting again changes nothing then. Should a producer have
            // missed it, the secret is still not stored: the store refuses the record, whose
            // value no longer has the digest it claims, and the loss is reported.
            Msg::Object(mut o) => {
                self.redactor.redact(&mut o.val);
                batch.objs.push(ObjSchemaForInsert {
                    project_id: self.project_id.clone(),
                    object_id: o.name,
                    val: o.val,
                    expected_digest: Some(o.digest),
                    ..Default::default()
                })
            }
            Msg::Table(t) => batch.tables.push(TableSchemaForInsert {
                project_id: self.project_id.clone(),
                rows: t
                    .rows
                    .into_iter()
                    .map(|(_, mut v)| {
                        self.redactor.redact(&mut v);
                        v
                    })
                    .collect(),
                expected_digest: Some(t.digest),
            }),
            Msg::Attributes { id, mut attrs } => {
                self.redactor.redact(&mut attrs);
                match *attrs {
                    Value::Object(m) => batch.call_updates.push(CallUpdateReq {
                        project_id: self.project_id.clone(),
                        call_id: id.to_string(),
                        attributes: Some(m),
                        ..Default::default()
                    }),
                    other => tracing::warn!(
                        "weave: add_attributes takes a JSON object; ignored {}",
                        other
                    ),
                }
            }
            Msg::Op { op, name } => {
                self.publish_op(op, &name, batch);
            }
            Msg::Flush(f) => control.flushes.push(f),
            Msg::Shutdown => control.shutdown = true,
        }
    }

    /// Adds the op's code file and version to the batch (once); returns its ref.
    fn publish_op(&mut self, op: &'static OpInfo, name: &str, batch: &mut Batch) -> String {
        let op_ref = format!("{}op/{name}:{}", self.ref_prefix, op.version);
        if self.published.insert((name.to_string(), op.version)) {
            batch.files.push(FileCreateReq {
                project_id: self.project_id.clone(),
                name: RUST_OP_FILE.into(),
                content: op.code.as_bytes().to_vec(),
                expected_digest: Some(op.digest.to_string()),
            });
            batch.objs.push(ObjSchemaForInsert {
                project_id: self.project_id.clone(),
                object_id: name.to_string(),
                val: weave_types::obj::op_val(RUST_OP_FILE, op.digest),
                expected_digest: Some(op.version.to_string()),
                metadata: Some(op_metadata(op)),
                ..Default::default()
            });
        }
        op_ref
    }

    fn op_ref(&mut self, s: &Start, batch: &mut Batch) -> String {
        let key = (s.op as *const OpInfo as usize, s.self_type);
        if let Some(r) = self.op_refs.get(&key) {
            return r.clone();
        }
        let name = s.op.full_name(s.self_type);
        let r = self.publish_op(s.op, &name, batch);
        self.op_refs.insert(key, r.clone());
        r
    }

    fn inputs(&mut self, mut s: Start) -> (StartParts, Map<String, Value>) {
        let mut inputs = Map::new();
        match s.extra.as_mut().and_then(|x| x.inputs.take()) {
            Some(post) => {
                for (k, v) in post {
                    inputs.insert(k, cap_size(v));
                }
            }
            None => {
                for (k, v) in s.inputs.into_values() {
                    inputs.insert(k.to_string(), cap_size(v));
                }
            }
        }
        self.redactor.redact_map(&mut inputs);
        let parts = StartParts {
            id: s.id.to_string(),
            trace_id: s.trace_id.to_string(),
            parent_id: s.parent_id.map(|p| p.to_string()),
            started_micros: clock::unix_micros(s.started_at),
        };
        (parts, inputs)
    }

    fn output(&mut self, e: &mut End) -> (Value, Option<String>, JsonObject) {
        let mut output = cap_size(Value::from(std::mem::take(&mut e.output)));
        self.redactor.redact(&mut output);
        let redactor = &mut self.redactor;
        let exception = e.exception.as_mut().map(|x| {
            // Error text is often `Debug` text, which may hold a secret field.
            for text in [&mut x.message, &mut x.traceback] {
                if let Cow::Owned(t) = redactor.redact_text(text) {
                    *text = t;
                }
            }
            serde_json::to_string(x).unwrap_or_default()
        });
        let summary = match &e.usage {
            // Calls without usage share their summary with every call of the same counts.
            None => {
                if self.summaries.len() >= MAX_SHARED_SUMMARIES {
                    self.summaries.clear();
                }
                self.summaries
                    .entry((e.success, e.error))
                    .or_insert_with(|| summary(e.success, e.error, None).into())
                    .clone()
            }
            Some(usage) => summary(e.success, e.error, Some(usage)).into(),
        };
        (output, exception, summary)
    }

    /// A call's display name and attributes: the client's, with the scoped ones of a call
    /// that has them (redacted; the client's `weave` key wins).
    fn extra(&mut self, s: &mut Start) -> (Option<String>, JsonObject) {
        let Some(extra) = s.extra.as_mut() else {
            return (None, self.attributes.clone());
        };
        let attributes = match extra.attributes.take() {
            None => self.attributes.clone(),
            Some(scoped) => {
                let mut m = std::sync::Arc::unwrap_or_clone(scoped);
                self.redactor.redact_map(&mut m);
                for (k, v) in self.attributes.iter() {
                    m.insert(k.clone(), v.clone());
                }
                m.into()
            }
        };
        (extra.display_name.take(), attributes)
    }

    fn call(&mut self, mut s: Start, e: Option<End>, batch: &mut Batch) -> CallItem {
        let op_name = self.op_ref(&s, batch);
        let (display_name, attributes) = self.extra(&mut s);
        let (p, inputs) = self.inputs(s);
        match e {
            Some(mut e) => {
                let (output, exception, summary) = self.output(&mut e);
                CallItem::Complete(CompleteCallSchemaForInsert {
                    project_id: self.project_id.clone(),
                    id: p.id,
                    trace_id: p.trace_id,
                    op_name,
                    started_at: format_micros(p.started_micros),
                    // Never before the start (two readings of a clock can disagree by a
                    // little when one was converted from the time-stamp counter).
                    ended_at: format_micros(clock::unix_micros(e.ended_at).max(p.started_micros)),
                    parent_id: p.parent_id,
                    attributes,
                    display_name,
                    inputs,
                    output,
                    summary,
                    exception,
                    ..Default::default()
                })
            }
            None => CallItem::Start(StartedCallSchemaForInsert {
                project_id: self.project_id.clone(),
                id: Some(p.id),
                op_name,
                trace_id: Some(p.trace_id),
                parent_id: p.parent_id,
                started_at: format_micros(p.started_micros),
                attributes,
                display_name,
                inputs,
                ..Default::default()
            }),
        }
    }

    fn end(&mut self, mut e: End) -> EndedCallSchemaForInsert {
        let (output, exception, summary) = self.output(&mut e);
        EndedCallSchemaForInsert {
            project_id: self.project_id.clone(),
            id: e.id.to_string(),
            ended_at: format_micros(clock::unix_micros(e.ended_at)),
            exception,
            output,
            summary,
            ..Default::default()
        }
    }
}

/// The scalar parts of a start.
struct StartParts {
    id: String,
    trace_id: String,
    parent_id: Option<String>,
    started_micros: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stamp;
    use crate::record::{Exception, Inputs, ObjectRecord};
    use serde_json::json;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    static OP: OpInfo = OpInfo {
        name: "predict",
        explicit_name: false,
        digest: "codeDigest",
        version: "versionDigest",
        code: "fn predict(&self) {}",
        module_path: "m",
        file: "src/m.rs",
        line: 7,
    };

    #[test]
    fn cap_size_truncates_with_marker() {
        let big = Value::String("x".repeat(MAX_VALUE_BYTES + 10));
        let Value::String(s) = cap_size(big) else {
            panic!("string expected")
        };
        assert!(s.len() <= MAX_VALUE_BYTES);
        assert!(s.ends_with(&format!(
            "[weave: truncated, {} bytes in all]",
            MAX_VALUE_BYTES + 10
        )));
        assert_eq!(cap_size(Value::from(3)), Value::from(3));
    }

    fn start(id: u128, parent: Option<u128>, inputs: Vec<(&'static str, Value)>) -> Start {
        let mut i = Inputs::default();
        for (k, v) in inputs {
            i.push(k, v);
        }
        Start {
            id: Uuid::from_u128(id),
            trace_id: Uuid::from_u128(1),
            parent_id: parent.map(Uuid::from_u128),
            op: &OP,
            self_type: Some("my_crate::Model<u8>"),
            started_at: Stamp::from_system_time(UNIX_EPOCH + Duration::from_micros(1_500_000)),
            inputs: i,
            extra: None,
        }
    }

    fn end(id: u128, output: Value, exception: Option<Exception>) -> End {
        End {
            id: Uuid::from_u128(id),
            ended_at: Stamp::from_system_time(UNIX_EPOCH + Duration::from_micros(2_000_001)),
            output: output.into(),
            exception: exception.map(Box::new),
            success: 2,
            error: 1,
            usage: Some(BTreeMap::from([("gpt".to_string(), Usage::request(3, 4))])),
        }
    }

    #[test]
    fn a_round_becomes_weave_records() {
        let mut enc = Encoder::new("ent/proj", RedactKeys::defaults());
        let mut batch = Batch::default();
        let mut control = Control::default();
        let mut calls = vec![
            vec![
                CallMsg::Start(start(
                    10,
                    None,
                    vec![
                        ("self", json!("weave:///ent/proj/object/M:d")),
                        ("api_key", json!("sk-123")),
                    ],
                )),
                CallMsg::Start(start(11, Some(10), vec![])),
                CallMsg::End(end(11, json!({"password": "p", "ok": 1}), None)),
            ],
            vec![CallMsg::End(end(
                9,
                Value::Null,
                Some(Exception {
                    kind: "E".into(),
                    message: "boom".into(),
                    traceback: String::new(),
                }),
            ))],
        ];
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        enc.encode(
            &mut calls,
            vec![
                Msg::Attributes {
                    id: Uuid::from_u128(10),
                    attrs: Box::new(json!({"settings": {"token": "t", "n": 1}})),
                },
                Msg::Object(Box::new(ObjectRecord {
                    name: "M".into(),
                    digest: "d".into(),
                    val: json!({"_type": "M"}),
                })),
                Msg::Flush(tx),
            ],
            &mut batch,
            &mut control,
            &mut |_| panic!("a small round fits one batch"),
        );
        assert!(calls.iter().all(Vec::is_empty), "drained for reuse");
        assert_eq!(control.flushes.len(), 1);
        assert!(!control.shutdown);
        // The op: its code file and Weave-shaped version, once.
        assert_eq!(batch.files.len(), 1);
        assert_eq!(batch.files[0].content, OP.code.as_bytes());
        assert_eq!(
            batch.files[0].expected_digest.as_deref(),
            Some("codeDigest")
        );
        assert_eq!(batch.objs[0].object_id, "Model.predict");
        assert_eq!(
            batch.objs[0].val,
            json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {"obj.rs": "codeDigest"}})
        );
        assert_eq!(batch.objs[0].metadata.as_ref().unwrap()["line"], json!(7));
        assert_eq!(batch.objs[1].object_id, "M");
        assert_eq!(batch.objs[1].expected_digest.as_deref(), Some("d"));
        // A start still running, a complete call, and an end of an earlier start.
        assert_eq!(batch.calls.len(), 3);
        let CallItem::Start(s) = &batch.calls[0] else {
            panic!("{:?}", batch.calls[0])
        };
        assert_eq!(
            s.op_name,
            "weave:///ent/proj/op/Model.predict:versionDigest"
        );
        assert_eq!(s.started_at, "1970-01-01T00:00:01.500000Z");
        assert_eq!(s.inputs["api_key"], json!("REDACTED"));
        assert_eq!(s.inputs["self"], json!("weave:///ent/proj/object/M:d"));
        assert_eq!(s.attributes["weave"]["source"], json!("rust-sdk"));
        let CallItem::Complete(c) = &batch.calls[1] else {
            panic!()
        };
        assert_eq!(
            c.parent_id.as_deref(),
            Some(Uuid::from_u128(10).to_string().as_str())
        );
        assert_eq!(c.output, json!({"password": "REDACTED", "ok": 1}));
        assert_eq!(c.ended_at, "1970-01-01T00:00:02.000001Z");
        assert_eq!(
            Value::Object((*c.summary).clone()),
            json!({"status_counts": {"success": 2, "error": 1},
                   "usage": {"gpt": {"requests": 1, "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}})
        );
        let CallItem::End(e) = &batch.calls[2] else {
            panic!()
        };
        let exc: Value = serde_json::from_str(e.exception.as_deref().unwrap()).unwrap();
        assert_eq!(
            exc,
            json!({"type": "E", "message": "boom", "traceback": ""})
        );
        assert_eq!(batch.call_updates.len(), 1);
        assert_eq!(
            Value::Object(batch.call_updates[0].attributes.clone().unwrap()),
            json!({"settings": {"token": "REDACTED", "n": 1}})
        );

        // A burst is handed over in batches of at most MAX_BATCH_CALLS calls.
        let mut burst: Vec<CallMsg> = Vec::new();
        for i in 0..(2 * MAX_BATCH_CALLS as u128 + 500) {
            burst.push(CallMsg::Start(start(1000 + i, None, vec![])));
            burst.push(CallMsg::End(end(1000 + i, json!(1), None)));
        }
        let mut handed = Vec::new();
        let mut rest = Batch::default();
        enc.encode(&mut [burst], vec![], &mut rest, &mut control, &mut |b| {
            handed.push(b.calls.len());
            b.clear();
        });
        assert_eq!(handed, [MAX_BATCH_CALLS, MAX_BATCH_CALLS]);
        assert_eq!(rest.calls.len(), 500);
        assert!(rest
            .calls
            .iter()
            .all(|c| matches!(c, CallItem::Complete(_))));

        // Next round: the op is not published again.
        let mut batch2 = Batch::default();
        let mut calls2 = vec![vec![CallMsg::Start(start(12, None, vec![]))]];
        enc.encode(&mut calls2, vec![], &mut batch2, &mut control, &mut |_| {});
        assert!(batch2.files.is_empty() && batch2.objs.is_empty());
        assert_eq!(batch2.calls.len(), 1);
    }
}

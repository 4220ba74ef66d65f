//! Copying a project from one [`TraceStore`] to another (SQLite to ClickHouse and back, or
//! through a trace server): every object version (in creation order, then `latest` where it
//! was), the tables and files they and the calls refer to, every listed call, and every
//! feedback row, each checked against its digest or id, then verified by counting both sides.
//!
//! Through the trait only, so any two backends work. What cannot travel through the trait:
//! calls that were deleted (not listed), calls whose start never arrived, the OpenTelemetry
//! dump of a call, and the creation times of object versions and feedback (the destination
//! stamps its own; order, version indexes and `latest` are kept).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use weave_types::query::SortBy;
use weave_types::refs::{RefKind, WeaveRef};
use weave_types::*;

use crate::error::{Result, StoreError};
use crate::store::TraceStore;

/// Calls per write when copying.
const BATCH: usize = 500;

/// What a copy moved (and found in the destination afterwards).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// The project.
    pub project_id: String,
    /// Object versions copied.
    pub objects: usize,
    /// Tables copied.
    pub tables: usize,
    /// Files copied.
    pub files: usize,
    /// Calls copied.
    pub calls: usize,
    /// Feedback rows copied.
    pub feedback: usize,
}

fn mismatch(what: String) -> StoreError {
    StoreError::Backend {
        store: "copy".into(),
        source: what.into(),
    }
}

/// Table digests and file digests a value refers to: table refs of this project, and the
/// `files` of custom-type values (`{"_type": "CustomWeaveType", "files": {name: digest}}`).
fn collect(v: &Value, project: &str, tables: &mut BTreeSet<String>, files: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if s.starts_with(weave_types::refs::REF_SCHEME) => {
            if let Ok(r) = WeaveRef::parse(s) {
                if r.kind == RefKind::Table && r.project_id() == project {
                    tables.insert(r.digest);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect(i, project, tables, files)),
        Value::Object(m) => {
            if m.get("_type").and_then(Value::as_str) == Some("CustomWeaveType") {
                if let Some(Value::Object(fs)) = m.get("files") {
                    for d in fs.values().filter_map(Value::as_str) {
                        files.insert(d.to_string());
                    }
                }
            }
            m.values().for_each(|i| collect(i, project, tables, files));
        }
        _ => {}
    }
}

/// Copies the files among `digests` not copied yet; a digest the source lacks is skipped
/// (a reference to a file that never arrived).
async fn copy_files(
    from: &dyn TraceStore,
    to: &dyn TraceStore,
    project_id: &str,
    digests: &BTreeSet<String>,
    done: &mut BTreeSet<String>,
) -> Result<usize> {
    let mut n = 0;
    for d in digests {
        if done.contains(d) {
            continue;
        }
        let content = match from
            .file_content_read(FileContentReadReq {
                project_id: project_id.into(),
                digest: d.clone(),
            })
            .await
        {
            Ok(c) => c.content,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        to.file_create(FileCreateReq {
            project_id: project_id.into(),
            name: String::new(),
            content,
            expected_digest: Some(d.clone()),
        })
        .await?;
        done.insert(d.clone());
        n += 1;
    }
    Ok(n)
}

/// Copies one project from `from` to `to` (same project id), then checks that `to` has
/// every object version, table, call and feedback row `from` has.
pub async fn copy_project(
    from: &dyn TraceStore,
    to: &dyn TraceStore,
    project_id: &str,
) -> Result<CopyReport> {
    let mut report = CopyReport {
        project_id: project_id.to_string(),
        ..Default::default()
    };
    let (mut tables, mut files) = (BTreeSet::new(), BTreeSet::new());

    // Objects, in creation order; then `latest` back where the source has it.
    let objs = from
        .objs_query(ObjQueryReq {
            project_id: project_id.into(),
            sort_by: Some(vec![
                SortBy::asc("created_at"),
                SortBy::asc("version_index"),
            ]),
            ..Default::default()
        })
        .await?
        .objs;
    let mut by_object: BTreeMap<&str, Vec<&ObjSchema>> = BTreeMap::new();
    for o in &objs {
        by_object.entry(&o.object_id).or_default().push(o);
    }
    for vs in by_object.values_mut() {
        vs.sort_by_key(|o| o.version_index);
    }
    let mut order: Vec<&ObjSchema> = objs.iter().collect();
    order.sort_by(|a, b| {
        (&a.created_at, a.version_index, &a.object_id).cmp(&(
            &b.created_at,
            b.version_index,
            &b.object_id,
        ))
    });
    for o in &order {
        collect(&o.val, project_id, &mut tables, &mut files);
    }
    // Files first: op objects refer to them.
    let mut copied = BTreeSet::new();
    report.files += copy_files(from, to, project_id, &files, &mut copied).await?;
    let put = |o: &ObjSchema| ObjCreateReq {
        obj: ObjSchemaForInsert {
            project_id: project_id.into(),
            object_id: o.object_id.clone(),
            val: o.val.clone(),
            expected_digest: Some(o.digest.clone()),
            wb_user_id: o.wb_user_id.clone(),
            metadata: o.metadata.clone(),
            ..Default::default()
        },
    };
    for o in &order {
        to.obj_create(put(o)).await?;
        report.objects += 1;
    }
    for vs in by_object.values() {
        let last = vs.last().map(|o| o.digest.as_str());
        if let Some(latest) = vs.iter().find(|o| o.is_latest == 1) {
            if Some(latest.digest.as_str()) != last {
                to.obj_create(put(latest)).await?;
            }
        }
    }

    // Calls (and what they refer to), in start order.
    let calls = from
        .calls_query_vec(CallsQueryReq {
            project_id: project_id.into(),
            ..Default::default()
        })
        .await?;
    for c in &calls {
        for m in [&c.inputs, &c.attributes] {
            for v in m.values() {
                collect(v, project_id, &mut tables, &mut files);
            }
        }
        if let Some(o) = &c.output {
            collect(o, project_id, &mut tables, &mut files);
        }
    }
    let feedback = from
        .feedback_query(FeedbackQueryReq {
            project_id: project_id.into(),
            ..Default::default()
        })
        .await?
        .result;
    for f in &feedback {
        if let Some(p) = f.get("payload") {
            collect(p, project_id, &mut tables, &mut files);
        }
    }
    for d in &tables {
        let rows = match from
            .table_query(TableQueryReq {
                project_id: project_id.into(),
                digest: d.clone(),
                filter: None,
                limit: None,
                offset: None,
                sort_by: None,
            })
            .await
        {
            Ok(r) => r.rows,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        to.table_create(TableCreateReq {
            table: TableSchemaForInsert {
                project_id: project_id.into(),
                rows: rows.into_iter().map(|r| r.val).collect(),
                expected_digest: Some(d.clone()),
            },
        })
        .await?;
        report.tables += 1;
    }
    // Files met in calls and feedback.
    report.files += copy_files(from, to, project_id, &files, &mut copied).await?;
    let (ended, running): (Vec<&CallSchema>, Vec<&CallSchema>) =
        calls.iter().partition(|c| c.ended_at.is_some());
    for chunk in ended.chunks(BATCH) {
        let batch = chunk
            .iter()
            .map(|c| {
                let mut summary = c.summary.clone();
                summary.remove("weave");
                CompleteCallSchemaForInsert {
                    project_id: project_id.into(),
                    id: c.id.clone(),
                    trace_id: c.trace_id.clone(),
                    op_name: c.op_name.clone(),
                    started_at: c.started_at.clone(),
                    ended_at: c.ended_at.clone().unwrap_or_default(),
                    display_name: c.display_name.clone(),
                    parent_id: c.parent_id.clone(),
                    thread_id: c.thread_id.clone(),
                    turn_id: c.turn_id.clone(),
                    attributes: c.attributes.clone().into(),
                    inputs: c.inputs.clone(),
                    output: c.output.clone().unwrap_or(Value::Null),
                    summary: summary.into(),
                    exception: c.exception.clone(),
                    otel_dump: None,
                    wb_user_id: c.wb_user_id.clone(),
                    wb_run_id: c.wb_run_id.clone(),
                    wb_run_step: c.wb_run_step,
                    wb_run_step_end: c.wb_run_step_end,
                }
            })
            .collect();
        to.calls_complete(CallsCompleteReq { batch }).await?;
        report.calls += chunk.len();
    }
    for c in running {
        to.call_start(CallStartReq {
            start: StartedCallSchemaForInsert {
                project_id: project_id.into(),
                id: Some(c.id.clone()),
                op_name: c.op_name.clone(),
                display_name: c.display_name.clone(),
                trace_id: Some(c.trace_id.clone()),
                parent_id: c.parent_id.clone(),
                thread_id: c.thread_id.clone(),
                turn_id: c.turn_id.clone(),
                started_at: c.started_at.clone(),
                attributes: c.attributes.clone().into(),
                inputs: c.inputs.clone(),
                otel_dump: None,
                wb_user_id: c.wb_user_id.clone(),
                wb_run_id: c.wb_run_id.clone(),
                wb_run_step: c.wb_run_step,
            },
        })
        .await?;
        report.calls += 1;
    }

    // Feedback, with its ids (a retried copy adds nothing).
    let text = |m: &serde_json::Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).map(str::to_string)
    };
    let batch: Vec<FeedbackCreateReq> = feedback
        .iter()
        .map(|f| FeedbackCreateReq {
            id: text(f, "id"),
            project_id: project_id.into(),
            weave_ref: text(f, "weave_ref").unwrap_or_default(),
            creator: text(f, "creator"),
            wb_user_id: text(f, "wb_user_id"),
            feedback_type: text(f, "feedback_type").unwrap_or_default(),
            payload: f
                .get("payload")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            annotation_ref: text(f, "annotation_ref"),
            runnable_ref: text(f, "runnable_ref"),
            call_ref: text(f, "call_ref"),
            trigger_ref: text(f, "trigger_ref"),
        })
        .collect();
    for chunk in batch.chunks(BATCH) {
        to.feedback_create_batch(FeedbackCreateBatchReq {
            batch: chunk.to_vec(),
        })
        .await?;
        report.feedback += chunk.len();
    }

    verify(from, to, project_id).await?;
    Ok(report)
}

/// Checks that `to` has what `from` has: the same object versions (digest, index, latest),
/// the same calls (content), the same feedback ids.
async fn verify(from: &dyn TraceStore, to: &dyn TraceStore, project_id: &str) -> Result<()> {
    let versions = |objs: Vec<ObjSchema>| -> BTreeSet<(String, String, i64, i64)> {
        objs.into_iter()
            .map(|o| (o.object_id, o.digest, o.version_index, o.is_latest))
            .collect()
    };
    let q = ObjQueryReq {
        project_id: project_id.into(),
        metadata_only: true,
        ..Default::default()
    };
    let (a, b) = (
        versions(from.objs_query(q.clone()).await?.objs),
        versions(to.objs_query(q).await?.objs),
    );
    if let Some(missing) = a.difference(&b).next() {
        return Err(mismatch(format!(
            "after the copy, {project_id} lacks object version {}:{} (v{}, latest {})",
            missing.0, missing.1, missing.2, missing.3
        )));
    }
    let calls = |cs: Vec<CallSchema>| -> BTreeMap<String, Value> {
        cs.into_iter()
            .map(|c| {
                (
                    c.id.clone(),
                    serde_json::to_value(&c).unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    let q = CallsQueryReq {
        project_id: project_id.into(),
        ..Default::default()
    };
    let (a, b) = (
        calls(from.calls_query_vec(q.clone()).await?),
        calls(to.calls_query_vec(q).await?),
    );
    for (id, call) in &a {
        match b.get(id) {
            Some(c) if c == call => {}
            Some(_) => {
                return Err(mismatch(format!(
                    "after the copy, call {id} of {project_id} differs"
                )))
            }
            None => {
                return Err(mismatch(format!(
                    "after the copy, {project_id} lacks call {id}"
                )))
            }
        }
    }
    let ids = |r: FeedbackQueryRes| -> BTreeSet<String> {
        r.result
            .into_iter()
            .filter_map(|f| f.get("id").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let q = FeedbackQueryReq {
        project_id: project_id.into(),
        fields: Some(vec!["id".into()]),
        ..Default::default()
    };
    let (a, b) = (
        ids(from.feedback_query(q.clone()).await?),
        ids(to.feedback_query(q).await?),
    );
    if let Some(missing) = a.difference(&b).next() {
        return Err(mismatch(format!(
            "after the copy, {project_id} lacks feedback {missing}"
        )));
    }
    Ok(())
}

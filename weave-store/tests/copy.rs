//! `copy_project`: a project goes from SQLite to ClickHouse and back without losing anything
//! the trait can carry: object versions (digests, indexes, latest), files, tables, calls
//! (finished, running, renamed, with updated attributes) and feedback.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};
use weave_store::types::*;
use weave_store::{copy_project, TraceStore};

/// Everything the trait shows of a project, for comparison: the creation times of object
/// versions and feedback are the destination's own, so they are left out.
async fn snapshot(s: &dyn TraceStore, project: &str) -> Value {
    let mut objs: Vec<Value> = s
        .objs_query(ObjQueryReq {
            project_id: project.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .objs
        .into_iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap();
            v.as_object_mut().unwrap().remove("created_at");
            v
        })
        .collect();
    objs.sort_by_key(|v| v.to_string());
    let calls = serde_json::to_value(
        s.calls_query_vec(CallsQueryReq {
            project_id: project.into(),
            include_feedback: true,
            ..Default::default()
        })
        .await
        .unwrap(),
    )
    .unwrap();
    let mut calls = calls;
    for c in calls.as_array_mut().unwrap() {
        for f in c["summary"]["weave"]["feedback"].as_array_mut().unwrap() {
            f.as_object_mut().unwrap().remove("created_at");
        }
    }
    let mut feedback: Vec<Value> = s
        .feedback_query(FeedbackQueryReq {
            project_id: project.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .result
        .into_iter()
        .map(|mut f| {
            f.remove("created_at");
            Value::Object(f)
        })
        .collect();
    feedback.sort_by_key(|v| v.to_string());
    // Tables and files, found through the refs and file digests in values.
    let text = serde_json::to_string(&(&objs, &calls)).unwrap();
    let mut tables = BTreeSet::new();
    let mut files = BTreeSet::new();
    let prefix = format!("weave:///{project}/table/");
    for (i, _) in text.match_indices(&prefix) {
        let d: String = text[i + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        tables.insert(d);
    }
    for o in &objs {
        if let Some(fs) = o["val"]["files"].as_object() {
            files.extend(fs.values().filter_map(Value::as_str).map(str::to_string));
        }
    }
    let mut table_rows = Vec::new();
    for d in &tables {
        let rows = s
            .table_query(TableQueryReq {
                project_id: project.into(),
                digest: d.clone(),
                filter: None,
                limit: None,
                offset: None,
                sort_by: None,
            })
            .await
            .unwrap()
            .rows;
        table_rows.push(json!({"digest": d, "rows": rows}));
    }
    let mut file_bytes = Vec::new();
    for d in &files {
        let c = s
            .file_content_read(FileContentReadReq {
                project_id: project.into(),
                digest: d.clone(),
            })
            .await
            .unwrap();
        file_bytes.push(json!({"digest": d, "content": c.content}));
    }
    json!({"objs": objs, "calls": calls, "feedback": feedback, "tables": table_rows, "files": file_bytes})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_goes_to_clickhouse_and_back_intact() {
    let a = common::sqlite().await;
    let b = common::clickhouse().await;
    let c = common::sqlite().await;
    common::load_session(&*a.store).await;
    let projects = a.store.projects().await.unwrap();
    assert!(!projects.is_empty());
    let p = projects[0].clone();
    // Beyond the session: a call still running, a renamed call with updated attributes,
    // a deleted one (deleted calls are not copied), and an older object version made
    // latest again.
    let s = &a.store;
    s.call_start(CallStartReq {
        start: StartedCallSchemaForInsert {
            project_id: p.clone(),
            id: Some("running-1".into()),
            op_name: "weave:///x/y/op/slow:d".into(),
            trace_id: Some("tr-run".into()),
            started_at: "2026-11-30T10:00:00.000001Z".into(),
            inputs: json!({"n": 1}).as_object().unwrap().clone(),
            ..Default::default()
        },
    })
    .await
    .unwrap();
    for (id, started) in [
        ("kept", "2026-11-30T10:00:01Z"),
        ("gone", "2026-11-30T10:00:02Z"),
    ] {
        s.calls_complete(CallsCompleteReq {
            batch: vec![CompleteCallSchemaForInsert {
                project_id: p.clone(),
                id: id.into(),
                trace_id: format!("tr-{id}"),
                op_name: "weave:///x/y/op/f:d".into(),
                started_at: started.into(),
                ended_at: "2026-11-30T10:00:03Z".into(),
                output: json!([1, 2]),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    }
    s.call_update(CallUpdateReq {
        project_id: p.clone(),
        call_id: "kept".into(),
        display_name: Some("renamed".into()),
        attributes: Some(json!({"tag": "x"}).as_object().unwrap().clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    s.calls_delete(CallsDeleteReq {
        project_id: p.clone(),
        call_ids: vec!["gone".into()],
        wb_user_id: None,
    })
    .await
    .unwrap();
    for v in [1, 2, 1] {
        s.obj_create(ObjCreateReq {
            obj: ObjSchemaForInsert {
                project_id: p.clone(),
                object_id: "cfg".into(),
                val: json!({"v": v}),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    }

    let before = snapshot(&*a.store, &p).await;
    let there = copy_project(&*a.store, &*b.store, &p).await.unwrap();
    assert!(
        there.calls > 0 && there.objects > 0 && there.files > 0,
        "{there:?}"
    );
    assert!(there.tables > 0 && there.feedback > 0, "{there:?}");
    assert_eq!(snapshot(&*b.store, &p).await, before, "in ClickHouse");
    let back = copy_project(&*b.store, &*c.store, &p).await.unwrap();
    assert_eq!(back, there);
    assert_eq!(snapshot(&*c.store, &p).await, before, "back in SQLite");
    // Copying again changes nothing.
    let dst: Arc<dyn TraceStore> = b.store.clone();
    copy_project(&*a.store, &*dst, &p).await.unwrap();
    assert_eq!(snapshot(&*dst, &p).await, before, "copied twice");
}

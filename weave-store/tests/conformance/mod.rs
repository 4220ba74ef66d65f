//! The conformance suite: what every [`TraceStore`] must do, run against each backend
//! (`tests/sqlite.rs`, `tests/clickhouse.rs`) through [`conformance_tests!`]: call upserts in
//! any order and any number of times, filters, `$expr`, sorting, paging, projection, objects
//! and their versions, tables, files, refs, feedback, and project isolation.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{json, Value};
use weave_store::types::query::{Expr, Query, SortBy};
use weave_store::types::*;
use weave_store::{CallIdPrefixReq, StoreError, TraceStore};

/// One `#[tokio::test]` per suite function, each on a fresh store from `$make` (an async
/// fn returning a `common::Fixture`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            starts_and_ends_in_any_order_any_number_of_times,
            bad_records_are_refused_naming_the_field_and_lose_nothing,
            filters,
            expr_operators,
            sort_paging_and_projection,
            update_delete_and_isolation,
            id_prefix_and_neighbors,
            object_versions,
            tables_files_refs_and_feedback,
            a_large_query_streams_and_can_be_dropped_early,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = $make().await;
                conformance::$name(f.store.clone()).await;
            }
        )*
    };
}

const P: &str = "ent/proj";

fn t(sec: u32, micros: u32) -> String {
    format!("2026-01-01T00:00:{sec:02}.{micros:06}Z")
}

fn complete(
    id: &str,
    parent: Option<&str>,
    op: &str,
    start: u32,
    end: u32,
) -> CompleteCallSchemaForInsert {
    CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        trace_id: "trace-1".into(),
        op_name: format!("weave:///{P}/op/{op}:d1"),
        started_at: t(start, 0),
        ended_at: t(end, 500),
        parent_id: parent.map(str::to_string),
        attributes: json!({"weave": {"source": "test"}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        inputs: json!({"x": start, "name": op}).as_object().unwrap().clone(),
        output: json!({"y": end}),
        summary: json!({"status_counts": {"success": 1, "error": 0}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        ..Default::default()
    }
}

fn query(q: Value) -> CallsQueryReq {
    CallsQueryReq {
        project_id: P.into(),
        query: Some(serde_json::from_value(json!({"$expr": q})).unwrap()),
        ..Default::default()
    }
}

async fn ids(s: &dyn TraceStore, req: CallsQueryReq) -> Vec<String> {
    s.calls_query_vec(req)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

fn start(id: &str, op: &str, at: u32) -> StartedCallSchemaForInsert {
    StartedCallSchemaForInsert {
        project_id: P.into(),
        id: Some(id.into()),
        op_name: op.into(),
        trace_id: Some("tr".into()),
        started_at: t(at, 0),
        attributes: json!({"a": 1}).as_object().unwrap().clone().into(),
        inputs: json!({"q": "hi"}).as_object().unwrap().clone(),
        ..Default::default()
    }
}

fn end(id: &str, at: u32, output: Value) -> EndedCallSchemaForInsert {
    EndedCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        ended_at: t(at, 0),
        output,
        summary: json!({"status_counts": {"success": 1, "error": 0}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        ..Default::default()
    }
}

pub async fn starts_and_ends_in_any_order_any_number_of_times(s: Arc<dyn TraceStore>) {
    // End first: the call is not listed until its start arrives.
    s.call_end(CallEndReq {
        end: end("c1", 5, json!("out")),
    })
    .await
    .unwrap();
    let all = CallsQueryReq {
        project_id: P.into(),
        ..Default::default()
    };
    assert!(s.calls_query_vec(all.clone()).await.unwrap().is_empty());
    // An attribute update before the start is kept.
    s.call_update(CallUpdateReq {
        project_id: P.into(),
        call_id: "c1".into(),
        attributes: Some(json!({"extra": true}).as_object().unwrap().clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let res = s
        .call_start(CallStartReq {
            start: start("c1", "f", 1),
        })
        .await
        .unwrap();
    assert_eq!((res.id.as_str(), res.trace_id.as_str()), ("c1", "tr"));
    // Duplicates change nothing.
    for _ in 0..2 {
        s.call_start(CallStartReq {
            start: start("c1", "f", 1),
        })
        .await
        .unwrap();
        s.call_end(CallEndReq {
            end: end("c1", 5, json!("out")),
        })
        .await
        .unwrap();
    }
    let calls = s.calls_query_vec(all.clone()).await.unwrap();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.output, Some(json!("out")));
    assert_eq!(c.ended_at.as_deref(), Some(t(5, 0).as_str()));
    assert_eq!(
        Value::Object(c.attributes.clone()),
        json!({"a": 1, "extra": true})
    );
    assert_eq!(c.summary["weave"]["status"], json!("success"));
    assert_eq!(c.summary["weave"]["latency_ms"], json!(4000));
    assert_eq!(c.summary["weave"]["trace_name"], json!("f"));

    // A retried calls/complete batch, children before the parent, twice.
    let batch = CallsCompleteReq {
        batch: vec![
            complete("k2", Some("k1"), "child", 2, 3),
            complete("k1", None, "parent", 1, 4),
        ],
    };
    s.calls_complete(batch.clone()).await.unwrap();
    s.calls_complete(batch).await.unwrap();
    let n = s
        .calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n.count, 3);
    // Default order: started_at then id.
    assert_eq!(ids(&*s, all).await, vec!["c1", "k1", "k2"]);

    // A start without an id or trace id gets both.
    let mut anon = start("x", "f", 9);
    anon.id = None;
    anon.trace_id = None;
    let r = s.call_start(CallStartReq { start: anon }).await.unwrap();
    assert_eq!(r.id.len(), 36);
    assert_ne!(r.id, r.trace_id);
}

pub async fn bad_records_are_refused_naming_the_field_and_lose_nothing(s: Arc<dyn TraceStore>) {
    let good = complete("g", None, "f", 1, 2);
    let mut bad = complete("b", None, "f", 1, 2);
    bad.started_at = "yesterday".into();
    let e = s
        .calls_complete(CallsCompleteReq {
            batch: vec![good.clone(), bad],
        })
        .await
        .unwrap_err();
    match &e {
        StoreError::InvalidRequest { field, reason } => {
            assert_eq!(field, "batch[1].started_at");
            assert!(reason.contains("yesterday"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.http_status(), 400);
    // All or nothing: the good call of that batch is not stored either.
    let stats = CallsQueryStatsReq {
        project_id: P.into(),
        ..Default::default()
    };
    assert_eq!(s.calls_query_stats(stats.clone()).await.unwrap().count, 0);
    s.calls_complete(CallsCompleteReq { batch: vec![good] })
        .await
        .unwrap();
    assert_eq!(s.calls_query_stats(stats).await.unwrap().count, 1);
    let mut wrong = complete("w", None, "f", 1, 2);
    wrong.project_id = "no-slash".into();
    let e = s
        .calls_complete(CallsCompleteReq { batch: vec![wrong] })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("batch[0].project_id"), "{e}");
}

/// A trace: root r (ok), a (ok, usage), b (error), c (running), across three ops.
async fn seed(s: &dyn TraceStore) {
    let mut r = complete("r", None, "root", 1, 9);
    r.summary = json!({"status_counts": {"success": 2, "error": 1}})
        .as_object()
        .unwrap()
        .clone()
        .into();
    r.inputs = json!({"self": "weave:///ent/proj/object/M:abc", "n": 1})
        .as_object()
        .unwrap()
        .clone();
    let mut a = complete("a", Some("r"), "step", 2, 3);
    a.inputs = json!({"n": 2, "text": "Hello World"})
        .as_object()
        .unwrap()
        .clone();
    a.output = json!({"score": 0.5, "ref": "weave:///ent/proj/object/Out:1"});
    let mut b = complete("b", Some("r"), "step", 4, 8);
    b.inputs = json!({"n": 3, "text": "bye"}).as_object().unwrap().clone();
    b.exception = Some(r#"{"type": "E", "message": "boom", "traceback": ""}"#.into());
    b.output = Value::Null;
    s.calls_complete(CallsCompleteReq {
        batch: vec![a, b, r],
    })
    .await
    .unwrap();
    let mut c = start("c", &format!("weave:///{P}/op/other:d2"), 5);
    c.parent_id = Some("r".into());
    c.trace_id = Some("trace-1".into());
    s.call_start(CallStartReq { start: c }).await.unwrap();
}

pub async fn filters(s: Arc<dyn TraceStore>) {
    seed(&*s).await;
    let f = |filter: CallsFilter| CallsQueryReq {
        project_id: P.into(),
        filter: Some(filter),
        ..Default::default()
    };
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                trace_roots_only: Some(true),
                ..Default::default()
            })
        )
        .await,
        vec!["r"]
    );
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                parent_ids: Some(vec!["r".into()]),
                ..Default::default()
            })
        )
        .await,
        vec!["a", "b", "c"]
    );
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                op_names: Some(vec![format!("weave:///{P}/op/step:*")]),
                ..Default::default()
            })
        )
        .await,
        vec!["a", "b"]
    );
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                op_names: Some(vec![format!("weave:///{P}/op/other:d2")]),
                ..Default::default()
            })
        )
        .await,
        vec!["c"]
    );
    // `_` in an op name is not a wildcard.
    assert!(ids(
        &*s,
        f(CallsFilter {
            op_names: Some(vec![format!("weave:///{P}/op/st_p:*")]),
            ..Default::default()
        })
    )
    .await
    .is_empty());
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                call_ids: Some(vec!["b".into(), "zz".into()]),
                ..Default::default()
            })
        )
        .await,
        vec!["b"]
    );
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                input_refs: Some(vec!["weave:///ent/proj/object/M:abc".into()]),
                ..Default::default()
            })
        )
        .await,
        vec!["r"]
    );
    assert_eq!(
        ids(
            &*s,
            f(CallsFilter {
                output_refs: Some(vec!["weave:///ent/proj/object/Out:1".into()]),
                ..Default::default()
            })
        )
        .await,
        vec!["a"]
    );
    assert!(ids(
        &*s,
        f(CallsFilter {
            trace_ids: Some(vec![]),
            ..Default::default()
        })
    )
    .await
    .is_empty());
}

pub async fn expr_operators(s: Arc<dyn TraceStore>) {
    seed(&*s).await;
    let q = |e: Value| query(e);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "error"}]}),
            vec!["b"],
        ),
        (
            json!({"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "running"}]}),
            vec!["c"],
        ),
        (
            json!({"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "descendant_error"}]}),
            vec!["r"],
        ),
        (
            json!({"$gt": [{"$getField": "inputs.n"}, {"$literal": 1}]}),
            vec!["a", "b"],
        ),
        (
            json!({"$gte": [{"$getField": "inputs.n"}, {"$literal": 2}]}),
            vec!["a", "b"],
        ),
        (
            json!({"$lt": [{"$getField": "inputs.n"}, {"$literal": 2}]}),
            vec!["r"],
        ),
        (
            json!({"$lte": [{"$getField": "inputs.n"}, {"$literal": 2}]}),
            vec!["r", "a"],
        ),
        (
            json!({"$in": [{"$getField": "id"}, [{"$literal": "a"}, {"$literal": "c"}]]}),
            vec!["a", "c"],
        ),
        (
            json!({"$contains": {"input": {"$getField": "inputs.text"}, "substr": {"$literal": "world"}, "case_insensitive": true}}),
            vec!["a"],
        ),
        (
            json!({"$contains": {"input": {"$getField": "inputs.text"}, "substr": {"$literal": "world"}}}),
            vec![],
        ),
        (
            json!({"$contains": {"input": {"$getField": "op_name"}, "substr": {"$literal": "/op/other:"}}}),
            vec!["c"],
        ),
        (
            json!({"$not": [{"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "success"}]}]}),
            vec!["r", "b", "c"],
        ),
        (
            json!({"$and": [{"$gt": [{"$getField": "inputs.n"}, {"$literal": 1}]}, {"$eq": [{"$getField": "exception"}, {"$literal": null}]}]}),
            vec!["a"],
        ),
        (
            json!({"$or": [{"$eq": [{"$getField": "id"}, {"$literal": "r"}]}, {"$eq": [{"$getField": "output.score"}, {"$literal": 0.5}]}]}),
            vec!["r", "a"],
        ),
        (
            json!({"$gt": [{"$convert": {"input": {"$getField": "output.score"}, "to": "double"}}, {"$literal": 0.25}]}),
            vec!["a"],
        ),
        (
            json!({"$eq": [{"$convert": {"input": {"$getField": "output.score"}, "to": "exists"}}, {"$literal": true}]}),
            vec!["a"],
        ),
        (
            json!({"$eq": [{"$convert": {"input": {"$getField": "inputs.n"}, "to": "string"}}, {"$literal": "3"}]}),
            vec!["b"],
        ),
        (
            json!({"$gte": [{"$getField": "summary.weave.latency_ms"}, {"$literal": 4000}]}),
            vec!["r", "b"],
        ),
        (
            json!({"$eq": [{"$getField": "summary.weave.trace_name"}, {"$literal": "other"}]}),
            vec!["c"],
        ),
        (
            json!({"$eq": [{"$getField": "summary.status_counts.error"}, {"$literal": 1}]}),
            vec!["r"],
        ),
        (
            json!({"$eq": [{"$getField": "attributes.weave.source"}, {"$literal": "test"}]}),
            vec!["r", "a", "b"],
        ),
        (
            json!({"$gte": [{"$getField": "started_at"}, {"$literal": t(4, 0)}]}),
            vec!["b", "c"],
        ),
    ];
    for (e, want) in cases {
        assert_eq!(ids(&*s, q(e.clone())).await, want, "{e}");
    }
    // Unknown fields and paths that are not allowed are request errors, not SQL errors.
    for bad in [
        json!({"$eq": [{"$getField": "nope"}, {"$literal": 1}]}),
        json!({"$eq": [{"$getField": "summary.weave.cost"}, {"$literal": 1}]}),
        json!({"$eq": [{"$getField": "inputs.a\"); DROP TABLE calls; --"}, {"$literal": 1}]}),
        json!({"$eq": [{"$getField": "inputs..x"}, {"$literal": 1}]}),
    ] {
        match s.calls_query(q(bad.clone())).await {
            Err(StoreError::InvalidRequest { field, .. }) => assert_eq!(field, "query"),
            Err(other) => panic!("{bad}: {other}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
    assert_eq!(
        s.calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            query: Some(
                serde_json::from_value(
                    json!({"$expr": {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "success"}]}})
                )
                .unwrap()
            ),
            ..Default::default()
        })
        .await
        .unwrap()
        .count,
        1
    );
}

pub async fn sort_paging_and_projection(s: Arc<dyn TraceStore>) {
    seed(&*s).await;
    let sorted = |sort: Vec<SortBy>, limit: Option<u64>, offset: Option<u64>| CallsQueryReq {
        project_id: P.into(),
        sort_by: Some(sort),
        limit,
        offset,
        ..Default::default()
    };
    assert_eq!(
        ids(&*s, sorted(vec![SortBy::desc("started_at")], None, None)).await,
        vec!["c", "b", "a", "r"]
    );
    assert_eq!(
        ids(
            &*s,
            sorted(vec![SortBy::desc("started_at")], Some(2), Some(1))
        )
        .await,
        vec!["b", "a"]
    );
    assert_eq!(
        ids(&*s, sorted(vec![SortBy::asc("started_at")], None, Some(3))).await,
        vec!["c"]
    );
    // A JSON path, nulls first ascending; the id tie-breaker orders equal keys.
    assert_eq!(
        ids(&*s, sorted(vec![SortBy::desc("inputs.n")], None, None)).await,
        vec!["b", "a", "r", "c"]
    );
    assert_eq!(
        ids(&*s, sorted(vec![SortBy::asc("op_name")], None, None)).await,
        vec!["c", "r", "a", "b"]
    );
    assert_eq!(
        ids(
            &*s,
            sorted(vec![SortBy::desc("summary.weave.latency_ms")], None, None)
        )
        .await,
        vec!["r", "b", "a", "c"]
    );
    // Equal keys: the id breaks the tie, in the direction of the last key, so that a
    // descending list is the ascending one reversed.
    let tie = CallsCompleteReq {
        batch: vec![
            complete("t2", None, "f", 30, 31),
            complete("t1", None, "f", 30, 31),
        ],
    };
    s.calls_complete(tie).await.unwrap();
    let asc = ids(&*s, sorted(vec![SortBy::asc("started_at")], None, None)).await;
    let mut desc = ids(&*s, sorted(vec![SortBy::desc("started_at")], None, None)).await;
    assert_eq!(&asc[asc.len() - 2..], ["t1", "t2"]);
    desc.reverse();
    assert_eq!(asc, desc);
    match s
        .calls_query(sorted(vec![SortBy::asc("bogus")], None, None))
        .await
    {
        Err(StoreError::InvalidRequest { field, .. }) => assert_eq!(field, "sort_by[0].field"),
        _ => panic!("bogus sort field accepted"),
    }

    let projected = s
        .calls_query_vec(CallsQueryReq {
            project_id: P.into(),
            columns: Some(vec!["id".into(), "output".into()]),
            filter: Some(CallsFilter {
                call_ids: Some(vec!["a".into()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let a = &projected[0];
    assert!(a.inputs.is_empty() && a.attributes.is_empty());
    assert_eq!(a.output.as_ref().unwrap()["score"], json!(0.5));
    assert_eq!(a.op_display_name(), "step");
    assert_eq!(a.summary["weave"]["status"], json!("success"));

    let read = s
        .call_read(CallReadReq {
            project_id: P.into(),
            id: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .call
        .unwrap();
    assert_eq!(read.exception_info().unwrap().message, "boom");
    assert!(s
        .call_read(CallReadReq {
            project_id: P.into(),
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .call
        .is_none());
}

pub async fn update_delete_and_isolation(s: Arc<dyn TraceStore>) {
    seed(&*s).await;
    s.call_update(CallUpdateReq {
        project_id: P.into(),
        call_id: "a".into(),
        display_name: Some("renamed".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let a = s
        .call_read(CallReadReq {
            project_id: P.into(),
            id: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .call
        .unwrap();
    assert_eq!(a.display_name.as_deref(), Some("renamed"));
    assert_eq!(a.summary["weave"]["display_name"], json!("renamed"));
    // A retried start does not undo the rename.
    s.calls_complete(CallsCompleteReq {
        batch: vec![complete("a", Some("r"), "step", 2, 3)],
    })
    .await
    .unwrap();
    let a = s
        .call_read(CallReadReq {
            project_id: P.into(),
            id: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .call
        .unwrap();
    assert_eq!(a.display_name.as_deref(), Some("renamed"));

    // Another project with the same call id is another call.
    let mut other = complete("a", None, "step", 1, 2);
    other.project_id = "ent/other".into();
    s.calls_complete(CallsCompleteReq { batch: vec![other] })
        .await
        .unwrap();
    let theirs = CallsQueryReq {
        project_id: "ent/other".into(),
        ..Default::default()
    };
    let got = s.calls_query_vec(theirs.clone()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].display_name, None);
    assert_eq!(s.projects().await.unwrap(), vec!["ent/other", "ent/proj"]);

    // Deleting the root deletes its descendants, only in its project.
    let d = s
        .calls_delete(CallsDeleteReq {
            project_id: P.into(),
            call_ids: vec!["r".into()],
            wb_user_id: None,
        })
        .await
        .unwrap();
    assert_eq!(d.num_deleted, 4);
    let mine = CallsQueryReq {
        project_id: P.into(),
        ..Default::default()
    };
    assert!(s.calls_query_vec(mine).await.unwrap().is_empty());
    assert_eq!(s.calls_query_vec(theirs).await.unwrap().len(), 1);
}

pub async fn id_prefix_and_neighbors(s: Arc<dyn TraceStore>) {
    let mut batch = Vec::new();
    for id in ["0aa1", "0aa2", "0ab0", "1000"] {
        batch.push(complete(id, None, "f", 1, 2));
    }
    s.calls_complete(CallsCompleteReq { batch }).await.unwrap();
    let mut other = complete("0aa3", None, "f", 1, 2);
    other.project_id = "e/o".into();
    s.calls_complete(CallsCompleteReq { batch: vec![other] })
        .await
        .unwrap();
    let by = |project: Option<&str>, prefix: &str| CallIdPrefixReq {
        project_id: project.map(str::to_string),
        prefix: prefix.into(),
        limit: 10,
    };
    let got: Vec<String> = s
        .call_ids_by_prefix(by(None, "0AA"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| format!("{}:{}", k.project_id, k.id))
        .collect();
    assert_eq!(got, vec!["ent/proj:0aa1", "ent/proj:0aa2", "e/o:0aa3"]);
    assert_eq!(
        s.call_ids_by_prefix(by(Some(P), "0aa"))
            .await
            .unwrap()
            .len(),
        2
    );
    let n = s.call_id_neighbors(None, "0aa2".into()).await.unwrap();
    assert_eq!(
        (n.before.as_deref(), n.after.as_deref()),
        (Some("0aa1"), Some("0aa3"))
    );
    let n = s
        .call_id_neighbors(Some(P.into()), "0aa2".into())
        .await
        .unwrap();
    assert_eq!(n.after.as_deref(), Some("0ab0"));
}

fn obj(name: &str, val: Value) -> ObjCreateReq {
    ObjCreateReq {
        obj: ObjSchemaForInsert {
            project_id: P.into(),
            object_id: name.into(),
            val,
            ..Default::default()
        },
    }
}

fn read(name: &str, digest: &str) -> ObjReadReq {
    ObjReadReq {
        project_id: P.into(),
        object_id: name.into(),
        digest: digest.into(),
        ..Default::default()
    }
}

pub async fn object_versions(s: Arc<dyn TraceStore>) {
    let model = |t: f64| json!({"_type": "M", "_class_name": "M", "_bases": ["Model", "Object", "BaseModel"], "temperature": t});
    let v0 = s.obj_create(obj("m", model(0.0))).await.unwrap().digest;
    let v1 = s.obj_create(obj("m", model(0.5))).await.unwrap().digest;
    assert_ne!(v0, v1);
    assert_eq!(v0, weave_store::types::digest::object_digest(&model(0.0)));
    let latest = s.obj_read(read("m", "latest")).await.unwrap().obj;
    assert_eq!(
        (
            latest.digest.as_str(),
            latest.version_index,
            latest.is_latest
        ),
        (v1.as_str(), 1, 1)
    );
    assert_eq!(latest.base_object_class.as_deref(), Some("Model"));
    assert_eq!(latest.leaf_object_class.as_deref(), Some("M"));
    assert_eq!(latest.kind, "object");
    assert_eq!(s.obj_read(read("m", "v0")).await.unwrap().obj.digest, v0);
    assert_eq!(
        s.obj_read(read("m", &v1)).await.unwrap().obj.val,
        model(0.5)
    );
    // Re-creating an existing version makes no new one; it becomes the latest.
    assert_eq!(s.obj_create(obj("m", model(0.0))).await.unwrap().digest, v0);
    let all = s
        .objs_query(ObjQueryReq {
            project_id: P.into(),
            filter: Some(ObjectVersionFilter {
                object_ids: Some(vec!["m".into()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .objs;
    assert_eq!(all.len(), 2);
    assert_eq!(
        s.obj_read(read("m", "latest")).await.unwrap().obj.digest,
        v0
    );
    match s.obj_read(read("nope", "latest")).await {
        Err(e @ StoreError::NotFound { .. }) => {
            assert_eq!(e.to_string(), "Obj nope:latest not found");
            assert_eq!(e.http_status(), 404);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.obj_read(read("m", "v7")).await,
        Err(StoreError::NotFound { .. })
    ));

    let op = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {"obj.rs": "abc"}});
    let mut with_meta = obj("f", op.clone());
    with_meta.obj.metadata = Some(json!({"file": "a.rs", "line": 1}));
    let d1 = s.obj_create(with_meta.clone()).await.unwrap().digest;
    // Metadata is not hashed, and a re-created version takes the new metadata.
    with_meta.obj.metadata = Some(json!({"file": "a.rs", "line": 7}));
    assert_eq!(s.obj_create(with_meta).await.unwrap().digest, d1);
    assert_eq!(d1, weave_store::types::digest::object_digest(&op));
    let f = s.obj_read(read("f", "latest")).await.unwrap().obj;
    assert_eq!(f.metadata, Some(json!({"file": "a.rs", "line": 7})));
    assert_eq!(
        (f.version_index, f.kind.as_str(), f.base_object_class),
        (0, "op", None)
    );
    let ds = json!({"_type": "Dataset", "_class_name": "Dataset", "_bases": ["Object", "BaseModel"], "rows": "weave:///ent/proj/table/00"});
    s.obj_create(obj("ds", ds)).await.unwrap();
    let q = |filter: ObjectVersionFilter| ObjQueryReq {
        project_id: P.into(),
        filter: Some(filter),
        sort_by: Some(vec![SortBy::asc("object_id")]),
        ..Default::default()
    };
    let names = |objs: Vec<ObjSchema>| objs.into_iter().map(|o| o.object_id).collect::<Vec<_>>();
    assert_eq!(
        names(
            s.objs_query(q(ObjectVersionFilter {
                is_op: Some(true),
                ..Default::default()
            }))
            .await
            .unwrap()
            .objs
        ),
        vec!["f"]
    );
    assert_eq!(
        names(
            s.objs_query(q(ObjectVersionFilter {
                is_op: Some(false),
                latest_only: Some(true),
                ..Default::default()
            }))
            .await
            .unwrap()
            .objs
        ),
        vec!["ds", "m"]
    );
    assert_eq!(
        names(
            s.objs_query(q(ObjectVersionFilter {
                base_object_classes: Some(vec!["Dataset".into()]),
                ..Default::default()
            }))
            .await
            .unwrap()
            .objs
        ),
        vec!["ds"]
    );
    assert_eq!(
        names(
            s.objs_query(q(ObjectVersionFilter {
                exclude_base_object_classes: Some(vec!["Model".into()]),
                ..Default::default()
            }))
            .await
            .unwrap()
            .objs
        ),
        vec!["ds", "f"]
    );
    let meta = s
        .objs_query(ObjQueryReq {
            project_id: P.into(),
            metadata_only: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .objs;
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].val, Value::Null);

    // Digests are checked, names validated, projects isolated.
    let mut wrong = obj("m", model(0.9));
    wrong.obj.expected_digest = Some("not-it".into());
    match s.obj_create(wrong).await {
        Err(e @ StoreError::DigestMismatch { .. }) => assert_eq!(e.http_status(), 409),
        other => panic!("{other:?}"),
    }
    match s.obj_create(obj("bad name!", model(1.0))).await {
        Err(StoreError::InvalidRequest { field, .. }) => assert_eq!(field, "obj.object_id"),
        other => panic!("{other:?}"),
    }
    let mut elsewhere = read("m", "latest");
    elsewhere.project_id = "ent/other".into();
    assert!(matches!(
        s.obj_read(elsewhere).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn tables_files_refs_and_feedback(s: Arc<dyn TraceStore>) {
    let rows = vec![json!({"q": "a"}), json!({"q": "b"}), json!({"q": "a"})];
    let t = s
        .table_create(TableCreateReq {
            table: TableSchemaForInsert {
                project_id: P.into(),
                rows: rows.clone(),
                expected_digest: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(t.row_digests.len(), 3);
    assert_eq!(t.row_digests[0], t.row_digests[2]);
    let q = |filter: Option<Vec<String>>, limit: Option<u64>, offset: Option<u64>| TableQueryReq {
        project_id: P.into(),
        digest: t.digest.clone(),
        filter: Some(TableRowFilter {
            row_digests: filter,
        }),
        limit,
        offset,
        sort_by: None,
    };
    let all = s.table_query(q(None, None, None)).await.unwrap().rows;
    assert_eq!(all.iter().map(|r| r.val.clone()).collect::<Vec<_>>(), rows);
    assert_eq!(all[2].original_index, Some(2));
    let some = s
        .table_query(q(Some(vec![t.row_digests[0].clone()]), None, None))
        .await
        .unwrap()
        .rows;
    assert_eq!(
        some.iter().map(|r| r.original_index).collect::<Vec<_>>(),
        vec![Some(0), Some(2)]
    );
    let page = s.table_query(q(None, Some(1), Some(1))).await.unwrap().rows;
    assert_eq!(page[0].val, json!({"q": "b"}));
    assert_eq!(
        s.table_query_stats(TableQueryStatsReq {
            project_id: P.into(),
            digest: t.digest.clone()
        })
        .await
        .unwrap()
        .count,
        3
    );
    match s
        .table_create(TableCreateReq {
            table: TableSchemaForInsert {
                project_id: P.into(),
                rows: vec![json!({"ok": 1}), json!([1, 2])],
                expected_digest: None,
            },
        })
        .await
    {
        Err(StoreError::InvalidRequest { field, .. }) => assert_eq!(field, "table.rows[1]"),
        other => panic!("{other:?}"),
    }
    let mut other = q(None, None, None);
    other.project_id = "ent/other".into();
    assert!(matches!(
        s.table_query(other).await,
        Err(StoreError::NotFound { .. })
    ));

    // Files: the client's digest must be the store's.
    let code = b"fn f() {}\n".to_vec();
    let digest = weave_store::types::digest::digest_bytes(&code);
    let f = s
        .file_create(FileCreateReq {
            project_id: P.into(),
            name: "obj.rs".into(),
            content: code.clone(),
            expected_digest: Some(digest.clone()),
        })
        .await
        .unwrap();
    assert_eq!(f.digest, digest);
    let back = s
        .file_content_read(FileContentReadReq {
            project_id: P.into(),
            digest: digest.clone(),
        })
        .await
        .unwrap();
    assert_eq!(back.content, code);
    match s
        .file_create(FileCreateReq {
            project_id: P.into(),
            name: "obj.rs".into(),
            content: b"other".to_vec(),
            expected_digest: Some(digest.clone()),
        })
        .await
    {
        Err(StoreError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, digest);
            assert_ne!(actual, digest);
        }
        other => panic!("{other:?}"),
    }

    // Refs: attr, key, index, and a table row by id through a ref met on the way.
    let ds = s
        .obj_create(obj(
            "ds",
            json!({"_type": "Dataset", "rows": format!("weave:///{P}/table/{}", t.digest), "meta": {"tags": ["x", "y"]}}),
        ))
        .await
        .unwrap()
        .digest;
    let base = format!("weave:///{P}/object/ds:{ds}");
    let vals = s
        .refs_read_batch(RefsReadBatchReq {
            refs: vec![
                format!("{base}/attr/meta/key/tags/index/1"),
                format!("{base}/attr/rows/id/{}/key/q", t.row_digests[1]),
                format!("{base}/attr/rows/id/{}", t.row_digests[0]),
                base.clone(),
            ],
        })
        .await
        .unwrap()
        .vals;
    assert_eq!(vals[0], json!("y"));
    assert_eq!(vals[1], json!("b"));
    assert_eq!(vals[2], json!({"q": "a"}));
    assert_eq!(vals[3]["_type"], json!("Dataset"));
    for (bad, status) in [
        (format!("weave:///{P}/table/{}", t.digest), 400),
        (format!("{base}/attr/nope"), 404),
        ("not a ref".to_string(), 400),
    ] {
        let e = s
            .refs_read_batch(RefsReadBatchReq {
                refs: vec![bad.clone()],
            })
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), status, "{bad}: {e}");
    }
    // A ref that leads back to itself through `latest` (a request body can store one): a
    // clear 400, not endless recursion.
    s.obj_create(obj(
        "loop",
        json!({"next": format!("weave:///{P}/object/loop:latest/key/next/key/next")}),
    ))
    .await
    .unwrap();
    let e = s
        .refs_read_batch(RefsReadBatchReq {
            refs: vec![format!("weave:///{P}/object/loop:latest/key/next/key/next")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 400, "{e}");
    assert!(e.to_string().contains("nest more than"), "{e}");

    // Feedback keeps the client's id, is queryable, and shows on calls when asked.
    s.calls_complete(CallsCompleteReq {
        batch: vec![complete("c", None, "f", 1, 2)],
    })
    .await
    .unwrap();
    let fb = |id: &str, kind: &str, ok: bool| FeedbackCreateReq {
        id: Some(id.into()),
        project_id: P.into(),
        weave_ref: format!("weave:///{P}/call/c"),
        feedback_type: kind.into(),
        payload: json!({"output": {"correct": ok}})
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let res = s
        .feedback_create_batch(FeedbackCreateBatchReq {
            batch: vec![
                fb("f1", "wandb.runnable.exact", true),
                fb("f2", "wandb.note.1", false),
            ],
        })
        .await
        .unwrap()
        .res;
    assert_eq!(
        res.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["f1", "f2"]
    );
    // Retried: nothing new.
    s.feedback_create(fb("f1", "wandb.runnable.exact", true))
        .await
        .unwrap();
    let found = s
        .feedback_query(FeedbackQueryReq {
            project_id: P.into(),
            fields: Some(vec!["id".into(), "payload".into()]),
            query: Some(Query {
                expr: Expr::eq(Expr::field("payload.output.correct"), Expr::literal(true)),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .result;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], json!("f1"));
    assert_eq!(found[0]["payload"]["output"]["correct"], json!(true));
    let with = s
        .calls_query_vec(CallsQueryReq {
            project_id: P.into(),
            include_feedback: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        with[0].summary["weave"]["feedback"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let e = s
        .feedback_create(FeedbackCreateReq {
            weave_ref: "nope".into(),
            ..fb("f3", "x", true)
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("weave_ref"), "{e}");
}

pub async fn a_large_query_streams_and_can_be_dropped_early(s: Arc<dyn TraceStore>) {
    use futures::StreamExt as _;
    let batch: Vec<_> = (0..2000)
        .map(|i| complete(&format!("c{i:05}"), None, "f", 1, 2))
        .collect();
    s.calls_complete(CallsCompleteReq { batch }).await.unwrap();
    let mut stream = s
        .calls_query(CallsQueryReq {
            project_id: P.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first: Vec<_> = (&mut stream).take(3).collect().await;
    assert_eq!(first.len(), 3);
    drop(stream);
    // The store still answers (the producer stopped and gave its connection back).
    assert_eq!(
        s.calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .count,
        2000
    );
}

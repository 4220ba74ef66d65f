//! `SqliteStore`: the conformance suite (`conformance/mod.rs`) on temporary files, and what
//! only the embedded store does (running without an async runtime).

mod common;
#[macro_use]
mod conformance;

use serde_json::json;
use weave_store::types::*;
use weave_store::{SqliteStore, TraceStore};

conformance_tests!(common::sqlite);

const P: &str = "ent/proj";

fn complete(id: &str) -> CompleteCallSchemaForInsert {
    CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        trace_id: "trace-1".into(),
        op_name: "f".into(),
        started_at: "2026-01-01T00:00:01.000000Z".into(),
        ended_at: "2026-01-01T00:00:02.000000Z".into(),
        output: json!(1),
        ..Default::default()
    }
}

#[test]
fn works_without_a_runtime() {
    // The CLI and tests may drive the store with a plain executor.
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::create(dir.path().join("t.db")).unwrap();
    futures::executor::block_on(async {
        s.calls_complete(CallsCompleteReq {
            batch: vec![complete("a")],
        })
        .await
        .unwrap();
        let got = s
            .calls_query_vec(CallsQueryReq {
                project_id: P.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_on_the_store_inside_a_tokio_task_terminates() {
    // A caller that blocks on the store's futures from inside a tokio task (a sync helper
    // called from async code) must not spin on tokio's cooperative budget.
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::create(dir.path().join("t.db")).unwrap();
    let batch: Vec<_> = (0..1000).map(|i| complete(&format!("c{i:05}"))).collect();
    s.calls_complete(CallsCompleteReq { batch }).await.unwrap();
    for _ in 0..3 {
        let got = futures::executor::block_on(s.calls_query_vec(CallsQueryReq {
            project_id: P.into(),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(got.len(), 1000);
        let n = futures::executor::block_on(s.calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(n.count, 1000);
    }
}

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

//! Differential property test: random sequences of writes (complete calls, starts and ends
//! in any order, repeated starts, renames, attribute updates, deletes) applied to an
//! `SqliteStore` and a `ClickHouseStore`, then random queries (filters, `$expr` trees over
//! columns, JSON paths and derived fields, `$convert`, sorts, paging, projections): both
//! stores must answer the same calls, in the same order, with the same content.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use weave_store::types::query::{CastTo, Contains, Convert, Expr, Query, SortBy};
use weave_store::types::*;
use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};

const IDS: [&str; 5] = ["a", "b", "c", "d", "e"];
const OPS: [&str; 5] = [
    "weave:///ent/proj/op/step:d1",
    "weave:///ent/proj/op/other:d2",
    "WEAVE:///ent/proj/OP/Step:d3",
    "plain_op",
    "weave:///ent/proj/op/st_p:x",
];

fn t(sec: u32, micros: u32) -> String {
    format!("2026-01-01T00:00:{sec:02}.{micros:06}Z")
}

fn time() -> impl Strategy<Value = String> {
    (
        0u32..8,
        prop::sample::select(vec![0u32, 500, 123_456, 999_999]),
    )
        .prop_map(|(s, m)| t(s, m))
}

/// JSON leaves from one small pool, so that values, literals and texts often meet: numbers
/// next to their text, booleans next to 0/1, times next to dates.
fn leaf() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(3),
        json!(7),
        json!(-2),
        json!(0.5),
        json!(1.0),
        json!(1e20),
        json!(0.1),
        json!("0"),
        json!("1"),
        json!("3"),
        json!("7"),
        json!("0.5"),
        json!("1.0"),
        json!("false"),
        json!(""),
        json!("abc"),
        json!("Hello World"),
        json!("hello"),
        json!("x'y"),
        json!(" 3 "),
    ])
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::btree_map(
                prop::sample::select(vec!["x", "n", "k"]),
                inner.clone(),
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            prop::collection::vec(inner, 0..3).prop_map(Value::Array),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "n", "text", "k"]),
        json_value(),
        0..4,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn summary() -> impl Strategy<Value = Map<String, Value>> {
    prop::sample::select(vec![
        json!({}),
        json!({"status_counts": {"success": 1, "error": 0}}),
        json!({"status_counts": {"success": 1, "error": 2}}),
        json!({"status_counts": {"error": "0"}}),
        json!({"status_counts": {"error": null}, "usage": {"m": {"requests": 1}}}),
    ])
    .prop_map(|v| v.as_object().cloned().unwrap_or_default())
}

#[derive(Debug, Clone)]
enum Op {
    Complete(CompleteCallSchemaForInsert),
    Start(StartedCallSchemaForInsert),
    End(EndedCallSchemaForInsert),
    Update(CallUpdateReq),
    Delete(Vec<String>),
}

fn id() -> impl Strategy<Value = String> {
    prop::sample::select(IDS.to_vec()).prop_map(str::to_string)
}

fn op() -> impl Strategy<Value = Op> {
    let start = (
        id(),
        prop::sample::select(OPS.to_vec()),
        prop::option::of(prop::sample::select(vec![
            "shown", "Other", "7", "3", "hello",
        ])),
        prop::option::of(id()),
        time(),
        object(),
        object(),
        prop::option::of(-2i64..3),
        prop::sample::select(vec!["t1", "t2"]),
    )
        .prop_map(|(id, op, dn, parent, at, inputs, attrs, step, trace)| {
            StartedCallSchemaForInsert {
                project_id: String::new(),
                id: Some(id),
                op_name: op.to_string(),
                display_name: dn.map(str::to_string),
                trace_id: Some(trace.to_string()),
                parent_id: parent,
                started_at: at,
                attributes: attrs.into(),
                inputs,
                wb_run_step: step,
                ..Default::default()
            }
        })
        .boxed();
    let end = (
        id(),
        time(),
        json_value(),
        prop::option::of(Just(r#"{"type": "E", "message": "boom"}"#.to_string())),
        summary(),
    )
        .prop_map(
            |(id, at, output, exception, summary)| EndedCallSchemaForInsert {
                project_id: String::new(),
                id,
                ended_at: at,
                exception,
                output,
                summary: summary.into(),
                ..Default::default()
            },
        )
        .boxed();
    prop_oneof![
        3 => (start.clone(), end.clone()).prop_map(|(s, e)| {
            let c = CompleteCallSchemaForInsert {
                project_id: String::new(),
                id: s.id.clone().unwrap_or_default(),
                trace_id: s.trace_id.clone().unwrap_or_default(),
                op_name: s.op_name,
                started_at: s.started_at,
                ended_at: e.ended_at,
                display_name: s.display_name,
                parent_id: s.parent_id,
                attributes: s.attributes,
                inputs: s.inputs,
                output: e.output,
                summary: e.summary,
                exception: e.exception,
                wb_run_step: s.wb_run_step,
                ..Default::default()
            };
            Op::Complete(c)
        }),
        2 => start.prop_map(Op::Start),
        2 => end.prop_map(Op::End),
        1 => (id(), prop::option::of(prop::sample::select(vec!["renamed", "zz"])), prop::option::of(object()))
            .prop_map(|(id, dn, attrs)| Op::Update(CallUpdateReq {
                project_id: String::new(),
                call_id: id,
                display_name: dn.map(str::to_string),
                attributes: attrs,
                ..Default::default()
            })),
        1 => prop::collection::vec(id(), 1..2).prop_map(Op::Delete),
    ]
}

const FIELDS: [&str; 20] = [
    "id",
    "op_name",
    "display_name",
    "parent_id",
    "trace_id",
    "started_at",
    "ended_at",
    "exception",
    "wb_run_step",
    "inputs.a",
    "inputs.n",
    "inputs.text",
    "inputs.k.x",
    "output",
    "output.x",
    "attributes.k",
    "summary.weave.status",
    "summary.weave.latency_ms",
    "summary.weave.trace_name",
    "summary.status_counts.error",
];

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string)
}

fn literal() -> impl Strategy<Value = Expr> {
    prop_oneof![
        4 => leaf(),
        1 => prop::sample::select(IDS.to_vec()).prop_map(Value::from),
        1 => prop::sample::select(vec!["success", "error", "running", "descendant_error", "step", "other"]).prop_map(Value::from),
        1 => time().prop_map(Value::from),
        1 => Just(Value::from("2026-01-01")),
    ]
    .prop_map(Expr::Literal)
}

fn operand() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => field().prop_map(Expr::GetField),
        2 => literal(),
        1 => (field(), prop::sample::select(vec![CastTo::Double, CastTo::Int, CastTo::String, CastTo::Bool, CastTo::Exists]))
            .prop_map(|(f, to)| Expr::Convert(Box::new(Convert { input: Expr::GetField(f), to }))),
    ]
}

fn comparison() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => (field().prop_map(Expr::GetField), literal()).prop_map(|(a, b)| Expr::eq(a, b)),
        1 => (operand(), operand()).prop_map(|(a, b)| Expr::eq(a, b)),
        1 => (operand(), operand()).prop_map(|(a, b)| Expr::Gt(Box::new((a, b)))),
        1 => (operand(), operand()).prop_map(|(a, b)| Expr::Gte(Box::new((a, b)))),
        1 => (operand(), operand()).prop_map(|(a, b)| Expr::Lt(Box::new((a, b)))),
        1 => (operand(), operand()).prop_map(|(a, b)| Expr::Lte(Box::new((a, b)))),
        1 => (operand(), prop::collection::vec(literal(), 0..3)).prop_map(|(a, l)| Expr::In(Box::new((a, l)))),
        1 => (operand(), operand(), any::<bool>()).prop_map(|(input, substr, ci)| Expr::Contains(Box::new(Contains { input, substr, case_insensitive: ci }))),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    comparison().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::Or),
            inner.prop_map(Expr::negate),
        ]
    })
}

fn ids_list() -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(prop::collection::vec(id(), 0..3))
}

fn calls_filter() -> impl Strategy<Value = Option<CallsFilter>> {
    prop::option::of(
        (
            prop::option::of(prop::collection::vec(
                prop::sample::select(vec![
                    "weave:///ent/proj/op/step:*",
                    "weave:///ent/proj/op/other:d2",
                    "weave:///ent/proj/op/st_p:*",
                    "plain_op",
                ])
                .prop_map(str::to_string),
                0..3,
            )),
            ids_list(),
            ids_list(),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["t1", "t2"]).prop_map(str::to_string),
                1..2,
            )),
        )
            .prop_map(|(ops, parents, calls, roots, traces)| CallsFilter {
                op_names: ops,
                parent_ids: parents,
                call_ids: calls,
                trace_roots_only: roots,
                trace_ids: traces,
                ..Default::default()
            }),
    )
}

fn sort() -> impl Strategy<Value = Option<Vec<SortBy>>> {
    prop::option::of(prop::collection::vec(
        (field(), any::<bool>())
            .prop_map(|(f, d)| if d { SortBy::desc(f) } else { SortBy::asc(f) }),
        1..3,
    ))
}

fn query() -> impl Strategy<Value = CallsQueryReq> {
    (
        calls_filter(),
        prop::option::of(expr()),
        sort(),
        prop::option::of(0u64..4),
        prop::option::of(0u64..3),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["id", "inputs", "output", "attributes", "summary"])
                .prop_map(str::to_string),
            0..3,
        )),
    )
        .prop_map(
            |(filter, q, sort_by, limit, offset, columns)| CallsQueryReq {
                project_id: String::new(),
                filter,
                query: q.map(|expr| Query { expr }),
                sort_by,
                limit,
                offset,
                columns,
                ..Default::default()
            },
        )
}

async fn apply(s: &dyn TraceStore, project: &str, ops: &[Op]) {
    for op in ops {
        match op.clone() {
            Op::Complete(mut c) => {
                c.project_id = project.into();
                s.calls_complete(CallsCompleteReq { batch: vec![c] })
                    .await
                    .unwrap();
            }
            Op::Start(mut st) => {
                st.project_id = project.into();
                s.call_start(CallStartReq { start: st }).await.unwrap();
            }
            Op::End(mut e) => {
                e.project_id = project.into();
                s.call_end(CallEndReq { end: e }).await.unwrap();
            }
            Op::Update(mut u) => {
                u.project_id = project.into();
                s.call_update(u).await.unwrap();
            }
            Op::Delete(ids) => {
                s.calls_delete(CallsDeleteReq {
                    project_id: project.into(),
                    call_ids: ids,
                    wb_user_id: None,
                })
                .await
                .unwrap();
            }
        }
    }
}

/// A call as compared: everything, but `deleted_at` only as present/absent (its value is
/// the store's clock).
fn view(c: &CallSchema) -> Value {
    let mut v = serde_json::to_value(c).unwrap();
    v["deleted_at"] = json!(c.deleted_at.is_some());
    v
}

async fn answer(s: &dyn TraceStore, req: CallsQueryReq) -> Result<Vec<Value>, String> {
    match s.calls_query_vec(req).await {
        Ok(calls) => Ok(calls.iter().map(view).collect()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn random_writes_and_queries_answer_like_sqlite() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = ClickHouseServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sq, ch): (Arc<dyn TraceStore>, Arc<dyn TraceStore>) = rt.block_on(async {
        (
            Arc::new(SqliteStore::create(dir.path().join("t.db")).unwrap()) as _,
            Arc::new(
                ClickHouseStore::open(&server.store_url("diff"))
                    .await
                    .unwrap(),
            ) as _,
        )
    });
    let cases: u32 = std::env::var("WEAVE_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = AtomicUsize::new(0);
    let strategy = (
        prop::collection::vec(op(), 1..14),
        prop::collection::vec(query(), 1..10),
    );
    let result = runner.run(&strategy, |(ops, queries)| {
        let project = format!("ent/p{}", n.fetch_add(1, Ordering::Relaxed));
        rt.block_on(async {
            apply(&*sq, &project, &ops).await;
            apply(&*ch, &project, &ops).await;
            // Everything, in the default order.
            let all = CallsQueryReq {
                project_id: project.clone(),
                ..Default::default()
            };
            let (a, b) = (answer(&*sq, all.clone()).await, answer(&*ch, all).await);
            prop_assert_eq!(&a, &b, "all calls");
            for mut q in queries {
                q.project_id = project.clone();
                let (a, b) = (answer(&*sq, q.clone()).await, answer(&*ch, q.clone()).await);
                prop_assert_eq!(&a, &b, "query {}", serde_json::to_string(&q).unwrap());
                let stats = CallsQueryStatsReq {
                    project_id: project.clone(),
                    filter: q.filter.clone(),
                    query: q.query.clone(),
                    limit: q.limit,
                    ..Default::default()
                };
                let (a, b) = (
                    sq.calls_query_stats(stats.clone())
                        .await
                        .map(|r| r.count)
                        .map_err(|e| e.to_string()),
                    ch.calls_query_stats(stats)
                        .await
                        .map(|r| r.count)
                        .map_err(|e| e.to_string()),
                );
                prop_assert_eq!(a, b, "count of {}", serde_json::to_string(&q).unwrap());
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

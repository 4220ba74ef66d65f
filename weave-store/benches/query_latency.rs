//! Query latency at scale, ClickHouse next to SQLite on the same data, through `TraceStore`
//! (what a trace server runs per request).
//!
//! `cargo bench -p weave-store --bench query_latency` loads the same calls into an
//! `SqliteStore` (temp file) and a `ClickHouseStore` (a throwaway `clickhouse-server`), then
//! times, median of 5 after a warm-up:
//! - traces page: a project's 50 latest roots, and their count;
//! - a 10k-call trace: every call of one trace, oldest first;
//! - evaluation compare: the rows (predict_and_score calls) of two evaluations;
//! - an op's calls: the 100 latest calls of one op.
//!
//! Data: `WEAVE_BENCH_CALLS` calls (default 1,000,000): one 10,000-call trace, two
//! evaluations of 1,000 rows (predict, then a scorer, under each row), and traces of 10 calls
//! (a root and 9 children over 20 ops) for the rest. UUIDv7 ids in time order, as clients
//! make them. Prints the load average before and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weave_store::types::*;
use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};

const P: &str = "bench/traces";
const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Ids and times: one microsecond apart, UUIDv7 with the call's start time.
struct Gen {
    n: i64,
}

impl Gen {
    fn next(&mut self) -> (String, i64) {
        self.n += 1;
        let micros = T0 + self.n * 1000;
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            (micros / 1_000_000) as u64,
            ((micros % 1_000_000) * 1000) as u32,
        );
        let mut id = uuid::Uuid::new_v7(ts).to_string();
        // Unique even within one millisecond: the counter in the last 12 hex digits.
        id.replace_range(24.., &format!("{:012x}", self.n));
        (id, micros)
    }
}

#[allow(clippy::too_many_arguments)]
fn call(
    id: &str,
    trace: &str,
    parent: Option<&str>,
    op: &str,
    at: i64,
    inputs: serde_json::Value,
    output: serde_json::Value,
) -> CompleteCallSchemaForInsert {
    CompleteCallSchemaForInsert {
        project_id: P.into(),
        id: id.into(),
        trace_id: trace.into(),
        op_name: format!("weave:///{P}/op/{op}:d{}", op.len()),
        started_at: weave_types::time::format_micros(at),
        ended_at: weave_types::time::format_micros(at + 800),
        parent_id: parent.map(str::to_string),
        attributes: json!({"weave": {"client_version": "0.54.0", "source": "python-sdk"}})
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into(),
        inputs: inputs.as_object().cloned().unwrap_or_default(),
        output,
        summary: json!({"status_counts": {"success": 1, "error": 0},
                        "usage": {"gpt-4o": {"requests": 1, "prompt_tokens": 120}}})
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into(),
        ..Default::default()
    }
}

struct Data {
    batches: Vec<Vec<CompleteCallSchemaForInsert>>,
    big_trace: String,
    evals: [String; 2],
    op: String,
    total: usize,
}

fn generate(total: usize) -> Data {
    let mut g = Gen { n: 0 };
    let mut calls = Vec::with_capacity(total);
    // Evaluations: root, rows (predict_and_score), each with predict and a scorer.
    let mut evals = Vec::new();
    for e in 0..2 {
        let (root, at) = g.next();
        calls.push(call(
            &root,
            &root,
            None,
            "Evaluation.evaluate",
            at,
            json!({"self": "weave:///bench/traces/object/eval:abc"}),
            json!({"score": {"mean": 0.5}}),
        ));
        for r in 0..1000 {
            let (row, at) = g.next();
            let ex = format!("weave:///{P}/object/ds:xyz/attr/rows/id/{r:064x}");
            calls.push(call(
                &row,
                &root,
                Some(&root),
                "Evaluation.predict_and_score",
                at,
                json!({"example": ex, "model": format!("weave:///{P}/object/model:v{e}")}),
                json!({"output": format!("answer {r}"), "scores": {"exact": r % 2 == 0}}),
            ));
            let (p, at) = g.next();
            calls.push(call(
                &p,
                &root,
                Some(&row),
                "Model.predict",
                at,
                json!({"question": format!("q{r}")}),
                json!(format!("answer {r}")),
            ));
            let (s, at) = g.next();
            calls.push(call(
                &s,
                &root,
                Some(&row),
                "exact",
                at,
                json!({"output": format!("answer {r}")}),
                json!({"correct": r % 2 == 0}),
            ));
        }
        evals.push(root);
    }
    // One 10,000-call trace: a root, 99 steps, 100 calls under each step.
    let (big, at) = g.next();
    calls.push(call(
        &big,
        &big,
        None,
        "agent",
        at,
        json!({"task": "long"}),
        json!("done"),
    ));
    let mut left = 9_999;
    while left > 0 {
        let (step, at) = g.next();
        calls.push(call(
            &step,
            &big,
            Some(&big),
            "step",
            at,
            json!({"n": left}),
            json!({"ok": true}),
        ));
        left -= 1;
        for _ in 0..100.min(left) {
            let (c, at) = g.next();
            calls.push(call(
                &c,
                &big,
                Some(&step),
                "tool",
                at,
                json!({"arg": "x"}),
                json!(1),
            ));
            left -= 1;
        }
    }
    // The rest: traces of 10 calls over 20 ops.
    let mut k = 0usize;
    while calls.len() < total {
        let (root, at) = g.next();
        calls.push(call(
            &root,
            &root,
            None,
            &format!("op{}", k % 20),
            at,
            json!({"prompt": format!("hello {k}"), "temperature": 0.7}),
            json!({"text": format!("reply {k}")}),
        ));
        for j in 0..9 {
            if calls.len() >= total {
                break;
            }
            let (c, at) = g.next();
            calls.push(call(
                &c,
                &root,
                Some(&root),
                &format!("op{}", (k + j + 1) % 20),
                at,
                json!({"x": j}),
                json!(j * 2),
            ));
        }
        k += 1;
    }
    let total = calls.len();
    let batches = calls.chunks(5000).map(|c| c.to_vec()).collect();
    Data {
        batches,
        big_trace: big,
        evals: [evals[0].clone(), evals[1].clone()],
        op: format!("weave:///{P}/op/op7:d3"),
        total,
    }
}

async fn load(s: &Arc<dyn TraceStore>, data: &Data) -> Duration {
    let start = Instant::now();
    // Four writers, as several clients would.
    let mut batches = data.batches.clone().into_iter();
    loop {
        let mut tasks = Vec::new();
        for b in batches.by_ref().take(4) {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.calls_complete(CallsCompleteReq { batch: b })
                    .await
                    .unwrap();
            }));
        }
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    start.elapsed()
}

struct Query {
    name: &'static str,
    run: Box<dyn Fn(Arc<dyn TraceStore>) -> futures::future::BoxFuture<'static, usize>>,
}

fn queries(data: &Data) -> Vec<Query> {
    let big = data.big_trace.clone();
    let evals = data.evals.clone();
    let op = data.op.clone();
    vec![
        Query {
            name: "traces page: 50 latest roots",
            run: Box::new(|s| {
                Box::pin(async move {
                    s.calls_query_vec(CallsQueryReq {
                        project_id: P.into(),
                        filter: Some(CallsFilter {
                            trace_roots_only: Some(true),
                            ..Default::default()
                        }),
                        sort_by: Some(vec![SortBy::desc("started_at")]),
                        limit: Some(50),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .len()
                })
            }),
        },
        Query {
            name: "traces page: count of roots",
            run: Box::new(|s| {
                Box::pin(async move {
                    s.calls_query_stats(CallsQueryStatsReq {
                        project_id: P.into(),
                        filter: Some(CallsFilter {
                            trace_roots_only: Some(true),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .count as usize
                })
            }),
        },
        Query {
            name: "a 10k-call trace",
            run: Box::new(move |s| {
                let big = big.clone();
                Box::pin(async move {
                    s.calls_query_vec(CallsQueryReq {
                        project_id: P.into(),
                        filter: Some(CallsFilter {
                            trace_ids: Some(vec![big]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .len()
                })
            }),
        },
        Query {
            name: "evaluation compare: 2 x 1000 rows",
            run: Box::new(move |s| {
                let evals = evals.clone();
                Box::pin(async move {
                    s.calls_query_vec(CallsQueryReq {
                        project_id: P.into(),
                        filter: Some(CallsFilter {
                            parent_ids: Some(evals.to_vec()),
                            op_names: Some(vec![format!(
                                "weave:///{P}/op/Evaluation.predict_and_score:*"
                            )]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .len()
                })
            }),
        },
        Query {
            name: "an op's 100 latest calls",
            run: Box::new(move |s| {
                let op = op.clone();
                Box::pin(async move {
                    s.calls_query_vec(CallsQueryReq {
                        project_id: P.into(),
                        filter: Some(CallsFilter {
                            op_names: Some(vec![op]),
                            ..Default::default()
                        }),
                        sort_by: Some(vec![SortBy::desc("started_at")]),
                        limit: Some(100),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .len()
                })
            }),
        },
    ]
}

async fn time(q: &Query, s: &Arc<dyn TraceStore>) -> (Duration, usize) {
    let n = (q.run)(s.clone()).await; // warm-up
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let m = (q.run)(s.clone()).await;
        times.push(start.elapsed());
        assert_eq!(m, n, "{}: answers changed between runs", q.name);
    }
    times.sort();
    (times[2], n)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let total: usize = std::env::var("WEAVE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("load average before: {}", loadavg());
    let data = generate(total);
    println!("{} calls in {} batches", data.total, data.batches.len());
    let server = ClickHouseServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sq: Arc<dyn TraceStore> =
            Arc::new(SqliteStore::create(dir.path().join("bench.db")).unwrap());
        let ch: Arc<dyn TraceStore> = Arc::new(
            ClickHouseStore::open(&server.store_url("bench"))
                .await
                .unwrap(),
        );
        for (name, s) in [("sqlite", &sq), ("clickhouse", &ch)] {
            let d = load(s, &data).await;
            println!(
                "load {name}: {:.1} s, {:.0} calls/s (load average {})",
                d.as_secs_f64(),
                data.total as f64 / d.as_secs_f64(),
                loadavg()
            );
        }
        println!();
        println!("| query | rows | SQLite | ClickHouse | ClickHouse / SQLite |");
        println!("| --- | --- | --- | --- | --- |");
        for q in queries(&data) {
            let (a, n) = time(&q, &sq).await;
            let (b, m) = time(&q, &ch).await;
            assert_eq!(n, m, "{}: the stores disagree", q.name);
            println!(
                "| {} | {n} | {} | {} | {:.2}x |",
                q.name,
                ms(a),
                ms(b),
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
    });
    println!();
    println!("load average after: {}", loadavg());
}

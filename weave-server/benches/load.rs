//! Load bench: N concurrent clients (default 16) each send M calls (default 25 000) to a
//! `weave serve` router on loopback over one SQLite store, in `calls/complete` batches of 1000
//! (gzip, as the Rust client sends them), while a reader opens the same file as the CLI does
//! and lists the newest calls, and another reads them through the server.
//!
//! Prints calls/s, p50/p99/max batch latency, reader latencies, checks that every call was
//! stored, and, as the baseline measured in the same run, the same writes straight into the
//! store (no HTTP): the ratio is what the server costs.
//!
//! `cargo bench -p weave-server --bench load` (env `WEAVE_LOAD_CLIENTS`, `WEAVE_LOAD_CALLS`).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;
use weave_server::testing::{fresh_store, Background};
use weave_store::{SqliteStore, TraceStore};
use weave_types::query::SortBy;
use weave_types::*;

const BATCH: usize = 1000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn call(client: usize, n: usize) -> CompleteCallSchemaForInsert {
    let micros = 1_764_000_000_000_000 + (n as i64) * 1000 + client as i64;
    CompleteCallSchemaForInsert {
        project_id: "load/bench".into(),
        id: format!("019a{client:04x}-0000-7000-8000-{n:012}"),
        trace_id: format!("019a{client:04x}-0000-7000-9000-{:012}", n / 10),
        parent_id: (!n.is_multiple_of(10))
            .then(|| format!("019a{client:04x}-0000-7000-8000-{:012}", n - n % 10)),
        op_name: format!("weave:///load/bench/op/step_{}:abcdefgh", n % 7),
        started_at: weave_types::time::format_micros(micros),
        ended_at: weave_types::time::format_micros(micros + 420),
        attributes: json!({"weave": {"client": "load"}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        inputs: json!({"x": n, "prompt": "Write a function that adds two numbers."})
            .as_object()
            .unwrap()
            .clone(),
        output: json!({"y": n * 2, "text": "def add(a, b):\n    return a + b\n"}),
        summary: json!({"status_counts": {"success": 1, "error": 0}})
            .as_object()
            .unwrap()
            .clone()
            .into(),
        ..Default::default()
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Writes every batch straight into the store from `clients` threads: the baseline.
fn direct(clients: usize, calls: usize) -> (Duration, usize) {
    let ts = fresh_store();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = ts.store.clone();
            tasks.push(tokio::spawn(async move {
                for b in 0..calls.div_ceil(BATCH) {
                    let batch = (b * BATCH..((b + 1) * BATCH).min(calls))
                        .map(|n| call(c, n))
                        .collect();
                    store
                        .calls_complete(CallsCompleteReq { batch })
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let took = start.elapsed();
    let n = rt
        .block_on(ts.store.calls_query_stats(CallsQueryStatsReq {
            project_id: "load/bench".into(),
            ..Default::default()
        }))
        .unwrap()
        .count as usize;
    (took, n)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

fn main() {
    let clients = env("WEAVE_LOAD_CLIENTS", 16);
    let calls = env("WEAVE_LOAD_CALLS", 25_000);
    let total = clients * calls;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load bench: {clients} clients x {calls} calls = {total}, batches of {BATCH}");
    println!("load average before: {}", load.trim());

    // Through the server.
    let ts = fresh_store();
    let path = ts.path.clone().expect("a file-backed store");
    let server = Background::store(ts.store.clone(), "127.0.0.1:0".parse().unwrap());
    let url = server.url();
    let writing = Arc::new(AtomicBool::new(true));

    // A CLI-like reader: its own store handle on the file, the 50 newest calls and a count.
    let cli_reader = {
        let writing = writing.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            let store = SqliteStore::open(&path).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut lat = Vec::new();
            let mut seen = 0;
            while writing.load(Ordering::Relaxed) {
                let t = Instant::now();
                let newest = rt
                    .block_on(store.calls_query_vec(CallsQueryReq {
                        project_id: "load/bench".into(),
                        sort_by: Some(vec![SortBy::desc("started_at")]),
                        limit: Some(50),
                        ..Default::default()
                    }))
                    .unwrap();
                let count = rt
                    .block_on(store.calls_query_stats(CallsQueryStatsReq {
                        project_id: "load/bench".into(),
                        ..Default::default()
                    }))
                    .unwrap()
                    .count;
                lat.push(t.elapsed());
                assert!(newest.len() <= 50);
                assert!(count as usize >= seen, "the count went down");
                seen = count as usize;
                std::thread::sleep(Duration::from_millis(200));
            }
            lat
        })
    };
    // A UI-like reader through the server.
    let http_reader = {
        let writing = writing.clone();
        let url = url.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut lat = Vec::new();
            while writing.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/calls/stream_query"))
                    .json(&json!({"project_id": "load/bench", "limit": 50,
                        "sort_by": [{"field": "started_at", "direction": "desc"}]}))
                    .send()
                    .unwrap();
                assert!(r.status().is_success());
                let text = r.text().unwrap();
                lat.push(t.elapsed());
                assert!(text.lines().count() <= 50);
                std::thread::sleep(Duration::from_millis(200));
            }
            lat
        })
    };

    let barrier = Arc::new(Barrier::new(clients + 1));
    let writers: Vec<_> = (0..clients)
        .map(|c| {
            let url = url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap();
                // Bodies are made before the clock starts: the bench measures the server.
                let bodies: Vec<Vec<u8>> = (0..calls.div_ceil(BATCH))
                    .map(|b| {
                        let batch: Vec<_> = (b * BATCH..((b + 1) * BATCH).min(calls))
                            .map(|n| call(c, n))
                            .collect();
                        gzip(&serde_json::to_vec(&CallsCompleteReq { batch }).unwrap())
                    })
                    .collect();
                barrier.wait();
                let mut lat = Vec::new();
                for body in bodies {
                    let t = Instant::now();
                    let r = client
                        .post(format!("{url}/v2/load/bench/calls/complete"))
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(body)
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut batch_lat: Vec<Duration> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let took = start.elapsed();
    writing.store(false, Ordering::Relaxed);
    let mut cli_lat = cli_reader.join().unwrap();
    let mut http_lat = http_reader.join().unwrap();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let stored = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(ts.store.calls_query_stats(CallsQueryStatsReq {
            project_id: "load/bench".into(),
            ..Default::default()
        }))
        .unwrap()
        .count as usize
    };
    server.stop();
    batch_lat.sort();
    cli_lat.sort();
    http_lat.sort();
    let http_rate = total as f64 / took.as_secs_f64();

    let (base_took, base_n) = direct(clients, calls);
    let base_rate = total as f64 / base_took.as_secs_f64();

    println!(
        "through weave serve: {total} calls in {:.2} s = {:.0} calls/s",
        took.as_secs_f64(),
        http_rate
    );
    println!(
        "  batch latency ({} batches): p50 {}  p99 {}  max {}",
        batch_lat.len(),
        ms(pct(&batch_lat, 0.5)),
        ms(pct(&batch_lat, 0.99)),
        ms(pct(&batch_lat, 1.0))
    );
    println!(
        "  CLI-like reads while writing ({}): p50 {}  p99 {}  max {}",
        cli_lat.len(),
        ms(pct(&cli_lat, 0.5)),
        ms(pct(&cli_lat, 0.99)),
        ms(pct(&cli_lat, 1.0))
    );
    println!(
        "  HTTP reads while writing ({}): p50 {}  p99 {}  max {}",
        http_lat.len(),
        ms(pct(&http_lat, 0.5)),
        ms(pct(&http_lat, 0.99)),
        ms(pct(&http_lat, 1.0))
    );
    println!("  stored: {stored} of {total}");
    println!(
        "baseline, straight into the store: {base_n} calls in {:.2} s = {:.0} calls/s",
        base_took.as_secs_f64(),
        base_rate
    );
    println!("ratio server/baseline: {:.2}", http_rate / base_rate);
    println!("load average after: {}", load_after.trim());
    assert_eq!(stored, total, "calls lost through the server");
    assert_eq!(base_n, total, "calls lost in the baseline");
}

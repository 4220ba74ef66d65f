//! Replica bench: two server replicas (each with its own `ClickHouseStore` handle) over one
//! ClickHouse database (a throwaway `clickhouse-server`), `WEAVE_REPLICA_CLIENTS` clients
//! (default 8) each sending `WEAVE_REPLICA_CALLS` calls (default 50 000) over HTTP as
//! `/v2/{entity}/{project}/calls/complete` batches of 1000, alternating between the replicas batch by batch.
//! (Starts and ends sent separately through `call/upsert_batch` are stored one call per
//! write by the route, i.e. one ClickHouse insert each: far too slow for a bulk bench.)
//!
//! Then checks through both replicas that nothing was lost or duplicated: the count of
//! distinct ids is clients x calls, no call is still running (every end arrived and was
//! merged), and both replicas answer the same. As the baseline measured in the same run, the
//! same bodies go to one replica over an SQLite store.
//!
//! `cargo bench -p weave-server --bench replicas`. Prints the load average before and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weave_server::testing::Background;
use weave_store::{ClickHouseServer, ClickHouseStore, SqliteStore, TraceStore};
use weave_types::*;

const BATCH: usize = 1000;
const P: &str = "load/replicas";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn id(client: usize, n: usize) -> String {
    format!("019b{client:04x}-0000-7000-8000-{n:012}")
}

fn call(client: usize, n: usize) -> Value {
    let micros = 1_764_000_000_000_000 + (n as i64) * 1000 + client as i64;
    json!({
        "project_id": P, "id": id(client, n),
        "trace_id": format!("019b{client:04x}-0000-7000-9000-{:012}", n / 10),
        "parent_id": (!n.is_multiple_of(10)).then(|| id(client, n - n % 10)),
        "op_name": format!("weave:///{P}/op/step_{}:abcdefgh", n % 7),
        "started_at": weave_types::time::format_micros(micros),
        "ended_at": weave_types::time::format_micros(micros + 420),
        "attributes": {"weave": {"client": "replicas"}},
        "inputs": {"x": n, "prompt": "Write a function that adds two numbers."},
        "output": {"y": n * 2, "text": "def add(a, b):\n    return a + b\n"},
        "summary": {"status_counts": {"success": 1, "error": 0}}})
}

/// Sends every client's batches, batch `k` of client `c` to `urls[(c + k) % len]`. Returns
/// the time taken and every batch's latency.
fn send(urls: &[String], clients: usize, calls: usize) -> (Duration, Vec<Duration>) {
    let t = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let urls = urls.to_vec();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .unwrap();
                let mut lat = Vec::new();
                let post = |url: &str, items: Vec<Value>, lat: &mut Vec<Duration>| {
                    let t = Instant::now();
                    let r = http
                        .post(format!("{url}/v2/{P}/calls/complete"))
                        .json(&json!({ "batch": items }))
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
                    lat.push(t.elapsed());
                };
                for k in 0..calls.div_ceil(BATCH) {
                    let range = k * BATCH..((k + 1) * BATCH).min(calls);
                    let url = &urls[(c + k) % urls.len()];
                    post(url, range.map(|n| call(c, n)).collect(), &mut lat);
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let took = t.elapsed();
    lat.sort();
    (took, lat)
}

/// (distinct calls, calls still running) as `store` answers.
fn counts(rt: &tokio::runtime::Runtime, store: &Arc<dyn TraceStore>) -> (u64, u64) {
    let all = rt
        .block_on(store.calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            ..Default::default()
        }))
        .unwrap()
        .count;
    let running: Query = serde_json::from_value(json!({"$expr": {"$eq": [
        {"$getField": "summary.weave.status"}, {"$literal": "running"}]}}))
    .unwrap();
    let running = rt
        .block_on(store.calls_query_stats(CallsQueryStatsReq {
            project_id: P.into(),
            query: Some(running),
            ..Default::default()
        }))
        .unwrap()
        .count;
    (all, running)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn report(name: &str, total: usize, took: Duration, lat: &[Duration]) -> f64 {
    let rate = total as f64 / took.as_secs_f64();
    println!(
        "{name}: {total} calls in {:.1} s = {rate:.0} calls/s; batch p50 {:.0} ms, p99 {:.0} ms, \
         max {:.0} ms (load average {})",
        took.as_secs_f64(),
        pct(lat, 0.5).as_secs_f64() * 1e3,
        pct(lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        loadavg()
    );
    rate
}

fn main() {
    let clients = env("WEAVE_REPLICA_CLIENTS", 8);
    let calls = env("WEAVE_REPLICA_CALLS", 50_000);
    let total = clients * calls;
    println!(
        "replica bench: 2 replicas, {clients} clients x {calls} calls = {total}, \
         calls/complete batches of {BATCH}, alternating replicas"
    );
    println!("load average before: {}", loadavg());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let ch_server = ClickHouseServer::start().expect("start clickhouse-server");
    let url = ch_server.store_url("replicas");
    let stores: Vec<Arc<dyn TraceStore>> = (0..2)
        .map(|_| Arc::new(ClickHouseStore::open_blocking(&url).unwrap()) as Arc<dyn TraceStore>)
        .collect();
    let replicas: Vec<Background> = stores
        .iter()
        .map(|s| Background::store(s.clone(), "127.0.0.1:0".parse().unwrap()))
        .collect();
    let urls: Vec<String> = replicas.iter().map(Background::url).collect();
    let (took, lat) = send(&urls, clients, calls);
    let ch_rate = report("clickhouse, 2 replicas", total, took, &lat);
    for (i, s) in stores.iter().enumerate() {
        let (n, running) = counts(&rt, s);
        println!("  replica {i}: {n} distinct calls, {running} without their end");
        assert_eq!(n as usize, total, "replica {i}: calls lost or duplicated");
        assert_eq!(running, 0, "replica {i}: ends lost");
    }
    drop(replicas);

    let dir = tempfile::tempdir().unwrap();
    let sq: Arc<dyn TraceStore> = Arc::new(SqliteStore::create(dir.path().join("b.db")).unwrap());
    let one = Background::store(sq.clone(), "127.0.0.1:0".parse().unwrap());
    let (took, lat) = send(&[one.url()], clients, calls);
    let sq_rate = report("sqlite, 1 server", total, took, &lat);
    let (n, running) = counts(&rt, &sq);
    assert_eq!((n as usize, running), (total, 0));
    println!(
        "clickhouse (2 replicas) / sqlite (1 server): {:.2}x calls/s",
        ch_rate / sq_rate
    );
    println!("load average after: {}", loadavg());
}

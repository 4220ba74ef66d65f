//! Ingest throughput: how many calls per second reach the store, end to end.
//!
//! `cargo bench -p weave-core --bench ingest` runs each scenario in a child process of its own
//! (so that peak RSS is the scenario's) and prints one line per scenario:
//! - `4x250k`: 4 threads each make 250 000 calls of a tiny op;
//! - `1x1M`: one thread makes 1 000 000 calls.
//!
//! The clock runs from the first call until `weave::flush()` returns, i.e. until every call is
//! committed to a fresh SQLite store. Printed: calls/s, the peak RSS of the process, and the
//! 99.9th percentile of the time one op call takes on its thread (the "caller stall": what a
//! traced program feels while the writer is busy). Every call is timed, so the loop also pays
//! two clock reads per call; the plain loop is printed for reference.
//!
//! `-- SCENARIO` runs only that scenario; `WEAVE_BENCH_SCALE=0.1` shrinks the call counts.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

#[weave::op]
#[inline(never)]
fn tiny(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

/// Log-linear latency histogram: 16 sub-buckets per power of two (about 6% resolution).
struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    const SUB: u32 = 16;

    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 * Self::SUB as usize],
        }
    }

    fn bucket(ns: u64) -> usize {
        if ns < Self::SUB as u64 {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros(); // >= 4
        let mantissa = (ns >> (exp - 4)) & 0xF;
        ((exp - 3) * Self::SUB + mantissa as u32) as usize
    }

    /// Upper bound of a bucket, in ns.
    fn bound(bucket: usize) -> u64 {
        let b = bucket as u64;
        let sub = Self::SUB as u64;
        if b < sub {
            return b;
        }
        let exp = b / sub + 3;
        let mantissa = b % sub;
        ((sub + mantissa + 1) << (exp - 4)) - 1
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.counts.iter().sum();
        let target = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return Self::bound(i);
            }
        }
        0
    }
}

/// Peak resident set size of this process, in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn calls_on_this_thread(n: u64, seed: u64) -> Histogram {
    let mut h = Histogram::new();
    for i in 0..n {
        let start = Instant::now();
        black_box(tiny(black_box(i), black_box(seed)));
        h.record(start.elapsed().as_nanos() as u64);
    }
    h
}

fn run_scenario(threads: u64, per_thread: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = weave::Settings::new("bench/ingest")
        .db_path(dir.path().join("ingest.db"))
        .quiet()
        .init()
        .expect("init");
    let start = Instant::now();
    let hists: Vec<Histogram> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || calls_on_this_thread(per_thread, t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let calls_done = start.elapsed();
    client.flush().expect("flush");
    let flushed = start.elapsed();
    let waits = client.buffer_waits();
    let wal_mib = std::fs::metadata(dir.path().join("ingest.db-wal"))
        .map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0));
    let stored = stored_calls(&client);
    let mut all = Histogram::new();
    for h in &hists {
        all.merge(h);
    }
    drop(client);
    let total = threads * per_thread;
    assert_eq!(stored, total, "calls lost");
    // One line the parent parses: calls, seconds to last call, seconds to flush, RSS, p50,
    // p99.9, p99.999, waits for the writer, size of the WAL file once flushed.
    println!(
        "RESULT {total} {:.4} {:.4} {:.1} {} {} {} {waits} {wal_mib:.1}",
        calls_done.as_secs_f64(),
        flushed.as_secs_f64(),
        peak_rss_mib(),
        all.quantile(0.5),
        all.quantile(0.999),
        all.quantile(0.99999),
    );
}

/// Calls in the store, counted through the store's read API.
fn stored_calls(client: &weave::WeaveClient) -> u64 {
    use weave::store::TraceStore;
    let store = client.store().expect("store");
    let req = weave::types::CallsQueryStatsReq {
        project_id: client.project_id(),
        ..Default::default()
    };
    futures::executor::block_on(store.calls_query_stats(req))
        .expect("count")
        .count
}

fn plain_loop_ns() -> f64 {
    let n = 1_000_000u64;
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        black_box(black_box(i).wrapping_mul(31).wrapping_add(7));
        black_box(t.elapsed());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn scale() -> f64 {
    std::env::var("WEAVE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

const SCENARIOS: [(&str, u64, u64); 2] = [("4x250k", 4, 250_000), ("1x1M", 1, 1_000_000)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let name = args.get(i + 1).expect("scenario name");
        let (_, threads, per) = SCENARIOS
            .iter()
            .find(|(n, _, _)| n == name)
            .expect("known scenario");
        let per = ((*per as f64) * scale()).max(1.0) as u64;
        run_scenario(*threads, per);
        return;
    }
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exe = std::env::current_exe().expect("current exe");
    println!("ingest: calls of a tiny op until flush returns, fresh SQLite store per scenario");
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "timed empty loop: {:.1} ns per iteration (two clock reads)",
        plain_loop_ns()
    );
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>10} {:>9} {:>10} {:>11} {:>7} {:>8}",
        "scenario",
        "calls",
        "calls/s",
        "to flush",
        "peak RSS",
        "p50 call",
        "p99.9 call",
        "p99.999 call",
        "waits",
        "WAL"
    );
    for (name, _, _) in SCENARIOS {
        if !only.is_empty() && !only.iter().any(|o| o.as_str() == name) {
            continue;
        }
        let out = Command::new(&exe)
            .args(["--scenario", name])
            .output()
            .expect("run scenario");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) else {
            eprintln!(
                "{name}: no result\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        };
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        let (calls, _done, flushed, rss, p50, p999, p99999, waits, wal) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]);
        println!(
            "{:<8} {:>10} {:>12.0} {:>11.3}s {:>7.1}MiB {:>7}ns {:>8.1}µs {:>9.1}µs {:>7} {:>5.1}MiB",
            name,
            calls as u64,
            calls / flushed,
            flushed,
            rss,
            p50 as u64,
            Duration::from_nanos(p999 as u64).as_secs_f64() * 1e6,
            Duration::from_nanos(p99999 as u64).as_secs_f64() * 1e6,
            waits as u64,
            wal,
        );
    }
}

//! Overhead of `#[weave::op]` on a tiny function, against the plain function and against
//! `#[tracing::instrument(ret)]` under a `tracing_subscriber::registry()`.
//!
//! `cargo bench -p weave-core --bench op_overhead` runs criterion, then its own fixed-size
//! `Instant`-timed loops, and prints the two ratios the targets are about:
//! - off / plain: an op with no client initialised (target <= 2x);
//! - on / tracing: an op recording into a store (target <= 1.0x `tracing::instrument(ret)`).
//!
//! Recording is asynchronous: the calling thread only queues records for the writer thread.
//! The queue is unbounded, so the "on" loops run in chunks and wait for the writer between
//! chunks (outside the timed part), and the store is replaced now and then to bound its size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tracing_subscriber::prelude::*;

#[inline(never)]
fn small(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[weave::op]
#[inline(never)]
fn small_op(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

#[tracing::instrument(ret)]
#[inline(never)]
fn small_traced(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31).wrapping_add(b)
}

/// Calls recorded between two waits for the writer: bounds the queue's memory.
const CHUNK: u64 = 10_000;
/// Calls recorded into one store before it is replaced by a fresh one: bounds its size.
const STORE_CALLS: u64 = 500_000;

/// A client recording into a temp store, replaced every [`STORE_CALLS`] calls.
struct Recording {
    dir: tempfile::TempDir,
    client: Option<weave::WeaveClient>,
    calls: u64,
    generation: u32,
}

impl Recording {
    fn new() -> Recording {
        let mut r = Recording {
            dir: tempfile::tempdir().expect("tempdir"),
            client: None,
            calls: 0,
            generation: 0,
        };
        r.rotate();
        r
    }

    fn rotate(&mut self) {
        drop(self.client.take());
        // Deleting a big file costs the kernel time: not on the measured thread.
        let old = self
            .dir
            .path()
            .join(format!("bench-{}.db", self.generation));
        std::thread::spawn(move || {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", old.display()));
            }
        });
        self.generation += 1;
        let path = self
            .dir
            .path()
            .join(format!("bench-{}.db", self.generation));
        self.client = Some(
            weave::Settings::new("bench/op-overhead")
                .db_path(path)
                .quiet()
                .init()
                .expect("init"),
        );
        self.calls = 0;
    }

    /// Times `iters` recorded calls, waiting for the writer between chunks (untimed).
    fn time(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            let start = Instant::now();
            for i in 0..n {
                black_box(small_op(black_box(i), black_box(7)));
            }
            total += start.elapsed();
            left -= n;
            self.calls += n;
            weave::flush().expect("flush");
            if self.calls >= STORE_CALLS {
                self.rotate();
            }
        }
        total
    }
}

/// CPU time used by the calling thread so far (user + system, from `/proc`, 10 ms ticks):
/// the cost the traced thread pays, without the writer thread's share of a busy machine.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn timed(iters: u64, f: impl Fn(u64) -> u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        black_box(f(black_box(i)));
    }
    start.elapsed()
}

fn per_call(d: Duration, iters: u64) -> f64 {
    d.as_nanos() as f64 / iters as f64
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("op_overhead");
    g.bench_function("plain", |b| b.iter(|| small(black_box(3), black_box(7))));
    g.bench_function("weave_off", |b| {
        b.iter(|| small_op(black_box(3), black_box(7)))
    });
    {
        let _guard = tracing_subscriber::registry().set_default();
        g.bench_function("tracing_instrument_ret", |b| {
            b.iter(|| small_traced(black_box(3), black_box(7)))
        });
    }
    {
        let mut rec = Recording::new();
        g.bench_function("weave_on", |b| b.iter_custom(|iters| rec.time(iters)));
    }
    g.finish();
}

/// Fixed-size loops, best of a few rounds; returns ns per call for plain, off, tracing, on,
/// then the calling thread's CPU ns per call for tracing and on.
fn own_loops(iters: u64, rounds: u32) -> [f64; 6] {
    let best = |f: &mut dyn FnMut() -> Duration| -> f64 {
        (0..rounds)
            .map(|_| per_call(f(), iters))
            .fold(f64::INFINITY, f64::min)
    };
    let plain = best(&mut || timed(iters, |i| small(i, 7)));
    let off = best(&mut || timed(iters, |i| small_op(i, 7)));
    let traced = {
        let _guard = tracing_subscriber::registry().set_default();
        best(&mut || timed(iters, |i| small_traced(i, 7)))
    };
    let mut rec = Recording::new();
    let on = best(&mut || rec.time(iters));
    // The same loop again, for the calling thread's CPU time per call.
    let cpu = |f: &mut dyn FnMut()| -> Option<f64> {
        let before = thread_cpu()?;
        f();
        Some(per_call(thread_cpu()? - before, iters))
    };
    let traced_cpu = {
        let _guard = tracing_subscriber::registry().set_default();
        cpu(&mut || {
            timed(iters, |i| small_traced(i, 7));
        })
    };
    let on_cpu = cpu(&mut || {
        // Only the recorded calls: the waits for the writer sleep, they cost no CPU.
        rec.time(iters);
    });
    [
        plain,
        off,
        traced,
        on,
        traced_cpu.unwrap_or(f64::NAN),
        on_cpu.unwrap_or(f64::NAN),
    ]
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();

    let iters: u64 = std::env::var("WEAVE_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let [plain, off, traced, on, traced_cpu, on_cpu] = own_loops(iters, 3);
    println!();
    println!("own loops, {iters} calls each, best of 3 rounds (ns/call):");
    println!("  plain                     {plain:8.2}");
    println!("  #[weave::op], off         {off:8.2}");
    println!("  tracing::instrument(ret)  {traced:8.2}");
    println!("  #[weave::op], on          {on:8.2}");
    println!(
        "  off / plain   = {:.2}x (target <= 2x)",
        off / plain.max(f64::MIN_POSITIVE)
    );
    println!("  on / tracing  = {:.2}x (target <= 1.0x)", on / traced);
    println!("calling thread's CPU time per call (ns, 10 ms resolution):");
    println!("  tracing::instrument(ret)  {traced_cpu:8.2}");
    println!("  #[weave::op], on          {on_cpu:8.2}");
    println!("  on / tracing  = {:.2}x", on_cpu / traced_cpu);
}

//! Helper for the crash test (`tests/tests/store.rs`): traces calls into the database named by
//! the first argument until it is killed.
//!
//! Prints `finished <n>` after every burst of calls (the calls have returned; the writer may
//! not have committed them yet) and `flushed <n>` after `weave::flush()` (committed).

use std::io::Write as _;
use std::time::Duration;

#[weave::op]
fn step(i: u64) -> u64 {
    inner(i) + 1
}

#[weave::op]
fn inner(i: u64) -> u64 {
    i * 2
}

fn main() {
    let db = std::env::args().nth(1).expect("usage: crashy <db path>");
    let _client = weave::Settings::new("crash/test")
        .db_path(db)
        .quiet()
        .init()
        .expect("init");
    let mut out = std::io::stdout().lock();
    let mut finished = 0u64;
    for burst in 0u64.. {
        for _ in 0..5 {
            step(finished);
            // Two calls per step: the step and its inner call.
            finished += 2;
        }
        writeln!(out, "finished {finished}").expect("stdout");
        if burst % 40 == 39 {
            weave::flush().expect("flush");
            writeln!(out, "flushed {finished}").expect("stdout");
        }
        out.flush().expect("stdout");
        // A pace the writer sustains even in a debug build on a busy machine (about 2000
        // calls/s at most), so that its queue stays short, as in a real program.
        std::thread::sleep(Duration::from_millis(5));
    }
}

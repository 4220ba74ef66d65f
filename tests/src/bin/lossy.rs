//! Helper for the loss tests (`tests/tests/loss.rs`): traces bursts of 10 calls into the
//! database named by the first argument, flushing after each, and prints what each flush
//! returned (`flush ok` or `flush lost <n>`). Before each burst after the first it waits for
//! a line on stdin (the test damages the store meanwhile). Ends by dropping the client, whose
//! exit report goes to stderr.

use std::io::{BufRead as _, Write as _};

#[weave::op]
fn step(i: u64) -> u64 {
    i * 2
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args.next().expect("usage: lossy <db path> <bursts>");
    let bursts: u64 = args.next().and_then(|b| b.parse().ok()).unwrap_or(3);
    let client = weave::Settings::new("loss/test")
        .db_path(db)
        .quiet()
        .init()
        .expect("init");
    let mut out = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().lines();
    for burst in 0..bursts {
        if burst > 0 {
            lines.next();
        }
        for i in 0..10 {
            step(i);
        }
        match weave::flush() {
            Ok(()) => writeln!(out, "flush ok"),
            Err(e) => writeln!(out, "flush lost {}", e.lost().unwrap_or(0)),
        }
        .expect("stdout");
        out.flush().expect("stdout");
    }
    drop(client);
}

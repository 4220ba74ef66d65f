//! The background writer thread: every few milliseconds (and at once on a message) it
//! collects the per-thread call buffers and the channel, encodes the round, and hands the
//! batch to the sink. It counts what the sink fails to write, says so on stderr the first
//! time (whatever the logging setup), answers each flush with the count since the previous
//! one, and returns the total when it stops.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{SinkError, TraceSink};
use crate::batch::Batch;
use crate::encode::{Control, Encoder};
use crate::queue::Registry;
use crate::record::{CallMsg, Losses, Msg};

/// How often the writer collects the per-thread buffers: bounds what a crash loses.
const INTERVAL: Duration = Duration::from_millis(10);
/// Channel messages taken in one round at most.
const MAX_BATCH: usize = 4096;

struct Writer {
    sink: Box<dyn TraceSink>,
    encoder: Encoder,
    calls: Arc<Registry>,
    /// Emptied buffers, swapped back into the threads' buffers.
    spares: Vec<Vec<CallMsg>>,
    /// Reused from round to round.
    batch: Batch,
    losses: LossBook,
}

/// What the sink failed to write.
#[derive(Default)]
struct LossBook {
    /// Since the last flush answer.
    since_flush: Losses,
    /// Since the start (`pending`: as last reported).
    total: Losses,
    /// Whether the first failure was printed.
    told: bool,
}

impl LossBook {
    fn note(&mut self, e: &SinkError) {
        let (lost, pending) = match e {
            SinkError::Dropped { n, .. } => (*n as u64, 0),
            SinkError::Undelivered { pending, lost, .. } => (*lost as u64, *pending as u64),
        };
        for l in [&mut self.since_flush, &mut self.total] {
            l.lost += lost;
            l.pending = pending;
            l.reason.get_or_insert_with(|| e.to_string());
        }
        tracing::error!("weave: {e}");
        if !self.told {
            self.told = true;
            // Where the user looks even without a tracing subscriber; once, not per batch.
            eprintln!(
                "weave: {e}\nweave: trace records are not being written; `flush()` returns \
                 how many, and the count is reported at exit"
            );
        }
    }
}

/// Starts the writer thread; it stops after a `Shutdown` message (or when every sender is
/// gone), having written everything sent before.
pub(crate) fn spawn_writer(
    sink: Box<dyn TraceSink>,
    encoder: Encoder,
    rx: Receiver<Msg>,
    calls: Arc<Registry>,
) -> std::io::Result<JoinHandle<Losses>> {
    let mut writer = Writer {
        sink,
        encoder,
        calls,
        spares: Vec::new(),
        batch: Batch::default(),
        losses: LossBook::default(),
    };
    std::thread::Builder::new()
        .name("weave-writer".into())
        .spawn(move || writer.run(rx))
}

impl Writer {
    /// Runs until shutdown; returns what was not written in all.
    fn run(&mut self, rx: Receiver<Msg>) -> Losses {
        loop {
            // Channel messages first, then the buffers: a message (attributes, flush) sent
            // after a call record finds that record collected in the same round.
            let mut messages = Vec::new();
            let mut disconnected = false;
            match rx.recv_timeout(INTERVAL) {
                Ok(m) => messages.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            messages.extend(rx.try_iter().take(MAX_BATCH));
            let mut control = Control::default();
            self.round(messages, &mut control);
            let stop = control.shutdown || disconnected;
            if stop {
                // What raced in after the shutdown request.
                let rest: Vec<Msg> = rx.try_iter().collect();
                self.round(rest, &mut control);
            }
            if !control.flushes.is_empty() {
                if let Err(e) = self.sink.flush() {
                    self.losses.note(&e);
                }
                let answer = std::mem::take(&mut self.losses.since_flush);
                let heard = control
                    .flushes
                    .into_iter()
                    .filter(|f| f.send(answer.clone()).is_ok())
                    .count();
                if heard == 0 {
                    // Every flusher gave up waiting: the next flush reports these.
                    self.losses.since_flush = answer;
                }
            }
            if stop {
                if let Err(e) = self.sink.shutdown() {
                    self.losses.note(&e);
                } else {
                    self.losses.total.pending = 0;
                }
                return std::mem::take(&mut self.losses.total);
            }
        }
    }

    /// Collects the buffers, encodes them with `messages`, writes the batch.
    fn round(&mut self, messages: Vec<Msg>, control: &mut Control) {
        let mut calls = self.calls.drain(&mut self.spares);
        if calls.is_empty() && messages.is_empty() {
            return;
        }
        self.batch.clear();
        let sink = &mut self.sink;
        let losses = &mut self.losses;
        let mut write = |batch: &mut Batch| {
            if !batch.is_empty() {
                if let Err(e) = sink.write(batch) {
                    losses.note(&e);
                }
            }
            batch.clear();
        };
        self.encoder
            .encode(&mut calls, messages, &mut self.batch, control, &mut write);
        write(&mut self.batch);
        for records in calls {
            Registry::recycle(&mut self.spares, records);
        }
    }
}

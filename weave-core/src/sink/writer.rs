//! The background writer: two threads in a pipeline. The encoding thread collects the
//! per-thread call buffers and the channel every few milliseconds (at once on a message, or
//! when the buffers fill up), encodes each round into batches, and hands them to the sink
//! thread, which writes them to the sink. Encoding the next round overlaps with writing the
//! last one; at most [`IN_FLIGHT`] batches wait between the two, so a slow sink slows the
//! encoding thread, which lets the buffers fill, which makes callers wait (see
//! [`crate::queue`]): memory stays bounded and nothing is dropped. The sink thread counts
//! what the sink fails to write, says so on stderr the first time (whatever the logging
//! setup), answers each flush with the count since the previous one, and returns the total
//! when it stops.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{SinkError, TraceSink};
use crate::batch::Batch;
use crate::clock;
use crate::encode::{Control, Encoder};
use crate::queue::Registry;
use crate::record::{CallMsg, Losses, Msg};

/// How often the writer collects the per-thread buffers: bounds what a crash loses.
const INTERVAL: Duration = Duration::from_millis(10);
/// Channel messages taken in one round at most.
const MAX_BATCH: usize = 4096;
/// Encoded batches waiting for the sink thread at most.
const IN_FLIGHT: usize = 2;

/// Work for the sink thread, in order.
enum Job {
    /// Write a batch (then hand it back to be reused).
    Write(Batch),
    /// Flush the sink, then answer these with what was not written since the last answer.
    Flush(Vec<SyncSender<Losses>>),
}

/// What the sink failed to write (kept by the sink thread).
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

struct Writer {
    encoder: Encoder,
    calls: Arc<Registry>,
    /// Emptied buffers, swapped back into the threads' buffers.
    spares: Vec<Vec<CallMsg>>,
    /// Filled from round to round; sent to the sink thread when full or at a round's end.
    batch: Batch,
    /// Batches written by the sink thread, to reuse (cleared here, off the sink thread).
    returned: Receiver<Batch>,
    jobs: Option<SyncSender<Job>>,
}

/// Starts the writer threads; they stop after a `Shutdown` message (or when every sender is
/// gone), having written everything sent before. Joining the returned handle waits for both
/// and gives what was not written in all.
pub(crate) fn spawn_writer(
    sink: Box<dyn TraceSink>,
    encoder: Encoder,
    rx: Receiver<Msg>,
    calls: Arc<Registry>,
) -> std::io::Result<JoinHandle<Losses>> {
    let (jobs, jobs_rx) = mpsc::sync_channel(IN_FLIGHT);
    let (back, returned) = mpsc::channel();
    let sink_thread = std::thread::Builder::new()
        .name("weave-sink".into())
        .spawn(move || sink_loop(sink, jobs_rx, back))?;
    let mut writer = Writer {
        encoder,
        calls,
        spares: Vec::new(),
        batch: Batch::default(),
        returned,
        jobs: Some(jobs),
    };
    std::thread::Builder::new()
        .name("weave-writer".into())
        .spawn(move || {
            writer.run(rx);
            // The sink thread ends once the job channel is closed and it has shut the sink.
            drop(writer.jobs.take());
            let losses = match sink_thread.join() {
                Ok(l) => l,
                // A sink panicked: std's hook has printed it; what it held is lost.
                Err(_) => Losses {
                    reason: Some("the trace sink panicked".into()),
                    ..Losses::default()
                },
            };
            writer.calls.pressure().close();
            losses
        })
}

/// The sink thread: writes batches in order, flushes on request, shuts the sink down when
/// the encoding thread is done; returns what was not written in all.
fn sink_loop(
    mut sink: Box<dyn TraceSink>,
    jobs: Receiver<Job>,
    back: mpsc::Sender<Batch>,
) -> Losses {
    let mut losses = LossBook::default();
    for job in jobs {
        match job {
            Job::Write(batch) => {
                if let Err(e) = sink.write(&batch) {
                    losses.note(&e);
                }
                let _ = back.send(batch);
            }
            Job::Flush(waiting) => {
                if let Err(e) = sink.flush() {
                    losses.note(&e);
                }
                let answer = std::mem::take(&mut losses.since_flush);
                let heard = waiting
                    .into_iter()
                    .filter(|f| f.send(answer.clone()).is_ok())
                    .count();
                if heard == 0 {
                    // Every flusher gave up waiting: the next flush reports these.
                    losses.since_flush = answer;
                }
            }
        }
    }
    if let Err(e) = sink.shutdown() {
        losses.note(&e);
    } else {
        losses.total.pending = 0;
    }
    losses.total
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            // Channel messages first, then the buffers: a message (attributes, flush) sent
            // after a call record finds that record collected in the same round.
            let mut messages = Vec::new();
            let mut disconnected = false;
            // Buffers filling up: collect them now rather than let callers wait.
            let wait = if self.calls.pressure().pressing() {
                Duration::ZERO
            } else {
                INTERVAL
            };
            match rx.recv_timeout(wait) {
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
                self.send(Job::Flush(control.flushes));
            }
            if stop {
                return;
            }
        }
    }

    fn send(&mut self, job: Job) {
        let gone = match &self.jobs {
            Some(jobs) => jobs.send(job).is_err(),
            None => true,
        };
        if gone {
            // The sink thread died (a sink panicked): nothing can be written any more.
            tracing::error!("weave: the sink thread stopped; trace records are dropped");
            self.jobs = None;
        }
    }

    /// Collects the buffers, encodes them with `messages`, hands the batches to the sink.
    fn round(&mut self, messages: Vec<Msg>, control: &mut Control) {
        clock::calibrate();
        let mut calls = self.calls.drain(&mut self.spares);
        if calls.is_empty() && messages.is_empty() {
            return;
        }
        let Writer {
            encoder,
            batch,
            returned,
            jobs,
            ..
        } = self;
        let mut hand_over = |batch: &mut Batch| {
            if batch.is_empty() {
                return;
            }
            let mut next = returned.try_recv().unwrap_or_default();
            next.clear();
            let full = std::mem::replace(batch, next);
            if let Some(j) = jobs {
                if j.send(Job::Write(full)).is_err() {
                    tracing::error!("weave: the sink thread stopped; trace records are dropped");
                    *jobs = None;
                }
            }
        };
        encoder.encode(&mut calls, messages, batch, control, &mut hand_over);
        hand_over(batch);
        for records in calls {
            Registry::recycle(&mut self.spares, records);
        }
    }
}

//! The sink boundary: the background writer collects call records and messages, encodes them
//! ([`crate::encode`]) into a [`Batch`] each round, and hands it to a [`TraceSink`]. The caller
//! never waits on I/O.
//!
//! Sinks: [`SqliteSink`] (the local store, one transaction per batch), [`RemoteSink`] (HTTP
//! to a Weave trace server) and [`MemorySink`] (batches kept in memory, for tests). An
//! exporter is another implementation of the same trait.

mod memory;
mod remote;
mod sqlite;
mod writer;

pub use memory::MemorySink;
pub use remote::{RemoteConfig, RemoteSink, RemoteStats};
pub use sqlite::SqliteSink;
pub(crate) use writer::spawn_writer;

pub use crate::batch::{Batch, CallItem};

/// A sink could not store records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// `n` records were not stored (the others of the batch were).
    #[error("{n} trace record(s) dropped: {reason}")]
    Dropped {
        /// How many.
        n: usize,
        /// Why (the first failure).
        reason: String,
    },
    /// A flush gave up waiting: `pending` records are still on their way (a remote sink
    /// keeps trying), `lost` were dropped or refused since the last flush.
    #[error("{reason}")]
    Undelivered {
        /// Records not delivered yet.
        pending: usize,
        /// Records lost for good.
        lost: usize,
        /// What happened.
        reason: String,
    },
}

/// Where encoded batches go. Runs on the writer thread: a sink needs no async runtime and
/// may block; the traced program's threads never wait for it (except in `flush`).
pub trait TraceSink: Send + 'static {
    /// Stores one round's records. On error, the records the error does not count were
    /// stored: one bad record must not lose the others.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;

    /// Makes everything written so far durable or visible (called on `weave::flush`).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Called once, after the last batch.
    fn shutdown(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

impl<S: TraceSink + ?Sized> TraceSink for Box<S> {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        (**self).write(batch)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
    fn shutdown(&mut self) -> Result<(), SinkError> {
        (**self).shutdown()
    }
}

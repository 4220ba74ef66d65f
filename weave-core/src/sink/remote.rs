//! [`RemoteSink`]: batches to a W&B Weave trace server (`weave serve`, or W&B's), through
//! `weave-remote`: `write` hands the records to its bounded buffer and returns at once; its
//! sender thread does the network; `flush` and `shutdown` wait for delivery (up to a timeout)
//! and report what was not delivered.

use std::time::Duration;

use weave_remote::{Record, RemoteClient, Undelivered};
pub use weave_remote::{RemoteConfig, RemoteStats};

use super::{Batch, CallItem, SinkError, TraceSink};

/// Sends batches to a trace server.
#[derive(Debug)]
pub struct RemoteSink {
    client: Option<RemoteClient>,
    flush_timeout: Duration,
}

impl RemoteSink {
    /// How long `flush` and `shutdown` wait for delivery by default.
    pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts the sender (no network until records come).
    pub fn new(config: RemoteConfig) -> std::io::Result<RemoteSink> {
        Ok(RemoteSink {
            client: Some(RemoteClient::start(config)?),
            flush_timeout: Self::FLUSH_TIMEOUT,
        })
    }

    /// Sets how long `flush` and `shutdown` wait for delivery.
    pub fn flush_timeout(mut self, timeout: Duration) -> RemoteSink {
        self.flush_timeout = timeout;
        self
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        self.client.as_ref().map_or("", RemoteClient::url)
    }

    /// Delivery counters.
    pub fn stats(&self) -> RemoteStats {
        self.client
            .as_ref()
            .map(RemoteClient::stats)
            .unwrap_or_default()
    }
}

/// A batch as records, in the order the batch says to apply them.
fn records(batch: &Batch) -> impl Iterator<Item = Record> + '_ {
    let files = batch.files.iter().cloned().map(Record::File);
    let objs = batch.objs.iter().cloned().map(Record::Obj);
    let tables = batch.tables.iter().cloned().map(Record::Table);
    let calls = batch.calls.iter().cloned().map(|c| match c {
        CallItem::Complete(c) => Record::Complete(c),
        CallItem::Start(s) => Record::Start(s),
        CallItem::End(e) => Record::End(e),
    });
    let updates = batch.call_updates.iter().cloned().map(Record::Update);
    files.chain(objs).chain(tables).chain(calls).chain(updates)
}

fn undelivered(e: Undelivered) -> SinkError {
    SinkError::Undelivered {
        pending: e.pending,
        lost: (e.dropped + e.refused) as usize,
        reason: e.to_string(),
    }
}

impl TraceSink for RemoteSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if let Some(c) = &self.client {
            c.push(records(batch));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &self.client {
            Some(c) => c.flush(self.flush_timeout).map_err(undelivered),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) -> Result<(), SinkError> {
        match self.client.take() {
            // The writer reports it (on stderr too: the program is ending).
            Some(c) => c.shutdown(self.flush_timeout).map_err(undelivered),
            None => Ok(()),
        }
    }
}

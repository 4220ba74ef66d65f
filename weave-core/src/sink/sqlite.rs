//! [`SqliteSink`]: batches into the local SQLite store, one transaction per batch, through
//! the store's synchronous write API.

use weave_store::{SqliteStore, StoreError, Writer};

use super::{Batch, CallItem, SinkError, TraceSink};

/// Writes batches into an [`SqliteStore`].
#[derive(Debug)]
pub struct SqliteSink {
    store: SqliteStore,
}

impl SqliteSink {
    /// A sink writing into `store`.
    pub fn new(store: SqliteStore) -> Self {
        SqliteSink { store }
    }

    /// The store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }
}

/// Applies a batch, skipping (and counting) records the store refuses.
fn apply(w: &mut Writer<'_>, batch: &Batch) -> (usize, Option<StoreError>) {
    let mut failed = 0;
    let mut first = None;
    let mut note = |r: Result<(), StoreError>| {
        if let Err(e) = r {
            tracing::error!("weave: dropping a trace record: {e}");
            failed += 1;
            first.get_or_insert(e);
        }
    };
    for f in &batch.files {
        note(w.file_create(f).map(drop));
    }
    for o in &batch.objs {
        note(w.obj_create(o, "obj").map(drop));
    }
    for t in &batch.tables {
        note(w.table_create(t, "table").map(drop));
    }
    // Complete calls (nearly all of them) with one prepared statement.
    let completes = batch.calls.iter().filter_map(|c| match c {
        CallItem::Complete(c) => Some((c, "call")),
        _ => None,
    });
    let r = w.calls_complete_each(completes, &mut |_, e| note(Err(e)));
    note(r);
    for c in &batch.calls {
        note(match c {
            CallItem::Complete(_) => Ok(()),
            CallItem::Start(s) => w.call_start(s, "start").map(drop),
            CallItem::End(e) => w.call_end(e, "end"),
        });
    }
    for u in &batch.call_updates {
        note(w.call_update(u));
    }
    (failed, first)
}

impl TraceSink for SqliteSink {
    /// Everything is committed already; the checkpoint also syncs it to the file (and does
    /// here, while the program waits for the flush, what the checkpoint thread would do
    /// later, beside the program's own work).
    fn flush(&mut self) -> Result<(), SinkError> {
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!("weave: {e}");
        }
        Ok(())
    }

    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut outcome = (0, None);
        let committed = self.store.write(|w| {
            outcome = apply(w, batch);
            Ok(())
        });
        match (committed, outcome) {
            (Err(e), _) => Err(SinkError::Dropped {
                n: batch.len(),
                reason: e.to_string(),
            }),
            (Ok(()), (0, _)) => Ok(()),
            (Ok(()), (n, first)) => Err(SinkError::Dropped {
                n,
                reason: first.map(|e| e.to_string()).unwrap_or_default(),
            }),
        }
    }
}

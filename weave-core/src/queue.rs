//! Per-thread buffers of call records, collected by the writer (the hot path's queue).
//!
//! Each thread that records calls gets its own buffer, registered with the client's
//! [`Registry`]. Pushing a record is an uncontended lock and a `Vec` push: no allocation once
//! the buffer has grown, no wake-up of the writer. The writer swaps each buffer for an empty
//! one every few milliseconds (and at once on flush or shutdown), so a crash loses only the
//! records of the last interval.
//!
//! A call's end record goes to the buffer its start record went to, even when an async call
//! ends on another thread, so the writer always sees a call's start before its end.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::record::CallMsg;

/// One thread's pending call records.
#[derive(Default)]
pub(crate) struct ThreadBuffer {
    records: Mutex<Vec<CallMsg>>,
}

impl ThreadBuffer {
    pub(crate) fn push(&self, msg: CallMsg) {
        self.lock().push(msg);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CallMsg>> {
        // A push cannot panic half-way through; the records are fine after a poisoning.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for ThreadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadBuffer")
            .field("pending", &self.lock().len())
            .finish()
    }
}

/// The buffers of one client.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Tells this registry's buffers apart from other clients' in the thread-local cache.
    id: u64,
    buffers: Mutex<Vec<Arc<ThreadBuffer>>>,
}

static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's buffer and the registry it belongs to.
    static LOCAL: RefCell<Option<(u64, Arc<ThreadBuffer>)>> = const { RefCell::new(None) };
}

/// This thread's buffer if it belongs to the registry `id` (0: none).
pub(crate) fn cached(id: u64) -> Option<Arc<ThreadBuffer>> {
    if id == 0 {
        return None;
    }
    LOCAL
        .try_with(|local| match &*local.borrow() {
            Some((cached, buffer)) if *cached == id => Some(buffer.clone()),
            _ => None,
        })
        .ok()
        .flatten()
}

/// Spare capacity above this (in records) is given back to the allocator after a drain.
const MAX_KEPT_CAPACITY: usize = 1 << 15;
/// Emptied vectors kept for reuse at most.
const MAX_SPARES: usize = 16;

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// Tells this registry apart from others; never 0.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// This thread's buffer, registered on first use.
    pub(crate) fn local(&self) -> Arc<ThreadBuffer> {
        LOCAL
            .try_with(|local| {
                let mut local = local.borrow_mut();
                match &*local {
                    Some((id, buffer)) if *id == self.id => buffer.clone(),
                    _ => {
                        let buffer = self.register();
                        *local = Some((self.id, buffer.clone()));
                        buffer
                    }
                }
            })
            // Thread-local storage is being torn down: a buffer for this one record.
            .unwrap_or_else(|_| self.register())
    }

    fn register(&self) -> Arc<ThreadBuffer> {
        let buffer = Arc::new(ThreadBuffer::default());
        self.lock().push(buffer.clone());
        buffer
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<ThreadBuffer>>> {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes every buffer's records, in order per buffer. `spares` holds emptied vectors to
    /// swap in, so that the threads keep pushing into memory already grown; hand the returned
    /// vectors back with [`Registry::recycle`].
    pub(crate) fn drain(&self, spares: &mut Vec<Vec<CallMsg>>) -> Vec<Vec<CallMsg>> {
        let mut buffers = self.lock();
        let mut taken = Vec::new();
        for buffer in buffers.iter() {
            let mut records = buffer.lock();
            if !records.is_empty() {
                taken.push(std::mem::replace(
                    &mut *records,
                    spares.pop().unwrap_or_default(),
                ));
            }
        }
        // Buffers of threads that are gone, and that no unfinished call points to.
        buffers.retain(|b| Arc::strong_count(b) > 1 || !b.lock().is_empty());
        taken
    }

    /// Returns drained vectors to the spares.
    pub(crate) fn recycle(spares: &mut Vec<Vec<CallMsg>>, mut drained: Vec<CallMsg>) {
        drained.clear();
        if drained.capacity() > MAX_KEPT_CAPACITY {
            drained.shrink_to(MAX_KEPT_CAPACITY);
        }
        if spares.len() < MAX_SPARES {
            spares.push(drained);
        }
    }
}

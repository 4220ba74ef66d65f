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
//!
//! **Back-pressure.** The records waiting in a client's buffers are bounded
//! ([`DEFAULT_MAX_BUFFERED`], set with `Settings::max_buffered_records`). A thread whose push
//! takes the count over the bound waits until the writer has next collected the buffers
//! (blocking, never dropping: nothing is lost), so a program that makes calls faster than the
//! sink can store them runs at the sink's pace with bounded memory. The count is kept per
//! chunk of [`CHUNK`] records (one shared atomic add per chunk, not per call), so the bound
//! may be passed by up to one chunk per thread, and a thread waits at most once per chunk.
//! Once the writer has stopped, nobody waits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::record::CallMsg;

/// Records a client's buffers hold at most by default (start and end records: two per call),
/// about 40 MiB of records for tiny ops.
pub const DEFAULT_MAX_BUFFERED: usize = 1 << 17;
/// Records counted at once against the bound.
pub(crate) const CHUNK: usize = 256;
/// How long a waiting thread sleeps between checks that the writer is still running.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The shared count of buffered records, and where threads over the bound wait.
#[derive(Debug)]
pub(crate) struct Pressure {
    /// Records in the buffers (counted per chunk).
    pending: AtomicUsize,
    limit: usize,
    /// Collections by the writer so far.
    drains: Mutex<u64>,
    drained: Condvar,
    /// The writer has stopped: nothing will collect the buffers again.
    closed: AtomicBool,
    /// Times a thread waited for the writer.
    waits: AtomicU64,
}

impl Pressure {
    fn new(limit: usize) -> Self {
        Pressure {
            pending: AtomicUsize::new(0),
            limit: limit.max(CHUNK),
            drains: Mutex::new(0),
            drained: Condvar::new(),
            closed: AtomicBool::new(false),
            waits: AtomicU64::new(0),
        }
    }

    fn lock_drains(&self) -> MutexGuard<'_, u64> {
        self.drains.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` more records; over the bound, waits for the writer's next collection.
    fn add(&self, n: usize) {
        let pending = self.pending.fetch_add(n, Ordering::Relaxed) + n;
        if pending <= self.limit || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let mut drains = self.lock_drains();
        if self.pending.load(Ordering::Relaxed) <= self.limit {
            return; // Collected meanwhile.
        }
        let seen = *drains;
        while *drains == seen && !self.closed.load(Ordering::Acquire) {
            drains = self
                .drained
                .wait_timeout(drains, WAIT_SLICE)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The writer has taken every buffer's records: wakes the threads that wait.
    fn collected(&self) {
        self.pending.store(0, Ordering::Relaxed);
        *self.lock_drains() += 1;
        self.drained.notify_all();
    }

    /// Whether the buffers are at least half full: the writer should collect them at once.
    pub(crate) fn pressing(&self) -> bool {
        self.pending.load(Ordering::Relaxed) >= self.limit / 2
    }

    /// The writer has stopped: nobody waits any more.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.lock_drains();
        self.drained.notify_all();
    }
}

/// One thread's pending call records.
pub(crate) struct ThreadBuffer {
    records: Mutex<Vec<CallMsg>>,
    pressure: Arc<Pressure>,
}

impl ThreadBuffer {
    /// Appends a record; may wait for the writer when the client's buffers are full.
    pub(crate) fn push(&self, msg: CallMsg) {
        let full_chunk = {
            let mut records = self.lock();
            records.push(msg);
            records.len().is_multiple_of(CHUNK)
        };
        if full_chunk {
            self.pressure.add(CHUNK);
        }
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
    pressure: Arc<Pressure>,
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
    /// Buffers holding at most about `max_buffered` records in all (see the module docs).
    pub(crate) fn new(max_buffered: usize) -> Self {
        Registry {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            buffers: Mutex::new(Vec::new()),
            pressure: Arc::new(Pressure::new(max_buffered)),
        }
    }

    /// The bound on buffered records, shared with the buffers.
    pub(crate) fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// How many times a thread waited for the writer because the buffers were full.
    pub(crate) fn waits(&self) -> u64 {
        self.pressure.waits.load(Ordering::Relaxed)
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
        let buffer = Arc::new(ThreadBuffer {
            records: Mutex::new(Vec::new()),
            pressure: self.pressure.clone(),
        });
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
        drop(buffers);
        self.pressure.collected();
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

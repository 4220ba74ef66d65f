//! Per-thread buffers of call records, collected by the writer (the hot path's queue).
//!
//! Each thread that records calls gets its own buffer, registered with the client's
//! [`Registry`]. The thread appends to it without a lock or an atomic read-modify-write: the
//! buffer is a single-producer queue of fixed-size blocks (a plain write of the record, a
//! release store of the count; no allocation once blocks are recycled, no wake-up of the
//! writer). The writer takes what each buffer holds every few milliseconds (at once on flush
//! or shutdown), so a crash loses only the records of the last interval. The ring is the
//! crate's only `unsafe` code besides reading the time-stamp counter; its invariants are on
//! [`Ring`].
//!
//! A call's end record goes to the buffer its start record went to, even when an async call
//! ends on another thread (that thread appends under the buffer's lock for foreign records),
//! so the writer always sees a call's start before its end.
//!
//! **Back-pressure.** The records waiting in a client's buffers are bounded
//! ([`DEFAULT_MAX_BUFFERED`], set with `Settings::max_buffered_records`). A thread whose push
//! takes the count over the bound waits until the writer has next collected the buffers
//! (blocking, never dropping: nothing is lost), so a program that makes calls faster than the
//! sink can store them runs at the sink's pace with bounded memory. The count is kept per
//! chunk of [`CHUNK`] records (one shared atomic add per chunk, not per call), so the bound
//! may be passed by up to one chunk per thread, and a thread waits at most once per chunk.
//! Once the writer has stopped, nobody waits.

use std::cell::{RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::record::CallMsg;

/// Records a client's buffers hold at most by default (start and end records: two per call),
/// about 40 MiB of records for tiny ops.
pub const DEFAULT_MAX_BUFFERED: usize = 1 << 17;
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

/// Records per block of a thread's ring; also the unit counted against the bound.
pub(crate) const CHUNK: usize = 256;
/// Emptied blocks a buffer keeps for reuse at most (about 4 MiB of records).
const MAX_FREE_BLOCKS: usize = 64;

/// A fixed-size block of records in a thread's ring.
struct Block {
    slots: [UnsafeCell<MaybeUninit<CallMsg>>; CHUNK],
    /// Slots written and published by the producer (only it stores here).
    written: AtomicUsize,
    /// The next block, linked by the producer once this one is full.
    next: AtomicPtr<Block>,
}

impl Block {
    fn alloc() -> NonNull<Block> {
        let mut b = Box::<Block>::new_uninit();
        let p = b.as_mut_ptr();
        // SAFETY: `p` points to an allocation for a `Block`; the two atomics are written in
        // place, and the slots may stay uninitialised (`MaybeUninit`).
        let b = unsafe {
            std::ptr::addr_of_mut!((*p).written).write(AtomicUsize::new(0));
            std::ptr::addr_of_mut!((*p).next).write(AtomicPtr::new(std::ptr::null_mut()));
            b.assume_init()
        };
        NonNull::from(Box::leak(b))
    }
}

/// A single-producer, single-consumer queue of records: a linked list of blocks. The owning
/// thread appends with plain writes and one release store per record (no lock, no atomic
/// read-modify-write: pushing must not stall the calling thread); the writer reads what was
/// published, under `head`'s lock, and recycles the blocks it has emptied.
///
/// Invariants: only the owning thread touches `tail` and writes slots (see
/// [`ThreadBuffer::push`] for how the owner is known); the block at `tail` is never full;
/// the consumer only reads slots below a block's `written`, and frees or recycles a block
/// only once it has read all of it and the producer has linked the next one (after which the
/// producer never touches it again).
struct Ring {
    /// The block being written (owner thread only).
    tail: UnsafeCell<NonNull<Block>>,
    /// The block being read and the next slot to read in it (consumer only).
    head: Mutex<(NonNull<Block>, usize)>,
    /// Emptied blocks, handed from the consumer back to the producer.
    free: Mutex<Vec<NonNull<Block>>>,
}

// SAFETY: the blocks and records are owned by the ring and only reached through it: the
// producer side (`tail`, writing slots) by the one owning thread, the consumer side under
// `head`'s lock, with the hand-over of each slot ordered by `written` (release/acquire)
// and of each block by `next`; `CallMsg` is `Send`.
unsafe impl Send for Ring {}
// SAFETY: as above; shared access never touches the producer side except from its owner.
unsafe impl Sync for Ring {}

impl Ring {
    fn new() -> Ring {
        let first = Block::alloc();
        Ring {
            tail: UnsafeCell::new(first),
            head: Mutex::new((first, 0)),
            free: Mutex::new(Vec::new()),
        }
    }

    /// Appends a record; returns whether it filled a block.
    ///
    /// # Safety
    /// Only the ring's one producer thread may call this (never two threads, ever).
    unsafe fn push(&self, msg: CallMsg) -> bool {
        // SAFETY: the producer is the only one to touch `tail` and the tail block's free
        // slots; the tail block is never full, so `i < CHUNK`.
        unsafe {
            let tail = &mut *self.tail.get();
            let block = tail.as_ref();
            let i = block.written.load(Ordering::Relaxed);
            (*block.slots[i].get()).write(msg);
            block.written.store(i + 1, Ordering::Release);
            if i + 1 < CHUNK {
                if let Some(ahead) = block.slots.get(i + PREFETCH) {
                    prefetch_for_write(ahead.get());
                }
                return false;
            }
            let next = self.reuse_block();
            block.next.store(next.as_ptr(), Ordering::Release);
            *tail = next;
            true
        }
    }

    fn reuse_block(&self) -> NonNull<Block> {
        lock(&self.free).pop().unwrap_or_else(Block::alloc)
    }

    /// Moves every published record to `out`, in order.
    fn drain_into(&self, out: &mut Vec<CallMsg>) {
        let mut head = lock(&self.head);
        loop {
            let (ptr, read) = *head;
            // SAFETY: the head block is alive until the consumer (us, under the lock)
            // recycles it.
            let block = unsafe { ptr.as_ref() };
            let written = block.written.load(Ordering::Acquire);
            out.reserve(written - read);
            for slot in &block.slots[read..written] {
                // SAFETY: slots below `written` were initialised by the producer (ordered by
                // the acquire load) and are read once: `read` moves past them.
                out.push(unsafe { (*slot.get()).assume_init_read() });
            }
            head.1 = written;
            if written < CHUNK {
                return;
            }
            let Some(next) = NonNull::new(block.next.load(Ordering::Acquire)) else {
                return; // Full, and the producer is linking the next block right now.
            };
            *head = (next, 0);
            self.recycle(ptr);
        }
    }

    /// Gives an emptied block (read to the end, and left by the producer) back for reuse.
    fn recycle(&self, ptr: NonNull<Block>) {
        // SAFETY: nobody else refers to the block any more (see `drain_into`).
        let block = unsafe { ptr.as_ref() };
        block.written.store(0, Ordering::Relaxed);
        block.next.store(std::ptr::null_mut(), Ordering::Relaxed);
        let mut free = lock(&self.free);
        if free.len() < MAX_FREE_BLOCKS {
            free.push(ptr);
        } else {
            drop(free);
            // SAFETY: allocated by `Block::alloc` (a leaked `Box`), referenced nowhere else.
            drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        }
    }

    /// Whether nothing published is left to read.
    fn is_empty(&self) -> bool {
        let head = lock(&self.head);
        // SAFETY: as in `drain_into`.
        let block = unsafe { head.0.as_ref() };
        let written = block.written.load(Ordering::Acquire);
        head.1 == written && (written < CHUNK || block.next.load(Ordering::Acquire).is_null())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let (mut ptr, mut read) = *self.head.get_mut().unwrap_or_else(|e| e.into_inner());
        loop {
            // SAFETY: `&mut self`: no producer or consumer is left; every block from the
            // head on is owned here, and its slots from `read` to `written` hold records.
            let block = unsafe { Box::from_raw(ptr.as_ptr()) };
            let written = block.written.load(Ordering::Relaxed);
            for slot in &block.slots[read..written] {
                // SAFETY: initialised and not yet read (see above).
                unsafe { (*slot.get()).assume_init_drop() };
            }
            match NonNull::new(block.next.load(Ordering::Relaxed)) {
                Some(next) => (ptr, read) = (next, 0),
                None => break,
            }
        }
        for ptr in self
            .free
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: emptied blocks, owned by the free list only.
            drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        }
    }
}

/// How many slots ahead of the one written the producer asks for the memory.
const PREFETCH: usize = 2;

/// Asks for the cache lines of a slot the producer will write soon: the writer thread read
/// them last, on another core, so writing them cold stalls the calling thread.
#[inline(always)]
fn prefetch_for_write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        let base = p.cast::<i8>();
        let mut off = 0;
        while off < std::mem::size_of::<T>() {
            // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(base.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics half-way through an update; the data is fine after a poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One thread's pending call records.
pub(crate) struct ThreadBuffer {
    /// Records pushed by the thread that owns the buffer (the one whose [`LOCAL`] holds it).
    ring: Ring,
    /// Records pushed by other threads: the end of an async call that started on the owner
    /// and finished elsewhere (so that it follows its start), or a push while this thread's
    /// thread-locals are being torn down.
    foreign: Mutex<Vec<CallMsg>>,
    pressure: Arc<Pressure>,
}

impl ThreadBuffer {
    fn new(pressure: Arc<Pressure>) -> Self {
        ThreadBuffer {
            ring: Ring::new(),
            foreign: Mutex::new(Vec::new()),
            pressure,
        }
    }

    /// Appends a record; may wait for the writer when the client's buffers are full.
    pub(crate) fn push(&self, msg: CallMsg) {
        if self.is_own() {
            // SAFETY: this thread's `LOCAL` holds this buffer (see `push_own`).
            unsafe { self.push_own(msg) }
        } else {
            let full_chunk = {
                let mut foreign = lock(&self.foreign);
                foreign.push(msg);
                foreign.len().is_multiple_of(CHUNK)
            };
            if full_chunk {
                self.pressure.add(CHUNK);
            }
        }
    }

    /// Appends a record to the owner's ring.
    ///
    /// # Safety
    /// The calling thread's [`LOCAL`] must hold this buffer: a buffer is put in the `LOCAL`
    /// of the thread that registered it and of no other, and once replaced there it is never
    /// put back, so that thread is the ring's one producer.
    #[inline]
    unsafe fn push_own(&self, msg: CallMsg) {
        // SAFETY: as the caller promises.
        if unsafe { self.ring.push(msg) } {
            self.pressure.add(CHUNK);
        }
    }

    /// Whether this thread owns the buffer (its producer).
    #[inline]
    fn is_own(&self) -> bool {
        LOCAL
            .try_with(|local| match &*local.borrow() {
                Some((_, buffer)) => std::ptr::eq(Arc::as_ptr(buffer), self),
                None => false,
            })
            .unwrap_or(false)
    }

    /// Moves the buffer's records to `out`: the owner's, then the other threads'. The other
    /// threads' are taken first, so that every start they follow is already published.
    fn drain_into(&self, out: &mut Vec<CallMsg>) {
        let foreign = std::mem::take(&mut *lock(&self.foreign));
        self.ring.drain_into(out);
        out.extend(foreign);
    }

    fn is_empty(&self) -> bool {
        self.ring.is_empty() && lock(&self.foreign).is_empty()
    }
}

impl std::fmt::Debug for ThreadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadBuffer")
            .field("empty", &self.is_empty())
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

/// Appends `msg` to this thread's buffer of the registry `id` without touching reference
/// counts; gives it back when this thread has no buffer of that registry (or is exiting).
#[inline]
#[must_use = "a record given back was not pushed"]
pub(crate) fn push_local(id: u64, msg: CallMsg) -> Option<CallMsg> {
    let mut msg = Some(msg);
    let _ = LOCAL.try_with(|local| {
        if let Some((cached, buffer)) = &*local.borrow() {
            if *cached == id {
                if let Some(m) = msg.take() {
                    // SAFETY: the buffer is in this thread's `LOCAL`.
                    unsafe { buffer.push_own(m) };
                }
            }
        }
    });
    msg
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
        let buffer = Arc::new(ThreadBuffer::new(self.pressure.clone()));
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
            let mut records = spares.pop().unwrap_or_default();
            buffer.drain_into(&mut records);
            if records.is_empty() {
                spares.push(records);
            } else {
                taken.push(records);
            }
        }
        // Buffers of threads that are gone, and that no unfinished call points to.
        buffers.retain(|b| Arc::strong_count(b) > 1 || !b.is_empty());
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Map, Value};
    use uuid::Uuid;

    use super::*;
    use crate::record::{End, Inputs, OpInfo, Stamp, Start, StartExtra};

    static OP: OpInfo = OpInfo {
        name: "op",
        explicit_name: false,
        digest: "",
        version: "",
        code: "",
        module_path: "",
        file: "",
        line: 0,
    };

    fn end(n: u64) -> CallMsg {
        CallMsg::End(End {
            id: Uuid::from_u128(n as u128),
            ended_at: Stamp::from_system_time(UNIX_EPOCH + Duration::from_micros(n)),
            output: Value::from(n).into(),
            exception: None,
            success: n,
            error: 0,
            usage: None,
        })
    }

    fn start(n: u64, attributes: Option<Arc<Map<String, Value>>>) -> CallMsg {
        CallMsg::Start(Start {
            id: Uuid::from_u128(n as u128),
            trace_id: Uuid::from_u128(n as u128),
            parent_id: None,
            op: &OP,
            self_type: None,
            started_at: Stamp(0),
            inputs: Inputs::default(),
            extra: attributes.map(|a| {
                Box::new(StartExtra {
                    attributes: Some(a),
                    ..StartExtra::default()
                })
            }),
        })
    }

    /// What a drained record is: `S<n>` or `E<n>`.
    fn label(msg: &CallMsg) -> String {
        match msg {
            CallMsg::Start(s) => format!("S{}", s.id.as_u128()),
            CallMsg::End(e) => format!("E{}", e.id.as_u128()),
        }
    }

    fn drain_all(registry: &Registry) -> Vec<CallMsg> {
        registry
            .drain(&mut Vec::new())
            .into_iter()
            .flatten()
            .collect()
    }

    #[test]
    fn every_record_arrives_once_and_in_order_while_the_writer_drains() {
        const N: u64 = 100_003; // Not a multiple of a block.
        let registry = Arc::new(Registry::new(usize::MAX));
        let producer = {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let buffer = registry.local();
                for n in 0..N {
                    buffer.push(end(n));
                }
            })
        };
        let mut seen = Vec::new();
        let mut spares = Vec::new();
        loop {
            let done = producer.is_finished();
            for mut records in registry.drain(&mut spares) {
                seen.extend(records.drain(..).map(|m| match m {
                    CallMsg::End(e) => e.success,
                    CallMsg::Start(_) => u64::MAX,
                }));
                Registry::recycle(&mut spares, records);
            }
            if done {
                break;
            }
        }
        producer.join().unwrap();
        seen.extend(drain_all(&registry).iter().map(|m| match m {
            CallMsg::End(e) => e.success,
            CallMsg::Start(_) => u64::MAX,
        }));
        assert_eq!(seen.len() as u64, N);
        assert!(
            seen.iter().copied().eq(0..N),
            "records out of order or changed"
        );
    }

    #[test]
    fn an_end_pushed_on_another_thread_follows_its_start() {
        let registry = Arc::new(Registry::new(usize::MAX));
        let buffer = registry.local();
        buffer.push(start(1, None));
        buffer.push(end(2));
        // An async call that started here ends on another thread, into this buffer.
        let moved = buffer.clone();
        std::thread::spawn(move || moved.push(end(1)))
            .join()
            .unwrap();
        buffer.push(start(3, None));
        let labels: Vec<String> = drain_all(&registry).iter().map(label).collect();
        assert_eq!(labels, ["S1", "E2", "S3", "E1"]);
        assert!(drain_all(&registry).is_empty());
    }

    #[test]
    fn the_buffer_of_a_finished_thread_is_collected_then_forgotten() {
        let registry = Arc::new(Registry::new(usize::MAX));
        {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let buffer = registry.local();
                for n in 0..(CHUNK as u64 + 5) {
                    buffer.push(end(n));
                }
            })
            .join()
            .unwrap();
        }
        assert_eq!(registry.lock().len(), 1);
        assert_eq!(drain_all(&registry).len(), CHUNK + 5);
        assert!(
            registry.lock().is_empty(),
            "the dead thread's buffer is kept"
        );
    }

    #[test]
    fn unread_records_are_dropped_with_their_buffer() {
        let attributes = Arc::new(Map::new());
        let registry = Arc::new(Registry::new(usize::MAX));
        {
            let registry = registry.clone();
            let attributes = attributes.clone();
            std::thread::spawn(move || {
                let buffer = registry.local();
                for n in 0..(3 * CHUNK as u64 + 7) {
                    buffer.push(start(n, Some(attributes.clone())));
                }
            })
            .join()
            .unwrap();
        }
        // Read some, leave the rest in the ring.
        let first: Vec<CallMsg> = {
            let buffers = registry.lock();
            let mut out = Vec::new();
            buffers[0].ring.drain_into(&mut out);
            out
        };
        assert_eq!(Arc::strong_count(&attributes), 1 + first.len());
        drop(first);
        let registry = Arc::try_unwrap(registry).expect("one owner");
        drop(registry);
        assert_eq!(Arc::strong_count(&attributes), 1, "records leaked");
    }

    #[test]
    fn a_full_block_counts_against_the_bound() {
        let registry = Arc::new(Registry::new(0)); // The bound is one chunk.
        let buffer = registry.local();
        for n in 0..CHUNK as u64 {
            assert!(!registry.pressure().pressing() || n == 0);
            buffer.push(end(n));
        }
        assert!(registry.pressure().pressing());
        drain_all(&registry);
        assert!(!registry.pressure().pressing());
    }
}

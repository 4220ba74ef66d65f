//! Where records go: the one global client, or one scoped to a thread (like tracing's
//! `set_default`), found with as few loads as possible on the hot path.
//!
//! A [`Dispatch`] is a client's sending half: its per-thread call buffers, the channel to its
//! writer, and what it has published. [`enabled`] is the one atomic load an op pays when no
//! client exists. A scoped dispatch follows its calls: a call started under it carries it, so
//! children on other threads (carried there with the call context) reach the same client.

use std::cell::RefCell;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::queue::{self, Registry, ThreadBuffer};
use crate::record::Msg;
use crate::redact::RedactKeys;

/// A client's sending half.
pub(crate) struct Dispatch {
    project_id: String,
    ref_prefix: String,
    sender: mpsc::Sender<Msg>,
    calls: Arc<Registry>,
    published: Mutex<HashSet<String>>,
    redact: RedactKeys,
    flush_timeout: std::time::Duration,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl Dispatch {
    pub(crate) fn new(
        project_id: String,
        sender: mpsc::Sender<Msg>,
        calls: Arc<Registry>,
        redact: RedactKeys,
        flush_timeout: std::time::Duration,
    ) -> Self {
        Dispatch {
            redact,
            flush_timeout,
            ref_prefix: format!("weave:///{project_id}/"),
            project_id,
            sender,
            calls,
            published: Mutex::new(HashSet::new()),
        }
    }

    /// Sends a message to the writer. After shutdown it has nowhere to go and is dropped.
    pub(crate) fn send(&self, msg: Msg) {
        let _ = self.sender.send(msg);
    }

    /// The client's redaction rule (objects and rows are redacted with it before digesting).
    pub(crate) fn redact_keys(&self) -> &RedactKeys {
        &self.redact
    }

    /// How long a flush of this client waits.
    pub(crate) fn flush_timeout(&self) -> std::time::Duration {
        self.flush_timeout
    }

    /// `entity/project`.
    pub(crate) fn project_id(&self) -> &str {
        &self.project_id
    }

    /// `weave:///entity/project/`.
    pub(crate) fn ref_prefix(&self) -> &str {
        &self.ref_prefix
    }

    /// Tells this client's buffers apart from others'.
    pub(crate) fn id(&self) -> u64 {
        self.calls.id()
    }

    /// How many times a thread waited because this client's buffers were full.
    pub(crate) fn buffer_waits(&self) -> u64 {
        self.calls.waits()
    }

    /// This thread's buffer of this client's call records.
    pub(crate) fn local_buffer(&self) -> Arc<ThreadBuffer> {
        self.calls.local()
    }

    /// Records that `key` was published; true the first time.
    pub(crate) fn first_publish(&self, key: &str) -> bool {
        let mut set = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if set.contains(key) {
            false
        } else {
            set.insert(key.to_string())
        }
    }
}

/// Bit 0: a global client exists; the rest: twice the number of live scoped defaults. Alone
/// on its cache line: every op reads it, and nothing else should share the line.
#[repr(align(64))]
struct State(AtomicUsize);
static STATE: State = State(AtomicUsize::new(0));
const GLOBAL_BIT: usize = 1;
const SCOPED_ONE: usize = 2;
static GLOBAL: ArcSwapOption<Dispatch> = ArcSwapOption::const_empty();
/// Registry id of the global client's buffers (0: none), so that a call finds this thread's
/// buffer without loading the client.
static GLOBAL_CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SCOPED: RefCell<Option<Arc<Dispatch>>> = const { RefCell::new(None) };
}

/// Whether any client exists: the one atomic load an op pays when tracing is off.
#[inline(always)]
pub(crate) fn enabled() -> bool {
    STATE.0.load(Ordering::Relaxed) != 0
}

/// Whether some thread has a scoped client (then calls look for one).
#[inline(always)]
pub(crate) fn any_scoped() -> bool {
    STATE.0.load(Ordering::Relaxed) >= SCOPED_ONE
}

/// The global client.
pub(crate) fn global() -> Option<Arc<Dispatch>> {
    GLOBAL.load_full()
}

/// This thread's scoped client, if one is set.
pub(crate) fn scoped() -> Option<Arc<Dispatch>> {
    if !any_scoped() {
        return None;
    }
    SCOPED.try_with(|s| s.borrow().clone()).ok().flatten()
}

/// The registry id of the global client's buffers (0: no global client).
#[inline]
pub(crate) fn global_id() -> u64 {
    GLOBAL_CALLS.load(Ordering::Acquire)
}

/// This thread's buffer of the global client's call records.
#[inline]
pub(crate) fn global_buffer() -> Option<Arc<ThreadBuffer>> {
    queue::cached(GLOBAL_CALLS.load(Ordering::Acquire))
        .or_else(|| GLOBAL.load().as_ref().map(|d| d.local_buffer()))
}

/// Makes `d` the global client (replacing any other).
pub(crate) fn set_global(d: Arc<Dispatch>) {
    GLOBAL_CALLS.store(d.id(), Ordering::SeqCst);
    GLOBAL.store(Some(d));
    STATE.0.fetch_or(GLOBAL_BIT, Ordering::SeqCst);
}

/// Removes `d` as the global client, if it is the global client.
pub(crate) fn clear_global(d: &Arc<Dispatch>) {
    let is_current = GLOBAL.load().as_ref().is_some_and(|g| Arc::ptr_eq(g, d));
    if is_current {
        STATE.0.fetch_and(!GLOBAL_BIT, Ordering::SeqCst);
        GLOBAL_CALLS.store(0, Ordering::SeqCst);
        GLOBAL.store(None);
    }
}

/// Keeps a client as this thread's default until dropped (then the previous default, if
/// any, is back). Made by [`crate::WeaveClient::set_default`]. Drop it on the thread that
/// made it, before the client (records sent after the client is gone are dropped).
#[must_use = "the client is this thread's default only while the guard lives"]
pub struct DefaultGuard {
    previous: Option<Arc<Dispatch>>,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for DefaultGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultGuard").finish_non_exhaustive()
    }
}

/// Makes `d` this thread's client until the guard is dropped.
pub(crate) fn set_default(d: Arc<Dispatch>) -> DefaultGuard {
    STATE.0.fetch_add(SCOPED_ONE, Ordering::SeqCst);
    let previous = SCOPED
        .try_with(|s| s.borrow_mut().replace(d))
        .ok()
        .flatten();
    DefaultGuard {
        previous,
        _not_send: PhantomData,
    }
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = SCOPED.try_with(|s| *s.borrow_mut() = previous);
        STATE.0.fetch_sub(SCOPED_ONE, Ordering::SeqCst);
    }
}

//! The call context: which call is current, per thread and per task.
//!
//! A sync op makes its call current on the thread for the duration of the body. An async op
//! makes its call current while its future is being polled, so nesting survives `.await` and
//! moves between worker threads. Work handed to another thread or task does not inherit the
//! current call by itself; carry it explicitly:
//!
//! ```no_run
//! # async fn demo() {
//! use weave::context::{self, FutureExt as _};
//!
//! // tokio::spawn: wrap the future so it runs inside the current call.
//! let handle = tokio::spawn(async { /* ops called here are children */ }.in_current_call());
//!
//! // std::thread::spawn: take the context, enter it in the thread.
//! let ctx = context::current();
//! std::thread::spawn(move || context::in_scope(ctx, || { /* children too */ }));
//! # }
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use uuid::Uuid;

use crate::dispatch::{self, Dispatch};
use crate::record::{Msg, Usage};
use crate::redact::RedactKeys;

/// One live call: identity and the summary its descendants roll up into.
#[derive(Debug)]
pub(crate) struct CallNode {
    pub(crate) id: Uuid,
    pub(crate) trace_id: Uuid,
    pub(crate) parent: Option<Arc<CallNode>>,
    /// The scoped client the call reports to (`None`: the global one), inherited by
    /// children wherever they run.
    pub(crate) dispatch: Option<Arc<Dispatch>>,
    pub(crate) success: AtomicU64,
    pub(crate) error: AtomicU64,
    pub(crate) usage: Mutex<Option<BTreeMap<String, Usage>>>,
    /// Set once `usage` holds something, so that finishing a call without usage (the common
    /// case) does not take the lock.
    has_usage: AtomicBool,
}

impl CallNode {
    pub(crate) fn new(
        id: Uuid,
        parent: Option<Arc<CallNode>>,
        dispatch: Option<Arc<Dispatch>>,
    ) -> Self {
        let trace_id = parent.as_ref().map_or(id, |p| p.trace_id);
        CallNode {
            id,
            trace_id,
            parent,
            dispatch,
            success: AtomicU64::new(0),
            error: AtomicU64::new(0),
            usage: Mutex::new(None),
            has_usage: AtomicBool::new(false),
        }
    }

    /// A copy of this call's usage summary, if any usage was added.
    pub(crate) fn usage_snapshot(&self) -> Option<BTreeMap<String, Usage>> {
        if !self.has_usage.load(Ordering::Acquire) {
            return None;
        }
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds token usage to this call's own summary.
    pub(crate) fn add_usage(&self, model: &str, usage: &Usage) {
        let mut guard = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let map = guard.get_or_insert_with(BTreeMap::new);
        map.entry(model.to_string()).or_default().add(usage);
        self.has_usage.store(true, Ordering::Release);
    }

    /// Folds a finished child's totals into this call.
    pub(crate) fn absorb(&self, success: u64, error: u64, usage: Option<&BTreeMap<String, Usage>>) {
        self.success.fetch_add(success, Ordering::Relaxed);
        self.error.fetch_add(error, Ordering::Relaxed);
        if let Some(usage) = usage {
            for (model, u) in usage {
                self.add_usage(model, u);
            }
        }
    }
}

thread_local! {
    static CURRENT: Cell<Option<Arc<CallNode>>> = const { Cell::new(None) };
    /// A finished call's node that nothing refers to any more, kept for this thread's next
    /// call: saves an allocation and a free per call.
    static SPARE: Cell<Option<Arc<CallNode>>> = const { Cell::new(None) };
}

/// A node for a new call: this thread's spare one, else a new one.
#[inline]
pub(crate) fn new_node(
    id: Uuid,
    parent: Option<Arc<CallNode>>,
    dispatch: Option<Arc<Dispatch>>,
) -> Arc<CallNode> {
    if let Some(mut spare) = SPARE.try_with(Cell::take).ok().flatten() {
        if let Some(node) = Arc::get_mut(&mut spare) {
            node.trace_id = parent.as_ref().map_or(id, |p| p.trace_id);
            node.id = id;
            node.parent = parent;
            node.dispatch = dispatch;
            return spare;
        }
    }
    Arc::new(CallNode::new(id, parent, dispatch))
}

/// Keeps a finished call's node for this thread's next call, if nothing else refers to it.
#[inline]
pub(crate) fn recycle_node(mut node: Arc<CallNode>) {
    let Some(n) = Arc::get_mut(&mut node) else {
        return;
    };
    n.parent = None;
    n.dispatch = None;
    *n.success.get_mut() = 0;
    *n.error.get_mut() = 0;
    *n.usage.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    *n.has_usage.get_mut() = false;
    let _ = SPARE.try_with(|s| s.set(Some(node)));
}

/// The current call on this thread, if any (a new reference).
pub(crate) fn current_node() -> Option<Arc<CallNode>> {
    CURRENT.with(|c| {
        let cur = c.take();
        let out = cur.clone();
        c.set(cur);
        out
    })
}

/// Makes `node` current, returning what was current before.
pub(crate) fn replace_current(node: Option<Arc<CallNode>>) -> Option<Arc<CallNode>> {
    CURRENT.with(|c| c.replace(node))
}

/// A handle on a call, used to make it the parent of work done elsewhere.
#[derive(Clone, Debug)]
pub struct CallContext {
    node: Arc<CallNode>,
}

impl CallContext {
    /// The call's id (UUIDv7 text).
    pub fn call_id(&self) -> String {
        self.node.id.to_string()
    }

    /// The call's trace id.
    pub fn trace_id(&self) -> String {
        self.node.trace_id.to_string()
    }

    /// Runs `f` with this call current on this thread.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        in_scope(Some(self.clone()), f)
    }
}

/// The call that is current here, to hand to another thread or task.
pub fn current() -> Option<CallContext> {
    current_node().map(|node| CallContext { node })
}

/// Runs `f` with `ctx` current on this thread (or no call current for `None`).
pub fn in_scope<R>(ctx: Option<CallContext>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Option<Arc<CallNode>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(prev) = self.0.take() {
                replace_current(prev);
            }
        }
    }
    let _restore = Restore(Some(replace_current(ctx.map(|c| c.node))));
    f()
}

pin_project_lite::pin_project! {
    /// A future that runs inside a given call context. Made by [`FutureExt::in_call`] and
    /// [`FutureExt::in_current_call`].
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        ctx: Option<CallContext>,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let ctx = this.ctx.clone();
        in_scope(ctx, || this.inner.poll(cx))
    }
}

/// Carries a call context into a future, for `tokio::spawn` and friends.
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `ctx`.
    fn in_call(self, ctx: Option<CallContext>) -> WithContext<Self> {
        WithContext { inner: self, ctx }
    }
    /// Runs this future inside the call that is current now.
    fn in_current_call(self) -> WithContext<Self> {
        self.in_call(current())
    }
}

impl<F: Future> FutureExt for F {}

/// Adds token usage for `model` to the current call's summary. It rolls up into every ancestor
/// as the calls finish. Does nothing when no call is current.
pub fn add_usage(model: &str, usage: Usage) {
    CURRENT.with(|c| {
        let cur = c.take();
        if let Some(node) = &cur {
            node.add_usage(model, &usage);
        }
        c.set(cur);
    });
}

/// The client records go to here: this thread's scoped client, else the current call's,
/// else the global one.
pub(crate) fn dispatch() -> Option<Arc<Dispatch>> {
    if dispatch::any_scoped() {
        if let Some(d) = dispatch::scoped() {
            return Some(d);
        }
        if let Some(d) = current_node().and_then(|n| n.dispatch.clone()) {
            return Some(d);
        }
    }
    dispatch::global()
}

/// The redaction rule of the client records made here go to, else the default one.
pub(crate) fn redact_keys() -> RedactKeys {
    dispatch().map_or_else(RedactKeys::defaults, |d| d.redact_keys().clone())
}

/// A value's `Debug` text, redacted with [`redact_keys`] (the capture of `Debug`-only values).
pub(crate) fn redact_debug_text(text: String) -> String {
    if !text.contains(": ") {
        return text;
    }
    let redacted = match redact_keys().redact_text(&text) {
        std::borrow::Cow::Owned(t) => Some(t),
        std::borrow::Cow::Borrowed(_) => None,
    };
    redacted.unwrap_or(text)
}

/// Adds attributes to the current call (merged into its `attributes`, after redaction), e.g.
/// the settings a scorer ran with. Does nothing when no call is current.
pub fn add_attributes(attrs: serde_json::Value) {
    let Some(node) = current_node() else { return };
    let d = match &node.dispatch {
        Some(d) => Some(d.clone()),
        None => dispatch::global(),
    };
    if let Some(d) = d {
        d.send(Msg::Attributes {
            id: node.id,
            attrs: Box::new(attrs),
        });
    }
}

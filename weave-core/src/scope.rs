//! What a caller scopes around the calls it makes: attributes every call started inside the
//! scope carries ([`attributes`], like `weave.attributes` in W&B Weave), and the handle of
//! the call a closure or future made ([`call`], like Weave's `op.call()`).
//!
//! Both live on the calling thread while the closure runs, or while the future is polled
//! ([`with_attributes`], [`call_async`]), so they follow `.await` but not work handed to
//! another thread or task. Until a program first uses them, starting a call pays one relaxed
//! atomic load for them.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::{Map, Value};
use uuid::Uuid;

/// Set once any scope was ever entered: calls check the thread's scopes only after that.
static USED: AtomicBool = AtomicBool::new(false);

/// The scopes active on this thread.
#[derive(Default)]
struct Scopes {
    /// Merged attributes of the enclosing `attributes` scopes (inner keys win).
    attributes: Option<Arc<Map<String, Value>>>,
    /// The innermost `call` scope waiting for its call.
    capture: Option<Capture>,
}

struct Capture {
    /// The call current when the scope began: the captured call is its child.
    parent: Option<Uuid>,
    got: Option<CallRef>,
}

thread_local! {
    static SCOPES: RefCell<Scopes> = RefCell::new(Scopes::default());
}

/// The identity of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallRef {
    /// The call's id (UUIDv7 text), as `weave call ID` and `weave eval ID` take it.
    pub id: String,
    /// Its trace's id (the root call's id).
    pub trace_id: String,
}

/// On a call's start: the scoped attributes it carries, and the call handed to the
/// innermost `call` scope when it is that scope's first direct call.
#[inline]
pub(crate) fn on_start(
    parent: Option<Uuid>,
    id: Uuid,
    trace_id: Uuid,
) -> Option<Arc<Map<String, Value>>> {
    if !USED.load(Ordering::Relaxed) {
        return None;
    }
    SCOPES
        .try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(c) = &mut s.capture {
                if c.got.is_none() && c.parent == parent {
                    c.got = Some(CallRef {
                        id: id.to_string(),
                        trace_id: trace_id.to_string(),
                    });
                }
            }
            s.attributes.clone()
        })
        .ok()
        .flatten()
}

/// Restores a thread's scope on drop (also when the closure panics).
struct Restore<T, F: FnMut(&mut Scopes, T) -> T> {
    saved: Option<T>,
    put: F,
}

impl<T, F: FnMut(&mut Scopes, T) -> T> Drop for Restore<T, F> {
    fn drop(&mut self) {
        if let Some(v) = self.saved.take() {
            let _ = SCOPES.try_with(|s| (self.put)(&mut s.borrow_mut(), v));
        }
    }
}

/// Runs `f` with `value` put in this thread's scopes, then puts back what it replaced;
/// returns `f`'s result and `value` as `f` left it.
fn enter<T, R>(value: T, put: fn(&mut Scopes, T) -> T, f: impl FnOnce() -> R) -> (R, Option<T>) {
    USED.store(true, Ordering::Relaxed);
    let previous = SCOPES.with(|s| put(&mut s.borrow_mut(), value));
    let mut restore = Restore {
        saved: Some(previous),
        put,
    };
    let out = f();
    let mine = restore
        .saved
        .take()
        .map(|prev| SCOPES.with(|s| put(&mut s.borrow_mut(), prev)));
    (out, mine)
}

fn put_attributes(
    s: &mut Scopes,
    v: Option<Arc<Map<String, Value>>>,
) -> Option<Arc<Map<String, Value>>> {
    std::mem::replace(&mut s.attributes, v)
}

fn put_capture(s: &mut Scopes, v: Option<Capture>) -> Option<Capture> {
    std::mem::replace(&mut s.capture, v)
}

/// The enclosing scopes' attributes with `attrs` merged over them.
fn merged(attrs: Map<String, Value>) -> Option<Arc<Map<String, Value>>> {
    let outer = SCOPES.with(|s| s.borrow().attributes.clone());
    let mut m = outer.map(|o| (*o).clone()).unwrap_or_default();
    m.extend(attrs);
    Some(Arc::new(m))
}

/// Runs `f` so that every call started in it (on this thread) carries `attrs` in its
/// `attributes`, as W&B Weave's `with weave.attributes({...})`. Scopes nest: an inner
/// scope's attributes are merged over the outer ones (its keys win). Attributes are
/// redacted like inputs; the client's own `weave` key cannot be replaced.
///
/// ```no_run
/// # #[weave::op] fn answer(q: &str) -> String { q.to_string() }
/// let out = weave::attributes(serde_json::json!({"env": "prod", "user": "u1"}), || answer("hi"));
/// ```
///
/// `attrs` is a JSON object; anything else is ignored with a warning (as by
/// [`add_attributes`](crate::add_attributes)).
pub fn attributes<R>(attrs: Value, f: impl FnOnce() -> R) -> R {
    enter(merged(object(attrs)), put_attributes, f).0
}

/// The object's entries; a warning and nothing for other values.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            tracing::warn!("weave: attributes takes a JSON object; ignored {other}");
            Map::new()
        }
    }
}

pin_project_lite::pin_project! {
    /// A future whose calls carry scoped attributes: see [`with_attributes`].
    pub struct WithAttributes<F> {
        #[pin]
        inner: F,
        attrs: Option<Arc<Map<String, Value>>>,
        merged: bool,
    }
}

impl<F: Future> Future for WithAttributes<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.merged {
            // Merged over the scopes of where it is first polled.
            let own = this.attrs.take().map(|a| (*a).clone()).unwrap_or_default();
            *this.attrs = merged(own);
            *this.merged = true;
        }
        let attrs = this.attrs.clone();
        let inner = this.inner;
        enter(attrs, put_attributes, || inner.poll(cx)).0
    }
}

/// [`attributes`] for a future: every call started while it is polled carries `attrs`.
pub fn with_attributes<F: Future>(attrs: Value, fut: F) -> WithAttributes<F> {
    USED.store(true, Ordering::Relaxed);
    WithAttributes {
        inner: fut,
        attrs: Some(Arc::new(object(attrs))),
        merged: false,
    }
}

/// Runs `f` and returns its result with the handle of the op call it made: the first call
/// started directly in `f` (calls nested inside that one are its children, not candidates).
/// `None` when no call was recorded (no client, or `f` called no op). An async op's call
/// starts when its future is first polled, so for those use [`call_async`]. Like W&B Weave's
/// `op.call()`:
///
/// ```no_run
/// # #[weave::op] fn add(a: i32, b: i32) -> i32 { a + b }
/// let (sum, call) = weave::call(|| add(1, 2));
/// if let Some(call) = call {
///     println!("weave call {}", call.id);
/// }
/// ```
pub fn call<R>(f: impl FnOnce() -> R) -> (R, Option<CallRef>) {
    let capture = Capture {
        parent: crate::context::current_node().map(|n| n.id),
        got: None,
    };
    let (out, mine) = enter(Some(capture), put_capture, f);
    (out, mine.flatten().and_then(|c| c.got))
}

pin_project_lite::pin_project! {
    /// The future of [`call_async`].
    pub struct CallAsync<F> {
        #[pin]
        inner: F,
        capture: Option<Capture>,
        started: bool,
    }
}

impl<F: Future> Future for CallAsync<F> {
    type Output = (F::Output, Option<CallRef>);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.started {
            *this.started = true;
            if let Some(c) = this.capture.as_mut() {
                c.parent = crate::context::current_node().map(|n| n.id);
            }
        }
        let capture = this.capture.take();
        let inner = this.inner;
        let (polled, mine) = enter(capture, put_capture, || inner.poll(cx));
        *this.capture = mine.flatten();
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => Poll::Ready((out, this.capture.take().and_then(|c| c.got))),
        }
    }
}

/// [`call`] for a future, e.g. an async op or `Evaluation::evaluate`: resolves to its output
/// and the handle of the first call it started directly.
///
/// ```no_run
/// # #[weave::op] async fn fetch(n: u32) -> u32 { n }
/// # async fn demo() {
/// let (n, call) = weave::call_async(fetch(3)).await;
/// # }
/// ```
pub fn call_async<F: Future>(fut: F) -> CallAsync<F> {
    USED.store(true, Ordering::Relaxed);
    CallAsync {
        inner: fut,
        capture: Some(Capture {
            parent: None,
            got: None,
        }),
        started: false,
    }
}

//! The life of one call: start (capture inputs, become current), run the body, finish (capture
//! output or error, roll the summary up, hand the record to the sink).

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock;
use crate::context::{self, CallNode};
use crate::dispatch::{self, Dispatch};
use crate::ids::new_call_id;
use crate::queue::{self, ThreadBuffer};
use crate::record::{CallMsg, End, Exception, Inputs, OpInfo, Start, StartExtra};
use crate::scope;

/// What a call produced.
#[doc(hidden)]
pub struct Outcome {
    pub(crate) output: Value,
    pub(crate) exception: Option<Exception>,
}

impl Outcome {
    /// A returned value.
    pub fn ok(output: Value) -> Self {
        Outcome {
            output,
            exception: None,
        }
    }
    /// An `Err` returned.
    pub fn err(exception: Exception) -> Self {
        Outcome {
            output: Value::Null,
            exception: Some(exception),
        }
    }
    fn panic(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_string()
        };
        Outcome::err(Exception {
            kind: "panic".into(),
            message,
            traceback: take_panic_location().unwrap_or_default(),
        })
    }
}

/// Starts a call of a sync op; `None` (one atomic load) when tracing is off.
#[doc(hidden)]
#[inline]
pub fn start_call(
    op: &'static OpInfo,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
) -> Option<ActiveCall> {
    if !dispatch::enabled() {
        return None;
    }
    begin(op, self_type, inputs, true, None)
}

/// Starts a call of an async op: like [`start_call`] but the call becomes current only while
/// its future is polled.
#[doc(hidden)]
#[inline]
pub fn start_async_call(
    op: &'static OpInfo,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
) -> Option<AsyncCall> {
    if !dispatch::enabled() {
        return None;
    }
    begin(op, self_type, inputs, false, None).map(|call| AsyncCall { call })
}

/// How an op's display name is made (`#[weave::op(display_name = ...)]`).
#[doc(hidden)]
pub enum DisplayName {
    /// The same for every call.
    Static(&'static str),
    /// Computed from the call's inputs (after `postprocess_inputs`).
    Computed(fn(&Map<String, Value>) -> String),
}

/// Options of an op that change what its calls record, from `#[weave::op(display_name = ...,
/// postprocess_inputs = ...)]`. Ops without them start through [`start_call`].
#[doc(hidden)]
pub struct OpHooks {
    /// The call's display name.
    pub display_name: Option<DisplayName>,
    /// Rewrites the captured inputs before they are recorded.
    pub postprocess_inputs: Option<PostprocessInputs>,
}

/// A `postprocess_inputs` hook: the captured inputs in, the inputs to record out.
#[doc(hidden)]
pub type PostprocessInputs = fn(Map<String, Value>) -> Map<String, Value>;

/// [`start_call`] for an op with [`OpHooks`].
#[doc(hidden)]
#[inline]
pub fn start_call_with(
    op: &'static OpInfo,
    hooks: &OpHooks,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
) -> Option<ActiveCall> {
    if !dispatch::enabled() {
        return None;
    }
    begin(op, self_type, inputs, true, Some(hooks))
}

/// [`start_async_call`] for an op with [`OpHooks`].
#[doc(hidden)]
#[inline]
pub fn start_async_call_with(
    op: &'static OpInfo,
    hooks: &OpHooks,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
) -> Option<AsyncCall> {
    if !dispatch::enabled() {
        return None;
    }
    begin(op, self_type, inputs, false, Some(hooks)).map(|call| AsyncCall { call })
}

/// The rarer parts of a start: the op's hooks applied to the captured inputs, and the
/// attributes of the scopes the call started in.
#[cold]
fn start_extra(
    hooks: Option<&OpHooks>,
    captured: &mut Inputs,
    attributes: Option<Arc<Map<String, Value>>>,
) -> Box<StartExtra> {
    let mut extra = StartExtra {
        attributes,
        ..StartExtra::default()
    };
    if let Some(h) = hooks {
        let computed = matches!(h.display_name, Some(DisplayName::Computed(_)));
        if h.postprocess_inputs.is_some() || computed {
            let mut map: Map<String, Value> = std::mem::take(captured)
                .into_values()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if let Some(post) = h.postprocess_inputs {
                map = post(map);
            }
            if let Some(DisplayName::Computed(f)) = h.display_name {
                extra.display_name = Some(f(&map));
            }
            extra.inputs = Some(map);
        }
        if let Some(DisplayName::Static(name)) = h.display_name {
            extra.display_name = Some(name.to_string());
        }
    }
    Box::new(extra)
}

/// The client a new call reports to: its registry id and, when it is a scoped client, the
/// client (this thread's scoped client, else the parent's, else the global one).
#[inline]
fn route(parent: Option<&CallNode>) -> Option<(u64, Option<Arc<Dispatch>>)> {
    if dispatch::any_scoped() {
        let d = dispatch::scoped().or_else(|| parent.and_then(|p| p.dispatch.clone()));
        if let Some(d) = d {
            return Some((d.id(), Some(d)));
        }
    }
    let id = dispatch::global_id();
    (id != 0).then_some((id, None))
}

/// Appends a record to this thread's buffer of the registry `id`, registering one with the
/// client if this thread has none.
#[inline]
fn send_local(id: u64, scoped: Option<&Arc<Dispatch>>, msg: CallMsg) {
    if let Some(msg) = queue::push_local(id, msg) {
        send_registering(id, scoped, msg)
    }
}

#[cold]
fn send_registering(id: u64, scoped: Option<&Arc<Dispatch>>, msg: CallMsg) {
    let d = match scoped {
        Some(d) => Some(d.clone()),
        None => dispatch::global(),
    };
    match d {
        Some(d) => {
            if d.id() != id {
                // The global client was replaced while the call ran, on a thread that has
                // used the new one since: the old client's buffers are out of reach from
                // here, so the record goes to the new client (the same store, when `init`
                // was called again with the same settings).
                tracing::debug!("weave: a call record of a replaced client goes to the new one");
            }
            d.local_buffer().push(msg)
        }
        None => tracing::debug!("weave: a call record after the client was closed is dropped"),
    }
}

fn begin(
    op: &'static OpInfo,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
    make_current: bool,
    hooks: Option<&OpHooks>,
) -> Option<ActiveCall> {
    let parent = context::current_node();
    let (registry, scoped) = route(parent.as_deref())?;
    // An async call may end on another thread: its end must follow its start into the same
    // buffer, so it keeps that buffer.
    let buffer = if make_current {
        None
    } else {
        Some(match &scoped {
            Some(d) => d.local_buffer(),
            None => dispatch::global_buffer()?,
        })
    };
    let started_at = clock::now();
    let id = new_call_id(clock::unix_millis(started_at));
    let parent_id = parent.as_ref().map(|p| p.id);
    let node = context::new_node(id, parent, scoped.clone());
    let mut captured = Inputs::default();
    inputs(&mut captured);
    let attributes = scope::on_start(parent_id, id, node.trace_id);
    let extra = (hooks.is_some() || attributes.is_some())
        .then(|| start_extra(hooks, &mut captured, attributes));
    let start = CallMsg::Start(Start {
        id,
        trace_id: node.trace_id,
        parent_id,
        op,
        self_type,
        started_at,
        inputs: captured,
        extra,
    });
    let route = match buffer {
        Some(buffer) => {
            buffer.push(start);
            Route::Buffer(buffer)
        }
        None => {
            send_local(registry, scoped.as_ref(), start);
            Route::Local { registry, scoped }
        }
    };
    // A sync call's node lives in this thread's current-call slot while it runs, and is
    // taken back from there when it finishes: no reference counting per call.
    let (node, previous) = if make_current {
        (None, Some(context::replace_current(Some(node))))
    } else {
        (Some(node), None)
    };
    Some(ActiveCall {
        id,
        node,
        route,
        previous,
        finished: false,
    })
}

/// Where a call's end record goes: where its start went.
enum Route {
    /// This thread's buffer of the registry (a sync call ends on the thread it started on).
    Local {
        registry: u64,
        scoped: Option<Arc<Dispatch>>,
    },
    /// The buffer the start went to (an async call may end on another thread).
    Buffer(Arc<ThreadBuffer>),
}

/// A started call. Finishing it sends the end record; dropping it unfinished records the call
/// as cancelled.
#[doc(hidden)]
pub struct ActiveCall {
    id: Uuid,
    /// The call's node, unless it is this thread's current call (a sync call, while it runs).
    node: Option<Arc<CallNode>>,
    route: Route,
    /// What was current before this call, when it made itself current.
    previous: Option<Option<Arc<CallNode>>>,
    finished: bool,
}

impl ActiveCall {
    /// Runs a sync body, records its outcome (panics are recorded, then resumed).
    pub fn run<R>(mut self, body: impl FnOnce() -> R, capture: impl FnOnce(&R) -> Outcome) -> R {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(out) => {
                let outcome = capture(&out);
                self.finish(outcome);
                out
            }
            Err(payload) => {
                self.finish(Outcome::panic(&*payload));
                resume_unwind(payload)
            }
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let node = match self.previous.take() {
            Some(prev) => match context::replace_current(prev) {
                Some(node) if node.id == self.id => Some(node),
                // The current call was changed under this one and not put back (scopes put
                // it back, also on panic): the call's subtree summary is lost, not the call.
                _ => None,
            },
            None => self.node.take(),
        };
        let ended_at = clock::now();
        let failed = outcome.exception.is_some();
        let (success, error, usage) = match &node {
            Some(node) => {
                if failed {
                    node.error.fetch_add(1, Ordering::Relaxed);
                } else {
                    node.success.fetch_add(1, Ordering::Relaxed);
                }
                let success = node.success.load(Ordering::Relaxed);
                let error = node.error.load(Ordering::Relaxed);
                let usage = node.usage_snapshot();
                if let Some(parent) = &node.parent {
                    parent.absorb(success, error, usage.as_ref());
                }
                (success, error, usage)
            }
            None => (u64::from(!failed), u64::from(failed), None),
        };
        let end = CallMsg::End(End {
            id: self.id,
            ended_at,
            output: outcome.output.into(),
            exception: outcome.exception.map(Box::new),
            success,
            error,
            usage,
        });
        match &self.route {
            Route::Local { registry, scoped } => send_local(*registry, scoped.as_ref(), end),
            Route::Buffer(buffer) => buffer.push(end),
        }
        if let Some(node) = node {
            context::recycle_node(node);
        }
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Outcome::err(Exception {
                kind: "Cancelled".into(),
                message: "the call was dropped before it finished".into(),
                traceback: String::new(),
            }));
        }
    }
}

/// A started call of an async op.
#[doc(hidden)]
pub struct AsyncCall {
    call: ActiveCall,
}

impl AsyncCall {
    /// Wraps the op's body future: current while polled, outcome recorded on completion.
    pub fn run<F, C>(self, fut: F, capture: C) -> CallFuture<F, C>
    where
        F: Future,
        C: FnOnce(&F::Output) -> Outcome,
    {
        CallFuture {
            inner: fut,
            state: Some((self.call, capture)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an async op's call.
    #[doc(hidden)]
    pub struct CallFuture<F, C> {
        #[pin]
        inner: F,
        state: Option<(ActiveCall, C)>,
    }
}

impl<F, C> Future for CallFuture<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> Outcome,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let node = match this.state {
            Some((
                ActiveCall {
                    node: Some(node), ..
                },
                _,
            )) => node.clone(),
            _ => return this.inner.poll(cx),
        };
        let prev = context::replace_current(Some(node));
        let polled = catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)));
        context::replace_current(prev);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                if let Some((mut call, capture)) = this.state.take() {
                    let outcome = capture(&out);
                    call.finish(outcome);
                }
                Poll::Ready(out)
            }
            Err(payload) => {
                if let Some((mut call, _)) = this.state.take() {
                    call.finish(Outcome::panic(&*payload));
                }
                resume_unwind(payload)
            }
        }
    }
}

// --- panics ------------------------------------------------------------------------------

thread_local! {
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that remembers where a panic happened, for the call's
/// exception; the previous hook still runs.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                let text = format!("panicked at {}:{}:{}", loc.file(), loc.line(), loc.column());
                let _ = PANIC_LOCATION.try_with(|p| *p.borrow_mut() = Some(text));
            }
            previous(info)
        }));
    });
}

/// Where the last panic on this thread happened, if the hook saw it.
fn take_panic_location() -> Option<String> {
    PANIC_LOCATION
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten()
}

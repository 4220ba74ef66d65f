//! The life of one call: start (capture inputs, become current), run the body, finish (capture
//! output or error, roll the summary up, hand the record to the sink).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use serde_json::Value;

use crate::capture::Exception;
use crate::client;
use crate::context::{self, CallNode};
use crate::sink::queue::{CallMsg, ThreadBuffer};
use crate::sink::{EndRecord, StartRecord};

/// Static description of an op, emitted by `#[weave::op]` into the function.
#[doc(hidden)]
#[derive(Debug)]
pub struct OpInfo {
    /// Function name, or the `name = "..."` given.
    pub name: &'static str,
    /// Whether `name` was given explicitly.
    pub explicit_name: bool,
    /// Digest of `code`.
    pub digest: &'static str,
    /// Source of the function.
    pub code: &'static str,
    /// `module_path!()` where the op is defined.
    pub module_path: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()`.
    pub line: u32,
}

impl OpInfo {
    /// The op's name as stored: `Type.method` for methods (unless named explicitly).
    pub(crate) fn full_name(&self, self_type: Option<&str>) -> String {
        match self_type {
            Some(t) if !self.explicit_name => format!("{}.{}", short_type_name(t), self.name),
            _ => self.name.to_string(),
        }
    }
}

/// `a::b::Foo<c::D>` -> `Foo`.
pub(crate) fn short_type_name(t: &str) -> &str {
    let base = t.split('<').next().unwrap_or(t);
    base.rsplit("::").next().unwrap_or(base)
}

/// Inputs kept inline (no allocation) in a call's start record; more spill to a `Vec`.
const INLINE_INPUTS: usize = 2;

/// Captured inputs of a call, in argument order.
#[doc(hidden)]
pub struct Inputs {
    len: usize,
    inline: [(&'static str, Value); INLINE_INPUTS],
    spill: Vec<(&'static str, Value)>,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            len: 0,
            inline: [const { ("", Value::Null) }; INLINE_INPUTS],
            spill: Vec::new(),
        }
    }
}

impl Inputs {
    /// Adds one input.
    pub fn push(&mut self, name: &'static str, value: Value) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = (name, value),
            None => self.spill.push((name, value)),
        }
        self.len += 1;
    }

    /// The inputs, in argument order.
    pub(crate) fn into_values(self) -> impl Iterator<Item = (&'static str, Value)> {
        let inline = self.len.min(INLINE_INPUTS);
        self.inline.into_iter().take(inline).chain(self.spill)
    }
}

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
            traceback: client::take_panic_location().unwrap_or_default(),
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
    if !client::enabled() {
        return None;
    }
    begin(op, self_type, inputs, true)
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
    if !client::enabled() {
        return None;
    }
    begin(op, self_type, inputs, false).map(|call| AsyncCall { call })
}

fn begin(
    op: &'static OpInfo,
    self_type: Option<&'static str>,
    inputs: impl FnOnce(&mut Inputs),
    make_current: bool,
) -> Option<ActiveCall> {
    let buffer = client::call_buffer()?;
    let started_at = SystemTime::now();
    let id = client::new_call_id(started_at);
    let parent = context::current_node();
    let parent_id = parent.as_ref().map(|p| p.id);
    let node = Arc::new(CallNode::new(id, parent));
    let mut captured = Inputs::default();
    inputs(&mut captured);
    buffer.push(CallMsg::Start(StartRecord {
        id,
        trace_id: node.trace_id,
        parent_id,
        op,
        self_type,
        started_at,
        inputs: captured,
    }));
    let previous = if make_current {
        Some(context::replace_current(Some(node.clone())))
    } else {
        None
    };
    Some(ActiveCall {
        node,
        buffer,
        previous,
        finished: false,
    })
}

/// A started call. Finishing it sends the end record; dropping it unfinished records the call
/// as cancelled.
#[doc(hidden)]
pub struct ActiveCall {
    node: Arc<CallNode>,
    /// Where the start record went; the end record follows it there.
    buffer: Arc<ThreadBuffer>,
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
        if let Some(prev) = self.previous.take() {
            context::replace_current(prev);
        }
        let ended_at = SystemTime::now();
        let node = &self.node;
        if outcome.exception.is_some() {
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
        self.buffer.push(CallMsg::End(EndRecord {
            id: node.id,
            ended_at,
            output: outcome.output,
            exception: outcome.exception.map(Box::new),
            success,
            error,
            usage,
        }));
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
            Some((call, _)) => call.node.clone(),
            None => return this.inner.poll(cx),
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

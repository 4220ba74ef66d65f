//! # weave
//!
//! Instrumentation and evaluation for LLM applications, in the manner of W&B Weave.
//!
//! ```no_run
//! #[weave::op]
//! fn add(a: i32, b: i32) -> i32 {
//!     a + b
//! }
//!
//! let client = weave::init("my-team/my-project").unwrap();
//! add(1, 2); // recorded: inputs, output, timing, op version
//! client.flush().unwrap(); // every record written, or how many were not
//! ```
//!
//! Data flows one way: the macros call [`__private`] -> the call path (`call`, [`context`],
//! `dispatch`) queues plain records (`record`) in per-thread buffers -> the writer thread
//! encodes each round into W&B Weave's wire types ([`sink::Batch`]) -> a [`sink::TraceSink`]
//! (the SQLite [`store`], or another sink) <- readers ([`store::TraceStore`]: the CLI, a
//! server). Evaluations ([`eval`]) are built from ops and use the same path; the client
//! (`init`, [`Settings`]) puts it together.

extern crate self as weave;

mod batch;
mod call;
mod capture;
mod client;
mod clock;
pub mod config;
pub mod context;
mod dispatch;
mod encode;
mod error;
pub mod eval;
mod ids;
mod model;
mod queue;
mod record;
pub mod redact;
mod scope;
pub mod sink;

pub use client::{flush, init, Settings, WeaveClient, DEFAULT_FLUSH_TIMEOUT};
pub use config::{default_db_path, parse_project, DB_ENV, DEFAULT_DB};
pub use context::{add_attributes, add_usage};
pub use dispatch::DefaultGuard;
pub use encode::MAX_VALUE_BYTES;
pub use error::{Error, FlushError};
pub use model::{model_version, Model, ModelVersion};
pub use queue::DEFAULT_MAX_BUFFERED;
pub use record::Usage;
pub use redact::{default_redact_keys, REDACTED};
pub use scope::{
    attributes, call, call_async, with_attributes, CallAsync, CallRef, WithAttributes,
};
/// Trace stores: the `TraceStore` trait and the SQLite store.
pub use weave_store as store;
/// Weave's wire types, digests and refs.
pub use weave_types as types;
pub use weave_types::{digest, refs};

/// Records every call of a function as a weave call: inputs, output or error, timing,
/// parent/child nesting and the op's version.
///
/// Works on free functions, `async fn`, methods (`&self`, `&mut self`, `self`), generic
/// functions and `impl Trait` arguments and returns. A function returning a `Result` (to the
/// type system: `anyhow::Result<T>` and aliases such as `type Fallible<T> = Result<T, E>`
/// count; a type of your own named `Result` does not) records an `Err` as the call's exception
/// (the value is still returned); a panic is recorded, then resumed.
///
/// Options, as in `tracing::instrument`:
/// - `name = "..."`: the op's name (default: the function name; `Type.method` for methods).
/// - `skip(a, b)`: do not record these arguments; `skip_all`: record none.
/// - `serialize(a, b)`: record these arguments as JSON, adding `serde::Serialize` to their
///   bounds (`T: Serialize`, `impl Trait + Serialize`): for generic and `impl Trait`
///   arguments, whose capture otherwise follows their declared bounds only (below).
/// - `display_name = "..."`, or `display_name = path::to::f` with
///   `f: fn(&serde_json::Map<String, Value>) -> String` computing it from the call's inputs
///   (after `postprocess_inputs`), like W&B Weave's `call_display_name`. Stored in the call's
///   `display_name`.
/// - `postprocess_inputs = f` with `f: fn(Map<String, Value>) -> Map<String, Value>`: rewrites
///   the captured inputs before they are recorded (redaction still applies after it).
/// - `postprocess_output = f` with `f: fn(&T) -> U`: records `f(&output)` (for a `Result`,
///   `f(&ok_value)`) instead of the output; `U` is captured like any value.
///
/// How a value is recorded is decided where the op is defined, from what the compiler knows
/// about its type there: a model as its ref, a `serde::Serialize` value as its JSON, a `Debug`
/// value as its debug text, anything else as its type name. A concrete type is judged by
/// everything it implements; a generic `T` or an `impl Trait` argument only by its declared
/// bounds, so `T: Debug` records Debug text even when the caller passes a `Serialize` value
/// (use `serialize(...)`). Values larger than 1 MiB are truncated with a marker. Keys that
/// look like secrets are redacted.
///
/// See also [`attributes`] (attributes for every call in a scope) and [`call()`] (the id of
/// the call a closure made). When no client is initialised an op costs one atomic load.
pub use weave_macros::op;

/// Marks an inherent `impl` block whose `#[weave::op]` methods belong to a model's version:
/// editing one of them gives the model (`#[derive(Model)]`) a new version.
///
/// ```
/// #[derive(weave::Model, serde::Serialize)]
/// struct Echo { prefix: String }
///
/// #[weave::ops]
/// impl Echo {
///     #[weave::op]
///     fn predict(&self, input: &str) -> String { format!("{}{input}", self.prefix) }
/// }
/// ```
pub use weave_macros::ops;

/// Derives [`Model`]: the struct's fields (except `#[weave(skip)]` ones) are its attributes.
pub use weave_macros::Model;

/// Support for the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{
        start_async_call, start_async_call_with, start_call, start_call_with, ActiveCall,
        AsyncCall, CallFuture, DisplayName, OpHooks, Outcome,
    };
    /// Value capture (autoref specialisation), for the macros.
    pub mod capture {
        pub use crate::capture::*;
    }
    pub use crate::model::{MethodOp, ModelOps, RegisteredOp};
    pub use crate::record::{Inputs, OpInfo};
    pub use inventory;
    pub use serde::Serialize;
    pub use serde_json::{Map, Value};
}

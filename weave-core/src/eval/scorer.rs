//! Scorers: ops that look at a dataset row and the model's output and return a score.

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::context;

/// Errors from user code (predict, scorers).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed future returned by [`Scorer::score`].
pub type ScoreFuture = Pin<Box<dyn Future<Output = Result<Value, BoxError>> + Send + 'static>>;

/// Scores one model output for one row of type `Row`. The row type is part of the type: an
/// evaluation only accepts scorers for its own row and output types, so a mismatch is a compile
/// error.
///
/// Most scorers are `#[weave::op]` functions, sync or async, wrapped with
/// [`scorer!`](crate::scorer!) / [`try_scorer!`](crate::try_scorer!) (named after the
/// function) or [`scorer`] / [`try_scorer`]; implement the trait for scorers with state.
pub trait Scorer<Row, Out>: Send + Sync + 'static {
    /// The name the score is summarised under.
    fn name(&self) -> &str;
    /// Computes the score: a bool, a number, or a (nested) map of them.
    fn score(&self, row: Arc<Row>, output: Arc<Out>) -> ScoreFuture;
    /// Which way the score is better, when declared (see [`lower_is_better`]); stored with
    /// the evaluation as `score_directions`, for comparisons.
    fn direction(&self) -> Option<Direction> {
        None
    }
}

/// Which way a score is better. Comparisons (`weave compare`) read it from the evaluation's
/// stored object: `score_directions: {"<scorer>": "higher_is_better" | "lower_is_better"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More is better (accuracy, pass rate).
    HigherIsBetter,
    /// Less is better (an error, a distance, a latency).
    LowerIsBetter,
}

impl Direction {
    /// `higher_is_better` or `lower_is_better`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

/// A scorer with a declared [`Direction`]; made by [`lower_is_better`] / [`higher_is_better`].
pub struct Directed<S> {
    inner: S,
    direction: Direction,
}

/// Declares that less of this scorer's numbers is better: `lower_is_better(scorer!(abs_err))`.
pub fn lower_is_better<S>(scorer: S) -> Directed<S> {
    Directed {
        inner: scorer,
        direction: Direction::LowerIsBetter,
    }
}

/// Declares that more of this scorer's numbers is better.
pub fn higher_is_better<S>(scorer: S) -> Directed<S> {
    Directed {
        inner: scorer,
        direction: Direction::HigherIsBetter,
    }
}

impl<Row, Out, S: Scorer<Row, Out>> Scorer<Row, Out> for Directed<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn score(&self, row: Arc<Row>, output: Arc<Out>) -> ScoreFuture {
        self.inner.score(row, output)
    }
    fn direction(&self) -> Option<Direction> {
        Some(self.direction)
    }
}

/// Marks a [`ScorerFn`] that is a plain function.
#[derive(Debug)]
pub enum SyncScorer {}
/// Marks a [`ScorerFn`] that is an `async fn` (or a closure returning a future).
#[derive(Debug)]
pub enum AsyncScorer {}

/// A function that scores: `fn(&Row, &Out) -> S` or `async fn(&Row, &Out) -> S`, e.g. any
/// `#[weave::op]` function of that shape. `Kind` ([`SyncScorer`] or [`AsyncScorer`]) is
/// inferred; callers never name it.
pub trait ScorerFn<Row, Out, Kind>: Send + Sync + 'static {
    /// What the function returns.
    type Score;
    /// Runs it to the end on this (blocking-pool) thread.
    fn run(&self, row: &Row, output: &Out) -> Self::Score;
}

impl<Row, Out, S, F> ScorerFn<Row, Out, (SyncScorer, S)> for F
where
    F: Fn(&Row, &Out) -> S + Send + Sync + 'static,
{
    type Score = S;
    fn run(&self, row: &Row, output: &Out) -> S {
        self(row, output)
    }
}

impl<Row, Out, S, F> ScorerFn<Row, Out, (AsyncScorer, S)> for F
where
    F: AsyncFn(&Row, &Out) -> S + Send + Sync + 'static,
{
    type Score = S;
    fn run(&self, row: &Row, output: &Out) -> S {
        // On a blocking-pool thread, inside the runtime: the future need not be `Send`, and
        // it may use the runtime (timers, I/O, spawning).
        tokio::runtime::Handle::current().block_on(self(row, output))
    }
}

/// Turns a scorer's return value into a score or its error.
trait IntoScore {
    fn into_score(self) -> Result<Value, BoxError>;
}

/// A plain value.
struct Plain<S>(S);
impl<S: Serialize> IntoScore for Plain<S> {
    fn into_score(self) -> Result<Value, BoxError> {
        serde_json::to_value(self.0).map_err(|e| -> BoxError { e.to_string().into() })
    }
}

/// A `Result`: `Err` is the scorer's error for the row.
struct Fallible<S, E>(Result<S, E>);
impl<S: Serialize, E: Display> IntoScore for Fallible<S, E> {
    fn into_score(self) -> Result<Value, BoxError> {
        match self.0 {
            Ok(s) => Plain(s).into_score(),
            Err(e) => Err(e.to_string().into()),
        }
    }
}

struct FnScorer<F, Row, Out, Kind, Sc, W> {
    name: String,
    f: Arc<F>,
    wrap: fn(Sc) -> W,
    _types: PhantomData<fn(&Row, &Out, Kind)>,
}

/// A scorer from a function returning a score (a bool, a number, or a serialisable map of
/// them), sync or async: `scorer("exact", exact)`. It runs on the blocking pool, inside the
/// current call, so that a `#[weave::op]` scorer is a child of `Evaluation.predict_and_score`.
/// [`scorer!`](crate::scorer!) takes the name from the function.
pub fn scorer<Row, Out, Kind, S, F>(name: impl Into<String>, f: F) -> impl Scorer<Row, Out>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    Kind: 'static,
    S: Serialize + 'static,
    F: ScorerFn<Row, Out, Kind, Score = S>,
{
    FnScorer {
        name: name.into(),
        f: Arc::new(f),
        wrap: Plain::<S>,
        _types: PhantomData,
    }
}

/// A scorer from a function returning `Result` (sync or async); an `Err` is recorded as that
/// scorer's error for the row, without touching the other scorers' results.
/// [`try_scorer!`](crate::try_scorer!) takes the name from the function.
pub fn try_scorer<Row, Out, Kind, S, E, F>(name: impl Into<String>, f: F) -> impl Scorer<Row, Out>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    Kind: 'static,
    S: Serialize + 'static,
    E: Display + 'static,
    F: ScorerFn<Row, Out, Kind, Score = Result<S, E>>,
{
    FnScorer {
        name: name.into(),
        f: Arc::new(f),
        wrap: Fallible::<S, E>,
        _types: PhantomData,
    }
}

/// The name a scorer gets from a function path: its last segment (`checks::exact` ->
/// `exact`), which is the op's name unless the op was given another.
#[doc(hidden)]
pub fn __scorer_name(path: &str) -> String {
    path.rsplit("::").next().unwrap_or(path).trim().to_string()
}

/// A scorer named after its function: `weave::scorer!(exact)` is
/// `weave::eval::scorer("exact", exact)`. Sync and async functions alike.
#[macro_export]
macro_rules! scorer {
    ($f:path) => {
        $crate::eval::scorer($crate::eval::__scorer_name(stringify!($f)), $f)
    };
}

/// A scorer named after its function returning `Result`: `weave::try_scorer!(picky)` is
/// `weave::eval::try_scorer("picky", picky)`.
#[macro_export]
macro_rules! try_scorer {
    ($f:path) => {
        $crate::eval::try_scorer($crate::eval::__scorer_name(stringify!($f)), $f)
    };
}

impl<Row, Out, Kind, Sc, W, F> Scorer<Row, Out> for FnScorer<F, Row, Out, Kind, Sc, W>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    Kind: 'static,
    Sc: 'static,
    W: IntoScore + 'static,
    F: ScorerFn<Row, Out, Kind, Score = Sc>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, row: Arc<Row>, output: Arc<Out>) -> ScoreFuture {
        let f = self.f.clone();
        let wrap = self.wrap;
        let ctx = context::current();
        Box::pin(async move {
            let joined = tokio::task::spawn_blocking(move || {
                context::in_scope(ctx, || wrap(f.run(&row, &output)).into_score())
            })
            .await;
            match joined {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err("the scorer panicked".into()),
                Err(e) => Err(e.to_string().into()),
            }
        })
    }
}

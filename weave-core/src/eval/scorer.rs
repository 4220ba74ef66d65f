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
/// Most scorers are plain `#[weave::op]` functions wrapped with [`scorer`] or [`try_scorer`];
/// implement the trait directly for async scorers.
pub trait Scorer<Row, Out>: Send + Sync + 'static {
    /// The name the score is summarised under.
    fn name(&self) -> &str;
    /// Computes the score: a bool, a number, or a (nested) map of them.
    fn score(&self, row: Arc<Row>, output: Arc<Out>) -> ScoreFuture;
}

struct FnScorer<F, Row, Out> {
    name: String,
    f: Arc<F>,
    _types: PhantomData<fn(&Row, &Out)>,
}

/// A scorer from a sync function (run on the blocking pool, inside the current call, so that a
/// `#[weave::op]` scorer is a child of `Evaluation.predict_and_score`).
pub fn scorer<Row, Out, S, F>(name: impl Into<String>, f: F) -> impl Scorer<Row, Out>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    S: Serialize,
    F: Fn(&Row, &Out) -> S + Send + Sync + 'static,
{
    try_scorer(name, move |row: &Row, out: &Out| {
        Ok::<S, std::convert::Infallible>(f(row, out))
    })
}

/// A scorer from a sync function returning `Result`; an `Err` is recorded as that scorer's
/// error for the row, without touching the other scorers' results.
pub fn try_scorer<Row, Out, S, E, F>(name: impl Into<String>, f: F) -> impl Scorer<Row, Out>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    S: Serialize,
    E: Display,
    F: Fn(&Row, &Out) -> Result<S, E> + Send + Sync + 'static,
{
    FnScorer {
        name: name.into(),
        f: Arc::new(f),
        _types: PhantomData,
    }
}

impl<Row, Out, S, E, F> Scorer<Row, Out> for FnScorer<F, Row, Out>
where
    Row: Send + Sync + 'static,
    Out: Send + Sync + 'static,
    S: Serialize,
    E: Display,
    F: Fn(&Row, &Out) -> Result<S, E> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, row: Arc<Row>, output: Arc<Out>) -> ScoreFuture {
        let f = self.f.clone();
        let ctx = context::current();
        Box::pin(async move {
            let joined = tokio::task::spawn_blocking(move || {
                context::in_scope(ctx, || match f(&row, &output) {
                    Ok(s) => {
                        serde_json::to_value(s).map_err(|e| -> BoxError { e.to_string().into() })
                    }
                    Err(e) => Err(e.to_string().into()),
                })
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

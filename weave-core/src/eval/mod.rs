//! Datasets, scorers and evaluations: the `weave.Evaluation` experience.
//!
//! ```no_run
//! use std::sync::Arc;
//! use weave::eval::{BoxError, Dataset, Evaluation, Predict};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Row { question: String, answer: String }
//!
//! #[derive(weave::Model, serde::Serialize)]
//! struct Echo { prefix: String }
//!
//! #[weave::ops]
//! impl Echo {
//!     #[weave::op]
//!     async fn predict(&self, question: &str) -> String { format!("{}{question}", self.prefix) }
//! }
//!
//! impl Predict<Row> for Echo {
//!     type Output = String;
//!     async fn predict_row(&self, row: &Row) -> Result<String, BoxError> {
//!         Ok(self.predict(&row.question).await)
//!     }
//! }
//!
//! #[weave::op]
//! fn exact(row: &Row, output: &String) -> bool { &row.answer == output }
//!
//! // Async ops are scorers too (an LLM judge, a sandbox run).
//! #[weave::op]
//! async fn not_empty(_row: &Row, output: &String) -> bool { !output.is_empty() }
//!
//! # async fn run() -> Result<(), weave::Error> {
//! let data = Dataset::from_rows("qa", &[Row { question: "a".into(), answer: "a".into() }])?;
//! let results = Evaluation::new("qa-eval", data)
//!     .scorer(weave::scorer!(exact)) // named after the op: "exact"
//!     .scorer(weave::scorer!(not_empty))
//!     .evaluate(&Echo { prefix: String::new() })
//!     .await?;
//! println!("{}", results.summary);
//! # Ok(()) }
//! ```

mod dataset;
mod evaluation;
pub mod resume;
mod scorer;
mod summary;

pub use dataset::Dataset;
pub use evaluation::{
    summarize_rows, Evaluation, EvaluationResults, Predict, RowResult, PARALLELISM_ENV,
    RESERVED_SUMMARY_KEYS,
};
pub use resume::{is_resumable, latest_resumable, KeptRow, ResumeFrom, ResumePlan};
pub use scorer::{
    __scorer_name, higher_is_better, lower_is_better, scorer, try_scorer, AsyncScorer, BoxError,
    Directed, Direction, ScoreFuture, Scorer, ScorerFn, SyncScorer,
};
pub use summary::{auto_summarize, pass_at_k, summarize};
pub use weave_types::eval::{EVALUATE, PREDICT_AND_SCORE, SUMMARIZE};

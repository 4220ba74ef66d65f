//! The web UI: serves the front-end embedded from `weave-server/ui/` (plain ES modules and
//! CSS, no build step) at `/ui/`, and the few read routes the pages need that Weave's API
//! lacks, under `/ext/ui/`, all computed over [`TraceStore`](weave_store::TraceStore).
//!
//! - [`assets`]: the pages and their files, with a Content-Security-Policy that allows only
//!   this server's own scripts (no inline script, Trusted Types on);
//! - [`calls`]: a page of calls with one-line previews of inputs and output (the traces
//!   table), filtered, searched, sorted and counted; and a trace's calls for its tree;
//! - [`evals`]: evaluation runs with their model, dataset, progress and headline scores, and
//!   the comparison of runs (metric deltas, per-row verdicts, regressions first);
//! - [`diff`]: the line diff between two versions of an op or object;
//! - [`preview`]: shortening untrusted values for the pages.
//!
//! Asset routes are open (they hold no data); the `/ext/ui/` routes sit behind the server's
//! API keys like every other data route.

pub(crate) mod assets;
pub(crate) mod calls;
pub(crate) mod diff;
pub(crate) mod evals;
pub(crate) mod preview;

use axum::routing::post;
use axum::Router;

use crate::AppState;

/// The data routes of the UI (`/ext/ui/...`), mounted with the API's layers (keys, limits).
pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/ext/ui/calls", post(calls::calls_page))
        .route("/ext/ui/trace", post(calls::trace))
        .route("/ext/ui/evaluations", post(evals::runs))
        .route("/ext/ui/compare", post(evals::compare))
        .route("/ext/ui/diff", post(diff::diff))
}

/// The pages and their files (`/`, `/ui`, `/ui/...`): open, no state.
pub(crate) fn page_routes() -> Router {
    assets::routes()
}

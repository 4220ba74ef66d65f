//! The route table: which path goes to which handler, and the layers every request passes
//! (logging, panic catching, API keys, timeout, body limit, response compression).

mod calls;
mod ext;
mod feedback;
mod files;
mod info;
mod objs;
mod tables;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::AppState;

/// The server's routes over `state`. Paths are W&B Weave's; `/ext/*` are this server's own
/// extensions; `/` and `/ui` are not taken (the web UI goes there).
pub fn router(state: AppState) -> Router {
    let limit = state.limits.body_limit;
    Router::new()
        // Startup and probes.
        .route("/server_info", get(info::server_info))
        .route("/health", get(info::health))
        .route("/service/projects_info", post(info::projects_info))
        .route("/ready", get(info::ready))
        .route("/graphql", post(info::graphql))
        // Writing calls.
        .route(
            "/v2/:entity/:project/calls/complete",
            post(calls::complete_v2),
        )
        .route("/v2/:entity/:project/call/start", post(calls::start_v2))
        .route("/v2/:entity/:project/call/end", post(calls::end_v2))
        .route("/call/start", post(calls::start))
        .route("/call/end", post(calls::end))
        .route("/call/upsert_batch", post(calls::upsert_batch))
        .route("/call/update", post(calls::update))
        .route("/calls/delete", post(calls::delete))
        // Reading calls.
        .route("/call/read", post(calls::read))
        .route("/calls/stream_query", post(calls::stream_query))
        .route("/calls/query", post(calls::query))
        .route("/calls/query_stats", post(calls::query_stats))
        // Objects, tables, files, refs.
        .route("/obj/create", post(objs::create))
        .route("/obj/read", post(objs::read))
        .route("/objs/query", post(objs::query))
        .route("/refs/read_batch", post(objs::refs_read_batch))
        .route("/table/create", post(tables::create))
        .route(
            "/table/create_from_digests",
            post(tables::create_from_digests),
        )
        .route("/table/update", post(tables::update))
        .route("/table/query", post(tables::query))
        .route("/table/query_stats", post(tables::query_stats))
        .route("/file/create", post(files::create))
        .route("/file/content", post(files::content))
        // Feedback.
        .route("/feedback/create", post(feedback::create))
        .route("/feedback/batch/create", post(feedback::create_batch))
        .route("/feedback/query", post(feedback::query))
        // This server's extensions (not Weave's API).
        .route("/ext/projects", post(ext::projects))
        .route("/ext/calls/id_prefix", post(ext::call_ids_by_prefix))
        .route("/ext/calls/id_neighbors", post(ext::call_id_neighbors))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ))
        .layer(CompressionLayer::new())
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                use axum::response::IntoResponse as _;
                AppError::Internal("a request handler panicked".into()).into_response()
            },
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 404 in Weave's shape for paths this server does not serve.
async fn no_route(req: Request) -> AppError {
    AppError::NoRoute {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    }
}

/// 504 when a request runs longer than the limit (until its response starts). A write the
/// store already began still completes, and is idempotent when the client retries.
async fn timeout(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let limit = state.limits.request_timeout;
    tokio::time::timeout(limit, next.run(req))
        .await
        .map_err(|_| AppError::Timeout(limit))
}

/// Checks that the `entity/project` of a v2 path and of the body agree.
pub(crate) fn check_path_project(
    entity: &str,
    project: &str,
    body_project: &str,
    field: &str,
) -> Result<(), AppError> {
    let path_project = format!("{entity}/{project}");
    if body_project != path_project {
        return Err(AppError::bad_request(
            field,
            format!("`{body_project}` is not the project of the path, `{path_project}`"),
        ));
    }
    Ok(())
}

//! Feedback: `feedback/create`, `feedback/batch/create` (evaluation scores), `feedback/query`.

use axum::extract::State;
use axum::Json;
use weave_types::*;

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

type Res<T> = Result<Json<T>, AppError>;

/// `POST /feedback/create`.
pub(crate) async fn create(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<FeedbackCreateReq>,
) -> Res<FeedbackCreateRes> {
    Ok(Json(state.store.feedback_create(req).await?))
}

/// `POST /feedback/batch/create`: all items or none; the client's ids are kept.
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<FeedbackCreateBatchReq>,
) -> Res<FeedbackCreateBatchRes> {
    Ok(Json(state.store.feedback_create_batch(req).await?))
}

/// `POST /feedback/query`.
pub(crate) async fn query(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<FeedbackQueryReq>,
) -> Res<FeedbackQueryRes> {
    Ok(Json(state.store.feedback_query(req).await?))
}

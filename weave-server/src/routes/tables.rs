//! Tables: `table/create`, `table/create_from_digests`, `table/update`, `table/query`,
//! `table/query_stats`.

use axum::extract::State;
use axum::Json;
use weave_types::*;

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

type Res<T> = Result<Json<T>, AppError>;

/// `POST /table/create`.
pub(crate) async fn create(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TableCreateReq>,
) -> Res<TableCreateRes> {
    Ok(Json(state.store.table_create(req).await?))
}

/// `POST /table/query`.
pub(crate) async fn query(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TableQueryReq>,
) -> Res<TableQueryRes> {
    Ok(Json(state.store.table_query(req).await?))
}

/// `POST /table/query_stats`.
pub(crate) async fn query_stats(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TableQueryStatsReq>,
) -> Res<TableQueryStatsRes> {
    Ok(Json(state.store.table_query_stats(req).await?))
}

/// `POST /table/create_from_digests`.
pub(crate) async fn create_from_digests(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TableCreateFromDigestsReq>,
) -> Res<TableCreateFromDigestsRes> {
    Ok(Json(state.store.table_create_from_digests(req).await?))
}

/// `POST /table/update`.
pub(crate) async fn update(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<TableUpdateReq>,
) -> Res<TableUpdateRes> {
    Ok(Json(state.store.table_update(req).await?))
}

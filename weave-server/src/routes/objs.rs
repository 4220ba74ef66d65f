//! Objects and refs: `obj/create`, `obj/read` (digest, `latest`, `v<N>`), `objs/query`,
//! `refs/read_batch`.

use axum::extract::State;
use axum::Json;
use weave_types::*;

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

type Res<T> = Result<Json<T>, AppError>;

/// `POST /obj/create`.
pub(crate) async fn create(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<ObjCreateReq>,
) -> Res<ObjCreateRes> {
    Ok(Json(state.store.obj_create(req).await?))
}

/// `POST /obj/read`: a missing object is 404 `{"reason": "Obj <id>:<digest> not found"}`.
pub(crate) async fn read(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<ObjReadReq>,
) -> Res<ObjReadRes> {
    Ok(Json(state.store.obj_read(req).await?))
}

/// `POST /objs/query`.
pub(crate) async fn query(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<ObjQueryReq>,
) -> Res<ObjQueryRes> {
    Ok(Json(state.store.objs_query(req).await?))
}

/// `POST /refs/read_batch`.
pub(crate) async fn refs_read_batch(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<RefsReadBatchReq>,
) -> Res<RefsReadBatchRes> {
    Ok(Json(state.store.refs_read_batch(req).await?))
}

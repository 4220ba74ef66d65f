//! This server's extensions, under `/ext/` so they never collide with Weave's API: what the
//! CLI and the web UI need and Weave's API lacks (the store's extension methods).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use weave_store::{CallIdNeighbors, CallIdPrefixReq, CallKey};

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

type Res<T> = Result<Json<T>, AppError>;

/// Answer of `POST /ext/projects`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProjectsRes {
    /// Every project with calls or objects, sorted.
    pub projects: Vec<String>,
}

/// `POST /ext/projects` (body `{}` or none).
pub(crate) async fn projects(State(state): State<AppState>) -> Res<ProjectsRes> {
    Ok(Json(ProjectsRes {
        projects: state.store.projects().await?,
    }))
}

/// Answer of `POST /ext/calls/id_prefix`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallIdPrefixRes {
    /// The calls, in id order.
    pub calls: Vec<CallKey>,
}

/// `POST /ext/calls/id_prefix` (`{"project_id"?, "prefix", "limit"}`).
pub(crate) async fn call_ids_by_prefix(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallIdPrefixReq>,
) -> Res<CallIdPrefixRes> {
    Ok(Json(CallIdPrefixRes {
        calls: state.store.call_ids_by_prefix(req).await?,
    }))
}

/// `POST /ext/calls/id_neighbors`.
#[derive(Debug, Deserialize)]
pub(crate) struct CallIdNeighborsReq {
    #[serde(default)]
    project_id: Option<String>,
    id: String,
}

/// `POST /ext/calls/id_neighbors` (`{"project_id"?, "id"}`).
pub(crate) async fn call_id_neighbors(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<CallIdNeighborsReq>,
) -> Res<CallIdNeighbors> {
    Ok(Json(
        state
            .store
            .call_id_neighbors(req.project_id, req.id)
            .await?,
    ))
}

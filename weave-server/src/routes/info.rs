//! Startup and probes: `/server_info` (the client's version handshake), the three W&B GraphQL
//! operations `weave.init` sends, `/service/projects_info` (internal project ids, for clients
//! that compute digests themselves), `/health` (the process answers) and `/ready` (the store
//! answers).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use weave_store::StoreError;
use weave_types::{ProjectInfo, ProjectsInfoReq, ServerInfoRes};

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::{AppState, TRACE_SERVER_VERSION};

/// The entity a `weave.init("project")` without entity logs to (as the Rust client does).
pub(crate) const DEFAULT_ENTITY: &str = "local";

/// `GET /server_info`: Weave's two fields, plus `request_content_encodings` (an extension
/// clients may read: this server takes gzip and deflate request bodies).
pub(crate) async fn server_info() -> Json<Value> {
    let info = ServerInfoRes {
        min_required_weave_python_version: "0.0.0".into(),
        trace_server_version: TRACE_SERVER_VERSION.into(),
    };
    let mut v = serde_json::to_value(info).unwrap_or_default();
    v["request_content_encodings"] = json!(["gzip", "deflate"]);
    Json(v)
}

/// `POST /service/projects_info`: the internal id of each project, the one this server's
/// digests of ref-holding objects are computed with (base64 of `entity/project`, like W&B's
/// recording server), so a client computing digests itself gets the same ones.
pub(crate) async fn projects_info(
    WeaveJson(req): WeaveJson<ProjectsInfoReq>,
) -> Result<Json<Vec<ProjectInfo>>, AppError> {
    req.project_ids
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if weave_types::refs::split_project_id(&p).is_none() {
                return Err(AppError::Store(StoreError::invalid(
                    format!("project_ids[{i}]"),
                    format!("`{p}` is not a project id of the form entity/project"),
                )));
            }
            Ok(ProjectInfo {
                internal_project_id: weave_types::refs::internal_project_id(&p),
                external_project_id: p,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json)
}

/// `GET /health`: the process is up.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the store answers a query within 5 s.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(Duration::from_secs(5), state.store.projects()).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": e.to_string()})),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "the store did not answer within 5 s"})),
        ),
    }
}

/// A GraphQL request.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphqlReq {
    query: String,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
}

/// `POST /graphql`: the W&B API operations `weave.init` needs (spec §4): `Project` (null
/// until the project has data, as W&B answers for a new project), `UpsertModel` (creates
/// nothing: a project exists once something is logged to it) and `DefaultEntity`.
pub(crate) async fn graphql(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<GraphqlReq>,
) -> Result<Json<Value>, AppError> {
    let vars = req.variables.unwrap_or_default();
    let var = |k: &str| vars.get(k).and_then(Value::as_str).map(str::to_string);
    let q = req.query.as_str();
    if q.contains("upsertModel") {
        let name = var("name").ok_or_else(|| AppError::bad_request("variables.name", "missing"))?;
        let description = vars.get("description").cloned().unwrap_or(Value::Null);
        return Ok(Json(json!({"data": {"upsertModel": {
            "model": {"name": name, "description": description}
        }}})));
    }
    if q.contains("viewer") {
        return Ok(Json(json!({"data": {"viewer": {
            "username": "weave-serve",
            "defaultEntity": {"name": DEFAULT_ENTITY}
        }}})));
    }
    if q.contains("project(") {
        let name = var("name").ok_or_else(|| AppError::bad_request("variables.name", "missing"))?;
        let entity = var("entityName")
            .or_else(|| var("entity"))
            .unwrap_or_else(|| DEFAULT_ENTITY.to_string());
        let known = state
            .store
            .projects()
            .await?
            .iter()
            .any(|p| *p == format!("{entity}/{name}"));
        let project = if known {
            json!({"name": name})
        } else {
            Value::Null
        };
        return Ok(Json(json!({"data": {"project": project}})));
    }
    let first_line = q.lines().next().unwrap_or("").trim();
    Ok(Json(json!({
        "data": null,
        "errors": [{"message": format!(
            "weave serve answers only the W&B operations weave.init sends \
             (Project, UpsertModel, DefaultEntity), not `{first_line}`"
        )}]
    })))
}

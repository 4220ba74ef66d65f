//! Files: `file/create` (multipart: `project_id`, `expected_digest`, `file`) and
//! `file/content` (raw bytes).

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use weave_types::*;

use crate::body::WeaveJson;
use crate::error::AppError;
use crate::AppState;

fn multipart_err(e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge
    } else {
        AppError::bad_request(
            "body",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

/// `POST /file/create`. The digest is the client's (`bytes_digest`), so a client may refer to
/// the file before it arrives.
pub(crate) async fn create(
    State(state): State<AppState>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<FileCreateRes>, AppError> {
    let mut multipart = multipart.map_err(|e| {
        AppError::bad_request(
            "body",
            format!("file/create takes multipart/form-data: {}", e.body_text()),
        )
    })?;
    let mut project_id = None;
    let mut expected_digest = None;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_err)? {
        match field.name().unwrap_or("") {
            "project_id" => project_id = Some(field.text().await.map_err(multipart_err)?),
            "expected_digest" => {
                let d = field.text().await.map_err(multipart_err)?;
                expected_digest = Some(d).filter(|d| !d.is_empty());
            }
            "file" => {
                let name = field.file_name().unwrap_or("file").to_string();
                let bytes = field.bytes().await.map_err(multipart_err)?;
                file = Some((name, bytes));
            }
            // Fields newer than this server.
            _ => {}
        }
    }
    let project_id =
        project_id.ok_or_else(|| AppError::bad_request("project_id", "missing form field"))?;
    let (name, content) =
        file.ok_or_else(|| AppError::bad_request("file", "missing form field"))?;
    let res = state
        .store
        .file_create(FileCreateReq {
            project_id,
            name,
            content: content.to_vec(),
            expected_digest,
        })
        .await?;
    Ok(Json(res))
}

/// `POST /file/content`: the bytes, `application/octet-stream`; 404 when there is no such file.
pub(crate) async fn content(
    State(state): State<AppState>,
    WeaveJson(req): WeaveJson<FileContentReadReq>,
) -> Result<Response, AppError> {
    let res = state.store.file_content_read(req).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        res.content,
    )
        .into_response())
}

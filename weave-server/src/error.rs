//! [`AppError`]: every way a request can fail, answered in W&B Weave's error shape
//! (`{"reason": ...}`, spec §12), with the status the Python client expects.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use weave_store::StoreError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The body is not what the route takes (422, FastAPI's shape plus `reason`).
    #[error("invalid request body at {loc}: {msg}")]
    Validation {
        /// Path into the body (`batch[3].started_at`), `.` for the body itself.
        loc: String,
        /// What is wrong there.
        msg: String,
    },
    /// A request the route cannot take (400), naming the field.
    #[error("invalid {field}: {reason}")]
    BadRequest {
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The body is larger than the server's limit (413).
    #[error("Request too large")]
    TooLarge,
    /// A `Content-Encoding` the server cannot read (415).
    #[error("unsupported Content-Encoding `{0}` (gzip, deflate and identity are accepted)")]
    UnsupportedEncoding(String),
    /// No or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No such route (404).
    #[error("no route {method} {path}")]
    NoRoute {
        /// Method.
        method: String,
        /// Path.
        path: String,
    },
    /// The request took longer than the server allows (504).
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A bug or an unexpected failure (500).
    #[error("Internal server error")]
    Internal(String),
}

impl AppError {
    /// A 400 naming `field`.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> AppError {
        AppError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Store(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::NoRoute { .. } => StatusCode::NOT_FOUND,
            AppError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        match self {
            // Backend details go to the log, not to the client.
            AppError::Store(StoreError::Backend { .. }) => {
                json!({"reason": "Temporary backend error"})
            }
            AppError::Store(e @ StoreError::InvalidRequest { field, reason }) => {
                json!({"reason": e.to_string(), "field": field, "message": reason})
            }
            AppError::Validation { loc, msg } => json!({
                "reason": self.to_string(),
                "detail": [{"loc": loc_path(loc), "msg": msg, "type": "value_error"}],
            }),
            AppError::BadRequest { field, .. } => {
                json!({"reason": self.to_string(), "field": field})
            }
            _ => json!({"reason": self.to_string()}),
        }
    }
}

/// `batch[3].started_at` as FastAPI's `loc`: `["body", "batch", 3, "started_at"]`.
fn loc_path(loc: &str) -> Value {
    let mut out = vec![json!("body")];
    for part in loc.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push(json!(&rest[..i]));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                let idx = &rest[1..end];
                out.push(idx.parse::<u64>().map(Value::from).unwrap_or(json!(idx)));
                rest = &rest[end + 1..];
            }
        } else {
            out.push(json!(rest));
        }
    }
    Value::Array(out)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            match &self {
                AppError::Store(e) => tracing::error!(error = %e, "store error"),
                AppError::Internal(e) => tracing::error!(error = %e, "internal error"),
                other => tracing::warn!(error = %other, "request failed"),
            }
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut res = (status, axum::Json(self.body())).into_response();
        let headers = res.headers_mut();
        match &self {
            // A digest mismatch will not go away by retrying (the SDK retries 409s).
            AppError::Store(StoreError::DigestMismatch { .. }) => {
                headers.insert("x-should-retry", HeaderValue::from_static("false"));
            }
            AppError::Store(StoreError::Unavailable { .. }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            AppError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"weave\", Bearer"),
                );
            }
            _ => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loc_paths_split_fields_and_indexes() {
        assert_eq!(
            loc_path("batch[3].started_at"),
            json!(["body", "batch", 3, "started_at"])
        );
        assert_eq!(loc_path("."), json!(["body"]));
        assert_eq!(loc_path("a[1][2].b"), json!(["body", "a", 1, 2, "b"]));
    }

    #[test]
    fn store_errors_keep_their_status() {
        let e = AppError::from(StoreError::not_found("Obj x:latest"));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.body(), json!({"reason": "Obj x:latest not found"}));
        let e = AppError::from(StoreError::invalid("batch[0].id", "must not be empty"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["field"], "batch[0].id");
    }
}

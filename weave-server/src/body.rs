//! [`WeaveJson`]: the request-body extractor every JSON route uses. Liberal in what it takes
//! (any or no `Content-Type`, gzip or deflate `Content-Encoding`, unknown fields and `null`s,
//! as the types allow) and exact in what it refuses: 413 past the body limit (after
//! decompression too), 415 for an encoding it cannot read, 422 naming the field that does not
//! fit.

use std::io::Read;

use axum::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::AppState;

/// A JSON request body of type `T`.
#[derive(Debug, Clone)]
pub struct WeaveJson<T>(pub T);

/// Reads the whole body, decompressed, within the state's body limit.
pub(crate) async fn read_body(req: Request, state: &AppState) -> Result<Bytes, AppError> {
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::bad_request("body", rejection.body_text())
        }
    })?;
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(bytes),
        Some("gzip") | Some("x-gzip") => inflate(
            flate2::read::GzDecoder::new(&bytes[..]),
            state.limits.body_limit,
        ),
        Some("deflate") => inflate(
            flate2::read::ZlibDecoder::new(&bytes[..]),
            state.limits.body_limit,
        ),
        Some(other) => Err(AppError::UnsupportedEncoding(other.to_string())),
    }
}

/// Decompresses at most `limit` bytes; more is [`AppError::TooLarge`].
fn inflate(reader: impl Read, limit: usize) -> Result<Bytes, AppError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| AppError::bad_request("body", format!("cannot decompress: {e}")))?;
    if out.len() > limit {
        return Err(AppError::TooLarge);
    }
    Ok(out.into())
}

/// Parses `bytes` as `T`, naming the field at fault.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::Validation {
            loc: ".".into(),
            msg: "the body is empty; expected a JSON object".into(),
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let loc = e.path().to_string();
        let inner = e.into_inner();
        // serde_json appends " at line 1 column 9"; the location is already in `loc`.
        let msg = inner.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) if !inner.is_syntax() && !inner.is_eof() => msg[..i].to_string(),
            _ => msg,
        };
        AppError::Validation { loc, msg }
    })
}

#[async_trait]
impl<T: DeserializeOwned> FromRequest<AppState> for WeaveJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(WeaveJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weave_types::CallsCompleteReq;

    #[test]
    fn names_the_field_that_does_not_fit() {
        let e = parse::<CallsCompleteReq>(br#"{"batch": [{"project_id": "e/p", "id": 3}]}"#)
            .unwrap_err();
        match e {
            AppError::Validation { loc, msg } => {
                assert_eq!(loc, "batch[0].id");
                assert!(msg.contains("expected a string"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse::<CallsCompleteReq>(b"{\"batch\": [").unwrap_err();
        assert!(matches!(e, AppError::Validation { .. }), "{e:?}");
        let e = parse::<CallsCompleteReq>(b"  ").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[b'a'; 10_000]).unwrap();
        let packed = gz.finish().unwrap();
        let r = inflate(flate2::read::GzDecoder::new(&packed[..]), 10_000).unwrap();
        assert_eq!(r.len(), 10_000);
        let e = inflate(flate2::read::GzDecoder::new(&packed[..]), 9_999).unwrap_err();
        assert!(matches!(e, AppError::TooLarge));
    }
}

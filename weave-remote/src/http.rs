//! The transport: one blocking HTTP client (on the sender thread only), the server probe,
//! how each kind of request is built (JSON, gzip when the server accepts it, multipart for
//! files, Basic auth) and how an answer is classified (done, retry, split, refused).

use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::config::RemoteConfig;

/// What became of a request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx, with the body.
    Done(Vec<u8>),
    /// Worth trying again later (connection error, timeout, 408, 429, 5xx).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for its size or content: a batch is split, a single record refused.
    Split { reason: String },
    /// Refused for good (auth, not found, digest conflict...).
    Refused { reason: String },
}

/// The HTTP side of a remote client.
pub(crate) struct Transport {
    client: Client,
    base: String,
    /// Gzip JSON bodies (the server said it accepts them).
    gzip: bool,
    /// `/server_info` answered.
    probed: bool,
    allow_gzip: bool,
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `/v2/{entity}/{project}` prefix of a project's routes.
pub(crate) fn v2_prefix(project_id: &str) -> String {
    let (e, p) = project_id.split_once('/').unwrap_or((project_id, ""));
    format!("/v2/{}/{}", path_segment(e), path_segment(p))
}

fn error_reason(status: StatusCode, body: &[u8]) -> String {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["reason", "message", "detail", "error"]
                .iter()
                .find_map(|k| {
                    v.get(*k)
                        .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    format!("{status}: {detail}")
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 60.0)));
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 60.0)))
}

impl Transport {
    pub(crate) fn new(config: &RemoteConfig) -> Result<Transport, reqwest::Error> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
            let mut v = HeaderValue::from_str(&format!("Basic {token}"))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let client = Client::builder()
            .default_headers(headers)
            .user_agent(concat!("weave-rs/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5).min(config.request_timeout))
            .build()?;
        Ok(Transport {
            client,
            base: config.url.clone(),
            gzip: false,
            probed: false,
            allow_gzip: config.compress,
        })
    }

    fn send(&self, req: RequestBuilder, batch: bool) -> Outcome {
        let res = match req.send() {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("{e}"),
                    after: None,
                }
            }
        };
        let status = res.status();
        let headers = res.headers().clone();
        let body = match res.bytes() {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("reading the answer: {e}"),
                    after: None,
                }
            }
        };
        if status.is_success() {
            return Outcome::Done(body);
        }
        let reason = error_reason(status, &body);
        match status.as_u16() {
            408 | 429 | 500..=599 => Outcome::Retry {
                reason,
                after: retry_after(&headers),
            },
            413 | 400 | 422 if batch => Outcome::Split { reason },
            _ => Outcome::Refused { reason },
        }
    }

    /// Asks `/server_info` once whether the server takes gzip bodies. A server that does not
    /// answer yet is retried like any request; one that answers oddly gets plain bodies.
    pub(crate) fn probe(&mut self) -> Option<Outcome> {
        if self.probed {
            return None;
        }
        match self.send(self.client.get(format!("{}/server_info", self.base)), false) {
            Outcome::Done(body) => {
                let info: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                self.gzip = self.allow_gzip
                    && info["request_content_encodings"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|e| e == "gzip"));
                self.probed = true;
                None
            }
            r @ Outcome::Retry { .. } => Some(r),
            Outcome::Split { .. } | Outcome::Refused { .. } => {
                self.probed = true;
                None
            }
        }
    }

    /// `POST path` with a JSON body (`batch`: the body holds several records).
    pub(crate) fn post_json(
        &mut self,
        path: &str,
        body: &[u8],
        headers: &[(&'static str, String)],
        batch: bool,
    ) -> Outcome {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let gzipped = self.gzip && body.len() > 1024;
        let req = if gzipped {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            let _ = gz.write_all(body);
            match gz.finish() {
                Ok(packed) => req.header(CONTENT_ENCODING, "gzip").body(packed),
                Err(_) => req.body(body.to_vec()),
            }
        } else {
            req.body(body.to_vec())
        };
        let out = self.send(req, batch);
        if gzipped {
            if let Outcome::Refused { reason } | Outcome::Split { reason } = &out {
                if reason.starts_with("415") {
                    // The server does not take gzip after all: plain from now on.
                    self.gzip = false;
                    return Outcome::Retry {
                        reason: reason.clone(),
                        after: Some(Duration::ZERO),
                    };
                }
            }
        }
        out
    }

    /// `POST /file/create` as multipart (`project_id`, `expected_digest`, `file`).
    pub(crate) fn post_file(
        &self,
        project_id: &str,
        digest: &str,
        name: &str,
        content: &[u8],
    ) -> Outcome {
        let boundary = format!("weave-rs-{:016x}", fastrand::u64(..));
        let mut body = Vec::with_capacity(content.len() + 512);
        for (field, value) in [("project_id", project_id), ("expected_digest", digest)] {
            let _ = write!(
                body,
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
            );
        }
        let safe_name: String = name
            .chars()
            .map(|c| {
                if c == '"' || c == '\r' || c == '\n' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        body.extend_from_slice(content);
        let _ = write!(body, "\r\n--{boundary}--\r\n");
        let req = self
            .client
            .post(format!("{}/file/create", self.base))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        self.send(req, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(v2_prefix("my ent/proj-1"), "/v2/my%20ent/proj-1");
        assert_eq!(path_segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn error_reasons_come_from_weave_bodies() {
        let r = error_reason(
            StatusCode::UNAUTHORIZED,
            br#"{"reason": "invalid API key"}"#,
        );
        assert_eq!(r, "401 Unauthorized: invalid API key");
        let r = error_reason(StatusCode::BAD_GATEWAY, b"oops");
        assert_eq!(r, "502 Bad Gateway: oops");
    }
}

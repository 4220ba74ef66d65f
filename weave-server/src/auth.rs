//! API keys: the middleware that lets a request through only with one of the server's keys,
//! taken from the Basic auth the Weave client sends (`api:<key>`, any user name) or a Bearer
//! token. Keys are kept as SHA-256 digests and compared as such.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::AppError;
use crate::AppState;

/// Paths open without a key: probes of orchestrators.
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// The keys a server accepts (none: every request is let through).
#[derive(Debug, Default)]
pub(crate) struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    pub(crate) fn new<I, S>(keys: I) -> ApiKeys
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ApiKeys(
            keys.into_iter()
                .map(|k| k.as_ref().trim().to_string())
                .filter(|k| !k.is_empty())
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    fn accepts(&self, key: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every key is compared, and only digests: how long this takes says nothing.
        self.0.iter().fold(false, |ok, k| ok | (*k == d))
    }
}

/// The key a request carries: the password of Basic auth, or a Bearer token.
fn presented_key(value: &str) -> Result<String, &'static str> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or("malformed")?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("unsupported scheme (use Basic or Bearer)");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| "Basic credentials are not base64")?;
    let text = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
    let (_user, password) = text
        .split_once(':')
        .ok_or("Basic credentials lack `user:password`")?;
    Ok(password.to_string())
}

/// The middleware: 401 unless the request carries one of the keys.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    if state.keys.len() == 0 || OPEN_PATHS.contains(&req.uri().path()) {
        return Ok(next.run(req).await);
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(AppError::Unauthorized(
            "an API key is required: send `Authorization: Basic base64(api:<key>)` \
             (WANDB_API_KEY) or `Authorization: Bearer <key>`"
                .into(),
        ));
    };
    let key = value
        .to_str()
        .map_err(|_| "not ASCII")
        .and_then(presented_key)
        .map_err(|why| AppError::Unauthorized(format!("Authorization header: {why}")))?;
    if key.is_empty() || !state.keys.accepts(&key) {
        return Err(AppError::Unauthorized("invalid API key".into()));
    }
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_basic_and_bearer() {
        let basic = base64::engine::general_purpose::STANDARD.encode("api:s3cret");
        assert_eq!(presented_key(&format!("Basic {basic}")).unwrap(), "s3cret");
        assert_eq!(presented_key("bearer  tok ").unwrap(), "tok");
        // The Python client without credentials: base64(":").
        assert_eq!(presented_key("Basic Og==").unwrap(), "");
        assert!(presented_key("Basic !!!").is_err());
        assert!(presented_key("Digest x").is_err());
        assert!(presented_key("nothing").is_err());
        let keys = ApiKeys::new(["a", " b ", ""]);
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts("a") && keys.accepts("b"));
        assert!(!keys.accepts("c") && !keys.accepts(""));
    }
}

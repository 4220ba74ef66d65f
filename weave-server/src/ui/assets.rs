//! The UI's pages and files, embedded in the binary from `weave-server/ui/` (also in debug
//! builds, so tests see what a release serves). `/` redirects to `/ui/`; `/ui/assets/<file>`
//! is a file; any other `/ui/...` path is the single page, whose script routes by the URL.
//!
//! Every answer carries a Content-Security-Policy that lets the page run only scripts and
//! styles from this server (no inline script, no `eval`, no other origin) and turns on
//! Trusted Types, so a string can never be assigned to an HTML sink such as `innerHTML`:
//! values from the store can only ever become text.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;

/// The front-end files.
#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Files;

/// What the page may load and run: its own scripts, styles, images and API, nothing else.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// The page routes (no state).
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(page))
        .route("/ui/*rest", get(page_or_asset))
        .layer(CompressionLayer::new())
}

/// Headers every UI answer carries.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// A file with its type and a content ETag; `304` when the browser already has it.
fn serve(name: &str, req_headers: &HeaderMap) -> Response {
    let Some(file) = Files::get(name) else {
        let mut res = (StatusCode::NOT_FOUND, format!("no UI file `{name}`\n")).into_response();
        security_headers(res.headers_mut());
        return res;
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mime = file.metadata.mimetype();
        let mime = if mime.starts_with("text/") || mime.ends_with("javascript") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        let mut res = file.data.into_owned().into_response();
        if let Ok(v) = HeaderValue::from_str(&mime) {
            res.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        res
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: a new server version must never run with old scripts.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    res
}

/// `GET /ui/`: the single page.
async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/assets/<file>`: a file; any other `GET /ui/<path>`: the single page.
async fn page_or_asset(Path(rest): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = rest.trim_start_matches('/').strip_prefix("assets/") else {
        return serve("index.html", &headers);
    };
    if file.split('/').any(|s| s == ".." || s.is_empty()) {
        let mut res = (StatusCode::NOT_FOUND, "no such UI file\n").into_response();
        security_headers(res.headers_mut());
        return res;
    }
    serve(&format!("assets/{file}"), &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // The page loads app.js, which imports the others by relative path: each import must
        // name an embedded file, or the page breaks in a release binary.
        let mut missing = Vec::new();
        let names: Vec<String> = Files::iter().map(|n| n.to_string()).collect();
        assert!(names.iter().any(|n| n == "index.html"), "{names:?}");
        for name in names.iter().filter(|n| n.ends_with(".js")) {
            let text = String::from_utf8(Files::get(name).unwrap().data.into_owned()).unwrap();
            for line in text.lines() {
                let line = line.trim();
                if !(line.starts_with("import ") || line.starts_with("} from ")) {
                    continue;
                }
                let Some(spec) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let base = std::path::Path::new(name).parent().unwrap();
                let path = normalize(&base.join(spec));
                if Files::get(&path).is_none() {
                    missing.push(format!("{name} imports {spec}"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
    }

    fn normalize(p: &std::path::Path) -> String {
        let mut out: Vec<&str> = Vec::new();
        for c in p.iter() {
            match c.to_str().unwrap() {
                "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        out.join("/")
    }

    #[test]
    fn no_page_file_uses_an_html_sink() {
        // Values are untrusted: the scripts build the page with text nodes only. (Trusted
        // Types in the CSP would also stop a string reaching these sinks at run time.)
        for name in Files::iter().filter(|n| n.ends_with(".js")) {
            let text = String::from_utf8(Files::get(&name).unwrap().data.into_owned()).unwrap();
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!text.contains(sink), "{name} uses {sink}");
            }
        }
        let html = String::from_utf8(Files::get("index.html").unwrap().data.into_owned()).unwrap();
        assert!(
            !html.contains("<script>"),
            "index.html has an inline script"
        );
        let handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "index.html has an inline event handler");
    }
}

//! The web UI's routes through the router: the pages and files (open, with the security
//! headers, cacheable by content), and the `/ext/ui/` data routes (behind the API keys, with
//! Weave-shaped errors). The browser tests are in `ui-tests/`.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::App;
use serde_json::json;

#[tokio::test]
async fn pages_and_files_are_served_with_a_strict_policy() {
    let app = App::new();
    let root = app.get("/").await;
    assert!(root.status.is_redirection(), "{:?}", root.status);
    assert_eq!(root.headers[header::LOCATION], "/ui/");

    for path in ["/ui/", "/ui/local/proj/traces", "/ui/a/b/calls/123?x=1"] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.text().contains("/ui/assets/app.js"), "{path}");
        let csp = page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        for rule in [
            "default-src 'none'",
            "script-src 'self'",
            "require-trusted-types-for 'script'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(rule), "{csp} lacks {rule}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    let js = app.get("/ui/assets/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let etag = js.headers[header::ETAG].to_str().unwrap().to_string();
    let again = app
        .send(
            Request::builder()
                .uri("/ui/assets/app.js")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.bytes.is_empty());
    let css = app.get("/ui/assets/app.css").await;
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    for missing in [
        "/ui/assets/nope.js",
        "/ui/assets/../index.html",
        "/ui/assets/lib//dom.js",
    ] {
        let r = app.get(missing).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn with_api_keys_pages_stay_open_but_data_needs_a_key() {
    let app = App::with(|s| s.with_api_keys(["k1"]));
    assert_eq!(app.get("/ui/").await.status, StatusCode::OK);
    assert_eq!(app.get("/ui/assets/app.js").await.status, StatusCode::OK);
    let body = json!({"project_id": "e/p"});
    let denied = app.post("/ext/ui/calls", &body).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(denied.reason().contains("API key"), "{}", denied.reason());
    let ok = app
        .post_raw(
            "/ext/ui/calls",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer k1"),
            ],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json(), json!({"total": 0, "calls": []}));
}

#[tokio::test]
async fn data_routes_name_what_is_wrong() {
    let app = App::new();
    let r = app.post("/ext/ui/calls", &json!({"limit": 3})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("project_id"), "{}", r.text());
    let r = app
        .post(
            "/ext/ui/calls",
            &json!({"project_id": "e/p", "sort_by": [{"field": "nope; DROP TABLE calls"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.reason().contains("unknown field"), "{}", r.reason());
    let r = app
        .post(
            "/ext/ui/compare",
            &json!({"project_id": "e/p", "call_ids": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.reason().contains("call_ids"), "{}", r.reason());
    let r = app
        .post(
            "/ext/ui/compare",
            &json!({"project_id": "e/p", "call_ids": ["nope"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = app
        .post(
            "/ext/ui/diff",
            &json!({"project_id": "e/p", "object_id": "m", "a": "v0", "b": "v1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = app
        .post("/ext/ui/evaluations", &json!({"project_id": "e/p"}))
        .await;
    assert_eq!(r.json(), json!({"runs": [], "total": 0}));
}

//! What every server test shares: fresh stores (from `weave_server::testing`, the one place a
//! store is made, so the whole suite can run against another backend: set
//! `WEAVE_TEST_STORE`), a client that drives the `Router` without a socket, and fixture
//! loading.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use weave_server::AppState;
use weave_store::TraceStore;

pub use weave_server::testing::{fresh_store, TestStore};

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// `reason` of an error body.
    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or("").to_string()
    }
}

/// A server under test: its router over a fresh store.
pub struct App {
    pub router: Router,
    pub store: Arc<dyn TraceStore>,
    _store: TestStore,
}

impl App {
    /// A router with no keys and default limits.
    pub fn new() -> App {
        App::with(|s| s)
    }

    /// A router whose state `f` configures.
    pub fn with(f: impl FnOnce(AppState) -> AppState) -> App {
        let ts = fresh_store();
        let store = ts.store.clone();
        App {
            router: weave_server::router(f(AppState::new(store.clone()))),
            store,
            _store: ts,
        }
    }

    /// Sends `req`.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        // As httpx does: undo the response's gzip.
        let bytes = if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip")
        {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .expect("gzip body");
            out
        } else {
            bytes
        };
        Answer {
            status,
            headers,
            bytes,
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// `POST path` with raw bytes and extra headers.
    pub async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut b = Request::builder().method(Method::POST).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
    }

    /// Every call of `project_id`, via the store (not the server under test).
    pub async fn stored_calls(&self, project_id: &str) -> Vec<weave_types::CallSchema> {
        self.store
            .calls_query_vec(weave_types::CallsQueryReq {
                project_id: project_id.into(),
                ..Default::default()
            })
            .await
            .expect("query")
    }
}

/// A multipart body with the text fields and one file, as the Python client sends it.
pub fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "XweaveXtestXboundaryX";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: text/x-python\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The shared folder (`WEAVE_SHARED_DIR`, else `../shared` beside the workspace).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The records of a `weave-wire` fixture file.
pub fn fixture_records(name: &str) -> Vec<Value> {
    let path = shared_dir().join("fixtures/weave-wire").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set WEAVE_SHARED_DIR)", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

/// A store that waits `delay` before every call write (`calls_complete`, `call_start`,
/// `call_end`), then does it: a slow backend, for timeouts and graceful shutdown.
pub struct Slow {
    pub inner: Arc<dyn TraceStore>,
    pub delay: std::time::Duration,
}

#[async_trait::async_trait]
impl TraceStore for Slow {
    async fn calls_complete(
        &self,
        req: weave_types::CallsCompleteReq,
    ) -> weave_store::Result<weave_types::CallsCompleteRes> {
        tokio::time::sleep(self.delay).await;
        self.inner.calls_complete(req).await
    }
    async fn call_start(
        &self,
        req: weave_types::CallStartReq,
    ) -> weave_store::Result<weave_types::CallStartRes> {
        tokio::time::sleep(self.delay).await;
        self.inner.call_start(req).await
    }
    async fn call_end(
        &self,
        req: weave_types::CallEndReq,
    ) -> weave_store::Result<weave_types::CallEndRes> {
        tokio::time::sleep(self.delay).await;
        self.inner.call_end(req).await
    }
    async fn call_update(
        &self,
        req: weave_types::CallUpdateReq,
    ) -> weave_store::Result<weave_types::CallUpdateRes> {
        self.inner.call_update(req).await
    }
    async fn calls_delete(
        &self,
        req: weave_types::CallsDeleteReq,
    ) -> weave_store::Result<weave_types::CallsDeleteRes> {
        self.inner.calls_delete(req).await
    }
    async fn call_read(
        &self,
        req: weave_types::CallReadReq,
    ) -> weave_store::Result<weave_types::CallReadRes> {
        self.inner.call_read(req).await
    }
    async fn calls_query(
        &self,
        req: weave_types::CallsQueryReq,
    ) -> weave_store::Result<weave_store::CallStream> {
        self.inner.calls_query(req).await
    }
    async fn calls_query_stats(
        &self,
        req: weave_types::CallsQueryStatsReq,
    ) -> weave_store::Result<weave_types::CallsQueryStatsRes> {
        self.inner.calls_query_stats(req).await
    }
    async fn obj_create(
        &self,
        req: weave_types::ObjCreateReq,
    ) -> weave_store::Result<weave_types::ObjCreateRes> {
        self.inner.obj_create(req).await
    }
    async fn obj_read(
        &self,
        req: weave_types::ObjReadReq,
    ) -> weave_store::Result<weave_types::ObjReadRes> {
        self.inner.obj_read(req).await
    }
    async fn objs_query(
        &self,
        req: weave_types::ObjQueryReq,
    ) -> weave_store::Result<weave_types::ObjQueryRes> {
        self.inner.objs_query(req).await
    }
    async fn table_create(
        &self,
        req: weave_types::TableCreateReq,
    ) -> weave_store::Result<weave_types::TableCreateRes> {
        self.inner.table_create(req).await
    }
    async fn table_query(
        &self,
        req: weave_types::TableQueryReq,
    ) -> weave_store::Result<weave_types::TableQueryRes> {
        self.inner.table_query(req).await
    }
    async fn table_query_stats(
        &self,
        req: weave_types::TableQueryStatsReq,
    ) -> weave_store::Result<weave_types::TableQueryStatsRes> {
        self.inner.table_query_stats(req).await
    }
    async fn file_create(
        &self,
        req: weave_types::FileCreateReq,
    ) -> weave_store::Result<weave_types::FileCreateRes> {
        self.inner.file_create(req).await
    }
    async fn file_content_read(
        &self,
        req: weave_types::FileContentReadReq,
    ) -> weave_store::Result<weave_types::FileContentReadRes> {
        self.inner.file_content_read(req).await
    }
    async fn refs_read_batch(
        &self,
        req: weave_types::RefsReadBatchReq,
    ) -> weave_store::Result<weave_types::RefsReadBatchRes> {
        self.inner.refs_read_batch(req).await
    }
    async fn feedback_create(
        &self,
        req: weave_types::FeedbackCreateReq,
    ) -> weave_store::Result<weave_types::FeedbackCreateRes> {
        self.inner.feedback_create(req).await
    }
    async fn feedback_create_batch(
        &self,
        req: weave_types::FeedbackCreateBatchReq,
    ) -> weave_store::Result<weave_types::FeedbackCreateBatchRes> {
        self.inner.feedback_create_batch(req).await
    }
    async fn feedback_query(
        &self,
        req: weave_types::FeedbackQueryReq,
    ) -> weave_store::Result<weave_types::FeedbackQueryRes> {
        self.inner.feedback_query(req).await
    }
    async fn call_ids_by_prefix(
        &self,
        req: weave_store::CallIdPrefixReq,
    ) -> weave_store::Result<Vec<weave_store::CallKey>> {
        self.inner.call_ids_by_prefix(req).await
    }
    async fn projects(&self) -> weave_store::Result<Vec<String>> {
        self.inner.projects().await
    }
    async fn call_id_neighbors(
        &self,
        project_id: Option<String>,
        id: String,
    ) -> weave_store::Result<weave_store::CallIdNeighbors> {
        self.inner.call_id_neighbors(project_id, id).await
    }
}

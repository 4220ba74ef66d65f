//! The server on a real loopback socket: refusing to serve openly beyond loopback, graceful
//! shutdown that finishes in-flight writes, and request timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fresh_store, App, Slow};
use serde_json::json;
use weave_server::{AppState, Limits, ServeError, Server, ServerConfig};
use weave_store::TraceStore;

fn call(id: &str) -> serde_json::Value {
    json!({"project_id": "ent/proj", "id": id, "trace_id": "t", "op_name": "f",
        "started_at": "2026-11-29T14:09:12.641269Z", "ended_at": "2026-11-29T14:09:12.651269Z",
        "attributes": {}, "inputs": {}, "output": 1, "summary": {}})
}

#[tokio::test]
async fn any_address_but_loopback_needs_an_api_key() {
    let ts = fresh_store();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let config = ServerConfig {
            addr: addr.parse().unwrap(),
            ..ServerConfig::default()
        };
        let e = Server::bind(&config, ts.store.clone()).await.unwrap_err();
        assert!(matches!(e, ServeError::KeysRequired(_)), "{e}");
        assert!(e.to_string().contains("--api-key"), "{e}");
    }
    // Blank keys are no keys.
    let config = ServerConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        api_keys: vec![" ".into()],
        ..ServerConfig::default()
    };
    assert!(Server::bind(&config, ts.store.clone()).await.is_err());
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::bind(&config, ts.store.clone()).await.unwrap();
    assert!(server.local_addr().ip().is_loopback());
}

#[tokio::test]
async fn shutdown_finishes_in_flight_writes_then_stops_listening() {
    let ts = fresh_store();
    let slow: Arc<dyn TraceStore> = Arc::new(Slow {
        inner: ts.store.clone(),
        delay: Duration::from_millis(600),
    });
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::bind(&config, slow).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}/v2/ent/proj/calls/complete");
    let write = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({"batch": [call("019a0000-0000-7000-8000-000000000001")]}))
            .send()
            .await
    });
    // The write is in the store's hands when the signal comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let res = write
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(res.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    let calls = ts
        .store
        .calls_query_vec(weave_types::CallsQueryReq {
            project_id: "ent/proj".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert!(
        reqwest::get(format!("http://{addr}/health")).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_request_past_the_timeout_is_504() {
    let app = App::with(|s| {
        let slow: Arc<dyn TraceStore> = Arc::new(Slow {
            inner: s.store().clone(),
            delay: Duration::from_secs(5),
        });
        AppState::new(slow).with_limits(Limits {
            request_timeout: Duration::from_millis(200),
            ..Limits::default()
        })
    });
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [call("019a0000-0000-7000-8000-000000000002")]}),
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.reason().contains("timed out"), "{}", r.text());
    // Reads are not slowed: the server goes on answering.
    let r = app.get("/health").await;
    assert_eq!(r.status, 200);
}

//! Secrets never reach a store: one planted of each kind (call input, `Debug`-only input and
//! output, output, attribute, model field, dataset row, error text, a key added in
//! `Settings`), then the bytes of the SQLite file and its WAL, and the request bodies a
//! `weave serve` receives, are searched for them. Plain markers planted next to them must be
//! found, so that a search of bytes that hold nothing readable cannot pass.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};
use weave::eval::Dataset;
use weave::sink::RemoteConfig;
use weave_server::testing::Background;

const S_INPUT: &str = "SECRET-input";
const S_DEBUG_IN: &str = "SECRET-debug-input";
const S_DEBUG_OUT: &str = "SECRET-debug-output";
const S_OUTPUT: &str = "SECRET-output";
const S_ATTR: &str = "SECRET-attribute";
const S_MODEL: &str = "SECRET-model-field";
const S_ROW: &str = "SECRET-dataset-row";
const S_ERROR: &str = "SECRET-error";
const S_CUSTOM: &str = "SECRET-custom-key";

/// Strings that must be stored in clear, one next to each secret.
const MARKERS: [&str; 6] = [
    "marker-model-name",
    "marker-debug-user",
    "marker-output",
    "marker-attribute",
    "marker-row",
    "marker-error",
];

#[derive(Serialize)]
struct Req {
    model: String,
    api_key: String,
}

/// Recorded as `Debug` text (not `Serialize`).
#[derive(Debug)]
#[allow(dead_code)]
struct Creds {
    user: String,
    api_key: String,
}

/// An error recorded through `Debug` only.
#[derive(Debug)]
#[allow(dead_code)]
struct AuthError {
    reason: &'static str,
    token: String,
}

#[derive(weave::Model, Serialize)]
struct Agent {
    name: String,
    api_key: String,
    temperature: f64,
}

#[weave::ops]
impl Agent {
    #[weave::op]
    fn predict(&self, question: &str) -> String {
        format!("{}: {question}", self.name)
    }
}

#[weave::op]
fn call_llm(req: &Req, creds: &Creds, ssn: &str) -> Value {
    weave::add_attributes(json!({"client": {"password": S_ATTR, "env": "marker-attribute"}}));
    json!({"answer": "marker-output", "model": req.model, "user": creds.user, "n": ssn.len(),
           "session_token": S_OUTPUT})
}

#[weave::op]
fn login() -> Creds {
    Creds {
        user: "marker-debug-user".into(),
        api_key: S_DEBUG_OUT.into(),
    }
}

#[weave::op]
fn refused() -> Result<u8, AuthError> {
    Err(AuthError {
        reason: "marker-error",
        token: S_ERROR.into(),
    })
}

/// Runs one of each kind of secret through the client `settings` make.
fn program(settings: weave::Settings) -> weave::WeaveClient {
    let client = settings.redact_key("ssn").quiet().build().expect("client");
    client.in_scope(|| {
        let req = Req {
            model: "m".into(),
            api_key: S_INPUT.into(),
        };
        let creds = Creds {
            user: "marker-debug-user".into(),
            api_key: S_DEBUG_IN.into(),
        };
        call_llm(&req, &creds, S_CUSTOM);
        login();
        let _ = refused();
        let agent = Agent {
            name: "marker-model-name".into(),
            api_key: S_MODEL.into(),
            temperature: 0.5,
        };
        agent.predict("q");
        let ds = Dataset::new(
            "rows",
            vec![json!({"question": "marker-row", "auth": {"token": S_ROW}})],
        );
        ds.publish();
    });
    client
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(at) = text.find("SECRET-") {
        let end = (at + 40).min(text.len());
        panic!("a secret reached {what}: {:?}", &text[at..end]);
    }
    for m in MARKERS {
        assert!(
            text.contains(m),
            "{what} does not hold {m}: the search sees nothing"
        );
    }
}

#[test]
fn no_secret_reaches_the_sqlite_file_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = program(weave::Settings::new("secrets").db_path(&db));
    client.flush().expect("flush");

    // What the store says: redacted values where the secrets were, refs that resolve.
    let store = weave_tests::Store::open(&db, "local/secrets");
    let calls = store.calls(None);
    let by_name = |n: &str| {
        calls
            .iter()
            .find(|c| c.op_display_name() == n)
            .unwrap_or_else(|| panic!("no call of {n}: {calls:#?}"))
    };
    let c = by_name("call_llm");
    assert_eq!(c.inputs["req"]["api_key"], "REDACTED");
    assert_eq!(c.inputs["ssn"], "REDACTED");
    assert_eq!(
        c.inputs["creds"],
        r#"Creds { user: "marker-debug-user", api_key: "REDACTED" }"#
    );
    assert_eq!(c.output.as_ref().unwrap()["session_token"], "REDACTED");
    assert_eq!(c.attributes["client"]["password"], "REDACTED");
    assert_eq!(
        by_name("login").output.as_ref().unwrap(),
        r#"Creds { user: "marker-debug-user", api_key: "REDACTED" }"#
    );
    let exc = by_name("refused").exception.clone().expect("exception");
    assert!(exc.contains("token: \\\"REDACTED\\\""), "{exc}");
    let agent_ref = by_name("Agent.predict").inputs["self"]
        .as_str()
        .expect("model ref")
        .to_string();
    let versions = store.versions("Agent");
    assert_eq!(versions.len(), 1);
    // The ref names the stored (redacted) version: the digest is of what is stored.
    assert!(
        agent_ref.ends_with(&format!("/object/Agent:{}", versions[0].digest)),
        "{agent_ref} vs {}",
        versions[0].digest
    );
    assert_eq!(versions[0].val["api_key"], "REDACTED");
    assert_eq!(versions[0].val["temperature"], 0.5);

    // The bytes, while the client is open (the WAL holds the records) and after it is gone.
    let bytes = |f: &str| std::fs::read(dir.path().join(f)).unwrap_or_default();
    let mut both = bytes("weave.db");
    both.extend(bytes("weave.db-wal"));
    assert_no_secret("weave.db + weave.db-wal (open)", &both);
    drop(store);
    drop(client);
    let mut both = bytes("weave.db");
    both.extend(bytes("weave.db-wal"));
    assert_no_secret("weave.db + weave.db-wal (closed)", &both);
}

/// Buffers each request body into `log`, then hands the request on.
async fn record(State(log): State<Arc<Mutex<Vec<u8>>>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    log.lock().unwrap().extend_from_slice(&bytes);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[test]
fn no_secret_reaches_a_trace_server() {
    let store = weave_server::testing::fresh_store();
    let log = Arc::new(Mutex::new(Vec::new()));
    let router = weave_server::router(weave_server::AppState::new(store.store.clone()))
        .layer(axum::middleware::from_fn_with_state(log.clone(), record));
    let server = Background::serve(router, "127.0.0.1:0".parse().unwrap());
    let mut config = RemoteConfig::new(server.url());
    config.compress = false;
    let client = program(weave::Settings::new("secrets").trace_server(config));
    client.flush().expect("flush");
    drop(client);
    server.stop();
    let bodies = log.lock().unwrap().clone();
    assert_no_secret("the request bodies", &bodies);
}

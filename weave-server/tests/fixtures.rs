//! Replays every request of the recorded Python-client traffic (`shared/fixtures/weave-wire`:
//! `session.jsonl`, `legacy-upsert-batch.jsonl`, `local-client.jsonl`) against the server's
//! router, in order, and checks each answer against the recorded one: the status, the content
//! type, the response shape (every recorded field present with the same JSON type), and the
//! values that do not depend on when the server ran: digests (our internal project id is the
//! recording server's, base64 of `entity/project`), object values, table rows, ref values,
//! file bytes, feedback ids and the calls' content and derived `summary.weave`.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request};
use base64::Engine as _;
use common::{fixture_records, Answer, App};
use serde_json::{json, Value};

/// The request of a record, rebuilt.
fn request(r: &Value) -> Request<Body> {
    let req = &r["request"];
    let method: Method = req["method"].as_str().unwrap().parse().unwrap();
    let mut b = Request::builder()
        .method(method)
        .uri(req["path"].as_str().unwrap());
    for (k, v) in req["headers"].as_object().unwrap() {
        // Scrubbed or transport-level headers are not replayed.
        let k = k.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "host" | "content-length" | "authorization" | "content-type" | "connection"
        ) {
            continue;
        }
        b = b.header(k, v.as_str().unwrap());
    }
    let body = &req["body"];
    match body["kind"].as_str().unwrap() {
        "empty" => b.body(Body::empty()).unwrap(),
        "json" => b
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body["json"]).unwrap()))
            .unwrap(),
        "multipart" => {
            type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>);
            let parts: Vec<Part> = body["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let bytes = match (p["text"].as_str(), p["base64"].as_str()) {
                        (Some(t), _) => t.as_bytes().to_vec(),
                        (None, Some(b)) => {
                            base64::engine::general_purpose::STANDARD.decode(b).unwrap()
                        }
                        _ => panic!("part without content: {p}"),
                    };
                    (
                        p["name"].as_str().unwrap(),
                        p["filename"].as_str(),
                        p["content_type"].as_str(),
                        bytes,
                    )
                })
                .collect();
            let boundary = "fixture-boundary-1234";
            let mut out = Vec::new();
            for (name, filename, ct, bytes) in parts {
                out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
                if let Some(f) = filename {
                    disp.push_str(&format!("; filename=\"{f}\""));
                }
                out.extend_from_slice(disp.as_bytes());
                out.extend_from_slice(b"\r\n");
                if let Some(ct) = ct {
                    out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&bytes);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            b.header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(out))
            .unwrap()
        }
        other => panic!("request body kind {other}"),
    }
}

/// Checks that `ours` has every field of `recorded`, with the same JSON type, recursively;
/// arrays element by element. A recorded `null` is an optional field (the client's models
/// default it to `None`): ours may leave it out or fill it.
///
/// `wb_user_id` is the one field whose presence depends on the server's users: the recording
/// server put its one user (`local-user`) in every row; ours has no user accounts (API keys
/// are not users) and leaves it `null`, which the client's models allow.
fn same_shape(recorded: &Value, ours: &Value, at: &str, errors: &mut Vec<String>) {
    match (recorded, ours) {
        (Value::Null, _) => {}
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                match o.get(k) {
                    Some(Value::Null) if k == "wb_user_id" => {}
                    Some(ov) => same_shape(rv, ov, &format!("{at}.{k}"), errors),
                    None if rv.is_null() => {}
                    None => errors.push(format!("{at}.{k}: missing")),
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if r.len() != o.len() {
                errors.push(format!("{at}: {} items, recorded {}", o.len(), r.len()));
            }
            for (i, (rv, ov)) in r.iter().zip(o).enumerate() {
                same_shape(rv, ov, &format!("{at}[{i}]"), errors);
            }
        }
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => {}
        (r, o) => errors.push(format!("{at}: {o} where the recording has {r}")),
    }
}

/// The fields of a call that do not depend on the server's clock.
fn call_view(c: &Value) -> Value {
    json!({
        "id": c["id"], "project_id": c["project_id"], "op_name": c["op_name"],
        "parent_id": c["parent_id"], "trace_id": c["trace_id"], "display_name": c["display_name"],
        "started_at": c["started_at"], "ended_at": c["ended_at"], "attributes": c["attributes"],
        "inputs": c["inputs"], "output": c["output"], "exception": c["exception"],
        "summary": c["summary"],
    })
}

/// The fields of an object version that do not depend on the server's clock.
fn obj_view(o: &Value) -> Value {
    json!({
        "project_id": o["project_id"], "object_id": o["object_id"], "digest": o["digest"],
        "version_index": o["version_index"], "is_latest": o["is_latest"], "kind": o["kind"],
        "base_object_class": o["base_object_class"], "leaf_object_class": o["leaf_object_class"],
        "val": o["val"], "deleted_at": o["deleted_at"],
    })
}

/// The values of an answer that must equal the recording's, by route.
fn stable_values(route: &str, body: &Value) -> Value {
    match route {
        "obj/create" | "file/create" | "table/create" | "refs/read_batch" | "table/query"
        | "table/query_stats" | "calls/query_stats" | "server_info/status" => body.clone(),
        "obj/read" => match body.get("obj") {
            Some(o) => obj_view(o),
            None => body.clone(), // an error body
        },
        "objs/query" => Value::Array(
            body["objs"]
                .as_array()
                .unwrap()
                .iter()
                .map(obj_view)
                .collect(),
        ),
        "feedback/batch/create" => Value::Array(
            body["res"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| json!({"id": f["id"], "payload": f["payload"]}))
                .collect(),
        ),
        "call/start" | "calls/complete" | "call/end" | "call/update" | "call/upsert_batch" => {
            body.clone()
        }
        "graphql" => {
            // Which operation was answered, and the project's existence and name.
            let data = &body["data"];
            json!({"project": data.get("project"), "upsertModel": data.get("upsertModel"),
                   "viewer": data.get("viewer").map(|_| "viewer")})
        }
        _ => Value::Null,
    }
}

fn route_of(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/v2/") {
        rest.splitn(3, '/').nth(2).unwrap().to_string()
    } else {
        path.trim_start_matches('/').to_string()
    }
}

async fn replay(file: &str) -> BTreeMap<String, usize> {
    let app = App::new();
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for r in fixture_records(file) {
        let seq = r["seq"].clone();
        let path = r["request"]["path"].as_str().unwrap().to_string();
        let route = route_of(&path);
        let got: Answer = app.send(request(&r)).await;
        let rec = &r["response"];
        let want_status = rec["status"].as_u64().unwrap();
        let mut errors = Vec::new();
        if u64::from(got.status.as_u16()) != want_status {
            errors.push(format!(
                "status {} (recorded {want_status}): {}",
                got.status,
                got.text()
            ));
        } else {
            let want_ct = rec["headers"]["Content-Type"].as_str().unwrap_or("");
            let got_ct = got
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            if !got_ct.starts_with(want_ct) {
                errors.push(format!("content type {got_ct:?}, recorded {want_ct:?}"));
            }
            let body = &rec["body"];
            match body["kind"].as_str().unwrap() {
                "json" => {
                    let ours = got.json();
                    same_shape(&body["json"], &ours, "", &mut errors);
                    let (w, g) = (
                        stable_values(&route, &body["json"]),
                        stable_values(&route, &ours),
                    );
                    if w != g {
                        errors.push(format!("values differ:\n  recorded {w}\n  ours     {g}"));
                    }
                }
                "jsonl" => {
                    let text = got.text();
                    if text.lines().any(|l| l.trim().is_empty()) {
                        errors.push("a blank line in the JSON-lines answer".into());
                    }
                    let ours: Vec<Value> = text
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    let want = body["jsonl"].as_array().unwrap();
                    same_shape(&Value::Array(want.clone()), &json!(ours), "", &mut errors);
                    let w: Vec<Value> = want.iter().map(call_view).collect();
                    let g: Vec<Value> = ours.iter().map(call_view).collect();
                    if w != g {
                        errors.push(format!(
                            "calls differ:\n  recorded {}\n  ours     {}",
                            json!(w),
                            json!(g)
                        ));
                    }
                }
                "bytes" => {
                    let want = body["text"].as_str().unwrap();
                    if got.text() != want {
                        errors.push(format!("bytes {:?}, recorded {want:?}", got.text()));
                    }
                }
                "empty" => {
                    if !got.bytes.is_empty() {
                        errors.push(format!("body {:?}, recorded none", got.text()));
                    }
                }
                other => panic!("response kind {other}"),
            }
        }
        if !errors.is_empty() {
            failures.push(format!(
                "{file} seq {seq} {} {path}:\n    {}",
                r["request"]["method"].as_str().unwrap(),
                errors.join("\n    ")
            ));
        }
        *counts
            .entry(format!("{} -> {want_status}", route))
            .or_default() += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    counts
}

#[tokio::test]
async fn session_replays_with_recorded_statuses_shapes_and_digests() {
    let counts = replay("session.jsonl").await;
    // Every request was replayed, including the 404s of the missing object.
    assert_eq!(counts.values().sum::<usize>(), 62, "{counts:?}");
    assert_eq!(counts["obj/read -> 404"], 3, "{counts:?}");
    assert_eq!(counts["obj/create -> 200"], 13, "{counts:?}");
    assert_eq!(counts["graphql -> 200"], 3, "{counts:?}");
}

#[tokio::test]
async fn legacy_upsert_batch_session_replays() {
    let counts = replay("legacy-upsert-batch.jsonl").await;
    assert_eq!(counts.values().sum::<usize>(), 12, "{counts:?}");
    assert_eq!(counts["call/upsert_batch -> 200"], 2, "{counts:?}");
}

#[tokio::test]
async fn local_client_session_replays() {
    let counts = replay("local-client.jsonl").await;
    assert_eq!(counts.values().sum::<usize>(), 10, "{counts:?}");
    assert_eq!(counts["calls/stream_query -> 200"], 1, "{counts:?}");
}

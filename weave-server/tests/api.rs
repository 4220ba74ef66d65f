//! The server's routes driven through the `Router` (no socket): what the Python client needs,
//! and every way a request can be refused (each refusal changes nothing in the store).

mod common;

use std::io::Write as _;

use axum::http::StatusCode;
use base64::Engine as _;
use common::{multipart, App};
use serde_json::{json, Value};
use weave_server::{AppState, Limits};
use weave_types::digest::digest_bytes;

const P: &str = "ent/proj";

fn call(id: &str, parent: Option<&str>, project: &str) -> Value {
    json!({
        "project_id": project, "id": id, "trace_id": "019a0000-0000-7000-8000-00000000aaaa",
        "op_name": format!("weave:///{project}/op/f:abc"), "display_name": null,
        "parent_id": parent, "thread_id": null, "turn_id": null,
        "started_at": "2026-11-29T14:09:12.641269Z", "ended_at": "2026-11-29T14:09:12.651269Z",
        "attributes": {"weave": {"source": "test"}}, "inputs": {"x": 1}, "output": 2,
        "summary": {"status_counts": {"success": 1, "error": 0}}, "exception": null,
        "otel_dump": null, "wb_user_id": null, "wb_run_id": null, "wb_run_step": null,
        "wb_run_step_end": null,
        // Fields newer than the types: ignored.
        "brand_new_field": {"x": 1}
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn server_info_health_and_ready() {
    let app = App::new();
    let info = app.get("/server_info").await;
    assert_eq!(info.status, StatusCode::OK);
    let info = info.json();
    assert_eq!(info["min_required_weave_python_version"], "0.0.0");
    let v = info["trace_server_version"].as_str().unwrap();
    assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
    assert_eq!(
        info["request_content_encodings"],
        json!(["gzip", "deflate"])
    );
    assert_eq!(app.get("/health").await.json(), json!({"status": "ok"}));
    let ready = app.get("/ready").await;
    assert_eq!(
        (ready.status, ready.json()),
        (StatusCode::OK, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn calls_complete_then_stream_query_as_json_lines() {
    let app = App::new();
    let (root, child) = (
        "019a0000-0000-7000-8000-000000000001",
        "019a0000-0000-7000-8000-000000000002",
    );
    // The child first, as the client sends them.
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [call(child, Some(root), P), call(root, None, P)]}),
        )
        .await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({})));

    let q = json!({"project_id": P, "filter": {"trace_roots_only": null, "op_names": null},
        "limit": 1000, "offset": 0, "sort_by": null, "query": null, "columns": null,
        "include_feedback": false, "latest_only": false, "future": 1});
    let r = app.post("/calls/stream_query", &q).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/jsonl");
    let text = r.text();
    assert!(text.ends_with('\n'), "{text:?}");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| !l.trim().is_empty()), "no blank lines");
    let calls: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [root, child], "started_at then id");
    assert_eq!(calls[1]["parent_id"], root);
    assert_eq!(
        calls[0]["summary"]["weave"],
        json!({"status": "success", "trace_name": "f", "latency_ms": 10})
    );

    // No match: an empty body, not a blank line.
    let mut q2 = q.clone();
    q2["filter"]["call_ids"] = json!(["nope"]);
    let r = app.post("/calls/stream_query", &q2).await;
    assert_eq!((r.status, r.bytes.len()), (StatusCode::OK, 0));

    let r = app
        .post(
            "/calls/query_stats",
            &json!({"project_id": P, "filter": {"trace_roots_only": true}, "query": null,
                    "limit": null, "include_total_storage_size": false, "expand_columns": null}),
        )
        .await;
    assert_eq!(r.json(), json!({"count": 1, "total_storage_size_bytes": 0}));
    let r = app.post("/calls/query", &json!({"project_id": P})).await;
    assert_eq!(r.json()["calls"].as_array().unwrap().len(), 2);
    let r = app
        .post("/call/read", &json!({"project_id": P, "id": child}))
        .await;
    assert_eq!(r.json()["call"]["id"], child);
}

#[tokio::test]
async fn eager_start_shows_running_until_its_end() {
    let app = App::new();
    let id = "019a0000-0000-7000-8000-0000000000e1";
    let start = json!({"start": {"project_id": P, "id": id, "trace_id": "019a0000-0000-7000-8000-0000000000e2",
        "op_name": "weave:///ent/proj/op/Evaluation.evaluate:x", "started_at": "2026-11-29T14:00:00Z",
        "attributes": {}, "inputs": {}, "display_name": "eval-1", "parent_id": null,
        "thread_id": null, "turn_id": null, "otel_dump": null, "wb_user_id": null,
        "wb_run_id": null, "wb_run_step": null}});
    let r = app.post("/v2/ent/proj/call/start", &start).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], id);
    let calls = app.stored_calls(P).await;
    assert_eq!(calls[0].summary["weave"]["status"], "running");
    let end = json!({"end": {"project_id": P, "id": id, "ended_at": "2026-11-29T14:00:02Z",
        "output": {"acc": 1.0}, "summary": {"status_counts": {"success": 1, "error": 0}},
        "exception": null, "is_eval": true, "trace_id": "t", "started_at": "2026-11-29T14:00:00Z",
        "wb_run_step_end": null}});
    let r = app.post("/v2/ent/proj/call/end", &end).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({})));
    let calls = app.stored_calls(P).await;
    assert_eq!(calls[0].summary["weave"]["status"], "success");
    assert_eq!(calls[0].summary["weave"]["latency_ms"], 2000);
}

#[tokio::test]
async fn legacy_upsert_batch_pairs_starts_and_ends() {
    let app = App::new();
    let c = call("019a0000-0000-7000-8000-0000000000c1", None, P);
    let lone = "019a0000-0000-7000-8000-0000000000c2";
    let body = json!({"batch": [
        {"mode": "start", "req": {"start": {"project_id": P, "id": c["id"], "trace_id": c["trace_id"],
            "op_name": c["op_name"], "started_at": c["started_at"], "attributes": {}, "inputs": {"a": 1}}}},
        {"mode": "start", "req": {"start": {"project_id": P, "id": lone, "trace_id": "t2",
            "op_name": "g", "started_at": c["started_at"], "attributes": {}, "inputs": {}}}},
        {"mode": "end", "req": {"end": {"project_id": P, "id": c["id"], "ended_at": c["ended_at"],
            "output": 5, "summary": {}, "exception": null}}},
    ]});
    let r = app.post("/call/upsert_batch", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"res": [{"id": c["id"], "trace_id": c["trace_id"]}, {"id": lone, "trace_id": "t2"}, {}]})
    );
    let calls = app.stored_calls(P).await;
    assert_eq!(calls.len(), 2);
    let done = calls.iter().find(|x| x.id == c["id"]).unwrap();
    assert_eq!(done.output, Some(json!(5)));
    assert_eq!(done.inputs["a"], 1);
    let running = calls.iter().find(|x| x.id == lone).unwrap();
    assert!(running.ended_at.is_none());
}

#[tokio::test]
async fn a_body_that_does_not_fit_is_422_naming_the_field_and_stores_nothing() {
    let app = App::new();
    let mut bad = call("019a0000-0000-7000-8000-000000000003", None, P);
    bad.as_object_mut().unwrap().remove("started_at");
    let good = call("019a0000-0000-7000-8000-000000000004", None, P);
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [good, bad]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let body = r.json();
    assert!(
        body["reason"].as_str().unwrap().contains("batch[1]"),
        "{body}"
    );
    assert!(
        body["reason"].as_str().unwrap().contains("started_at"),
        "{body}"
    );
    assert_eq!(body["detail"][0]["loc"], json!(["body", "batch", 1]));
    assert!(app.stored_calls(P).await.is_empty(), "nothing half-written");

    // A well-formed body the store refuses (a bad timestamp): 400 naming the field, no rows.
    let mut late = call("019a0000-0000-7000-8000-000000000005", None, P);
    late["ended_at"] = json!("yesterday");
    let good = call("019a0000-0000-7000-8000-000000000006", None, P);
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [good, late]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["field"], "batch[1].ended_at");
    assert!(app.stored_calls(P).await.is_empty());

    // Not JSON at all.
    let r = app
        .post_raw(
            "/obj/create",
            &[("content-type", "application/json")],
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.reason().contains("invalid request body"), "{}", r.text());
    // No body.
    let r = app.post_raw("/calls/stream_query", &[], Vec::new()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.reason().contains("empty"), "{}", r.text());
}

#[tokio::test]
async fn wrong_project_is_refused_and_projects_are_isolated() {
    let app = App::new();
    // The path says one project, an item another: 400, nothing stored in either.
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [call("019a0000-0000-7000-8000-000000000007", None, P),
                              call("019a0000-0000-7000-8000-000000000008", None, "other/proj")]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["field"], "batch[1].project_id");
    assert!(app.stored_calls(P).await.is_empty());
    assert!(app.stored_calls("other/proj").await.is_empty());
    // Not a project id at all.
    let r = app
        .post("/calls/stream_query", &json!({"project_id": "noslash"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.reason().contains("project_id"), "{}", r.text());

    // Data in one project is invisible from another.
    let id = "019a0000-0000-7000-8000-000000000009";
    let r = app
        .post(
            "/v2/ent/proj/calls/complete",
            &json!({"batch": [call(id, None, P)]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            "/calls/stream_query",
            &json!({"project_id": "ent/other", "filter": {"call_ids": [id]}}),
        )
        .await;
    assert_eq!((r.status, r.bytes.len()), (StatusCode::OK, 0));
    let r = app
        .post("/call/read", &json!({"project_id": "ent/other", "id": id}))
        .await;
    assert_eq!(r.json()["call"], Value::Null);
    let obj = json!({"obj": {"project_id": P, "object_id": "thing", "val": {"a": 1}}});
    assert_eq!(app.post("/obj/create", &obj).await.status, StatusCode::OK);
    let r = app
        .post(
            "/obj/read",
            &json!({"project_id": "ent/other", "object_id": "thing", "digest": "latest"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn objects_versions_and_refs() {
    let app = App::new();
    let create = |v: Value| {
        json!({"obj": {"project_id": P, "object_id": "cfg", "val": v,
        "builtin_object_class": null, "expected_digest": null, "wb_user_id": null}})
    };
    let a = app
        .post("/obj/create", &create(json!({"k": 1})))
        .await
        .json();
    let b = app
        .post("/obj/create", &create(json!({"k": 2})))
        .await
        .json();
    assert_eq!(a["object_id"], "cfg");
    assert_ne!(a["digest"], b["digest"]);
    let read = |d: &str| {
        json!({"project_id": P, "object_id": "cfg", "digest": d,
        "include_tags_and_aliases": false, "metadata_only": false})
    };
    let r = app.post("/obj/read", &read("v0")).await.json();
    assert_eq!(
        (r["obj"]["digest"].clone(), r["obj"]["val"]["k"].clone()),
        (a["digest"].clone(), json!(1))
    );
    let r = app.post("/obj/read", &read("latest")).await.json();
    assert_eq!(r["obj"]["version_index"], 1);
    let r = app.post("/obj/read", &read("nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({"reason": "Obj cfg:nope not found"}));

    // A wrong expected digest: 409, told not to retry, and no new version.
    let mut c = create(json!({"k": 3}));
    c["obj"]["expected_digest"] = json!("AAAA");
    let r = app.post("/obj/create", &c).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.headers["x-should-retry"], "false");
    let r = app.post("/obj/read", &read("latest")).await.json();
    assert_eq!(r["obj"]["version_index"], 1);

    let q = json!({"project_id": P, "filter": {"object_ids": ["cfg"], "latest_only": true, "is_op": false}});
    let r = app.post("/objs/query", &q).await.json();
    assert_eq!(r["objs"].as_array().unwrap().len(), 1);
    let uri = format!(
        "weave:///{P}/object/cfg:{}/key/k",
        b["digest"].as_str().unwrap()
    );
    let r = app.post("/refs/read_batch", &json!({"refs": [uri]})).await;
    assert_eq!(r.json(), json!({"vals": [2]}));
}

#[tokio::test]
async fn tables_and_files() {
    let app = App::new();
    let rows = json!([{"q": "a"}, {"q": "b"}, {"q": "a"}]);
    let r = app
        .post(
            "/table/create",
            &json!({"table": {"project_id": P, "rows": rows, "expected_digest": null}}),
        )
        .await
        .json();
    let digest = r["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    assert_eq!(r["row_digests"][0], r["row_digests"][2]);
    let r = app
        .post(
            "/table/query_stats",
            &json!({"project_id": P, "digest": digest}),
        )
        .await;
    assert_eq!(r.json(), json!({"count": 3}));
    let r = app
        .post("/table/query", &json!({"project_id": P, "digest": digest, "filter": null, "limit": 2, "offset": 1, "sort_by": null}))
        .await
        .json();
    let got: Vec<(Value, Value)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["val"]["q"].clone(), x["original_index"].clone()))
        .collect();
    assert_eq!(got, [(json!("b"), json!(1)), (json!("a"), json!(2))]);

    let code = b"import weave\n\n@weave.op\ndef f():\n    return 1\n";
    let want = digest_bytes(code);
    let (ct, body) = multipart(
        &[("project_id", P), ("expected_digest", &want)],
        ("obj.py", code),
    );
    let r = app
        .post_raw("/file/create", &[("content-type", &ct)], body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"digest": want}));
    let r = app
        .post("/file/content", &json!({"project_id": P, "digest": want}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.bytes, code);
    let r = app
        .post("/file/content", &json!({"project_id": P, "digest": "nope"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A client digest that is not the file's: 409, and the file is not stored under either.
    let (ct, body) = multipart(
        &[("project_id", P), ("expected_digest", "wrong")],
        ("obj.py", b"other"),
    );
    let r = app
        .post_raw("/file/create", &[("content-type", &ct)], body)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .post(
            "/file/content",
            &json!({"project_id": P, "digest": digest_bytes(b"other")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Missing the file part, or not multipart at all: 400 naming it.
    let (ct, body) = multipart(&[("project_id", P)], ("obj.py", b"x"));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("name=\"file\"", "name=\"other\"");
    let r = app
        .post_raw("/file/create", &[("content-type", &ct)], body.into_bytes())
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("file"))
    );
    let r = app.post("/file/create", &json!({"project_id": P})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.reason().contains("multipart"), "{}", r.text());
}

/// Rows of a table, in order, as `table/query` answers.
async fn table_rows(app: &App, digest: &str) -> Vec<Value> {
    let r = app
        .post("/table/query", &json!({"project_id": P, "digest": digest}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["val"].clone())
        .collect()
}

/// What the Python client does with tables over 1000 rows: rows in chunks through
/// `table/create`, then the table from their digests (probed first with none), or, where that
/// is missing, `table/update` appends; `Dataset.add_rows` uses `table/update` too.
#[tokio::test]
async fn large_tables_from_chunks_and_updates() {
    let app = App::new();
    let chunk = |from: u64, to: u64| -> Value { (from..to).map(|i| json!({"i": i})).collect() };
    let mut all_digests = Vec::new();
    for (from, to) in [(0, 3), (3, 5)] {
        let r = app
            .post(
                "/table/create",
                &json!({"table": {"project_id": P, "rows": chunk(from, to)}}),
            )
            .await
            .json();
        all_digests.extend(r["row_digests"].as_array().unwrap().iter().cloned());
    }
    // The probe: no rows is a table too (200, not 404).
    let r = app
        .post(
            "/table/create_from_digests",
            &json!({"project_id": P, "row_digests": [], "expected_digest": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let digests: Vec<String> = all_digests
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let want = weave_types::digest::table_digest(&digests);
    let r = app
        .post(
            "/table/create_from_digests",
            &json!({"project_id": P, "row_digests": digests, "expected_digest": want}),
        )
        .await;
    assert_eq!(r.json(), json!({"digest": want}));
    // The same digest as one table/create of all five rows.
    let whole = app
        .post(
            "/table/create",
            &json!({"table": {"project_id": P, "rows": chunk(0, 5)}}),
        )
        .await
        .json();
    assert_eq!(whole["digest"], json!(want));
    assert_eq!(
        table_rows(&app, &want).await,
        chunk(0, 5).as_array().unwrap().clone()
    );

    // Rows of another project, or never stored: 400 naming the digest's position; nothing made.
    let other = app
        .post(
            "/table/create",
            &json!({"table": {"project_id": "ent/other", "rows": [{"secret": 1}]}}),
        )
        .await
        .json();
    let r = app
        .post(
            "/table/create_from_digests",
            &json!({"project_id": P, "row_digests": [digests[0], other["row_digests"][0]]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("row_digests[1]")),
        "{}",
        r.text()
    );
    let made = weave_types::digest::table_digest(&[
        digests[0].clone(),
        other["row_digests"][0].as_str().unwrap().to_string(),
    ]);
    let r = app
        .post(
            "/table/query_stats",
            &json!({"project_id": P, "digest": made}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A wrong expected digest: 409.
    let r = app
        .post(
            "/table/create_from_digests",
            &json!({"project_id": P, "row_digests": [digests[0]], "expected_digest": want}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // table/update: a new table; the base is unchanged.
    let r = app
        .post(
            "/table/update",
            &json!({"project_id": P, "base_digest": want, "updates": [
                {"append": {"row": {"i": 5}}},
                {"insert": {"index": 0, "row": {"i": -1}}},
                {"pop": {"index": 3}}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = r.json();
    let updated = r["digest"].as_str().unwrap().to_string();
    assert_eq!(
        r["updated_row_digests"],
        json!([
            weave_types::digest::row_digest(&json!({"i": 5})),
            weave_types::digest::row_digest(&json!({"i": -1}))
        ])
    );
    let ids: Vec<i64> = table_rows(&app, &updated)
        .await
        .iter()
        .map(|v| v["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [-1, 0, 1, 3, 4, 5]);
    assert_eq!(table_rows(&app, &want).await.len(), 5);
    // Bad updates name the update; an unknown base is 404.
    let r = app
        .post(
            "/table/update",
            &json!({"project_id": P, "base_digest": want, "updates": [{"pop": {"index": 9}}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("updates[0].pop.index"))
    );
    let r = app
        .post(
            "/table/update",
            &json!({"project_id": P, "base_digest": "0".repeat(64), "updates": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn projects_info_gives_the_internal_ids() {
    let app = App::new();
    let r = app
        .post(
            "/service/projects_info",
            &json!({"project_ids": ["myent/myproj"]}),
        )
        .await;
    // The internal id the recorded server used for this project (spec §9).
    assert_eq!(
        r.json(),
        json!([{"external_project_id": "myent/myproj", "internal_project_id": "bXllbnQvbXlwcm9q"}])
    );
    let r = app
        .post(
            "/service/projects_info",
            &json!({"project_ids": ["ok/p", "no-slash"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("project_ids[1]"))
    );
}

#[tokio::test]
async fn feedback_batch_keeps_ids_and_shows_on_calls() {
    let app = App::new();
    let id = "019a0000-0000-7000-8000-0000000000f1";
    app.post(
        "/v2/ent/proj/calls/complete",
        &json!({"batch": [call(id, None, P)]}),
    )
    .await;
    let fid = "019a0000-0000-7000-8000-0000000000f2";
    let item = json!({"project_id": P, "weave_ref": format!("weave:///{P}/call/{id}"),
        "feedback_type": "wandb.runnable.exact", "payload": {"output": true},
        "runnable_ref": null, "call_ref": null, "id": fid, "scorer_tags": [], "span_status_code": "UNSET"});
    let r = app
        .post("/feedback/batch/create", &json!({"batch": [item]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["res"][0]["id"], fid);
    let r = app
        .post("/feedback/query", &json!({"project_id": P}))
        .await
        .json();
    assert_eq!(r["result"][0]["feedback_type"], "wandb.runnable.exact");
    let r = app
        .post(
            "/calls/stream_query",
            &json!({"project_id": P, "include_feedback": true}),
        )
        .await;
    let c: Value = serde_json::from_str(r.text().trim_end()).unwrap();
    assert_eq!(c["summary"]["weave"]["feedback"][0]["id"], fid);
}

#[tokio::test]
async fn graphql_operations_of_weave_init() {
    let app = App::new();
    let q = |query: &str, vars: Value| json!({"query": query, "variables": vars});
    let project = "query Project($name: String!, $entityName: String!) {\n  project(name: $name, entityName: $entityName) {\n    name\n  }\n}";
    let r = app
        .post(
            "/graphql",
            &q(project, json!({"entityName": "ent", "name": "proj"})),
        )
        .await;
    assert_eq!(r.json(), json!({"data": {"project": null}}));
    let upsert = "mutation UpsertModel($name: String!, $id: String, $entity: String!) { upsertModel(input: {id: $id, name: $name, entityName: $entity}) { model { name description } } }";
    let r = app
        .post(
            "/graphql",
            &q(
                upsert,
                json!({"name": "proj", "entity": "ent", "description": null}),
            ),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"data": {"upsertModel": {"model": {"name": "proj", "description": null}}}})
    );
    let r = app
        .post("/graphql", &json!({"query": "query DefaultEntity {\n  viewer {\n    username\n    defaultEntity {\n      name\n    }\n  }\n}"}))
        .await
        .json();
    assert_eq!(r["data"]["viewer"]["defaultEntity"]["name"], "local");
    // Once the project has data it exists.
    app.post(
        "/v2/ent/proj/calls/complete",
        &json!({"batch": [call("019a0000-0000-7000-8000-0000000000a1", None, P)]}),
    )
    .await;
    let r = app
        .post(
            "/graphql",
            &q(project, json!({"entityName": "ent", "name": "proj"})),
        )
        .await;
    assert_eq!(r.json(), json!({"data": {"project": {"name": "proj"}}}));
    let r = app
        .post("/graphql", &json!({"query": "query Other { x }"}))
        .await
        .json();
    assert!(r["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("query Other"));
}

#[tokio::test]
async fn extensions_under_ext() {
    let app = App::new();
    let ids = [
        "019a0000-0000-7000-8000-0000000000b1",
        "019a0000-0000-7000-8000-0000000000b2",
        "019a0000-0000-7000-9000-0000000000b3",
    ];
    let batch: Vec<Value> = ids.iter().map(|i| call(i, None, P)).collect();
    app.post("/v2/ent/proj/calls/complete", &json!({"batch": batch}))
        .await;
    let r = app.post_raw("/ext/projects", &[], Vec::new()).await;
    assert_eq!(r.json(), json!({"projects": [P]}));
    let r = app
        .post(
            "/ext/calls/id_prefix",
            &json!({"project_id": P, "prefix": "019a0000-0000-7000-8", "limit": 10}),
        )
        .await
        .json();
    let got: Vec<&str> = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, &ids[..2]);
    let r = app
        .post(
            "/ext/calls/id_neighbors",
            &json!({"project_id": P, "id": ids[1]}),
        )
        .await
        .json();
    assert_eq!(r, json!({"before": ids[0], "after": ids[2]}));
}

#[tokio::test]
async fn unknown_routes_are_404_in_weaves_shape_and_the_ui_paths_are_free() {
    let app = App::new();
    let r = app.post("/otel/v1/traces", &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.reason(), "no route POST /otel/v1/traces");
    for path in ["/", "/ui", "/ui/calls"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn gzip_bodies_are_accepted_within_the_limit() {
    let app = App::with(|s| {
        s.with_limits(Limits {
            body_limit: 64 * 1024,
            ..Limits::default()
        })
    });
    let id = "019a0000-0000-7000-8000-0000000000d1";
    let body = serde_json::to_vec(&json!({"batch": [call(id, None, P)]})).unwrap();
    let r = app
        .post_raw(
            "/v2/ent/proj/calls/complete",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            gzip(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(app.stored_calls(P).await.len(), 1);

    // Oversized plain, and small compressed but oversized once inflated: 413, nothing stored.
    let mut big = call("019a0000-0000-7000-8000-0000000000d2", None, P);
    big["inputs"]["blob"] = json!("x".repeat(100 * 1024));
    let body = serde_json::to_vec(&json!({"batch": [big]})).unwrap();
    let r = app
        .post_raw(
            "/v2/ent/proj/calls/complete",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json(), json!({"reason": "Request too large"}));
    let packed = gzip(&body);
    assert!(packed.len() < 64 * 1024);
    let r = app
        .post_raw(
            "/v2/ent/proj/calls/complete",
            &[("content-encoding", "gzip")],
            packed,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // An encoding the server cannot read, and a body that is not gzip.
    let r = app
        .post_raw(
            "/v2/ent/proj/calls/complete",
            &[("content-encoding", "br")],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.reason().contains("br"), "{}", r.text());
    let r = app
        .post_raw(
            "/v2/ent/proj/calls/complete",
            &[("content-encoding", "gzip")],
            b"not gzip".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.stored_calls(P).await.len(), 1, "only the first call");

    // Multipart past the limit.
    let big = vec![b'x'; 100 * 1024];
    let (ct, body) = multipart(&[("project_id", P)], ("big.bin", &big));
    let r = app
        .post_raw("/file/create", &[("content-type", &ct)], body)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
}

#[tokio::test]
async fn responses_are_gzipped_when_asked() {
    let app = App::new();
    let batch: Vec<Value> = (0..20)
        .map(|i| {
            call(
                &format!("019a0000-0000-7000-8000-0000000001{i:02}"),
                None,
                P,
            )
        })
        .collect();
    app.post("/v2/ent/proj/calls/complete", &json!({"batch": batch}))
        .await;
    let r = app
        .post_raw(
            "/calls/stream_query",
            &[("accept-encoding", "gzip, deflate")],
            serde_json::to_vec(&json!({"project_id": P})).unwrap(),
        )
        .await;
    assert_eq!(r.headers["content-encoding"], "gzip");
    // (The test client undoes the gzip, as httpx does.)
    assert_eq!(r.text().lines().count(), 20);
}

fn basic(user: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
    )
}

#[tokio::test]
async fn api_keys_guard_every_route_but_the_probes() {
    let app = App::with(|s: AppState| s.with_api_keys(["k-one", "k-two"]));
    let body = serde_json::to_vec(
        &json!({"batch": [call("019a0000-0000-7000-8000-0000000000aa", None, P)]}),
    )
    .unwrap();
    let path = "/v2/ent/proj/calls/complete";
    let anonymous = basic("", "");
    for auth in [
        None,
        Some(anonymous.as_str()),
        Some("Bearer wrong"),
        Some("Digest abc"),
        Some("Basic ???"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let r = app.post_raw(path, &headers, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}: {}", r.text());
        assert!(!r.reason().is_empty());
        assert!(r.headers.contains_key("www-authenticate"));
    }
    assert!(
        app.stored_calls(P).await.is_empty(),
        "nothing written without a key"
    );
    let r = app.get("/server_info").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);

    let good = basic("api", "k-one");
    let r = app
        .post_raw(path, &[("authorization", &good)], body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app
        .post_raw(path, &[("authorization", "Bearer k-two")], body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.stored_calls(P).await.len(), 1);
}

#[tokio::test]
async fn replicas_over_one_store_answer_alike() {
    // Two servers, each with its own handle on the same store: what one takes, the other
    // serves (the server keeps nothing of its own).
    let ts = common::fresh_store();
    let a = weave_server::router(AppState::new(ts.store.clone()));
    let b = weave_server::router(AppState::new(ts.replica()));
    let send = |r: axum::Router, path: &str, body: Value| {
        let req = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        async move {
            use http_body_util::BodyExt as _;
            use tower::ServiceExt as _;
            let res = r.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let id = "019a0000-0000-7000-8000-0000000000ab";
    let (s, _) = send(
        a.clone(),
        "/v2/ent/proj/calls/complete",
        json!({"batch": [call(id, None, P)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let obj = json!({"obj": {"project_id": P, "object_id": "cfg", "val": {"k": 1}}});
    let (s, created) = send(b.clone(), "/obj/create", obj).await;
    assert_eq!(s, StatusCode::OK);
    let (_, lines) = send(b, "/calls/stream_query", json!({"project_id": P})).await;
    assert_eq!(lines.lines().count(), 1);
    assert!(lines.contains(id));
    let (s, read) = send(
        a,
        "/obj/read",
        json!({"project_id": P, "object_id": "cfg", "digest": "latest"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let created: Value = serde_json::from_str(&created).unwrap();
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["obj"]["digest"], created["digest"]);
}

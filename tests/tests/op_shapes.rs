//! `#[weave::op]` on every shape of function, recorded into the real SQLite store.

use serde::Serialize;
use serde_json::json;
use weave_tests::Traced;

#[weave::op]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[weave::op]
async fn add_async(a: i32, b: i32) -> i32 {
    tokio::task::yield_now().await;
    add(a, b)
}

#[derive(Debug)]
struct Counter {
    n: u32,
}

impl Counter {
    #[weave::op]
    fn get(&self) -> u32 {
        self.n
    }
    #[weave::op]
    fn bump(&mut self, by: u32) -> u32 {
        self.n += by;
        self.n
    }
    #[weave::op]
    fn into_inner(self) -> u32 {
        self.n
    }
}

#[weave::op]
fn generic<T: Clone + std::fmt::Debug>(x: T) -> Vec<T> {
    vec![x.clone(), x]
}

#[weave::op]
fn impl_trait(xs: impl IntoIterator<Item = u8>) -> impl Iterator<Item = u8> {
    xs.into_iter()
        .map(|x| x * 2)
        .collect::<Vec<_>>()
        .into_iter()
}

#[derive(Debug, thiserror::Error)]
#[error("bad input {0}")]
struct BadInput(i32);

#[weave::op]
fn checked(x: i32) -> Result<i32, BadInput> {
    if x < 0 {
        return Err(BadInput(x));
    }
    Ok(x * 10)
}

#[weave::op]
fn anyhow_fails() -> anyhow::Result<()> {
    Err(anyhow::anyhow!("inner").context("outer"))
}

#[weave::op]
fn boom(x: u8) -> u8 {
    if x > 0 {
        panic!("boom at {x}");
    }
    x
}

#[weave::op(name = "renamed", skip(secret_arg))]
fn with_options(visible: &str, secret_arg: &str) -> usize {
    visible.len() + secret_arg.len()
}

#[weave::op(skip_all)]
fn skip_everything(a: u8) -> u8 {
    a
}

#[weave::op]
fn tuple_arg((a, b): (u8, u8), _: u8) -> u8 {
    a + b
}

struct Opaque;

#[weave::op]
fn opaque(_o: &Opaque) -> Opaque {
    Opaque
}

#[derive(Serialize)]
struct Req {
    model: String,
    api_key: String,
    max_tokens: u32,
}

#[weave::op]
fn with_secrets(req: &Req, authorization: &str) -> String {
    format!("{}{}", req.model, authorization.len())
}

#[weave::op]
fn huge() -> String {
    "y".repeat(2 << 20)
}

#[test]
fn sync_fn_records_inputs_output_and_timing() {
    let t = Traced::new("test-entity/shapes");
    assert_eq!(add(2, 3), 5);
    let c = t.only("add");
    assert_eq!(
        serde_json::Value::Object(c.inputs.clone()),
        json!({"a": 2, "b": 3})
    );
    assert_eq!(c.output, Some(json!(5)));
    assert_eq!(c.exception, None);
    assert_eq!(c.project_id, "test-entity/shapes");
    assert!(
        c.op_name.starts_with("weave:///test-entity/shapes/op/add:"),
        "{}",
        c.op_name
    );
    assert!(c.ended_at.is_some());
    assert!(c.started_at.ends_with('Z'));
    assert_eq!(c.parent_id, None);
    assert_eq!(c.trace_id, c.id);
    let id = uuid::Uuid::parse_str(&c.id).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(c.attributes["weave"]["source"], "rust-sdk");
    assert_eq!(
        c.summary["status_counts"],
        json!({"success": 1, "error": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_fn_nests_across_await() {
    let t = Traced::new("shapes");
    assert_eq!(add_async(1, 2).await, 3);
    let parent = t.only("add_async");
    let child = t.only("add");
    assert_eq!(child.parent_id.as_deref(), Some(parent.id.as_str()));
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(parent.output, Some(json!(3)));
    assert_eq!(parent.summary["status_counts"]["success"], 2);
}

#[test]
fn methods_record_self_and_type_name() {
    let t = Traced::new("shapes");
    let mut c = Counter { n: 1 };
    assert_eq!(c.get(), 1);
    assert_eq!(c.bump(2), 3);
    assert_eq!(c.into_inner(), 3);
    let get = t.only("Counter.get");
    assert_eq!(get.inputs["self"], json!("Counter { n: 1 }"));
    let bump = t.only("Counter.bump");
    assert_eq!(bump.inputs["by"], json!(2));
    assert_eq!(bump.output, Some(json!(3)));
    let inner = t.only("Counter.into_inner");
    assert_eq!(inner.output, Some(json!(3)));
}

#[test]
fn generic_and_impl_trait() {
    let t = Traced::new("shapes");
    assert_eq!(generic(7u8), vec![7, 7]);
    assert_eq!(impl_trait(vec![1, 2]).collect::<Vec<_>>(), vec![2, 4]);
    let g = t.only("generic");
    // A generic T bounded by Debug is recorded through Debug.
    assert_eq!(g.inputs["x"], json!("7"));
    let it = t.only("impl_trait");
    assert!(it.output.is_some());
}

#[test]
fn result_err_is_the_exception_and_value_is_returned() {
    let t = Traced::new("shapes");
    assert_eq!(checked(2).ok(), Some(20));
    assert_eq!(checked(-1).unwrap_err().0, -1);
    let calls: Vec<_> = t
        .calls()
        .into_iter()
        .filter(|c| c.op_display_name() == "checked")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].output, Some(json!(20)));
    assert_eq!(calls[0].exception, None);
    let e = calls[1].exception_info().expect("exception");
    assert!(e.kind.ends_with("BadInput"), "{}", e.kind);
    assert_eq!(e.message, "bad input -1");
    assert_eq!(calls[1].status(), weave::types::CallStatus::Error);
    assert_eq!(
        calls[1].summary["status_counts"],
        json!({"success": 0, "error": 1})
    );

    let _ = anyhow_fails();
    let a = t.only("anyhow_fails").exception_info().expect("exception");
    assert_eq!(a.message, "outer: inner");
}

#[test]
fn panic_is_recorded_then_resumed() {
    let t = Traced::new("shapes");
    let r = std::panic::catch_unwind(|| boom(3));
    assert!(r.is_err(), "the panic must propagate");
    let c = t.only("boom");
    let e = c.exception_info().expect("exception");
    assert_eq!(e.kind, "panic");
    assert_eq!(e.message, "boom at 3");
    assert!(
        e.traceback.as_str().unwrap_or("").contains("op_shapes.rs"),
        "{}",
        e.traceback
    );
    // The call context is restored after the panic: a new call is a root again.
    add(1, 1);
    let a = t.only("add");
    assert_eq!(a.parent_id, None);
}

#[test]
fn name_skip_skip_all_and_patterns() {
    let t = Traced::new("shapes");
    with_options("ab", "hidden");
    skip_everything(1);
    tuple_arg((1, 2), 3);
    let r = t.only("renamed");
    let obj = serde_json::Value::Object;
    assert_eq!(obj(r.inputs), json!({"visible": "ab"}));
    assert_eq!(obj(t.only("skip_everything").inputs), json!({}));
    let tp = t.only("tuple_arg");
    assert_eq!(obj(tp.inputs), json!({"arg0": [1, 2], "arg1": 3}));
    assert_eq!(tp.output, Some(json!(3)));
}

#[test]
fn capture_falls_back_to_type_name() {
    let t = Traced::new("shapes");
    let _ = opaque(&Opaque);
    let c = t.only("opaque");
    assert_eq!(c.inputs["_o"], json!("<&op_shapes::Opaque>"));
    assert_eq!(c.output, Some(json!("<op_shapes::Opaque>")));
}

#[test]
fn secrets_are_redacted_before_storage() {
    let t = Traced::new("shapes");
    let req = Req {
        model: "m".into(),
        api_key: "sk-very-secret".into(),
        max_tokens: 5,
    };
    with_secrets(&req, "Bearer sk-very-secret");
    let c = t.only("with_secrets");
    assert_eq!(c.inputs["req"]["api_key"], "REDACTED");
    assert_eq!(c.inputs["req"]["max_tokens"], 5);
    assert_eq!(c.inputs["authorization"], "REDACTED");
    let dir = t.dir.path().to_path_buf();
    drop(t);
    for f in ["weave.db", "weave.db-wal"] {
        if let Ok(raw) = std::fs::read(dir.join(f)) {
            let hay = String::from_utf8_lossy(&raw);
            assert!(!hay.contains("sk-very-secret"), "secret reached {f}");
        }
    }
}

#[test]
fn huge_values_are_truncated_with_a_marker() {
    let t = Traced::new("shapes");
    assert_eq!(huge().len(), 2 << 20);
    let c = t.only("huge");
    let out = c.output.expect("output");
    let s = out.as_str().expect("string");
    assert!(s.len() <= weave::MAX_VALUE_BYTES);
    assert!(s.ends_with(&format!("[weave: truncated, {} bytes in all]", 2 << 20)));
}

#[test]
fn disabled_tracing_records_nothing_and_still_runs() {
    assert_eq!(add(1, 1), 2);
    let t = Traced::new("shapes");
    let path = t.dir.path().join("weave.db");
    let Traced { client, dir, .. } = t;
    drop(client);
    assert_eq!(add(4, 4), 8);
    let store = weave_tests::Store::open(&path, "local/shapes");
    assert_eq!(store.call_count(), 0);
    drop(dir);
}

#[weave::op]
fn tagged() -> u8 {
    weave::add_attributes(json!({"env": "test", "api_key": "sk-attr-secret"}));
    1
}

#[weave::op]
fn outer_for_order() -> u8 {
    add(1, 1);
    1
}

#[test]
fn attributes_are_merged_and_redacted() {
    let t = Traced::new("shapes");
    tagged();
    let c = t.only("tagged");
    assert_eq!(c.attributes["env"], "test");
    assert_eq!(c.attributes["api_key"], "REDACTED");
    assert_eq!(c.attributes["weave"]["source"], "rust-sdk");
}

#[test]
fn ids_sort_parents_before_children() {
    let t = Traced::new("shapes");
    for _ in 0..200 {
        outer_for_order();
    }
    let calls = t.calls();
    let children: Vec<_> = calls
        .iter()
        .filter(|c| c.op_display_name() == "add")
        .collect();
    assert_eq!(children.len(), 200);
    for c in children {
        let parent = c.parent_id.as_deref().expect("parent");
        assert!(parent < c.id.as_str(), "{parent} !< {}", c.id);
    }
}

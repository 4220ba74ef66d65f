//! What issue 14 asked of `#[weave::op]` and capture: `Result` found through the type system,
//! generic arguments as JSON on request, display names, scoped attributes, postprocess hooks
//! and the caller's handle on the call it made. Recorded into the real SQLite store.

use serde::Serialize;
use serde_json::json;
use weave_tests::Traced;

#[derive(Debug, thiserror::Error)]
#[error("not allowed: {0}")]
struct Denied(i32);

/// A `Result` behind an alias: the macro cannot see the name `Result`.
type Fallible<T> = Result<T, Denied>;

#[weave::op]
fn aliased(x: i32) -> Fallible<i32> {
    if x < 0 {
        Err(Denied(x))
    } else {
        Ok(x + 1)
    }
}

/// A type of the user's own that happens to be called `Result` is an ordinary output.
mod own {
    #[derive(Debug, serde::Serialize)]
    pub struct Result {
        pub ok: bool,
    }
}

#[weave::op]
fn own_result(ok: bool) -> own::Result {
    own::Result { ok }
}

#[test]
fn result_behind_an_alias_records_err_as_the_exception() {
    let t = Traced::new("options");
    assert_eq!(aliased(1).ok(), Some(2));
    assert_eq!(aliased(-3).unwrap_err().0, -3);
    let calls: Vec<_> = t
        .calls()
        .into_iter()
        .filter(|c| c.op_display_name() == "aliased")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].output, Some(json!(2)));
    assert_eq!(calls[0].exception, None);
    let e = calls[1].exception_info().expect("an Err is an exception");
    assert!(e.kind.ends_with("Denied"), "{}", e.kind);
    assert_eq!(e.message, "not allowed: -3");
    assert_eq!(calls[1].status(), weave::types::CallStatus::Error);

    own_result(false);
    let c = t.only("own_result");
    assert_eq!(c.output, Some(json!({"ok": false})));
    assert_eq!(c.exception, None);
}

// --- generic arguments ----------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Point {
    x: i32,
    y: i32,
}

/// Without `serialize`, `T: Debug` is all the op knows: Debug text.
#[weave::op]
fn by_bounds<T: std::fmt::Debug>(p: T) -> usize {
    format!("{p:?}").len()
}

/// `serialize(p)` adds `T: Serialize` and records JSON.
#[weave::op(serialize(p))]
fn as_json<T: std::fmt::Debug>(p: T) -> usize {
    format!("{p:?}").len()
}

/// What scales a number.
trait Scale {
    fn scale(&self, x: u32) -> u32;
}

#[derive(Serialize)]
struct Times {
    by: u32,
}

impl Scale for Times {
    fn scale(&self, x: u32) -> u32 {
        x * self.by
    }
}

#[weave::op(serialize(items, by))]
fn scaled(items: impl IntoIterator<Item = u32>, by: &impl Scale) -> u32 {
    items.into_iter().map(|x| by.scale(x)).sum()
}

#[test]
fn generic_arguments_are_json_when_asked() {
    let t = Traced::new("options");
    by_bounds(Point { x: 1, y: 2 });
    as_json(Point { x: 1, y: 2 });
    assert_eq!(scaled(vec![1, 2, 3], &Times { by: 2 }), 12);
    assert_eq!(
        t.only("by_bounds").inputs["p"],
        json!("Point { x: 1, y: 2 }"),
        "declared bounds decide"
    );
    assert_eq!(t.only("as_json").inputs["p"], json!({"x": 1, "y": 2}));
    let d = t.only("scaled");
    assert_eq!(d.inputs["items"], json!([1, 2, 3]));
    assert_eq!(d.inputs["by"], json!({"by": 2}));
}

// --- display names ----------------------------------------------------------------------------

#[weave::op(display_name = "Nice name")]
fn named() -> u8 {
    1
}

fn greeting_name(inputs: &serde_json::Map<String, serde_json::Value>) -> String {
    format!("greet {}", inputs["who"].as_str().unwrap_or("?"))
}

#[weave::op(display_name = greeting_name)]
fn greet(who: &str) -> String {
    format!("hello {who}")
}

struct Bot;

impl Bot {
    fn title(inputs: &serde_json::Map<String, serde_json::Value>) -> String {
        format!("bot on {}", inputs["q"])
    }

    #[weave::op(display_name = Self::title)]
    async fn ask(&self, q: u32) -> u32 {
        q + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_static_and_computed() {
    let t = Traced::new("options");
    named();
    greet("ann");
    assert_eq!(Bot.ask(4).await, 5);
    assert_eq!(t.only("named").display_name.as_deref(), Some("Nice name"));
    assert_eq!(t.only("greet").display_name.as_deref(), Some("greet ann"));
    assert_eq!(t.only("greet").inputs["who"], json!("ann"));
    assert_eq!(t.only("Bot.ask").display_name.as_deref(), Some("bot on 4"));
    aliased(1).ok();
    assert_eq!(t.only("aliased").display_name, None);
}

// --- scoped attributes ----------------------------------------------------------------------

#[weave::op]
fn plain() -> u8 {
    0
}

#[weave::op]
async fn plain_async() -> u8 {
    tokio::task::yield_now().await;
    plain()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_attributes_nest_and_merge() {
    let t = Traced::new("options");
    weave::attributes(json!({"env": "prod", "team": "a"}), || {
        named();
        weave::attributes(json!({"team": "b", "api_key": "sk-scoped"}), aliased_ok);
    });
    greet("outside");
    weave::with_attributes(json!({"env": "async"}), plain_async()).await;
    let attrs = |op: &str| t.only(op).attributes;
    let a = attrs("named");
    assert_eq!(
        (a["env"].clone(), a["team"].clone()),
        (json!("prod"), json!("a"))
    );
    assert_eq!(a["weave"]["source"], json!("rust-sdk"));
    let b = attrs("aliased");
    assert_eq!(b["env"], json!("prod"), "outer scope merged");
    assert_eq!(b["team"], json!("b"), "inner scope wins");
    assert_eq!(b["api_key"], json!("REDACTED"));
    assert_eq!(attrs("greet").get("env"), None, "outside every scope");
    assert_eq!(attrs("plain_async")["env"], json!("async"));
    assert_eq!(
        attrs("plain")["env"],
        json!("async"),
        "a child across .await"
    );
}

fn aliased_ok() {
    aliased(5).ok();
}

// --- postprocess hooks ------------------------------------------------------------------------

fn hide_token(
    mut inputs: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    inputs.remove("token");
    inputs.insert("user".into(), json!("someone"));
    inputs
}

/// Takes `&[u8]` for the `Vec<u8>` the op returns: the call coerces.
fn byte_count(out: &[u8]) -> usize {
    out.len()
}

#[weave::op(postprocess_inputs = hide_token, postprocess_output = byte_count)]
fn download(user: &str, token: &str, fail: bool) -> Fallible<Vec<u8>> {
    if fail {
        return Err(Denied(token.len() as i32));
    }
    Ok(user.as_bytes().to_vec())
}

#[test]
fn postprocess_hooks_rewrite_what_is_recorded() {
    let t = Traced::new("options");
    assert_eq!(download("ann", "tok-123", false).unwrap(), b"ann".to_vec());
    assert!(download("ann", "tok-123", true).is_err());
    let calls: Vec<_> = t
        .calls()
        .into_iter()
        .filter(|c| c.op_display_name() == "download")
        .collect();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(
            serde_json::Value::Object(c.inputs.clone()),
            json!({"user": "someone", "fail": c.inputs["fail"]})
        );
    }
    assert_eq!(calls[0].output, Some(json!(3)));
    let e = calls[1]
        .exception_info()
        .expect("the Err is still the exception");
    assert_eq!(e.message, "not allowed: 7");
}

// --- the caller's handle on its call ------------------------------------------------------

#[weave::op]
fn outer() -> u8 {
    plain() + 1
}

#[weave::op]
fn wraps() -> Option<weave::CallRef> {
    let (_, call) = weave::call(plain);
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_gets_the_call_it_made() {
    let t = Traced::new("options");
    let (out, call) = weave::call(outer);
    assert_eq!(out, 1);
    let call = call.expect("a call was recorded");
    let stored = t.only("outer");
    assert_eq!(call.id, stored.id, "the outer call, not its child");
    assert_eq!(call.trace_id, stored.trace_id);

    let inner = wraps().expect("the child call");
    let (n, acall) = weave::call_async(plain_async()).await;
    assert_eq!(n, 0);
    let calls = t.calls();
    let id_of = |op: &str, parent: Option<&str>| {
        calls
            .iter()
            .find(|c| c.op_display_name() == op && c.parent_id.as_deref() == parent)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| panic!("no {op} under {parent:?}"))
    };
    let wraps_id = id_of("wraps", None);
    assert_eq!(inner.id, id_of("plain", Some(&wraps_id)));
    assert_eq!(inner.trace_id, wraps_id);
    assert_eq!(acall.expect("async call").id, id_of("plain_async", None));

    let (_, none) = weave::call(|| 1 + 1);
    assert_eq!(none, None, "no op called");
}

//! What issue 14 asked of `#[weave::op]` and capture: `Result` found through the type system,
//! generic arguments as JSON on request, display names, scoped attributes, postprocess hooks
//! and the caller's handle on the call it made. Recorded into the real SQLite store.

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

//! Parent/child nesting: sync, async across `.await` on a multi-thread runtime, work carried
//! into spawned tasks and threads, status and usage roll-up, and cancelled futures.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use weave::context::FutureExt as _;
use weave::types::{CallSchema, CallStatus};
use weave_tests::Traced;

#[weave::op]
fn leaf(x: u32) -> u32 {
    x + 1
}

#[weave::op]
fn failing_leaf(x: u32) -> Result<u32, String> {
    Err(format!("no {x}"))
}

#[weave::op]
fn middle(x: u32) -> u32 {
    let a = leaf(x);
    let b = failing_leaf(x).unwrap_or(0);
    a + b
}

#[weave::op]
fn top() -> u32 {
    middle(1) + middle(2) + leaf(3)
}

fn by_name<'a>(calls: &'a [CallSchema], name: &str) -> Vec<&'a CallSchema> {
    calls
        .iter()
        .filter(|c| c.op_display_name() == name)
        .collect()
}

#[test]
fn nested_sync_ops_link_parents_and_roll_status_counts_up() {
    let t = Traced::new("nesting");
    assert_eq!(top(), (2 + 3) + 4);
    let calls = t.calls();
    assert_eq!(calls.len(), 1 + 2 + 2 * 2 + 1);
    let top_call = t.only("top");
    assert_eq!(top_call.parent_id, None);
    assert_eq!(top_call.trace_id, top_call.id);
    for c in &calls {
        assert_eq!(c.trace_id, top_call.id, "{} is in another trace", c.op_name);
    }
    let middles = by_name(&calls, "middle");
    assert_eq!(middles.len(), 2);
    for m in &middles {
        assert_eq!(m.parent_id.as_deref(), Some(top_call.id.as_str()));
        let kids = t.store().children(&m.id);
        let mut names: Vec<_> = kids
            .iter()
            .map(|k| k.op_display_name().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["failing_leaf", "leaf"]);
        for k in &kids {
            assert_eq!(k.inputs["x"], m.inputs["x"], "child of the wrong middle");
        }
        // Itself plus one successful and one failed child.
        assert_eq!(
            m.summary["status_counts"],
            json!({"success": 2, "error": 1})
        );
        assert_eq!(m.status(), CallStatus::DescendantError);
    }
    // The leaf called directly by top.
    let direct: Vec<_> = by_name(&calls, "leaf")
        .into_iter()
        .filter(|c| c.parent_id.as_deref() == Some(top_call.id.as_str()))
        .collect();
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0].inputs["x"], 3);
    assert_eq!(
        direct[0].summary["status_counts"],
        json!({"success": 1, "error": 0})
    );
    // top: itself + 2 middles + 3 leaves succeeded, 2 failing leaves.
    assert_eq!(
        top_call.summary["status_counts"],
        json!({"success": 6, "error": 2})
    );
    assert_eq!(top_call.status(), CallStatus::DescendantError);
    assert_eq!(top_call.summary["weave"]["status"], "descendant_error");
    for f in by_name(&calls, "failing_leaf") {
        assert_eq!(f.status(), CallStatus::Error);
    }
}

#[weave::op]
async fn async_child(task: u32, step: u32) -> u32 {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_micros(
        u64::from((task * 7 + step) % 5) * 100,
    ))
    .await;
    leaf(task);
    task * 100 + step
}

#[weave::op]
async fn async_parent(task: u32) -> u32 {
    let mut sum = 0;
    for step in 0..3 {
        tokio::task::yield_now().await;
        sum += async_child(task, step).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_tasks_each_nest_under_their_own_op() {
    // The tasks start on the runtime's threads without a call context: the global client.
    let t = Traced::global("nesting");
    const TASKS: u32 = 64;
    let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(async_parent(i))).collect();
    for (i, h) in handles.into_iter().enumerate() {
        let i = i as u32;
        assert_eq!(h.await.expect("task"), 3 * i * 100 + 3);
    }
    let calls = t.calls();
    let by_id: HashMap<&str, &CallSchema> = calls.iter().map(|c| (c.id.as_str(), c)).collect();
    let parents = by_name(&calls, "async_parent");
    assert_eq!(parents.len(), TASKS as usize);
    for p in &parents {
        assert_eq!(p.parent_id, None, "a spawned task's op is a root");
        assert_eq!(p.trace_id, p.id);
        assert_eq!(
            p.summary["status_counts"],
            json!({"success": 1 + 3 + 3, "error": 0})
        );
    }
    let children = by_name(&calls, "async_child");
    assert_eq!(children.len(), 3 * TASKS as usize);
    for c in &children {
        let parent = by_id[c.parent_id.as_deref().expect("child has a parent")];
        assert_eq!(parent.op_display_name(), "async_parent");
        assert_eq!(
            parent.inputs["task"], c.inputs["task"],
            "child of another task's op"
        );
        assert_eq!(c.trace_id, parent.id);
    }
    let leaves = by_name(&calls, "leaf");
    assert_eq!(leaves.len(), 3 * TASKS as usize);
    for l in &leaves {
        let parent = by_id[l.parent_id.as_deref().expect("leaf has a parent")];
        assert_eq!(parent.op_display_name(), "async_child");
        assert_eq!(parent.inputs["task"], l.inputs["x"]);
        assert_eq!(l.trace_id, parent.trace_id);
    }
}

#[weave::op]
async fn spawner(carry: bool) -> u32 {
    let fut = async { leaf(10) };
    let handle = if carry {
        tokio::spawn(fut.in_current_call())
    } else {
        tokio::spawn(fut)
    };
    handle.await.expect("task")
}

#[weave::op]
fn thread_spawner(carry: bool) -> u32 {
    let ctx = if carry {
        weave::context::current()
    } else {
        None
    };
    assert_eq!(ctx.is_some(), carry);
    std::thread::spawn(move || weave::context::in_scope(ctx, || leaf(20)))
        .join()
        .expect("thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_and_threads_nest_only_when_the_context_is_carried() {
    let t = Traced::global("nesting");
    assert_eq!(spawner(true).await, 11);
    assert_eq!(spawner(false).await, 11);
    assert_eq!(thread_spawner(true), 21);
    assert_eq!(thread_spawner(false), 21);
    let calls = t.calls();
    let spawners = by_name(&calls, "spawner");
    let threads = by_name(&calls, "thread_spawner");
    let leaves = by_name(&calls, "leaf");
    assert_eq!((spawners.len(), threads.len(), leaves.len()), (2, 2, 4));
    let find = |list: &[&CallSchema], carry: bool| -> CallSchema {
        (*list
            .iter()
            .find(|c| c.inputs["carry"] == carry)
            .expect("call"))
        .clone()
    };
    let leaf_with = |x: u32, root: bool| -> Vec<CallSchema> {
        leaves
            .iter()
            .filter(|l| l.inputs["x"] == x && l.parent_id.is_none() == root)
            .map(|l| (*l).clone())
            .collect()
    };

    let carried = find(&spawners, true);
    let kids = leaf_with(10, false);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].parent_id.as_deref(), Some(carried.id.as_str()));
    assert_eq!(kids[0].trace_id, carried.trace_id);
    assert_eq!(carried.summary["status_counts"]["success"], 2);

    let plain = find(&spawners, false);
    let roots = leaf_with(10, true);
    assert_eq!(roots.len(), 1, "a plain tokio::spawn starts a new trace");
    assert_eq!(roots[0].trace_id, roots[0].id);
    assert_ne!(roots[0].trace_id, plain.trace_id);
    assert_eq!(plain.summary["status_counts"]["success"], 1);

    let carried = find(&threads, true);
    let kids = leaf_with(20, false);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].parent_id.as_deref(), Some(carried.id.as_str()));
    assert_eq!(kids[0].trace_id, carried.trace_id);
    assert_eq!(carried.summary["status_counts"]["success"], 2);

    let plain = find(&threads, false);
    let roots = leaf_with(20, true);
    assert_eq!(
        roots.len(),
        1,
        "a thread without the context starts a new trace"
    );
    assert_ne!(roots[0].trace_id, plain.trace_id);
}

#[test]
fn context_handle_names_the_current_call() {
    let t = Traced::new("nesting");
    assert!(weave::context::current().is_none());
    #[weave::op]
    fn report() -> (String, String) {
        let ctx = weave::context::current().expect("inside an op");
        (ctx.call_id(), ctx.trace_id())
    }
    let (id, trace) = report();
    assert!(weave::context::current().is_none(), "context restored");
    let c = t.only("report");
    assert_eq!(c.id, id);
    assert_eq!(c.trace_id, trace);
}

#[weave::op]
fn llm(model: &str, prompt: u64, completion: u64) -> u64 {
    weave::add_usage(model, weave::Usage::request(prompt, completion));
    prompt + completion
}

#[weave::op]
fn agent_step(n: u64) -> u64 {
    llm("gpt-x", 10, 5) + llm("gpt-x", n, 1) + llm("small-y", 3, 2)
}

#[weave::op]
fn agent() -> u64 {
    // Usage recorded on the agent call itself counts too.
    weave::add_usage("small-y", weave::Usage::request(1, 1));
    agent_step(100) + agent_step(200)
}

#[test]
fn usage_rolls_up_into_parents_and_grandparents_per_model() {
    let t = Traced::new("nesting");
    agent();
    // Outside any call, usage goes nowhere (and does not panic).
    weave::add_usage("gpt-x", weave::Usage::request(1_000, 1_000));
    let calls = t.calls();
    let step = |n: u64| -> CallSchema {
        by_name(&calls, "agent_step")
            .into_iter()
            .find(|c| c.inputs["n"] == n)
            .expect("step")
            .clone()
    };
    let s1 = step(100);
    assert_eq!(
        s1.summary["usage"],
        json!({
            "gpt-x": {"prompt_tokens": 110, "completion_tokens": 6, "total_tokens": 116, "requests": 2},
            "small-y": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "requests": 1},
        })
    );
    let s2 = step(200);
    assert_eq!(s2.summary["usage"]["gpt-x"]["prompt_tokens"], 210);
    let a = t.only("agent");
    assert_eq!(
        a.summary["usage"],
        json!({
            "gpt-x": {"prompt_tokens": 320, "completion_tokens": 12, "total_tokens": 332, "requests": 4},
            "small-y": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12, "requests": 3},
        })
    );
    // A leaf holds only its own usage.
    let small: Vec<_> = by_name(&calls, "llm")
        .into_iter()
        .filter(|c| c.inputs["model"] == "small-y")
        .collect();
    assert_eq!(small.len(), 2);
    for c in small {
        assert_eq!(
            c.summary["usage"],
            json!({"small-y": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "requests": 1}})
        );
    }
    // Calls with no usage anywhere below them have no usage key.
    leaf(1);
    assert!(t.only("leaf").summary.get("usage").is_none());
}

#[weave::op]
async fn never_finishes(x: u32) -> u32 {
    leaf(x);
    std::future::pending::<()>().await;
    x
}

#[weave::op]
async fn gives_up() -> u32 {
    // Poll the inner op once (it runs up to its pending await), then drop it.
    tokio::select! {
        biased;
        v = never_finishes(5) => v,
        _ = std::future::ready(()) => 0,
    }
}

#[tokio::test]
async fn dropped_async_op_future_is_recorded_as_cancelled() {
    let t = Traced::new("nesting");
    assert_eq!(gives_up().await, 0);
    // A future dropped without ever being polled never started a call.
    drop(never_finishes(6));
    let c = t.only("never_finishes");
    assert_eq!(serde_json::Value::Object(c.inputs.clone()), json!({"x": 5}));
    assert!(c.ended_at.is_some());
    assert_eq!(c.output, Some(serde_json::Value::Null));
    let e = c.exception_info().expect("exception");
    assert_eq!(e.kind, "Cancelled");
    assert_eq!(c.status(), CallStatus::Error);
    // Its child finished normally before the drop.
    let l = t.only("leaf");
    assert_eq!(l.parent_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(l.exception, None);
    let parent = t.only("gives_up");
    assert_eq!(c.parent_id.as_deref(), Some(parent.id.as_str()));
    assert_eq!(parent.exception, None);
    assert_eq!(parent.output, Some(json!(0)));
    assert_eq!(
        parent.summary["status_counts"],
        json!({"success": 2, "error": 1})
    );
    assert_eq!(parent.status(), CallStatus::DescendantError);
}

/// The client made by `init` inside [`outlives_its_client`].
static SECOND: std::sync::Mutex<Option<weave::WeaveClient>> = std::sync::Mutex::new(None);

#[weave::op]
fn outlives_its_client(db: String) -> u32 {
    // `init` again, same store: the global client is replaced while this call runs, and this
    // thread records a call with the new one before this call ends.
    let again = weave::Settings::new("reinit")
        .db_path(&db)
        .quiet()
        .init()
        .expect("init again");
    *SECOND.lock().unwrap() = Some(again);
    leaf(1)
}

#[test]
fn a_call_that_outlives_the_global_client_it_started_with_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let first = weave::Settings::new("reinit")
        .db_path(&db)
        .quiet()
        .init()
        .expect("init");
    assert_eq!(outlives_its_client(db.display().to_string()), 2);
    let second = SECOND.lock().unwrap().take().expect("second client");
    weave::flush().expect("flush");
    drop(first);
    let store = weave_tests::Store {
        inner: second.store().expect("store"),
        project: second.project_id(),
    };
    let calls = store.calls(None);
    let outer = by_name(&calls, "outlives_its_client");
    assert_eq!(outer.len(), 1, "{calls:?}");
    assert!(outer[0].ended_at.is_some(), "the outer call never ended");
    assert_eq!(outer[0].output, Some(json!(2)));
    assert_eq!(by_name(&calls, "leaf").len(), 1);
}

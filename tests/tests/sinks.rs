//! The sink boundary: clients scoped to a thread (several at once, in parallel), the in-memory
//! sink, what a batch carries, a failing sink, and the per-value cache of model refs.

use std::sync::{Arc, Mutex};

use serde_json::json;
use weave::sink::{Batch, CallItem, MemorySink, SinkError, TraceSink};
use weave::Model as _;

#[weave::op]
fn double(x: u32) -> u32 {
    x * 2
}

#[weave::op]
fn outer(x: u32) -> u32 {
    double(x) + double(x + 1)
}

fn memory_client(project: &str) -> (weave::WeaveClient, MemorySink) {
    let sink = MemorySink::new();
    let client = weave::Settings::new(project)
        .sink(sink.clone())
        .quiet()
        .build()
        .expect("build");
    (client, sink)
}

#[test]
fn scoped_clients_record_only_their_own_thread_in_parallel() {
    let handles: Vec<_> = (0..4u32)
        .map(|i| {
            std::thread::spawn(move || {
                let (client, sink) = memory_client(&format!("scoped-{i}"));
                client.in_scope(|| {
                    for n in 0..10 {
                        outer(i * 100 + n);
                    }
                });
                // Outside the scope nothing is recorded.
                outer(7);
                client.flush().expect("flush");
                (i, sink.calls())
            })
        })
        .collect();
    for h in handles {
        let (i, calls) = h.join().expect("thread");
        assert_eq!(calls.len(), 10 * 3, "client {i}");
        assert!(calls
            .iter()
            .all(|c| c.project_id == format!("local/scoped-{i}")));
        for root in calls.iter().filter(|c| c.op_display_name() == "outer") {
            let x = root.inputs["x"].as_u64().expect("x") as u32;
            assert_eq!(x / 100, i, "a call of another client");
            assert_eq!(root.output, Some(json!(2 * x + 2 * (x + 1))));
            let kids = calls
                .iter()
                .filter(|c| c.parent_id.as_deref() == Some(root.id.as_str()))
                .count();
            assert_eq!(kids, 2);
        }
    }
    // No client is global: an op here is not recorded anywhere, and flush returns.
    outer(1);
    weave::flush().expect("flush");
}

#[test]
fn a_scoped_call_carries_its_client_to_other_threads() {
    let (client, sink) = memory_client("carry");
    client.in_scope(|| {
        #[weave::op]
        fn fan_out() -> u32 {
            let ctx = weave::context::current();
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..3)
                    .map(|i| {
                        let ctx = ctx.clone();
                        s.spawn(move || weave::context::in_scope(ctx, || double(i)))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("thread")).sum()
            })
        }
        assert_eq!(fan_out(), 6);
    });
    client.flush().expect("flush");
    let calls = sink.calls();
    let root = calls
        .iter()
        .find(|c| c.op_display_name() == "fan_out")
        .expect("root");
    let kids: Vec<_> = calls
        .iter()
        .filter(|c| c.parent_id.as_deref() == Some(root.id.as_str()))
        .collect();
    assert_eq!(kids.len(), 3, "{calls:#?}");
    assert_eq!(
        root.summary["status_counts"],
        json!({"success": 4, "error": 0})
    );
}

#[test]
fn a_batch_carries_what_a_server_needs() {
    let (client, sink) = memory_client("ent/batch");
    client.in_scope(|| {
        outer(1);
        weave::add_usage("m", weave::Usage::request(1, 2));
    });
    client.flush().expect("flush");
    let batches = sink.batches();
    let all: Batch = batches.into_iter().fold(Batch::default(), |mut acc, b| {
        acc.files.extend(b.files);
        acc.objs.extend(b.objs);
        acc.calls.extend(b.calls);
        acc
    });
    // Each op once: its code file, and Weave's op value naming that file.
    assert_eq!(all.files.len(), 2);
    assert_eq!(all.objs.len(), 2);
    for (f, o) in all.files.iter().zip(&all.objs) {
        let digest = weave::digest::digest_bytes(&f.content);
        assert_eq!(f.expected_digest.as_deref(), Some(digest.as_str()));
        assert_eq!(o.val["files"]["obj.rs"], json!(digest));
        assert_eq!(o.project_id, "ent/batch");
        assert_eq!(
            o.expected_digest.as_deref(),
            Some(weave::digest::object_digest(&o.val).as_str())
        );
    }
    // Calls that started and ended in one round are complete records, with op refs.
    assert_eq!(all.calls.len(), 3);
    for c in &all.calls {
        let CallItem::Complete(c) = c else {
            panic!("{c:?}")
        };
        assert!(
            c.op_name.starts_with("weave:///ent/batch/op/"),
            "{}",
            c.op_name
        );
        assert!(c.started_at.ends_with('Z') && c.ended_at.ends_with('Z'));
        assert_eq!(c.attributes["weave"]["source"], json!("rust-sdk"));
    }
}

/// A sink that refuses every other batch, counting what it was given.
#[derive(Clone, Default)]
struct Flaky {
    seen: Arc<Mutex<Vec<usize>>>,
}

impl TraceSink for Flaky {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut seen = self.seen.lock().expect("lock");
        seen.push(batch.len());
        if seen.len() % 2 == 1 {
            return Err(SinkError::Dropped {
                n: batch.len(),
                reason: "the test said so".into(),
            });
        }
        Ok(())
    }
}

#[test]
fn a_failing_sink_does_not_stop_the_writer() {
    let sink = Flaky::default();
    let client = weave::Settings::new("flaky")
        .sink(sink.clone())
        .quiet()
        .build()
        .expect("build");
    let flushed: Vec<Result<(), weave::FlushError>> = client.in_scope(|| {
        (0..3)
            .map(|round| {
                double(round);
                weave::flush()
            })
            .collect()
    });
    // Each flush says whether its round's batch was written, and why not.
    assert!(flushed[1].is_ok(), "{flushed:?}");
    for f in [&flushed[0], &flushed[2]] {
        let e = f.as_ref().expect_err("the sink refused the batch");
        assert!(e.lost().is_some_and(|n| n >= 1), "{e}");
        assert!(e.to_string().contains("the test said so"), "{e}");
    }
    drop(client);
    let seen = sink.seen.lock().expect("lock");
    assert_eq!(seen.len(), 3, "{seen:?}");
    let e = SinkError::Dropped {
        n: 3,
        reason: "disk full".into(),
    };
    assert_eq!(e.to_string(), "3 trace record(s) dropped: disk full");
}

#[derive(weave::Model, serde::Serialize)]
struct Knob {
    level: u32,
    name: String,
}

#[weave::ops]
impl Knob {
    #[weave::op]
    fn turn(&self, by: u32) -> u32 {
        self.level + by
    }
}

#[derive(weave::Model, serde::Serialize)]
struct Panel {
    knob: Knob,
}

#[weave::ops]
impl Panel {
    #[weave::op]
    fn read(&self) -> u32 {
        self.knob.turn(0)
    }
}

#[test]
fn model_refs_follow_the_value_even_when_it_is_mutated_in_place() {
    let (client, sink) = memory_client("knobs");
    let mut k = Knob {
        level: 1,
        name: "a".into(),
    };
    let mut p = Panel {
        knob: Knob {
            level: 5,
            name: "inner".into(),
        },
    };
    client.in_scope(|| {
        k.turn(1);
        k.turn(2);
        k.level = 2;
        k.turn(1);
        k.name = "b".into();
        k.turn(1);
        k.level = 1;
        k.name = "a".into();
        k.turn(3);
        p.read();
        p.knob.level = 6;
        p.read();
    });
    client.flush().expect("flush");
    let calls = sink.calls();
    let selfs: Vec<String> = calls
        .iter()
        .filter(|c| c.op_display_name() == "Knob.turn")
        .map(|c| c.inputs["self"].as_str().expect("ref").to_string())
        .collect();
    // Versions as this client computes them (refs inside name its project).
    let v = |level, name: &str| {
        client.in_scope(|| {
            Knob {
                level,
                name: name.into(),
            }
            .weave_version()
            .digest
        })
    };
    let digest = |r: &str| r.rsplit(':').next().expect("digest").to_string();
    let turns: Vec<String> = selfs.iter().map(|r| digest(r)).collect();
    assert_eq!(
        turns[..5],
        [v(1, "a"), v(1, "a"), v(2, "a"), v(2, "b"), v(1, "a")],
        "each call records the version the model had then"
    );
    // The panel's ref changes with its nested model; each version is published once.
    let reads: Vec<&str> = calls
        .iter()
        .filter(|c| c.op_display_name() == "Panel.read")
        .map(|c| c.inputs["self"].as_str().expect("ref"))
        .collect();
    assert_eq!(reads.len(), 2);
    assert_ne!(reads[0], reads[1]);
    let objects = sink.objects();
    let knob_versions = objects.iter().filter(|o| o.object_id == "Knob").count();
    assert_eq!(
        knob_versions,
        3 + 2,
        "a, (2,a), (2,b), inner 5, inner 6: {objects:#?}"
    );
    let panel_versions = objects.iter().filter(|o| o.object_id == "Panel").count();
    assert_eq!(panel_versions, 2);
}

/// A sink that holds its first write until the gate opens.
struct GatedSink {
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    inner: MemorySink,
}

/// Opens the gate when dropped, so that a failed assertion does not leave the sink stuck.
struct OpenOnDrop(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

impl TraceSink for GatedSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let (open, cv) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.inner.write(batch)
    }
}

#[test]
fn full_buffers_make_callers_wait_and_lose_nothing() {
    const CALLS: u32 = 20_000;
    const MAX_RECORDS: usize = 2048;
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let inner = MemorySink::new();
    let client = weave::Settings::new("pressure")
        .sink(GatedSink {
            gate: gate.clone(),
            inner: inner.clone(),
        })
        .max_buffered_records(MAX_RECORDS)
        .quiet()
        .build()
        .expect("build");
    let made = Arc::new(std::sync::atomic::AtomicU32::new(0));
    std::thread::scope(|s| {
        let opener = OpenOnDrop(gate.clone());
        let caller = s.spawn(|| {
            client.in_scope(|| {
                for i in 0..CALLS {
                    double(i);
                    made.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        });
        // The sink is stuck: the caller must stop once the buffers, the batch being
        // encoded and the batches queued for the sink are full, far short of all its calls.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let before_open = made.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            before_open < CALLS / 2,
            "{before_open} of {CALLS} calls made while the sink was stuck"
        );
        assert!(client.buffer_waits() >= 1, "the caller never waited");
        drop(opener);
        caller.join().expect("caller");
    });
    client.flush().expect("every record written");
    let calls = inner.calls();
    assert_eq!(calls.len(), CALLS as usize, "every call stored");
    let mut xs: Vec<u64> = calls
        .iter()
        .map(|c| c.inputs["x"].as_u64().expect("x"))
        .collect();
    xs.sort_unstable();
    xs.dedup();
    assert_eq!(xs.len(), CALLS as usize, "each call once");
    assert!(calls.iter().all(|c| c.ended_at.is_some()));
}

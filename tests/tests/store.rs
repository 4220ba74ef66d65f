//! The SQLite store: opening and init errors, `WEAVE_DB`, concurrent readers, flush, version
//! history, call filters, and surviving a SIGKILL of the traced process.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::json;
use weave::store::{CallFilter, Store};
use weave::Error;
use weave::Model as _;
use weave_tests::Traced;

#[weave::op]
fn ping(n: u32) -> u32 {
    n
}

#[weave::op]
fn get_one() -> u32 {
    1
}

#[weave::op]
fn getsone() -> u32 {
    2
}

#[weave::op]
fn fails(n: u32) -> Result<u32, String> {
    Err(format!("failed {n}"))
}

#[weave::op]
fn root(n: u32) -> u32 {
    ping(n) + fails(n).unwrap_or(0)
}

fn journal_mode(path: &Path) -> String {
    Connection::open(path)
        .expect("open")
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode")
}

#[test]
fn init_rejects_bad_project_names_without_creating_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("sub").join("weave.db");
    for bad in [
        "a/b/c",
        "",
        "has space",
        "/p",
        "e/",
        "e/p/",
        "tab\tname",
        "semi;colon",
    ] {
        match weave::Settings::new(bad).db_path(&db).quiet().init() {
            Err(Error::InvalidProject { project, reason }) => {
                assert_eq!(project, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?} should be rejected, got {other:?}"),
        }
    }
    assert!(!db.exists(), "a rejected init must not create the store");
    assert_eq!(
        weave::parse_project("proj").expect("ok"),
        ("local".to_string(), "proj".to_string())
    );
    assert_eq!(
        weave::parse_project("my-team/proj_1.v2").expect("ok"),
        ("my-team".to_string(), "proj_1.v2".to_string())
    );
}

#[test]
fn non_weave_files_are_schema_errors_and_are_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");

    // An SQLite database that is not a trace store.
    let foreign = dir.path().join("foreign.db");
    {
        let c = Connection::open(&foreign).expect("create");
        c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me');")
            .expect("seed");
    }
    assert!(matches!(Store::open(&foreign), Err(Error::Schema { .. })));
    match weave::Settings::new("p").db_path(&foreign).quiet().init() {
        Err(Error::Schema { path, reason }) => {
            assert_eq!(path, foreign);
            assert!(reason.contains("not a weave trace store"), "{reason}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    // Untouched: same data, same journal mode, no weave tables.
    assert_eq!(journal_mode(&foreign), "delete");
    let c = Connection::open(&foreign).expect("open");
    let body: String = c
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .expect("row");
    assert_eq!(body, "keep me");
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'calls'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(tables, 0);

    // Not an SQLite file at all.
    let garbage = dir.path().join("garbage.db");
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &junk).expect("write");
    match Store::open(&garbage) {
        Err(Error::Schema { path, .. }) => assert_eq!(path, garbage),
        other => panic!("expected a schema error, got {other:?}"),
    }
    match weave::Settings::new("p").db_path(&garbage).quiet().init() {
        Err(Error::Schema { path, .. }) => assert_eq!(path, garbage),
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&garbage).expect("read"),
        junk,
        "garbage file modified"
    );

    // An empty file is an empty database: not a store to read.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(Store::open(&empty), Err(Error::Schema { .. })));
}

#[test]
fn newer_schema_is_refused() {
    let t = Traced::new("store");
    ping(1);
    let path = t.client.db_path().to_path_buf();
    let Traced { client, dir, .. } = t;
    drop(client);
    Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("bump");
    match Store::open(&path) {
        Err(Error::Schema { reason, .. }) => assert!(reason.contains("newer"), "{reason}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(matches!(
        weave::Settings::new("p").db_path(&path).quiet().init(),
        Err(Error::Schema { .. })
    ));
    drop(dir);
}

#[test]
fn missing_store_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nothing-here.db");
    match Store::open(&path) {
        Err(Error::NotFound(msg)) => {
            assert!(msg.contains("nothing-here.db"), "{msg}");
            assert!(msg.contains(weave::DB_ENV), "{msg}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!path.exists(), "reading must not create a store");
}

#[test]
fn weave_db_env_var_picks_the_store() {
    // nextest runs each test in its own process, so the environment is ours.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("from-env.db");
    std::env::set_var(weave::DB_ENV, &path);
    assert_eq!(weave::default_db_path(), path);
    let client = weave::Settings::new("env").quiet().init().expect("init");
    assert_eq!(
        client.db_path(),
        std::fs::canonicalize(&path).expect("created")
    );
    ping(7);
    drop(client);
    let store = Store::open(&path).expect("store");
    let calls = store.calls(&CallFilter::default()).expect("calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].inputs, json!({"n": 7}));
    assert_eq!(calls[0].project_id, "local/env");

    std::env::set_var(weave::DB_ENV, "");
    assert_eq!(weave::default_db_path(), Path::new(weave::DEFAULT_DB));
    std::env::remove_var(weave::DB_ENV);
    assert_eq!(weave::default_db_path(), Path::new(weave::DEFAULT_DB));
}

#[test]
fn readers_do_not_block_the_writer() {
    let t = Traced::new("store");
    let path = t.client.db_path().to_path_buf();
    ping(1);
    weave::flush();
    // A second connection holding a read transaction open...
    let mut reader = Connection::open(&path).expect("reader");
    let tx = reader.transaction().expect("begin");
    let count = |c: &Connection| -> i64 {
        c.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(count(&tx), 1);
    // ...while the writer commits more.
    for i in 0..50 {
        ping(i);
    }
    weave::flush();
    // Another reader sees the new rows; the open transaction keeps its snapshot.
    let other = Store::open(&path).expect("store");
    assert_eq!(other.call_count().expect("count"), 51);
    assert_eq!(count(&tx), 1);
    tx.commit().expect("end read");
    assert_eq!(count(&reader), 51);
    drop(t);
}

#[test]
fn flush_makes_records_visible_to_other_connections() {
    // Without a client, flush returns at once.
    weave::flush();
    let t = Traced::new("store");
    let reader = Store::open(t.client.db_path()).expect("store");
    for round in 1..=5u32 {
        ping(round);
        weave::flush();
        let calls = reader
            .calls(&CallFilter {
                oldest_first: true,
                ..Default::default()
            })
            .expect("calls");
        assert_eq!(calls.len(), round as usize);
        let last = calls.last().expect("call");
        assert_eq!(last.inputs["n"], round);
        assert!(last.ended_at.is_some(), "flush must cover the end record");
        assert_eq!(last.output, Some(json!(round)));
    }
}

#[derive(weave::Model, serde::Serialize)]
struct Tuned {
    level: u32,
}

#[weave::ops]
impl Tuned {
    #[weave::op]
    fn apply(&self, x: u32) -> u32 {
        x * self.level
    }
}

#[test]
fn objects_are_looked_up_per_project() {
    let _serial = weave_tests::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weave.db");
    let publish = |project: &str, levels: &[u32]| -> Vec<String> {
        let client = weave::Settings::new(project)
            .db_path(&path)
            .quiet()
            .init()
            .expect("init");
        let digests = levels
            .iter()
            .map(|&level| {
                let m = Tuned { level };
                m.apply(1);
                m.weave_version().digest
            })
            .collect();
        drop(client);
        digests
    };
    let one = publish("team/one", &[1]);
    let two = publish("team/two", &[7, 8]);
    let store = Store::open(&path).expect("store");

    // Each project numbers its own versions.
    let in_one = store
        .object_versions_in(Some("team/one"), "Tuned")
        .expect("versions");
    assert_eq!(in_one.len(), 1);
    assert_eq!((in_one[0].version_index, &in_one[0].digest), (0, &one[0]));
    let in_two = store
        .object_versions_in(Some("team/two"), "Tuned")
        .expect("versions");
    assert_eq!(
        in_two
            .iter()
            .map(|v| (v.version_index, v.digest.clone(), v.is_latest))
            .collect::<Vec<_>>(),
        [(0, two[0].clone(), false), (1, two[1].clone(), true)]
    );
    let v0 = store
        .object_in(Some("team/two"), "Tuned", "v0")
        .expect("ok")
        .expect("v0");
    assert_eq!(v0.digest, two[0]);
    let latest = store
        .object_in(Some("team/one"), "Tuned", "latest")
        .expect("ok")
        .expect("latest");
    assert_eq!(latest.digest, one[0]);
    assert_eq!(
        store
            .object_in(Some("team/three"), "Tuned", "latest")
            .expect("ok"),
        None
    );

    // Without a project, a name two projects use is an error naming both.
    match store.object("Tuned", "latest") {
        Err(Error::NotFound(m)) => {
            assert!(m.contains("team/one") && m.contains("team/two"), "{m}")
        }
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    // Refs carry their project.
    let r = store
        .resolve_ref(&format!("weave:///team/one/object/Tuned:{}", one[0]))
        .expect("ok")
        .expect("resolved");
    assert_eq!((r.project_id.as_str(), r.version_index), ("team/one", 0));
    assert_eq!(
        store
            .resolve_ref(&format!("weave:///team/one/object/Tuned:{}", two[1]))
            .expect("ok"),
        None,
        "a digest of another project"
    );
    // Latest versions, one per project.
    let models = store.objects(Some("Model")).expect("models");
    assert_eq!(
        models
            .iter()
            .map(|m| (m.project_id.as_str(), m.digest.as_str()))
            .collect::<Vec<_>>(),
        [("team/one", one[0].as_str()), ("team/two", two[1].as_str())]
    );
    let only_two = store
        .objects_in(Some("team/two"), Some("Model"))
        .expect("models");
    assert_eq!(only_two.len(), 1);
    assert_eq!(only_two[0].digest, two[1]);
    // Calls filter by project too.
    let calls_of = |project: Option<&str>| {
        store
            .calls(&CallFilter {
                project_id: project.map(str::to_string),
                ..Default::default()
            })
            .expect("calls")
            .len()
    };
    assert_eq!(
        (
            calls_of(None),
            calls_of(Some("team/one")),
            calls_of(Some("team/two"))
        ),
        (3, 1, 2)
    );
}

#[test]
fn object_version_history() {
    let t = Traced::new("store");
    let digests: Vec<String> = (1..=3)
        .map(|level| {
            let m = Tuned { level };
            m.apply(1);
            m.weave_version().digest
        })
        .collect();
    let store = t.store();
    let versions = store.object_versions("Tuned").expect("versions");
    assert_eq!(versions.len(), 3);
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(v.version_index, i as i64);
        assert_eq!(v.digest, digests[i]);
        assert_eq!(v.is_latest, i == 2);
        assert_eq!(v.val["level"], i as u32 + 1);
        assert_eq!(v.project_id, "local/store");
        assert!(v.created_at.ends_with('Z'));
    }
    let latest = store
        .object("Tuned", "latest")
        .expect("ok")
        .expect("latest");
    assert_eq!(latest.digest, digests[2]);
    let v0 = store.object("Tuned", "v0").expect("ok").expect("v0");
    assert_eq!(v0.digest, digests[0]);
    let v1 = store.object("Tuned", "v1").expect("ok").expect("v1");
    assert_eq!(v1.digest, digests[1]);
    let by_prefix = store
        .object("Tuned", &digests[1][..8])
        .expect("ok")
        .expect("by prefix");
    assert_eq!(by_prefix.version_index, 1);
    let full = store
        .object("Tuned", &digests[0])
        .expect("ok")
        .expect("full");
    assert_eq!(full.version_index, 0);
    assert!(
        matches!(store.object("Tuned", ""), Err(Error::NotFound(m)) if m.contains("ambiguous"))
    );
    assert_eq!(store.object("Tuned", "zzzz-none").expect("ok"), None);
    assert_eq!(store.object("Nope", "latest").expect("ok"), None);
    assert!(store.object_versions("Nope").expect("ok").is_empty());

    let models = store.objects(Some("Model")).expect("models");
    assert_eq!(models.len(), 1, "only the latest version is listed");
    assert_eq!(models[0].digest, digests[2]);
    let ops = store.objects(Some("Op")).expect("ops");
    assert_eq!(
        ops.iter().map(|o| o.object_id.as_str()).collect::<Vec<_>>(),
        ["Tuned.apply"]
    );
    let all = store.objects(None).expect("all");
    assert_eq!(
        all.iter().map(|o| o.object_id.as_str()).collect::<Vec<_>>(),
        ["Tuned", "Tuned.apply"]
    );
    assert!(store.objects(Some("Dataset")).expect("none").is_empty());
}

#[test]
fn call_filters() {
    let t = Traced::new("store");
    get_one();
    getsone();
    root(1);
    root(2);
    for i in 0..4 {
        ping(100 + i);
    }
    let store = t.store();
    let all = store
        .calls(&CallFilter {
            oldest_first: true,
            ..Default::default()
        })
        .expect("all");
    assert_eq!(all.len(), 2 + 3 * 2 + 4);
    let newest_first = store.calls(&CallFilter::default()).expect("all");
    let mut reversed = newest_first.clone();
    reversed.reverse();
    assert_eq!(reversed, all);
    let calls = |f: CallFilter| store.calls(&f).expect("calls");

    // By op name: exact, not a pattern (`_` is not a wildcard).
    let one = calls(CallFilter {
        op_name: Some("get_one".into()),
        ..Default::default()
    });
    assert_eq!(one.len(), 1, "{one:#?}");
    assert_eq!(one[0].output, Some(json!(1)));
    let pings = calls(CallFilter {
        op_name: Some("ping".into()),
        ..Default::default()
    });
    assert_eq!(pings.len(), 6);
    let by_ref = calls(CallFilter {
        op_name: Some(pings[0].op_name.clone()),
        ..Default::default()
    });
    assert_eq!(by_ref.len(), 6);
    assert!(calls(CallFilter {
        op_name: Some("pin".into()),
        ..Default::default()
    })
    .is_empty());

    // By trace.
    let root1 = all
        .iter()
        .find(|c| c.op_short_name() == "root" && c.inputs["n"] == 1)
        .expect("root 1");
    let trace = calls(CallFilter {
        trace_id: Some(root1.trace_id.clone()),
        ..Default::default()
    });
    assert_eq!(trace.len(), 3);
    assert!(trace.iter().all(|c| c.trace_id == root1.id));
    assert_eq!(store.trace(&root1.id).expect("trace"), {
        let mut t = trace.clone();
        t.reverse();
        t
    });
    assert_eq!(store.children(&root1.id).expect("children").len(), 2);

    // Errors only.
    let errors = calls(CallFilter {
        errors_only: true,
        ..Default::default()
    });
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|c| c.op_short_name() == "fails"));

    // Roots only.
    let roots = calls(CallFilter {
        roots_only: true,
        ..Default::default()
    });
    assert_eq!(roots.len(), 2 + 2 + 4);
    assert!(roots.iter().all(|c| c.parent_id.is_none()));

    // Limit keeps the newest (or oldest) first.
    let limited = calls(CallFilter {
        limit: Some(3),
        ..Default::default()
    });
    assert_eq!(limited, newest_first[..3]);
    let limited = calls(CallFilter {
        limit: Some(3),
        oldest_first: true,
        ..Default::default()
    });
    assert_eq!(limited, all[..3]);

    // Since: started at or after.
    let since = all[5].started_at.clone();
    let later = calls(CallFilter {
        since: Some(since.clone()),
        oldest_first: true,
        ..Default::default()
    });
    let expected: Vec<_> = all
        .iter()
        .filter(|c| c.started_at >= since)
        .cloned()
        .collect();
    assert!(later.len() >= all.len() - 5 && later.len() < all.len());
    assert_eq!(later, expected);

    // Combined.
    let combined = calls(CallFilter {
        op_name: Some("ping".into()),
        roots_only: true,
        limit: Some(2),
        ..Default::default()
    });
    assert_eq!(combined.len(), 2);
    assert_eq!(combined[0].inputs["n"], 103);
    assert_eq!(combined[1].inputs["n"], 102);

    // Prefix lookup.
    let first = &all[0];
    let found = store.calls_by_prefix(&first.id[..20], 10).expect("prefix");
    assert!(found.iter().any(|c| c.id == first.id));
    assert_eq!(store.call(&first.id).expect("call").as_ref(), Some(first));
    assert_eq!(store.call("no-such-id").expect("call"), None);
}

#[test]
fn killed_process_leaves_a_clean_store_with_its_finished_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crashy"))
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn crashy");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    // Let it run until it has flushed twice (every 40 bursts), then kill it mid-way to its
    // next flush, so that the last calls were only committed by the writer's own pace.
    let mut lines: Vec<(Instant, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushes = 0;
    let mut since_flush = 0;
    while flushes < 2 || since_flush < 25 {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let Ok(l) = rx.recv_timeout(timeout) else {
            panic!("crashy made no progress: {lines:?}")
        };
        if l.1.starts_with("flushed") {
            flushes += 1;
            since_flush = 0;
        } else {
            since_flush += 1;
        }
        lines.push(l);
    }
    child.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    let status = child.wait().expect("wait");
    assert!(!status.success());
    reader.join().expect("reader");
    lines.extend(rx.try_iter());
    let count_of = |prefix: &str, before: Instant| -> u64 {
        lines
            .iter()
            .filter(|(at, l)| *at <= before && l.starts_with(prefix))
            .filter_map(|(_, l)| l.split_whitespace().nth(1)?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let flushed = count_of("flushed", killed_at);
    let settled = count_of("finished", killed_at - Duration::from_millis(100));
    let printed = count_of("finished", killed_at);
    assert!(flushed > 0);
    eprintln!(
        "crashy: {flushed} flushed, {settled} finished 100 ms before the kill, {printed} in all"
    );

    // The file opens clean.
    let conn = Connection::open(&db).expect("open");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    drop(conn);
    let store = Store::open(&db).expect("store opens after the crash");
    let ended = store
        .calls(&CallFilter::default())
        .expect("calls")
        .into_iter()
        .filter(|c| c.ended_at.is_some())
        .count() as u64;
    assert!(
        ended >= flushed,
        "lost flushed calls: {ended} stored, {flushed} flushed"
    );
    assert!(
        ended >= settled,
        "lost calls finished 100 ms before the kill: {ended} stored, {settled} finished by then \
         ({printed} finished in all)"
    );
    // Every stored call is well formed.
    for c in store.calls(&CallFilter::default()).expect("calls") {
        assert!(
            matches!(c.op_short_name(), "step" | "inner"),
            "{}",
            c.op_name
        );
        if c.ended_at.is_some() {
            assert!(c.output.is_some());
        }
    }
}

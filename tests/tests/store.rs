//! The SQLite store as a traced program uses it: opening and init errors, `WEAVE_DB`,
//! concurrent readers, flush, version history per project, call filters through
//! `TraceStore`, and surviving a SIGKILL of the traced process.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::json;
use weave::store::{SqliteStore, StoreError};
use weave::types::query::{Expr, Query, SortBy};
use weave::types::{CallsFilter, CallsQueryReq};
use weave::Error;
use weave::Model as _;
use weave_tests::{Store, Traced};

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

fn schema_error(r: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match r {
        Err(Error::Store(StoreError::Schema { store, reason })) => (store, reason),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

fn store_schema_error(r: Result<SqliteStore, StoreError>) -> (String, String) {
    schema_error(r.map_err(Error::from))
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
    store_schema_error(SqliteStore::open(&foreign));
    let (store, reason) = schema_error(weave::Settings::new("p").db_path(&foreign).quiet().init());
    assert_eq!(store, foreign.display().to_string());
    assert!(reason.contains("not a weave trace store"), "{reason}");
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
    let (store, _) = store_schema_error(SqliteStore::open(&garbage));
    assert_eq!(store, garbage.display().to_string());
    let (store, _) = schema_error(weave::Settings::new("p").db_path(&garbage).quiet().init());
    assert_eq!(store, garbage.display().to_string());
    assert_eq!(
        std::fs::read(&garbage).expect("read"),
        junk,
        "garbage file modified"
    );

    // An empty file is an empty database: not a store to read.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    store_schema_error(SqliteStore::open(&empty));
}

#[test]
fn newer_schema_is_refused() {
    let t = Traced::new("store");
    ping(1);
    let path = t.client.db_path().expect("a file").to_path_buf();
    let Traced { client, dir, .. } = t;
    drop(client);
    Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("bump");
    let (_, reason) = store_schema_error(SqliteStore::open(&path));
    assert!(reason.contains("newer"), "{reason}");
    schema_error(weave::Settings::new("p").db_path(&path).quiet().init());
    drop(dir);
}

#[test]
fn missing_store_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nothing-here.db");
    match SqliteStore::open(&path) {
        Err(e @ StoreError::NotFound { .. }) => {
            assert!(e.to_string().contains("nothing-here.db"), "{e}");
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
        Some(std::fs::canonicalize(&path).expect("created").as_path())
    );
    ping(7);
    drop(client);
    let store = Store::open(&path, "local/env");
    let calls = store.calls(None);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        serde_json::Value::Object(calls[0].inputs.clone()),
        json!({"n": 7})
    );
    assert_eq!(calls[0].project_id, "local/env");

    std::env::set_var(weave::DB_ENV, "");
    assert_eq!(weave::default_db_path(), Path::new(weave::DEFAULT_DB));
    std::env::remove_var(weave::DB_ENV);
    assert_eq!(weave::default_db_path(), Path::new(weave::DEFAULT_DB));
}

#[test]
fn readers_do_not_block_the_writer() {
    let t = Traced::new("store");
    let path = t.client.db_path().expect("a file").to_path_buf();
    ping(1);
    weave::flush().expect("flush");
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
    weave::flush().expect("flush");
    // Another reader sees the new rows; the open transaction keeps its snapshot.
    let other = Store::open(&path, "local/store");
    assert_eq!(other.call_count(), 51);
    assert_eq!(count(&tx), 1);
    tx.commit().expect("end read");
    assert_eq!(count(&reader), 51);
    drop(t);
}

#[test]
fn flush_makes_records_visible_to_other_connections() {
    // Without a client, flush returns at once.
    weave::flush().expect("flush");
    let t = Traced::new("store");
    let reader = Store::open(t.client.db_path().expect("a file"), "local/store");
    for round in 1..=5u32 {
        ping(round);
        weave::flush().expect("flush");
        let calls = reader.calls(None);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weave.db");
    let publish = |project: &str, levels: &[u32]| -> Vec<String> {
        let client = weave::Settings::new(project)
            .db_path(&path)
            .quiet()
            .build()
            .expect("build");
        let digests = client.in_scope(|| {
            levels
                .iter()
                .map(|&level| {
                    let m = Tuned { level };
                    m.apply(1);
                    m.weave_version().digest
                })
                .collect()
        });
        drop(client);
        digests
    };
    let one = publish("team/one", &[1]);
    let two = publish("team/two", &[7, 8]);
    let in_project = |p: &str| Store::open(&path, p);

    // Each project numbers its own versions.
    let in_one = in_project("team/one").versions("Tuned");
    assert_eq!(in_one.len(), 1);
    assert_eq!((in_one[0].version_index, &in_one[0].digest), (0, &one[0]));
    let in_two = in_project("team/two").versions("Tuned");
    assert_eq!(
        in_two
            .iter()
            .map(|v| (v.version_index, v.digest.clone(), v.latest()))
            .collect::<Vec<_>>(),
        [(0, two[0].clone(), false), (1, two[1].clone(), true)]
    );
    assert_eq!(
        in_project("team/two")
            .object("Tuned", "v0")
            .expect("v0")
            .digest,
        two[0]
    );
    assert_eq!(
        in_project("team/one")
            .object("Tuned", "latest")
            .expect("latest")
            .digest,
        one[0]
    );
    assert_eq!(in_project("team/three").object("Tuned", "latest"), None);
    // Refs carry their project: a digest of another project does not resolve.
    let s = in_project("team/two");
    let r = s
        .resolve(&format!("weave:///team/one/object/Tuned:{}", one[0]))
        .expect("resolved");
    assert_eq!((r.project_id.as_str(), r.version_index), ("team/one", 0));
    assert_eq!(
        s.resolve(&format!("weave:///team/one/object/Tuned:{}", two[1])),
        None
    );
    // Latest versions, one per project; calls per project.
    assert_eq!(in_project("team/two").latest(Some("Model"), None).len(), 1);
    assert_eq!(
        in_project("team/two").latest(Some("Model"), None)[0].digest,
        two[1]
    );
    assert_eq!(
        (
            in_project("team/one").calls(None).len(),
            in_project("team/two").calls(None).len()
        ),
        (1, 2)
    );
    let projects = futures::executor::block_on(weave::store::TraceStore::projects(&s.inner))
        .expect("projects");
    assert_eq!(projects, ["team/one", "team/two"]);
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
    let versions = store.versions("Tuned");
    assert_eq!(versions.len(), 3);
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(v.version_index, i as i64);
        assert_eq!(v.digest, digests[i]);
        assert_eq!(v.latest(), i == 2);
        assert_eq!(v.val["level"], i as u32 + 1);
        assert_eq!(v.project_id, "local/store");
        assert!(v.created_at.ends_with('Z'));
    }
    assert_eq!(
        store.object("Tuned", "latest").expect("latest").digest,
        digests[2]
    );
    assert_eq!(store.object("Tuned", "v0").expect("v0").digest, digests[0]);
    assert_eq!(store.object("Tuned", "v1").expect("v1").digest, digests[1]);
    assert_eq!(
        store
            .object("Tuned", &digests[0])
            .expect("full")
            .version_index,
        0
    );
    assert_eq!(store.object("Tuned", "zzzz-none"), None);
    assert_eq!(store.object("Tuned", "v9"), None);
    assert_eq!(store.object("Nope", "latest"), None);
    assert!(store.versions("Nope").is_empty());

    let models = store.latest(Some("Model"), None);
    assert_eq!(models.len(), 1, "only the latest version is listed");
    assert_eq!(models[0].digest, digests[2]);
    let ops = store.latest(None, Some(true));
    assert_eq!(
        ops.iter().map(|o| o.object_id.as_str()).collect::<Vec<_>>(),
        ["Tuned.apply"]
    );
    let all = store.latest(None, None);
    assert_eq!(
        all.iter().map(|o| o.object_id.as_str()).collect::<Vec<_>>(),
        ["Tuned", "Tuned.apply"]
    );
    assert!(store.latest(Some("Dataset"), None).is_empty());
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
    let all = store.calls(None);
    assert_eq!(all.len(), 2 + 3 * 2 + 4);
    let newest_first = store.newest_first();
    let mut reversed = newest_first.clone();
    reversed.reverse();
    assert_eq!(reversed, all);
    let project = store.project.clone();
    let query = |filter: Option<CallsFilter>, q: Option<Expr>, limit: Option<u64>, desc: bool| {
        store.query(CallsQueryReq {
            project_id: project.clone(),
            filter,
            query: q.map(|expr| Query { expr }),
            limit,
            sort_by: desc.then(|| vec![SortBy::desc("started_at")]),
            ..Default::default()
        })
    };
    let op = |name: &str| CallsFilter {
        op_names: Some(vec![format!("weave:///{project}/op/{name}:*")]),
        ..Default::default()
    };

    // By op name: every version of the op, not a pattern (`_` is not a wildcard).
    let one = query(Some(op("get_one")), None, None, false);
    assert_eq!(one.len(), 1, "{one:#?}");
    assert_eq!(one[0].output, Some(json!(1)));
    let pings = query(Some(op("ping")), None, None, false);
    assert_eq!(pings.len(), 6);
    let by_ref = query(
        Some(CallsFilter {
            op_names: Some(vec![pings[0].op_name.clone()]),
            ..Default::default()
        }),
        None,
        None,
        false,
    );
    assert_eq!(by_ref.len(), 6);
    assert!(query(Some(op("pin")), None, None, false).is_empty());
    assert!(query(Some(op("get_on_")), None, None, false).is_empty());

    // By trace.
    let root1 = all
        .iter()
        .find(|c| c.op_display_name() == "root" && c.inputs["n"] == 1)
        .expect("root 1");
    let trace = store.trace(&root1.trace_id);
    assert_eq!(trace.len(), 3);
    assert!(trace.iter().all(|c| c.trace_id == root1.id));
    assert_eq!(trace[0].id, root1.id, "oldest first: the root");
    assert_eq!(store.children(&root1.id).len(), 2);

    // Errors only.
    let errors = query(
        None,
        Some(Expr::eq(
            Expr::field("summary.weave.status"),
            Expr::literal("error"),
        )),
        None,
        false,
    );
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|c| c.op_display_name() == "fails"));

    // Roots only.
    let roots_filter = CallsFilter {
        trace_roots_only: Some(true),
        ..Default::default()
    };
    let roots = query(Some(roots_filter.clone()), None, None, false);
    assert_eq!(roots.len(), 2 + 2 + 4);
    assert!(roots.iter().all(|c| c.parent_id.is_none()));

    // Limit keeps the newest (or oldest) first.
    assert_eq!(query(None, None, Some(3), true), newest_first[..3]);
    assert_eq!(query(None, None, Some(3), false), all[..3]);

    // Since: started at or after.
    let since = all[5].started_at.clone();
    let later = query(
        None,
        Some(Expr::gte(
            Expr::field("started_at"),
            Expr::literal(since.clone()),
        )),
        None,
        false,
    );
    let expected: Vec<_> = all
        .iter()
        .filter(|c| c.started_at >= since)
        .cloned()
        .collect();
    assert!(later.len() >= all.len() - 5 && later.len() < all.len());
    assert_eq!(later, expected);

    // Combined.
    let combined = query(
        Some(CallsFilter {
            trace_roots_only: Some(true),
            ..op("ping")
        }),
        None,
        Some(2),
        true,
    );
    assert_eq!(combined.len(), 2);
    assert_eq!(combined[0].inputs["n"], 103);
    assert_eq!(combined[1].inputs["n"], 102);

    // Prefix lookup and reading one call.
    let first = &all[0];
    let found = futures::executor::block_on(weave::store::TraceStore::call_ids_by_prefix(
        &store.inner,
        weave::store::CallIdPrefixReq {
            project_id: None,
            prefix: first.id[..20].to_string(),
            limit: 10,
        },
    ))
    .expect("prefix");
    assert!(found.iter().any(|k| k.id == first.id));
    let read = |id: &str| {
        futures::executor::block_on(weave::store::TraceStore::call_read(
            &store.inner,
            weave::types::CallReadReq {
                project_id: project.clone(),
                id: id.to_string(),
                ..Default::default()
            },
        ))
        .expect("call read")
        .call
    };
    assert_eq!(read(&first.id).as_ref(), Some(first));
    assert_eq!(read("no-such-id"), None);
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
    let store = Store::open(&db, "crash/test");
    let ended = store
        .calls(None)
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
    for c in store.calls(None) {
        assert!(
            matches!(c.op_display_name(), "step" | "inner"),
            "{}",
            c.op_name
        );
        if c.ended_at.is_some() {
            assert!(c.output.is_some());
        }
    }
}

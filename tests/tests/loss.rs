//! Loss somebody hears about: a damaged store is refused at `init`, naming the file; a flush
//! says how many records were not written and why; the first write error is printed on stderr
//! (with no tracing subscriber) and the exit path reports what was never written. Real
//! failures only: a store file with a damaged page, a store whose tables another connection
//! dropped under a running client, a trace server answering 500.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use weave::sink::RemoteConfig;
use weave::FlushError;
use weave_server::testing::Background;

#[weave::op]
fn work(i: u64) -> u64 {
    i + 1
}

fn ten_calls(client: &weave::WeaveClient) {
    client.in_scope(|| {
        for i in 0..10 {
            work(i);
        }
    });
}

/// Drops every table of the store at `db` through a connection of its own.
fn drop_tables(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!tables.is_empty());
    for t in tables {
        conn.execute_batch(&format!("DROP TABLE \"{t}\"")).unwrap();
    }
}

#[test]
fn init_refuses_a_store_with_a_damaged_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new("damaged")
        .db_path(&db)
        .quiet()
        .build()
        .unwrap();
    ten_calls(&client);
    client.shutdown().expect("a healthy store takes everything");

    // Damage the root page of the calls table: the bytes of one page, in a checkpointed file.
    let (page, page_size) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let page: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name LIKE '%calls%' \
                 ORDER BY rootpage LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (page as usize, size as usize)
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let start = (page - 1) * page_size;
    for (i, b) in bytes[start..start + page_size].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&db, &bytes).unwrap();

    let err = weave::Settings::new("damaged")
        .db_path(&db)
        .quiet()
        .build()
        .expect_err("a damaged store must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&db.display().to_string()),
        "names the file: {msg}"
    );
    assert!(msg.contains("damaged"), "{msg}");
}

#[test]
fn flush_says_how_many_records_were_not_written_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new("lossy")
        .db_path(&db)
        .quiet()
        .build()
        .unwrap();
    ten_calls(&client);
    client.flush().expect("healthy");

    drop_tables(&db);
    ten_calls(&client);
    let err = client.flush().expect_err("the calls were not written");
    let FlushError::NotWritten {
        lost,
        pending,
        reason,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(*lost >= 10, "{err}");
    assert_eq!(*pending, 0);
    assert!(reason.contains("no such table"), "{reason}");
    // Counted since the previous flush: nothing new, nothing lost.
    client.flush().expect("nothing since");
    // At shutdown: what was lost in all.
    let total = client.shutdown().expect_err("losses are reported at exit");
    assert_eq!(total.lost(), Some(*lost), "{total}");
}

#[test]
fn flush_counts_what_a_failing_trace_server_did_not_take() {
    let router = axum::Router::new()
        .fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "store on fire") });
    let server = Background::serve(router, "127.0.0.1:0".parse().unwrap());
    let mut config = RemoteConfig::new(server.url());
    config.retry.initial = Duration::from_millis(20);
    config.retry.max = Duration::from_millis(100);
    let client = weave::Settings::new("remote-loss")
        .trace_server(config)
        .flush_timeout(Duration::from_secs(2))
        .quiet()
        .build()
        .unwrap();
    ten_calls(&client);
    let err = client.flush().expect_err("nothing was delivered");
    let FlushError::NotWritten {
        pending, reason, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(*pending >= 10, "{err}");
    assert!(reason.contains("500"), "{reason}");
    let total = client.shutdown().expect_err("undelivered at exit");
    assert!(
        matches!(total, FlushError::NotWritten { pending, .. } if pending >= 10),
        "{total}"
    );
    server.stop();
}

#[test]
fn write_errors_reach_stderr_once_and_the_exit_reports_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lossy"))
        .arg(&db)
        .arg("3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("spawn lossy");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || out.next().expect("a line").expect("stdout");
    assert_eq!(next(), "flush ok");
    drop_tables(&db);
    let mut lost = 0;
    for _ in 0..2 {
        writeln!(stdin, "go").unwrap();
        let line = next();
        let n: u64 = line
            .strip_prefix("flush lost ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(n >= 10, "{line}");
        lost += n;
    }
    drop(stdin);
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(
        stderr
            .matches("trace records are not being written")
            .count(),
        1,
        "the first error once, with no tracing subscriber: {stderr}"
    );
    assert!(stderr.contains("no such table"), "{stderr}");
    assert!(
        stderr.contains(&format!("at exit, {lost} trace record(s) were not written")),
        "{stderr}"
    );
}

#[test]
fn a_flush_gives_up_after_its_timeout_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weave.db");
    let client = weave::Settings::new("slow")
        .db_path(&db)
        .flush_timeout(Duration::from_millis(300))
        .quiet()
        .build()
        .unwrap();
    ten_calls(&client);
    client.flush().expect("healthy");
    // Another process holds the write lock: the writer waits for it (up to its busy timeout).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    ten_calls(&client);
    let err = client.flush().expect_err("the writer is blocked");
    assert_eq!(
        err,
        FlushError::TimedOut {
            timeout: Duration::from_millis(300)
        }
    );
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    // The records were queued, not lost: written once the lock is free.
    client.flush().expect("written after the lock is released");
    let store = weave_tests::Store::open(&db, "local/slow");
    assert_eq!(store.call_count(), 20);
}

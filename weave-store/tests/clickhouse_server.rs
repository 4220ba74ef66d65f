//! `ClickHouseServer`, the throwaway `clickhouse-server` every ClickHouse test runs on: free
//! ports, its own directory, stop and restart on the same data, and no process left
//! behind, not even when the process that started it dies without cleaning up.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use weave_store::ClickHouseServer;

/// Runs one SQL statement over HTTP, returning the body, or `None` if nothing answers.
fn sql(port: u16, query: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let req = format!(
        "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{query}",
        query.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

fn wait_dead(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn starts_on_free_ports_keeps_data_across_restarts_and_stops_on_drop() {
    let mut a = ClickHouseServer::start().unwrap();
    let b = ClickHouseServer::start().unwrap();
    assert_ne!(a.http_port(), b.http_port());
    assert_ne!(a.dir(), b.dir());
    let port = a.http_port();
    assert_eq!(sql(port, "SELECT 1 + 1").as_deref(), Some("2\n"));
    sql(
        port,
        "CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x",
    )
    .unwrap();
    sql(port, "INSERT INTO t VALUES (7)").unwrap();

    let pid = a.pid().unwrap();
    a.stop();
    assert!(!a.is_running());
    assert!(wait_dead(pid), "the server survived stop()");
    assert_eq!(sql(port, "SELECT 1"), None, "something still answers");
    a.restart().unwrap();
    assert_eq!(sql(port, "SELECT x FROM t").as_deref(), Some("7\n"));

    let pid = a.pid().unwrap();
    let dir = a.dir().to_path_buf();
    drop(a);
    assert!(wait_dead(pid), "the server survived its drop");
    assert!(!Path::new(&dir).exists(), "its directory is left");
    assert_eq!(sql(b.http_port(), "SELECT 3").as_deref(), Some("3\n"));
}

const LEAK_ENV: &str = "WEAVE_TEST_LEAK_CLICKHOUSE";

/// Run by the test below in a child process: starts a server, prints its pid, and exits
/// without dropping it.
#[test]
fn helper_exits_without_stopping_its_server() {
    if std::env::var_os(LEAK_ENV).is_none() {
        return;
    }
    let s = ClickHouseServer::start().unwrap();
    println!("PID={}", s.pid().unwrap());
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

#[test]
fn a_server_dies_with_the_process_that_started_it() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_exits_without_stopping_its_server",
            "--nocapture",
        ])
        .env(LEAK_ENV, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("PID="))
        .unwrap_or_else(|| panic!("no pid in {text}"))
        .parse()
        .unwrap();
    assert!(
        wait_dead(pid),
        "clickhouse-server {pid} outlived its parent"
    );
}

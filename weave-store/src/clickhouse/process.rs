//! [`ClickHouseServer`]: a throwaway `clickhouse-server` child process on free loopback ports,
//! with its own configuration and data in a temporary directory, for tests, benches and
//! trying the ClickHouse backend out. It is stopped (and its directory removed) on drop; a
//! small watchdog stops it too if this process dies without dropping it.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `/ping`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable naming the server binary (`clickhouse-server`, or the multi-call
/// `clickhouse`, which is then run as `clickhouse server`).
pub const SERVER_BINARY_ENV: &str = "WEAVE_CLICKHOUSE_SERVER";

/// A `clickhouse-server` process owned by this one. See the [module docs](self).
#[derive(Debug)]
pub struct ClickHouseServer {
    command: Vec<String>,
    dir: tempfile::TempDir,
    http_port: u16,
    tcp_port: u16,
    user: Option<(String, String)>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    /// A `sh` that kills the server when its stdin (our end of a pipe) closes, i.e. when
    /// this process dies without stopping the server.
    watchdog: Child,
    _watchdog_stdin: ChildStdin,
}

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The command that runs a server: `$WEAVE_CLICKHOUSE_SERVER`, else `clickhouse-server` on
/// `PATH` or in `/usr/sbin` or `/usr/bin`, else `clickhouse server`.
fn server_command() -> io::Result<Vec<String>> {
    let with_sub = |p: PathBuf| {
        let multi = p.file_name().is_some_and(|n| n == "clickhouse");
        let mut c = vec![p.display().to_string()];
        if multi {
            c.push("server".into());
        }
        c
    };
    if let Some(p) = std::env::var_os(SERVER_BINARY_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(err(format!(
                "{SERVER_BINARY_ENV}={} is not a file",
                p.display()
            )));
        }
        return Ok(with_sub(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    for name in ["clickhouse-server", "clickhouse"] {
        if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Ok(with_sub(p));
        }
    }
    Err(err(format!(
        "clickhouse-server not found on PATH or in /usr/sbin: install it \
         (`apt-get install clickhouse-server`) or set {SERVER_BINARY_ENV} to its path"
    )))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl ClickHouseServer {
    /// Starts a server whose `default` user has no password, and waits until it answers.
    pub fn start() -> io::Result<ClickHouseServer> {
        Self::start_inner(None)
    }

    /// Starts a server with one more user, `user` with `password`.
    pub fn start_with_user(user: &str, password: &str) -> io::Result<ClickHouseServer> {
        Self::start_inner(Some((user.to_string(), password.to_string())))
    }

    fn start_inner(user: Option<(String, String)>) -> io::Result<ClickHouseServer> {
        let command = server_command()?;
        let mut last = None;
        // A free port can be taken by someone else before the server binds it: try again.
        for _ in 0..5 {
            let mut s = ClickHouseServer {
                command: command.clone(),
                dir: tempfile::Builder::new()
                    .prefix("weave-clickhouse-")
                    .tempdir()?,
                http_port: free_port()?,
                tcp_port: free_port()?,
                user: user.clone(),
                running: None,
            };
            match s.launch() {
                Ok(()) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| err("clickhouse-server did not start")))
    }

    fn write_config(&self) -> io::Result<PathBuf> {
        let root = self.dir.path();
        let data = root.join("data");
        fs::create_dir_all(&data)?;
        let d = |sub: &str| xml_escape(&format!("{}/{sub}/", data.display()));
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{log}</log>
    <errorlog>{errlog}</errorlog>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{path}</path>
  <tmp_path>{tmp}</tmp_path>
  <user_files_path>{user_files}</user_files_path>
  <format_schema_path>{schemas}</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
</yandex>
"#,
            log = xml_escape(&root.join("server.log").display().to_string()),
            errlog = xml_escape(&root.join("server.err.log").display().to_string()),
            http = self.http_port,
            tcp = self.tcp_port,
            path = xml_escape(&format!("{}/", data.display())),
            tmp = d("tmp"),
            user_files = d("user_files"),
            schemas = d("format_schemas"),
        );
        let extra_user = match &self.user {
            Some((u, p)) => format!(
                "<{u}><password>{p}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
                 <profile>default</profile><quota>default</quota></{u}>",
                u = xml_escape(u),
                p = xml_escape(p)
            ),
            None => String::new(),
        };
        let users = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
    {extra_user}
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#
        );
        fs::write(root.join("users.xml"), users)?;
        let path = root.join("config.xml");
        fs::write(&path, config)?;
        Ok(path)
    }

    fn launch(&mut self) -> io::Result<()> {
        let config = self.write_config()?;
        let out = fs::File::create(self.dir.path().join("stdout.log"))?;
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .arg(format!("--config-file={}", config.display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", self.command.join(" "))))?;
        let mut watchdog = match Command::new("sh")
            .arg("-c")
            .arg("read _ignored; kill -9 \"$0\" 2>/dev/null")
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(w) => w,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("cannot start the server's watchdog: {e}")));
            }
        };
        let stdin = watchdog
            .stdin
            .take()
            .ok_or_else(|| err("watchdog has no stdin"))?;
        self.running = Some(Running {
            child,
            watchdog,
            _watchdog_stdin: stdin,
        });
        if let Err(e) = self.wait_ready() {
            self.stop();
            return Err(e);
        }
        Ok(())
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.http_port).into(),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.") && buf.contains(" 200 ") && buf.ends_with("Ok.\n")
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if self.ping() {
                return Ok(());
            }
            let exited = match &mut self.running {
                Some(r) => r.child.try_wait()?.is_some(),
                None => true,
            };
            if exited {
                return Err(err(format!(
                    "clickhouse-server exited before it was ready:\n{}",
                    self.log_tail()
                )));
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(err(format!(
                    "clickhouse-server did not answer /ping on port {} within {:?}:\n{}",
                    self.http_port,
                    READY_TIMEOUT,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's HTTP interface, `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// A store URL for `database` on this server, `clickhouse://127.0.0.1:PORT/DATABASE`.
    pub fn store_url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.http_port)
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// The directory holding the configuration, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running (it may still be starting).
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (as a crash would; its data stays). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            // The watchdog first, so that it never signals a pid that is no longer ours: the
            // server's pid stays reserved until it is reaped below.
            let _ = r.watchdog.kill();
            let _ = r.watchdog.wait();
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// Starts the server again on the same ports and data (after [`stop`](Self::stop)).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch()
    }

    /// The last lines of the server's logs, for error messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "server.err.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.path().join(name)) {
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(20);
                out.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
            }
        }
        out
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
    }
}

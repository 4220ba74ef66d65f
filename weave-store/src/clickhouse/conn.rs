//! The connection to ClickHouse's HTTP interface (the `clickhouse` crate, RowBinary, no
//! compression): where the server is, SQL text with its bound values, timeouts, and how
//! ClickHouse's failures become [`StoreError`]s.
//!
//! ClickHouse 18.16 has no server-side query parameters (`{x:Type}`), so values go into the
//! SQL text; they only ever get there through `Sql::arg` (and its siblings), which hand
//! them to the crate's binding (`?` placeholders, escaped by one function that the tests
//! fuzz against a real server). Inserted rows travel as RowBinary data, never as SQL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;

use crate::error::{Result, StoreError};

/// Where a ClickHouse store lives and how to log in.
#[derive(Clone)]
pub struct ClickHouseOptions {
    /// The HTTP interface, `http://host:port`.
    pub http_url: String,
    /// The database holding weave's tables; created when missing. Letters, digits and `_`.
    pub database: String,
    /// User (ClickHouse's `default` when `None`).
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// How long one request to ClickHouse may take before the store answers `Unavailable`.
    pub timeout: Duration,
}

impl fmt::Debug for ClickHouseOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseOptions")
            .field("http_url", &self.http_url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Environment variable with the ClickHouse user, when the store URL has none.
pub const USER_ENV: &str = "WEAVE_CLICKHOUSE_USER";
/// Environment variable with the ClickHouse password, when the store URL has none.
pub const PASSWORD_ENV: &str = "WEAVE_CLICKHOUSE_PASSWORD";
/// The default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn bad_url(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::invalid("store", format!("`{url}`: {}", reason.into()))
}

impl ClickHouseOptions {
    /// Parses `clickhouse://[user[:password]@]host[:port]/database` (port 8123 by default;
    /// `http://` works too). User and password not in the URL come from
    /// `WEAVE_CLICKHOUSE_USER` and `WEAVE_CLICKHOUSE_PASSWORD`.
    pub fn from_url(url: &str) -> Result<ClickHouseOptions> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad_url(url, "expected clickhouse://host:port/database"))?;
        if !matches!(scheme, "clickhouse" | "http") {
            return Err(bad_url(
                url,
                format!(
                    "unsupported scheme `{scheme}` (clickhouse:// or http://; HTTPS is not \
                     supported: put a TLS proxy in front or use a private network)"
                ),
            ));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let database = path.trim_end_matches('/');
        if database.is_empty() {
            return Err(bad_url(url, "the database is missing (…/DATABASE)"));
        }
        check_identifier(database).map_err(|r| bad_url(url, r))?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(bad_url(url, "the host is missing"));
        }
        let hostport = if hostport.starts_with('[') || !hostport.contains(':') {
            if hostport.ends_with(']') || !hostport.contains(':') {
                format!("{hostport}:8123")
            } else {
                hostport.to_string()
            }
        } else {
            hostport.to_string()
        };
        let decode = |s: &str| -> Result<String> {
            percent_decode(s)
                .ok_or_else(|| bad_url(url, "bad percent-encoding in user or password"))
        };
        let (mut user, mut password) = (None, None);
        if let Some(ui) = userinfo {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            if !u.is_empty() {
                user = Some(decode(u)?);
            }
            if let Some(p) = p {
                password = Some(decode(p)?);
            }
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(ClickHouseOptions {
            http_url: format!("http://{hostport}"),
            database: database.to_string(),
            user: user.or_else(|| env(USER_ENV)),
            password: password.or_else(|| env(PASSWORD_ENV)),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// `clickhouse://user@host:port/database`, without the password (for messages).
    pub fn display_url(&self) -> String {
        let host = self.http_url.trim_start_matches("http://");
        match &self.user {
            Some(u) => format!("clickhouse://{u}@{host}/{}", self.database),
            None => format!("clickhouse://{host}/{}", self.database),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks a database name: it goes into SQL text as an identifier.
pub(crate) fn check_identifier(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "database name `{name}`: use 1 to 64 letters, digits and `_`, not starting with a digit"
        ))
    }
}

/// A value bound to a `?` of an [`Sql`].
#[derive(Debug, Clone)]
enum Arg {
    Str(String),
    Int(i64),
    Strs(Vec<String>),
}

/// SQL text with `?` placeholders and their values, in order. Text is only ever appended
/// from constants and checked identifiers; values only through the `arg` methods.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text (constants, never request data).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        debug_assert!(!text.contains('?'), "SQL text with a `?`: {text}");
        self.text.push_str(text);
        self
    }

    /// Appends a string value.
    pub(crate) fn arg(&mut self, v: &str) -> &mut Sql {
        self.text.push('?');
        self.args.push(Arg::Str(v.to_string()));
        self
    }

    /// Appends an integer value.
    pub(crate) fn int(&mut self, v: i64) -> &mut Sql {
        self.text.push('?');
        self.args.push(Arg::Int(v));
        self
    }

    /// Appends an array-of-strings literal.
    pub(crate) fn strs(&mut self, v: &[String]) -> &mut Sql {
        self.text.push('?');
        self.args.push(Arg::Strs(v.to_vec()));
        self
    }

    /// Appends `col IN (?, ?, …)`, or `0` for an empty list (nothing is in it).
    pub(crate) fn in_list(&mut self, col: &str, values: &[String]) -> &mut Sql {
        if values.is_empty() {
            return self.push("0");
        }
        self.push(col).push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.arg(v);
        }
        self.push(")")
    }

    /// Appends another fragment (text and values).
    pub(crate) fn append(&mut self, other: &Sql) -> &mut Sql {
        self.text.push_str(&other.text);
        self.args.extend(other.args.iter().cloned());
        self
    }

    /// Whether nothing has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Reads a number after `Code: ` in a ClickHouse error text.
fn error_code(msg: &str) -> Option<u32> {
    let at = msg.find("Code: ")? + 6;
    let digits: String = msg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// ClickHouse error codes that mean "busy or briefly unable", worth retrying.
const TRANSIENT: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    164, // READONLY (e.g. while starting)
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    319, // UNKNOWN_STATUS_OF_INSERT
];

/// The connection: one HTTP client (a keep-alive pool) and the store's name for messages.
#[derive(Clone)]
pub(crate) struct Conn {
    client: Client,
    pub(crate) at: Arc<str>,
    timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.at)
    }
}

impl Conn {
    /// A client for `opts`; `database: false` for statements that must run before the
    /// database exists.
    pub(crate) fn new(opts: &ClickHouseOptions, database: bool) -> Conn {
        let mut client = Client::default()
            .with_url(&opts.http_url)
            // 18.16 cannot describe RowBinaryWithNamesAndTypes: send plain RowBinary.
            .with_validation(false)
            // Long `IN` lists of ids.
            .with_setting("max_query_size", "33554432");
        if database {
            client = client.with_database(&opts.database);
        }
        if let Some(u) = &opts.user {
            client = client.with_user(u);
        }
        if let Some(p) = &opts.password {
            client = client.with_password(p);
        }
        Conn {
            client,
            at: opts.display_url().into(),
            timeout: opts.timeout,
        }
    }

    /// A ClickHouse failure as a store error: unreachable, timed out or overloaded is
    /// `Unavailable` (503, retry); anything else is `Backend` (502).
    pub(crate) fn err(&self, e: clickhouse::error::Error) -> StoreError {
        use clickhouse::error::Error as E;
        let transient = match &e {
            E::Network(_) | E::TimedOut => true,
            E::BadResponse(msg) => {
                error_code(msg).is_some_and(|c| TRANSIENT.contains(&c))
                    || msg.starts_with("502")
                    || msg.starts_with("503")
                    || msg.starts_with("504")
            }
            _ => false,
        };
        if transient {
            StoreError::Unavailable {
                store: self.at.to_string(),
                reason: format!("ClickHouse is unreachable or busy: {e}"),
            }
        } else {
            StoreError::Backend {
                store: self.at.to_string(),
                source: Box::new(e),
            }
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable {
            store: self.at.to_string(),
            reason: format!("ClickHouse did not answer within {:?}", self.timeout),
        }
    }

    /// Runs `fut` under the request timeout.
    pub(crate) async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The crate's query for `sql`, with the values bound.
    pub(crate) fn query(&self, sql: &Sql) -> clickhouse::query::Query {
        let mut q = self.client.query(&sql.text);
        for a in &sql.args {
            q = match a {
                Arg::Str(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Strs(v) => q.bind(v.as_slice()),
            };
        }
        q
    }

    /// Runs a statement that returns nothing.
    pub(crate) async fn execute(&self, sql: &Sql) -> Result<()> {
        self.timed(self.query(sql).execute()).await
    }

    /// Runs a query and collects its rows.
    pub(crate) async fn fetch_all<T>(&self, sql: &Sql) -> Result<Vec<T>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.timed(self.query(sql).fetch_all::<T>()).await
    }

    /// Runs a query and streams its rows.
    pub(crate) fn fetch<T>(&self, sql: &Sql) -> Result<Cursor<T>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let inner = self.query(sql).fetch::<T>().map_err(|e| self.err(e))?;
        Ok(Cursor {
            inner,
            conn: self.clone(),
        })
    }

    /// Inserts rows, all in one `INSERT` (one block: all or nothing).
    pub(crate) async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<()>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        self.timed(async {
            let mut ins = self.client.insert::<T>(table).await?;
            for r in rows {
                ins.write(r).await?;
            }
            ins.end().await
        })
        .await
    }
}

/// Rows of a query as they arrive (see [`Conn::fetch`]).
pub(crate) struct Cursor<T: clickhouse::Row> {
    inner: clickhouse::query::RowCursor<T>,
    conn: Conn,
}

impl<T> Cursor<T>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    /// The next row, `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<T>> {
        match tokio::time::timeout(self.conn.timeout, self.inner.next()).await {
            Ok(r) => r.map_err(|e| self.conn.err(e)),
            Err(_) => Err(self.conn.timed_out()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ClickHouseOptions::from_url("clickhouse://u%40x:p%3Aw@db.example:9999/weave_1")
            .unwrap();
        assert_eq!(o.http_url, "http://db.example:9999");
        assert_eq!(o.database, "weave_1");
        assert_eq!(o.user.as_deref(), Some("u@x"));
        assert_eq!(o.password.as_deref(), Some("p:w"));
        assert_eq!(o.display_url(), "clickhouse://u@x@db.example:9999/weave_1");
        assert!(!format!("{o:?}").contains("p:w"));
        let o = ClickHouseOptions::from_url("clickhouse://localhost/w").unwrap();
        assert_eq!(o.http_url, "http://localhost:8123");
        let o = ClickHouseOptions::from_url("http://[::1]/w").unwrap();
        assert_eq!(o.http_url, "http://[::1]:8123");
        for (bad, why) in [
            ("localhost:8123/w", "expected clickhouse://"),
            ("https://h/w", "HTTPS is not supported"),
            ("clickhouse://h:1/", "database is missing"),
            ("clickhouse://h:1/w; DROP", "database name"),
            ("clickhouse://h:1/1abc", "database name"),
            ("clickhouse:///w", "host is missing"),
            ("clickhouse://u:%zz@h/w", "percent-encoding"),
        ] {
            let e = ClickHouseOptions::from_url(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("invalid store"), "{bad}: {e}");
        }
    }

    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Echo {
        s: String,
        same: u8,
        found: u8,
        v: Vec<String>,
    }

    /// Values reach ClickHouse 18.16 unchanged through the one binding path: arbitrary
    /// strings (quotes, backslashes, `?`, control characters, any Unicode) and arrays of
    /// them, compared for equality and searched for, on a real server.
    #[test]
    fn bound_values_reach_clickhouse_unchanged() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = super::super::ClickHouseServer::start().unwrap();
        let opts = ClickHouseOptions::from_url(&server.store_url("default")).unwrap();
        let conn = Conn::new(&opts, false);
        let check = |s: &str, v: &[String]| -> std::result::Result<(), String> {
            let mut sql = Sql::new("SELECT ");
            sql.arg(s)
                .push(" AS s, ")
                .arg(s)
                .push(" = ")
                .arg(s)
                .push(" AS same, position(")
                .arg(&format!("<{s}>"))
                .push(", ")
                .arg(s)
                .push(") > 0 AS found, ")
                .strs(v)
                .push(" AS v");
            let got: Vec<Echo> = rt
                .block_on(conn.fetch_all(&sql))
                .map_err(|e| e.to_string())?;
            let e = got.first().ok_or("no row")?;
            if e.s != s || e.same != 1 || e.found != 1 || e.v != v {
                return Err(format!(
                    "{s:?} came back as {:?} ({}, {}, {:?})",
                    e.s, e.same, e.found, e.v
                ));
            }
            Ok(())
        };
        for s in [
            "",
            "'",
            "\\",
            "\\'",
            "''",
            "?",
            "??",
            "?fields",
            "\0",
            "\r\n\t",
            "`",
            "%_",
            "'; DROP TABLE x; --",
            "\\x41",
            "é😀\u{7f}\u{1}",
            "\u{feff}a",
            "a\\",
        ] {
            check(s, &[s.to_string(), "x".into()]).unwrap();
        }
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &(
                    any::<String>(),
                    prop::collection::vec(any::<String>(), 0..4),
                ),
                |(s, v)| {
                    check(&s, &v).map_err(TestCaseError::fail)?;
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            error_code("Code: 252, e.displayText() = DB::Exception: Too many parts"),
            Some(252)
        );
        assert_eq!(error_code("Code: 60. DB::Exception: Table x"), Some(60));
        assert_eq!(error_code("no code"), None);
    }
}

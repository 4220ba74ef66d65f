//! `weave::init`: the process-wide client that ops report to.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use uuid::Uuid;

use crate::capture::default_redact_keys;
use crate::error::Error;
use crate::sink::queue::{self, Registry, ThreadBuffer};
use crate::sink::{self, Msg};
use crate::store::Store;

static ENABLED: AtomicBool = AtomicBool::new(false);
static CLIENT: ArcSwapOption<ClientInner> = ArcSwapOption::const_empty();
/// Id of the current client's call [`Registry`] (0: none), so that a call finds this thread's
/// buffer without loading the client.
static CURRENT_CALLS: AtomicU64 = AtomicU64::new(0);

/// Environment variable naming the database file.
pub const DB_ENV: &str = "WEAVE_DB";
/// Default database location, relative to the working directory.
pub const DEFAULT_DB: &str = ".weave/weave.db";

/// Whether a client is initialised: the one atomic load an op pays when tracing is off.
#[inline(always)]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn current_client() -> Option<Arc<ClientInner>> {
    CLIENT.load_full()
}

/// This thread's buffer for the current client's call records.
pub(crate) fn call_buffer() -> Option<Arc<ThreadBuffer>> {
    queue::cached(CURRENT_CALLS.load(Ordering::Acquire))
        .or_else(|| CLIENT.load().as_ref().map(|c| c.calls.local()))
}

/// Shared state of an initialised client.
#[derive(Debug)]
pub(crate) struct ClientInner {
    pub(crate) entity: String,
    pub(crate) project: String,
    sender: mpsc::Sender<Msg>,
    calls: Arc<Registry>,
    published: Mutex<HashSet<String>>,
}

impl ClientInner {
    pub(crate) fn send(&self, msg: Msg) {
        // The writer only goes away at shutdown; a record sent after that has nowhere to go.
        let _ = self.sender.send(msg);
    }

    /// `entity/project`.
    pub(crate) fn project_id(&self) -> String {
        format!("{}/{}", self.entity, self.project)
    }

    /// `weave:///entity/project/`.
    pub(crate) fn ref_prefix(&self) -> String {
        format!("weave:///{}/{}/", self.entity, self.project)
    }

    /// Records that `key` was published; true the first time.
    pub(crate) fn first_publish(&self, key: &str) -> bool {
        let mut set = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if set.contains(key) {
            false
        } else {
            set.insert(key.to_string())
        }
    }
}

/// Where the database is when nothing else is said: `$WEAVE_DB`, else `./.weave/weave.db`.
pub fn default_db_path() -> PathBuf {
    match std::env::var_os(DB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_DB),
    }
}

/// Splits `entity/project` or `project` (entity `local`), rejecting malformed names.
pub fn parse_project(project: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error::InvalidProject {
        project: project.to_string(),
        reason: why.to_string(),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (entity, name) = match project.split_once('/') {
        Some((e, p)) => (e, p),
        None => ("local", project),
    };
    if name.contains('/') {
        return Err(bad("expected `project` or `entity/project`"));
    }
    if !valid(entity) || !valid(name) {
        return Err(bad(
            "names must be non-empty and use only letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok((entity.to_string(), name.to_string()))
}

/// Options for [`init`]; `Settings::new(project).db_path(..).init()`.
#[derive(Debug, Clone)]
pub struct Settings {
    project: String,
    db_path: Option<PathBuf>,
    redact_keys: Vec<String>,
    quiet: bool,
}

impl Settings {
    /// Settings for `project` (`entity/project` or `project`).
    pub fn new(project: impl Into<String>) -> Self {
        Settings {
            project: project.into(),
            db_path: None,
            redact_keys: default_redact_keys(),
            quiet: false,
        }
    }

    /// Stores traces in this SQLite file instead of `$WEAVE_DB` / `./.weave/weave.db`.
    pub fn db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.db_path = Some(path.into());
        self
    }

    /// Adds keys whose values are redacted in inputs and attributes.
    pub fn redact_key(mut self, key: impl Into<String>) -> Self {
        self.redact_keys.push(key.into());
        self
    }

    /// Replaces the list of redacted keys.
    pub fn redact_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Does not print where the traces go.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Opens the store, starts the background writer, and turns tracing on.
    pub fn init(self) -> Result<WeaveClient, Error> {
        let (entity, project) = parse_project(&self.project)?;
        let db_path = self.db_path.unwrap_or_else(default_db_path);
        if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let store = Store::open_writer(&db_path)?;
        let db_path = std::fs::canonicalize(&db_path).unwrap_or(db_path);
        let (sender, receiver) = mpsc::channel();
        let project_id = format!("{entity}/{project}");
        let calls = Arc::new(Registry::new());
        let writer =
            sink::spawn_writer(store, receiver, calls.clone(), project_id, self.redact_keys)?;
        let inner = Arc::new(ClientInner {
            entity,
            project,
            sender,
            calls,
            published: Mutex::new(HashSet::new()),
        });
        install_panic_hook();
        // A previous client stops receiving; its guard still flushes and joins its writer.
        CLIENT.store(Some(inner.clone()));
        CURRENT_CALLS.store(inner.calls.id(), Ordering::SeqCst);
        ENABLED.store(true, Ordering::SeqCst);
        if !self.quiet {
            eprintln!(
                "weave: logging project {} to {}\nweave: inspect with `weave calls --db {}`",
                inner.project_id(),
                db_path.display(),
                db_path.display()
            );
        }
        Ok(WeaveClient {
            inner,
            db_path,
            writer: Some(writer),
        })
    }
}

/// Starts tracing to the embedded store for `project` (`"entity/project"` or `"project"`).
/// Keep the returned guard alive: dropping it flushes everything and stops tracing.
pub fn init(project: &str) -> Result<WeaveClient, Error> {
    Settings::new(project).init()
}

/// Waits until every record sent so far is in the store. No-op without a client.
pub fn flush() {
    if let Some(client) = current_client() {
        flush_client(&client);
    }
}

fn flush_client(client: &ClientInner) {
    let (tx, rx) = mpsc::sync_channel(1);
    client.send(Msg::Flush(tx));
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        tracing::warn!("weave: flush did not complete within 60 s");
    }
}

/// The guard returned by [`init`]. Dropping it flushes and turns tracing off.
#[derive(Debug)]
pub struct WeaveClient {
    inner: Arc<ClientInner>,
    db_path: PathBuf,
    writer: Option<JoinHandle<()>>,
}

impl WeaveClient {
    /// `entity/project`.
    pub fn project_id(&self) -> String {
        self.inner.project_id()
    }

    /// The SQLite file the traces go to.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Waits until everything recorded so far is in the store.
    pub fn flush(&self) {
        flush_client(&self.inner);
    }

    /// Flushes and opens a read handle on the store.
    pub fn store(&self) -> Result<Store, Error> {
        self.flush();
        Store::open(&self.db_path)
    }

    /// `weave:///entity/project/` prefix of this client's refs.
    pub fn ref_prefix(&self) -> String {
        self.inner.ref_prefix()
    }
}

impl Drop for WeaveClient {
    fn drop(&mut self) {
        let is_current = CLIENT
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &self.inner));
        if is_current {
            ENABLED.store(false, Ordering::SeqCst);
            CURRENT_CALLS.store(0, Ordering::SeqCst);
            CLIENT.store(None);
        }
        self.inner.send(Msg::Shutdown);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

// --- ids ---------------------------------------------------------------------------------

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() | 1
}

fn next_random() -> u64 {
    RNG.with(|r| {
        // splitmix64
        let mut z = r.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        r.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

thread_local! {
    /// Millisecond of the last id made on this thread and the sub-millisecond sequence.
    static SEQ: Cell<(u64, u16)> = const { Cell::new((0, 0)) };
}

/// A UUIDv7 for a call started at `at`. Ids made on one thread in the same millisecond carry an
/// increasing 12-bit sequence (RFC 9562, method 1), so a parent sorts before its children.
pub(crate) fn new_call_id(at: SystemTime) -> Uuid {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let random = next_random();
    let seq = SEQ.with(|s| {
        let (last, seq) = s.get();
        // A new millisecond starts the sequence at a random point in the lower half, leaving
        // room to count up.
        let next = if last == ms {
            seq.wrapping_add(1) & 0x0FFF
        } else {
            (random >> 53) as u16 & 0x07FF
        };
        s.set((ms, next));
        next
    });
    let mut rand = [0u8; 10];
    rand[0] = (seq >> 8) as u8;
    rand[1] = seq as u8;
    rand[2..].copy_from_slice(&random.to_le_bytes());
    uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid()
}

// --- panics ------------------------------------------------------------------------------

thread_local! {
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                let text = format!("panicked at {}:{}:{}", loc.file(), loc.line(), loc.column());
                let _ = PANIC_LOCATION.try_with(|p| *p.borrow_mut() = Some(text));
            }
            previous(info)
        }));
    });
}

/// Where the last panic on this thread happened, if the hook saw it.
pub(crate) fn take_panic_location() -> Option<String> {
    PANIC_LOCATION
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten()
}

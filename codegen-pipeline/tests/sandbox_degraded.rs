//! A host without namespaces or Landlock, simulated by running a copy of this test
//! binary under a seccomp filter that fails `unshare` (EPERM) and the Landlock calls
//! (ENOSYS, as on an old kernel). The sandbox must refuse untrusted code unless
//! `allow_unsandboxed` is set; with it, run with what is left, report what is
//! missing, still kill what a program leaves behind, and never signal processes
//! outside the program's own tree.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use codegen_pipeline::humaneval::{score_humaneval_test, Problem};
use codegen_pipeline::sandbox::{Mode, Sandbox, SandboxConfig, SandboxError};
use common::{assert_child_passed, copy_of_this_binary};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

mod common;

/// Set in the copy of this binary that runs under the filter.
const DEGRADED_CHILD: &str = "WEAVE_TEST_DEGRADED_CHILD";
/// Host uid the programs run as when the test runs as root.
const SANDBOX_UID: u32 = 64105;
const SECRET: &str = "sk-weave-degraded-secret-77c1";

fn problem() -> Problem {
    Problem {
        task_id: "degraded/add".into(),
        prompt: "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n".into(),
        canonical_solution: "    return a + b\n".into(),
        test: "def check(candidate):\n    assert candidate(2, 3) == 5\n".into(),
        entry_point: "add".into(),
    }
}

fn filter(syscalls: &[i64], errno: u32) -> BpfProgram {
    SeccompFilter::new(
        syscalls.iter().map(|&s| (s, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// An interpreter the sandbox uid can reach without a mount namespace (pyenv's
/// under /root cannot be re-exposed here).
fn reachable_python() -> PathBuf {
    let p = PathBuf::from("/usr/bin/python3");
    assert!(
        p.exists(),
        "this test needs the system interpreter /usr/bin/python3"
    );
    p
}

fn config(mode: Mode, allow_unsandboxed: bool) -> SandboxConfig {
    SandboxConfig {
        mode,
        workers: 1,
        timeout: Duration::from_secs(2),
        python: Some(reachable_python()),
        allow_unsandboxed,
        sandbox_uid: SANDBOX_UID,
        sandbox_gid: SANDBOX_UID,
        ..SandboxConfig::default()
    }
}

/// Whether `pid` is a live process (a zombie is dead, only not yet reaped by its parent,
/// which may be the host's init).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Killed when dropped, also when an assertion fails.
struct Bystander(std::process::Child);

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_degraded_host() {
    std::env::set_var("OPENAI_API_KEY", SECRET);
    for mode in [Mode::ForkServer, Mode::Fresh] {
        match Sandbox::new(config(mode, false)) {
            Err(SandboxError::Unavailable(missing)) => {
                for name in [
                    "user_namespace",
                    "pid_namespace",
                    "mount_namespace",
                    "landlock",
                ] {
                    assert!(missing.contains(name), "{mode:?}: {missing}");
                }
            }
            Err(e) => panic!("{mode:?}: expected a refusal, got {e}"),
            Ok(_) => panic!("{mode:?}: ran untrusted code without isolation"),
        }

        let sandbox = Sandbox::new(config(mode, true)).expect("sandbox with allow_unsandboxed");
        let p = sandbox.protections().clone();
        assert!(!p.any_namespace(), "{mode:?}: {p:?}");
        assert_eq!(p.landlock_abi, None, "{mode:?}");
        assert!(
            p.seccomp && p.rlimits && p.empty_environment && p.unprivileged_uid,
            "{mode:?}: {p:?}"
        );

        // A bystander with the programs' uid (as root they run as SANDBOX_UID, else
        // as the caller): a cleanup that signals too widely would kill it.
        let mut sleep = Command::new("sleep");
        sleep
            .arg("120")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            sleep.uid(SANDBOX_UID).gid(SANDBOX_UID);
        }
        let mut bystander = Bystander(sleep.spawn().expect("start a bystander process"));

        let problem = problem();
        let run = |completion: &str| score_humaneval_test(&problem, completion, &sandbox);
        let ok = run(&problem.canonical_solution);
        assert!(ok.passed, "{mode:?}: {ok:?}");
        let broken = run("    return None\n");
        assert!(!broken.passed, "{mode:?}: {broken:?}");
        let env = run(&format!(
            "    import os\n    return a + b if '{SECRET}' in str(os.environ) else None\n"
        ));
        assert!(
            !env.passed,
            "{mode:?}: the secret reached the program: {env:?}"
        );
        // Without Landlock and a mount namespace, only the audit hook stands between a
        // program and /proc/self/mem (where the nonce could be found): it must see
        // through relative paths, symlinks and str subclasses.
        let proc = run(
            "    import os\n    class S(str):\n        pass\n    os.symlink('/proc', 'p')\n    seen = []\n    for path in ('../' * 30 + 'proc/self/maps', 'p/self/maps', S('/proc/self/maps'), '//proc/self/maps', b'/proc/self/maps'):\n        try:\n            open(path, 'rb').read(1)\n            seen.append(repr(path))\n        except Exception:\n            pass\n    try:\n        os.chdir('p')\n        seen.append('chdir')\n    except Exception:\n        pass\n    if seen:\n        raise Exception('read /proc via ' + ', '.join(seen))\n    return a + b\n",
        );
        assert!(proc.passed, "{mode:?}: {proc:?}");
        let exit = run("    return None\nimport sys\nsys.exit(0)\n");
        assert_eq!(exit.result, "failed: 0", "{mode:?}");
        assert_eq!(exit.detail, "SystemExit: 0", "{mode:?}");
        let looping = run("    while True:\n        pass\n");
        assert_eq!(looping.result, "timed out", "{mode:?}");
        // A background child (same process group) must not outlive the program. No
        // pid namespace here, so the pid it reports is the host's.
        let left = run(
            "    import os, sys, time\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    sys.stderr.write('leftover %d\\n' % pid)\n    sys.stderr.flush()\n    return a + b\n",
        );
        assert!(left.passed, "{mode:?}: {left:?}");
        let leftover: u32 = left
            .stderr_tail
            .trim()
            .strip_prefix("leftover ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{mode:?}: no pid reported: {left:?}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(leftover) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(leftover),
            "{mode:?}: the program's background child {leftover} outlived it"
        );

        assert!(
            bystander.0.try_wait().unwrap().is_none(),
            "{mode:?}: the sandbox killed a process outside the program's tree"
        );
        drop(sandbox);
        eprintln!("degraded {mode:?}: ok, protections {:?}", p.active());
    }
}

#[test]
fn refuses_or_degrades_without_namespaces() {
    if std::env::var_os(DEGRADED_CHILD).is_some() {
        in_degraded_host();
        return;
    }
    let no_namespaces = filter(&[libc::SYS_unshare], libc::EPERM as u32);
    let no_landlock = filter(
        &[
            libc::SYS_landlock_create_ruleset,
            libc::SYS_landlock_add_rule,
            libc::SYS_landlock_restrict_self,
        ],
        libc::ENOSYS as u32,
    );
    let (_dir, exe) = copy_of_this_binary();
    let mut cmd = Command::new(&exe);
    cmd.args([
        "refuses_or_degrades_without_namespaces",
        "--exact",
        "--nocapture",
    ])
    .env(DEGRADED_CHILD, "1");
    // SAFETY: the closure only makes the prctl and seccomp system calls.
    unsafe {
        cmd.pre_exec(move || {
            for prog in [&no_namespaces, &no_landlock] {
                seccompiler::apply_filter(prog).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("start the degraded child");
    assert_child_passed("refuses_or_degrades_without_namespaces", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for mode in ["ForkServer", "Fresh"] {
        assert!(
            stderr.contains(&format!("degraded {mode}: ok")),
            "{mode} did not run:\n{stderr}"
        );
    }
}

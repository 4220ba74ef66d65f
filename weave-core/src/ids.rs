//! Call ids: UUIDv7, made on the calling thread without locks.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use uuid::Uuid;

/// This thread's id state: a splitmix64 generator (0: not seeded yet), and the millisecond of
/// the last id made here with its sub-millisecond sequence.
#[derive(Clone, Copy)]
struct State {
    rng: u64,
    ms: u64,
    seq: u16,
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State { rng: 0, ms: 0, seq: 0 }) };
}

#[cold]
fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() | 1
}

/// A UUIDv7 for a call started at `ms` (Unix milliseconds). Ids made on one thread in the same
/// millisecond carry an increasing 12-bit sequence (RFC 9562, method 1), so a parent sorts
/// before its children.
#[inline]
pub(crate) fn new_call_id(ms: u64) -> Uuid {
    let mut s = STATE.get();
    if s.rng == 0 {
        s.rng = seed();
    }
    // splitmix64
    s.rng = s.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = s.rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let random = z ^ (z >> 31);
    // A new millisecond starts the sequence at a random point in the lower half, leaving room
    // to count up.
    s.seq = if s.ms == ms {
        s.seq.wrapping_add(1) & 0x0FFF
    } else {
        (random >> 53) as u16 & 0x07FF
    };
    s.ms = ms;
    STATE.set(s);
    // unix_ts_ms (48) | ver 7 (4) | rand_a: the sequence (12) | var 0b10 (2) | rand_b (62).
    Uuid::from_u128(
        (u128::from(ms & 0xFFFF_FFFF_FFFF) << 80)
            | (0x7 << 76)
            | (u128::from(s.seq) << 64)
            | (0b10 << 62)
            | u128::from(random & 0x3FFF_FFFF_FFFF_FFFF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_carrying_the_millisecond_and_sort_in_order() {
        let ms = 1_764_460_800_123;
        let ids: Vec<Uuid> = (0..100).map(|_| new_call_id(ms)).collect();
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("v7 timestamp").to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, ms);
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "same-millisecond ids out of order"
        );
        let later = new_call_id(ms + 1);
        assert!(later > ids[99]);
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 100);
    }
}

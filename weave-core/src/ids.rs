//! Call ids: UUIDv7, made on the calling thread without locks.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
    /// Millisecond of the last id made on this thread and the sub-millisecond sequence.
    static SEQ: Cell<(u64, u16)> = const { Cell::new((0, 0)) };
}

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() | 1
}

fn next_random() -> u64 {
    RNG.with(|r| {
        // splitmix64
        let mut z = r.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        r.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A UUIDv7 for a call started at `ms` (Unix milliseconds). Ids made on one thread in the same
/// millisecond carry an increasing 12-bit sequence (RFC 9562, method 1), so a parent sorts
/// before its children.
pub(crate) fn new_call_id(ms: u64) -> Uuid {
    let random = next_random();
    let seq = SEQ.with(|s| {
        let (last, seq) = s.get();
        // A new millisecond starts the sequence at a random point in the lower half, leaving
        // room to count up.
        let next = if last == ms {
            seq.wrapping_add(1) & 0x0FFF
        } else {
            (random >> 53) as u16 & 0x07FF
        };
        s.set((ms, next));
        next
    });
    let mut rand = [0u8; 10];
    rand[0] = (seq >> 8) as u8;
    rand[1] = seq as u8;
    rand[2..].copy_from_slice(&random.to_le_bytes());
    uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid()
}

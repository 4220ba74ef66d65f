//! Timestamps on the wire: RFC 3339 text. Weave writes UTC with microseconds and `Z`
//! (`2026-11-29T14:20:07.589112Z`); this module parses what other clients send (any offset,
//! any fraction, a space instead of `T`, no zone meaning UTC) and writes the canonical form,
//! whose text order is time order.

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp `{0}`: expected RFC 3339, e.g. 2026-11-29T14:20:07.589112Z")]
pub struct TimeError(pub String);

/// Microseconds since the Unix epoch of an RFC 3339 timestamp.
pub fn parse_micros(s: &str) -> Result<i64, TimeError> {
    parse(s).ok_or_else(|| TimeError(s.to_string()))
}

fn digits(s: &[u8], n: usize) -> Option<i64> {
    if s.len() < n {
        return None;
    }
    let mut v = 0i64;
    for &c in &s[..n] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

fn parse(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let year = digits(b, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(&b[5..], 2)?;
    let day = digits(&b[8..], 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(&b[11..], 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let minute = digits(&b[14..], 2)?;
    let second = digits(&b[17..], 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_s = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(&b[i + 1..], 2)?;
            let om = match b.get(i + 3) {
                Some(b':') => digits(&b[i + 4..], 2).filter(|_| i + 6 == b.len())?,
                _ => digits(&b[i + 3..], 2).filter(|_| i + 5 == b.len())?,
            };
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1_000_000 + micros)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The canonical text of a time given in microseconds since the epoch:
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        );
    }
    // Every call is stamped twice: write the digits directly rather than through `format!`.
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, rem / 3600);
    put(14, 2, (rem % 3600) / 60);
    put(17, 2, rem % 60);
    put(20, 6, frac);
    std::str::from_utf8(&b).unwrap_or_default().to_string()
}

/// Whether `s` is already canonical (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), checked cheaply.
pub fn is_canonical(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26) || c.is_ascii_digit())
}

/// `s` in the canonical form (UTC, microseconds, `Z`), so that stored times sort as text
/// (borrowed when it already is).
pub fn normalize(s: &str) -> Result<std::borrow::Cow<'_, str>, TimeError> {
    if is_canonical(s) {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    parse_micros(s).map(|m| std::borrow::Cow::Owned(format_micros(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = "2026-11-29T14:20:07.589112Z";
        let m = parse_micros(t).unwrap();
        assert_eq!(format_micros(m), t);
        assert!(is_canonical(t));
        assert_eq!(parse_micros("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_micros("1970-01-01T00:00:01.5Z").unwrap(), 1_500_000);
        assert_eq!(
            normalize("2026-11-29T15:20:07.589112+01:00").unwrap(),
            "2026-11-29T14:20:07.589112Z"
        );
        assert_eq!(
            normalize("2026-11-29 14:20:07.5891129").unwrap(),
            "2026-11-29T14:20:07.589112Z"
        );
        assert_eq!(
            normalize("2026-11-29T14:20:07").unwrap(),
            "2026-11-29T14:20:07.000000Z"
        );
        assert_eq!(
            normalize("2024-02-29T23:59:59-0030").unwrap(),
            "2024-03-01T00:29:59.000000Z"
        );
        assert_eq!(format_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            format_micros(253_402_300_800_000_000),
            "+10000-01-01T00:00:00.000000Z".trim_start_matches('+')
        );
        // Every second of a leap day round-trips.
        let leap = parse_micros("2024-02-29T00:00:00Z").unwrap();
        for s in (0..86_400i64).step_by(997) {
            let t = leap + s * 1_000_000 + 123_456;
            assert_eq!(parse_micros(&format_micros(t)).unwrap(), t);
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T14:20:07.Z",
            "2026-11-29T14:20:07Zjunk",
            "2026-11-29T14:20:07+1",
        ] {
            let e = parse_micros(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid timestamp"), "{e}");
        }
    }
}

//! Weave's `$expr` queries and sort keys evaluated in Rust, with the semantics of the SQL that
//! `SqliteStore` runs (SQLite's storage classes, type affinity, three-valued logic,
//! `json_extract`, `CAST`, `instr`, `lower`, `LIKE`), so that both backends answer a query
//! alike. ClickHouse 18.16 has no JSON path functions, so the ClickHouse store uses SQL only to
//! narrow the candidates and decides here.
//!
//! Fields are resolved by a [`Fields`] implementation (calls, feedback); request validation
//! (which fields exist) is left to the SQLite compiler, which both stores share.

use std::cmp::Ordering;

use serde_json::Value;
use weave_types::query::{CastTo, Expr};

/// An SQL value: SQLite's storage classes (without BLOB).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    /// NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
}

/// Type affinity of an expression (SQLite §3): `None` for literals, functions and CASE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aff {
    /// No affinity (BLOB/NONE).
    None,
    /// TEXT.
    Text,
    /// INTEGER, REAL or NUMERIC.
    Numeric,
}

/// A value with the affinity of the expression that produced it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Val {
    pub(crate) v: V,
    pub(crate) aff: Aff,
}

impl Val {
    pub(crate) fn plain(v: V) -> Val {
        Val { v, aff: Aff::None }
    }
    pub(crate) fn text_col(v: Option<&str>) -> Val {
        Val {
            v: v.map_or(V::Null, |s| V::Text(s.to_string())),
            aff: Aff::Text,
        }
    }
    pub(crate) fn int_col(v: Option<i64>) -> Val {
        Val {
            v: v.map_or(V::Null, V::Int),
            aff: Aff::Numeric,
        }
    }
}

/// Where `$getField` paths come from (paths were validated by the SQLite compiler).
pub(crate) trait Fields {
    /// The value of a field.
    fn field(&self, path: &str) -> Val;
}

// --- conversions -------------------------------------------------------------------------

/// SQLite's `isspace` (ASCII whitespace).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `sqlite3AtoF`: the value of the longest numeric prefix, and whether the whole text
/// (ignoring surrounding spaces) is a number: `1` a pure integer, `2` a real, `0` not a
/// number.
fn atof(s: &str) -> (f64, u8) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    let start = i;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut int_digits = i - digits_start;
    let mut kind = 1u8;
    let mut end = i;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        int_digits += j - i - 1;
        kind = 2;
        i = j;
        end = j;
    }
    if int_digits == 0 {
        return (0.0, 0);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
            j += 1;
        }
        let e0 = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > e0 {
            kind = 2;
            end = j;
            i = j;
        } else {
            // `1e` or `1e+`: the prefix is a number, the whole is not.
            let v = s[start..end].parse::<f64>().unwrap_or(0.0);
            return (v, 0);
        }
    }
    let mut rest = i;
    while rest < b.len() && is_space(b[rest]) {
        rest += 1;
    }
    let text = &s[start..end];
    let text = text.strip_suffix('.').unwrap_or(text);
    let text = if text.starts_with('.') || text.starts_with("-.") || text.starts_with("+.") {
        text.replacen('.', "0.", 1)
    } else {
        text.to_string()
    };
    let v = text.parse::<f64>().unwrap_or(0.0);
    (v, if rest == b.len() { kind } else { 0 })
}

/// `sqlite3Atoi64`: the value of the longest integer prefix (saturating), and whether the
/// whole text (ignoring surrounding spaces) is exactly an integer that fits in 64 bits.
fn atoi(s: &str) -> (i64, bool) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    let neg = i < b.len() && b[i] == b'-';
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let d0 = i;
    let mut acc: u128 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        acc = (acc * 10 + (b[i] - b'0') as u128).min(1u128 << 100);
        i += 1;
    }
    let ndigits = i - d0;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    let limit = if neg {
        i64::MAX as u128 + 1
    } else {
        i64::MAX as u128
    };
    let fits = acc <= limit;
    let v = match (neg, fits) {
        (true, true) => (acc as i128).wrapping_neg() as i64,
        (true, false) => i64::MIN,
        (false, true) => acc as i64,
        (false, false) => i64::MAX,
    };
    (v, fits && ndigits > 0 && i == b.len())
}

/// `sqlite3RealToI64` as `CAST(real AS INTEGER)` does it: truncation, saturating.
fn real_to_int(r: f64) -> i64 {
    if r.is_nan() {
        0
    } else if r <= i64::MIN as f64 {
        i64::MIN
    } else if r >= i64::MAX as f64 {
        i64::MAX
    } else {
        r as i64
    }
}

/// A REAL as SQLite writes it (`%!.15g`): 15 significant digits, trailing zeros dropped,
/// but always a `.0` or a fraction; exponent form below 1e-4 and from 1e15.
pub(crate) fn format_real(r: f64) -> String {
    if r.is_nan() {
        return "NaN".into();
    }
    if r.is_infinite() {
        return if r > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if r == 0.0 {
        return "0.0".into();
    }
    // 15 significant digits, correctly rounded.
    let e = format!("{r:.14e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if neg { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}.{rest}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (a, b) = digits.split_at(int_len);
        format!("{sign}{a}.{b}")
    }
}

/// `CAST(v AS TEXT)`.
pub(crate) fn to_text(v: &V) -> Option<String> {
    match v {
        V::Null => None,
        V::Int(i) => Some(i.to_string()),
        V::Real(r) => Some(format_real(*r)),
        V::Text(s) => Some(s.clone()),
    }
}

/// `CAST(v AS REAL)`.
fn cast_real(v: &V) -> V {
    match v {
        V::Null => V::Null,
        V::Int(i) => V::Real(*i as f64),
        V::Real(r) => V::Real(*r),
        V::Text(s) => V::Real(atof(s).0),
    }
}

/// `CAST(v AS INTEGER)`.
fn cast_int(v: &V) -> V {
    match v {
        V::Null => V::Null,
        V::Int(i) => V::Int(*i),
        V::Real(r) => V::Int(real_to_int(*r)),
        V::Text(s) => V::Int(atoi(s).0),
    }
}

/// NUMERIC affinity applied to a value: text that is wholly a number becomes one.
fn numeric(v: V) -> V {
    match v {
        V::Text(s) => {
            let (r, kind) = atof(&s);
            match kind {
                0 => V::Text(s),
                1 => match atoi(&s) {
                    (i, true) => V::Int(i),
                    _ => V::Real(r),
                },
                _ => V::Real(r),
            }
        }
        other => other,
    }
}

/// A JSON literal as SQLite binds it: booleans as 1/0, objects and arrays as their text.
pub(crate) fn literal(v: &Value) -> V {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Int(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::Int(i),
            None => V::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

/// `json_extract(json, '$."a"."b"')` over a parsed JSON value.
pub(crate) fn json_extract(json: Option<&Value>, segments: &[&str]) -> V {
    let Some(mut cur) = json else {
        return V::Null;
    };
    for s in segments {
        match cur.get(*s) {
            Some(v) if cur.is_object() => cur = v,
            _ => return V::Null,
        }
    }
    match cur {
        Value::Null => V::Null,
        Value::Bool(b) => V::Int(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::Int(i),
            None => V::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

/// SQLite's `json_patch` (RFC 7396 merge patch).
pub(crate) fn json_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = json_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

// --- comparison --------------------------------------------------------------------------

/// SQLite's order of values (`sqlite3MemCompare`, BINARY collation): NULL, then numbers,
/// then text.
pub(crate) fn compare(a: &V, b: &V) -> Ordering {
    fn class(v: &V) -> u8 {
        match v {
            V::Null => 0,
            V::Int(_) | V::Real(_) => 1,
            V::Text(_) => 2,
        }
    }
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Real(x), V::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (V::Int(x), V::Real(y)) => int_real_cmp(*x, *y),
        (V::Real(x), V::Int(y)) => int_real_cmp(*y, *x).reverse(),
        (V::Text(x), V::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => class(a).cmp(&class(b)),
    }
}

fn int_real_cmp(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Greater;
    }
    if r < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    if r >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    let ri = r as i64;
    match i.cmp(&ri) {
        Ordering::Equal => (i as f64)
            .partial_cmp(&r)
            .unwrap_or(Ordering::Equal)
            .then_with(|| {
                // i == trunc(r): compare the fraction.
                let frac = r - ri as f64;
                if frac > 0.0 {
                    Ordering::Less
                } else if frac < 0.0 {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            }),
        o => o,
    }
}

/// The affinity a comparison of `a` and `b` applies to both (`sqlite3CompareAffinity`).
fn comparison_affinity(a: Aff, b: Aff) -> Aff {
    match (a, b) {
        (Aff::None, x) | (x, Aff::None) => x,
        (Aff::Numeric, _) | (_, Aff::Numeric) => Aff::Numeric,
        // Both TEXT: no conversion needed (both are text already).
        _ => Aff::None,
    }
}

/// Applies a comparison affinity to both operands, as the VDBE's comparison opcodes do.
fn coerce(aff: Aff, a: V, b: V) -> (V, V) {
    let is_str = |v: &V| matches!(v, V::Text(_));
    match aff {
        Aff::Numeric if is_str(&a) || is_str(&b) => (numeric(a), numeric(b)),
        Aff::Text if is_str(&a) || is_str(&b) => {
            let t = |v: V| match v {
                V::Int(_) | V::Real(_) => V::Text(to_text(&v).unwrap_or_default()),
                other => other,
            };
            (t(a), t(b))
        }
        _ => (a, b),
    }
}

/// `a <op> b` in SQL's three-valued logic; `op` orders `a` against `b`.
fn cmp_op(a: Val, b: Val, test: fn(Ordering) -> bool) -> V {
    if a.v == V::Null || b.v == V::Null {
        return V::Null;
    }
    let (x, y) = coerce(comparison_affinity(a.aff, b.aff), a.v, b.v);
    V::Int(test(compare(&x, &y)) as i64)
}

/// `a IS b`.
fn is(a: Val, b: Val) -> V {
    match (&a.v, &b.v) {
        (V::Null, V::Null) => V::Int(1),
        (V::Null, _) | (_, V::Null) => V::Int(0),
        _ => {
            let (x, y) = coerce(comparison_affinity(a.aff, b.aff), a.v, b.v);
            V::Int((compare(&x, &y) == Ordering::Equal) as i64)
        }
    }
}

/// `a IN (list)`: the list's values count as having no affinity.
fn in_list(a: Val, list: Vec<V>) -> V {
    if list.is_empty() {
        return V::Int(0);
    }
    if a.v == V::Null {
        return V::Null;
    }
    let mut saw_null = false;
    for item in list {
        if item == V::Null {
            saw_null = true;
            continue;
        }
        let (x, y) = coerce(comparison_affinity(a.aff, Aff::None), a.v.clone(), item);
        if compare(&x, &y) == Ordering::Equal {
            return V::Int(1);
        }
    }
    if saw_null {
        V::Null
    } else {
        V::Int(0)
    }
}

/// A value's truth in a WHERE clause or under AND/OR/NOT: `None` for NULL.
pub(crate) fn truth(v: &V) -> Option<bool> {
    match v {
        V::Null => None,
        V::Int(i) => Some(*i != 0),
        V::Real(r) => Some(*r != 0.0),
        V::Text(s) => Some(atof(s).0 != 0.0),
    }
}

fn bool_v(b: Option<bool>) -> V {
    b.map_or(V::Null, |b| V::Int(b as i64))
}

/// ASCII-only lower case, as SQLite's `lower()` without ICU.
fn lower_ascii(s: &str) -> String {
    s.to_ascii_lowercase()
}

// --- evaluation --------------------------------------------------------------------------

/// Evaluates an expression on one row.
pub(crate) fn eval(expr: &Expr, f: &dyn Fields) -> Val {
    let bin = |ab: &(Expr, Expr), test: fn(Ordering) -> bool| {
        Val::plain(cmp_op(eval(&ab.0, f), eval(&ab.1, f), test))
    };
    match expr {
        Expr::And(items) => {
            let mut acc = Some(true);
            for e in items {
                match truth(&eval(e, f).v) {
                    Some(false) => return Val::plain(V::Int(0)),
                    None => acc = None,
                    Some(true) => {}
                }
            }
            Val::plain(bool_v(acc))
        }
        Expr::Or(items) => {
            let mut acc = Some(false);
            for e in items {
                match truth(&eval(e, f).v) {
                    Some(true) => return Val::plain(V::Int(1)),
                    None => acc = None,
                    Some(false) => {}
                }
            }
            Val::plain(bool_v(acc))
        }
        Expr::Not((x,)) => Val::plain(bool_v(truth(&eval(x, f).v).map(|b| !b))),
        Expr::Eq(ab) => Val::plain(is(eval(&ab.0, f), eval(&ab.1, f))),
        Expr::Gt(ab) => bin(ab, |o| o == Ordering::Greater),
        Expr::Gte(ab) => bin(ab, |o| o != Ordering::Less),
        Expr::Lt(ab) => bin(ab, |o| o == Ordering::Less),
        Expr::Lte(ab) => bin(ab, |o| o != Ordering::Greater),
        Expr::In(b) => {
            let (a, list) = &**b;
            if list.is_empty() {
                return Val::plain(V::Int(0));
            }
            let a = eval(a, f);
            let items = list.iter().map(|e| eval(e, f).v).collect();
            Val::plain(in_list(a, items))
        }
        Expr::Contains(c) => {
            let a = to_text(&eval(&c.input, f).v);
            let b = to_text(&eval(&c.substr, f).v);
            Val::plain(match (a, b) {
                (Some(a), Some(b)) => {
                    let hit = if c.case_insensitive {
                        lower_ascii(&a).contains(&lower_ascii(&b))
                    } else {
                        a.contains(&b)
                    };
                    V::Int(hit as i64)
                }
                _ => V::Null,
            })
        }
        Expr::Literal(v) => Val::plain(literal(v)),
        Expr::GetField(path) => f.field(path),
        Expr::Convert(c) => {
            let a = eval(&c.input, f);
            match c.to {
                CastTo::Double => Val {
                    v: cast_real(&a.v),
                    aff: Aff::Numeric,
                },
                CastTo::Int => Val {
                    v: cast_int(&a.v),
                    aff: Aff::Numeric,
                },
                CastTo::String => Val {
                    v: to_text(&a.v).map_or(V::Null, V::Text),
                    aff: Aff::Text,
                },
                CastTo::Bool => {
                    if a.v == V::Null {
                        return Val::plain(V::Null);
                    }
                    let falsy = in_list(
                        a,
                        vec![
                            V::Int(0),
                            V::Text("0".into()),
                            V::Text("false".into()),
                            V::Text(String::new()),
                        ],
                    );
                    Val::plain(V::Int(if truth(&falsy) == Some(true) { 0 } else { 1 }))
                }
                CastTo::Exists => Val::plain(V::Int((a.v != V::Null) as i64)),
            }
        }
    }
}

/// Whether a row passes a WHERE condition.
pub(crate) fn matches(expr: &Expr, f: &dyn Fields) -> bool {
    truth(&eval(expr, f).v) == Some(true)
}

// --- the derived call fields -----------------------------------------------------------

/// SQLite's `LIKE` (ASCII case-insensitive, `%` and `_`, no escape character).
pub(crate) fn like(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('_', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => !s.is_empty() && s[0].eq_ignore_ascii_case(c) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    go(&p, &s)
}

/// `instr(s, needle)` (1-based character position, 0 when absent).
fn instr(s: &str, needle: &str) -> i64 {
    match s.find(needle) {
        Some(byte) => s[..byte].chars().count() as i64 + 1,
        None => 0,
    }
}

/// `substr(s, start)` for `start >= 1` (1-based, characters).
fn substr_from(s: &str, start: i64) -> String {
    s.chars().skip((start.max(1) - 1) as usize).collect()
}

/// `substr(s, 1, len)`: the first `len` characters; empty for `len <= 0`.
fn substr_head(s: &str, len: i64) -> String {
    s.chars().take(len.max(0) as usize).collect()
}

/// The SQL that `SqliteStore` uses for an op ref's short name (`OP_SHORT_NAME`).
pub(crate) fn op_short_name(op_name: Option<&str>) -> Option<String> {
    let op = op_name?;
    if !like("weave:///%/op/%:%", op) {
        return Some(op.to_string());
    }
    let rest = substr_from(op, instr(op, "/op/") + 4);
    Some(substr_head(&rest, instr(&rest, ":") - 1))
}

/// Milliseconds since the epoch as SQLite's date functions round a stored timestamp
/// (whole seconds, plus the fraction rounded to milliseconds in floating point).
fn sqlite_millis(micros: i64) -> i64 {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let day_secs = secs.rem_euclid(60);
    let base = (secs - day_secs) * 1000;
    let s = day_secs as f64 + frac as f64 / 1e6;
    base + (s * 1000.0 + 0.5) as i64
}

/// `summary.weave.latency_ms` as `SqliteStore` computes it in SQL.
pub(crate) fn latency_ms(started_at: Option<i64>, ended_at: Option<i64>) -> Option<i64> {
    let (s, e) = (started_at?, ended_at?);
    Some(sqlite_millis(e) - sqlite_millis(s))
}

/// Whether a summary makes an ended call `descendant_error`:
/// `COALESCE(json_extract(summary, '$.status_counts.error'), 0) > 0`.
pub(crate) fn summary_has_error(summary: Option<&Value>) -> bool {
    let v = match json_extract(summary, &["status_counts", "error"]) {
        V::Null => V::Int(0),
        v => v,
    };
    truth(&cmp_op(Val::plain(v), Val::plain(V::Int(0)), |o| {
        o == Ordering::Greater
    })) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn sqlite_text(sql: &str) -> Option<String> {
        let c = Connection::open_in_memory().unwrap();
        c.query_row(&format!("SELECT CAST(({sql}) AS TEXT)"), [], |r| r.get(0))
            .unwrap()
    }

    /// Fields of the test table: `txt` (TEXT), `num` (INTEGER), `j.<path>` (JSON text).
    struct Row {
        txt: Option<&'static str>,
        num: Option<i64>,
        j: Value,
    }

    impl Fields for Row {
        fn field(&self, path: &str) -> Val {
            match path {
                "txt" => Val::text_col(self.txt),
                "num" => Val::int_col(self.num),
                p => {
                    let segs: Vec<&str> = p.split('.').skip(1).collect();
                    Val::plain(json_extract(Some(&self.j), &segs))
                }
            }
        }
    }

    struct SqlCols;
    impl crate::sqlite::query::Fields for SqlCols {
        fn field(
            &self,
            path: &str,
            sql: &mut crate::sqlite::query::Sql,
            at: &str,
        ) -> crate::Result<String> {
            match path {
                "txt" | "num" => Ok(path.to_string()),
                p => {
                    let segs: Vec<&str> = p.split('.').skip(1).collect();
                    let jp = crate::sqlite::query::json_path(&segs, p, at)?;
                    Ok(format!("json_extract(j, {})", sql.param(jp)))
                }
            }
        }
    }

    /// Every operator on every pair of operands from a pool (columns with TEXT and
    /// INTEGER affinity, JSON paths, literals of every kind, every `$convert`), on every
    /// row: the evaluator answers what SQLite answers for the SQL `SqliteStore` compiles.
    #[test]
    fn every_operator_on_every_operand_like_sqlite() {
        use weave_types::query::{Contains, Convert};
        let rows = [
            (Some("3"), Some(3), serde_json::json!({"v": 3})),
            (Some("abc"), Some(0), serde_json::json!({"v": "3"})),
            (Some("0.5"), None, serde_json::json!({"v": 0.5})),
            (Some(""), Some(-2), serde_json::json!({"v": ""})),
            (Some(" 3 "), Some(7), serde_json::json!({"v": true})),
            (Some("1e3"), Some(1000), serde_json::json!({"v": null})),
            (None, Some(1), serde_json::json!({"v": {"w": 1}})),
            (Some("false"), Some(0), serde_json::json!({"v": "false"})),
            (Some("Hello World"), None, serde_json::json!({"v": "hello"})),
            (Some("7"), Some(3), serde_json::json!({"v": 1e20})),
            (Some("1.0"), Some(1), serde_json::json!({"v": [1, 2]})),
            (Some("-0"), Some(0), serde_json::json!({"v": 1.0})),
        ];
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, txt TEXT, num INTEGER, j TEXT)")
            .unwrap();
        for (i, (txt, num, j)) in rows.iter().enumerate() {
            c.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![i as i64, txt, num, j.to_string()],
            )
            .unwrap();
        }
        let lits = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(false),
            serde_json::json!(3),
            serde_json::json!(0),
            serde_json::json!(0.5),
            serde_json::json!(1e20),
            serde_json::json!("3"),
            serde_json::json!("0.5"),
            serde_json::json!("abc"),
            serde_json::json!(""),
            serde_json::json!("HELLO"),
            serde_json::json!(" 3 "),
            serde_json::json!({"w": 1}),
        ];
        let fields = ["txt", "num", "j.v", "j.v.w"];
        let mut pool: Vec<Expr> = fields.iter().map(|f| Expr::field(*f)).collect();
        pool.extend(lits.iter().map(|l| Expr::Literal(l.clone())));
        for f in ["txt", "num", "j.v"] {
            for to in [
                CastTo::Double,
                CastTo::Int,
                CastTo::String,
                CastTo::Bool,
                CastTo::Exists,
            ] {
                pool.push(Expr::Convert(Box::new(Convert {
                    input: Expr::field(f),
                    to,
                })));
            }
        }
        let mut exprs = Vec::new();
        for a in &pool {
            for b in &pool {
                let ab = Box::new((a.clone(), b.clone()));
                exprs.push(Expr::Eq(ab.clone()));
                exprs.push(Expr::Gt(ab.clone()));
                exprs.push(Expr::Gte(ab.clone()));
                exprs.push(Expr::Lt(ab.clone()));
                exprs.push(Expr::Lte(ab));
                for ci in [false, true] {
                    exprs.push(Expr::Contains(Box::new(Contains {
                        input: a.clone(),
                        substr: b.clone(),
                        case_insensitive: ci,
                    })));
                }
            }
            exprs.push(Expr::In(Box::new((
                a.clone(),
                lits.iter()
                    .take(5)
                    .map(|l| Expr::Literal(l.clone()))
                    .collect(),
            ))));
            exprs.push(Expr::In(Box::new((
                a.clone(),
                lits.iter()
                    .skip(5)
                    .map(|l| Expr::Literal(l.clone()))
                    .collect(),
            ))));
            exprs.push(Expr::negate(Expr::In(Box::new((
                a.clone(),
                vec![Expr::literal(3), Expr::Literal(Value::Null)],
            )))));
        }
        let mut checked = 0;
        for e in &exprs {
            let mut sql = crate::sqlite::query::Sql::default();
            let cond = crate::sqlite::query::compile(e, &SqlCols, &mut sql, "query").unwrap();
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT k, CASE WHEN ({cond}) THEN 1 WHEN NOT ({cond}) THEN 0 END FROM t ORDER BY k"
                ))
                .unwrap();
            let want: Vec<Option<i64>> = st
                .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(1))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for (i, (txt, num, j)) in rows.iter().enumerate() {
                let row = Row {
                    txt: *txt,
                    num: *num,
                    j: j.clone(),
                };
                let got = truth(&eval(e, &row).v).map(|b| b as i64);
                assert_eq!(
                    got,
                    want[i],
                    "{} on row {i} ({txt:?}, {num:?}, {j})",
                    serde_json::to_string(e).unwrap()
                );
                checked += 1;
            }
        }
        assert!(checked > 90_000, "{checked}");
    }

    #[test]
    fn reals_print_like_sqlite() {
        for r in [
            0.5,
            1.0,
            100.0,
            0.1,
            0.3,
            1e15,
            1e14,
            123456789012345.0,
            1.5e-7,
            0.0001,
            0.00012,
            -2.5,
            1e20,
            1.23456789012345,
            2.0 / 3.0,
            1e-5,
            9.999999999999999e14,
            1e300,
        ] {
            let want = sqlite_text(&format!("CAST({r:e} AS REAL)")).unwrap();
            assert_eq!(format_real(r), want, "{r:e}");
        }
    }

    #[test]
    fn casts_like_sqlite() {
        for s in [
            "3.7",
            "1e3",
            " 12abc",
            "abc",
            "",
            "-0",
            "+5",
            "0x10",
            "9223372036854775808",
            "-9223372036854775809",
            "1.",
            ".5",
            "1e",
            "  7  ",
            "00012",
        ] {
            let q = s.replace('\'', "''");
            let want_i = sqlite_text(&format!("CAST('{q}' AS INTEGER)"));
            assert_eq!(to_text(&cast_int(&V::Text(s.into()))), want_i, "int {s:?}");
            let want_r = sqlite_text(&format!("CAST('{q}' AS REAL)"));
            assert_eq!(
                to_text(&cast_real(&V::Text(s.into()))),
                want_r,
                "real {s:?}"
            );
        }
    }

    #[test]
    fn op_short_names_like_sqlite() {
        let c = Connection::open_in_memory().unwrap();
        for op in [
            "weave:///e/p/op/name:digest",
            "WEAVE:///e/p/OP/name:d",
            "weave:///e/p/op/name",
            "plain",
            "weave:///e/p/op/a:b:c",
            "weave:///é/p/op/ñame:d",
        ] {
            let want: Option<String> = c
                .query_row(
                    "SELECT CASE WHEN ?1 LIKE 'weave:///%/op/%:%' THEN \
                     substr(substr(?1, instr(?1, '/op/') + 4), 1, \
                     instr(substr(?1, instr(?1, '/op/') + 4), ':') - 1) ELSE ?1 END",
                    [op],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(op_short_name(Some(op)), want, "{op}");
        }
    }

    #[test]
    fn latency_like_sqlite() {
        let c = Connection::open_in_memory().unwrap();
        for (s, e) in [
            (0i64, 4_000_500i64),
            (1_767_225_601_000_000, 1_767_225_605_000_500),
            (1_767_225_601_123_456, 1_767_225_605_654_321),
            (1_767_225_601_999_999, 1_767_225_602_000_000),
            (1_767_225_601_000_499, 1_767_225_601_000_500),
        ] {
            let st = weave_types::time::format_micros(s);
            let en = weave_types::time::format_micros(e);
            let want: i64 = c
                .query_row(
                    "SELECT CAST(round((unixepoch(?2, 'subsec') - unixepoch(?1, 'subsec')) * 1000) AS INTEGER)",
                    [&st, &en],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(latency_ms(Some(s), Some(e)), Some(want), "{st} {en}");
        }
    }

    #[test]
    fn json_patch_like_sqlite() {
        let c = Connection::open_in_memory().unwrap();
        for (t, p) in [
            (r#"{"a":1,"b":{"c":2}}"#, r#"{"b":{"c":null,"d":3},"e":4}"#),
            (r#"{"a":1}"#, r#"{"a":{"x":null}}"#),
            (r#"[1]"#, r#"{"a":1}"#),
            (r#"{"a":1}"#, r#"[2]"#),
        ] {
            let want: String = c
                .query_row("SELECT json_patch(?1, ?2)", [t, p], |r| r.get(0))
                .unwrap();
            let got = json_patch(
                &serde_json::from_str(t).unwrap(),
                &serde_json::from_str(p).unwrap(),
            );
            assert_eq!(
                got,
                serde_json::from_str::<Value>(&want).unwrap(),
                "{t} + {p}"
            );
        }
    }
}

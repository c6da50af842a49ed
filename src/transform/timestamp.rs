//! Event timestamp parsing: assorted text and numeric formats -> epoch milliseconds, UTC.
//!
//! This runs once per record on the hot path, so parsing is hand-written over bytes: no
//! regex and no allocation unless an error is returned (errors carry the offending text).
//!
//! Choices worth knowing:
//! - Leap seconds: a seconds field of `60` is accepted and folded into ordinary arithmetic,
//!   so `23:59:60Z` is the same instant as `00:00:00Z` of the next day. Epoch
//!   milliseconds have no representation for a leap second, and rejecting them would drop
//!   real events from producers that emit them.
//! - Fractions finer than a millisecond are dropped by rounding toward negative infinity
//!   (floor), for text and epoch numbers alike, so `-0.0005` seconds is `-1` ms.
//! - A field outside its calendar range (month 13, `2023-02-29`, hour 24, offset `+24:00`)
//!   is reported as [`TimestampError::OutOfRange`]; text that does not have the shape of a
//!   timestamp is [`TimestampError::Unrecognised`].
//! - `T`/`t` and `Z`/`z` are accepted in either case, as RFC 3339 allows.

use serde_json::Value;

/// How bare epoch numbers are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochUnit {
    /// `|v| >= 1e11` is milliseconds, anything smaller is seconds. 1e11 seconds is in the
    /// year 5138 and 1e11 milliseconds is in March 1973, so real event times of either unit
    /// land on the right side.
    #[default]
    Auto,
    Seconds,
    Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("unrecognised timestamp format: {0}")]
    Unrecognised(String),
    #[error("timestamp out of range: {0}")]
    OutOfRange(String),
    #[error("timestamp must be a string or number, got {0}")]
    WrongType(&'static str),
}

const MS_PER_SEC: i64 = 1_000;
const MS_PER_DAY: i64 = 86_400_000;
/// Auto mode: magnitudes at or above this are milliseconds.
const AUTO_MILLIS_THRESHOLD: u64 = 100_000_000_000;
/// 0001-01-01T00:00:00.000Z, the earliest accepted instant.
const MIN_MS: i64 = days_from_civil(1, 1, 1) * MS_PER_DAY;
/// 9999-12-31T23:59:59.999Z, the latest accepted instant.
const MAX_MS: i64 = days_from_civil(10_000, 1, 1) * MS_PER_DAY - 1;
/// Error messages quote at most this many characters of the input.
const ERR_TEXT_CHARS: usize = 64;

/// Parse a JSON value holding a timestamp into epoch milliseconds UTC.
pub fn parse_timestamp(v: &Value, unit: EpochUnit) -> Result<i64, TimestampError> {
    match v {
        Value::String(s) => parse_timestamp_str(s, unit),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                epoch_to_ms(i < 0, i.unsigned_abs(), b"", unit)
                    .ok_or_else(|| TimestampError::OutOfRange(i.to_string()))
            } else if let Some(f) = n.as_f64() {
                parse_epoch_f64(f, unit)
                    .map_err(|_| TimestampError::OutOfRange(clip(&n.to_string())))
            } else {
                // Only reachable with serde_json's arbitrary_precision feature.
                Err(TimestampError::OutOfRange(clip(&n.to_string())))
            }
        }
        Value::Null => Err(TimestampError::WrongType("null")),
        Value::Bool(_) => Err(TimestampError::WrongType("boolean")),
        Value::Array(_) => Err(TimestampError::WrongType("array")),
        Value::Object(_) => Err(TimestampError::WrongType("object")),
    }
}

/// Same, for text (used by [`parse_timestamp`] for strings).
///
/// Text that is only an optional `-`, digits and optionally `.` plus more digits is an epoch
/// number (producers often quote epochs); anything else must be an RFC 3339 / ISO 8601
/// date-time or a bare `YYYY-MM-DD` date.
pub fn parse_timestamp_str(s: &str, unit: EpochUnit) -> Result<i64, TimestampError> {
    let b = s.as_bytes();
    let outcome = match split_epoch(b) {
        Some((neg, int, frac)) => parse_epoch_parts(neg, int, frac, unit),
        None => parse_datetime(b),
    };
    outcome.map_err(|fail| match fail {
        Fail::Syntax => TimestampError::Unrecognised(clip(s)),
        Fail::Range => TimestampError::OutOfRange(clip(s)),
    })
}

/// Canonical ISO-8601 UTC text with millisecond precision: `2024-03-01T05:12:33.123Z`.
///
/// Total over all of `i64`: years outside `0000..=9999` (never produced by the parsers here)
/// are written in ISO 8601 expanded form with an explicit sign, e.g. `+10000-01-01T...`.
pub fn format_iso_millis(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let ms_of_day = ms.rem_euclid(MS_PER_DAY) as u64;
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(24);
    if (0..=9999).contains(&y) {
        push_padded(&mut out, y.unsigned_abs(), 4);
    } else {
        out.push(if y < 0 { '-' } else { '+' });
        push_padded(&mut out, y.unsigned_abs(), 4);
    }
    out.push('-');
    push_padded(&mut out, u64::from(m), 2);
    out.push('-');
    push_padded(&mut out, u64::from(d), 2);
    out.push('T');
    push_padded(&mut out, ms_of_day / 3_600_000, 2);
    out.push(':');
    push_padded(&mut out, ms_of_day / 60_000 % 60, 2);
    out.push(':');
    push_padded(&mut out, ms_of_day / 1_000 % 60, 2);
    out.push('.');
    push_padded(&mut out, ms_of_day % 1_000, 3);
    out.push('Z');
    out
}

/// Days since 1970-01-01 for a proleptic Gregorian civil date (Howard Hinnant's algorithm).
///
/// Month and day are not validated. Exact for `|y|` up to about 2.5e13, which covers every
/// year reachable from an `i64` of milliseconds.
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (m as i64, d as i64);
    // Count years from March so the leap day is the last day of the "year".
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)` for days since 1970-01-01.
///
/// Exact for `|days|` up to about 9e15, which covers every day reachable from an `i64` of
/// milliseconds.
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// `(year, month, day, hour)` in UTC of an epoch-millis instant; used for Hive partition paths.
pub fn utc_parts(ms: i64) -> (i64, u32, u32, u32) {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let hour = (ms.rem_euclid(MS_PER_DAY) / 3_600_000) as u32;
    (y, m, d, hour)
}

/// Why text was rejected; turned into a [`TimestampError`] carrying the text by the caller,
/// so the parsers themselves never allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Syntax,
    Range,
}

/// Splits `-?\d+(\.\d+)?` into (negative, integer digits, fraction digits), or `None` if the
/// text is not an epoch number.
fn split_epoch(b: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (neg, rest) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return None;
    }
    let (int, tail) = rest.split_at(int_len);
    match tail.split_first() {
        None => Some((neg, int, b"")),
        Some((b'.', frac)) if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
            Some((neg, int, frac))
        }
        _ => None,
    }
}

fn parse_epoch_parts(neg: bool, int: &[u8], frac: &[u8], unit: EpochUnit) -> Result<i64, Fail> {
    let mut magnitude: u64 = 0;
    for &c in int {
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(Fail::Range)?;
    }
    epoch_to_ms(neg, magnitude, frac, unit).ok_or(Fail::Range)
}

/// Epoch number `-?int.frac` (exact decimal digits) -> milliseconds, range-checked.
fn epoch_to_ms(neg: bool, int: u64, frac: &[u8], unit: EpochUnit) -> Option<i64> {
    let millis = match unit {
        EpochUnit::Auto => int >= AUTO_MILLIS_THRESHOLD,
        EpochUnit::Seconds => false,
        EpochUnit::Millis => true,
    };
    // `frac_ms`: the fraction's whole milliseconds; `dropped`: whether anything finer was cut.
    let (frac_ms, dropped) = if millis {
        (0, frac.iter().any(|&c| c != b'0'))
    } else {
        let ms = frac
            .iter()
            .chain(b"000")
            .take(3)
            .fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
        (ms, frac.iter().skip(3).any(|&c| c != b'0'))
    };
    let scale = if millis { 1 } else { MS_PER_SEC as u64 };
    let magnitude = int.checked_mul(scale)?.checked_add(frac_ms)?;
    let magnitude = i64::try_from(magnitude).ok()?;
    // Floor: for negative values the dropped sub-millisecond part moves one ms further down.
    let ms = if neg {
        -magnitude - i64::from(dropped)
    } else {
        magnitude
    };
    (MIN_MS..=MAX_MS).contains(&ms).then_some(ms)
}

/// Float epochs go through their shortest round-trip decimal text so that e.g. `1.005`
/// seconds is exactly 1005 ms, as it is when quoted, rather than 1004 from binary
/// multiplication.
fn parse_epoch_f64(f: f64, unit: EpochUnit) -> Result<i64, Fail> {
    if !f.is_finite() {
        return Err(Fail::Range);
    }
    let mut buf = StackText::default();
    // Display never uses exponent notation; the longest finite f64 fits in the buffer.
    std::fmt::Write::write_fmt(&mut buf, format_args!("{f}")).map_err(|_| Fail::Range)?;
    let (neg, int, frac) = split_epoch(buf.as_bytes()).ok_or(Fail::Range)?;
    parse_epoch_parts(neg, int, frac, unit)
}

/// Fixed stack buffer for formatting an f64 without allocating.
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD[Tt ]HH:MM:SS[.f{1,9}][Zz|±HH:MM|±HHMM|±HH]`.
fn parse_datetime(b: &[u8]) -> Result<i64, Fail> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(Fail::Syntax);
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
        return Err(Fail::Range);
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(Fail::Range);
    }
    let date_ms = days_from_civil(i64::from(year), month, day) * MS_PER_DAY;
    if b.len() == 10 {
        return Ok(date_ms);
    }

    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(Fail::Syntax);
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(Fail::Range);
    }

    let mut pos = 19;
    let mut frac_ms = 0;
    if b.get(pos) == Some(&b'.') {
        let n = b[pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=9).contains(&n) {
            return Err(Fail::Syntax);
        }
        // Keep the first three digits (padded), truncating finer precision.
        frac_ms = b[pos + 1..pos + 1 + n]
            .iter()
            .chain(b"000")
            .take(3)
            .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0'));
        pos += 1 + n;
    }

    let offset_secs = parse_offset(&b[pos..])?;
    let secs = i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second) - offset_secs;
    let ms = date_ms + secs * MS_PER_SEC + frac_ms;
    // An offset can push a valid local time outside the supported years.
    if (MIN_MS..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(Fail::Range)
    }
}

/// The zone designator, which must run to the end of the text: empty (naive, taken as UTC),
/// `Z`/`z`, `±HH:MM`, `±HHMM` or `±HH`. Returns the offset east of UTC in seconds.
fn parse_offset(b: &[u8]) -> Result<i64, Fail> {
    let sign = match b.first() {
        None => return Ok(0),
        Some(b'Z' | b'z') if b.len() == 1 => return Ok(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err(Fail::Syntax),
    };
    let (hours, minutes) = match b.len() {
        3 => (digits(b, 1, 2)?, 0),
        5 => (digits(b, 1, 2)?, digits(b, 3, 2)?),
        6 if b[3] == b':' => (digits(b, 1, 2)?, digits(b, 4, 2)?),
        _ => return Err(Fail::Syntax),
    };
    if hours > 23 || minutes > 59 {
        return Err(Fail::Range);
    }
    Ok(sign * (i64::from(hours) * 3_600 + i64::from(minutes) * 60))
}

/// Exactly `len` ASCII digits at `b[start..]` as a number.
#[inline]
fn digits(b: &[u8], start: usize, len: usize) -> Result<u32, Fail> {
    let field = b.get(start..start + len).ok_or(Fail::Syntax)?;
    field.iter().try_fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + u32::from(c - b'0'))
        } else {
            Err(Fail::Syntax)
        }
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits, with no
/// allocation and no `core::fmt` (it runs several times per record).
pub(crate) fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 20]; // u64::MAX has 20 digits
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.push_str(std::str::from_utf8(&buf[start..]).expect("ASCII digits"));
}

/// The input for an error message, cut to [`ERR_TEXT_CHARS`] characters.
fn clip(s: &str) -> String {
    match s.char_indices().nth(ERR_TEXT_CHARS) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Epoch ms of a UTC civil date-time, built independently of the parser.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
        days_from_civil(y, mo, d) * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1_000 + ms
    }

    fn unrec(s: &str) -> Result<i64, TimestampError> {
        Err(TimestampError::Unrecognised(s.to_owned()))
    }

    fn oor(s: &str) -> Result<i64, TimestampError> {
        Err(TimestampError::OutOfRange(s.to_owned()))
    }

    #[test]
    fn parses_date_time_text() {
        let base = at(2024, 3, 1, 5, 12, 33, 0);
        let cases: &[(&str, i64)] = &[
            ("2024-03-01T05:12:33Z", base),
            ("2024-03-01T05:12:33z", base),
            // Lowercase separator is allowed by RFC 3339.
            ("2024-03-01t05:12:33Z", base),
            ("2024-03-01 05:12:33Z", base),
            // Naive times are taken as UTC.
            ("2024-03-01T05:12:33", base),
            ("2024-03-01 05:12:33", base),
            ("2024-03-01T07:12:33+02:00", base),
            ("2024-03-01T00:12:33-05:00", base),
            ("2024-03-01T10:42:33+0530", base),
            ("2024-03-01T02:12:33-0300", base),
            ("2024-03-01T14:12:33+09", base),
            ("2024-03-01T04:12:33-01", base),
            ("2024-03-01T05:12:33+00:00", base),
            ("2024-03-01T05:12:33-00:00", base),
            ("2024-03-01T05:12:33.1Z", base + 100),
            ("2024-03-01T05:12:33.12Z", base + 120),
            ("2024-03-01T05:12:33.123Z", base + 123),
            // Sub-millisecond digits are truncated, never rounded up.
            ("2024-03-01T05:12:33.1239Z", base + 123),
            ("2024-03-01T05:12:33.12399Z", base + 123),
            ("2024-03-01T05:12:33.123999Z", base + 123),
            ("2024-03-01T05:12:33.1239999Z", base + 123),
            ("2024-03-01T05:12:33.12399999Z", base + 123),
            ("2024-03-01T05:12:33.999999999Z", base + 999),
            ("2024-03-01T05:12:33.5+01:00", base - 3_600_000 + 500),
            ("2024-03-01T05:12:33.250", base + 250),
            // The offset crosses the date and the leap day.
            ("2024-02-29T19:00:00-05:00", at(2024, 3, 1, 0, 0, 0, 0)),
            ("2024-02-29T12:00:00Z", at(2024, 2, 29, 12, 0, 0, 0)),
            ("2000-02-29T00:00:00Z", at(2000, 2, 29, 0, 0, 0, 0)),
            // Leap second folds into the next minute (here, the next day).
            ("2016-12-31T23:59:60Z", at(2017, 1, 1, 0, 0, 0, 0)),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2024-03-01", at(2024, 3, 1, 0, 0, 0, 0)),
            ("1970-01-01", 0),
            ("0001-01-01", MIN_MS),
            ("9999-12-31T23:59:59.999Z", MAX_MS),
        ];
        for &(text, want) in cases {
            assert_eq!(
                parse_timestamp_str(text, EpochUnit::Auto),
                Ok(want),
                "{text}"
            );
            // The JSON entry point gives the same answer for strings.
            assert_eq!(
                parse_timestamp(&json!(text), EpochUnit::Auto),
                Ok(want),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_text() {
        let cases: &[(&str, Result<i64, TimestampError>)] = &[
            ("yesterday", unrec("yesterday")),
            ("", unrec("")),
            ("2024-03-01T", unrec("2024-03-01T")),
            ("2024-3-1", unrec("2024-3-1")),
            ("2024-03-01T05:12", unrec("2024-03-01T05:12")),
            // Surrounding whitespace is not trimmed.
            (" 2024-03-01T05:12:33Z", unrec(" 2024-03-01T05:12:33Z")),
            ("2024-03-01T05:12:33Z ", unrec("2024-03-01T05:12:33Z ")),
            (" 1709251200", unrec(" 1709251200")),
            // Only one separator character between date and time.
            ("2024-03-01  05:12:33Z", unrec("2024-03-01  05:12:33Z")),
            ("2024-03-01X05:12:33Z", unrec("2024-03-01X05:12:33Z")),
            ("2024-03-01T05:12:33.Z", unrec("2024-03-01T05:12:33.Z")),
            // More than nanosecond precision is not a format we accept.
            (
                "2024-03-01T05:12:33.1234567891Z",
                unrec("2024-03-01T05:12:33.1234567891Z"),
            ),
            ("2024-03-01T05:12:33ZZ", unrec("2024-03-01T05:12:33ZZ")),
            ("2024-03-01T05:12:33+5", unrec("2024-03-01T05:12:33+5")),
            (
                "2024-03-01T05:12:33+05:0",
                unrec("2024-03-01T05:12:33+05:0"),
            ),
            (
                "2024-03-01T05:12:33+05-00",
                unrec("2024-03-01T05:12:33+05-00"),
            ),
            ("2024-03-01T05:12:33 UTC", unrec("2024-03-01T05:12:33 UTC")),
            ("2024-03-0a", unrec("2024-03-0a")),
            ("+2024-03-01", unrec("+2024-03-01")),
            ("2024/03/01", unrec("2024/03/01")),
            ("-", unrec("-")),
            ("1.", unrec("1.")),
            (".5", unrec(".5")),
            ("1.2.3", unrec("1.2.3")),
            ("+1709251200", unrec("+1709251200")),
            ("1e9", unrec("1e9")),
            // Non-ASCII digits are not digits.
            ("２０２４-03-01", unrec("２０２４-03-01")),
            ("2023-02-29", oor("2023-02-29")),
            ("1900-02-29", oor("1900-02-29")),
            ("2024-13-01", oor("2024-13-01")),
            ("2024-00-01", oor("2024-00-01")),
            ("2024-04-31", oor("2024-04-31")),
            ("2024-01-32", oor("2024-01-32")),
            ("2024-01-00", oor("2024-01-00")),
            ("2024-03-01T24:00:00Z", oor("2024-03-01T24:00:00Z")),
            ("2024-03-01T23:60:00Z", oor("2024-03-01T23:60:00Z")),
            ("2024-03-01T23:59:61Z", oor("2024-03-01T23:59:61Z")),
            (
                "2024-03-01T05:12:33+24:00",
                oor("2024-03-01T05:12:33+24:00"),
            ),
            (
                "2024-03-01T05:12:33+05:60",
                oor("2024-03-01T05:12:33+05:60"),
            ),
            ("0000-01-01", oor("0000-01-01")),
            // Valid local times whose offset leaves years 1..=9999.
            (
                "0001-01-01T00:00:00+00:01",
                oor("0001-01-01T00:00:00+00:01"),
            ),
            (
                "9999-12-31T23:59:59-01:00",
                oor("9999-12-31T23:59:59-01:00"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_timestamp_str(text, EpochUnit::Auto), want, "{text}");
        }
    }

    #[test]
    fn error_text_is_truncated_to_64_chars() {
        let long = "x".repeat(100);
        assert_eq!(
            parse_timestamp_str(&long, EpochUnit::Auto),
            unrec(&"x".repeat(64))
        );
        // Cut on a character boundary, counting characters rather than bytes.
        let wide = "é".repeat(70);
        assert_eq!(
            parse_timestamp_str(&wide, EpochUnit::Auto),
            unrec(&"é".repeat(64))
        );
    }

    #[test]
    fn parses_epochs() {
        use EpochUnit::{Auto, Millis, Seconds};
        let s = 1_709_251_200i64; // 2024-03-01T00:00:00Z
        let cases: Vec<(serde_json::Value, EpochUnit, Result<i64, TimestampError>)> = vec![
            (json!(s), Auto, Ok(s * 1000)),
            (json!(s * 1000), Auto, Ok(s * 1000)),
            (json!(s), Seconds, Ok(s * 1000)),
            (json!(s), Millis, Ok(s)),
            // Forcing seconds on a millisecond value lands past year 9999.
            (json!(s * 1000), Seconds, oor("1709251200000")),
            (json!(s * 1000), Millis, Ok(s * 1000)),
            (json!(0), Auto, Ok(0)),
            // Just below the Auto threshold: still seconds (year 5138).
            (json!(99_999_999_999i64), Auto, Ok(99_999_999_999_000)),
            // At the threshold: milliseconds (March 1973).
            (json!(100_000_000_000i64), Auto, Ok(100_000_000_000)),
            (json!(-100_000_000_000i64), Auto, Ok(-100_000_000_000)),
            (json!(-86_400), Auto, Ok(-86_400_000)),
            (json!(-1), Millis, Ok(-1)),
            (json!(1_709_251_200.5), Auto, Ok(s * 1000 + 500)),
            (json!(1_709_251_200.123_456), Seconds, Ok(s * 1000 + 123)),
            // Decimal, not binary, arithmetic: 1.005 s is 1005 ms, not 1004.
            (json!(1.005), Seconds, Ok(1005)),
            // Negative fractions floor toward negative infinity.
            (json!(-1.5), Seconds, Ok(-1500)),
            (json!(-0.0005), Seconds, Ok(-1)),
            (json!(1_709_251_200_000.9), Auto, Ok(s * 1000)),
            (json!(-1_709_251_200_000.9), Auto, Ok(-s * 1000 - 1)),
            (json!(1.5), Millis, Ok(1)),
            // -0.0 is zero, not a negative fraction.
            (json!(-0.0), Auto, Ok(0)),
            (json!(1e300), Auto, oor("1e+300")),
            (json!(u64::MAX), Auto, oor("18446744073709551615")),
            (json!(i64::MIN), Millis, oor("-9223372036854775808")),
            (json!(MIN_MS), Millis, Ok(MIN_MS)),
            (json!(MAX_MS), Millis, Ok(MAX_MS)),
            (json!(MAX_MS + 1), Millis, oor("253402300800000")),
            (json!(MIN_MS - 1), Millis, oor("-62135596800001")),
            (json!("1709251200"), Auto, Ok(s * 1000)),
            (json!("1709251200000"), Auto, Ok(s * 1000)),
            (json!("1709251200"), Millis, Ok(s)),
            (json!("1709251200.5"), Auto, Ok(s * 1000 + 500)),
            (json!("1709251200.123999"), Seconds, Ok(s * 1000 + 123)),
            (json!("-1.0005"), Seconds, Ok(-1001)),
            (json!("-1.0000"), Seconds, Ok(-1000)),
            (json!("-86400"), Auto, Ok(-86_400_000)),
            (json!("0001709251200"), Auto, Ok(s * 1000)),
            // Quoted epochs too long for any integer type are out of range, not garbage.
            (
                json!("99999999999999999999999"),
                Auto,
                oor("99999999999999999999999"),
            ),
        ];
        for (value, unit, want) in cases {
            assert_eq!(parse_timestamp(&value, unit), want, "{value} {unit:?}");
        }
    }

    #[test]
    fn rejects_wrong_json_types() {
        let cases = [
            (json!(null), "null"),
            (json!(true), "boolean"),
            (json!([1]), "array"),
            (json!({"ts": 1}), "object"),
        ];
        for (value, kind) in cases {
            assert_eq!(
                parse_timestamp(&value, EpochUnit::Auto),
                Err(TimestampError::WrongType(kind))
            );
        }
    }

    #[test]
    fn formats_iso_millis() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z"),
            (at(2024, 3, 1, 5, 12, 33, 123), "2024-03-01T05:12:33.123Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-86_400_000, "1969-12-31T00:00:00.000Z"),
            (at(2024, 2, 29, 23, 59, 59, 7), "2024-02-29T23:59:59.007Z"),
            (MIN_MS, "0001-01-01T00:00:00.000Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
            // Outside the parsers' range: ISO 8601 expanded years with a sign.
            (MAX_MS + 1, "+10000-01-01T00:00:00.000Z"),
            (MIN_MS - 1, "0000-12-31T23:59:59.999Z"),
            (
                days_from_civil(-1, 1, 1) * MS_PER_DAY,
                "-0001-01-01T00:00:00.000Z",
            ),
        ];
        for &(ms, text) in cases {
            assert_eq!(format_iso_millis(ms), text, "{ms}");
            if (MIN_MS..=MAX_MS).contains(&ms) {
                assert_eq!(parse_timestamp_str(text, EpochUnit::Auto), Ok(ms), "{text}");
            }
        }
        // Extremes must not panic.
        assert!(format_iso_millis(i64::MAX).starts_with("+292278994-"));
        assert!(format_iso_millis(i64::MIN).starts_with("-292275055-"));
    }

    #[test]
    fn iso_round_trip_over_range() {
        // Step by a prime number of ms so times of day and dates both vary.
        let step = 7_919_999_993i64;
        let mut ms = MIN_MS;
        while ms <= MAX_MS {
            let text = format_iso_millis(ms);
            assert_eq!(
                parse_timestamp_str(&text, EpochUnit::Auto),
                Ok(ms),
                "{text}"
            );
            ms += step;
        }
    }

    #[test]
    fn civil_day_conversions() {
        let cases: &[((i64, u32, u32), i64)] = &[
            ((1970, 1, 1), 0),
            ((1969, 12, 31), -1),
            ((2000, 3, 1), 11_017),
            ((2024, 2, 29), 19_782),
            ((2024, 3, 1), 19_783),
            ((1, 1, 1), -719_162),
            ((10_000, 1, 1), 2_932_897),
            // Year 0 and negative years are proleptic Gregorian (year 0 is a leap year).
            ((0, 2, 29), -719_469),
            ((0, 3, 1), -719_468),
        ];
        for &((y, m, d), days) in cases {
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
        }
        // Every day for ±800 years round-trips and consecutive days are consecutive dates.
        let (lo, hi) = (days_from_civil(1170, 1, 1), days_from_civil(2770, 1, 1));
        let mut prev = civil_from_days(lo - 1);
        for days in lo..hi {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let next_day = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let next_month = d == 1 && (y, m) == (prev.0, prev.1 + 1);
            let next_year = (y, m, d) == (prev.0 + 1, 1, 1);
            assert!(
                next_day || next_month || next_year,
                "{prev:?} -> {y}-{m}-{d}"
            );
            prev = (y, m, d);
        }
        // Far from the epoch in both directions.
        for days in (-1_000_000_000_000i64..1_000_000_000_000).step_by(999_999_937) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn utc_parts_for_partitions() {
        type Parts = (i64, u32, u32, u32);
        let cases: &[(i64, Parts)] = &[
            (0, (1970, 1, 1, 0)),
            (at(2024, 3, 1, 5, 12, 33, 123), (2024, 3, 1, 5)),
            (at(2024, 2, 29, 23, 59, 59, 999), (2024, 2, 29, 23)),
            // Negative instants belong to the previous day's last hour, not hour 0.
            (-1, (1969, 12, 31, 23)),
            (MIN_MS, (1, 1, 1, 0)),
            (MAX_MS, (9999, 12, 31, 23)),
        ];
        for &(ms, parts) in cases {
            assert_eq!(utc_parts(ms), parts, "{ms}");
        }
    }

    #[test]
    fn range_constants() {
        assert_eq!(MIN_MS, -62_135_596_800_000);
        assert_eq!(MAX_MS, 253_402_300_799_999);
    }
}

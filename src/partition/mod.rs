//! Hive-style partition paths: `year=YYYY/month=MM/day=DD/hour=HH` from the
//! event time in UTC, then one `<key>=<value>` per declared partition field.
//!
//! Partition assignment is a pure function of the record: the exactly-once
//! recovery relies on it (see `checkpoint`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write;

use serde_json::Value;

use crate::schema::TableSchema;
use crate::transform::timestamp::{push_padded, utc_parts};

/// Hive's value for a missing or null partition field.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The time part only: `year=YYYY/month=MM/day=DD/hour=HH`.
pub fn time_path(ms: i64) -> String {
    let mut out = String::new();
    time_path_into(&mut out, ms);
    out
}

const MS_PER_HOUR: i64 = 3_600_000;

/// Hours whose paths each thread keeps, direct-mapped by hour since the
/// epoch.
const HOUR_SLOTS: i64 = 256;

thread_local! {
    /// Formatting a path cost most of a record's route (about 700
    /// instructions), and records fall in few distinct hours: a stream's
    /// latest ones, or the span of a backfill, in any order.
    static HOURS: RefCell<Vec<(i64, String)>> =
        RefCell::new(vec![(i64::MIN, String::new()); HOUR_SLOTS as usize]);
}

fn time_path_into(out: &mut String, ms: i64) {
    // UTC has no offsets to change: the path is a function of the hour.
    let hour = ms.div_euclid(MS_PER_HOUR);
    HOURS.with_borrow_mut(|slots| {
        let (at, text) = &mut slots[hour.rem_euclid(HOUR_SLOTS) as usize];
        if *at != hour {
            text.clear();
            format_time_path(text, ms);
            *at = hour;
        }
        out.push_str(text);
    });
}

fn format_time_path(out: &mut String, ms: i64) {
    let (y, m, d, h) = utc_parts(ms);
    if y < 0 {
        // Before year 0: Display's sign and padding, as ever.
        let _ = write!(out, "year={y:04}/month={m:02}/day={d:02}/hour={h:02}");
        return;
    }
    // Not `write!`: it cost more than the rest of the path, per record.
    out.push_str("year=");
    push_padded(out, y as u64, 4);
    out.push_str("/month=");
    push_padded(out, u64::from(m), 2);
    out.push_str("/day=");
    push_padded(out, u64::from(d), 2);
    out.push_str("/hour=");
    push_padded(out, u64::from(h), 2);
}

/// Full partition path of a transformed record (no leading or trailing '/').
pub fn partition_path(t: &TableSchema, event_ms: i64, record: &Value) -> String {
    partition_path_with(t, event_ms, |i| {
        field_text(record, &t.ext.partition[i].field)
    })
}

/// A partition field's value as text (strings unquoted); None when missing
/// or null.
pub fn field_text<'a>(record: &'a Value, field: &str) -> Option<Cow<'a, str>> {
    match record.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
        Some(other) => Some(Cow::Owned(other.to_string())),
    }
}

/// The same from the partition fields' values as text: `value(i)` is the
/// `i`th partition field's JSON text (strings unquoted), None when missing
/// or null.
pub fn partition_path_with<'a>(
    t: &TableSchema,
    event_ms: i64,
    value: impl Fn(usize) -> Option<Cow<'a, str>>,
) -> String {
    let mut out = String::with_capacity(64);
    partition_path_into(&mut out, t, event_ms, value);
    out
}

/// Append a record's route, `<table>/<partition path>`, to `out` (this
/// runs for every record: no allocation of its own); returns where in
/// what it appended the partition path starts.
pub fn route_into<'a>(
    out: &mut String,
    t: &TableSchema,
    event_ms: i64,
    value: impl Fn(usize) -> Option<Cow<'a, str>>,
) -> usize {
    let start = out.len();
    out.push_str(&t.name);
    out.push('/');
    let at = out.len() - start;
    partition_path_into(out, t, event_ms, value);
    at
}

fn partition_path_into<'a>(
    out: &mut String,
    t: &TableSchema,
    event_ms: i64,
    value: impl Fn(usize) -> Option<Cow<'a, str>>,
) {
    time_path_into(out, event_ms);
    for (i, p) in t.ext.partition.iter().enumerate() {
        out.push('/');
        out.push_str(&p.name);
        out.push('=');
        match value(i) {
            None => out.push_str(DEFAULT_PARTITION),
            Some(v) => escape_into(out, &v),
        }
    }
}

/// Partition values in key order, parsed back from a path.
pub fn values_of(path: &str) -> Vec<String> {
    path.split('/')
        .map(|kv| kv.split_once('=').map(|(_, v)| v).unwrap_or(kv).to_owned())
        .collect()
}

/// Hive's escaping (FileUtils.escapePathName): characters that would break
/// a path or an S3 key become `%XX`.
fn escape_into(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push_str(DEFAULT_PARTITION);
        return;
    }
    for c in s.chars() {
        let needs = c.is_control()
            || matches!(
                c,
                '"' | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\u{7f}'
                    | '{'
                    | '['
                    | ']'
                    | '^'
            );
        if needs {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn table() -> TableSchema {
        let s = json!({"type": "object", "properties": {"VendorID": {}, "ts": {}},
            "x-lakehose": {"table": "t", "event_time": "ts", "partition": [{"name": "vendor_id", "field": "VendorID"}]}});
        TableSchema::from_value(s, "t", Path::new("t.json")).unwrap()
    }

    #[test]
    fn paths() {
        let t = table();
        // 2024-03-01T05:12:33.123Z
        let ms = 1_709_269_953_123;
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"VendorID": 2}),
                "year=2024/month=03/day=01/hour=05/vendor_id=2",
            ),
            (
                json!({"VendorID": "a/b"}),
                "year=2024/month=03/day=01/hour=05/vendor_id=a%2Fb",
            ),
            (
                json!({"VendorID": "x=y"}),
                "year=2024/month=03/day=01/hour=05/vendor_id=x%3Dy",
            ),
            // missing and null are Hive's default partition, not "null"
            (
                json!({}),
                "year=2024/month=03/day=01/hour=05/vendor_id=__HIVE_DEFAULT_PARTITION__",
            ),
            (
                json!({"VendorID": null}),
                "year=2024/month=03/day=01/hour=05/vendor_id=__HIVE_DEFAULT_PARTITION__",
            ),
            (
                json!({"VendorID": ""}),
                "year=2024/month=03/day=01/hour=05/vendor_id=__HIVE_DEFAULT_PARTITION__",
            ),
        ];
        for (rec, want) in cases {
            assert_eq!(partition_path(&t, ms, &rec), want, "{rec}");
        }
    }

    #[test]
    fn time_paths() {
        let cases = [
            (0_i64, "year=1970/month=01/day=01/hour=00"),
            (1_709_251_199_999, "year=2024/month=02/day=29/hour=23"), // leap day, last ms
            (1_709_251_200_000, "year=2024/month=03/day=01/hour=00"),
            (-1, "year=1969/month=12/day=31/hour=23"), // before the epoch
            (253_402_300_799_999, "year=9999/month=12/day=31/hour=23"),
            // past four digits: the formatted fallback
            (253_402_300_800_000, "year=10000/month=01/day=01/hour=00"),
        ];
        for (ms, want) in cases {
            assert_eq!(time_path(ms), want, "{ms}");
        }
    }

    #[test]
    fn remembered_hours_match_fresh_formatting() {
        let h = MS_PER_HOUR;
        // 2024-03-01T00:00Z
        let base = 1_709_251_200_000;
        // In order, repeated, back and forth, across the epoch and a day,
        // and hours that share a slot.
        let times = [
            base + HOUR_SLOTS * h,
            base - HOUR_SLOTS * h,
            base,
            base + 1,
            base + h - 1,
            base + h,
            base - 1,
            base + h,
            base + 24 * h,
            -1,
            0,
            -1,
            -h,
            -h - 1,
            253_402_300_800_000,
            base,
        ];
        for ms in times {
            let mut fresh = String::new();
            format_time_path(&mut fresh, ms);
            assert_eq!(time_path(ms), fresh, "{ms}");
        }
    }

    #[test]
    fn routes_prefix_the_table() {
        let t = table();
        let rec = json!({"VendorID": 7});
        // Appended after what the string holds.
        let mut out = String::from("before");
        let at = route_into(&mut out, &t, 0, |i| {
            field_text(&rec, &t.ext.partition[i].field)
        });
        let route = &out["before".len()..];
        assert_eq!(route, "t/year=1970/month=01/day=01/hour=00/vendor_id=7");
        assert_eq!(&route[at..], partition_path(&t, 0, &rec));
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(
            values_of("year=2024/month=03/day=01/hour=05/vendor_id=2"),
            ["2024", "03", "01", "05", "2"]
        );
    }
}

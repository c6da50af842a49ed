//! The compiled path must agree with the general one on every record it
//! takes, and take the ordinary ones.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::CompiledTable;
use crate::gen::{generate, EventKind, GenOptions};
use crate::schema::{Registry, TableSchema};
use crate::transform::row::{Row, RowRef};
use crate::transform::{Outcome, Routing, Transformer};

const ARRIVAL: i64 = 1_700_000_000_000;

fn shipped() -> Arc<Registry> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    Arc::new(Registry::load_dir(&dir).expect("shipped schemas load"))
}

fn table(schema: Value) -> Arc<Registry> {
    let t = TableSchema::from_value(schema, "t", Path::new("t.json")).expect("valid test schema");
    Arc::new(Registry::from_tables(vec![t]))
}

/// Transform one record both ways. Returns whether the compiled path took
/// it, after checking it agrees with the general path where it did. The
/// compiled path appends to a row already holding a record, as in a
/// transform job, and must leave it as it was when it declines.
fn agree(t: &Transformer, raw: &[u8]) -> bool {
    let mut fast_rows = Row::default();
    fast_rows.reserve_block(3);
    fast_rows.push_str("an earlier record");
    let before = fast_rows.clone();
    let fast = t.transform_compiled(raw, ARRIVAL, &mut fast_rows);
    let mut slow_rows = Row::default();
    let slow = t.transform_with(raw, ARRIVAL, None, &[], &[], None, &mut slow_rows);
    let text = String::from_utf8_lossy(raw);
    match (fast, slow) {
        (None, _) => {
            assert_eq!(
                fast_rows, before,
                "a declined record left cells or text: {text}"
            );
            false
        }
        (Some(f), Outcome::Ok(s)) => {
            assert_eq!(f.table, s.table, "{text}");
            assert_eq!(f.route(&fast_rows), s.route(&slow_rows), "{text}");
            assert_eq!(f.id_digest, s.id_digest, "{text}");
            assert_eq!(f.input_bytes, s.input_bytes, "{text}");
            // Rows agree cell for cell (the text may hold extra bytes
            // behind captured values: compare what cells point at).
            let cols = &t.registry().by_index(f.table).columns;
            let fast_row = RowRef {
                row: &fast_rows,
                top: f.top,
            };
            let slow_row = RowRef {
                row: &slow_rows,
                top: s.top,
            };
            assert_eq!(render(fast_row, cols), render(slow_row, cols), "{text}");
            true
        }
        (Some(_), Outcome::Failed(e)) => panic!(
            "the compiled path accepted a record the general path rejects ({}): {text}",
            e.message
        ),
    }
}

/// A row as JSON, for comparisons and readable failures.
fn render(r: RowRef, cols: &[crate::schema::Column]) -> Value {
    use super::Cell;
    use crate::schema::ColumnType;
    fn cell(row: &super::Row, ty: &ColumnType, c: Cell) -> Value {
        match (c, ty) {
            (Cell::Null, _) => Value::Null,
            (Cell::Bool(b), _) => json!(b),
            (Cell::Int(i), _) => json!(i),
            (Cell::Float(f), _) => json!(f),
            (Cell::Str { start, len }, _) => json!(row.str(start, len)),
            (Cell::Struct { start }, ColumnType::Struct(m)) => Value::Array(
                m.iter()
                    .enumerate()
                    .map(|(i, col)| cell(row, &col.ty, row.cells[start as usize + i]))
                    .collect(),
            ),
            (Cell::List { start, len }, ColumnType::List(item)) => Value::Array(
                row.cells[start as usize..(start + len) as usize]
                    .iter()
                    .map(|c| cell(row, item, *c))
                    .collect(),
            ),
            (c, ty) => panic!("cell {c:?} in a {ty:?} column"),
        }
    }
    Value::Array(
        cols.iter()
            .enumerate()
            .map(|(i, c)| cell(r.row, &c.ty, r.cell(i)))
            .collect(),
    )
}

#[test]
fn shipped_schemas_compile() {
    let reg = shipped();
    for t in reg.tables() {
        if let Err(why) = CompiledTable::compile(t) {
            panic!("{} does not compile: {why}", t.name);
        }
    }
}

/// Generated events, broken ones and mixed timestamp formats included:
/// both paths agree, and the compiled one takes every valid record.
#[test]
fn generated_events_agree() {
    let reg = shipped();
    for (kind, name) in [
        (EventKind::Taxi, "taxi_trips"),
        (EventKind::Clicks, "app_clicks"),
    ] {
        let idx = reg.index_of(name).expect("shipped table");
        let t = Transformer::new(
            reg.clone(),
            b"k",
            Routing::Fixed(idx),
            "gen".into(),
            1 << 20,
        )
        .unwrap();
        for mixed_ts in [false, true] {
            let opts = GenOptions {
                kind,
                count: 3000,
                seed: 11,
                bad: 0.1,
                dup: 0.0,
                mixed_ts,
            };
            let mut out = Vec::new();
            let stats = generate(&opts, &mut out).unwrap();
            let mut taken = 0u64;
            for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                taken += u64::from(agree(&t, line));
            }
            assert_eq!(
                taken, stats.valid,
                "{name} mixed_ts={mixed_ts}: every valid record takes the compiled path"
            );
        }
    }
}

/// Odd records on a schema using every natively checked keyword: each is
/// either taken with the general path's result or left to it.
#[test]
fn odd_records_agree() {
    let reg = table(json!({
        "type": "object",
        "required": ["id", "ts"],
        "properties": {
            "id": {"type": ["string", "integer"]},
            "ts": {"type": ["string", "number"]},
            "later": {"type": ["string", "integer", "null"]},
            "n": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
            "f": {"type": "number", "exclusiveMinimum": 0.5, "maximum": 100},
            "e": {"enum": [1, 2, 3]},
            "c": {"const": "x"},
            "s": {"type": "string", "minLength": 2, "maxLength": 4},
            "p": {"type": "string", "pattern": "^[a-z]+$"},
            "m": {"type": "number", "multipleOf": 0.5},
            "b": {"type": "boolean"},
            "k": {"type": "number"},
            "any": {},
            "blob": {"type": "object"},
            "o": {"type": ["object", "null"], "additionalProperties": false, "required": ["a"],
                  "properties": {"a": {"type": "integer"}, "secret": {"type": "string"}}},
            "l": {"type": "array", "minItems": 1, "maxItems": 3,
                  "items": {"type": "object", "properties": {"x": {"type": "integer"}, "pin": {}}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "whole": {"type": "object", "properties": {"q": {"type": "integer"}}},
            "never": false
        },
        "x-lakehose": {
            "table": "t", "event_time": "ts", "timestamps": ["later"],
            "partition": [{"name": "kp", "field": "k"}, {"name": "ep", "field": "e"}],
            "record_id": "id",
            "mask": {"o.secret": "hash", "l.pin": "last4", "whole": "hash", "b": "redact"}
        }
    }));
    let t = Transformer::new(reg, b"k", Routing::Fixed(0), "src".into(), 1 << 20).unwrap();
    // (record, whether the compiled path takes it)
    let cases: Vec<(&str, bool)> = vec![
        (r#"{"id":"a","ts":"2024-03-01T05:00:00Z"}"#, true),
        (r#"{"id":7,"ts":1709269200}"#, true),
        (r#"{"id":"a","ts":1709269200123,"later":null}"#, true),
        (
            r#"{"id":"a","ts":1709269200.5,"later":"2024-03-01 05:00:00.25"}"#,
            true,
        ),
        (r#"{"id":"a","ts":"1709269200","later":1709269200}"#, true),
        // every native keyword satisfied, at its edges
        (
            r#"{"id":"a","ts":0,"n":0,"f":100,"e":3,"c":"x","s":"ab","p":"abc","m":1.5,"b":true,"k":2.5,"any":[1,{"z":null}],"blob":{"y":[1,2]},"o":{"a":1,"secret":"pw"},"l":[{"x":1,"pin":"123456"},{"pin":7}],"tags":["a","é"],"whole":{"q":2,"r":"x"}}"#,
            true,
        ),
        (r#"{"id":"a","ts":0,"n":9,"f":0.51,"s":"ü日本語"}"#, true),
        (r#"{"id":"a","ts":0,"o":null,"l":[{}],"tags":[]}"#, true),
        // partition values: a float's and an integer's JSON text
        (r#"{"id":"a","ts":0,"k":2,"e":1}"#, true),
        (r#"{"id":"a","ts":0,"k":1e3}"#, true),
        (r#"{"id":"a","ts":0,"k":-0.0}"#, true),
        // escapes in keys and strings
        (
            r#"{"\u0069d":"a\"b\\c\u00e9\ud83d\ude00","ts":0,"s":"a\nb"}"#,
            true,
        ),
        // undeclared properties are allowed at the top
        (
            r#"{"id":"a","ts":0,"extra":{"deep":[1,2,{"x":"y"}]}}"#,
            true,
        ),
        // whitespace everywhere
        (" {\t\"id\" : \"a\" ,\n\"ts\" : 0 } \n", true),
        // numbers at the edges of i64/u64 and beyond
        (r#"{"id":9223372036854775807,"ts":0}"#, true),
        (r#"{"id":18446744073709551615,"ts":0}"#, true),
        // past 64 bits serde_json reads a float: left to it
        (
            r#"{"id":"a","ts":0,"k":123456789012345678901234567890}"#,
            false,
        ),
        (r#"{"id":"a","ts":0,"k":-0}"#, false),
        // left to the general path: violations and what it alone decides
        (r#"{"id":"a","ts":0,"n":2.0}"#, false), // 2.0 is an integer to JSON Schema
        (r#"{"id":"a","ts":0,"n":10}"#, false),
        (r#"{"id":"a","ts":0,"n":-1}"#, false),
        (r#"{"id":"a","ts":0,"f":0.5}"#, false),
        (r#"{"id":"a","ts":0,"e":1.0}"#, false),
        (r#"{"id":"a","ts":0,"e":4}"#, false),
        (r#"{"id":"a","ts":0,"c":"y"}"#, false),
        (r#"{"id":"a","ts":0,"s":"a"}"#, false),
        (r#"{"id":"a","ts":0,"s":"abcde"}"#, false),
        (r#"{"id":"a","ts":0,"p":"A"}"#, false),
        (r#"{"id":"a","ts":0,"m":0.3}"#, false),
        (r#"{"id":"a","ts":0,"o":{"a":1,"z":2}}"#, false),
        (r#"{"id":"a","ts":0,"o":{}}"#, false),
        (r#"{"id":"a","ts":0,"l":[]}"#, false),
        (r#"{"id":"a","ts":0,"l":[{},{},{},{}]}"#, false),
        (r#"{"id":"a","ts":0,"tags":[1]}"#, false),
        (r#"{"id":"a","ts":0,"never":1}"#, false),
        (r#"{"id":"a","ts":0,"id":"b"}"#, false), // duplicate key
        (r#"{"id":"a"}"#, false),
        (r#"{"id":"a","ts":null}"#, false),
        (r#"{"id":"a","ts":"yesterday"}"#, false),
        (r#"{"id":"a","ts":0,"later":"soon"}"#, false),
        (r#"{"id":true,"ts":0}"#, false),
        (r#"{"id":"a","ts":0,"b":"yes"}"#, false),
        (r#"{"id":"a","ts":0,"#, false),
        (r#"{"id":"a","ts":0} x"#, false),
        (r#"[{"id":"a","ts":0}]"#, false),
        ("\"just text\"", false),
        ("", false),
    ];
    for (raw, taken) in cases {
        assert_eq!(agree(&t, raw.as_bytes()), taken, "taken? {raw}");
    }
}

#[test]
fn routing_by_field_agrees() {
    let reg = shipped();
    let t = Transformer::new(
        reg,
        b"k",
        Routing::Field("table".into()),
        "src".into(),
        1 << 20,
    )
    .unwrap();
    let cases: Vec<(String, bool)> = vec![
        (
            json!({"table": "app_clicks", "event_id": "00000000-0000-4000-8000-000000000000"})
                .to_string(),
            false, // not valid for app_clicks: left to the general path
        ),
        (r#"{"table":"nope"}"#.into(), false),
        (r#"{"table":7}"#.into(), false),
        (
            r#"{"table":"app_clicks","table":"taxi_trips"}"#.into(),
            false,
        ),
    ];
    for (raw, taken) in cases {
        assert_eq!(agree(&t, raw.as_bytes()), taken, "{raw}");
    }
    // and a generated valid click routes and is taken
    let mut out = Vec::new();
    let opts = GenOptions {
        kind: EventKind::Clicks,
        count: 20,
        seed: 3,
        bad: 0.0,
        dup: 0.0,
        mixed_ts: false,
    };
    generate(&opts, &mut out).unwrap();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut v: Value = serde_json::from_slice(line).unwrap();
        v["table"] = json!("app_clicks");
        let raw = v.to_string();
        assert!(agree(&t, raw.as_bytes()), "{raw}");
    }
}

#[test]
fn schemas_left_to_the_general_path() {
    let base = |props: Value, ext: Value| json!({"type": "object", "$defs": {"d": {"type": "string"}}, "properties": props, "x-lakehose": ext});
    let cases: Vec<(Value, &str)> = vec![
        (base(json!({"a": {"$ref": "#/$defs/d"}}), json!({})), "$ref"),
        (
            base(
                json!({"a": {"type": "object", "properties": {"b": {}}, "minProperties": 1}}),
                json!({}),
            ),
            "minProperties",
        ),
        (
            base(
                json!({"a": {"type": "array", "items": {"type": "object", "properties": {"t": {"type": "string"}}}}}),
                json!({"timestamps": ["a.t"]}),
            ),
            "inside an array",
        ),
        (
            base(
                json!({"a": {"type": "object"}}),
                json!({"mask": {"a.b": "hash"}}),
            ),
            "stored whole",
        ),
    ];
    for (schema, why) in cases {
        let t = TableSchema::from_value(schema.clone(), "t", Path::new("t.json")).unwrap();
        match CompiledTable::compile(&t) {
            Ok(_) => panic!("{schema} compiled"),
            Err(e) => assert!(e.contains(why), "{schema}: {e}"),
        }
    }
}

/// The scanner reads every number as serde_json does (same value, same
/// integer/float kind), or leaves it to the general path.
#[test]
fn numbers_read_as_serde_json_reads_them() {
    use super::{Scan, Tok};
    use rand::{Rng, SeedableRng};
    let masker = crate::transform::mask::Masker::new(b"k", &[]).unwrap();
    let read = |text: &str| -> Option<Tok<'static>> {
        let mut row = super::Row::default();
        let mut scan = Scan {
            b: text.as_bytes(),
            s: text,
            i: 0,
            row: &mut row,
            masker: &masker,
            unit: Default::default(),
            event_ms: None,
            captured: [None; super::MAX_CAPTURES],
            scratch: String::new(),
            held: super::Cell::Null,
        };
        let t = scan.number()?;
        (scan.i == text.len()).then_some(t)
    };
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "1",
        "-1",
        "0.0",
        "-0.0",
        "1e0",
        "1E+2",
        "1e-2",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "9223372036854775807",
        "1e308",
        "1e309",
        "-1e309",
        "1e-400",
        "2.2250738585072011e-308",
        "4.9406564584124654e-324",
        "0.1",
        "0.30000000000000004",
        "123456789012345678901234567890",
        "9007199254740993",
        "9007199254740993.0",
        "1.7976931348623157e308",
        "2.4703282292062328e-324",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    for _ in 0..50_000 {
        let int: u64 = rng.gen_range(0..u64::MAX) >> rng.gen_range(0..64);
        let frac: u64 = rng.gen::<u64>() >> rng.gen_range(0..64);
        let exp: i32 = rng.gen_range(-330..330);
        cases.push(match rng.gen_range(0..4) {
            0 => format!("{int}"),
            1 => format!("-{int}.{frac}"),
            2 => format!("{int}.{frac}e{exp}"),
            _ => format!(
                "{}{int}{frac}e{}",
                if rng.gen() { "-" } else { "" },
                exp / 10
            ),
        });
    }
    for text in cases {
        let want: Option<Value> = serde_json::from_str(&text).ok();
        let got = read(&text);
        match (got, &want) {
            (None, _) => {} // left to the general path
            (Some(Tok::U(u)), Some(Value::Number(n))) => assert_eq!(n.as_u64(), Some(u), "{text}"),
            (Some(Tok::I(i)), Some(Value::Number(n))) => {
                assert!(n.is_i64(), "{text}");
                assert_eq!(n.as_i64(), Some(i), "{text}");
            }
            (Some(Tok::F(f)), Some(Value::Number(n))) => {
                assert!(n.is_f64(), "{text}");
                assert_eq!(n.as_f64().map(f64::to_bits), Some(f.to_bits()), "{text}");
            }
            (_, want) => panic!("{text}: serde_json reads {want:?}"),
        }
    }
}

/// The native format checks only accept what `jsonschema` accepts, and
/// they do accept the common shapes (else they would save nothing).
#[test]
fn fast_formats_accept_a_subset_of_jsonschema() {
    use super::Format;
    use rand::{Rng, SeedableRng};
    let common = [
        (Format::Uuid, "bc8960a9-23b8-41e9-b924-56de3eb13b90"),
        (Format::Uuid, "BC8960A9-23B8-41E9-B924-56DE3EB13B90"),
        (Format::Email, "rider471029@example.com"),
        (Format::Email, "first.last+tag@mail.example.co.uk"),
        (Format::Email, "x@localhost"),
    ];
    for (f, s) in common {
        assert!(f.fast_accepts(s), "{f:?} {s}");
    }
    let seeds = [
        "bc8960a9-23b8-41e9-b924-56de3eb13b90",
        "rider471029@example.com",
        "a.b@c-d.e",
        "\"q\"@example.com",
        "x@[127.0.0.1]",
        "Name <x@example.com>",
        "x@xn--bcher-kva.example",
        "x@ab--cd.example",
    ];
    let alphabet: Vec<char> = "ab0Z9-.@_+\"<> []:xn\u{e9}!~".chars().collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    for (f, name) in [(Format::Uuid, "uuid"), (Format::Email, "email")] {
        let v = super::build_validator(&json!({"type": "string", "format": name})).unwrap();
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut s: Vec<char> = seeds[rng.gen_range(0..seeds.len())].chars().collect();
            for _ in 0..rng.gen_range(0..4) {
                let i = rng.gen_range(0..=s.len());
                match rng.gen_range(0..3) {
                    0 if i < s.len() => {
                        s.remove(i);
                    }
                    1 if i < s.len() => s[i] = alphabet[rng.gen_range(0..alphabet.len())],
                    _ => s.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
                }
            }
            let s: String = s.into_iter().collect();
            if f.fast_accepts(&s) {
                accepted += 1;
                assert!(
                    v.is_valid(&json!(s)),
                    "{name}: {s:?} accepted natively only"
                );
            }
        }
        assert!(
            accepted > 100,
            "{name}: the fast check accepted only {accepted}"
        );
    }
}

/// The table-driven format checks decide as the plain byte-by-byte
/// definitions do, on the same mutated strings as above.
#[test]
fn fast_formats_match_their_byte_by_byte_definitions() {
    use rand::{Rng, SeedableRng};
    fn uuid(b: &[u8]) -> bool {
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    }
    fn email(b: &[u8]) -> bool {
        let Some(at) = b.iter().position(|&c| c == b'@') else {
            return false;
        };
        let (local, host) = (&b[..at], &b[at + 1..]);
        let atext = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c);
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .split(|&c| c == b'.')
                .all(|a| !a.is_empty() && a.iter().all(|&c| atext(c)));
        let label_ok = |l: &[u8]| {
            !l.is_empty()
                && l.len() <= 63
                && l.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
                && l[0].is_ascii_alphanumeric()
                && l[l.len() - 1].is_ascii_alphanumeric()
                && !(l.len() >= 4 && &l[2..4] == b"--")
        };
        local_ok
            && !host.is_empty()
            && host.len() <= 253
            && host.split(|&c| c == b'.').all(label_ok)
    }
    let fixed: &[&str] = &[
        "",
        "@",
        "a@b",
        ".a@b",
        "a.@b",
        "a..b@c",
        "a@-b",
        "a@b-",
        "a@b..c",
        "a@b.",
        "a@@b",
        "a@ab--cd",
        "a@abc--d",
        "bc8960a9-23b8-41e9-b924-56de3eb13b9g",
        "bc8960a9-23b8-41e9-b924-56de3eb13b9",
        "bc8960a9+23b8-41e9-b924-56de3eb13b90",
        "bc8960a9223b8-41e9-b924-56de3eb13b90",
    ];
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long_label = format!("x@{}.com", "b".repeat(64));
    let seeds = [
        "bc8960a9-23b8-41e9-b924-56de3eb13b90",
        "rider471029@example.com",
        "first.last+tag@mail.example.co.uk",
        "x@xn--bcher-kva.example",
    ];
    let alphabet: Vec<char> = "ab0Z9fFgG-.@_+\"<> []:xn\u{e9}!~".chars().collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
    let mut cases: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    cases.extend([long_local, long_label]);
    for _ in 0..50_000 {
        let mut s: Vec<char> = seeds[rng.gen_range(0..seeds.len())].chars().collect();
        for _ in 0..rng.gen_range(0..3) {
            let i = rng.gen_range(0..s.len());
            s[i] = alphabet[rng.gen_range(0..alphabet.len())];
        }
        cases.push(s.into_iter().collect());
    }
    for s in &cases {
        let b = s.as_bytes();
        assert_eq!(super::plain_uuid(b), uuid(b), "uuid {s:?}");
        assert_eq!(super::plain_email(b), email(b), "email {s:?}");
    }
}

/// The eight-bytes-at-a-time string scan finds the same first special
/// byte as a byte loop.
#[test]
fn special_bytes_finds_the_first_quote_backslash_or_control() {
    let first = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
    let mut cases: Vec<[u8; 8]> = vec![*b"abcdefgh", *b"abc\"efgh", *b"\\bcdefgh", *b"abcdefg\x1f"];
    for i in 0..8 {
        for c in [
            0u8, 0x1f, 0x20, b'"', b'\\', 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ] {
            for fill in [b'a', 0x80, 0x21, 0x23, 0xe9] {
                let mut w = [fill; 8];
                w[i] = c;
                cases.push(w);
                if i + 1 < 8 {
                    w[i + 1] = b'"';
                    cases.push(w);
                }
            }
        }
    }
    for w in cases {
        let m = super::special_bytes(u64::from_le_bytes(w));
        let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
        assert_eq!(got, first(&w), "{w:?}");
    }
}

#[test]
fn short_comparison_is_equality() {
    // Every length around the word size, equal and differing at each byte.
    let base: Vec<u8> = (b'a'..=b'z').collect();
    for n in 0..=base.len() {
        let a = &base[..n];
        assert!(super::same_short(a, a), "{n}");
        for k in 0..n {
            let mut b = a.to_vec();
            b[k] ^= 0x20;
            assert!(!super::same_short(a, &b), "{n} differs at {k}");
        }
        if n > 0 {
            assert!(!super::same_short(a, &base[..n - 1]), "{n} vs shorter");
        }
    }
}

#[test]
fn plain_decimals_parse_as_std_does() {
    // Fixed cases at the fast path's edges, then random decimals.
    let mut cases: Vec<String> = [
        "0.0",
        "-0.0",
        "0.1",
        "17.76",
        "-4.93",
        "123456789012.345",
        "0.000000000000001",
        "999999999999999.9",
        "1.7976931348623157",
        "9007199254740993.0",
        "0.3000000000000000444",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200_000 {
        let int_len = (next() % 9) as usize;
        let frac_len = 1 + (next() % 12) as usize;
        let mut t = String::new();
        if next() % 4 == 0 {
            t.push('-');
        }
        if int_len == 0 {
            t.push('0');
        } else {
            t.push(char::from(b'1' + (next() % 9) as u8));
            for _ in 1..int_len {
                t.push(char::from(b'0' + (next() % 10) as u8));
            }
        }
        t.push('.');
        for _ in 0..frac_len {
            t.push(char::from(b'0' + (next() % 10) as u8));
        }
        cases.push(t);
    }
    for t in &cases {
        let neg = t.starts_with('-');
        let body = t.trim_start_matches('-');
        let int = body.find('.').unwrap();
        let frac = body.len() - int - 1;
        let want: f64 = t.parse().unwrap();
        let (mut i, mut m) = (0, 0u64);
        let mut digits = super::digits(body.as_bytes(), &mut i, &mut m);
        assert_eq!(digits, int, "{t}");
        i += 1; // the point
        digits += super::digits(body.as_bytes(), &mut i, &mut m);
        assert_eq!(i, body.len(), "{t}");
        if let Some(got) = super::plain_decimal(m, digits, frac, neg) {
            assert_eq!(got.to_bits(), want.to_bits(), "{t}");
        } else {
            assert!(int + frac > 15, "{t}: fast path refused");
        }
    }
}

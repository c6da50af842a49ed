//! Error categorisation and the transform's effects, table-driven.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::schema::TableSchema;

fn registry() -> Arc<Registry> {
    let taxi = json!({
        "type": "object",
        "required": ["id", "VendorID", "pickup"],
        "properties": {
            "id": {"type": "string"},
            "VendorID": {"type": "integer", "enum": [1, 2]},
            "pickup": {"type": ["string", "integer", "number"]},
            "n": {"type": "integer", "minimum": 0},
            "rider": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
            "card": {"type": "string"}
        },
        "x-lakehose": {"table": "taxi", "event_time": "pickup",
            "partition": [{"name": "vendor_id", "field": "VendorID"}],
            "mask": {"rider.email": "hash", "card": "last4"}}
    });
    let other = json!({
        "type": "object",
        "properties": {"secret": {"type": "string"}},
        "x-lakehose": {"table": "other", "mask": {"secret": "redact"}}
    });
    Arc::new(Registry::from_tables(vec![
        TableSchema::from_value(taxi, "taxi", Path::new("taxi.json")).unwrap(),
        TableSchema::from_value(other, "other", Path::new("other.json")).unwrap(),
    ]))
}

fn transformer(routing: Routing) -> Transformer {
    Transformer::new(registry(), b"k", routing, "src".into(), 300).unwrap()
}

const ARRIVAL: i64 = 1_700_000_000_000;

/// Transform one record into a row of its own.
fn run(t: &Transformer, raw: &[u8], arrival_ms: i64) -> (Outcome, Row) {
    let mut row = Row::default();
    (t.transform(raw, arrival_ms, &mut row), row)
}

/// A scalar of a transformed row as JSON, by dotted path.
fn at(t: &Transformer, tr: &Transformed, row: &Row, path: &str) -> Value {
    let cols = &t.registry().by_index(tr.table).columns;
    let r = row::RowRef { row, top: tr.top };
    match r.at(cols, path) {
        row::Cell::Int(i) => json!(i),
        row::Cell::Float(f) => json!(f),
        row::Cell::Bool(b) => json!(b),
        c @ row::Cell::Str { .. } => json!(row.scalar_text(c).unwrap()),
        _ => Value::Null,
    }
}

#[test]
#[allow(clippy::type_complexity)]
fn categories() {
    let t = transformer(Routing::Fixed(0));
    let ok = r#"{"id":"a","VendorID":2,"pickup":"2024-03-01T05:00:00Z"}"#;
    let big = format!(r#"{{"id":"{}","VendorID":2,"pickup":0}}"#, "x".repeat(400));
    let cases: Vec<(&str, Option<ErrorCategory>, &[(&str, &str)])> = vec![
        (ok, None, &[]),
        (r#"{"id":"a","VendorID":2,"pickup":1709269200}"#, None, &[]),
        (
            r#"{"id":"a","VendorID":2,"fare"#,
            Some(ErrorCategory::InvalidJson),
            &[],
        ),
        ("", Some(ErrorCategory::InvalidJson), &[]),
        (
            r#"{"id":"a","VendorID":"two","pickup":0}"#,
            Some(ErrorCategory::SchemaViolation),
            &[("/VendorID", "type")],
        ),
        (
            r#"{"id":"a","VendorID":3,"pickup":0}"#,
            Some(ErrorCategory::SchemaViolation),
            &[("/VendorID", "enum")],
        ),
        // a missing property is reported at the path where it belongs
        (
            r#"{"id":"a","VendorID":2}"#,
            Some(ErrorCategory::SchemaViolation),
            &[("/pickup", "required")],
        ),
        // every violation is reported, not just the first
        (
            r#"{"id":"a","VendorID":9,"pickup":0,"n":-1}"#,
            Some(ErrorCategory::SchemaViolation),
            &[("/VendorID", "enum"), ("/n", "minimum")],
        ),
        (
            r#"{"id":"a","VendorID":2,"pickup":0,"rider":{"email":"nope"}}"#,
            Some(ErrorCategory::SchemaViolation),
            &[("/rider/email", "format")],
        ),
        (
            r#"{"id":"a","VendorID":2,"pickup":"yesterday"}"#,
            Some(ErrorCategory::TimestampUnparseable),
            &[("/pickup", "timestamp")],
        ),
        // a JSON array is valid JSON but not the object the schema wants
        (
            "[1,2]",
            Some(ErrorCategory::SchemaViolation),
            &[("", "type")],
        ),
        (&big, Some(ErrorCategory::RecordTooLarge), &[]),
    ];
    for (input, want, details) in cases {
        match (run(&t, input.as_bytes(), ARRIVAL).0, want) {
            (Outcome::Ok(_), None) => {}
            (Outcome::Failed(f), Some(cat)) => {
                assert_eq!(f.category, cat, "{input}: {}", f.message);
                let got: Vec<(&str, &str)> = f
                    .details
                    .iter()
                    .map(|d| (d.path.as_str(), d.keyword.as_str()))
                    .collect();
                for d in details {
                    assert!(got.contains(d), "{input}: want {d:?} in {got:?}");
                }
                // the table is fixed, so even unparseable records belong to it
                assert_eq!(f.table, Some(0), "{input}");
            }
            (got, want) => panic!("{input}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn good_record_is_standardised_tagged_and_masked() {
    let t = transformer(Routing::Fixed(0));
    let input = r#"{"id":"a","VendorID":2,"pickup":"2024-02-29T19:00:00-05:00","rider":{"email":"a@b.co"},"card":"4111111111111111"}"#;
    let (Outcome::Ok(tr), row) = run(&t, input.as_bytes(), ARRIVAL) else {
        panic!("should pass")
    };
    assert_eq!(at(&t, &tr, &row, "pickup"), json!(1_709_251_200_000_i64));
    assert_eq!(at(&t, &tr, &row, "source"), "src");
    assert_eq!(at(&t, &tr, &row, "card"), "************1111");
    let email = at(&t, &tr, &row, "rider.email");
    let email = email.as_str().unwrap();
    assert_eq!(email.len(), 64);
    assert_ne!(email, "a@b.co");
    assert_eq!(
        tr.partition(&row),
        "year=2024/month=03/day=01/hour=00/vendor_id=2"
    );
}

#[test]
fn failed_records_hold_no_raw_pii() {
    let t = transformer(Routing::Fixed(0));
    let cases = [
        // invalid email: the violation is on a masked field, its message must not quote it
        r#"{"id":"a","VendorID":2,"pickup":0,"rider":{"email":"secret-not-an-email"},"card":"4111111111111111"}"#,
        // timestamp failure: the record is stored as it came, but masked
        r#"{"id":"a","VendorID":2,"pickup":"soon","rider":{"email":"secret@x.co"},"card":"4111111111111111"}"#,
        // the whole record is wrong-typed at the root: messages would quote all of it
        r#"{"id":"a","VendorID":2,"pickup":0,"rider":{"email":"secret@x.co"},"card":"4111111111111111","n":"x"}"#,
    ];
    for input in cases {
        let (Outcome::Failed(f), _) = run(&t, input.as_bytes(), ARRIVAL) else {
            panic!("{input} should fail")
        };
        let stored = String::from_utf8(f.data.clone()).unwrap();
        let all = format!("{stored} {} {:?}", f.message, f.details);
        assert!(!all.contains("secret"), "PII leaked: {all}");
        assert!(!all.contains("4111111111111111"), "PII leaked: {all}");
        assert!(stored.contains("************1111"));
        assert_eq!(
            f.masked_fields,
            vec!["card".to_string(), "rider.email".to_string()]
        );
    }
}

#[test]
fn routing_by_field() {
    let t = transformer(Routing::Field("type".into()));
    let cases: Vec<(Value, Result<usize, ErrorCategory>)> = vec![
        (json!({"type": "other", "secret": "s"}), Ok(1)),
        (
            json!({"type": "nope", "secret": "s", "card": "4111111111111111"}),
            Err(ErrorCategory::Unrouted),
        ),
        (json!({"secret": "s"}), Err(ErrorCategory::Unrouted)),
        (json!({"type": 5}), Err(ErrorCategory::Unrouted)),
    ];
    for (rec, want) in cases {
        let (out, row) = run(&t, rec.to_string().as_bytes(), ARRIVAL);
        match (out, want) {
            (Outcome::Ok(tr), Ok(table)) => {
                assert_eq!(tr.table, table);
                assert_eq!(at(&t, &tr, &row, "secret"), mask::REDACTED);
                // no event time declared: arrival time partitions
                assert!(
                    tr.partition(&row)
                        .starts_with("year=2023/month=11/day=14/hour=22"),
                    "{}",
                    tr.partition(&row)
                );
            }
            (Outcome::Failed(f), Err(cat)) => {
                assert_eq!(f.category, cat);
                // unrouted records are masked with every table's rules
                let stored = String::from_utf8(f.data).unwrap();
                assert!(
                    !stored.contains("4111111111111111") && !stored.contains("\"s\""),
                    "{stored}"
                );
            }
            (got, want) => panic!("{rec}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn retransform_masks_once_and_trusts_only_fields_that_passed() {
    let t = transformer(Routing::Fixed(0));
    let hashed = {
        let (Outcome::Ok(tr), row) = run(
            &t,
            br#"{"id":"a","VendorID":1,"pickup":"2024-03-01T05:00:00Z","rider":{"email":"a@b.co"}}"#,
            0,
        ) else {
            panic!("valid record failed")
        };
        at(&t, &tr, &row, "rider.email")
            .as_str()
            .unwrap()
            .to_owned()
    };
    let stored = format!(
        r#"{{"id":"a","VendorID":1,"pickup":"2024-03-01T05:00:00Z","rider":{{"email":"{hashed}"}},"card":"************1234"}}"#
    );
    let premasked = ["rider.email".to_string(), "card".to_string()];
    // (trusted fields, expected: Ok(email) or Err(violated path))
    let cases: Vec<(Vec<String>, Result<&str, &str>)> = vec![
        // email passed the first time: its hash is trusted and kept as is
        (premasked.to_vec(), Ok(hashed.as_str())),
        // email was the violation: it cannot be checked again, still fails
        (vec!["card".to_string()], Err("/rider/email")),
    ];
    for (trusted, want) in cases {
        let mut row = Row::default();
        let out = t.retransform(
            stored.as_bytes(),
            0,
            Some(0),
            &premasked,
            &trusted,
            "orig",
            &mut row,
        );
        match (out, want) {
            (Outcome::Ok(tr), Ok(email)) => {
                assert_eq!(at(&t, &tr, &row, "rider.email"), email, "masked twice");
                assert_eq!(at(&t, &tr, &row, "card"), "************1234");
                assert_eq!(at(&t, &tr, &row, "source"), "orig");
            }
            (Outcome::Failed(f), Err(path)) => {
                assert!(f.details.iter().any(|d| d.path == path), "{:?}", f.details);
                let v: Value = serde_json::from_slice(&f.data).unwrap();
                assert_eq!(v["rider"]["email"], hashed.as_str(), "masked twice");
            }
            (o, w) => panic!("trusted {trusted:?}: want {w:?}, got {o:?}"),
        }
    }
}

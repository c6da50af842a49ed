//! End to end on the `taxi_trips` table: generated events with broken
//! records, producer duplicates and mixed timestamp formats go through the
//! binary; the lake must hold exactly the right rows, masked, partitioned
//! by event time, in the agreed Parquet shape, plus the error records and
//! nothing else.

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use helpers::*;
use lakehose::gen::{EventKind, GenStats};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use serde_json::Value;

const COUNT: u64 = 4000;
const TABLE: &str = "taxi_trips";
const TIMESTAMP_COLUMNS: [&str; 2] = ["tpep_pickup_datetime", "tpep_dropoff_datetime"];

struct Fixture {
    lake: Lake,
    exp: Expected,
    stats: GenStats,
    out: RunOutput,
}

/// One run over taxi events with 5% broken and 2% duplicated records.
fn run_taxi() -> Fixture {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, COUNT, 0.05, 0.02, 7),
    );
    assert!(stats.duplicates > 0 && stats.broken.len() == 3, "{stats:?}");
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run(&input, &[]);
    Fixture {
        lake,
        exp,
        stats,
        out,
    }
}

#[test]
fn every_valid_record_exactly_once_and_summary_agrees() {
    let f = run_taxi();
    // Producer duplicates (same event_id) are dropped: each id once.
    f.lake.assert_exactly_once(TABLE, &f.exp);
    let rows = f.lake.rows(TABLE);
    assert_eq!(rows.len() as u64, f.stats.valid, "row count");

    let out = &f.out;
    assert_eq!(out.count("records_in"), COUNT);
    assert_eq!(out.count("written"), f.stats.valid);
    assert_eq!(out.count("duplicates_dropped"), f.stats.duplicates);
    assert_eq!(out.count("skipped_delivered"), 0);
    let want_errored: BTreeMap<String, u64> = f
        .stats
        .broken
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(out.errored(), want_errored);
    let files = f.lake.files();
    let parquet = files.iter().filter(|p| p.ends_with(".parquet")).count() as u64;
    let gz = files.iter().filter(|p| p.ends_with(".ndjson.gz")).count() as u64;
    assert_eq!(out.count("data_objects"), parquet);
    assert_eq!(out.count("error_objects"), gz);
    assert_eq!(out.count("objects"), parquet + gz);
    assert_eq!(
        out.count("bytes_in"),
        fs::metadata(f.lake.path("in.ndjson")).unwrap().len()
    );
    // The human summary on stdout says the same.
    assert!(out.stdout.contains("records in"), "{}", out.stdout);
}

#[test]
fn row_values_match_their_input_line() {
    let f = run_taxi();
    let by_id = f.exp.valid_by_id();
    for row in f.lake.rows(TABLE) {
        let v = &row.value;
        let input = &by_id[&row.str_at("event_id")];
        for col in TIMESTAMP_COLUMNS {
            // Mixed input formats all become the same instant, in UTC milliseconds.
            assert_eq!(v[col].as_i64(), Some(ts_ms(&input[col])), "{col} of {v}");
        }
        let same = [
            ("vendorid", "VendorID"),
            ("passenger_count", "passenger_count"),
            ("ratecodeid", "RatecodeID"),
            ("pulocationid", "PULocationID"),
            ("store_and_fwd_flag", "store_and_fwd_flag"),
            ("tags", "tags"),
        ];
        for (col, field) in same {
            assert_eq!(v[col], input[field], "{col} of {v}");
        }
        for (col, field) in [
            ("fare_amount", "fare_amount"),
            ("total_amount", "total_amount"),
            ("airport_fee", "Airport_fee"),
        ] {
            assert_eq!(v[col].as_f64(), input[field].as_f64(), "{col} of {v}");
        }
        // The source tag defaults to the input file's name.
        assert_eq!(v["source"], "in.ndjson");
    }
}

#[test]
fn sensitive_fields_masked_and_no_raw_pii_anywhere_in_the_lake() {
    let f = run_taxi();
    let by_id = f.exp.valid_by_id();
    let rows = f.lake.rows(TABLE);
    assert!(!rows.is_empty());
    for row in &rows {
        let v = &row.value;
        let input = &by_id[&row.str_at("event_id")];
        let email = v["rider"]["email"].as_str().expect("email");
        assert!(is_hex64(email), "rider.email {email:?} is not 64 hex chars");
        let raw_email = input["rider"]["email"].as_str().unwrap();
        assert_ne!(email, raw_email);
        // The dev key's HMAC: stable, so the column still joins.
        assert_eq!(
            email,
            hmac_hex(lakehose::config::INSECURE_DEV_KEY, raw_email)
        );
        assert_eq!(v["rider"]["phone"], "[REDACTED]");
        let card = v["card_number"].as_str().expect("card_number");
        assert!(is_last4_of_16(card), "card_number {card:?}");
        let raw_card = input["card_number"].as_str().unwrap();
        assert_eq!(&card[12..], &raw_card[raw_card.len() - 4..]);
    }

    let secrets = f.exp.secrets();
    assert!(secrets.len() > 3 * 3000, "{} secrets", secrets.len());
    // The scanner does find them where they are.
    let input = fs::read_to_string(f.lake.path("in.ndjson")).unwrap();
    assert_eq!(secrets_in(&input, &secrets).len(), secrets.len());
    let root = f.lake.root();
    let mut scanned = 0;
    for path in all_files(&root) {
        let name = path.to_string_lossy().into_owned();
        let bytes = fs::read(&path).unwrap();
        let found = if name.ends_with(".parquet") {
            // Snappy pages hide plain text: check the decoded strings instead.
            let mut strings = Vec::new();
            for v in read_parquet(&path) {
                strings_in(&v, &mut strings);
            }
            secrets_in(&strings.join("\n"), &secrets)
        } else if name.ends_with(".gz") {
            let text = gunzip(&bytes);
            let mut all = secrets_in(&text, &secrets);
            // rawData is base64: look inside it too.
            for line in raw_error_lines(&bytes) {
                let raw = line["rawData"].as_str().unwrap();
                let data = base64_decode(raw);
                all.extend(secrets_in(&String::from_utf8_lossy(&data), &secrets));
            }
            all
        } else {
            secrets_in(&String::from_utf8_lossy(&bytes), &secrets)
        };
        assert!(found.is_empty(), "{name} holds raw PII: {found:?}");
        scanned += 1;
    }
    assert!(scanned > 10, "scanned {scanned} files");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[test]
fn partition_path_is_pickup_hour_in_utc_and_vendor() {
    let f = run_taxi();
    let rows = f.lake.rows(TABLE);
    let mut partitions = BTreeSet::new();
    for row in &rows {
        let pickup = row.value["tpep_pickup_datetime"].as_i64().expect("ms");
        let want = format!(
            "{}/vendor_id={}",
            utc_time_path(pickup),
            row.value["vendorid"]
        );
        assert_eq!(row.partition, want, "row {}", row.value);
        partitions.insert(row.partition.clone());
    }
    // Three days of pickups, four vendors: most of the 288 hour/vendor cells.
    assert!(partitions.len() > 200, "{} partitions", partitions.len());
    // Pickups start at 2024-03-01T00:00Z; "-05:00" inputs read as local time
    // would land on February 29.
    assert!(
        !partitions.iter().any(|p| p.contains("month=02")),
        "{partitions:?}"
    );
}

#[test]
fn parquet_physical_schema_is_athena_friendly() {
    let f = run_taxi();
    let objects: Vec<String> = f.lake.objects(TABLE).into_values().flatten().collect();
    assert!(!objects.is_empty());
    for key in &objects {
        let file = fs::File::open(f.lake.root().join(key)).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let meta = builder.metadata();
        let schema = meta.file_metadata().schema_descr();
        for col in schema.columns() {
            let path = col.path().string();
            assert_eq!(path, path.to_lowercase(), "{key}: column {path}");
            if TIMESTAMP_COLUMNS.contains(&path.as_str()) {
                assert_eq!(col.physical_type(), PhysicalType::INT64, "{key}: {path}");
                assert_eq!(
                    col.logical_type_ref(),
                    Some(&LogicalType::timestamp(true, TimeUnit::MILLIS)),
                    "{key}: {path}"
                );
            }
            assert_ne!(col.physical_type(), PhysicalType::INT96, "{key}: {path}");
        }
        let fields = schema.root_schema().get_fields();
        let field = |name: &str| {
            fields
                .iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("{key}: no column {name}"))
        };
        for t in fields {
            assert_eq!(t.name(), t.name().to_lowercase(), "{key}");
        }
        let rider = field("rider");
        assert!(rider.is_group(), "rider is a struct");
        let names: Vec<&str> = rider.get_fields().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["email", "phone"]);
        let tags = field("tags");
        let info = tags.get_basic_info();
        assert!(
            tags.is_group()
                && (info.logical_type_ref() == Some(&LogicalType::List)
                    || info.converted_type() == ConvertedType::LIST),
            "{key}: tags is not a list: {tags:?}"
        );
        assert!(meta.num_row_groups() > 0);
        for rg in meta.row_groups() {
            for c in rg.columns() {
                assert!(
                    matches!(c.compression(), Compression::SNAPPY),
                    "{key}: {} is {:?}",
                    c.column_path().string(),
                    c.compression()
                );
            }
        }
    }
}

/// (break, JSON pointer, keyword) the schema violation must report.
const EXPECTED_VIOLATIONS: [(&str, &str, &str); 7] = [
    ("vendor", "/VendorID", "type"),
    ("pickup_missing", "/tpep_pickup_datetime", "required"),
    ("passengers", "/passenger_count", "minimum"),
    ("fare_null", "/fare_amount", "type"),
    ("rider", "/rider", "type"),
    ("flag", "/store_and_fwd_flag", "enum"),
    ("email", "/rider/email", "format"),
];

#[test]
fn invalid_records_land_in_error_prefix_with_firehose_fields() {
    let f = run_taxi();
    let errors = f.lake.errors(TABLE);
    let mut per_cat: BTreeMap<String, u64> = BTreeMap::new();
    let mut breaks_seen = BTreeSet::new();
    for e in &errors {
        *per_cat.entry(e.category.clone()).or_default() += 1;
        for k in FIREHOSE_FIELDS {
            assert!(
                e.raw.get(k).is_some(),
                "{}: {k} missing in {}",
                e.key,
                e.raw
            );
        }
        let r = &e.record;
        assert_eq!(r.error_code, e.category);
        assert_eq!(r.table.as_deref(), Some(TABLE));
        assert_eq!(r.attempts_made, 1);
        assert_eq!(r.sub_sequence_number, 0);
        assert!(!r.error_message.is_empty() && !r.shard_id.is_empty() && !r.stream.is_empty());
        // The object's hour is the records' arrival hour.
        let path_time: Vec<&str> = e.key.split('/').skip(3).take(4).collect();
        assert_eq!(
            path_time.join("/"),
            utc_time_path(r.arrival_timestamp),
            "{}",
            e.key
        );
        let offset: u64 = r.sequence_number.parse().expect("file offset");
        let line = f.exp.line_at(offset);
        let Class::Broken(cat, brk) = line.class else {
            panic!("valid line at {offset} filed as {}", e.category)
        };
        assert_eq!(cat, e.category, "line {}", line.text);
        breaks_seen.insert(brk);
        match cat {
            INVALID_JSON => assert_eq!(e.data(), line.text.as_bytes()),
            _ => {
                let stored = e.data_json().expect("stored record is JSON");
                let input: Value = serde_json::from_str(&line.text).unwrap();
                assert_eq!(stored["event_id"], input["event_id"]);
            }
        }
        for d in &r.details {
            assert!(
                d.path.is_empty() || d.path.starts_with('/'),
                "not a JSON pointer: {d:?}"
            );
            assert!(!d.keyword.is_empty(), "{d:?}");
        }
        match cat {
            SCHEMA_VIOLATION => {
                assert!(!r.details.is_empty(), "no details: {:?}", r);
                let (_, path, keyword) = EXPECTED_VIOLATIONS
                    .iter()
                    .find(|(b, _, _)| *b == brk)
                    .expect("known break");
                assert!(
                    r.details
                        .iter()
                        .any(|d| d.path == *path && d.keyword == *keyword),
                    "{brk}: want ({path:?}, {keyword}) in {:?}",
                    r.details
                );
            }
            TIMESTAMP_UNPARSEABLE => {
                assert_eq!(r.details.len(), 1, "{:?}", r.details);
                assert_eq!(r.details[0].path, "/tpep_pickup_datetime");
                assert_eq!(r.details[0].keyword, "timestamp");
            }
            _ => {}
        }
    }
    let want: BTreeMap<String, u64> = f
        .stats
        .broken
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(per_cat, want, "error records per category");
    // Every kind of break the generator makes was exercised.
    assert_eq!(breaks_seen.len(), 9, "{breaks_seen:?}");
}

/// `year=dddd/month=dd/day=dd/hour=dd`
fn is_time_path(segs: &[&str]) -> bool {
    let ok = |s: &str, key: &str, digits: usize| {
        s.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .is_some_and(|v| v.len() == digits && v.bytes().all(|b| b.is_ascii_digit()))
    };
    segs.len() == 4
        && ok(segs[0], "year", 4)
        && ok(segs[1], "month", 2)
        && ok(segs[2], "day", 2)
        && ok(segs[3], "hour", 2)
}

fn is_object_name(s: &str, ext: &str) -> bool {
    s.starts_with("part-") && s.ends_with(ext) && !s.contains(".tmp")
}

#[test]
fn nothing_else_in_the_lake() {
    let f = run_taxi();
    let top: BTreeSet<String> = fs::read_dir(f.lake.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        BTreeSet::from(["_lakehose".into(), "errors".into(), TABLE.into()])
    );
    let categories = [INVALID_JSON, SCHEMA_VIOLATION, TIMESTAMP_UNPARSEABLE];
    let mut checkpoints = 0;
    for file in f.lake.files() {
        let segs: Vec<&str> = file.split('/').collect();
        let ok = match segs[0] {
            TABLE => {
                segs.len() == 7
                    && is_time_path(&segs[1..5])
                    && ["vendor_id=1", "vendor_id=2", "vendor_id=6", "vendor_id=7"]
                        .contains(&segs[5])
                    && is_object_name(segs[6], ".snappy.parquet")
            }
            "errors" => {
                segs.len() == 8
                    && segs[1] == TABLE
                    && categories.contains(&segs[2])
                    && is_time_path(&segs[3..7])
                    && is_object_name(segs[7], ".ndjson.gz")
            }
            "_lakehose" => match segs[1..] {
                ["catalog", "lakehose", "taxi_trips.json" | "app_clicks.json"] => true,
                ["checkpoints", "lakehose", name] if name.ends_with(".json") => {
                    checkpoints += 1;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        assert!(ok, "unexpected file in the lake: {file}");
    }
    assert_eq!(checkpoints, 1, "one checkpoint for one file source");
}

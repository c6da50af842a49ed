//! Onboarding is adding a schema file: the shipped `app_clicks` schema, a
//! table the test invents on the spot, and routing records to tables by a
//! field of their own.

mod helpers;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use helpers::*;
use lakehose::config::INSECURE_DEV_KEY;
use lakehose::gen::{generate, EventKind, GenOptions};
use serde_json::{json, Value};

#[test]
fn app_clicks_from_gen_clicks_output() {
    let lake = Lake::new();
    let input = lake.path("clicks.ndjson");
    let mut gen = lakehose_cmd();
    gen.args([
        "gen", "clicks", "--count", "3000", "--bad", "0.05", "--seed", "5", "-o",
    ])
    .arg(&input);
    let (status, _, stderr) = run_command(gen, None);
    assert!(status.success(), "gen clicks: {stderr}");
    // The CLI generator is the library generator: same bytes, so GenStats apply.
    let opts = GenOptions {
        kind: EventKind::Clicks,
        count: 3000,
        seed: 5,
        bad: 0.05,
        dup: 0.0,
        mixed_ts: true,
    };
    let mut bytes = Vec::new();
    let stats = generate(&opts, &mut bytes).unwrap();
    assert_eq!(fs::read(&input).unwrap(), bytes, "gen clicks output");
    let exp = Expected::from_file(EventKind::Clicks, &input, &stats);

    let out = lake.run(&input, &["--table", "app_clicks"]);
    assert_eq!(out.count("written"), stats.valid);
    lake.assert_exactly_once("app_clicks", &exp);
    assert!(lake.objects("taxi_trips").is_empty());

    let by_id = exp.valid_by_id();
    let rows = lake.rows("app_clicks");
    for row in &rows {
        let v = &row.value;
        let input = &by_id[&row.str_at("click_id")];
        let ts = v["ts"].as_i64().expect("ts is a timestamp");
        assert_eq!(ts, ts_ms(&input["ts"]), "ts of {v}");
        assert_eq!(
            row.partition,
            format!(
                "{}/platform_key={}",
                utc_time_path(ts),
                input["platform"].as_str().unwrap()
            )
        );
        assert_eq!(v["platform"], input["platform"]);
        let email = v["user"]["email"].as_str().unwrap();
        assert!(is_hex64(email), "{email}");
        assert_eq!(
            email,
            hmac_hex(INSECURE_DEV_KEY, input["user"]["email"].as_str().unwrap())
        );
        assert_eq!(v["user"]["ip"], "[REDACTED]");
        assert_eq!(v["user"]["id"], input["user"]["id"]);
        assert_eq!(v["page"], input["page"]);
        assert_eq!(v["experiments"], input["experiments"], "list of structs");
    }
    let platforms: BTreeMap<String, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.partition.rsplit('/').next().unwrap().to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(
        platforms.keys().collect::<Vec<_>>(),
        [
            "platform_key=android",
            "platform_key=ios",
            "platform_key=web"
        ]
    );
}

/// A table no code knows about: mixed-case field names, an epoch-seconds
/// event time, a partition value needing Hive escaping, nested masks.
fn sensor_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["reading_id", "site", "observed_at", "celsius"],
        "properties": {
            "reading_id": {"type": "string"},
            "site": {"type": "string"},
            "observed_at": {"type": ["integer", "string"]},
            "celsius": {"type": "number", "minimum": -90, "maximum": 60},
            "Healthy": {"type": "boolean"},
            "operator": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "badge": {"type": "string"}}
            },
            "samples": {"type": "array", "items": {"type": "number"}}
        },
        "x-lakehose": {
            "table": "sensor_readings",
            "event_time": "observed_at",
            "epoch_unit": "s",
            "partition": [{"name": "site_key", "field": "site"}],
            "record_id": "reading_id",
            "mask": {"operator.name": "hash", "operator.badge": "last4"}
        }
    })
}

const SITES: [(&str, &str); 3] = [
    ("north", "north"),
    ("south/east", "south%2Feast"), // '/' would split the path: Hive escapes it
    ("west yard", "west yard"),
];
/// 2024-06-01T00:00:00Z
const SENSOR_BASE_S: i64 = 1_717_200_000;

/// Sensor records: every 10th too hot for the schema, every 25th with an
/// unparseable time (when not already too hot).
fn sensor_lines(n: usize) -> (Vec<String>, usize, usize) {
    let (mut bad_schema, mut bad_ts) = (0, 0);
    let lines = (0..n)
        .map(|i| {
            let celsius = if i % 10 == 9 {
                bad_schema += 1;
                100.5
            } else {
                (i % 40) as f64 - 5.25
            };
            let at = if i % 25 == 24 && i % 10 != 9 {
                bad_ts += 1;
                json!("not a time")
            } else {
                json!(SENSOR_BASE_S + i as i64 * 600)
            };
            json!({
                "reading_id": format!("r-{i:05}"),
                "site": SITES[i % 3].0,
                "observed_at": at,
                "celsius": celsius,
                "Healthy": i % 2 == 0,
                "operator": {"name": format!("op{}", i % 7), "badge": format!("B{:08}", 1000 + i)},
                "samples": [1.5, i as f64]
            })
            .to_string()
        })
        .collect();
    (lines, bad_schema, bad_ts)
}

/// A schemas directory: the shipped taxi schema plus the sensor table.
fn schemas_dir(lake: &Lake) -> std::path::PathBuf {
    let dir = lake.path("schemas");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo_schemas().join("taxi_trips.json"),
        dir.join("taxi_trips.json"),
    )
    .unwrap();
    fs::write(
        dir.join("sensor_readings.json"),
        serde_json::to_string_pretty(&sensor_schema()).unwrap(),
    )
    .unwrap();
    dir
}

fn schema_cmd(what: &str, table: &str, schemas: &Path) -> String {
    let mut c = lakehose_cmd();
    c.args(["schema", what, table, "--schemas"]).arg(schemas);
    let (status, out, err) = run_command(c, None);
    assert!(status.success(), "schema {what} {table}: {err}");
    out
}

#[test]
fn brand_new_table_needs_only_a_schema_file() {
    let tmp = Lake::new();
    let schemas = schemas_dir(&tmp);
    let lake = Lake::with_schemas(&schemas);
    let (lines, bad_schema, bad_ts) = sensor_lines(300);
    let input = lake.path("sensors.ndjson");
    fs::write(&input, lines.join("\n") + "\n").unwrap();

    let out = lake.run(&input, &["--table", "sensor_readings"]);
    let good = 300 - bad_schema - bad_ts;
    assert_eq!(out.count("written"), good as u64);
    let want_err = BTreeMap::from([
        (SCHEMA_VIOLATION.to_owned(), bad_schema as u64),
        (TIMESTAMP_UNPARSEABLE.to_owned(), bad_ts as u64),
    ]);
    assert_eq!(out.errored(), want_err);

    let rows = lake.rows("sensor_readings");
    assert_eq!(rows.len(), good);
    let inputs: BTreeMap<String, Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["reading_id"].as_str().unwrap().to_owned(), v))
        .collect();
    for row in &rows {
        let v = &row.value;
        let input = &inputs[&row.str_at("reading_id")];
        let ms = input["observed_at"].as_i64().unwrap() * 1000;
        assert_eq!(v["observed_at"].as_i64(), Some(ms), "epoch seconds -> ms");
        let site = input["site"].as_str().unwrap();
        let escaped = SITES.iter().find(|s| s.0 == site).unwrap().1;
        assert_eq!(
            row.partition,
            format!("{}/site_key={escaped}", utc_time_path(ms))
        );
        assert_eq!(v["celsius"].as_f64(), input["celsius"].as_f64());
        // Column names are lowercase, values kept.
        assert_eq!(v["healthy"], input["Healthy"], "row {v}");
        assert!(v.get("Healthy").is_none());
        assert_eq!(v["samples"], input["samples"]);
        let name = input["operator"]["name"].as_str().unwrap();
        assert_eq!(
            v["operator"]["name"],
            hmac_hex(INSECURE_DEV_KEY, name).as_str()
        );
        let badge = v["operator"]["badge"].as_str().unwrap();
        assert_eq!(
            badge,
            format!(
                "*****{}",
                &input["operator"]["badge"].as_str().unwrap()[5..]
            )
        );
        assert_eq!(v["source"], "sensors.ndjson");
    }
    assert_eq!(lake.errors("sensor_readings").len(), bad_schema + bad_ts);

    // The catalog, Glue and Athena views derive from the same file.
    let doc = lake.catalog("sensor_readings");
    assert_eq!(doc["Table"]["Name"], "sensor_readings");
    let partitions = doc["Partitions"].as_object().unwrap();
    assert!(partitions
        .keys()
        .any(|p| p.ends_with("site_key=south%2Feast")));
    let glue: Value =
        serde_json::from_str(&schema_cmd("glue", "sensor_readings", &schemas)).unwrap();
    let cols: Vec<&str> = glue["StorageDescriptor"]["Columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert!(
        cols.contains(&"healthy") && cols.contains(&"observed_at"),
        "{cols:?}"
    );
    let ddl = schema_cmd("ddl", "sensor_readings", &schemas);
    for want in [
        "`sensor_readings`",
        "`observed_at` timestamp",
        "`site_key` string",
        "`operator` struct<",
    ] {
        assert!(ddl.contains(want), "{want} not in\n{ddl}");
    }
}

#[test]
fn routing_by_field_and_unrouted_records() {
    let tmp = Lake::new();
    let schemas = schemas_dir(&tmp);
    let lake = Lake::with_schemas(&schemas);

    let mut taxi = Vec::new();
    let stats = generate(&gen_opts(EventKind::Taxi, 200, 0.0, 0.0, 21), &mut taxi).unwrap();
    assert_eq!(stats.valid, 200);
    let taxi: Vec<Value> = String::from_utf8(taxi)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (sensors, _, _) = sensor_lines(60);
    let with_table = |mut v: Value, t: Value| {
        v.as_object_mut().unwrap().insert("table".into(), t);
        v.to_string()
    };
    let mut lines = Vec::new();
    let mut want_taxi = Vec::new();
    let mut want_sensor = Vec::new();
    let mut unrouted_emails = Vec::new();
    for (i, v) in taxi.into_iter().enumerate() {
        let line = match i % 10 {
            // names no known table, lacks the field, or is not a string
            7 => {
                unrouted_emails.push(v["rider"]["email"].as_str().unwrap().to_owned());
                with_table(v, json!("nope"))
            }
            8 => v.to_string(),
            9 => with_table(v, json!(5)),
            _ => {
                want_taxi.push(v["event_id"].as_str().unwrap().to_owned());
                with_table(v, json!("taxi_trips"))
            }
        };
        lines.push(line);
    }
    for (i, l) in sensors.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        if i % 10 != 9 && i % 25 != 24 {
            want_sensor.push(v["reading_id"].as_str().unwrap().to_owned());
        }
        lines.push(with_table(v, json!("sensor_readings")));
    }
    lines.push("{\"table\": \"taxi_trips\", \"broken".into());
    let input = lake.path("mixed.ndjson");
    fs::write(&input, lines.join("\n") + "\n").unwrap();

    let out = lake.run(&input, &["--route-field", "table"]);
    let taxi_rows = multiset(lake.rows("taxi_trips").iter().map(|r| r.str_at("event_id")));
    assert_eq!(taxi_rows, multiset(want_taxi));
    let sensor_rows = multiset(
        lake.rows("sensor_readings")
            .iter()
            .map(|r| r.str_at("reading_id")),
    );
    assert_eq!(sensor_rows, multiset(want_sensor));

    let unrouted = lake.errors("_unrouted");
    let per_cat = unrouted.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.category.as_str()).or_insert(0u64) += 1;
        m
    });
    // Unparseable JSON names no table either when routing by field.
    assert_eq!(per_cat, BTreeMap::from([(INVALID_JSON, 1), (UNROUTED, 60)]));
    for e in unrouted.iter().filter(|e| e.category == UNROUTED) {
        assert!(
            e.key.starts_with("errors/_unrouted/unrouted/year="),
            "{}",
            e.key
        );
        assert_eq!(e.record.table, None);
        assert!(
            e.raw.get("table").is_some(),
            "Firehose field present even when null"
        );
        // Every table's masks apply to records that reach none.
        let data = e.data_json().unwrap();
        let email = data["rider"]["email"].as_str().unwrap();
        assert!(is_hex64(email), "unrouted record keeps raw email {email}");
        assert_eq!(data["rider"]["phone"], "[REDACTED]");
        assert!(!unrouted_emails.iter().any(|u| u == email));
    }
    assert_eq!(out.errored()["unrouted"], 60);
    // The sensor table's own error records are under its name.
    assert!(!lake.errors("sensor_readings").is_empty());
    assert!(lake.errors("taxi_trips").is_empty());
}

//! `lakehose errors summary` on a known mix of failures: counts per table
//! and category, top violated fields with keywords, filters and JSON output.

mod helpers;

use helpers::*;
use lakehose::gen::{EventKind, GenOptions};
use serde_json::Value;

fn summary(lake: &Lake, extra: &[&str]) -> (bool, String, String) {
    let mut cmd = lakehose_cmd();
    cmd.args(["errors", "summary", "--lake"])
        .arg(lake.root())
        .args(extra);
    let (status, out, err) = run_command(cmd, None);
    (status.success(), out, err)
}

#[test]
fn summary_counts_and_explains_each_category() {
    let lake = Lake::new();
    let opts = GenOptions {
        kind: EventKind::Taxi,
        count: 8000,
        seed: 11,
        bad: 0.1,
        dup: 0.0,
        mixed_ts: true,
    };
    let (input, stats) = lake.gen_input("in.ndjson", &opts);
    lake.run(&input, &[]).assert_ok();

    let (ok, out, err) = summary(&lake, &["--json"]);
    assert!(ok, "{err}");
    let got: Vec<Value> = serde_json::from_str(&out).expect("JSON output");
    let counts: std::collections::BTreeMap<String, u64> = got
        .iter()
        .map(|s| {
            assert_eq!(s["table"], "taxi_trips");
            (
                s["category"].as_str().unwrap().to_owned(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<String, u64> = stats
        .broken
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(counts, want);

    let violations = got
        .iter()
        .find(|s| s["category"] == "schema_violation")
        .unwrap();
    let fields: Vec<(String, String)> = violations["top_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(fields.len(), 5, "the five most violated fields: {fields:?}");
    // every field the generator breaks is a (path, keyword) the report can name
    let known = [
        ("/VendorID", "type"),
        // "two" is also not one of the allowed vendors
        ("/VendorID", "enum"),
        ("/tpep_pickup_datetime", "required"),
        ("/passenger_count", "minimum"),
        ("/fare_amount", "type"),
        ("/rider", "type"),
        ("/store_and_fwd_flag", "enum"),
        ("/rider/email", "format"),
    ];
    for (p, k) in &fields {
        assert!(
            known.contains(&(p.as_str(), k.as_str())),
            "unexpected top field {p} ({k})"
        );
    }
    for s in &got {
        assert!(!s["sample_message"].as_str().unwrap().is_empty());
        assert!(s["first_arrival_ms"].as_i64() <= s["last_arrival_ms"].as_i64());
    }
    let ts = got
        .iter()
        .find(|s| s["category"] == "timestamp_unparseable")
        .unwrap();
    assert_eq!(ts["top_fields"][0]["path"], "/tpep_pickup_datetime");

    // the human report names each category and count
    let (ok, text, _) = summary(&lake, &[]);
    assert!(ok);
    for (cat, n) in &want {
        assert!(
            text.contains(&format!("taxi_trips/{cat}: {n} record")),
            "{text}"
        );
    }
}

#[test]
fn filters_and_bad_arguments() {
    let lake = Lake::new();
    let opts = GenOptions {
        kind: EventKind::Taxi,
        count: 500,
        seed: 3,
        bad: 0.2,
        dup: 0.0,
        mixed_ts: false,
    };
    let (input, _) = lake.gen_input("in.ndjson", &opts);
    lake.run(&input, &[]).assert_ok();
    let cases: [(&[&str], &str); 4] = [
        // no table of that name: nothing to report, not an error
        (&["--table", "app_clicks"], "no error records"),
        // everything arrived before the far future
        (&["--since", "2999-01-01T00:00:00Z"], "no error records"),
        (
            &["--since", "1970-01-01T00:00:00Z"],
            "taxi_trips/schema_violation",
        ),
        (&["--table", "taxi_trips"], "taxi_trips/schema_violation"),
    ];
    for (args, want) in cases {
        let (ok, out, err) = summary(&lake, args);
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains(want), "{args:?}: {out}");
    }
    let (ok, _, err) = summary(&lake, &["--since", "yesterday"]);
    assert!(
        !ok && err.starts_with("lakehose: error:") && err.contains("--since"),
        "{err}"
    );
    let mut cmd = lakehose_cmd();
    cmd.args(["errors", "summary", "--lake", "/nonexistent/lake"]);
    let (status, _, err) = run_command(cmd, None);
    assert!(
        !status.success() && err.contains("/nonexistent/lake"),
        "{err}"
    );
}

#[test]
fn show_prints_masked_records_matching_the_filters() {
    let lake = Lake::new();
    let opts = GenOptions {
        kind: EventKind::Taxi,
        count: 4000,
        seed: 21,
        bad: 0.2,
        dup: 0.0,
        mixed_ts: true,
    };
    let (input, stats) = lake.gen_input("in.ndjson", &opts);
    lake.run(&input, &[]).assert_ok();
    let show = |extra: &[&str]| -> Vec<Value> {
        let mut cmd = lakehose_cmd();
        cmd.args(["errors", "show", "--lake"])
            .arg(lake.root())
            .args(extra);
        let (status, out, err) = run_command(cmd, None);
        assert!(status.success(), "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    };
    let all = show(&[]);
    assert_eq!(all.len() as u64, stats.broken.values().sum::<u64>());
    let by_cat = show(&["--category", "timestamp_unparseable"]);
    assert_eq!(by_cat.len() as u64, stats.broken["timestamp_unparseable"]);
    let emails = show(&["--field", "/rider/email"]);
    assert!(!emails.is_empty());
    for rec in &emails {
        assert!(rec["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "/rider/email"));
        // the broken address itself is masked, so it shows as a keyed hash
        let email = rec["data"]["rider"]["email"].as_str().unwrap();
        assert!(
            email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()),
            "{email}"
        );
        assert_eq!(rec["data"]["rider"]["phone"], "[REDACTED]");
    }
    assert_eq!(show(&["--limit", "3"]).len(), 3);
    assert!(show(&["--until", "1970-01-02T00:00:00Z"]).is_empty());
}

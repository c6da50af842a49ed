//! `lakehose replay` on a local lake: after a schema is relaxed, exactly the
//! now-valid error records land in the lake, once, with their masked fields
//! masked once; the rest fail again (attemptsMade 2); `--dry-run` writes
//! nothing; replaying again, or after a replay killed midway, adds nothing.

mod helpers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use helpers::*;
use lakehose::config::INSECURE_DEV_KEY;
use lakehose::gen::EventKind;
use serde_json::Value;

const TABLE: &str = "taxi_trips";

fn replay(lake: &Lake, schemas: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut c = lakehose_cmd();
    c.arg("replay")
        .arg("--lake")
        .arg(lake.root())
        .arg("--schemas")
        .arg(schemas)
        .arg("--insecure-dev-key")
        .args(extra);
    let (st, out, err) = run_command(c, None);
    assert!(!err.contains("panicked"), "{err}");
    (st.success(), out, err)
}

fn replay_json(lake: &Lake, schemas: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = replay(lake, schemas, &args);
    assert!(ok, "replay failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn setup(seed: u64) -> (Lake, Expected, PathBuf) {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 4000, 0.15, 0.0, seed),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    // Small buffers: several error objects per category.
    lake.run(&input, &["--memory-cap", "1", "--buffer-size", "1"]);
    let fixed = relaxed_schemas(&lake.path("fixed-schemas"));
    (lake, exp, fixed)
}

fn assert_lake_ids(lake: &Lake, want: &BTreeMap<String, u32>) {
    let got = multiset(lake.rows(TABLE).iter().map(|r| r.str_at("event_id")));
    let diff = multiset_diff(want, &got);
    assert!(diff.is_empty(), "lake rows differ: {diff}");
}

#[test]
fn relaxed_schema_replay_lands_exactly_the_now_valid_records_once() {
    let (lake, exp, fixed) = setup(71);
    let relaxed = exp.now_valid();
    assert!(
        relaxed.len() > 20,
        "too few relaxed lines: {}",
        relaxed.len()
    );
    let still_broken = exp
        .broken_by_category()
        .values()
        .map(Vec::len)
        .sum::<usize>()
        - relaxed.len();

    // Dry run: the right counts, nothing written.
    let before = lake.files();
    let dry = replay_json(&lake, &fixed, &["--dry-run"]);
    assert_eq!(lake.files(), before, "--dry-run wrote something");
    let passed: u64 = dry["passed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let failed: u64 = dry["failed_again"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(passed as usize, relaxed.len(), "{dry}");
    assert_eq!(failed as usize, still_broken, "{dry}");
    assert_eq!(
        dry["passed"]["schema_violation"].as_u64().unwrap() as usize,
        relaxed.len()
    );

    // The replay.
    let rep = replay_json(&lake, &fixed, &[]);
    assert_eq!(rep["records"], dry["records"]);
    assert_lake_ids(&lake, &exp.ids_after_replay());

    // Replayed rows: masked once (the same HMAC as live rows), original source.
    let by_id = exp.valid_by_id();
    let _ = by_id; // live rows are checked by the other suites
    for r in lake
        .rows(TABLE)
        .iter()
        .filter(|r| r.key.contains("replay-"))
    {
        let email = r.value["rider"]["email"].as_str().unwrap_or_default();
        assert!(is_hex64(email), "email not masked once: {email:?}");
        let line = relaxed
            .iter()
            .find(|l| l.text.contains(&r.str_at("event_id")))
            .expect("replayed row comes from a relaxed line");
        let orig: Value = serde_json::from_str(&line.text).unwrap();
        assert_eq!(
            email,
            hmac_hex(INSECURE_DEV_KEY, orig["rider"]["email"].as_str().unwrap()),
            "masked twice or with another key"
        );
        assert_eq!(r.value["source"], "in.ndjson");
    }

    // The rest failed again, attempt 2, and are all the summary still counts.
    let again: Vec<_> = lake
        .errors(TABLE)
        .into_iter()
        .filter(|e| e.key.contains("replay-"))
        .collect();
    assert_eq!(again.len(), still_broken);
    assert!(again.iter().all(|e| e.record.attempts_made == 2));
    let mut c = lakehose_cmd();
    c.args(["errors", "summary", "--json", "--lake"])
        .arg(lake.root());
    let (st, out, err) = run_command(c, None);
    assert!(st.success(), "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    let counted: u64 = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, still_broken, "{summary}");

    // A second replay adds nothing to the lake.
    let rows_before = lake.rows(TABLE).len();
    let second = replay_json(&lake, &fixed, &[]);
    assert!(second["objects_already_replayed"].as_u64().unwrap() > 0);
    assert_eq!(lake.rows(TABLE).len(), rows_before);
    assert_lake_ids(&lake, &exp.ids_after_replay());
}

#[test]
fn a_replay_killed_midway_and_run_again_adds_no_duplicate() {
    let (lake, exp, fixed) = setup(72);
    for n in [1, 3] {
        let mut c = lakehose_cmd();
        c.arg("replay")
            .arg("--lake")
            .arg(lake.root())
            .arg("--schemas")
            .arg(&fixed)
            .arg("--insecure-dev-key")
            .env("LAKEHOSE_FAILPOINT", format!("replay_before_marker:{n}"));
        let (st, _, err) = run_command(c, None);
        assert!(!st.success() && err.contains("failpoint"), "{err}");
    }
    let rep = replay_json(&lake, &fixed, &[]);
    assert!(
        rep["objects_already_replayed"].as_u64().unwrap() > 0,
        "{rep}"
    );
    assert_lake_ids(&lake, &exp.ids_after_replay());
}

#[test]
fn purge_removes_replayed_error_objects() {
    let (lake, exp, fixed) = setup(73);
    let originals: Vec<String> = lake
        .files()
        .into_iter()
        .filter(|f| f.starts_with("errors/") && f.ends_with(".ndjson.gz"))
        .collect();
    replay_json(
        &lake,
        &fixed,
        &["--purge", "--category", "schema_violation"],
    );
    let files = lake.files();
    for f in &originals {
        let is_sv = f.contains("/schema_violation/");
        assert_eq!(files.contains(f), !is_sv, "{f}");
    }
    assert_lake_ids(&lake, &exp.ids_after_replay());
}

//! The flush policy as seen from outside: how many objects a partition
//! gets under each setting, and that the rows are the same whatever it is.

mod helpers;

use std::fs;

use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";

fn flushes(out: &RunOutput) -> Vec<String> {
    out.summary()["flushes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn defaults_write_one_object_per_partition_for_a_small_input() {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 3000, 0.05, 0.02, 31),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run(&input, &[]);
    lake.assert_exactly_once(TABLE, &exp);
    let objects = lake.objects(TABLE);
    assert!(objects.len() > 100);
    for (p, keys) in &objects {
        assert_eq!(keys.len(), 1, "{p}: {keys:?}");
    }
    // One error object per category too.
    let error_objects = lake
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".ndjson.gz"))
        .count();
    assert_eq!(error_objects, stats.broken.len());
    assert_eq!(flushes(&out), ["shutdown"]);
}

#[test]
fn zero_interval_flushes_after_every_chunk() {
    let lake = Lake::new();
    // About 7 MB: two 4 MiB read chunks, each flushed on its own.
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 12_000, 0.05, 0.02, 32),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run(&input, &["--buffer-interval", "0"]);
    lake.assert_exactly_once(TABLE, &exp);
    let objects = lake.objects(TABLE);
    let multi = objects.values().filter(|k| k.len() > 1).count();
    assert!(
        multi > objects.len() / 2,
        "{multi} of {} partitions have several objects",
        objects.len()
    );
    assert!(
        flushes(&out).contains(&"interval".to_owned()),
        "{:?}",
        flushes(&out)
    );
}

#[test]
fn memory_cap_splits_partitions_into_more_objects_same_rows() {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        // No duplicates: at this cap the duplicate window is too small to
        // catch repeats this far apart (see tests/duplicates.rs).
        &gen_opts(EventKind::Taxi, 50_000, 0.02, 0.0, 33),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run(&input, &["--memory-cap", "1"]);
    lake.assert_exactly_once(TABLE, &exp);
    let objects = lake.objects(TABLE);
    let total: usize = objects.values().map(Vec::len).sum();
    assert!(
        total > objects.len(),
        "{total} objects for {} partitions",
        objects.len()
    );
    assert!(
        flushes(&out).contains(&"memorycap".to_owned()),
        "{:?}",
        flushes(&out)
    );
    assert_eq!(out.count("data_objects") as usize, total);
}

#[test]
fn stdin_input_works() {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 3000, 0.05, 0.02, 34),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run_cmd(lake.command("-", &[]), Some(fs::read(&input).unwrap()));
    out.assert_ok();
    assert_eq!(out.count("records_in"), 3000);
    // Sequence numbers of stdin records are byte offsets, as for files.
    lake.assert_exactly_once(TABLE, &exp);
    assert!(lake
        .rows(TABLE)
        .iter()
        .all(|r| r.value["source"] == "stdin"));
}

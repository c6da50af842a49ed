//! Producer duplicates: a table with `record_id` keeps one row per id seen
//! within the window, across flushes and across a restart (the window is
//! seeded from the lake); the window's bounds are real bounds.

mod helpers;

use std::io::Write;

use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";
// Small enough to flush often, big enough that the window (shrunk to fit
// the cap) still spans the whole input.
const SMALL_BUFFERS: [&str; 4] = ["--memory-cap", "2", "--buffer-size", "1"];

#[test]
fn duplicates_across_flushes_are_dropped() {
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 6000, 0.02, 0.05, 91),
    );
    assert!(stats.duplicates > 100, "{stats:?}");
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let out = lake.run(&input, &SMALL_BUFFERS);
    assert!(out.count("data_objects") > 20, "want many flushes");
    assert_eq!(out.count("duplicates_dropped"), stats.duplicates);
    lake.assert_exactly_once(TABLE, &exp);
}

#[test]
fn a_restart_remembers_ids_already_in_the_lake() {
    let lake = Lake::new();
    let (input, stats) =
        lake.gen_input("in.ndjson", &gen_opts(EventKind::Taxi, 2000, 0.0, 0.0, 92));
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    lake.run(&input, &[]);
    // A producer retries 300 of those records later: appended to the same
    // file, read by a new run that resumes at the checkpoint.
    let text = std::fs::read_to_string(&input).unwrap();
    let again: Vec<&str> = text.lines().step_by(6).take(300).collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    f.write_all((again.join("\n") + "\n").as_bytes()).unwrap();
    drop(f);
    let out = lake.run(&input, &[]);
    assert_eq!(out.count("records_in"), 300);
    assert_eq!(out.count("duplicates_dropped"), 300);
    assert_eq!(out.count("written"), 0);
    lake.assert_exactly_once(TABLE, &exp);
}

#[test]
fn the_window_is_bounded_and_can_be_turned_off() {
    // (dedup section, expect every repeat dropped?)
    let cases = [
        ("", true),
        ("[dedup]\nwindow_ids = 1\n", false),
        ("[dedup]\nenabled = false\n", false),
    ];
    for (section, all_dropped) in cases {
        let lake = Lake::new();
        let (input, stats) =
            lake.gen_input("in.ndjson", &gen_opts(EventKind::Taxi, 3000, 0.0, 0.05, 93));
        let cfg = lake.path("lakehose.toml");
        std::fs::write(&cfg, section).unwrap();
        let out = lake.run(&input, &["--config", cfg.to_str().unwrap()]);
        let dropped = out.count("duplicates_dropped");
        let rows = lake.rows(TABLE).len() as u64;
        assert_eq!(
            rows + dropped,
            stats.valid + stats.duplicates,
            "{section:?}"
        );
        if all_dropped {
            assert_eq!(dropped, stats.duplicates, "{section:?}");
        } else {
            assert!(
                dropped < stats.duplicates / 2,
                "{section:?}: {dropped} dropped"
            );
        }
    }
}

#[test]
fn a_window_too_big_for_the_memory_cap_is_shrunk_with_a_warning() {
    // At a 1 MiB cap, a full default window (a million ids, ~32 MiB) would
    // leave the buffers nothing: every chunk would flush every partition.
    // Shrunk to half the buffers' share, it costs at most twice the objects
    // of a run with no window at all.
    let lake = Lake::new();
    let (input, _) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 20_000, 0.0, 0.0, 94),
    );
    let cfg = lake.path("off.toml");
    std::fs::write(&cfg, "[dedup]\nenabled = false\n").unwrap();
    let off = lake.run(
        &input,
        &["--memory-cap", "1", "--config", cfg.to_str().unwrap()],
    );
    assert!(!off.stderr.contains("crowd the buffers"), "{}", off.stderr);
    let lake2 = Lake::new();
    let on = lake2.run(&input, &["--memory-cap", "1"]);
    assert!(on.stderr.contains("crowd the buffers"), "{}", on.stderr);
    assert_eq!(on.count("written"), off.count("written"));
    let (with, without) = (on.count("data_objects"), off.count("data_objects"));
    assert!(
        with <= without * 2,
        "{with} objects with the window, {without} without"
    );
}

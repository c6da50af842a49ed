//! Resharding mid-stream: SplitShard, then MergeShards, between runs and
//! puts. Every record lands exactly once, and no child shard is read before
//! each of its parents was read to its end and made durable (so records of
//! one partition key keep their order).

mod helpers;

use helpers::aws::Aws;
use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";

/// Lines `[a, b)` of `text` (whole lines) as a new file.
fn slice(lake: &Lake, text: &str, a: usize, b: usize, name: &str) -> std::path::PathBuf {
    let lines: Vec<&str> = text.lines().collect();
    let p = lake.path(name);
    std::fs::write(&p, lines[a..b.min(lines.len())].join("\n") + "\n").unwrap();
    p
}

#[test]
fn split_then_merge_loses_nothing_and_reads_parents_first() {
    let aws = Aws::new("reshard", 2);
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 3_000, 0.05, 0.02, 61),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    let text = std::fs::read_to_string(&input).unwrap();
    let third = exp.lines.len() / 3;
    let cfg = aws.config(&lake, "");
    let key = ["--partition-key-field", "event_id"];

    // First third on the original two shards, read and checkpointed.
    aws.put(&slice(&lake, &text, 0, third, "a.ndjson"), &key);
    aws.run(&lake, &cfg, &[]);

    // Split shard 0 (closing it), more records; merge one of its children
    // with shard 1 (closing both), the rest.
    let open = aws.open_shards();
    let (s0, s1) = (open[0].0.clone(), open[1].0.clone());
    aws.put(
        &slice(&lake, &text, third, third + third / 2, "b.ndjson"),
        &key,
    );
    aws.split(&s0);
    aws.put(
        &slice(&lake, &text, third + third / 2, 2 * third, "c.ndjson"),
        &key,
    );
    let upper_child = aws
        .open_shards()
        .into_iter()
        .filter(|(id, _, _)| *id != s1)
        .max_by_key(|(_, lo, _)| *lo)
        .expect("children of the split")
        .0;
    aws.merge(&upper_child, &s1);
    aws.put(
        &slice(&lake, &text, 2 * third, exp.lines.len(), "d.ndjson"),
        &key,
    );

    let mut cmd = aws.run_command(&lake, &cfg, &[]);
    cmd.env("LAKEHOSE_LOG", "info");
    let out = lake.run_cmd(cmd, None);
    out.assert_ok();
    // s0, its upper child and s1 were closed with records left to read.
    assert_eq!(out.count("shards_finished"), 3, "{}", out.stderr);

    aws.mirror(&lake);
    exp.assert_delivered_once(&lake, TABLE);

    // Order: a shard's "reading shard" line comes after every parent's
    // "shard finished" line (or the parent finished in an earlier run).
    let log = &out.stderr;
    let started = |id: &str| log.find(&format!("reading shard shard={id}"));
    let finished = |id: &str| {
        log.lines()
            .position(|l| l.contains("shard finished") && l.contains(&format!("\"{id}\"")))
    };
    let line_of = |pos: usize| log[..pos].lines().count();
    let mut checked = 0;
    for (child, parents) in aws.shard_parents() {
        let Some(at) = started(&child) else { continue };
        for p in parents {
            checked += 1;
            let f = finished(&p)
                .unwrap_or_else(|| panic!("{child} started but parent {p} never finished:\n{log}"));
            assert!(
                f < line_of(at),
                "{child} started before {p} finished:\n{log}"
            );
        }
    }
    // Split: 2 children with 1 parent each; merge: 1 child with 2.
    assert_eq!(checked, 4, "parent/child pairs checked:\n{log}");
    // Nothing left: a further run writes nothing.
    assert_eq!(aws.run(&lake, &cfg, &[]).count("written"), 0);
}

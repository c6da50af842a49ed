//! Exactly-once on the AWS path: a run killed at any instant (failpoints
//! between intent, upload and checkpoint; SIGKILL mid-stream) and started
//! again leaves every valid record exactly once on S3 and every invalid one
//! exactly once in the error prefix; a second writer on the same checkpoint
//! is fenced off.

mod helpers;

use std::process::Stdio;

use helpers::aws::Aws;
use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";
/// Small GetRecords batches and tiny buffers: many flushes per run.
const SMALL: &str = "[buffer]\nsize_mib = 1\nmemory_cap_mib = 1\n";
const SMALL_BATCHES: &str = "max_records = 400\n";

/// A stream holding `count` generated events and a config to read it.
fn setup(test: &str, count: u64, seed: u64) -> (Aws, Lake, std::path::PathBuf, Expected) {
    let aws = Aws::new(test, 2);
    let lake = Lake::new();
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        // No producer duplicates: at a 1 MiB cap the duplicate window is
        // shrunk below this input's size (tests/duplicates.rs covers it).
        &gen_opts(EventKind::Taxi, count, 0.05, 0.0, seed),
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    aws.put(&input, &[]);
    let cfg = aws.config(&lake, SMALL);
    // The [kinesis] table of the config gets smaller batches.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[kinesis]\n", &format!("[kinesis]\n{SMALL_BATCHES}"));
    std::fs::write(&cfg, text).unwrap();
    (aws, lake, cfg, exp)
}

/// A clean run completes the lake; a further run adds nothing.
fn recover_and_check(aws: &Aws, lake: &Lake, cfg: &std::path::Path, exp: &Expected, what: &str) {
    aws.run(lake, cfg, &[]);
    aws.mirror(lake);
    exp.assert_delivered_once(lake, TABLE);
    let before = aws.keys();
    let again = aws.run(lake, cfg, &[]);
    assert_eq!(again.count("written"), 0, "{what}: third run wrote rows");
    let after = aws.keys();
    let new: Vec<&String> = after
        .iter()
        .filter(|k| !before.contains(k) && !k.contains("_lakehose/"))
        .collect();
    assert!(new.is_empty(), "{what}: third run added {new:?}");
}

#[test]
fn failpoints_then_restart_deliver_exactly_once() {
    let cases: &[&[(&str, u32)]] = &[
        &[("after_intent", 2)],
        &[("after_put", 5)],
        &[("before_commit", 3)],
        // Crash again while recovering.
        &[("after_put", 9), ("after_put", 2), ("before_commit", 1)],
    ];
    for (i, crashes) in cases.iter().enumerate() {
        let (aws, lake, cfg, exp) = setup(&format!("fp{i}"), 6_000, 21 + i as u64);
        let what = format!("{crashes:?}");
        for (name, n) in *crashes {
            let mut cmd = aws.run_command(&lake, &cfg, &[]);
            cmd.env("LAKEHOSE_FAILPOINT", format!("{name}:{n}"));
            let out = lake.run_cmd(cmd, None);
            assert!(
                !out.status.success()
                    && out
                        .stderr
                        .contains(&format!("failpoint {name}:{n} reached")),
                "{what}: failpoint {name}:{n} not reached: {}",
                out.stderr
            );
        }
        recover_and_check(&aws, &lake, &cfg, &exp, &what);
    }
}

#[test]
fn sigkill_mid_stream_then_restart_delivers_exactly_once() {
    for objects in [1usize, 30] {
        let (aws, lake, cfg, exp) = setup(&format!("kill{objects}"), 8_000, 31);
        let mut cmd = aws.run_command(&lake, &cfg, &[]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let reached = poll_until(POLL_TIMEOUT, || {
            aws.keys()
                .iter()
                .filter(|k| k.ends_with(".parquet"))
                .count()
                >= objects
                || child.try_wait().unwrap().is_some()
        });
        assert!(reached, "no {objects} objects within {POLL_TIMEOUT:?}");
        child.kill().expect("SIGKILL");
        wait_deadline(&mut child, RUN_TIMEOUT);
        recover_and_check(&aws, &lake, &cfg, &exp, &format!("SIGKILL after {objects}"));
    }
}

#[test]
fn sigterm_flushes_and_a_restart_goes_on() {
    let (aws, lake, cfg, exp) = setup("term", 8_000, 41);
    let mut cmd = aws.run_command(&lake, &cfg, &[]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let reached = poll_until(POLL_TIMEOUT, || {
        aws.keys().iter().any(|k| k.ends_with(".parquet")) || child.try_wait().unwrap().is_some()
    });
    assert!(reached);
    send_signal(child.id(), "TERM");
    let status = wait_deadline(&mut child, RUN_TIMEOUT);
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    recover_and_check(&aws, &lake, &cfg, &exp, "SIGTERM");
}

#[test]
fn a_second_writer_on_the_same_checkpoint_is_fenced_off() {
    use lakehose::checkpoint::s3::S3CheckpointStore;
    use lakehose::checkpoint::{CheckpointState, CheckpointStore, Position};
    use lakehose::sink::s3::S3Store;
    use std::sync::Arc;

    let aws = Aws::new("fence", 1);
    let sdk = Arc::new(lakehose::aws::Aws::load(&Default::default()).expect("aws config"));
    let cfg = lakehose::config::S3Config {
        bucket: aws.bucket.clone(),
        force_path_style: true,
        ..Default::default()
    };
    let store = Arc::new(S3Store::new(sdk, &cfg));
    let key = "lake/_lakehose/checkpoints/app/kinesis_s.json".to_string();
    let mut a = S3CheckpointStore::new(store.clone(), key.clone());
    let mut b = S3CheckpointStore::new(store.clone(), key.clone());
    let state = |seq: u128| CheckpointState {
        version: 1,
        shards: [("shardId-000000000000".to_string(), Position::new(seq, 0))].into(),
        ..Default::default()
    };
    // Both start with no checkpoint; the first to create it wins.
    assert_eq!(a.load().unwrap(), None);
    assert_eq!(b.load().unwrap(), None);
    a.save(&state(1)).unwrap();
    let err = b.save(&state(2)).unwrap_err().to_string();
    assert!(err.contains("another writer"), "{err}");
    // Both read it; the first to advance it wins, the other is fenced.
    assert_eq!(a.load().unwrap(), Some(state(1)));
    assert_eq!(b.load().unwrap(), Some(state(1)));
    a.save(&state(3)).unwrap();
    a.save(&state(4)).unwrap(); // the winner goes on
    let err = b.save(&state(5)).unwrap_err().to_string();
    assert!(err.contains("another writer"), "{err}");
    assert_eq!(b.load().unwrap(), Some(state(4)));
}

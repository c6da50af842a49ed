//! Exactly-once across crashes for the file source: whatever instant the
//! writer dies at, a restart on the same lake and input leaves every valid
//! record exactly once in Parquet and every invalid one exactly once in the
//! error prefix; a further run adds nothing. Plus graceful shutdown on
//! SIGTERM / SIGINT when reading stdin.

mod helpers;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use helpers::*;
use lakehose::gen::EventKind;

const TABLE: &str = "taxi_trips";
/// Small buffers: every input chunk ends in memory-cap flushes of many objects.
const SMALL_BUFFERS: [&str; 4] = ["--memory-cap", "1", "--buffer-size", "1"];

fn input(lake: &Lake, count: u64, seed: u64) -> (std::path::PathBuf, Expected) {
    let (path, stats) = lake.gen_input(
        "in.ndjson",
        // No producer duplicates: at a 1 MiB cap the duplicate window is
        // shrunk below this input's size (tests/duplicates.rs covers it).
        &gen_opts(EventKind::Taxi, count, 0.05, 0.0, seed),
    );
    let exp = Expected::from_file(EventKind::Taxi, &path, &stats);
    (path, exp)
}

/// Run again (no failpoint): must succeed and complete the lake; then a
/// third run must find nothing left to do.
fn recover_and_check(lake: &Lake, input: &Path, exp: &Expected, what: &str) -> RunOutput {
    let out = lake.run(input, &SMALL_BUFFERS);
    lake.assert_exactly_once(TABLE, exp);
    let before = lake.files();
    // Recovery also removes what a put cut short left behind.
    let leftovers: Vec<&String> = before.iter().filter(|f| helpers::is_temp(f)).collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporaries left: {leftovers:?}"
    );
    let again = lake.run(input, &SMALL_BUFFERS);
    assert_eq!(
        again.count("records_in"),
        0,
        "{what}: third run re-read input"
    );
    assert_eq!(again.count("objects"), 0, "{what}: third run wrote objects");
    let after = lake.files();
    let new: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert!(new.is_empty(), "{what}: third run added {new:?}");
    lake.assert_exactly_once(TABLE, exp);
    out
}

#[test]
fn failpoints_then_restart_deliver_exactly_once() {
    // Each case: the crashes to go through, in order, before a clean run.
    // At a 1 MiB cap the input is read in 256 KiB chunks (about 30 here),
    // with memory-cap flushes of many small objects along the way, then a
    // shutdown flush.
    let cases: &[&[(&str, u32)]] = &[
        &[("after_intent", 1)],
        &[("after_intent", 3)],
        &[("after_put", 1)],
        &[("after_put", 250)],
        &[("before_commit", 1)],
        &[("before_commit", 3)],
        // Crash again while recovering from a crash.
        &[("after_put", 120), ("after_put", 40)],
        &[("before_commit", 2), ("after_intent", 1), ("after_put", 7)],
    ];
    // Cases run on two threads: the machine has two cores.
    let mut chunks = cases.chunks(cases.len().div_ceil(2));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .filter_map(|_| chunks.next())
            .map(|part| {
                s.spawn(move || {
                    for case in part {
                        failpoint_case(case);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("case thread");
        }
    });
}

fn failpoint_case(crashes: &[(&str, u32)]) {
    let lake = Lake::new();
    let (input, exp) = input(&lake, 12_000, 11);
    let what = format!("{crashes:?}");
    for (name, n) in crashes {
        let mut cmd = lake.command(input.to_str().unwrap(), &SMALL_BUFFERS);
        cmd.env("LAKEHOSE_FAILPOINT", format!("{name}:{n}"));
        let out = lake.run_cmd(cmd, None);
        assert!(
            !out.status.success(),
            "{what}: failpoint {name}:{n} was never reached (run completed)"
        );
        assert!(
            out.stderr
                .contains(&format!("failpoint {name}:{n} reached")),
            "{what}: {}",
            out.stderr
        );
    }
    let out = recover_and_check(&lake, &input, &exp, &what);
    let (last, _) = crashes[crashes.len() - 1];
    if last != "after_intent" {
        // Objects of the interrupted flush exist: their records are not written twice.
        assert!(
            out.count("skipped_delivered") > 0,
            "{what}: nothing skipped on restart"
        );
    }
}

#[test]
fn sigkill_mid_run_then_restart_delivers_exactly_once() {
    // Kill after this many data objects exist, each in a fresh lake.
    for objects in [1usize, 100, 300] {
        let lake = Lake::new();
        let (input, exp) = input(&lake, 12_000, 12);
        let mut cmd = lake.command(input.to_str().unwrap(), &SMALL_BUFFERS);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let reached = poll_until(POLL_TIMEOUT, || {
            lake.parquet_count() >= objects || child.try_wait().unwrap().is_some()
        });
        assert!(reached, "no {objects} objects within {POLL_TIMEOUT:?}");
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
        let status = wait_deadline(&mut child, RUN_TIMEOUT);
        if status.success() {
            // Finished before the kill landed: still a valid (if weaker) check.
            eprintln!("run with {objects} objects finished before SIGKILL");
        }
        recover_and_check(&lake, &input, &exp, &format!("SIGKILL after {objects}"));
    }
}

#[test]
fn sigterm_and_sigint_on_stdin_flush_everything_read() {
    for sig in ["TERM", "INT"] {
        let lake = Lake::new();
        let (path, exp) = input(&lake, 5000, 13);
        let bytes = std::fs::read(&path).unwrap();
        // Default buffering (360 s interval): nothing is written before the signal.
        let mut cmd = lake.command("-", &[]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let (out, err) = capture(&mut child);
        let mut stdin = child.stdin.take().unwrap();
        // Returns once all but a pipe's worth (64 KiB) is read: most records are in.
        stdin.write_all(&bytes).expect("feed stdin");
        stdin.flush().unwrap();
        send_signal(child.id(), sig);
        let status = wait_deadline(&mut child, RUN_TIMEOUT);
        // stdin stays open until the process is gone: it stopped on the signal, not on EOF.
        drop(stdin);
        let run = lake.output(status, join_text(out), join_text(err));
        run.assert_ok();
        assert_eq!(status.code(), Some(0), "SIG{sig}");

        let records_in = run.count("records_in");
        assert!(
            records_in > 1000,
            "SIG{sig}: only {records_in} records processed"
        );
        assert!(records_in <= 5000);
        let rows = lake.rows(TABLE);
        assert_eq!(
            rows.len() as u64,
            run.count("written"),
            "SIG{sig}: rows in the lake vs written"
        );
        let errors = lake.errors(TABLE);
        let errored: u64 = run.errored().values().sum();
        assert_eq!(errors.len() as u64, errored, "SIG{sig}: error records");
        assert_eq!(
            run.count("written") + errored + run.count("duplicates_dropped"),
            records_in,
            "SIG{sig}"
        );
        // What was written is a prefix of the input, each record once.
        let got = multiset(rows.iter().map(|r| r.str_at("event_id")));
        let want = exp.valid_ids();
        for (id, n) in &got {
            assert!(want.get(id).is_some_and(|w| n <= w), "SIG{sig}: {id} x{n}");
        }
        assert!(rows.iter().all(|r| r.value["source"] == "stdin"));
        let max_offset = errors
            .iter()
            .map(|e| e.record.sequence_number.parse::<u64>().unwrap())
            .max()
            .unwrap_or(0);
        assert!(max_offset < bytes.len() as u64);
    }
}

//! The memory cap as seen from outside: a run's peak RSS stays within the
//! cap plus 64 MiB when it reads several times the cap. The peak is the
//! one the run reports in its summary (VmHWM): `getrusage` on children
//! would also count this test process, whose memory a child shares until
//! it execs.

mod helpers;

use helpers::*;
use lakehose::gen::EventKind;

const MIB: u64 = 1 << 20;

#[test]
fn peak_memory_stays_within_the_cap_plus_64_mib() {
    let lake = Lake::new();
    // About 115 MB of events: over three times a 32 MiB cap, so the
    // memory-cap flushes and the duplicate window's shrinking both take
    // part. No producer duplicates: the window a 32 MiB cap leaves (87k
    // ids) would let some through, by design (see tests/duplicates.rs).
    let (input, stats) = lake.gen_input(
        "in.ndjson",
        &gen_opts(EventKind::Taxi, 200_000, 0.01, 0.0, 17),
    );
    let input_bytes = std::fs::metadata(&input).unwrap().len();
    assert!(input_bytes > 3 * 32 * MIB, "{input_bytes} bytes");
    let out = lake.run(&input, &["--memory-cap", "32"]);
    let peak = out.summary()["peak_rss_bytes"]
        .as_u64()
        .expect("peak_rss_bytes");
    assert!(
        peak <= (32 + 64) * MIB,
        "peak RSS {} MiB over the 32 MiB cap + 64 MiB",
        peak / MIB
    );
    // Memory-cap flushes happened, and nothing was lost to them.
    assert!(
        out.summary()["flushes"].get("memorycap").is_some(),
        "{}",
        out.summary()
    );
    let exp = Expected::from_file(EventKind::Taxi, &input, &stats);
    lake.assert_exactly_once("taxi_trips", &exp);
}

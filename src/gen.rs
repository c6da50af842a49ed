//! Deterministic NDJSON event generator behind `lakehose gen taxi|clicks`.
//!
//! A Rust port of `bench/gen_taxi.py` (the `taxi_trips` table) plus a second
//! event kind (the `app_clicks` table). Output is meant for tests, demos and
//! benchmarks, so every run reports exactly what it wrote ([`GenStats`]): how
//! many lines are valid, how many are verbatim duplicates and how many are
//! broken, broken lines keyed by the error category lakehose is expected to
//! assign to them.
//!
//! Lines are rendered straight into a byte buffer rather than through
//! `serde_json::Value`: every string we emit is plain ASCII that needs no JSON
//! escaping, and skipping the intermediate tree keeps the generator well ahead
//! of the pipeline it feeds. Numbers are written the way `serde_json` writes
//! them (tests check this).

use std::collections::BTreeMap;
use std::io::{self, Write};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which table's events to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// NYC-taxi-like trips (`taxi_trips`), as in `bench/gen_taxi.py`.
    Taxi,
    /// App click-stream events (`app_clicks`).
    Clicks,
}

/// Options for [`generate`].
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub kind: EventKind,
    pub count: u64,
    pub seed: u64,
    /// Fraction (0..=1) of records broken in assorted ways.
    pub bad: f64,
    /// Fraction (0..=1) of records that repeat an earlier record verbatim (producer retries).
    pub dup: f64,
    /// Timestamps in assorted formats (epoch s, epoch ms, naive, offset, fractional Z); false = RFC 3339 Z only.
    pub mixed_ts: bool,
}

/// What was generated, so tests know the expected outcome exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Lines written.
    pub total: u64,
    /// Lines that are valid, first occurrences.
    pub valid: u64,
    /// Verbatim repeats of an earlier valid line.
    pub duplicates: u64,
    /// Broken lines per expected lakehose error category: keys "invalid_json",
    /// "schema_violation", "timestamp_unparseable". A category appears only
    /// once at least one line of it was written.
    pub broken: BTreeMap<&'static str, u64>,
}

/// Write `opts.count` NDJSON lines to `out` (one event per line, '\n' terminated). Deterministic for a given seed.
///
/// Output is buffered internally in 64 KiB chunks and `out` is flushed at the
/// end, so an unbuffered writer (stdout, a file) costs no extra syscalls per
/// line. Fails with `InvalidInput` if `bad` or `dup` is not within 0..=1.
///
/// Determinism holds for a given build target: the RNG is `SmallRng`, whose
/// stream is fixed by the locked `rand` version but differs between 32- and
/// 64-bit platforms.
pub fn generate(opts: &GenOptions, out: &mut impl std::io::Write) -> std::io::Result<GenStats> {
    generate_with(opts, out, |_| {})
}

const INVALID_JSON: &str = "invalid_json";
const SCHEMA_VIOLATION: &str = "schema_violation";
const TIMESTAMP_UNPARSEABLE: &str = "timestamp_unparseable";

/// Valid lines kept as duplicate candidates; bounds memory for any `count`.
const DUP_CANDIDATES: usize = 10_000;
/// Bytes accumulated before handing a chunk to the caller's writer.
const FLUSH_AT: usize = 64 * 1024;

/// 2024-03-01T00:00:00Z, the start of both event windows (as in gen_taxi.py).
const BASE_EPOCH_S: i64 = days_from_civil(2024, 3, 1) * 86_400;
const DAY_S: i64 = 86_400;

/// How one generated line turned out; lets tests label every line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Valid,
    Duplicate,
    Broken(&'static str),
}

fn generate_with<W: Write + ?Sized>(
    opts: &GenOptions,
    out: &mut W,
    mut on_line: impl FnMut(Outcome),
) -> io::Result<GenStats> {
    check_fraction("bad", opts.bad)?;
    check_fraction("dup", opts.dup)?;

    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut stats = GenStats::default();
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_AT + 4096);
    // With dup == 0 the pool would never be read: skip the copies.
    let mut pool = DupPool::default();
    let keep_dups = opts.dup > 0.0;

    for _ in 0..opts.count {
        let start = buf.len();
        // Same decision order as gen_taxi.py: retry first, then maybe corrupt.
        let outcome = if !pool.lines.is_empty() && rng.gen::<f64>() < opts.dup {
            buf.extend_from_slice(pool.pick(&mut rng));
            Outcome::Duplicate
        } else {
            let category = match opts.kind {
                EventKind::Taxi => {
                    let rec = Taxi::random(&mut rng, opts.mixed_ts);
                    let brk = (rng.gen::<f64>() < opts.bad)
                        .then(|| TaxiBreak::ALL[rng.gen_range(0..TaxiBreak::ALL.len())]);
                    rec.write(&mut buf, brk);
                    brk.map(TaxiBreak::category)
                }
                EventKind::Clicks => {
                    let rec = Click::random(&mut rng, opts.mixed_ts);
                    let brk = (rng.gen::<f64>() < opts.bad)
                        .then(|| ClickBreak::ALL[rng.gen_range(0..ClickBreak::ALL.len())]);
                    rec.write(&mut buf, brk);
                    brk.map(ClickBreak::category)
                }
            };
            match category {
                Some(c) => Outcome::Broken(c),
                None => {
                    if keep_dups {
                        pool.offer(&buf[start..], &mut rng);
                    }
                    Outcome::Valid
                }
            }
        };
        buf.push(b'\n');

        stats.total += 1;
        match outcome {
            Outcome::Valid => stats.valid += 1,
            Outcome::Duplicate => stats.duplicates += 1,
            Outcome::Broken(c) => *stats.broken.entry(c).or_insert(0) += 1,
        }
        on_line(outcome);

        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out.write_all(&buf)?;
    }
    out.flush()?;
    Ok(stats)
}

/// `gen_range`/`gen_bool` would panic on out-of-range input; a CLI typo such
/// as `--bad 5` (meaning 5%) deserves an error, not a panic or a silent clamp.
fn check_fraction(name: &str, v: f64) -> io::Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--{name} must be a fraction within 0..=1, got {v}"),
        ))
    }
}

/// Reservoir sample (Algorithm R) of valid lines: duplicates can refer to any
/// earlier valid line, not just the first 10,000, while memory stays bounded.
#[derive(Default)]
struct DupPool {
    lines: Vec<Vec<u8>>,
    seen: u64,
}

impl DupPool {
    fn offer(&mut self, line: &[u8], rng: &mut SmallRng) {
        self.seen += 1;
        if self.lines.len() < DUP_CANDIDATES {
            self.lines.push(line.to_vec());
        } else {
            let j = rng.gen_range(0..self.seen);
            if let Some(slot) = self.lines.get_mut(j as usize) {
                // Reuse the slot's allocation: no churn on long runs.
                slot.clear();
                slot.extend_from_slice(line);
            }
        }
    }

    fn pick(&self, rng: &mut SmallRng) -> &[u8] {
        &self.lines[rng.gen_range(0..self.lines.len())]
    }
}

// ---------------------------------------------------------------------------
// Taxi trips
// ---------------------------------------------------------------------------

const VENDORS: [u8; 6] = [1, 2, 2, 2, 6, 7];
const PASSENGERS: [u8; 8] = [1, 1, 1, 2, 3, 4, 5, 6];
const RATECODES: [u8; 8] = [1, 1, 1, 2, 3, 4, 5, 99];
const FLAGS: [&str; 4] = ["N", "N", "N", "Y"];
const PAYMENTS: [u8; 5] = [1, 1, 2, 3, 4];
const TIP_PERCENT: [u32; 4] = [0, 10, 15, 20];
// The next four mirror gen_taxi.py's literals (ints and floats mixed) as
// Python's json.dumps renders them, so both generators emit the same values.
const EXTRAS: [&str; 4] = ["0", "0.5", "1", "2.5"];
const TOLLS: [&str; 4] = ["0", "0", "0", "6.94"];
const CONGESTION: [&str; 2] = ["0", "2.5"];
const AIRPORT_FEES: [&str; 3] = ["0", "0", "1.75"];
const TAGS: [&str; 5] = ["airport", "night", "shared", "accessible", "ev"];

struct Taxi {
    event_id: [u8; 36],
    vendor: u8,
    pickup: Ts,
    dropoff: Ts,
    passengers: u8,
    distance_cents: u64,
    ratecode: u8,
    flag: &'static str,
    pu_location: u64,
    do_location: u64,
    payment: u8,
    fare_cents: u64,
    extra: &'static str,
    tip_cents: u64,
    tolls: &'static str,
    total_cents: u64,
    congestion: &'static str,
    airport_fee: &'static str,
    rider_n: u64,
    phone_n: u64,
    card_tail: u64,
    tags: Pick2,
}

impl Taxi {
    fn random(rng: &mut SmallRng, mixed_ts: bool) -> Self {
        let pickup_s = BASE_EPOCH_S + rng.gen_range(0..3 * DAY_S);
        let dropoff_s = pickup_s + rng.gen_range(60..3600);
        // Money is drawn in whole cents: round(uniform(3, 80), 2) without
        // float rounding drift, and total/tip stay exact sums.
        let fare_cents = rng.gen_range(300..=8000);
        let tip_cents = (fare_cents * u64::from(choose(rng, &TIP_PERCENT)) + 50) / 100;
        Taxi {
            event_id: uuid_v4(rng),
            vendor: choose(rng, &VENDORS),
            pickup: Ts::taxi(rng, pickup_s, mixed_ts),
            dropoff: Ts::taxi(rng, dropoff_s, mixed_ts),
            passengers: choose(rng, &PASSENGERS),
            distance_cents: rng.gen_range(10..=3000),
            ratecode: choose(rng, &RATECODES),
            flag: choose(rng, &FLAGS),
            pu_location: rng.gen_range(1..266),
            do_location: rng.gen_range(1..266),
            payment: choose(rng, &PAYMENTS),
            fare_cents,
            extra: choose(rng, &EXTRAS),
            tip_cents,
            tolls: choose(rng, &TOLLS),
            // mta_tax 0.5 + improvement_surcharge 1.0, as in gen_taxi.py.
            total_cents: fare_cents + tip_cents + 150,
            congestion: choose(rng, &CONGESTION),
            airport_fee: choose(rng, &AIRPORT_FEES),
            rider_n: rng.gen_range(0..1_000_000),
            phone_n: rng.gen_range(0..10_000),
            card_tail: rng.gen_range(0..1_000_000_000_000_000),
            tags: Pick2::random(rng, TAGS.len()),
        }
    }

    fn write(&self, b: &mut Vec<u8>, brk: Option<TaxiBreak>) {
        use TaxiBreak::*;
        let id = &self.event_id[..];
        if brk == Some(Truncated) {
            // Exactly gen_taxi.py's truncated line (its spacing included).
            b.extend_from_slice(b"{\"event_id\": \"");
            b.extend_from_slice(id);
            b.extend_from_slice(b"\", \"VendorID\": 2, \"fare");
            return;
        }
        b.push(b'{');
        key(b, "event_id");
        quoted_bytes(b, id);
        key(b, "VendorID");
        match brk {
            Some(VendorType) => quoted(b, "two"),
            _ => uint(b, self.vendor.into()),
        }
        match brk {
            Some(PickupMissing) => {}
            Some(PickupUnparseable) => {
                key(b, "tpep_pickup_datetime");
                quoted(b, "yesterday");
            }
            _ => {
                key(b, "tpep_pickup_datetime");
                self.pickup.write(b);
            }
        }
        key(b, "tpep_dropoff_datetime");
        self.dropoff.write(b);
        key(b, "passenger_count");
        match brk {
            Some(PassengersNegative) => b.extend_from_slice(b"-3"),
            _ => uint(b, self.passengers.into()),
        }
        key(b, "trip_distance");
        cents(b, self.distance_cents);
        key(b, "RatecodeID");
        uint(b, self.ratecode.into());
        key(b, "store_and_fwd_flag");
        quoted(
            b,
            if brk == Some(FlagEnum) {
                "MAYBE"
            } else {
                self.flag
            },
        );
        key(b, "PULocationID");
        uint(b, self.pu_location);
        key(b, "DOLocationID");
        uint(b, self.do_location);
        key(b, "payment_type");
        uint(b, self.payment.into());
        key(b, "fare_amount");
        match brk {
            Some(FareNull) => b.extend_from_slice(b"null"),
            _ => cents(b, self.fare_cents),
        }
        key(b, "extra");
        raw(b, self.extra);
        key(b, "mta_tax");
        raw(b, "0.5");
        key(b, "tip_amount");
        cents(b, self.tip_cents);
        key(b, "tolls_amount");
        raw(b, self.tolls);
        key(b, "improvement_surcharge");
        raw(b, "1.0");
        key(b, "total_amount");
        cents(b, self.total_cents);
        key(b, "congestion_surcharge");
        raw(b, self.congestion);
        key(b, "Airport_fee");
        raw(b, self.airport_fee);
        key(b, "rider");
        if brk == Some(RiderNotObject) {
            quoted(b, "anonymous");
        } else {
            b.push(b'{');
            key(b, "email");
            if brk == Some(EmailFormat) {
                quoted(b, "not-an-email");
            } else {
                b.extend_from_slice(b"\"rider");
                uint(b, self.rider_n);
                b.extend_from_slice(b"@example.com\"");
            }
            key(b, "phone");
            b.extend_from_slice(b"\"+1-212-555-");
            padded(b, self.phone_n, 4);
            b.extend_from_slice(b"\"}");
        }
        key(b, "card_number");
        b.extend_from_slice(b"\"4");
        padded(b, self.card_tail, 15);
        b.push(b'"');
        key(b, "tags");
        b.push(b'[');
        for (i, t) in self.tags.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            quoted(b, TAGS[t]);
        }
        b.extend_from_slice(b"]}");
    }
}

/// Ways a taxi record is broken; uniform over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaxiBreak {
    VendorType,
    PickupMissing,
    PassengersNegative,
    PickupUnparseable,
    FareNull,
    Truncated,
    RiderNotObject,
    FlagEnum,
    EmailFormat,
}

impl TaxiBreak {
    const ALL: [TaxiBreak; 9] = [
        TaxiBreak::VendorType,
        TaxiBreak::PickupMissing,
        TaxiBreak::PassengersNegative,
        TaxiBreak::PickupUnparseable,
        TaxiBreak::FareNull,
        TaxiBreak::Truncated,
        TaxiBreak::RiderNotObject,
        TaxiBreak::FlagEnum,
        TaxiBreak::EmailFormat,
    ];

    fn category(self) -> &'static str {
        match self {
            TaxiBreak::Truncated => INVALID_JSON,
            // The schema accepts any string for the pickup time; only the
            // timestamp parser rejects "yesterday".
            TaxiBreak::PickupUnparseable => TIMESTAMP_UNPARSEABLE,
            _ => SCHEMA_VIOLATION,
        }
    }
}

// ---------------------------------------------------------------------------
// App clicks
// ---------------------------------------------------------------------------

const PLATFORMS: [&str; 3] = ["ios", "android", "web"];
const STATIC_PAGES: [&str; 5] = ["/", "/search", "/cart", "/checkout", "/account"];
const EXPERIMENTS: [&str; 5] = ["exp_a", "exp_b", "exp_c", "exp_d", "exp_e"];
const VARIANTS: [&str; 2] = ["control", "treatment"];

enum Page {
    Static(&'static str),
    Product(u64),
}

struct Click {
    click_id: [u8; 36],
    ts: Ts,
    platform: &'static str,
    page: Page,
    user_id: u64,
    ip: [u8; 3],
    duration_ms: u64,
    experiments: Pick2,
    variants: [&'static str; 2],
}

impl Click {
    fn random(rng: &mut SmallRng, mixed_ts: bool) -> Self {
        let ms = BASE_EPOCH_S * 1000 + rng.gen_range(0..2 * DAY_S * 1000);
        let fmt = if mixed_ts && rng.gen::<bool>() {
            TsFmt::FracZ
        } else {
            TsFmt::EpochMs
        };
        // Product pages are the long tail; a few fixed pages get the rest.
        let page = if rng.gen_range(0..2) == 0 {
            Page::Product(rng.gen_range(1..=5000))
        } else {
            Page::Static(choose(rng, &STATIC_PAGES))
        };
        Click {
            click_id: uuid_v4(rng),
            ts: Ts { epoch_ms: ms, fmt },
            platform: choose(rng, &PLATFORMS),
            page,
            user_id: rng.gen_range(1..=1_000_000),
            ip: [rng.gen(), rng.gen(), rng.gen_range(1..=254)],
            duration_ms: rng.gen_range(0..=600_000),
            experiments: Pick2::random(rng, EXPERIMENTS.len()),
            variants: [choose(rng, &VARIANTS), choose(rng, &VARIANTS)],
        }
    }

    fn write(&self, b: &mut Vec<u8>, brk: Option<ClickBreak>) {
        use ClickBreak::*;
        let id = &self.click_id[..];
        if brk == Some(Truncated) {
            // Cut mid-key, like the taxi truncation.
            b.extend_from_slice(b"{\"click_id\": \"");
            b.extend_from_slice(id);
            b.extend_from_slice(b"\", \"ts\": ");
            int(b, self.ts.epoch_ms);
            b.extend_from_slice(b", \"plat");
            return;
        }
        b.push(b'{');
        if brk != Some(ClickIdMissing) {
            key(b, "click_id");
            quoted_bytes(b, id);
        }
        key(b, "ts");
        match brk {
            Some(TsUnparseable) => quoted(b, "soon"),
            _ => self.ts.write(b),
        }
        key(b, "platform");
        quoted(
            b,
            if brk == Some(PlatformEnum) {
                "fax"
            } else {
                self.platform
            },
        );
        key(b, "page");
        match self.page {
            Page::Static(p) => quoted(b, p),
            Page::Product(n) => {
                b.extend_from_slice(b"\"/products/");
                uint(b, n);
                b.push(b'"');
            }
        }
        key(b, "user");
        b.push(b'{');
        key(b, "id");
        uint(b, self.user_id);
        key(b, "email");
        // Same user, same address: masking/tokenisation can be checked for consistency.
        b.extend_from_slice(b"\"user");
        uint(b, self.user_id);
        b.extend_from_slice(b"@example.org\"");
        key(b, "ip");
        b.extend_from_slice(b"\"10.");
        for (i, octet) in self.ip.iter().enumerate() {
            if i > 0 {
                b.push(b'.');
            }
            uint(b, (*octet).into());
        }
        b.extend_from_slice(b"\"}");
        key(b, "duration_ms");
        match brk {
            Some(NegativeDuration) => b.extend_from_slice(b"-1"),
            _ => uint(b, self.duration_ms),
        }
        key(b, "experiments");
        b.push(b'[');
        for (i, e) in self.experiments.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.push(b'{');
            key(b, "name");
            quoted(b, EXPERIMENTS[e]);
            key(b, "variant");
            quoted(b, self.variants[i]);
            b.push(b'}');
        }
        b.extend_from_slice(b"]}");
    }
}

/// Ways a click record is broken; uniform over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClickBreak {
    PlatformEnum,
    NegativeDuration,
    TsUnparseable,
    Truncated,
    ClickIdMissing,
}

impl ClickBreak {
    const ALL: [ClickBreak; 5] = [
        ClickBreak::PlatformEnum,
        ClickBreak::NegativeDuration,
        ClickBreak::TsUnparseable,
        ClickBreak::Truncated,
        ClickBreak::ClickIdMissing,
    ];

    fn category(self) -> &'static str {
        match self {
            ClickBreak::Truncated => INVALID_JSON,
            ClickBreak::TsUnparseable => TIMESTAMP_UNPARSEABLE,
            _ => SCHEMA_VIOLATION,
        }
    }
}

// ---------------------------------------------------------------------------
// Shared pieces: random helpers, timestamps, JSON writing
// ---------------------------------------------------------------------------

fn choose<T: Copy>(rng: &mut SmallRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// A v4 UUID from the seeded RNG (not the OS), so output stays reproducible.
fn uuid_v4(rng: &mut SmallRng) -> [u8; 36] {
    let id = uuid::Builder::from_random_bytes(rng.gen::<u128>().to_le_bytes()).into_uuid();
    let mut text = [0u8; 36];
    id.hyphenated().encode_lower(&mut text);
    text
}

/// 0-2 distinct indices into a list of `n` items, in random order
/// (Python's `r.sample(items, r.randrange(0, 3))`).
#[derive(Clone, Copy)]
struct Pick2 {
    len: usize,
    idx: [usize; 2],
}

impl Pick2 {
    fn random(rng: &mut SmallRng, n: usize) -> Self {
        let len = rng.gen_range(0..3);
        let mut idx = [0; 2];
        if len > 0 {
            idx[0] = rng.gen_range(0..n);
        }
        if len > 1 {
            // Draw from the n-1 remaining items, skipping over the first pick.
            let j = rng.gen_range(0..n - 1);
            idx[1] = if j >= idx[0] { j + 1 } else { j };
        }
        Pick2 { len, idx }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.idx[..self.len].iter().copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsFmt {
    /// "2024-03-01T00:00:00Z"
    Rfc3339Z,
    /// 1709251200
    EpochS,
    /// 1709251200000
    EpochMs,
    /// "2024-03-01 00:00:00" (UTC implied)
    Naive,
    /// "2024-02-29T19:00:00-05:00" (same instant)
    Offset,
    /// "2024-03-01T00:00:00.000Z"
    FracZ,
}

#[derive(Debug, Clone, Copy)]
struct Ts {
    epoch_ms: i64,
    fmt: TsFmt,
}

impl Ts {
    const MIXED: [TsFmt; 5] = [
        TsFmt::EpochS,
        TsFmt::EpochMs,
        TsFmt::Naive,
        TsFmt::Offset,
        TsFmt::FracZ,
    ];

    fn taxi(rng: &mut SmallRng, epoch_s: i64, mixed: bool) -> Self {
        let fmt = if mixed {
            choose(rng, &Self::MIXED)
        } else {
            TsFmt::Rfc3339Z
        };
        Ts {
            epoch_ms: epoch_s * 1000,
            fmt,
        }
    }

    fn write(&self, b: &mut Vec<u8>) {
        let secs = self.epoch_ms.div_euclid(1000);
        match self.fmt {
            TsFmt::EpochS => int(b, secs),
            TsFmt::EpochMs => int(b, self.epoch_ms),
            TsFmt::Rfc3339Z => {
                b.push(b'"');
                civil_time(b, secs, b'T');
                b.extend_from_slice(b"Z\"");
            }
            TsFmt::Naive => {
                b.push(b'"');
                civil_time(b, secs, b' ');
                b.push(b'"');
            }
            TsFmt::Offset => {
                b.push(b'"');
                civil_time(b, secs - 5 * 3600, b'T');
                b.extend_from_slice(b"-05:00\"");
            }
            TsFmt::FracZ => {
                b.push(b'"');
                civil_time(b, secs, b'T');
                b.push(b'.');
                padded(b, self.epoch_ms.rem_euclid(1000) as u64, 3);
                b.extend_from_slice(b"Z\"");
            }
        }
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`); `const` so the base instant is computed at compile time.
const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`] (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// "YYYY-MM-DD<sep>HH:MM:SS" for a UTC epoch second (years 0..=9999).
fn civil_time(b: &mut Vec<u8>, epoch_s: i64, sep: u8) {
    let (y, m, d) = civil_from_days(epoch_s.div_euclid(DAY_S));
    let sod = epoch_s.rem_euclid(DAY_S) as u64;
    debug_assert!((0..=9999).contains(&y), "year {y} outside 4-digit range");
    padded(b, y as u64, 4);
    b.push(b'-');
    padded(b, m.into(), 2);
    b.push(b'-');
    padded(b, d.into(), 2);
    b.push(sep);
    padded(b, sod / 3600, 2);
    b.push(b':');
    padded(b, sod / 60 % 60, 2);
    b.push(b':');
    padded(b, sod % 60, 2);
}

/// Object key, with the separating comma unless it opens the object.
fn key(b: &mut Vec<u8>, k: &str) {
    if b.last() != Some(&b'{') {
        b.push(b',');
    }
    b.push(b'"');
    b.extend_from_slice(k.as_bytes());
    b.extend_from_slice(b"\":");
}

/// A JSON string; only for our own text, which never needs escaping.
fn quoted(b: &mut Vec<u8>, s: &str) {
    quoted_bytes(b, s.as_bytes());
}

fn quoted_bytes(b: &mut Vec<u8>, s: &[u8]) {
    debug_assert!(s
        .iter()
        .all(|&c| c >= 0x20 && c != b'"' && c != b'\\' && c.is_ascii()));
    b.push(b'"');
    b.extend_from_slice(s);
    b.push(b'"');
}

/// A pre-rendered JSON literal (number).
fn raw(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
}

fn uint(b: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&tmp[i..]);
}

fn int(b: &mut Vec<u8>, v: i64) {
    if v < 0 {
        b.push(b'-');
    }
    uint(b, v.unsigned_abs());
}

/// `v` zero-padded to exactly `width` digits (`v < 10^width`).
fn padded(b: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = b.len();
    b.resize(start + width, b'0');
    for slot in b[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    debug_assert_eq!(v, 0, "value wider than {width} digits");
}

/// `cents / 100` as serde_json prints that f64: shortest round-trip form,
/// which for two-decimal values is "12.5", "12.05" or "12.0".
fn cents(b: &mut Vec<u8>, c: u64) {
    uint(b, c / 100);
    b.push(b'.');
    let frac = c % 100;
    if frac.is_multiple_of(10) {
        b.push(b'0' + (frac / 10) as u8);
    } else {
        padded(b, frac, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    fn opts(kind: EventKind, count: u64) -> GenOptions {
        GenOptions {
            kind,
            count,
            seed: 42,
            bad: 0.0,
            dup: 0.0,
            mixed_ts: false,
        }
    }

    /// Output lines (without '\n') paired with what the generator says they are.
    fn run(o: &GenOptions) -> (Vec<(String, Outcome)>, GenStats) {
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        let stats = generate_with(o, &mut out, |oc| outcomes.push(oc)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), outcomes.len());
        (lines.into_iter().zip(outcomes).collect(), stats)
    }

    fn bytes(o: &GenOptions) -> Vec<u8> {
        let mut out = Vec::new();
        generate(o, &mut out).unwrap();
        out
    }

    const TAXI_KEYS: [&str; 23] = [
        "event_id",
        "VendorID",
        "tpep_pickup_datetime",
        "tpep_dropoff_datetime",
        "passenger_count",
        "trip_distance",
        "RatecodeID",
        "store_and_fwd_flag",
        "PULocationID",
        "DOLocationID",
        "payment_type",
        "fare_amount",
        "extra",
        "mta_tax",
        "tip_amount",
        "tolls_amount",
        "improvement_surcharge",
        "total_amount",
        "congestion_surcharge",
        "Airport_fee",
        "rider",
        "card_number",
        "tags",
    ];
    const CLICK_KEYS: [&str; 7] = [
        "click_id",
        "ts",
        "platform",
        "page",
        "user",
        "duration_ms",
        "experiments",
    ];

    /// serde_json's default Map sorts keys, so check order on the raw text.
    fn assert_key_order(line: &str, keys: &[&str]) {
        let mut last = 0;
        for k in keys {
            let pos = line
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing in {line}"));
            assert!(pos >= last, "{k} out of order in {line}");
            last = pos;
        }
    }

    fn is_uuid_v4(v: &Value) -> bool {
        let Some(s) = v.as_str() else { return false };
        s.len() == 36
            && s == s.to_ascii_lowercase()
            && uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
    }

    /// Parse "YYYY-MM-DDTHH:MM:SSZ" back to epoch seconds.
    fn parse_rfc3339_z(s: &str) -> i64 {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z') && &s[10..11] == "T", "{s}");
        let days = days_from_civil(n(0..4), n(5..7) as u32, n(8..10) as u32);
        days * DAY_S + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
    }

    fn check_valid_taxi(line: &str) {
        assert_key_order(line, &TAXI_KEYS);
        let v: Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), TAXI_KEYS.len(), "{line}");
        assert!(is_uuid_v4(&o["event_id"]), "{line}");
        assert!([1, 2, 6, 7].contains(&o["VendorID"].as_u64().unwrap()));
        for k in ["tpep_pickup_datetime", "tpep_dropoff_datetime"] {
            assert!(o[k].is_string() || o[k].is_u64(), "{line}");
        }
        assert!((1..=6).contains(&o["passenger_count"].as_u64().unwrap()));
        let dist = o["trip_distance"].as_f64().unwrap();
        assert!((0.1..=30.0).contains(&dist));
        assert!(o["RatecodeID"].is_u64());
        assert!(["Y", "N"].contains(&o["store_and_fwd_flag"].as_str().unwrap()));
        for k in ["PULocationID", "DOLocationID"] {
            assert!((1..266).contains(&o[k].as_u64().unwrap()));
        }
        assert!(o["payment_type"].is_u64());
        for k in [
            "fare_amount",
            "extra",
            "mta_tax",
            "tip_amount",
            "tolls_amount",
            "improvement_surcharge",
            "total_amount",
            "congestion_surcharge",
            "Airport_fee",
        ] {
            assert!(o[k].as_f64().unwrap() >= 0.0, "{k} in {line}");
        }
        let fare = o["fare_amount"].as_f64().unwrap();
        assert!((3.0..=80.0).contains(&fare));
        let total = o["total_amount"].as_f64().unwrap();
        let tip = o["tip_amount"].as_f64().unwrap();
        assert!((total - (fare + tip + 1.5)).abs() < 1e-9);
        let rider = o["rider"].as_object().unwrap();
        let email = rider["email"].as_str().unwrap();
        assert!(email.starts_with("rider") && email.ends_with("@example.com"));
        let phone = rider["phone"].as_str().unwrap();
        assert!(phone.starts_with("+1-212-555-") && phone.len() == 15);
        let card = o["card_number"].as_str().unwrap();
        assert!(card.len() == 16 && card.starts_with('4'));
        assert!(card.bytes().all(|c| c.is_ascii_digit()));
        let tags: Vec<&str> = o["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.len() <= 2 && tags.iter().all(|t| TAGS.contains(t)));
        assert!(tags.len() < 2 || tags[0] != tags[1]);
    }

    fn check_valid_click(line: &str) {
        assert_key_order(line, &CLICK_KEYS);
        let v: Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), CLICK_KEYS.len(), "{line}");
        assert!(is_uuid_v4(&o["click_id"]), "{line}");
        assert!(o["ts"].is_string() || o["ts"].is_u64(), "{line}");
        assert!(PLATFORMS.contains(&o["platform"].as_str().unwrap()));
        let page = o["page"].as_str().unwrap();
        assert!(STATIC_PAGES.contains(&page) || page.starts_with("/products/"));
        let user = o["user"].as_object().unwrap();
        let id = user["id"].as_u64().unwrap();
        assert!((1..=1_000_000).contains(&id));
        assert_eq!(user["email"], format!("user{id}@example.org"));
        let ip = user["ip"].as_str().unwrap();
        let octets: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
        assert!(octets.len() == 4 && octets[0] == 10, "{ip}");
        assert!(o["duration_ms"].as_u64().unwrap() <= 600_000);
        let exps = o["experiments"].as_array().unwrap();
        assert!(exps.len() <= 2);
        for e in exps {
            assert!(EXPERIMENTS.contains(&e["name"].as_str().unwrap()));
            assert!(VARIANTS.contains(&e["variant"].as_str().unwrap()));
        }
        assert!(exps.len() < 2 || exps[0]["name"] != exps[1]["name"]);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        for kind in [EventKind::Taxi, EventKind::Clicks] {
            let o = GenOptions {
                bad: 0.1,
                dup: 0.1,
                mixed_ts: true,
                ..opts(kind, 3000)
            };
            let a = bytes(&o);
            assert!(!a.is_empty());
            assert_eq!(a, bytes(&o));
            assert_ne!(a, bytes(&GenOptions { seed: 43, ..o }));
        }
    }

    #[test]
    fn stats_account_for_every_line() {
        for kind in [EventKind::Taxi, EventKind::Clicks] {
            let o = GenOptions {
                bad: 0.2,
                dup: 0.15,
                mixed_ts: true,
                ..opts(kind, 5000)
            };
            let (lines, stats) = run(&o);
            let broken: u64 = stats.broken.values().sum();
            assert_eq!(stats.total, 5000);
            assert_eq!(stats.total, lines.len() as u64);
            assert_eq!(stats.total, stats.valid + stats.duplicates + broken);
            let count = |want: Outcome| lines.iter().filter(|(_, o)| *o == want).count() as u64;
            assert_eq!(stats.valid, count(Outcome::Valid));
            assert_eq!(stats.duplicates, count(Outcome::Duplicate));
            for (cat, n) in &stats.broken {
                assert_eq!(*n, count(Outcome::Broken(cat)), "{cat}");
            }
            // Fractions land roughly where asked.
            assert!((500..1000).contains(&broken), "broken {broken}");
            assert!(
                (500..1000).contains(&stats.duplicates),
                "dups {}",
                stats.duplicates
            );
        }
    }

    #[test]
    fn valid_lines_have_every_field() {
        for mixed_ts in [false, true] {
            let o = GenOptions {
                bad: 0.3,
                dup: 0.2,
                mixed_ts,
                ..opts(EventKind::Taxi, 2000)
            };
            for (line, oc) in run(&o).0 {
                if !matches!(oc, Outcome::Broken(_)) {
                    check_valid_taxi(&line);
                }
            }
            let o = GenOptions {
                kind: EventKind::Clicks,
                ..o
            };
            for (line, oc) in run(&o).0 {
                if !matches!(oc, Outcome::Broken(_)) {
                    check_valid_click(&line);
                }
            }
        }
    }

    #[test]
    fn taxi_times_follow_reference_distribution() {
        let (lines, _) = run(&opts(EventKind::Taxi, 2000));
        for (line, _) in lines {
            let v: Value = serde_json::from_str(&line).unwrap();
            let pu = parse_rfc3339_z(v["tpep_pickup_datetime"].as_str().unwrap());
            let dropoff = parse_rfc3339_z(v["tpep_dropoff_datetime"].as_str().unwrap());
            assert!((BASE_EPOCH_S..BASE_EPOCH_S + 3 * DAY_S).contains(&pu));
            assert!((60..3600).contains(&(dropoff - pu)));
        }
    }

    #[test]
    fn click_ts_within_two_days() {
        let (lines, _) = run(&opts(EventKind::Clicks, 2000));
        let base_ms = BASE_EPOCH_S as u64 * 1000;
        for (line, _) in lines {
            let v: Value = serde_json::from_str(&line).unwrap();
            let ts = v["ts"].as_u64().unwrap();
            assert!((base_ms..base_ms + 2 * 86_400_000).contains(&ts));
        }
    }

    #[test]
    fn duplicates_repeat_earlier_valid_lines_verbatim() {
        for kind in [EventKind::Taxi, EventKind::Clicks] {
            let o = GenOptions {
                bad: 0.2,
                dup: 0.3,
                ..opts(kind, 4000)
            };
            let (lines, stats) = run(&o);
            assert!(stats.duplicates > 0);
            let mut valid_so_far = HashSet::new();
            for (line, oc) in &lines {
                match oc {
                    Outcome::Valid => assert!(valid_so_far.insert(line.as_str()), "valid repeated"),
                    Outcome::Duplicate => assert!(valid_so_far.contains(line.as_str())),
                    Outcome::Broken(_) => assert!(!valid_so_far.contains(line.as_str())),
                }
            }
        }
    }

    #[test]
    fn dup_pool_stays_bounded_and_keeps_sampling() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut pool = DupPool::default();
        for i in 0..(3 * DUP_CANDIDATES) {
            pool.offer(i.to_string().as_bytes(), &mut rng);
        }
        assert_eq!(pool.lines.len(), DUP_CANDIDATES);
        // Reservoir sampling: later lines replaced some of the first ones.
        let late = pool
            .lines
            .iter()
            .filter(|l| std::str::from_utf8(l).unwrap().parse::<usize>().unwrap() >= DUP_CANDIDATES)
            .count();
        assert!(late > DUP_CANDIDATES / 2, "late {late}");
    }

    #[test]
    fn clean_options_produce_only_valid_lines() {
        for kind in [EventKind::Taxi, EventKind::Clicks] {
            let (lines, stats) = run(&opts(kind, 3000));
            assert_eq!(stats.valid, 3000);
            assert_eq!(stats.duplicates, 0);
            assert!(stats.broken.is_empty());
            let distinct: HashSet<_> = lines.iter().map(|(l, _)| l).collect();
            assert_eq!(distinct.len(), 3000);
        }
    }

    fn ts_format(v: &Value) -> &'static str {
        match v {
            Value::Number(n) if n.as_u64().unwrap() < 100_000_000_000 => "epoch_s",
            Value::Number(_) => "epoch_ms",
            Value::String(s) if s.len() == 19 && &s[10..11] == " " => "naive",
            Value::String(s) if s.ends_with("-05:00") => "offset",
            Value::String(s) if s.len() == 24 && s.ends_with('Z') && &s[19..20] == "." => "frac_z",
            other => panic!("unexpected timestamp {other}"),
        }
    }

    #[test]
    fn mixed_ts_produces_all_five_formats() {
        let o = GenOptions {
            mixed_ts: true,
            ..opts(EventKind::Taxi, 1000)
        };
        let mut seen = BTreeMap::new();
        for (line, _) in run(&o).0 {
            let v: Value = serde_json::from_str(&line).unwrap();
            for k in ["tpep_pickup_datetime", "tpep_dropoff_datetime"] {
                *seen.entry(ts_format(&v[k])).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(seen.values().all(|&n| n > 250), "{seen:?}");

        let o = GenOptions {
            kind: EventKind::Clicks,
            ..o
        };
        let mut seen = HashSet::new();
        for (line, _) in run(&o).0 {
            let v: Value = serde_json::from_str(&line).unwrap();
            seen.insert(ts_format(&v["ts"]));
        }
        assert_eq!(seen, HashSet::from(["epoch_ms", "frac_z"]));
    }

    #[test]
    fn timestamp_formats_render_the_same_instant() {
        let render = |epoch_ms, fmt| {
            let mut b = Vec::new();
            Ts { epoch_ms, fmt }.write(&mut b);
            String::from_utf8(b).unwrap()
        };
        let base = BASE_EPOCH_S * 1000;
        assert_eq!(base, 1_709_251_200_000);
        assert_eq!(render(base, TsFmt::Rfc3339Z), "\"2024-03-01T00:00:00Z\"");
        assert_eq!(render(base, TsFmt::EpochS), "1709251200");
        assert_eq!(render(base, TsFmt::EpochMs), "1709251200000");
        assert_eq!(render(base, TsFmt::Naive), "\"2024-03-01 00:00:00\"");
        // The offset form crosses into the leap day.
        assert_eq!(render(base, TsFmt::Offset), "\"2024-02-29T19:00:00-05:00\"");
        assert_eq!(
            render(base + 3_723_045, TsFmt::FracZ),
            "\"2024-03-01T01:02:03.045Z\""
        );
    }

    #[test]
    fn civil_date_conversions_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(
            civil_from_days(days_from_civil(1900, 3, 1) - 1),
            (1900, 2, 28)
        );
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn cents_render_like_serde_json() {
        for c in 0..200_000u64 {
            let mut b = Vec::new();
            cents(&mut b, c);
            let ours = String::from_utf8(b).unwrap();
            assert_eq!(ours, serde_json::to_string(&(c as f64 / 100.0)).unwrap());
        }
    }

    #[test]
    fn all_bad_yields_every_category() {
        for (kind, unparseable) in [(EventKind::Taxi, "yesterday"), (EventKind::Clicks, "soon")] {
            let o = GenOptions {
                bad: 1.0,
                dup: 0.5,
                ..opts(kind, 1000)
            };
            let (lines, stats) = run(&o);
            assert_eq!(stats.valid, 0);
            assert_eq!(stats.duplicates, 0, "broken lines are never duplicated");
            let cats: Vec<_> = stats.broken.keys().copied().collect();
            assert_eq!(
                cats,
                [INVALID_JSON, SCHEMA_VIOLATION, TIMESTAMP_UNPARSEABLE]
            );
            assert_eq!(stats.broken.values().sum::<u64>(), 1000);
            let mut variants = HashSet::new();
            for (line, oc) in &lines {
                let parsed = serde_json::from_str::<Value>(line);
                match *oc {
                    Outcome::Broken(INVALID_JSON) => {
                        assert!(parsed.is_err(), "{line}");
                        variants.insert("truncated".to_owned());
                    }
                    Outcome::Broken(TIMESTAMP_UNPARSEABLE) => {
                        assert!(line.contains(&format!("\":\"{unparseable}\"")), "{line}");
                        assert!(parsed.is_ok());
                        variants.insert(unparseable.to_owned());
                    }
                    Outcome::Broken(SCHEMA_VIOLATION) => {
                        // Still well-formed JSON: only the schema rejects it.
                        let v = parsed.unwrap();
                        variants.insert(schema_break(kind, &v));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let expected = match kind {
                EventKind::Taxi => TaxiBreak::ALL.len(),
                EventKind::Clicks => ClickBreak::ALL.len(),
            };
            assert_eq!(variants.len(), expected, "{variants:?}");
        }
    }

    /// Identify which schema break a parsed, broken record carries.
    fn schema_break(kind: EventKind, v: &Value) -> String {
        let found: Vec<&str> = match kind {
            EventKind::Taxi => [
                (v["VendorID"] == "two", "vendor"),
                (v.get("tpep_pickup_datetime").is_none(), "pickup_missing"),
                (v["passenger_count"] == -3, "passengers"),
                (v["fare_amount"].is_null(), "fare_null"),
                (v["rider"] == "anonymous", "rider"),
                (v["store_and_fwd_flag"] == "MAYBE", "flag"),
                (v["rider"]["email"] == "not-an-email", "email"),
            ]
            .into_iter()
            .filter_map(|(hit, name)| hit.then_some(name))
            .collect(),
            EventKind::Clicks => [
                (v["platform"] == "fax", "platform"),
                (v["duration_ms"] == -1, "duration"),
                (v.get("click_id").is_none(), "click_id_missing"),
            ]
            .into_iter()
            .filter_map(|(hit, name)| hit.then_some(name))
            .collect(),
        };
        assert_eq!(found.len(), 1, "exactly one break expected in {v}");
        found[0].to_owned()
    }

    #[test]
    fn zero_count_writes_nothing() {
        for kind in [EventKind::Taxi, EventKind::Clicks] {
            let o = GenOptions {
                bad: 0.5,
                dup: 0.5,
                ..opts(kind, 0)
            };
            assert!(bytes(&o).is_empty());
            assert_eq!(generate(&o, &mut Vec::new()).unwrap(), GenStats::default());
        }
    }

    #[test]
    fn out_of_range_fractions_are_rejected() {
        for (bad, dup) in [(-0.1, 0.0), (1.5, 0.0), (0.0, 2.0), (f64::NAN, 0.0)] {
            let o = GenOptions {
                bad,
                dup,
                ..opts(EventKind::Taxi, 10)
            };
            let mut out = Vec::new();
            let err = generate(&o, &mut out).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn large_runs_flush_in_chunks_and_stay_intact() {
        // Several FLUSH_AT chunks: every line must still be whole.
        let o = GenOptions {
            dup: 0.05,
            ..opts(EventKind::Taxi, 2000)
        };
        let out = bytes(&o);
        assert!(out.len() > 4 * FLUSH_AT);
        for line in std::str::from_utf8(&out).unwrap().lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}

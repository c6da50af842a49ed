//! Shared code of the integration tests: run the built `lakehose` binary
//! against a temporary lake, read back what it wrote (Parquet rows with
//! their partition, error records, catalog) and compute what it should have
//! written from the generator's own accounting.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use lakehose::encode::errors::{read_error_object, ErrorRecord};
use lakehose::gen::{generate, EventKind, GenOptions, GenStats};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

pub mod aws;
pub mod faults;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lakehose");

/// Longest any single `lakehose` invocation may take before the test fails
/// (debug build on a loaded 2-core machine: generous on purpose).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Deadline of polling loops (waiting for objects to appear and the like).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository's `schemas/` directory.
pub fn repo_schemas() -> PathBuf {
    repo_root().join("schemas")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The categories lakehose files failed records under.
pub const INVALID_JSON: &str = "invalid_json";
pub const SCHEMA_VIOLATION: &str = "schema_violation";
pub const TIMESTAMP_UNPARSEABLE: &str = "timestamp_unparseable";
pub const UNROUTED: &str = "unrouted";

/// Firehose's error record field names (plus lakehose's own), as the design requires.
pub const FIREHOSE_FIELDS: [&str; 11] = [
    "attemptsMade",
    "arrivalTimestamp",
    "errorCode",
    "errorMessage",
    "rawData",
    "sequenceNumber",
    "subSequenceNumber",
    "stream",
    "shardId",
    "table",
    "details",
];

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// What one invocation of the binary did.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The `--summary-json` file, when the run wrote one.
    pub summary: Option<Value>,
}

impl RunOutput {
    /// Panic with everything the process said unless it exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "lakehose failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The summary JSON; panics when the run wrote none.
    pub fn summary(&self) -> &Value {
        self.summary.as_ref().unwrap_or_else(|| {
            panic!(
                "no summary JSON ({:?})\nstdout:\n{}\nstderr:\n{}",
                self.status, self.stdout, self.stderr
            )
        })
    }

    /// A counter of the summary JSON.
    pub fn count(&self, key: &str) -> u64 {
        self.summary()[key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no counter {key}: {}", self.summary()))
    }

    /// `errored` of the summary JSON as a map.
    pub fn errored(&self) -> BTreeMap<String, u64> {
        self.summary()["errored"]
            .as_object()
            .expect("errored is an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
            .collect()
    }
}

/// A command for the binary with a clean environment: no masking key and
/// no failpoint leak in from the caller's environment.
pub fn lakehose_cmd() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("LAKEHOSE_MASK_KEY")
        .env_remove("LAKEHOSE_FAILPOINT")
        .env_remove("LAKEHOSE_LOG");
    c
}

/// Run to completion (with a deadline), capturing output.
pub fn run_command(mut cmd: Command, stdin: Option<Vec<u8>>) -> (ExitStatus, String, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn lakehose");
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || {
            // The process may exit early (an error): a broken pipe is fine.
            let _ = pipe.write_all(&bytes);
        })
    });
    let (out, err) = capture(&mut child);
    let status = wait_deadline(&mut child, RUN_TIMEOUT);
    if let Some(f) = feeder {
        f.join().expect("stdin feeder");
    }
    (status, join_text(out), join_text(err))
}

/// Threads draining a child's stdout and stderr, so it never blocks on a full pipe.
pub fn capture(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    }
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    (out, err)
}

pub fn join_text(h: JoinHandle<String>) -> String {
    h.join().expect("output reader")
}

/// Wait for a child, killing it and failing the test after `limit`.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lakehose did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `cond` until it holds; false when `limit` passed first.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Send a signal by name (`TERM`, `INT`, ...) with the system's `kill`.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

// ---------------------------------------------------------------------------
// A temporary lake
// ---------------------------------------------------------------------------

/// A temporary directory holding inputs, the lake (`<tmp>/lake`, so that
/// inputs never count as lake content) and the summary file.
pub struct Lake {
    pub dir: tempfile::TempDir,
    /// Schemas directory passed to every run (the repository's by default).
    pub schemas: PathBuf,
}

impl Default for Lake {
    fn default() -> Self {
        Self::new()
    }
}

impl Lake {
    pub fn new() -> Lake {
        Lake {
            dir: tempfile::Builder::new()
                .prefix("lakehose-it-")
                .tempdir()
                .expect("tempdir"),
            schemas: repo_schemas(),
        }
    }

    pub fn with_schemas(schemas: &Path) -> Lake {
        Lake {
            schemas: schemas.to_owned(),
            ..Lake::new()
        }
    }

    /// The lake directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// A path in the temporary directory, outside the lake.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn summary_path(&self) -> PathBuf {
        self.path("summary.json")
    }

    /// Generate an input file with the library generator.
    pub fn gen_input(&self, name: &str, opts: &GenOptions) -> (PathBuf, GenStats) {
        let p = self.path(name);
        let mut f = std::io::BufWriter::new(fs::File::create(&p).expect("create input"));
        let stats = generate(opts, &mut f).expect("generate");
        f.flush().expect("flush input");
        (p, stats)
    }

    /// `lakehose run` on this lake with the usual flags and the
    /// development key; `extra` is appended.
    pub fn command(&self, input: &str, extra: &[&str]) -> Command {
        let mut c = self.bare_command(input, extra);
        c.arg("--insecure-dev-key");
        c
    }

    /// As [`Lake::command`] but without `--insecure-dev-key`.
    pub fn bare_command(&self, input: &str, extra: &[&str]) -> Command {
        let _ = fs::remove_file(self.summary_path());
        let mut c = lakehose_cmd();
        c.current_dir(self.dir.path())
            .arg("run")
            .arg("--input")
            .arg(input)
            .arg("--lake")
            .arg(self.root())
            .arg("--schemas")
            .arg(&self.schemas)
            .arg("--summary-json")
            .arg(self.summary_path())
            .arg("-q")
            .args(extra);
        c
    }

    /// Run a command made by [`Lake::command`] and collect its output.
    pub fn run_cmd(&self, cmd: Command, stdin: Option<Vec<u8>>) -> RunOutput {
        let (status, stdout, stderr) = run_command(cmd, stdin);
        assert!(
            !stderr.contains("panicked") && !stdout.contains("panicked"),
            "lakehose panicked:\n{stderr}"
        );
        self.output(status, stdout, stderr)
    }

    /// Build a [`RunOutput`] from a finished process, reading the summary file.
    pub fn output(&self, status: ExitStatus, stdout: String, stderr: String) -> RunOutput {
        let summary = fs::read(self.summary_path())
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("summary JSON parses"));
        RunOutput {
            status,
            stdout,
            stderr,
            summary,
        }
    }

    /// `lakehose run --input <input> <extra>`, expecting success.
    pub fn run(&self, input: &Path, extra: &[&str]) -> RunOutput {
        let out = self.run_cmd(
            self.command(input.to_str().expect("utf-8 path"), extra),
            None,
        );
        out.assert_ok();
        out
    }

    /// Every file under the lake, as `/`-separated paths relative to it.
    pub fn files(&self) -> Vec<String> {
        let root = self.root();
        let mut out = Vec::new();
        if root.exists() {
            walk(&root, &mut out);
        }
        let mut rel: Vec<String> = out.iter().map(|p| rel_path(&root, p)).collect::<Vec<_>>();
        rel.sort();
        rel
    }

    /// Data objects of a table: partition path -> object keys.
    pub fn objects(&self, table: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in self.files() {
            if let Some(rest) = f.strip_prefix(&format!("{table}/")) {
                if rest.ends_with(".snappy.parquet") && !is_temp(&f) {
                    let (part, _) = rest.rsplit_once('/').expect("object in a partition");
                    out.entry(part.to_owned()).or_default().push(f.clone());
                }
            }
        }
        out
    }

    /// How many `.parquet` objects the lake holds in all.
    pub fn parquet_count(&self) -> usize {
        self.files()
            .iter()
            .filter(|f| f.ends_with(".parquet"))
            .count()
    }

    /// Every row of every Parquet object of a table, with its partition.
    pub fn rows(&self, table: &str) -> Vec<Row> {
        let mut rows = Vec::new();
        for (partition, objects) in self.objects(table) {
            for key in objects {
                for value in read_parquet(&self.root().join(&key)) {
                    rows.push(Row {
                        partition: partition.clone(),
                        key: key.clone(),
                        value,
                    });
                }
            }
        }
        rows
    }

    /// Every error record under `errors/<dir>/` (`dir` a table or `_unrouted`).
    pub fn errors(&self, dir: &str) -> Vec<ErrorEntry> {
        let mut out = Vec::new();
        let prefix = format!("errors/{dir}/");
        for f in self.files() {
            let Some(rest) = f.strip_prefix(&prefix) else {
                continue;
            };
            if is_temp(&f) {
                continue;
            }
            assert!(rest.ends_with(".ndjson.gz"), "unexpected error file {f}");
            let category = rest.split('/').next().expect("category").to_owned();
            let bytes = fs::read(self.root().join(&f)).expect("read error object");
            let records = read_error_object(&bytes).expect("error object decodes");
            let raw = raw_error_lines(&bytes);
            assert_eq!(records.len(), raw.len());
            for (record, raw) in records.into_iter().zip(raw) {
                out.push(ErrorEntry {
                    category: category.clone(),
                    key: f.clone(),
                    record,
                    raw,
                });
            }
        }
        out
    }

    /// The local catalog document of a table.
    pub fn catalog(&self, table: &str) -> Value {
        let p = self
            .root()
            .join(format!("_lakehose/catalog/lakehose/{table}.json"));
        serde_json::from_slice(&fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .expect("catalog JSON")
    }

    /// Check the lake holds exactly what `exp` says, once: the rows' ids as a
    /// multiset, and every error record by category and line offset.
    pub fn assert_exactly_once(&self, table: &str, exp: &Expected) {
        let rows = self.rows(table);
        let got: Vec<String> = rows.iter().map(|r| r.str_at(exp.id_field)).collect();
        let diff = multiset_diff(&exp.valid_ids(), &multiset(got));
        assert!(diff.is_empty(), "rows of {table} differ: {diff}");
        let mut got_err: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for e in self.errors(table) {
            got_err
                .entry(e.category.clone())
                .or_default()
                .push(e.record.sequence_number.parse().expect("numeric offset"));
        }
        for v in got_err.values_mut() {
            v.sort();
        }
        let want = exp.error_offsets();
        assert_eq!(
            got_err.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "error categories"
        );
        for (cat, want_offsets) in &want {
            let got_offsets = &got_err[cat];
            let dups = got_offsets.windows(2).filter(|w| w[0] == w[1]).count();
            assert_eq!(dups, 0, "{cat}: {dups} error records written twice");
            assert_eq!(
                got_offsets.len(),
                want_offsets.len(),
                "{cat}: error record count"
            );
            assert_eq!(got_offsets, want_offsets, "{cat}: error records' lines");
        }
    }
}

/// A partly written object left by a crash (`.<name>.tmp-<uuid>`): not part
/// of the lake's content (Athena skips dot files).
pub fn is_temp(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|n| n.starts_with('.'))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        if e.file_type().expect("file type").is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn rel_path(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .expect("under root")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `dir`, recursively (absolute paths).
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The lines of a gzip NDJSON error object as JSON values.
pub fn raw_error_lines(gz: &[u8]) -> Vec<Value> {
    gunzip(gz)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("error line is JSON"))
        .collect()
}

pub fn gunzip(gz: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_string(&mut s)
        .expect("gunzip");
    s
}

/// A row read back from the lake.
#[derive(Debug, Clone)]
pub struct Row {
    /// Partition path, e.g. `year=2024/month=03/day=01/hour=05/vendor_id=2`.
    pub partition: String,
    /// Object key relative to the lake.
    pub key: String,
    /// Column name -> value; timestamps as epoch milliseconds.
    pub value: Value,
}

impl Row {
    pub fn str_at(&self, col: &str) -> String {
        self.value[col]
            .as_str()
            .unwrap_or_else(|| panic!("{col} is not a string in {}", self.value))
            .to_owned()
    }
}

/// One error record read back from the lake.
#[derive(Debug, Clone)]
pub struct ErrorEntry {
    /// The category folder it was found under.
    pub category: String,
    pub key: String,
    pub record: ErrorRecord,
    /// The same line as plain JSON (to check field names).
    pub raw: Value,
}

impl ErrorEntry {
    /// The stored record (`rawData` decoded).
    pub fn data(&self) -> Vec<u8> {
        self.record.decode_raw().expect("rawData is base64")
    }

    /// The stored record parsed, when it is JSON.
    pub fn data_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.data()).ok()
    }
}

// ---------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------

/// Every row of one Parquet file, columns converted to JSON values.
pub fn read_parquet(path: &Path) -> Vec<Value> {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .build()
        .expect("parquet reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("record batch");
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let mut m = Map::new();
            for (c, field) in schema.fields().iter().enumerate() {
                m.insert(field.name().clone(), cell(batch.column(c).as_ref(), i));
            }
            rows.push(Value::Object(m));
        }
    }
    rows
}

/// One value of an Arrow array as JSON (timestamps as epoch milliseconds).
pub fn cell(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_owned()),
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Float64 => Value::from(a.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Value::from(a.as_primitive::<TimestampMillisecondType>().value(i))
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), cell(col.as_ref(), i));
            }
            Value::Object(m)
        }
        DataType::List(_) => {
            let item = a.as_list::<i32>().value(i);
            Value::Array((0..item.len()).map(|j| cell(item.as_ref(), j)).collect())
        }
        other => panic!("unexpected Arrow type {other:?} in lake data"),
    }
}

/// Every string inside a JSON value (object keys excluded).
pub fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Expected outcome of generated input
// ---------------------------------------------------------------------------

pub fn gen_opts(kind: EventKind, count: u64, bad: f64, dup: f64, seed: u64) -> GenOptions {
    GenOptions {
        kind,
        count,
        seed,
        bad,
        dup,
        mixed_ts: true,
    }
}

/// What lakehose should make of one input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Valid,
    /// Error category and which generator break caused it.
    Broken(&'static str, &'static str),
}

/// One input line.
#[derive(Debug, Clone)]
pub struct Line {
    /// Byte offset: the record's sequence number for a file source.
    pub offset: u64,
    pub text: String,
    pub class: Class,
}

/// The classified lines of an input file.
#[derive(Debug, Clone)]
pub struct Expected {
    pub kind: EventKind,
    /// Record id column (`event_id`, `click_id`).
    pub id_field: &'static str,
    pub lines: Vec<Line>,
}

impl Expected {
    /// Classify every line of `path` and check the classification agrees
    /// with the generator's own counts.
    pub fn from_file(kind: EventKind, path: &Path, stats: &GenStats) -> Expected {
        let text = fs::read_to_string(path).expect("read input");
        let exp = Expected::from_text(kind, &text);
        exp.check_stats(stats);
        exp
    }

    pub fn from_text(kind: EventKind, text: &str) -> Expected {
        let mut lines = Vec::new();
        let mut offset = 0u64;
        for l in text.split_inclusive('\n') {
            let body = l.strip_suffix('\n').unwrap_or(l);
            if !body.trim().is_empty() {
                lines.push(Line {
                    offset,
                    text: body.to_owned(),
                    class: classify(kind, body),
                });
            }
            offset += l.len() as u64;
        }
        Expected {
            kind,
            id_field: match kind {
                EventKind::Taxi => "event_id",
                EventKind::Clicks => "click_id",
            },
            lines,
        }
    }

    /// The classifier must agree with [`GenStats`], or the expectations are wrong.
    pub fn check_stats(&self, stats: &GenStats) {
        assert_eq!(self.lines.len() as u64, stats.total, "line count");
        assert_eq!(
            self.valid().count() as u64,
            stats.valid + stats.duplicates,
            "valid lines (first occurrences + verbatim duplicates)"
        );
        let broken: BTreeMap<String, u64> = self
            .error_offsets()
            .into_iter()
            .map(|(k, v)| (k, v.len() as u64))
            .collect();
        let want: BTreeMap<String, u64> = stats
            .broken
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(broken, want, "broken lines per category");
    }

    pub fn valid(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.class == Class::Valid)
    }

    /// Multiset of the ids of the lines that must become rows.
    /// Producer duplicates (verbatim repeats) are dropped by the id window,
    /// so each id is in the lake once.
    pub fn valid_ids(&self) -> BTreeMap<String, u32> {
        self.valid()
            .map(|l| {
                let v: Value = serde_json::from_str(&l.text).expect("valid line");
                (v[self.id_field].as_str().expect("id").to_owned(), 1)
            })
            .collect()
    }

    /// Category -> sorted offsets of the lines that must become error records.
    pub fn error_offsets(&self) -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for l in &self.lines {
            if let Class::Broken(cat, _) = l.class {
                out.entry(cat.to_owned()).or_default().push(l.offset);
            }
        }
        out
    }

    pub fn line_at(&self, offset: u64) -> &Line {
        let i = self
            .lines
            .binary_search_by_key(&offset, |l| l.offset)
            .unwrap_or_else(|_| panic!("no line starts at byte {offset}"));
        &self.lines[i]
    }

    /// Valid lines by record id (duplicates are verbatim, so one suffices).
    pub fn valid_by_id(&self) -> BTreeMap<String, Value> {
        self.valid()
            .map(|l| {
                let v: Value = serde_json::from_str(&l.text).expect("valid line");
                (v[self.id_field].as_str().expect("id").to_owned(), v)
            })
            .collect()
    }

    /// The sensitive strings of the input (every line, broken ones included).
    pub fn secrets(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for l in &self.lines {
            let Ok(v) = serde_json::from_str::<Value>(&l.text) else {
                continue;
            };
            let candidates = match self.kind {
                EventKind::Taxi => vec![
                    &v["rider"]["email"],
                    &v["rider"]["phone"],
                    &v["card_number"],
                ],
                EventKind::Clicks => vec![&v["user"]["email"], &v["user"]["ip"]],
            };
            for c in candidates {
                if let Some(s) = c.as_str() {
                    out.insert(s.to_owned());
                }
            }
        }
        out
    }
}

/// Which outcome a generated line must have, from the generator's breaks
/// (each broken line carries exactly one).
pub fn classify(kind: EventKind, line: &str) -> Class {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Class::Broken(INVALID_JSON, "truncated");
    };
    let schema_breaks: Vec<(bool, &'static str)> = match kind {
        EventKind::Taxi => vec![
            (v["VendorID"] == "two", "vendor"),
            (v.get("tpep_pickup_datetime").is_none(), "pickup_missing"),
            (v["passenger_count"] == -3, "passengers"),
            (v["fare_amount"].is_null(), "fare_null"),
            (v["rider"] == "anonymous", "rider"),
            (v["store_and_fwd_flag"] == "MAYBE", "flag"),
            (v["rider"]["email"] == "not-an-email", "email"),
        ],
        EventKind::Clicks => vec![
            (v["platform"] == "fax", "platform"),
            (v["duration_ms"] == -1, "duration"),
            (v.get("click_id").is_none(), "click_id_missing"),
        ],
    };
    if let Some((_, name)) = schema_breaks.iter().find(|(hit, _)| *hit) {
        return Class::Broken(SCHEMA_VIOLATION, name);
    }
    let ts_field = match kind {
        EventKind::Taxi => "tpep_pickup_datetime",
        EventKind::Clicks => "ts",
    };
    if v[ts_field] == "yesterday" || v[ts_field] == "soon" {
        return Class::Broken(TIMESTAMP_UNPARSEABLE, "unparseable");
    }
    Class::Valid
}

/// The instant a generated timestamp denotes, epoch milliseconds. Formats:
/// epoch seconds, epoch milliseconds, naive `YYYY-MM-DD HH:MM:SS` (UTC),
/// RFC 3339 with `Z`, an offset, or fractional seconds.
pub fn ts_ms(v: &Value) -> i64 {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().expect("integer epoch");
            if n < 100_000_000_000 {
                n * 1000
            } else {
                n
            }
        }
        Value::String(s) if s.len() == 19 && &s[10..11] == " " => {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .expect("naive timestamp")
                .and_utc()
                .timestamp_millis()
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .timestamp_millis(),
        other => panic!("not a timestamp: {other}"),
    }
}

/// `year=YYYY/month=MM/day=DD/hour=HH` of an instant, in UTC.
pub fn utc_time_path(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("in range");
    t.format("year=%Y/month=%m/day=%d/hour=%H").to_string()
}

/// Lowercase hex HMAC-SHA256, as the `hash` mask is documented to produce.
pub fn hmac_hex(key: &[u8], data: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("key");
    mac.update(data.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `^\*{12}\d{4}$`
pub fn is_last4_of_16(s: &str) -> bool {
    s.len() == 16
        && s[..12].bytes().all(|b| b == b'*')
        && s[12..].bytes().all(|b| b.is_ascii_digit())
}

pub fn multiset<I: IntoIterator<Item = String>>(it: I) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for s in it {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

/// Empty when equal; otherwise a short description of what is missing or extra.
pub fn multiset_diff(want: &BTreeMap<String, u32>, got: &BTreeMap<String, u32>) -> String {
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for k in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
        let (w, g) = (
            want.get(k).copied().unwrap_or(0),
            got.get(k).copied().unwrap_or(0),
        );
        if g < w {
            missing.push(format!("{k} x{}", w - g));
        } else if g > w {
            extra.push(format!("{k} x{}", g - w));
        }
    }
    if missing.is_empty() && extra.is_empty() {
        return String::new();
    }
    let total = |m: &BTreeMap<String, u32>| m.values().map(|&v| v as u64).sum::<u64>();
    format!(
        "want {} got {}; {} ids missing (e.g. {:?}), {} ids in excess (e.g. {:?})",
        total(want),
        total(got),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    )
}

/// The secrets that occur in `text` as substrings.
pub fn secrets_in(text: &str, secrets: &BTreeSet<String>) -> Vec<String> {
    let lens: BTreeSet<usize> = secrets.iter().map(String::len).collect();
    let set: std::collections::HashSet<&str> = secrets.iter().map(String::as_str).collect();
    let firsts: BTreeSet<u8> = secrets.iter().filter_map(|s| s.bytes().next()).collect();
    let b = text.as_bytes();
    let mut found = BTreeSet::new();
    for i in 0..b.len() {
        if !firsts.contains(&b[i]) {
            continue;
        }
        for &l in &lens {
            if i + l <= b.len() && text.is_char_boundary(i) && text.is_char_boundary(i + l) {
                let s = &text[i..i + l];
                if set.contains(s) {
                    found.insert(s.to_owned());
                }
            }
        }
    }
    found.into_iter().collect()
}

impl Expected {
    /// Broken lines by category.
    pub fn broken_by_category(&self) -> BTreeMap<String, Vec<&Line>> {
        let mut out: BTreeMap<String, Vec<&Line>> = BTreeMap::new();
        for l in &self.lines {
            if let Class::Broken(cat, _) = l.class {
                out.entry(cat.to_string()).or_default().push(l);
            }
        }
        out
    }

    /// Exactly once for a stream source, whose sequence numbers are not line
    /// offsets: rows by id multiset; error records by count per category,
    /// no (shard, sequence, sub-sequence) twice, and unparseable lines
    /// (stored verbatim, nothing to mask) by content.
    pub fn assert_delivered_once(&self, lake: &Lake, table: &str) {
        use base64::Engine;
        let rows = lake.rows(table);
        let got: Vec<String> = rows.iter().map(|r| r.str_at(self.id_field)).collect();
        let diff = multiset_diff(&self.valid_ids(), &multiset(got));
        assert!(diff.is_empty(), "rows of {table} differ: {diff}");
        let errors = lake.errors(table);
        let mut seen = BTreeSet::new();
        let mut by_cat: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &errors {
            let r = &e.record;
            assert!(
                seen.insert((
                    r.shard_id.clone(),
                    r.sequence_number.clone(),
                    r.sub_sequence_number
                )),
                "error record written twice: {} {} {}",
                r.shard_id,
                r.sequence_number,
                r.sub_sequence_number
            );
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&r.raw_data)
                .expect("rawData is base64");
            by_cat
                .entry(e.category.clone())
                .or_default()
                .push(String::from_utf8_lossy(&raw).into_owned());
        }
        let want = self.broken_by_category();
        assert_eq!(
            by_cat
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect::<BTreeMap<_, _>>(),
            want.iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect::<BTreeMap<_, _>>(),
            "error records per category"
        );
        if let Some(lines) = want.get(INVALID_JSON) {
            let diff = multiset_diff(
                &multiset(lines.iter().map(|l| l.text.clone())),
                &multiset(by_cat[INVALID_JSON].iter().cloned()),
            );
            assert!(diff.is_empty(), "invalid_json records differ: {diff}");
        }
    }
}

/// The repository's schemas with two rules relaxed, written to `dir`:
/// passenger_count may be negative and store_and_fwd_flag may be "MAYBE"
/// (the generator's "passengers" and "flag" breaks become valid).
pub fn relaxed_schemas(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut s: Value =
        serde_json::from_slice(&fs::read(repo_schemas().join("taxi_trips.json")).unwrap()).unwrap();
    let props = &mut s["properties"];
    props["passenger_count"]["minimum"] = Value::from(-9);
    props["store_and_fwd_flag"]["enum"]
        .as_array_mut()
        .unwrap()
        .push(Value::from("MAYBE"));
    fs::write(
        dir.join("taxi_trips.json"),
        serde_json::to_vec_pretty(&s).unwrap(),
    )
    .unwrap();
    dir.to_owned()
}

impl Expected {
    /// Lines broken only by the rules [`relaxed_schemas`] relaxes.
    pub fn now_valid(&self) -> Vec<&Line> {
        self.lines
            .iter()
            .filter(|l| {
                matches!(
                    l.class,
                    Class::Broken(_, "passengers") | Class::Broken(_, "flag")
                )
            })
            .collect()
    }

    /// Ids in the lake after a replay under [`relaxed_schemas`].
    pub fn ids_after_replay(&self) -> BTreeMap<String, u32> {
        let mut want = self.valid_ids();
        for l in self.now_valid() {
            let v: Value = serde_json::from_str(&l.text).unwrap();
            *want
                .entry(v[self.id_field].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        want
    }
}

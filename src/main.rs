//! The `lakehose` command line. anyhow lives here only: library errors are
//! typed, and this edge turns them into one line and a non-zero exit.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use lakehose::aws::Aws;
use lakehose::buffer::Policy;
use lakehose::catalog::glue::GlueCatalog;
use lakehose::catalog::{Catalog, LakeCatalog};
use lakehose::checkpoint::local::LocalCheckpointStore;
use lakehose::checkpoint::s3::S3CheckpointStore;
use lakehose::checkpoint::CheckpointStore;
use lakehose::config::{CatalogKind, Config};
use lakehose::gen::{self, EventKind, GenOptions};
use lakehose::pipeline::{Pipeline, PipelineOptions};
use lakehose::schema::{glue, Registry};
use lakehose::sink::s3::S3Store;
use lakehose::sink::{LocalStore, ObjectStore};
use lakehose::source::file::FileSource;
use lakehose::source::kinesis::KinesisSource;
use lakehose::source::Source;
use lakehose::summary::Summary;
use lakehose::transform::{Routing, Transformer};

#[global_allocator]
static GLOBAL: lakehose::allocator::Allocator = lakehose::allocator::Allocator;

/// mimalloc's `purge_delay` option: its place in `mi_option_e`, the same in
/// the v2 and v3 sources the crate builds.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Caps below this keep the shortest allocator purge delay (see [`AllocatorPurge`]).
const SMALL_CAP: usize = 256 << 20;

/// Milliseconds freed memory may stay with the allocator under a small cap.
const SMALL_CAP_PURGE_DELAY_MS: std::ffi::c_long = 5;

/// Caps below this (and not small) get [`MEDIUM_CAP_PURGE_DELAY_MS`];
/// larger ones [`LARGE_CAP_PURGE_DELAY_MS`].
const MEDIUM_CAP: usize = 512 << 20;

const MEDIUM_CAP_PURGE_DELAY_MS: std::ffi::c_long = 100;

/// The purge delay from [`MEDIUM_CAP`] up (or mimalloc's default, if
/// longer). mimalloc purges everything freed in an arena once the first
/// pending purge is due, so memory a flush frees is mostly purged within
/// the delay even when the buffers refilling after the flush are about to
/// reuse it, and each of its pages is then faulted in and zeroed again.
/// At 2 s instead of the default 1 s, alternating runs of the release
/// build at the default cap (2026-12-08): a million events 1.86 s -> 1.73 s
/// (3.31 -> 3.04 s of CPU, page faults 141k -> 126k, peak RSS 433 -> 468
/// MiB); six million 12.8 s -> 11.2 s (faults 369k -> 307k, peak RSS
/// 491 -> 504 MiB), all within the cap + 64 MiB bound.
const LARGE_CAP_PURGE_DELAY_MS: std::ffi::c_long = 2000;

/// How long freed memory stays with the allocator before it goes back to
/// the OS. Memory freed by flushes and by transformed rows stays resident
/// for the whole delay: at mimalloc's default (1 s) that added 35-85 MiB
/// to the peak at caps 64-256 MiB, past or at the cap + 64 MiB bound
/// (measured 2026-12-03). At 5 ms under 256 MiB it adds a few MiB for up
/// to 10% more time; at 100 ms under 512 MiB, about 20 MiB. From 512 MiB
/// the bound has room for a longer delay (2 s: see
/// [`LARGE_CAP_PURGE_DELAY_MS`]), and 100 ms would cost 8% of throughput.
/// The short delay is set before the run allocates anything much:
/// mimalloc purges an arena once its first pending purge is due, so
/// memory freed under a long delay holds back what is freed after it. A `MIMALLOC_PURGE_DELAY` set by the user is
/// left alone.
struct AllocatorPurge {
    /// mimalloc's default delay; None: the user set one.
    default_ms: Option<std::ffi::c_long>,
}

impl AllocatorPurge {
    fn short() -> AllocatorPurge {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return AllocatorPurge { default_ms: None };
        }
        // SAFETY: mi_option_get reads one of mimalloc's option words; it
        // may be called at any time, from any thread.
        let default_ms = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        set_purge_delay(SMALL_CAP_PURGE_DELAY_MS);
        AllocatorPurge {
            default_ms: Some(default_ms),
        }
    }

    /// The delay for the run's memory cap.
    fn fit(self, memory_cap: usize) {
        let Some(default_ms) = self.default_ms else {
            return;
        };
        set_purge_delay(purge_delay_for(memory_cap, default_ms));
    }
}

/// The purge delay for a memory cap, given mimalloc's default.
fn purge_delay_for(memory_cap: usize, default_ms: std::ffi::c_long) -> std::ffi::c_long {
    if memory_cap >= MEDIUM_CAP {
        default_ms.max(LARGE_CAP_PURGE_DELAY_MS)
    } else if memory_cap >= SMALL_CAP {
        MEDIUM_CAP_PURGE_DELAY_MS
    } else {
        SMALL_CAP_PURGE_DELAY_MS
    }
}

fn set_purge_delay(ms: std::ffi::c_long) {
    // SAFETY: mi_option_set writes one of mimalloc's option words; it may
    // be called at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}

#[derive(Parser)]
#[command(
    name = "lakehose",
    version,
    about = "Events in, validated and masked Parquet lake out, exactly once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: read NDJSON, write the lake, then exit at end of input.
    Run(RunArgs),
    /// Write generated example events (NDJSON) to stdout or a file.
    Gen(GenArgs),
    /// Print what a table's schema becomes in Glue or Athena.
    Schema {
        #[command(subcommand)]
        what: SchemaCommand,
    },
    /// Re-run error records through the current schemas: those that pass
    /// land in the lake (partitions registered), the rest in new error
    /// objects; replayed objects are marked, never replayed twice.
    Replay(ReplayArgs),
    /// Put NDJSON lines into a Kinesis stream (PutRecords, partial
    /// failures retried with backoff), e.g. `lakehose gen taxi | lakehose put --stream s`.
    Put(PutArgs),
    /// Inspect the error prefix.
    Errors {
        #[command(subcommand)]
        what: ErrorsCommand,
    },
}

#[derive(Subcommand)]
enum ErrorsCommand {
    /// Per table and category: count, first and last arrival, top violated
    /// fields with their JSON Schema keywords, one sample message.
    Summary(ErrorsArgs),
    /// Failed records, one JSON object per line, rawData decoded (masked
    /// fields stay masked).
    Show(ErrorsArgs),
}

#[derive(Args)]
struct ErrorsArgs {
    /// TOML config file (for `lake` and `prefix`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Lake directory (overrides `lake`).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Only this table (`_unrouted` for records that reached none).
    #[arg(long)]
    table: Option<String>,
    /// Only this category (e.g. schema_violation).
    #[arg(long)]
    category: Option<String>,
    /// Only records with a violation at this JSON pointer (e.g. /rider/email).
    #[arg(long)]
    field: Option<String>,
    /// Only records that arrived at or after this time (RFC 3339, or epoch s/ms).
    #[arg(long)]
    since: Option<String>,
    /// Only records that arrived before this time.
    #[arg(long)]
    until: Option<String>,
    /// At most this many records (show only).
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON instead of the report.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    /// TOML config file; without it, the embedded default is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// NDJSON input file, or "-" for stdin (overrides input.path).
    #[arg(long)]
    input: Option<String>,
    /// With a Kinesis input: exit 0 once every shard is caught up and
    /// everything read is durable and checkpointed (backfills, replays, tests).
    #[arg(long)]
    exit_when_caught_up: bool,
    /// Lake directory (overrides `lake`).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Schemas directory (overrides `schemas`).
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// Table for every record (overrides input.table).
    #[arg(long)]
    table: Option<String>,
    /// Route by this field's value instead of a fixed table (overrides input.route_field).
    #[arg(long)]
    route_field: Option<String>,
    /// Value of the `source` column (overrides input.source).
    #[arg(long)]
    source: Option<String>,
    /// Buffer interval in seconds (overrides buffer.interval_seconds).
    #[arg(long)]
    buffer_interval: Option<u64>,
    /// Buffer size in MiB (overrides buffer.size_mib).
    #[arg(long)]
    buffer_size: Option<u64>,
    /// Global buffer memory cap in MiB (overrides buffer.memory_cap_mib).
    #[arg(long)]
    memory_cap: Option<u64>,
    /// Use a fixed, public masking key when none is configured: local trials only.
    #[arg(long)]
    insecure_dev_key: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// TOML config file (lake or [s3], prefix, schemas, catalog, mask key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Lake directory (overrides `lake`).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Schemas directory (overrides `schemas`): the fixed schemas.
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// Only this table's error objects (`_unrouted` for those that reached none).
    #[arg(long)]
    table: Option<String>,
    /// Only this category (e.g. schema_violation).
    #[arg(long)]
    category: Option<String>,
    /// Only error objects of this arrival hour or later (RFC 3339, or epoch s/ms).
    #[arg(long)]
    since: Option<String>,
    /// Only error objects of arrival hours before this time.
    #[arg(long)]
    until: Option<String>,
    /// Print what would pass and what would still fail, by category; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete each error object once replayed (default: keep it, marked).
    #[arg(long)]
    purge: bool,
    /// Use the fixed, public masking key when none is configured: local trials only.
    #[arg(long)]
    insecure_dev_key: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PutArgs {
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// NDJSON file, or "-" for stdin.
    #[arg(long, default_value = "-")]
    input: String,
    /// Partition key from this top-level field (default: a digest of the line).
    #[arg(long)]
    partition_key_field: Option<String>,
    /// Pack this many lines per KPL aggregated record (default: no aggregation).
    #[arg(long, default_value_t = 0)]
    aggregate: usize,
    /// TOML config file (for its [aws] section).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Taxi,
    Clicks,
}

#[derive(Args)]
struct GenArgs {
    /// Which events.
    #[arg(value_enum)]
    kind: Kind,
    /// How many lines.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Fraction of records broken in assorted ways.
    #[arg(long, default_value_t = 0.0)]
    bad: f64,
    /// Fraction of records repeating an earlier one (producer retries).
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timestamps as RFC 3339 only, instead of mixed formats.
    #[arg(long)]
    iso_ts: bool,
    /// Output file (default stdout).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// The Glue TableInput JSON of a table.
    Glue(SchemaArgs),
    /// The Athena CREATE EXTERNAL TABLE statement of a table.
    Ddl(SchemaArgs),
    /// The tables of the schemas directory.
    List(SchemaArgs),
}

#[derive(Args)]
struct SchemaArgs {
    /// Table name.
    table: Option<String>,
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Base location of the lake, e.g. s3://bucket/prefix/.
    #[arg(long, default_value = glue::EXAMPLE_LOCATION)]
    location: String,
    /// Glue database.
    #[arg(long, default_value = "lakehose")]
    database: String,
}

fn main() {
    disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKEHOSE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Gen(a) => generate(a),
        Command::Schema { what } => schema(what),
        Command::Errors { what } => errors(what),
        Command::Put(a) => put(a),
        Command::Replay(a) => replay(a),
    };
    if let Err(e) = result {
        eprintln!("lakehose: error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// A file input is read through a memory mapping (`source::mapped`): if
/// the file is truncated under the run, the next read past its new end
/// faults with SIGBUS. Say so in one line, as for any other error, rather
/// than die without a word. Ending there is safe: nothing unwritten was
/// checkpointed, so the next run reads it again (or, if the file is now
/// shorter than the checkpoint, says so).
fn report_bus_errors() {
    extern "C" fn on_bus_error(_: libc::c_int) {
        const MSG: &[u8] = b"lakehose: error: bus error (SIGBUS) reading the input: was the input file truncated while it was being read? Records not yet written are read again from the checkpoint by the next run\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(1);
        }
    }
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_bus_error as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Record buffers are allocated and freed at a high rate; with transparent
/// huge pages every fresh arena page costs a 2 MiB zeroing in the kernel,
/// which profiling showed to be a third of the run time. Opt this process out.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let purge = AllocatorPurge::short();
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(v) = &a.input {
        cfg.input.path = v.clone();
    }
    if let Some(v) = a.lake {
        cfg.lake = v;
    }
    if let Some(v) = a.schemas {
        cfg.schemas = v;
    }
    if let Some(v) = a.table {
        cfg.input.table = v;
    }
    if let Some(v) = a.route_field {
        cfg.input.route_field = Some(v);
    }
    if let Some(v) = a.source {
        cfg.input.source = Some(v);
    }
    if let Some(v) = a.buffer_interval {
        cfg.buffer.interval_seconds = v;
    }
    if let Some(v) = a.buffer_size {
        cfg.buffer.size_mib = v.max(1);
    }
    if let Some(v) = a.memory_cap {
        cfg.buffer.memory_cap_mib = v.max(1);
    }
    cfg.mask.insecure_dev_key |= a.insecure_dev_key;
    let a = RunFlags {
        input_given: a.input.is_some(),
        exit_when_caught_up: a.exit_when_caught_up,
        quiet: a.quiet,
        summary_json: a.summary_json,
    };

    let registry = Arc::new(Registry::load_dir(&cfg.schemas)?);
    let routing = match &cfg.input.route_field {
        Some(f) => Routing::Field(f.clone()),
        None => {
            registry.require(&cfg.input.table)?;
            Routing::Fixed(registry.index_of(&cfg.input.table).unwrap_or_default())
        }
    };
    let needs_key = registry.tables().iter().any(|t| !t.ext.mask.is_empty());
    let key = if needs_key {
        cfg.mask_key()?
    } else {
        Vec::new()
    };
    if needs_key && key == lakehose::config::INSECURE_DEV_KEY {
        eprintln!("lakehose: warning: using the insecure development masking key; hashed values are not protected");
    }
    let lake = Lake::open(&cfg)?;
    let source: Box<dyn Source> = match &cfg.kinesis {
        Some(k) => {
            if a.input_given {
                bail!("--input and a [kinesis] section both name an input: pick one");
            }
            Box::new(KinesisSource::new(
                lake.aws()?,
                k.clone(),
                cfg.input.source.clone(),
                a.exit_when_caught_up,
            ))
        }
        None => Box::new(
            FileSource::open(
                &cfg.input.path,
                cfg.input.source.clone(),
                cfg.input.max_record_bytes,
            )?
            .with_block(lakehose::source::file::block_for_cap(
                (cfg.buffer.memory_cap_mib * 1024 * 1024) as usize,
            )),
        ),
    };
    let catalog = lake.catalog(&cfg)?;
    let checkpoints = if source.resumable() {
        Some(lake.checkpoint_store(&cfg, source.id()))
    } else {
        None
    };
    let store = lake.store.clone();
    let transformer = Arc::new(
        Transformer::new(
            registry.clone(),
            &key,
            routing,
            source.name().to_owned(),
            cfg.input.max_record_bytes,
        )
        .map_err(|e| anyhow::anyhow!(e))?,
    );
    let policy = Policy {
        size_bytes: (cfg.buffer.size_mib * 1024 * 1024) as usize,
        interval: Duration::from_secs(cfg.buffer.interval_seconds),
        memory_cap: (cfg.buffer.memory_cap_mib * 1024 * 1024) as usize,
    };
    purge.fit(policy.memory_cap);
    let mut pipeline = Pipeline::new(
        transformer,
        store.clone(),
        catalog,
        checkpoints,
        PipelineOptions {
            policy,
            prefix: cfg.prefix.clone(),
            dedup: cfg.dedup.enabled.then_some((
                cfg.dedup.window_ids,
                (cfg.dedup.window_seconds as i64).saturating_mul(1000),
            )),
        },
    )?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while flushing means "now": exit at once (the
        // checkpoint makes that safe for files).
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    report_bus_errors();
    let bar =
        (!a.quiet && std::io::stderr().is_terminal()).then(|| progress_bar(source.size_hint()));
    let result = pipeline.run(source, stop, |s: &Summary| {
        if let Some(b) = &bar {
            b.set_position(s.bytes_in);
            let secs = b.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{:.0} rec/s, {} records, {} errored",
                s.records_in as f64 / secs,
                s.records_in,
                s.errored_total()
            ));
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let summary = &pipeline.summary;
    print!("{}", summary.render());
    if let Some(p) = &a.summary_json {
        let text = serde_json::to_string_pretty(summary)?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    result?;
    Ok(())
}

fn parse_time(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|t| {
            lakehose::transform::timestamp::parse_timestamp_str(t, Default::default())
                .with_context(|| format!("{flag} {t:?}"))
        })
        .transpose()
}

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(v) = a.lake {
        cfg.lake = v;
    }
    if let Some(v) = a.schemas {
        cfg.schemas = v;
    }
    cfg.mask.insecure_dev_key |= a.insecure_dev_key;
    if cfg.s3.is_none() && !cfg.lake.is_dir() {
        bail!("lake {}: no such directory", cfg.lake.display());
    }
    let registry = Arc::new(Registry::load_dir(&cfg.schemas)?);
    let routing = match &cfg.input.route_field {
        Some(f) => Routing::Field(f.clone()),
        None => Routing::Fixed(registry.index_of(&cfg.input.table).unwrap_or_default()),
    };
    let needs_key = registry.tables().iter().any(|t| !t.ext.mask.is_empty());
    let key = if needs_key {
        cfg.mask_key()?
    } else {
        Vec::new()
    };
    let transformer = Transformer::new(
        registry,
        &key,
        routing,
        "replay".into(),
        cfg.input.max_record_bytes,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let lake = Lake::open(&cfg)?;
    let catalog = lake.catalog(&cfg)?;
    let opts = lakehose::quarantine::replay::ReplayOptions {
        table: a.table,
        category: a.category,
        since_ms: parse_time("--since", &a.since)?,
        until_ms: parse_time("--until", &a.until)?,
        dry_run: a.dry_run,
        purge: a.purge,
        can_route: cfg.input.route_field.is_some(),
    };
    let report = lakehose::quarantine::replay::replay(
        lake.store.as_ref(),
        catalog.as_ref(),
        &transformer,
        &cfg.prefix,
        &opts,
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render(a.dry_run));
    }
    Ok(())
}

fn put(a: PutArgs) -> anyhow::Result<()> {
    let cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let aws = Aws::load(&cfg.aws)?;
    let opts = lakehose::producer::PutOptions {
        stream: a.stream,
        aggregate: a.aggregate,
        partition_key_field: a.partition_key_field,
    };
    let s = if a.input == "-" {
        lakehose::producer::put(&aws, &opts, std::io::stdin().lock())?
    } else {
        let f = std::fs::File::open(&a.input).with_context(|| format!("input {}", a.input))?;
        lakehose::producer::put(&aws, &opts, std::io::BufReader::new(f))?
    };
    eprintln!(
        "put {} lines as {} records into {} ({} retried after partial failures)",
        s.lines, s.records, opts.stream, s.retried
    );
    Ok(())
}

fn errors(what: ErrorsCommand) -> anyhow::Result<()> {
    let (a, show) = match what {
        ErrorsCommand::Summary(a) => (a, false),
        ErrorsCommand::Show(a) => (a, true),
    };
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(v) = a.lake {
        cfg.lake = v;
    }
    if cfg.s3.is_none() && !cfg.lake.is_dir() {
        bail!("lake {}: no such directory", cfg.lake.display());
    }
    let time = parse_time;
    let lake = Lake::open(&cfg)?;
    let store = lake.store.as_ref();
    let filter = lakehose::quarantine::Filter {
        since_ms: time("--since", &a.since)?,
        until_ms: time("--until", &a.until)?,
        table: a.table,
        category: a.category,
        field: a.field,
    };
    if show {
        let mut out = std::io::stdout().lock();
        let mut left = a.limit.unwrap_or(usize::MAX);
        let mut written: std::io::Result<()> = Ok(());
        lakehose::quarantine::for_each_record(
            store,
            &cfg.prefix,
            &filter,
            |table, category, rec| {
                if left == 0 {
                    return false;
                }
                left -= 1;
                let line = lakehose::quarantine::show_line(table, category, &rec);
                written = writeln!(out, "{line}");
                written.is_ok()
            },
        )?;
        return Ok(written?);
    }
    let summaries = lakehose::quarantine::summarize(store, &cfg.prefix, &filter)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print!("{}", lakehose::quarantine::render(&summaries));
    }
    Ok(())
}

fn progress_bar(size: Option<u64>) -> indicatif::ProgressBar {
    let bar = match size {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A file name from an id like `file:/a/b.ndjson`.
/// What is left of the run flags once they are folded into the config.
struct RunFlags {
    input_given: bool,
    exit_when_caught_up: bool,
    quiet: bool,
    summary_json: Option<PathBuf>,
}

/// Where the lake lives: a local directory or an S3 bucket, with the AWS
/// clients when any part of the run needs them.
struct Lake {
    store: Arc<dyn ObjectStore>,
    s3: Option<Arc<S3Store>>,
    local: Option<Arc<LocalStore>>,
    aws: Option<Arc<Aws>>,
}

impl Lake {
    fn open(cfg: &Config) -> anyhow::Result<Lake> {
        let aws = if cfg.s3.is_some() || cfg.kinesis.is_some() {
            Some(Arc::new(Aws::load(&cfg.aws)?))
        } else {
            None
        };
        Ok(match (&cfg.s3, &aws) {
            (Some(s3cfg), Some(aws)) => {
                let s3 = Arc::new(S3Store::new(aws.clone(), s3cfg));
                s3.check_bucket()?;
                Lake {
                    store: s3.clone(),
                    s3: Some(s3),
                    local: None,
                    aws: Some(aws.clone()),
                }
            }
            _ => {
                let local = Arc::new(LocalStore::open(&cfg.lake)?);
                Lake {
                    store: local.clone(),
                    s3: None,
                    local: Some(local),
                    aws,
                }
            }
        })
    }

    fn aws(&self) -> anyhow::Result<Arc<Aws>> {
        self.aws
            .clone()
            .context("no AWS configuration loaded (internal error)")
    }

    fn catalog(&self, cfg: &Config) -> anyhow::Result<Arc<dyn Catalog>> {
        let base_location = cfg
            .catalog
            .location
            .clone()
            .unwrap_or_else(|| self.store.url(&cfg.prefix));
        Ok(match cfg.catalog_kind() {
            CatalogKind::Glue => Arc::new(GlueCatalog::new(
                self.aws()?,
                &cfg.catalog.database,
                &base_location,
            )),
            _ => Arc::new(LakeCatalog::new(
                self.store.clone(),
                &cfg.catalog.database,
                &base_location,
            )),
        })
    }

    /// Checkpoints live with the lake: a file under `_lakehose/` locally, a
    /// conditionally written object under the prefix on S3.
    fn checkpoint_store(&self, cfg: &Config, source_id: &str) -> Box<dyn CheckpointStore> {
        let rel = format!(
            "_lakehose/checkpoints/{}/{}.json",
            sanitize(&cfg.app_name),
            sanitize(source_id)
        );
        match (&self.s3, &self.local) {
            (Some(s3), _) => Box::new(S3CheckpointStore::new(
                s3.clone(),
                format!("{}{rel}", cfg.prefix),
            )),
            (None, Some(local)) => Box::new(LocalCheckpointStore::new(local.root().join(rel))),
            (None, None) => unreachable!("a lake is local or on S3"),
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn generate(a: GenArgs) -> anyhow::Result<()> {
    let opts = GenOptions {
        kind: match a.kind {
            Kind::Taxi => EventKind::Taxi,
            Kind::Clicks => EventKind::Clicks,
        },
        count: a.count,
        seed: a.seed,
        bad: a.bad,
        dup: a.dup,
        mixed_ts: !a.iso_ts,
    };
    let stats = match &a.output {
        Some(p) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            );
            let s = gen::generate(&opts, &mut f)?;
            f.flush()?;
            s
        }
        None => gen::generate(&opts, &mut std::io::stdout().lock())?,
    };
    if a.output.is_some() {
        eprintln!(
            "generated {} lines: {} valid, {} duplicates, broken {:?}",
            stats.total, stats.valid, stats.duplicates, stats.broken
        );
    }
    Ok(())
}

fn schema(what: SchemaCommand) -> anyhow::Result<()> {
    let (a, kind) = match what {
        SchemaCommand::Glue(a) => (a, "glue"),
        SchemaCommand::Ddl(a) => (a, "ddl"),
        SchemaCommand::List(a) => (a, "list"),
    };
    let registry = Registry::load_dir(&a.schemas)?;
    if kind == "list" {
        for t in registry.tables() {
            println!("{}\t{}", t.name, t.path.display());
        }
        return Ok(());
    }
    let Some(name) = a.table else {
        bail!("name a table (known: {})", registry.names().join(", "));
    };
    let t = registry.require(&name)?;
    match kind {
        "glue" => println!(
            "{}",
            serde_json::to_string_pretty(&glue::table_input(t, &a.location))?
        ),
        _ => print!("{}", glue::ddl(t, &a.database, &a.location)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_follows_the_cap() {
        const MIB: usize = 1 << 20;
        // (cap, mimalloc's default, delay)
        let cases = [
            (MIB, 1000, 5),
            (32 * MIB, 1000, 5),
            (256 * MIB - 1, 1000, 5),
            (256 * MIB, 1000, 100),
            (511 * MIB, 1000, 100),
            (512 * MIB, 1000, 2000),
            (8192 * MIB, 10, 2000),
            (8192 * MIB, 5000, 5000), // a longer default stays
        ];
        for (cap, default_ms, want) in cases {
            assert_eq!(purge_delay_for(cap, default_ms), want, "cap {cap}");
        }
    }
}

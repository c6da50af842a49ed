//! `lakehose.toml`: every knob, its default and what it does.
//!
//! Unknown keys are rejected so that a typo fails at start instead of
//! silently falling back to a default. Names follow Firehose where one fits
//! (buffer size in MiB, buffer interval in seconds).
//!
//! ```toml
//! lake = "./lake"
//! schemas = "./schemas"
//! [input]
//! path = "events.ndjson"   # "-" reads stdin
//! table = "taxi_trips"
//! [buffer]
//! size_mib = 128
//! interval_seconds = 360
//! memory_cap_mib = 512
//! ```
//!
//! On AWS, a `[kinesis]` section makes the stream the input, an `[s3]`
//! section puts the lake (and the checkpoint) in a bucket, and
//! `catalog.kind = "glue"` registers tables in Glue:
//!
//! ```toml
//! prefix = "lake/"
//! [kinesis]
//! stream = "events"
//! [s3]
//! bucket = "my-lake"
//! [catalog]
//! kind = "glue"
//! database = "analytics"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration file. Every field has a default, so an empty file
/// (or no file at all) is the embedded default: schemas from `./schemas`,
/// lake in `./lake`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the local lake (data, error prefix, catalog and
    /// checkpoints all live under it). Created when missing.
    pub lake: PathBuf,
    /// Directory holding one JSON Schema file per table (`<table>.json`).
    pub schemas: PathBuf,
    /// Key prefix inside the lake for data objects, e.g. `"raw/"`. Error
    /// objects go under `<prefix>errors/`.
    pub prefix: String,
    /// Name of this application: checkpoints are kept per application and
    /// source, so two differently named apps can read the same input.
    pub app_name: String,
    /// Where records come from and which table they go to.
    pub input: InputConfig,
    /// When buffered records become objects.
    pub buffer: BufferConfig,
    /// Keys for the `hash` mask.
    pub mask: MaskConfig,
    /// The catalog the lake's tables are registered in.
    pub catalog: CatalogConfig,
    /// Dropping producer duplicates by `record_id`.
    pub dedup: DedupConfig,
    /// Region and endpoints shared by every AWS client.
    pub aws: AwsConfig,
    /// Read a Kinesis Data Stream instead of `input.path`.
    pub kinesis: Option<KinesisConfig>,
    /// Write the lake to S3 instead of the `lake` directory. The checkpoint
    /// store then lives in the bucket too, fenced by conditional writes.
    pub s3: Option<S3Config>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lake: PathBuf::from("./lake"),
            schemas: PathBuf::from("./schemas"),
            prefix: String::new(),
            app_name: "lakehose".into(),
            input: InputConfig::default(),
            buffer: BufferConfig::default(),
            mask: MaskConfig::default(),
            catalog: CatalogConfig::default(),
            dedup: DedupConfig::default(),
            aws: AwsConfig::default(),
            kinesis: None,
            s3: None,
        }
    }
}

/// The duplicate window: per table whose schema declares `record_id`, a
/// valid record whose id was seen among the last `window_ids` ids and
/// within `window_seconds` of arrival time is dropped (and counted). The
/// window lives in memory (about 32 bytes per id, counted against
/// `buffer.memory_cap_mib`); at start it is seeded with the ids of the
/// table's data objects written within `window_seconds`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Drop duplicates at all. Default true.
    pub enabled: bool,
    /// Ids remembered per table. Default 1,000,000 (about 32 MiB, sized
    /// at start-up and counted against the cap from then on). All
    /// tables' windows together get at most 3/8 of `memory_cap_mib` (at
    /// up to 64 bytes per id); a larger value is shrunk to fit, with a
    /// warning at start-up, so the buffers always keep room.
    pub window_ids: usize,
    /// How long an id is remembered, in seconds of arrival time. Default 3600.
    pub window_seconds: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: true,
            window_ids: 1_000_000,
            window_seconds: 3600,
        }
    }
}

/// Settings common to the AWS clients. Credentials always come from the
/// standard chain (environment, profile, SSO, container or instance role):
/// there is deliberately no key field, so no secret ends up in this file.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Region; defaults to the chain (`AWS_REGION`, profile, instance).
    pub region: Option<String>,
    /// One endpoint for every service, for emulators and S3-compatible
    /// stores. `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` in the
    /// environment work too and take precedence per service.
    pub endpoint_url: Option<String>,
    /// Attempts per AWS call (first try included) before a retryable error
    /// (throttling, 5xx, timeouts) is given up on. Default 10.
    pub max_attempts: Option<u32>,
}

/// Where reading a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record the stream still holds.
    #[default]
    TrimHorizon,
    /// Only records put after the first start.
    Latest,
}

/// A Kinesis Data Stream as the input.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KinesisConfig {
    /// Stream name (required).
    pub stream: String,
    /// Where shards without a checkpoint start. Shards created by
    /// resharding always start at their beginning.
    pub start: StartPosition,
    /// Records per GetRecords call (Kinesis allows up to 10000).
    pub max_records: i32,
    /// Pause between GetRecords calls on one shard when it is caught up,
    /// in milliseconds. Kinesis allows 5 calls/s per shard, so lakehose
    /// never calls more often than every 200 ms whatever this says.
    pub idle_poll_ms: u64,
    /// How often the shard list is refreshed to find new shards, in seconds
    /// (a shard that ends triggers a refresh at once).
    pub discovery_seconds: u64,
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            stream: String::new(),
            start: StartPosition::TrimHorizon,
            max_records: 10_000,
            idle_poll_ms: 1000,
            discovery_seconds: 30,
        }
    }
}

/// Server-side encryption of the objects lakehose writes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Sse {
    /// The bucket's default encryption applies.
    #[default]
    None,
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS (`aws:kms`), with `sse_kms_key_id` or the account's AWS key.
    AwsKms,
}

/// An S3 bucket as the lake.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name (required). Keys start with the top-level `prefix`.
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most
    /// S3-compatible stores and emulators. Default false (virtual hosts).
    pub force_path_style: bool,
    /// Server-side encryption: `none` (bucket default), `aes256`, `aws-kms`.
    pub sse: Sse,
    /// KMS key id or ARN for `sse = "aws-kms"`.
    pub sse_kms_key_id: Option<String>,
    /// Objects at least this large are uploaded in parts, in MiB (S3's
    /// minimum part is 5 MiB).
    pub multipart_threshold_mib: u64,
    /// Part size of multipart uploads, in MiB (at least 5).
    pub part_size_mib: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            force_path_style: false,
            sse: Sse::None,
            sse_kms_key_id: None,
            multipart_threshold_mib: 64,
            part_size_mib: 16,
        }
    }
}

/// The record source.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// NDJSON file to read, or `"-"` for stdin. A file's byte offset is
    /// checkpointed so a killed run resumes without loss or duplicates;
    /// stdin cannot be rewound and is delivered at least once.
    pub path: String,
    /// Table every record goes to, unless `route_field` is set.
    pub table: String,
    /// Route each record by this top-level field's value (the table name)
    /// instead of a fixed table; records whose value names no table are
    /// written to the error prefix as `unrouted`.
    pub route_field: Option<String>,
    /// Value of the `source` column added to every row. Defaults to the
    /// input file's name, or `stdin`.
    pub source: Option<String>,
    /// Records larger than this many bytes are rejected as
    /// `record_too_large` (Kinesis's own limit is 1 MiB).
    pub max_record_bytes: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            path: "-".into(),
            table: "taxi_trips".into(),
            route_field: None,
            source: None,
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// Buffering per partition, Firehose style: an object is written when its
/// buffer reaches `size_mib` or has been open for `interval_seconds`,
/// whichever comes first; `memory_cap_mib` bounds the process's memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Flush a partition's buffer once its encoded (compressed) size
    /// reaches this many MiB. Firehose allows 1..=128 for Parquet; any
    /// positive value works here.
    pub size_mib: u64,
    /// Flush a partition's buffer this many seconds after its first record
    /// arrived (Firehose's buffering interval; 0 flushes after every input
    /// chunk).
    pub interval_seconds: u64,
    /// Memory target for the whole process, in MiB. Buffers may hold three
    /// quarters of it (measured as the input bytes of the records they hold,
    /// an upper bound of their Arrow form) less what the duplicate windows
    /// hold (`[dedup]`, about 32 MiB for a full million-id window); the
    /// rest is headroom for chunks in flight and objects being encoded. The
    /// file source reads in blocks of 1/128 of it (256 KiB to 4 MiB). When
    /// the buffers' share is reached, the largest buffers are flushed first
    /// until they hold half of it. Peak memory stays near this figure
    /// whatever the input size; a lower cap means smaller objects when there
    /// are many partitions. Under a cap below 512 MiB freed memory goes
    /// back to the OS sooner (after 100 ms, or 5 ms below 256 MiB), which
    /// keeps the peak within the cap plus 64 MiB for a little throughput
    /// (`MIMALLOC_PURGE_DELAY`, in ms, overrides this).
    pub memory_cap_mib: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            size_mib: 128,
            interval_seconds: 360,
            memory_cap_mib: 512,
        }
    }
}

/// Key material for the `hash` mask (HMAC-SHA256). The key never appears in
/// logs; prefer the environment variable over the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Environment variable holding the key.
    pub key_env: String,
    /// The key itself. Discouraged: a key in a file travels with the file.
    pub key: Option<String>,
    /// Use a fixed, publicly known key when none is configured. Hashes made
    /// with it are reversible by anyone with a dictionary: for local trials
    /// only, and lakehose warns at start.
    pub insecure_dev_key: bool,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            key_env: "LAKEHOSE_MASK_KEY".into(),
            key: None,
            insecure_dev_key: false,
        }
    }
}

/// Which catalog tables and partitions go to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatalogKind {
    /// `glue` when `[s3]` is set, else `lake`.
    #[default]
    Auto,
    /// A JSON document per table inside the lake (`_lakehose/catalog/`).
    Lake,
    /// The AWS Glue Data Catalog.
    Glue,
}

/// The catalog tables and partitions are registered in.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// `auto`, `lake` or `glue`.
    pub kind: CatalogKind,
    /// Glue database name (also used by the local catalog). Created when
    /// missing.
    pub database: String,
    /// Base location written into table definitions, e.g.
    /// `s3://my-bucket/lake/`. Defaults to the local lake's `file://` URL.
    pub location: Option<String>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            kind: CatalogKind::Auto,
            database: "lakehose".into(),
            location: None,
        }
    }
}

/// The fixed development key used only when `insecure_dev_key` is on.
pub const INSECURE_DEV_KEY: &[u8] = b"lakehose-insecure-dev-key-do-not-use-in-production";

impl Config {
    /// Read and check a TOML config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Parse TOML text; the error is one line naming the offending key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.buffer.size_mib == 0 {
            return Err("buffer.size_mib must be at least 1".into());
        }
        if self.buffer.memory_cap_mib == 0 {
            return Err("buffer.memory_cap_mib must be at least 1".into());
        }
        if self.input.max_record_bytes == 0 {
            return Err("input.max_record_bytes must be at least 1".into());
        }
        if !self.prefix.is_empty() && !self.prefix.ends_with('/') {
            return Err(format!("prefix {:?} must end with '/'", self.prefix));
        }
        if let Some(k) = &self.kinesis {
            if k.stream.is_empty() {
                return Err("kinesis.stream is required".into());
            }
            if !(1..=10_000).contains(&k.max_records) {
                return Err("kinesis.max_records must be in 1..=10000".into());
            }
        }
        if let Some(s3) = &self.s3 {
            if s3.bucket.is_empty() {
                return Err("s3.bucket is required".into());
            }
            if s3.part_size_mib < 5 {
                return Err("s3.part_size_mib must be at least 5 (S3's minimum part)".into());
            }
            if s3.sse_kms_key_id.is_some() && s3.sse != Sse::AwsKms {
                return Err("s3.sse_kms_key_id needs s3.sse = \"aws-kms\"".into());
            }
        }
        if self.catalog.kind == CatalogKind::Glue && self.s3.is_none() {
            return Err(
                "catalog.kind = \"glue\" needs an [s3] lake: Athena cannot read a local directory"
                    .into(),
            );
        }
        Ok(())
    }

    /// The catalog in effect once `auto` is resolved.
    pub fn catalog_kind(&self) -> CatalogKind {
        match (self.catalog.kind, &self.s3) {
            (CatalogKind::Auto, Some(_)) => CatalogKind::Glue,
            (CatalogKind::Auto, None) => CatalogKind::Lake,
            (k, _) => k,
        }
    }

    /// The HMAC key for the `hash` mask, or a clear error when none is set.
    pub fn mask_key(&self) -> Result<Vec<u8>> {
        if let Ok(k) = std::env::var(&self.mask.key_env) {
            if !k.is_empty() {
                return Ok(k.into_bytes());
            }
        }
        if let Some(k) = &self.mask.key {
            if !k.is_empty() {
                return Ok(k.clone().into_bytes());
            }
        }
        if self.mask.insecure_dev_key {
            return Ok(INSECURE_DEV_KEY.to_vec());
        }
        Err(Error::MaskKey(format!(
            "no key for the `hash` mask: set {} (or mask.key in the config), or pass --insecure-dev-key for a local trial",
            self.mask.key_env
        )))
    }
}

/// toml's errors span several lines with a source excerpt; operators get one.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("", Ok(())),
            ("lake = \"/tmp/x\"\n[buffer]\nsize_mib = 5", Ok(())),
            ("[buffer]\nsize_mb = 5", Err("unknown field")), // typo must not fall back to a default
            ("[buffer]\nsize_mib = 0", Err("at least 1")),
            ("prefix = \"raw\"", Err("must end with '/'")),
            ("bogus = 1", Err("unknown field")),
            ("lake = ", Err("")), // broken TOML is an error, whatever toml says
            ("[kinesis]\nstream = \"s\"\nstart = \"latest\"", Ok(())),
            (
                "[kinesis]\nstart = \"latest\"",
                Err("kinesis.stream is required"),
            ),
            (
                "[kinesis]\nstream = \"s\"\nstart = \"oldest\"",
                Err("unknown variant"),
            ),
            (
                "[s3]\nbucket = \"b\"\nsse = \"aws-kms\"\nsse_kms_key_id = \"k\"",
                Ok(()),
            ),
            (
                "[s3]\nbucket = \"b\"\nsse_kms_key_id = \"k\"",
                Err("needs s3.sse"),
            ),
            ("[s3]\nbucket = \"b\"\npart_size_mib = 1", Err("at least 5")),
            (
                "[s3]\nbucket = \"b\"\naccess_key = \"AKIA\"",
                Err("unknown field"),
            ), // no secrets in files
            ("[catalog]\nkind = \"glue\"", Err("needs an [s3] lake")),
        ];
        for (text, want) in cases {
            let got = Config::parse(text);
            match (want, got) {
                (Ok(()), Ok(_)) => {}
                (Err(needle), Err(msg)) => {
                    assert!(msg.contains(needle), "{text:?}: {msg}");
                    assert!(!msg.contains('\n'), "one line: {msg:?}");
                }
                (w, g) => panic!("{text:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::default();
        assert_eq!(c.buffer.size_mib, 128);
        assert_eq!(c.buffer.interval_seconds, 360);
        assert_eq!(c.lake, PathBuf::from("./lake"));
        assert_eq!(c.input.table, "taxi_trips");
    }

    #[test]
    fn mask_key_sources() {
        let mut c = Config::default();
        c.mask.key_env = "LAKEHOSE_TEST_KEY_THAT_IS_UNSET".into();
        assert!(c.mask_key().is_err());
        c.mask.insecure_dev_key = true;
        assert_eq!(c.mask_key().unwrap(), INSECURE_DEV_KEY);
        c.mask.key = Some("k1".into());
        assert_eq!(c.mask_key().unwrap(), b"k1");
    }
}

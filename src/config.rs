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
    /// an upper bound of their Arrow form); the rest is headroom for chunks
    /// in flight and objects being encoded. When the buffers' share is
    /// reached, the largest buffers are flushed first until they hold half
    /// of it. Peak memory stays near this figure whatever the input size;
    /// a lower cap means smaller objects when there are many partitions.
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

/// The catalog tables and partitions are registered in.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Glue database name (also used by the local catalog).
    pub database: String,
    /// Base location written into table definitions, e.g.
    /// `s3://my-bucket/lake/`. Defaults to the local lake's `file://` URL.
    pub location: Option<String>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
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
        Ok(())
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

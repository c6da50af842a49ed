//! Tables are defined by schema files: one JSON Schema (draft 2020-12) per
//! table in the schemas directory, plus the `x-lakehose` extension object
//! that says which fields are event time, timestamps, partition keys, the
//! record id and what to mask. Everything else (validator, Arrow schema,
//! Glue table, Athena DDL) is derived from it, so onboarding a source is
//! adding a file.

pub mod columns;
pub mod glue;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::transform::mask::MaskKind;
use crate::transform::timestamp::EpochUnit;
pub use columns::{Column, ColumnType};

/// Names the lake layout reserves: `errors/` is the error prefix and `_*`
/// holds lakehose's own state.
const RESERVED_TABLES: &[&str] = &["errors"];

/// A Hive partition key taken from a record field.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartitionField {
    /// Partition key name in paths and in Glue (lowercase, and never equal to
    /// a column name: Glue rejects that).
    pub name: String,
    /// Top-level record field whose value becomes the partition value.
    pub field: String,
}

/// The `x-lakehose` extension object, as written in the schema file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    table: Option<String>,
    event_time: Option<String>,
    #[serde(default)]
    timestamps: Vec<String>,
    /// "auto" (by magnitude), "s" or "ms": how bare epoch numbers are read.
    #[serde(default)]
    epoch_unit: Option<String>,
    #[serde(default)]
    partition: Vec<PartitionField>,
    record_id: Option<String>,
    #[serde(default)]
    mask: BTreeMap<String, String>,
}

/// The checked `x-lakehose` extension.
#[derive(Debug, Clone)]
pub struct Extension {
    /// Table name (defaults to the file stem).
    pub table: String,
    /// Field (dotted path) whose time decides the time partition; arrival
    /// time is used when absent.
    pub event_time: Option<String>,
    /// Fields (dotted paths) standardised to UTC timestamps.
    pub timestamps: Vec<String>,
    pub epoch_unit: EpochUnit,
    pub partition: Vec<PartitionField>,
    /// Field that identifies a record (used to drop producer duplicates).
    pub record_id: Option<String>,
    /// Dotted path -> mask kind, in path order.
    pub mask: Vec<(String, MaskKind)>,
}

/// One table: its schema file and everything derived from it.
pub struct TableSchema {
    pub name: String,
    pub path: PathBuf,
    pub ext: Extension,
    /// Lowercase data columns in schema order, then the source column.
    pub columns: Vec<Column>,
    pub arrow: SchemaRef,
    /// The schema file as parsed (for the catalog and replays).
    pub raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for TableSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSchema")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Name of the column that carries each record's source tag.
pub const SOURCE_COLUMN: &str = "source";
/// The time partition keys, outermost first.
pub const TIME_PARTITION_KEYS: [&str; 4] = ["year", "month", "day", "hour"];

impl TableSchema {
    /// Load and check one schema file.
    pub fn load(path: &Path) -> Result<TableSchema> {
        let err = |message: String| Error::Schema {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let raw: Value =
            serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        Self::from_value(raw, &stem, path).map_err(err)
    }

    /// Build from an already parsed schema; `default_name` is used when the
    /// extension names no table.
    pub fn from_value(raw: Value, default_name: &str, path: &Path) -> Result<TableSchema, String> {
        if raw.get("type").and_then(Value::as_str) != Some("object") {
            return Err("the top-level schema must have \"type\": \"object\"".into());
        }
        let ext_raw: RawExtension = match raw.get("x-lakehose") {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("x-lakehose: {e}"))?,
            None => return Err("missing the \"x-lakehose\" extension object".into()),
        };
        let ext = check_extension(ext_raw, default_name)?;
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&raw)
            .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        let columns = columns::derive_columns(&raw, &ext)?;
        check_names(&ext, &columns)?;
        let arrow = Arc::new(columns::arrow_schema(&columns));
        Ok(TableSchema {
            name: ext.table.clone(),
            path: path.to_owned(),
            ext,
            columns,
            arrow,
            raw,
            validator,
        })
    }

    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// Partition key names, time keys first: `year, month, day, hour, <fields>`.
    pub fn partition_keys(&self) -> Vec<String> {
        TIME_PARTITION_KEYS
            .iter()
            .map(|s| s.to_string())
            .chain(self.ext.partition.iter().map(|p| p.name.clone()))
            .collect()
    }
}

fn check_extension(raw: RawExtension, default_name: &str) -> Result<Extension, String> {
    let table = raw.table.unwrap_or_else(|| default_name.to_owned());
    if table.is_empty()
        || !table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || table.starts_with('_')
    {
        return Err(format!(
            "table name {table:?} must be lowercase letters, digits and '_' and not start with '_' (Athena and the lake layout need it)"
        ));
    }
    if RESERVED_TABLES.contains(&table.as_str()) {
        return Err(format!(
            "table name {table:?} is reserved for the error prefix"
        ));
    }
    let epoch_unit = match raw.epoch_unit.as_deref() {
        None | Some("auto") => EpochUnit::Auto,
        Some("s") => EpochUnit::Seconds,
        Some("ms") => EpochUnit::Millis,
        Some(other) => {
            return Err(format!(
                "x-lakehose.epoch_unit {other:?} must be \"auto\", \"s\" or \"ms\""
            ))
        }
    };
    let mut timestamps = raw.timestamps;
    if let Some(et) = &raw.event_time {
        // The event time must be parsed to partition on it.
        if !timestamps.contains(et) {
            timestamps.push(et.clone());
        }
    }
    let mut mask = Vec::new();
    for (path, kind) in raw.mask {
        let kind: MaskKind = kind
            .parse()
            .map_err(|e| format!("x-lakehose.mask.{path}: {e}"))?;
        if timestamps.contains(&path) {
            return Err(format!("{path:?} cannot be both a timestamp and masked"));
        }
        mask.push((path, kind));
    }
    Ok(Extension {
        table,
        event_time: raw.event_time,
        timestamps,
        epoch_unit,
        partition: raw.partition,
        record_id: raw.record_id,
        mask,
    })
}

fn check_names(ext: &Extension, columns: &[Column]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for c in columns {
        if !seen.insert(c.name.as_str()) {
            return Err(format!(
                "two fields map to the column {:?} (Athena lowercases column names)",
                c.name
            ));
        }
    }
    let mut keys = HashSet::new();
    for key in TIME_PARTITION_KEYS
        .iter()
        .copied()
        .chain(ext.partition.iter().map(|p| p.name.as_str()))
    {
        if !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || key.is_empty()
        {
            return Err(format!(
                "partition key {key:?} must be lowercase letters, digits and '_'"
            ));
        }
        if seen.contains(key) {
            return Err(format!(
                "partition key {key:?} equals a column name (Glue rejects that); rename the partition"
            ));
        }
        if !keys.insert(key) {
            return Err(format!("partition key {key:?} appears twice"));
        }
    }
    for p in &ext.partition {
        if !columns.iter().any(|c| c.source == p.field) {
            return Err(format!(
                "partition field {:?} is not a top-level property of the schema",
                p.field
            ));
        }
    }
    Ok(())
}

/// All tables of a schemas directory, by name.
#[derive(Debug, Default)]
pub struct Registry {
    tables: Vec<Arc<TableSchema>>,
}

impl Registry {
    /// Load every `*.json` file in `dir`. Any invalid file fails the load:
    /// running with a table silently missing would route its records to errors.
    pub fn load_dir(dir: &Path) -> Result<Registry> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::Schema {
            path: dir.to_owned(),
            message: format!("cannot read the schemas directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Error::Schema {
                path: dir.to_owned(),
                message: "no *.json schema files".into(),
            });
        }
        let mut reg = Registry::default();
        for p in paths {
            let t = TableSchema::load(&p)?;
            if let Some(other) = reg.get(&t.name) {
                return Err(Error::Schema {
                    path: p,
                    message: format!(
                        "table {:?} is also defined in {}",
                        t.name,
                        other.path.display()
                    ),
                });
            }
            reg.tables.push(Arc::new(t));
        }
        Ok(reg)
    }

    pub fn from_tables(tables: Vec<TableSchema>) -> Registry {
        Registry {
            tables: tables.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TableSchema>> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }

    pub fn by_index(&self, i: usize) -> &Arc<TableSchema> {
        &self.tables[i]
    }

    pub fn tables(&self) -> &[Arc<TableSchema>] {
        &self.tables
    }

    /// The table or an error listing the known ones.
    pub fn require(&self, name: &str) -> Result<&Arc<TableSchema>> {
        self.get(name).ok_or_else(|| Error::UnknownTable {
            table: name.to_owned(),
            known: self.names().join(", "),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(ext: Value) -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "VendorID": {"type": "integer"},
                "ts": {"type": ["string", "integer"]},
                "user": {"type": "object", "properties": {"email": {"type": "string"}}}
            },
            "x-lakehose": ext
        })
    }

    #[test]
    fn extension_checks() {
        let cases: Vec<(Value, Result<(), &str>)> = vec![
            (
                json!({"table": "t", "event_time": "ts", "partition": [{"name": "vendor", "field": "VendorID"}]}),
                Ok(()),
            ),
            // Glue rejects a partition key equal to a column name.
            (
                json!({"table": "t", "partition": [{"name": "vendorid", "field": "VendorID"}]}),
                Err("equals a column name"),
            ),
            (
                json!({"table": "t", "partition": [{"name": "v", "field": "nope"}]}),
                Err("not a top-level property"),
            ),
            (json!({"table": "errors"}), Err("reserved")),
            (json!({"table": "Bad-Name"}), Err("must be lowercase")),
            (
                json!({"table": "t", "mask": {"user.email": "scramble"}}),
                Err("x-lakehose.mask.user.email"),
            ),
            (json!({"table": "t", "epoch_unit": "us"}), Err("epoch_unit")),
            (
                json!({"table": "t", "unknown_key": 1}),
                Err("unknown field"),
            ),
            (
                json!({"table": "t", "partition": [{"name": "year", "field": "VendorID"}]}),
                Err("appears twice"),
            ),
        ];
        for (ext, want) in cases {
            let got = TableSchema::from_value(base(ext.clone()), "x", Path::new("x.json"));
            match (want, got) {
                (Ok(()), Ok(_)) => {}
                (Err(needle), Err(msg)) => assert!(msg.contains(needle), "{ext}: {msg}"),
                (w, g) => panic!("{ext}: want {w:?}, got {:?}", g.map(|t| t.name)),
            }
        }
    }

    #[test]
    fn schema_shape_errors() {
        let no_ext = json!({"type": "object", "properties": {}});
        assert!(TableSchema::from_value(no_ext, "x", Path::new("x.json"))
            .unwrap_err()
            .contains("x-lakehose"));
        let not_object = json!({"type": "array", "x-lakehose": {}});
        assert!(
            TableSchema::from_value(not_object, "x", Path::new("x.json"))
                .unwrap_err()
                .contains("type")
        );
        let bad_schema =
            json!({"type": "object", "properties": {"a": {"type": "strnig"}}, "x-lakehose": {}});
        assert!(
            TableSchema::from_value(bad_schema, "x", Path::new("x.json"))
                .unwrap_err()
                .contains("invalid JSON Schema")
        );
    }

    #[test]
    fn event_time_is_a_timestamp() {
        let t = TableSchema::from_value(
            base(json!({"event_time": "ts"})),
            "tbl",
            Path::new("tbl.json"),
        )
        .unwrap();
        assert_eq!(t.name, "tbl");
        assert_eq!(t.ext.timestamps, vec!["ts".to_string()]);
        assert_eq!(t.partition_keys(), vec!["year", "month", "day", "hour"]);
    }
}

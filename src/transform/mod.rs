//! Per-record transform: parse -> route -> validate -> timestamps ->
//! source tag -> mask -> partition.
//!
//! A record that fails any step becomes a [`FailedRecord`] (data for the
//! error prefix), never an `Err`: one bad record must not stop the rest.
//! Failed records are masked too whenever they parse, so no raw PII is
//! ever written anywhere.

pub mod compiled;
pub mod dedup;
pub mod mask;
pub mod row;
pub mod timestamp;

use std::sync::Arc;

use serde_json::Value;

use crate::partition;
use crate::schema::{Registry, TableSchema, SOURCE_COLUMN};
use compiled::CompiledTable;
use dedup::DedupWindow;
use mask::{MaskKind, Masker};
use row::Row;
use timestamp::parse_timestamp;

/// Why a record went to the error prefix. The names are the category folder
/// names and the `errorCode` of error records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    InvalidJson,
    SchemaViolation,
    TimestampUnparseable,
    Unrouted,
    RecordTooLarge,
}

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 5] = [
        ErrorCategory::InvalidJson,
        ErrorCategory::SchemaViolation,
        ErrorCategory::TimestampUnparseable,
        ErrorCategory::Unrouted,
        ErrorCategory::RecordTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::InvalidJson => "invalid_json",
            ErrorCategory::SchemaViolation => "schema_violation",
            ErrorCategory::TimestampUnparseable => "timestamp_unparseable",
            ErrorCategory::Unrouted => "unrouted",
            ErrorCategory::RecordTooLarge => "record_too_large",
        }
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a record failed: a JSON pointer into the record, the JSON
/// Schema keyword (or `timestamp`), and a message that never quotes a
/// sensitive value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    pub path: String,
    pub keyword: String,
    pub message: String,
}

/// A record that goes to the error prefix.
#[derive(Debug, Clone)]
pub struct FailedRecord {
    /// Table index in the registry, or None when the record was not routed.
    pub table: Option<usize>,
    pub category: ErrorCategory,
    pub message: String,
    pub details: Vec<Detail>,
    /// The record as stored: the original bytes when they do not parse,
    /// else the parsed record with its sensitive fields masked.
    pub data: Vec<u8>,
    /// Mask paths already applied to `data` (so a replay does not mask twice).
    pub masked_fields: Vec<String>,
}

/// A record ready for its partition's buffer.
#[derive(Debug, Clone)]
pub struct Transformed {
    pub table: usize,
    /// Where `<table>/<partition path>`, the buffer it goes to, is in the
    /// text of the [`Row`] it was transformed into: start and length (see
    /// [`Transformed::route`]). Kept there, not in a String of its own: an
    /// allocation per record, freed on another thread.
    pub route_span: (u32, u32),
    /// Where the partition path starts in the route.
    pub partition_at: u32,
    /// Where the record's top-level cells start in the [`Row`] it was
    /// transformed into: the validated record in column order, timestamps
    /// as epoch millis, source tag added, sensitive fields masked.
    pub top: u32,
    /// Digest of the record id ([`DedupWindow::digest`]), for tables with
    /// a `record_id` whose value is a string or number.
    pub id_digest: Option<u64>,
    /// Size of the input record, used to account buffer memory.
    pub input_bytes: usize,
}

impl Transformed {
    /// `<table>/<partition path>`; `rows` is the row it was transformed into.
    pub fn route<'r>(&self, rows: &'r Row) -> &'r str {
        rows.str(self.route_span.0, self.route_span.1)
    }

    /// `year=YYYY/month=MM/day=DD/hour=HH/<key>=<value>...`
    pub fn partition<'r>(&self, rows: &'r Row) -> &'r str {
        &self.route(rows)[self.partition_at as usize..]
    }
}

/// Result of transforming one record.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(Transformed),
    Failed(FailedRecord),
}

thread_local! {
    /// A route being made on the compiled path, kept across records.
    static ROUTE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// How records find their table.
#[derive(Debug, Clone)]
pub enum Routing {
    /// Every record goes to this table (index into the registry).
    Fixed(usize),
    /// The named top-level field holds the table name.
    Field(String),
}

/// Everything the per-record transform needs; shared read-only by all
/// worker threads.
pub struct Transformer {
    registry: Arc<Registry>,
    /// Per table, its compiled transform (None: the general path only).
    compiled: Vec<Option<CompiledTable>>,
    maskers: Vec<Masker>,
    /// Union of every table's mask rules, for records that reach no table:
    /// their sensitive fields must not land in the error prefix either.
    unrouted_masker: Masker,
    routing: Routing,
    source: String,
    max_record_bytes: usize,
    /// The most cells a record of any table takes, roughly.
    cells_per_record: usize,
}

impl Transformer {
    pub fn new(
        registry: Arc<Registry>,
        key: &[u8],
        routing: Routing,
        source: String,
        max_record_bytes: usize,
    ) -> Result<Transformer, String> {
        let mut maskers = Vec::new();
        let mut all_rules: Vec<(String, MaskKind)> = Vec::new();
        for t in registry.tables() {
            maskers
                .push(Masker::new(key, &t.ext.mask).map_err(|e| format!("table {}: {e}", t.name))?);
            for rule in &t.ext.mask {
                if !all_rules.iter().any(|(p, _)| p == &rule.0) {
                    all_rules.push(rule.clone());
                }
            }
        }
        let unrouted_masker = Masker::new(key, &all_rules)?;
        let compiled = registry
            .tables()
            .iter()
            .map(|t| match CompiledTable::compile(t) {
                Ok(c) => Some(c),
                Err(why) => {
                    tracing::info!(table = %t.name, why, "schema not compiled: the table's records take the general path (slower, same results)");
                    None
                }
            })
            .collect();
        let cells_per_record = registry
            .tables()
            .iter()
            .map(|t| Row::cells_per_record(&t.columns))
            .max()
            .unwrap_or(0);
        Ok(Transformer {
            registry,
            compiled,
            cells_per_record,
            maskers,
            unrouted_masker,
            routing,
            source,
            max_record_bytes,
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// An empty [`Row`] with room for the rows of `records` records of
    /// `bytes` bytes in all: their text, route included, takes about a
    /// third of their JSON (the taxi events'); it grows if need be.
    pub fn rows_for(&self, records: usize, bytes: usize) -> Row {
        Row::with_capacity(records * self.cells_per_record, bytes / 3)
    }

    /// Transform a record; a good one's row is appended to `rows`.
    /// `arrival_ms` is used as event time for tables that declare none.
    pub fn transform(&self, raw: &[u8], arrival_ms: i64, rows: &mut Row) -> Outcome {
        if raw.len() <= self.max_record_bytes {
            if let Some(tr) = self.transform_compiled(raw, arrival_ms, rows) {
                return Outcome::Ok(tr);
            }
        }
        self.transform_with(raw, arrival_ms, None, &[], &[], None, rows)
    }

    /// The compiled path (see [`compiled`]): Some for a record it proves
    /// good, None to leave the record to the general path.
    pub fn transform_compiled(
        &self,
        raw: &[u8],
        arrival_ms: i64,
        rows: &mut Row,
    ) -> Option<Transformed> {
        let table = match &self.routing {
            Routing::Fixed(t) => *t,
            Routing::Field(f) => self.registry.index_of(&route_field(raw, f)?)?,
        };
        let compiled = self.compiled[table].as_ref()?;
        let schema = self.registry.by_index(table);
        let d = compiled.decode(raw, &self.maskers[table], &self.source, rows)?;
        // Made aside: the partition values it is made of are in the row's
        // text, which it is then appended to.
        let (route_span, partition_at) = ROUTE.with_borrow_mut(|route| {
            route.clear();
            let at = partition::route_into(route, schema, d.event_ms.unwrap_or(arrival_ms), |i| {
                d.partition_value(rows, i)
            });
            let start = rows.text.len() as u32;
            rows.text.push_str(route);
            ((start, route.len() as u32), at as u32)
        });
        let id_digest = d.record_id(rows).map(DedupWindow::digest);
        Some(Transformed {
            table,
            route_span,
            partition_at,
            top: d.top,
            id_digest,
            input_bytes: raw.len(),
        })
    }

    /// Re-run a stored error record (replay): `table` is the table it was
    /// filed under (None: route it as live data), `premasked` the mask
    /// paths its stored form already carries (not masked again), `trusted`
    /// those of them whose violations are not held against the record: the
    /// stored value is a mask, not what the producer sent, and it passed
    /// validation the first time. `source` is the record's original source,
    /// kept in the `source` column. A good record's row is appended to
    /// `rows`.
    #[allow(clippy::too_many_arguments)]
    pub fn retransform(
        &self,
        raw: &[u8],
        arrival_ms: i64,
        table: Option<usize>,
        premasked: &[String],
        trusted: &[String],
        source: &str,
        rows: &mut Row,
    ) -> Outcome {
        self.transform_with(
            raw,
            arrival_ms,
            table,
            premasked,
            trusted,
            Some(source),
            rows,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn transform_with(
        &self,
        raw: &[u8],
        arrival_ms: i64,
        table_override: Option<usize>,
        premasked: &[String],
        trusted: &[String],
        source: Option<&str>,
        rows: &mut Row,
    ) -> Outcome {
        let too_large = raw.len() > self.max_record_bytes;
        let parsed: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                let (category, message) = if too_large {
                    (
                        ErrorCategory::RecordTooLarge,
                        self.too_large_message(raw.len()),
                    )
                } else {
                    (ErrorCategory::InvalidJson, format!("invalid JSON: {e}"))
                };
                return Outcome::Failed(FailedRecord {
                    // With a fixed table the record's table is known even unparsed.
                    table: table_override.or(match self.routing {
                        Routing::Fixed(t) => Some(t),
                        Routing::Field(_) => None,
                    }),
                    category,
                    message,
                    details: Vec::new(),
                    data: raw.to_vec(),
                    masked_fields: Vec::new(),
                });
            }
        };
        let routed = match table_override {
            Some(t) => Ok(t),
            None => self.route(&parsed),
        };
        let table = match routed {
            Ok(t) => t,
            Err(message) => {
                return Outcome::Failed(self.failed(
                    None,
                    ErrorCategory::Unrouted,
                    message,
                    Vec::new(),
                    parsed,
                    premasked,
                ))
            }
        };
        if too_large {
            let message = self.too_large_message(raw.len());
            return Outcome::Failed(self.failed(
                Some(table),
                ErrorCategory::RecordTooLarge,
                message,
                Vec::new(),
                parsed,
                premasked,
            ));
        }
        let schema = self.registry.by_index(table);
        let validator = schema.validator();
        let mut details = Vec::new();
        if !validator.is_valid(&parsed) {
            details = self.violations(schema, &parsed);
            details.retain(|d| !trusted.iter().any(|m| at_or_below(&d.path, m)));
        }
        if !details.is_empty() {
            let message = format!(
                "{} schema violation{}: {}",
                details.len(),
                if details.len() == 1 { "" } else { "s" },
                details
                    .iter()
                    .map(|d| format!("{} ({})", d.path, d.keyword))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Outcome::Failed(self.failed(
                Some(table),
                ErrorCategory::SchemaViolation,
                message,
                details,
                parsed,
                premasked,
            ));
        }
        let mut value = parsed;
        let mut event_ms = if schema.ext.event_time.is_none() {
            Some(arrival_ms)
        } else {
            None
        };
        for path in &schema.ext.timestamps {
            let is_event_time = schema.ext.event_time.as_deref() == Some(path.as_str());
            let slot = lookup_mut(&mut value, path);
            let ms = match slot {
                Some(v) if !v.is_null() => match parse_timestamp(v, schema.ext.epoch_unit) {
                    Ok(ms) => {
                        *v = Value::from(ms);
                        ms
                    }
                    Err(e) => {
                        let detail = Detail {
                            path: pointer(path),
                            keyword: "timestamp".into(),
                            message: e.to_string(),
                        };
                        return self.timestamp_failure(table, raw, detail, premasked);
                    }
                },
                _ if is_event_time => {
                    let detail = Detail {
                        path: pointer(path),
                        keyword: "timestamp".into(),
                        message: "the event time field is missing or null".into(),
                    };
                    return self.timestamp_failure(table, raw, detail, premasked);
                }
                _ => continue,
            };
            if is_event_time {
                event_ms = Some(ms);
            }
        }
        if let Value::Object(map) = &mut value {
            let source = source.unwrap_or(&self.source);
            map.insert(SOURCE_COLUMN.to_owned(), Value::String(source.to_owned()));
        }
        self.maskers[table].apply_except(&mut value, premasked);
        let start = rows.text.len();
        let partition_at = partition::route_into(
            &mut rows.text,
            schema,
            event_ms.unwrap_or(arrival_ms),
            |i| partition::field_text(&value, &schema.ext.partition[i].field),
        );
        let route_span = (start as u32, (rows.text.len() - start) as u32);
        let id_digest = schema
            .ext
            .record_id
            .as_deref()
            .and_then(|f| record_digest(&value, f));
        Outcome::Ok(Transformed {
            table,
            route_span,
            partition_at: partition_at as u32,
            top: rows.push_value(&schema.columns, &value),
            id_digest,
            input_bytes: raw.len(),
        })
    }

    fn too_large_message(&self, len: usize) -> String {
        format!(
            "record is {len} bytes, over the limit of {} bytes (input.max_record_bytes)",
            self.max_record_bytes
        )
    }

    fn route(&self, v: &Value) -> Result<usize, String> {
        match &self.routing {
            Routing::Fixed(t) => Ok(*t),
            Routing::Field(f) => match v.get(f) {
                Some(Value::String(name)) => self.registry.index_of(name).ok_or_else(|| {
                    format!("routing field {f:?} names {name:?}, which is no known table")
                }),
                Some(_) => Err(format!("routing field {f:?} is not a string")),
                None => Err(format!("routing field {f:?} is missing")),
            },
        }
    }

    /// Every violation, with messages that do not quote sensitive values.
    fn violations(&self, schema: &TableSchema, v: &Value) -> Vec<Detail> {
        schema
            .validator()
            .iter_errors(v)
            .map(|e| {
                let mut path = e.instance_path().as_str().to_owned();
                // A missing property is reported where it should have been,
                // so summaries can say which field is missing.
                if let jsonschema::error::ValidationErrorKind::Required {
                    property: Value::String(p),
                } = e.kind()
                {
                    path = format!("{path}/{}", p.replace('~', "~0").replace('/', "~1"));
                }
                let message = if touches_masked(&path, &schema.ext.mask) {
                    e.masked_with("<masked>").to_string()
                } else {
                    e.to_string()
                };
                Detail {
                    keyword: e.kind().keyword().to_owned(),
                    path,
                    message,
                }
            })
            .collect()
    }

    fn timestamp_failure(
        &self,
        table: usize,
        raw: &[u8],
        detail: Detail,
        premasked: &[String],
    ) -> Outcome {
        // The value was partly rewritten already; store the record as it came.
        let original: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let message = format!("{}: {}", detail.path, detail.message);
        Outcome::Failed(self.failed(
            Some(table),
            ErrorCategory::TimestampUnparseable,
            message,
            vec![detail],
            original,
            premasked,
        ))
    }

    fn failed(
        &self,
        table: Option<usize>,
        category: ErrorCategory,
        message: String,
        details: Vec<Detail>,
        mut parsed: Value,
        premasked: &[String],
    ) -> FailedRecord {
        let masker = match table {
            Some(t) => &self.maskers[t],
            None => &self.unrouted_masker,
        };
        masker.apply_except(&mut parsed, premasked);
        FailedRecord {
            table,
            category,
            message,
            details,
            data: serde_json::to_vec(&parsed).unwrap_or_default(),
            masked_fields: masker.rules().iter().map(|r| r.path.clone()).collect(),
        }
    }
}

/// The digest of a record id at a dotted path (strings as they are,
/// numbers in their JSON form, as the id column reads back); None when
/// absent or not a scalar.
fn record_digest(v: &Value, path: &str) -> Option<u64> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) => Some(DedupWindow::digest(s)),
        Value::Number(n) => Some(DedupWindow::digest(&n.to_string())),
        _ => None,
    }
}

/// The routing field's string value, found without building the record
/// (None: not JSON, no such field, or not a string).
fn route_field(raw: &[u8], field: &str) -> Option<String> {
    use serde::de::{self, IgnoredAny, MapAccess, Visitor};
    struct Find<'f>(&'f str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 {
                    // A duplicate routing field: the general path decides.
                    if found.is_some() {
                        return Err(de::Error::custom("duplicate"));
                    }
                    found = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let found = serde::Deserializer::deserialize_map(&mut de, Find(field)).ok()?;
    de.end().ok()?;
    found
}

/// `a.b.c` -> `/a/b/c` (JSON pointer, with `~` and `/` escaped).
fn pointer(path: &str) -> String {
    path.split('.')
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Whether a violation at `instance_path` could quote a masked value: the
/// path is a masked field, inside one, or contains one (the whole record
/// included). Array indices are ignored, as masks apply to every element.
fn touches_masked(instance_path: &str, mask: &[(String, MaskKind)]) -> bool {
    let segs: Vec<&str> = instance_path
        .split('/')
        .skip(1)
        .filter(|s| s.parse::<usize>().is_err())
        .collect();
    mask.iter().any(|(p, _)| {
        let m: Vec<&str> = p.split('.').collect();
        let n = segs.len().min(m.len());
        segs[..n] == m[..n]
    })
}

/// Whether the JSON pointer `path` is the dotted mask path `mask` or inside
/// it (array indices ignored, as masks apply to every element).
pub fn at_or_below(path: &str, mask: &str) -> bool {
    let segs: Vec<&str> = path
        .split('/')
        .skip(1)
        .filter(|s| s.parse::<usize>().is_err())
        .collect();
    let m: Vec<&str> = mask.split('.').collect();
    segs.len() >= m.len() && segs[..m.len()] == m[..]
}

/// The value at a dotted path of objects, if any.
fn lookup_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests;

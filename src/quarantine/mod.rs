//! The error prefix as a working tool: what failed, why, since when.
//!
//! `lakehose errors summary` reads every error object under
//! `<prefix>errors/` and reports, per table and category, the count, the
//! first and last arrival, the most violated fields with their JSON Schema
//! keywords and one sample message; `lakehose errors show` prints the
//! records themselves. Messages and `rawData` are already masked when
//! written, so nothing here can reveal raw PII.

pub mod replay;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::encode::errors::{read_error_object, ErrorRecord};
use crate::error::Result;
use crate::sink::ObjectStore;

/// Which error records to look at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub table: Option<String>,
    pub category: Option<String>,
    /// Only records with a detail at this JSON pointer (e.g. `/rider/email`).
    pub field: Option<String>,
    /// Only records that arrived at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// Only records that arrived before this time (epoch ms).
    pub until_ms: Option<i64>,
}

impl Filter {
    fn keeps(&self, category: &str, rec: &ErrorRecord) -> bool {
        self.category.as_deref().is_none_or(|c| c == category)
            && self.since_ms.is_none_or(|s| rec.arrival_timestamp >= s)
            && self.until_ms.is_none_or(|u| rec.arrival_timestamp < u)
            && self
                .field
                .as_deref()
                .is_none_or(|f| rec.details.iter().any(|d| d.path == f))
    }
}

/// Call `visit(table, category, record)` for every error record the filter
/// keeps, in key order, one object in memory at a time (an error prefix can
/// be far larger than memory). Objects a replay has completed are left
/// out: their records are in the lake or in newer error objects now.
/// `visit` returns false to stop early.
pub fn for_each_record(
    store: &dyn ObjectStore,
    prefix: &str,
    filter: &Filter,
    mut visit: impl FnMut(&str, &str, ErrorRecord) -> bool,
) -> Result<()> {
    let root = format!("{prefix}errors/");
    let scope = match &filter.table {
        Some(t) => format!("{root}{t}/"),
        None => root.clone(),
    };
    let replayed = replay::replayed_keys(store, prefix)?;
    for key in store.list(&scope)? {
        if !key.ends_with(".ndjson.gz") || replayed.contains(&key) {
            continue;
        }
        // errors/<table>/<category>/year=.../<object>
        let mut parts = key[root.len()..].split('/');
        let (Some(table), Some(category)) = (parts.next(), parts.next()) else {
            continue;
        };
        if filter.category.as_deref().is_some_and(|c| c != category) {
            continue;
        }
        let Some(bytes) = store.get(&key)? else {
            continue; // removed while we listed
        };
        for rec in read_error_object(&bytes)? {
            if filter.keeps(category, &rec) && !visit(table, category, rec) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// How often one field failed one keyword.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCount {
    pub path: String,
    pub keyword: String,
    pub count: u64,
}

/// One table and category of the error prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategorySummary {
    /// Table name, or `_unrouted`.
    pub table: String,
    pub category: String,
    pub count: u64,
    pub first_arrival_ms: i64,
    pub last_arrival_ms: i64,
    /// Most frequent (path, keyword) pairs, most frequent first (at most 5).
    pub top_fields: Vec<FieldCount>,
    /// The error message of the earliest record.
    pub sample_message: String,
}

const TOP_FIELDS: usize = 5;

/// Summarise the error prefix `<prefix>errors/` of a lake.
pub fn summarize(
    store: &dyn ObjectStore,
    prefix: &str,
    filter: &Filter,
) -> Result<Vec<CategorySummary>> {
    struct Acc {
        summary: CategorySummary,
        fields: HashMap<(String, String), u64>,
    }
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for_each_record(store, prefix, filter, |table, category, rec| {
        let a = acc
            .entry((table.to_owned(), category.to_owned()))
            .or_insert_with(|| Acc {
                summary: CategorySummary {
                    table: table.to_owned(),
                    category: category.to_owned(),
                    count: 0,
                    first_arrival_ms: i64::MAX,
                    last_arrival_ms: i64::MIN,
                    top_fields: Vec::new(),
                    sample_message: String::new(),
                },
                fields: HashMap::new(),
            });
        let s = &mut a.summary;
        s.count += 1;
        if rec.arrival_timestamp < s.first_arrival_ms || s.sample_message.is_empty() {
            s.sample_message = rec.error_message.clone();
        }
        s.first_arrival_ms = s.first_arrival_ms.min(rec.arrival_timestamp);
        s.last_arrival_ms = s.last_arrival_ms.max(rec.arrival_timestamp);
        for d in &rec.details {
            *a.fields
                .entry((d.path.clone(), d.keyword.clone()))
                .or_default() += 1;
        }
        true
    })?;
    Ok(acc
        .into_values()
        .map(|mut a| {
            let mut top: Vec<FieldCount> = a
                .fields
                .into_iter()
                .map(|((path, keyword), count)| FieldCount {
                    path,
                    keyword,
                    count,
                })
                .collect();
            top.sort_by(|x, y| {
                y.count
                    .cmp(&x.count)
                    .then_with(|| x.path.cmp(&y.path))
                    .then_with(|| x.keyword.cmp(&y.keyword))
            });
            top.truncate(TOP_FIELDS);
            a.summary.top_fields = top;
            a.summary
        })
        .collect())
}

/// The human report.
pub fn render(summaries: &[CategorySummary]) -> String {
    use crate::transform::timestamp::format_iso_millis;
    if summaries.is_empty() {
        return "no error records\n".into();
    }
    let mut out = String::new();
    for s in summaries {
        out.push_str(&format!(
            "{}/{}: {} record{}, first {}, last {}\n",
            s.table,
            s.category,
            s.count,
            if s.count == 1 { "" } else { "s" },
            format_iso_millis(s.first_arrival_ms),
            format_iso_millis(s.last_arrival_ms)
        ));
        for f in &s.top_fields {
            let path = if f.path.is_empty() {
                "(record)"
            } else {
                &f.path
            };
            out.push_str(&format!("    {:>8}  {} ({})\n", f.count, path, f.keyword));
        }
        out.push_str(&format!("    sample: {}\n", s.sample_message));
    }
    out
}

/// One record for `errors show`: the error record with `rawData` decoded
/// (text when it is UTF-8, else base64 as stored). Masked fields stay masked:
/// they were masked before the record was written.
pub fn show_line(table: &str, category: &str, rec: &ErrorRecord) -> serde_json::Value {
    let data = match rec.decode_raw() {
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => v,
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        },
        None => serde_json::Value::String(rec.raw_data.clone()),
    };
    serde_json::json!({
        "table": table,
        "category": category,
        "arrivalTimestamp": crate::transform::timestamp::format_iso_millis(rec.arrival_timestamp),
        "stream": rec.stream,
        "sequenceNumber": rec.sequence_number,
        "errorMessage": rec.error_message,
        "details": rec.details,
        "maskedFields": rec.masked_fields,
        "data": data,
    })
}

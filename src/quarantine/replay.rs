//! `lakehose replay`: run error records through the current schemas again.
//!
//! The unit of replay is one error object. Its records are re-transformed;
//! those that pass become one Parquet object per partition, those that fail
//! again one error object per category (`attemptsMade` + 1). Output names
//! are a function of the source object's key (`replay-<digest>`), so a
//! replay killed midway and run again overwrites what it wrote instead of
//! adding to it. Once every output is written, a marker
//! `<prefix>_lakehose/replay/<error object key>.json` names them: replaying
//! again skips marked objects, and `errors summary`/`show` stop counting
//! them. The error object itself stays unless `--purge` is given.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::encode::errors::{read_error_object, ErrorObject, ErrorRecord};
use crate::encode::parquet::ParquetObject;
use crate::error::{Error, Result};
use crate::sink::ObjectStore;
use crate::transform::row::Row;
use crate::transform::{Outcome, Transformer};

/// Which error objects to replay, and how.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub table: Option<String>,
    pub category: Option<String>,
    /// Objects whose arrival hour (from their key) ends after this, epoch ms.
    pub since_ms: Option<i64>,
    /// Objects whose arrival hour starts before this, epoch ms.
    pub until_ms: Option<i64>,
    /// Count what would pass and fail; write nothing.
    pub dry_run: bool,
    /// Delete each error object once its replay is complete.
    pub purge: bool,
    /// Whether records filed as `_unrouted` can be routed (a routing field
    /// is configured); otherwise they are left alone.
    pub can_route: bool,
}

/// What a replay did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Error objects replayed now.
    pub objects_replayed: u64,
    /// Error objects skipped because an earlier replay marked them done.
    pub objects_already_replayed: u64,
    /// Error objects left alone: unrouted records without a routing field,
    /// or a table no schema defines any more.
    pub objects_left: u64,
    pub records: u64,
    /// Records that now pass, by the category they had failed with.
    pub passed: BTreeMap<String, u64>,
    /// Records that fail again, by their new category.
    pub failed_again: BTreeMap<String, u64>,
    pub data_objects_written: u64,
    pub error_objects_written: u64,
    pub purged: u64,
}

impl ReplayReport {
    pub fn render(&self, dry_run: bool) -> String {
        let (pass, fail) = if dry_run {
            ("would pass", "would still fail")
        } else {
            ("passed", "failed again")
        };
        let mut out = format!(
            "lakehose replay{}\n  error objects: {} to replay, {} already replayed, {} left alone\n  records: {}\n",
            if dry_run { " (dry run: nothing written)" } else { "" },
            self.objects_replayed,
            self.objects_already_replayed,
            self.objects_left,
            self.records
        );
        out += &format!("  {pass}: {}\n", self.passed.values().sum::<u64>());
        for (k, v) in &self.passed {
            out += &format!("    from {k:<24}{v:>10}\n");
        }
        out += &format!("  {fail}: {}\n", self.failed_again.values().sum::<u64>());
        for (k, v) in &self.failed_again {
            out += &format!("    {k:<29}{v:>10}\n");
        }
        if !dry_run {
            out += &format!(
                "  objects written: {} data, {} error; purged: {}\n",
                self.data_objects_written, self.error_objects_written, self.purged
            );
        }
        out
    }
}

/// The marker left for a replayed error object.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    source: String,
    outputs: Vec<String>,
    passed: u64,
    failed_again: u64,
}

/// Where the marker of an error object lives.
pub fn marker_key(prefix: &str, error_key: &str) -> String {
    let rel = error_key.strip_prefix(prefix).unwrap_or(error_key);
    format!("{prefix}_lakehose/replay/{rel}.json")
}

/// Error object keys an earlier replay completed.
pub fn replayed_keys(store: &dyn ObjectStore, prefix: &str) -> Result<HashSet<String>> {
    let root = format!("{prefix}_lakehose/replay/");
    Ok(store
        .list(&root)?
        .into_iter()
        .filter_map(|k| {
            let rel = k.strip_prefix(&root)?.strip_suffix(".json")?;
            Some(format!("{prefix}{rel}"))
        })
        .collect())
}

/// `errors/<table>/<category>/year=Y/month=M/day=D/hour=H/<name>` parts.
struct ErrorKey<'a> {
    table: &'a str,
    category: &'a str,
    time_path: &'a str,
    hour_ms: Option<i64>,
}

fn parse_key<'a>(prefix: &str, key: &'a str) -> Option<ErrorKey<'a>> {
    let rel = key.strip_prefix(prefix)?.strip_prefix("errors/")?;
    let mut it = rel.splitn(3, '/');
    let table = it.next()?;
    let category = it.next()?;
    let rest = it.next()?;
    let (time_path, _) = rest.rsplit_once('/')?;
    let num = |k: &str| -> Option<u32> {
        time_path
            .split('/')
            .find_map(|s| s.strip_prefix(k))
            .and_then(|v| v.parse().ok())
    };
    let hour_ms = (|| {
        let d =
            chrono::NaiveDate::from_ymd_opt(num("year=")? as i32, num("month=")?, num("day=")?)?;
        Some(
            d.and_hms_opt(num("hour=")?, 0, 0)?
                .and_utc()
                .timestamp_millis(),
        )
    })();
    Some(ErrorKey {
        table,
        category,
        time_path,
        hour_ms,
    })
}

/// Replay the error objects `opts` selects, one at a time.
pub fn replay(
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
    transformer: &Transformer,
    prefix: &str,
    opts: &ReplayOptions,
) -> Result<ReplayReport> {
    let registry = transformer.registry().clone();
    let mut report = ReplayReport::default();
    let done = replayed_keys(store, prefix)?;
    let scope = match &opts.table {
        Some(t) => format!("{prefix}errors/{t}/"),
        None => format!("{prefix}errors/"),
    };
    let mut ensured: BTreeSet<usize> = BTreeSet::new();
    for key in store.list(&scope)? {
        if !key.ends_with(".ndjson.gz") {
            continue;
        }
        let Some(k) = parse_key(prefix, &key) else {
            continue;
        };
        if opts.category.as_deref().is_some_and(|c| c != k.category) {
            continue;
        }
        const HOUR: i64 = 3_600_000;
        if let Some(h) = k.hour_ms {
            if opts.since_ms.is_some_and(|s| h + HOUR <= s) || opts.until_ms.is_some_and(|u| h >= u)
            {
                continue;
            }
        }
        if done.contains(&key) {
            report.objects_already_replayed += 1;
            continue;
        }
        let table = if k.table == "_unrouted" {
            if !opts.can_route {
                report.objects_left += 1;
                continue;
            }
            None
        } else {
            match registry.index_of(k.table) {
                Some(t) => Some(t),
                None => {
                    tracing::warn!(key, "no schema for this table any more: left alone");
                    report.objects_left += 1;
                    continue;
                }
            }
        };
        let Some(bytes) = store.get(&key)? else {
            continue; // removed while we listed
        };
        let records = read_error_object(&bytes)?;
        report.objects_replayed += 1;
        report.records += records.len() as u64;

        // Re-transform; group outputs by partition and by new category.
        let mut rows: BTreeMap<(usize, String), Vec<(crate::transform::row::Row, usize)>> =
            BTreeMap::new();
        let mut again: BTreeMap<(String, String), Vec<ErrorRecord>> = BTreeMap::new();
        let (mut passed, mut failed) = (0u64, 0u64);
        for rec in records {
            let raw = rec
                .decode_raw()
                .ok_or_else(|| Error::sink(&key, "an error record's rawData is not base64"))?;
            // A masked field cannot be validated again (its value is gone):
            // trusted where it did not fail the first time, still failing
            // where it did.
            let trusted: Vec<String> = rec
                .masked_fields
                .iter()
                .filter(|m| {
                    !rec.details
                        .iter()
                        .any(|d| crate::transform::at_or_below(&d.path, m))
                })
                .cloned()
                .collect();
            let mut row = Row::default();
            match transformer.retransform(
                &raw,
                rec.arrival_timestamp,
                table,
                &rec.masked_fields,
                &trusted,
                &rec.stream,
                &mut row,
            ) {
                Outcome::Ok(tr) => {
                    passed += 1;
                    *report.passed.entry(k.category.to_owned()).or_default() += 1;
                    rows.entry((tr.table, tr.partition(&row).to_owned()))
                        .or_default()
                        .push((row, tr.input_bytes));
                }
                Outcome::Failed(f) => {
                    failed += 1;
                    *report
                        .failed_again
                        .entry(f.category.to_string())
                        .or_default() += 1;
                    let table_name = f.table.map(|t| registry.by_index(t).name.clone());
                    let dir = table_name.clone().unwrap_or_else(|| "_unrouted".into());
                    again
                        .entry((dir, f.category.to_string()))
                        .or_default()
                        .push(ErrorRecord {
                            attempts_made: rec.attempts_made + 1,
                            error_code: f.category.as_str().to_owned(),
                            error_message: f.message,
                            raw_data: ErrorRecord::encode_raw(&f.data),
                            table: table_name,
                            details: f.details,
                            masked_fields: f.masked_fields,
                            ..rec
                        });
                }
            }
        }
        if opts.dry_run {
            continue;
        }

        let name = format!(
            "replay-{}",
            &hex::encode(Sha256::digest(key.as_bytes()))[..32]
        );
        let mut outputs = Vec::new();
        // Partitions first, as for live data: registered before visible.
        let mut parts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (t, p) in rows.keys() {
            parts.entry(*t).or_default().push(p.clone());
        }
        for (t, ps) in &parts {
            let schema = registry.by_index(*t);
            if ensured.insert(*t) {
                catalog.ensure_table(schema)?;
            }
            catalog.register_partitions(schema, ps)?;
        }
        for ((t, partition), values) in rows {
            let schema = registry.by_index(t);
            let mut obj = ParquetObject::new(schema, Arc::default());
            for (v, n) in &values {
                obj.append(v, *n);
            }
            let out_key = format!("{prefix}{}/{partition}/{name}.snappy.parquet", schema.name);
            store.put(&out_key, &obj.finish()?)?;
            report.data_objects_written += 1;
            outputs.push(out_key);
        }
        for ((dir, category), recs) in again {
            let mut obj = ErrorObject::new();
            for r in &recs {
                obj.append(r);
            }
            let out_key = format!(
                "{prefix}errors/{dir}/{category}/{}/{name}.ndjson.gz",
                k.time_path
            );
            store.put(&out_key, &obj.finish()?)?;
            report.error_objects_written += 1;
            outputs.push(out_key);
        }
        let marker = Marker {
            source: key.clone(),
            outputs,
            passed,
            failed_again: failed,
        };
        let mk = marker_key(prefix, &key);
        let body = serde_json::to_vec_pretty(&marker).map_err(|e| Error::sink(&mk, e))?;
        crate::failpoint::hit("replay_before_marker");
        store.put(&mk, &body)?;
        if opts.purge {
            store.delete(&key)?;
            report.purged += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_keys_parse() {
        let k = parse_key(
            "raw/",
            "raw/errors/taxi_trips/schema_violation/year=2024/month=03/day=01/hour=05/part-x.ndjson.gz",
        )
        .unwrap();
        assert_eq!(
            (k.table, k.category, k.time_path),
            (
                "taxi_trips",
                "schema_violation",
                "year=2024/month=03/day=01/hour=05"
            )
        );
        assert_eq!(k.hour_ms, Some(1_709_269_200_000));
        assert!(parse_key("raw/", "other/errors/t/c/x.gz").is_none());
        assert_eq!(
            marker_key("raw/", "raw/errors/t/c/h/x.ndjson.gz"),
            "raw/_lakehose/replay/errors/t/c/h/x.ndjson.gz.json"
        );
    }
}

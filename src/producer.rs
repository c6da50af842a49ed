//! `lakehose put`: NDJSON lines into a Kinesis stream with PutRecords, the
//! way a careful producer does it: batches within Kinesis's limits, entries
//! that fail inside an accepted call (partial failure) retried with backoff
//! and jitter, optional KPL aggregation. Used by the demo and the tests.

use std::io::BufRead;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};

use crate::aws::{describe, Aws};
use crate::error::{Error, Result};
use crate::source::kpl;

/// PutRecords limits: 500 entries and 5 MiB per call, 1 MiB per record.
const MAX_ENTRIES: usize = 500;
const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Rounds of retrying the entries a call rejected before giving up.
const MAX_ROUNDS: u32 = 30;

#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub stream: String,
    /// Pack this many lines into one KPL aggregated record (0 or 1: none).
    pub aggregate: usize,
    /// Partition key from this top-level field of each line; without it, a
    /// digest of the line (spreads records over shards evenly).
    pub partition_key_field: Option<String>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PutSummary {
    /// Lines read.
    pub lines: u64,
    /// Kinesis records put (fewer than lines when aggregating).
    pub records: u64,
    /// Entries the stream rejected at first and that were put again.
    pub retried: u64,
}

/// The partition key of one line.
fn partition_key(line: &[u8], field: Option<&str>) -> String {
    if let Some(f) = field {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(line) {
            match m.get(f) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => {
                    return s.chars().take(256).collect()
                }
                Some(v @ serde_json::Value::Number(_)) => return v.to_string(),
                _ => {}
            }
        }
    }
    hex::encode(Md5::digest(line))
}

/// Read NDJSON from `input` and put every non-blank line.
pub fn put(aws: &Aws, opts: &PutOptions, input: impl BufRead) -> Result<PutSummary> {
    let client = Client::new(&aws.sdk);
    let mut summary = PutSummary::default();
    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut group: Vec<(String, Vec<u8>)> = Vec::new();
    let flush_group = |group: &mut Vec<(String, Vec<u8>)>| -> Option<(String, Vec<u8>)> {
        if group.is_empty() {
            return None;
        }
        let refs: Vec<(&str, &[u8])> = group
            .iter()
            .map(|(k, d)| (k.as_str(), d.as_slice()))
            .collect();
        let rec = (group[0].0.clone(), kpl::aggregate(&refs));
        group.clear();
        Some(rec)
    };
    let mut lines = input.split(b'\n');
    loop {
        let next = lines.next().transpose().map_err(|e| Error::Input {
            path: "stdin".into(),
            source: e,
        })?;
        let end = next.is_none();
        let mut ready: Vec<(String, Vec<u8>)> = Vec::new();
        match next {
            Some(mut line) => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                summary.lines += 1;
                let key = partition_key(&line, opts.partition_key_field.as_deref());
                if opts.aggregate > 1 {
                    let group_bytes: usize = group.iter().map(|(k, d)| k.len() + d.len() + 8).sum();
                    if group_bytes + line.len() + key.len() + 64 > MAX_RECORD_BYTES {
                        ready.extend(flush_group(&mut group));
                    }
                    group.push((key, line));
                    if group.len() >= opts.aggregate {
                        ready.extend(flush_group(&mut group));
                    }
                } else {
                    ready.push((key, line));
                }
            }
            None => ready.extend(flush_group(&mut group)),
        }
        for (k, d) in ready {
            if batch.len() == MAX_ENTRIES || batch_bytes + d.len() + k.len() > MAX_CALL_BYTES {
                summary.retried += aws.block_on(put_batch(&client, &opts.stream, &mut batch))?;
                summary.records += batch.len() as u64;
                batch.clear();
                batch_bytes = 0;
            }
            batch_bytes += d.len() + k.len();
            batch.push((k, d));
        }
        if end {
            break;
        }
    }
    if !batch.is_empty() {
        summary.retried += aws.block_on(put_batch(&client, &opts.stream, &mut batch))?;
        summary.records += batch.len() as u64;
    }
    Ok(summary)
}

/// One PutRecords call and the retries of its rejected entries. Returns
/// how many entries had to be retried.
async fn put_batch(client: &Client, stream: &str, batch: &mut [(String, Vec<u8>)]) -> Result<u64> {
    let fail = |message: String| Error::Kinesis {
        stream: stream.to_owned(),
        message,
    };
    let mut todo: Vec<usize> = (0..batch.len()).collect();
    let mut retried = 0u64;
    let mut backoff = Duration::from_millis(100);
    for round in 0..MAX_ROUNDS {
        let entries = todo
            .iter()
            .map(|&i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&batch[i].0)
                    .data(Blob::new(batch[i].1.clone()))
                    .build()
                    .map_err(|e| fail(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = match client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let msg = describe(&e);
                let fatal = e.as_service_error().is_some_and(|s| {
                    s.is_resource_not_found_exception() || s.is_invalid_argument_exception()
                });
                if fatal || round + 1 == MAX_ROUNDS {
                    return Err(fail(msg));
                }
                tracing::warn!(error = %msg, "PutRecords failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if out.failed_record_count().unwrap_or(0) == 0 {
            return Ok(retried);
        }
        // Results are in request order; keep the rejected ones.
        todo = todo
            .iter()
            .zip(out.records())
            .filter(|(_, r)| r.error_code().is_some())
            .map(|(&i, _)| i)
            .collect();
        retried += todo.len() as u64;
        let jitter = rand::random::<u64>() % (backoff.as_millis() as u64 + 1);
        tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    Err(fail(format!(
        "{} record(s) still rejected after {MAX_ROUNDS} rounds",
        todo.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys() {
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (br#"{"event_id":"abc"}"#, Some("event_id"), "abc"),
            (br#"{"VendorID":2}"#, Some("VendorID"), "2"),
            // missing field or broken JSON: the digest, never a failure
            (b"{not json", Some("event_id"), "digest"),
            (br#"{"x":1}"#, None, "digest"),
        ];
        for (line, field, want) in cases {
            let got = partition_key(line, *field);
            if *want == "digest" {
                assert_eq!(got, hex::encode(Md5::digest(line)));
            } else {
                assert_eq!(got, *want);
            }
        }
    }
}

//! Error records: one JSON object per failed record with Firehose's field
//! names (so existing tooling reads them), gzip-compressed NDJSON objects.

use std::io::Write;

use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transform::Detail;

/// One line of an error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRecord {
    /// How many times lakehose tried the record (replays increment it).
    pub attempts_made: u32,
    /// When lakehose received the record, epoch milliseconds.
    pub arrival_timestamp: i64,
    /// The error category, e.g. `schema_violation`.
    pub error_code: String,
    pub error_message: String,
    /// The record, base64: the original bytes if they are not JSON, else the
    /// record with its sensitive fields masked.
    pub raw_data: String,
    pub sequence_number: String,
    pub sub_sequence_number: u32,
    /// Source the record came from (stream name, or `file:<path>`).
    pub stream: String,
    pub shard_id: String,
    /// Table the record was routed to; absent when unrouted.
    pub table: Option<String>,
    pub details: Vec<Detail>,
    /// Mask paths already applied to `rawData`.
    pub masked_fields: Vec<String>,
}

impl ErrorRecord {
    pub fn encode_raw(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    pub fn decode_raw(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.raw_data)
            .ok()
    }
}

/// A gzip NDJSON error object being built.
pub struct ErrorObject {
    gz: GzEncoder<Vec<u8>>,
    rows: u64,
    /// Uncompressed bytes still inside the compressor's window.
    pending: usize,
}

impl Default for ErrorObject {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorObject {
    pub fn new() -> Self {
        ErrorObject {
            gz: GzEncoder::new(Vec::new(), Compression::fast()),
            rows: 0,
            pending: 0,
        }
    }

    /// Append a record. Infallible, and kept so: it runs in the routing
    /// step, which must not stop part-way (see `Pipeline::process`). A
    /// record of strings and numbers always serialises, and the compressor
    /// writes into memory.
    pub fn append(&mut self, rec: &ErrorRecord) {
        let mut line = serde_json::to_vec(rec).expect("an error record serialises");
        line.push(b'\n');
        self.pending += line.len();
        self.rows += 1;
        self.gz
            .write_all(&line)
            .expect("compressing into memory does not fail");
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn memory_bytes(&self) -> usize {
        self.gz.get_ref().capacity() + self.pending.min(64 * 1024)
    }

    pub fn encoded_bytes(&self) -> usize {
        self.gz.get_ref().len()
    }

    pub fn finish(self) -> Result<Vec<u8>> {
        self.gz
            .finish()
            .map_err(|e| Error::encode("error object", e))
    }
}

/// Read every record of a (gzip) error object.
pub fn read_error_object(bytes: &[u8]) -> Result<Vec<ErrorRecord>> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(bytes), &mut text)
        .map_err(|e| Error::encode("error object", e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| Error::encode("error record", e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_firehose_names() {
        let rec = ErrorRecord {
            attempts_made: 1,
            arrival_timestamp: 5,
            error_code: "invalid_json".into(),
            error_message: "bad".into(),
            raw_data: ErrorRecord::encode_raw(b"{\"a\""),
            sequence_number: "10".into(),
            sub_sequence_number: 0,
            stream: "file:x".into(),
            shard_id: "file".into(),
            table: None,
            details: vec![],
            masked_fields: vec![],
        };
        let v = serde_json::to_value(&rec).unwrap();
        for k in [
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
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        let mut o = ErrorObject::new();
        o.append(&rec);
        o.append(&rec);
        let back = read_error_object(&o.finish().unwrap()).unwrap();
        assert_eq!(back, vec![rec.clone(), rec.clone()]);
        assert_eq!(back[0].decode_raw().unwrap(), b"{\"a\"");
    }
}

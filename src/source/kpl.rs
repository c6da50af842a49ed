//! Kinesis Producer Library (KPL) record aggregation and de-aggregation.
//!
//! The KPL packs many small "user records" into one Kinesis record so that
//! producers are not throttled by the per-record PUT limits. Consumers must
//! undo that packing, otherwise every aggregate would be treated as one
//! opaque (and unparseable) event.
//!
//! An aggregated Kinesis record is laid out as
//!
//! ```text
//! +-------------+-----------------------------------+------------------+
//! | magic (4 B) | protobuf `AggregatedRecord` (N B) | MD5 of those N B |
//! | F3 89 9A C2 |                                   | (16 B)           |
//! +-------------+-----------------------------------+------------------+
//! ```
//!
//! with the (proto2) message
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! See <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>.
//!
//! Classification follows the KCL and `aws-kinesis-agg`: a record that does
//! not start with the magic, is too short to hold magic and digest, or whose
//! digest does not match is a *plain* record (a digest mismatch means a plain
//! payload that merely starts with the magic bytes). Only once magic and
//! digest match is a malformed protobuf an error, because then the producer
//! really meant it as an aggregate and silently passing it through would
//! deliver garbage.
//!
//! The protobuf codec is hand-written (varints and length-delimited fields
//! only) to avoid a protobuf dependency; decoding is zero-copy: every
//! [`UserRecord`] borrows from the input.

use std::collections::HashMap;

use md5::{Digest, Md5};

/// The four bytes every KPL aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest trailing an aggregated record.
pub const DIGEST_LEN: usize = 16;

// Field numbers of `AggregatedRecord`.
const AGG_PARTITION_KEY_TABLE: u32 = 1;
const AGG_EXPLICIT_HASH_KEY_TABLE: u32 = 2;
const AGG_RECORDS: u32 = 3;
// Field numbers of `Record`.
const REC_PARTITION_KEY_INDEX: u32 = 1;
const REC_EXPLICIT_HASH_KEY_INDEX: u32 = 2;
const REC_DATA: u32 = 3;
const REC_TAGS: u32 = 4;
// Field numbers of `Tag`.
const TAG_KEY: u32 = 1;

// Protobuf wire types.
const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_START_GROUP: u8 = 3;
const WT_END_GROUP: u8 = 4;
const WT_FIXED32: u8 = 5;

/// Largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// One user record unpacked from an aggregate, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// Index of the record within its aggregate; together with the Kinesis
    /// sequence number it identifies the user record (as in the KCL).
    pub sub_sequence_number: u32,
    /// The user record's own partition key (not the aggregate's).
    pub partition_key: &'a str,
    /// The explicit hash key, when the producer set one.
    pub explicit_hash_key: Option<&'a str>,
    /// The user record's payload.
    pub data: &'a [u8],
}

/// What one Kinesis record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kpl<'a> {
    /// Not a KPL aggregate: the whole Kinesis record is one event.
    Plain(&'a [u8]),
    /// A KPL aggregate, unpacked in order. May be empty: the KCL delivers
    /// nothing for an aggregate with no records, and so do we.
    Aggregated(Vec<UserRecord<'a>>),
}

/// Why an aggregate (magic and MD5 valid) could not be decoded. Offsets are
/// byte positions in the whole Kinesis record, magic included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KplError {
    #[error("malformed KPL aggregate: truncated varint at byte {offset}")]
    TruncatedVarint { offset: usize },
    #[error("malformed KPL aggregate: varint at byte {offset} overflows 64 bits")]
    VarintOverflow { offset: usize },
    #[error("malformed KPL aggregate: invalid protobuf tag {tag} at byte {offset}")]
    InvalidTag { tag: u64, offset: usize },
    #[error(
        "malformed KPL aggregate: field {field} at byte {offset} uses unsupported \
         group wire type {wire_type}"
    )]
    GroupWireType {
        field: u32,
        wire_type: u8,
        offset: usize,
    },
    #[error(
        "malformed KPL aggregate: field {field} at byte {offset} has invalid wire type {wire_type}"
    )]
    InvalidWireType {
        field: u32,
        wire_type: u8,
        offset: usize,
    },
    #[error(
        "malformed KPL aggregate: field {field} at byte {offset} needs {len} bytes \
         but only {remaining} remain"
    )]
    TruncatedField {
        field: u32,
        offset: usize,
        len: u64,
        remaining: usize,
    },
    #[error("malformed KPL aggregate: record {record} lacks required field {field}")]
    MissingField { record: u32, field: &'static str },
    #[error(
        "malformed KPL aggregate: record {record} has {table} index {index} \
         but the table has {len} entries"
    )]
    IndexOutOfRange {
        record: u32,
        table: &'static str,
        index: u64,
        len: usize,
    },
    #[error("malformed KPL aggregate: {table} entry {index} is not valid UTF-8")]
    InvalidUtf8 { table: &'static str, index: u64 },
    #[error("malformed KPL aggregate: more than {} records", u32::MAX)]
    TooManyRecords,
}

/// Classifies one Kinesis record's data and unpacks it if it is a KPL
/// aggregate (the KCL's de-aggregation).
///
/// Returns [`Kpl::Plain`] for anything that is not a framed aggregate
/// (no magic, too short, or MD5 mismatch), [`Kpl::Aggregated`] with the
/// user records otherwise, and an error only when magic and MD5 match but
/// the protobuf inside is malformed.
pub fn split(data: &[u8]) -> Result<Kpl<'_>, KplError> {
    match framed_body(data) {
        Some(body) => decode_aggregate(body, MAGIC.len()).map(Kpl::Aggregated),
        None => Ok(Kpl::Plain(data)),
    }
}

/// The protobuf bytes of `data` if it is framed as an aggregate: magic
/// prefix and a matching MD5 suffix.
fn framed_body(data: &[u8]) -> Option<&[u8]> {
    if data.len() < MAGIC.len() + DIGEST_LEN || !data.starts_with(&MAGIC) {
        return None;
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    (Md5::digest(body).as_slice() == digest).then_some(body)
}

/// Builds one aggregated Kinesis record from `(partition key, data)` pairs,
/// storing each distinct partition key once in the key table.
///
/// Does not enforce the Kinesis 1 MiB record limit: callers batch.
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut index_of: HashMap<&str, u64> = HashMap::new();
    let indices: Vec<u64> = records
        .iter()
        .map(|&(key, _)| {
            *index_of.entry(key).or_insert_with(|| {
                keys.push(key);
                (keys.len() - 1) as u64
            })
        })
        .collect();

    // Exact size up front so the buffer is allocated once.
    let record_len = |index: u64, data: &[u8]| {
        1 + varint_len(index) + 1 + varint_len(data.len() as u64) + data.len()
    };
    let keys_size: usize = keys
        .iter()
        .map(|k| 1 + varint_len(k.len() as u64) + k.len())
        .sum();
    let records_size: usize = records
        .iter()
        .zip(&indices)
        .map(|(&(_, data), &index)| {
            let len = record_len(index, data);
            1 + varint_len(len as u64) + len
        })
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + keys_size + records_size + DIGEST_LEN);

    out.extend_from_slice(&MAGIC);
    for key in &keys {
        put_bytes(&mut out, AGG_PARTITION_KEY_TABLE, key.as_bytes());
    }
    for (&(_, data), &index) in records.iter().zip(&indices) {
        put_tag(&mut out, AGG_RECORDS, WT_LEN);
        put_varint(&mut out, record_len(index, data) as u64);
        put_tag(&mut out, REC_PARTITION_KEY_INDEX, WT_VARINT);
        put_varint(&mut out, index);
        put_bytes(&mut out, REC_DATA, data);
    }
    let digest = Md5::digest(&out[MAGIC.len()..]);
    out.extend_from_slice(&digest);
    out
}

fn varint_len(value: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes a byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, WT_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A decoded field value. Fixed-width values are never used by this schema,
/// so they are only skipped.
enum Value<'a> {
    Varint(u64),
    Bytes { bytes: &'a [u8], offset: usize },
    Fixed,
}

/// Cursor over one protobuf message; `base` is the message's offset in the
/// Kinesis record, so errors point at absolute bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn varint(&mut self) -> Result<u64, KplError> {
        let offset = self.offset();
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(KplError::TruncatedVarint { offset });
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && byte > 1 {
                return Err(KplError::VarintOverflow { offset });
            }
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KplError::VarintOverflow { offset })
    }

    fn take(&mut self, len: u64, field: u32) -> Result<(&'a [u8], usize), KplError> {
        let offset = self.offset();
        let remaining = self.buf.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= remaining => {
                let bytes = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok((bytes, offset))
            }
            _ => Err(KplError::TruncatedField {
                field,
                offset,
                len,
                remaining,
            }),
        }
    }

    /// The next field, or `None` at the end of the message. Unknown fields
    /// are returned like known ones so callers can skip them, which is what
    /// keeps decoding forward compatible.
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, KplError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let offset = self.offset();
        let tag = self.varint()?;
        let field_number = tag >> 3;
        if field_number == 0 || field_number > MAX_FIELD_NUMBER {
            return Err(KplError::InvalidTag { tag, offset });
        }
        let field = field_number as u32;
        let wire_type = (tag & 7) as u8;
        let value = match wire_type {
            WT_VARINT => Value::Varint(self.varint()?),
            WT_FIXED64 => {
                self.take(8, field)?;
                Value::Fixed
            }
            WT_LEN => {
                let len = self.varint()?;
                let (bytes, offset) = self.take(len, field)?;
                Value::Bytes { bytes, offset }
            }
            WT_FIXED32 => {
                self.take(4, field)?;
                Value::Fixed
            }
            WT_START_GROUP | WT_END_GROUP => {
                return Err(KplError::GroupWireType {
                    field,
                    wire_type,
                    offset,
                })
            }
            _ => {
                return Err(KplError::InvalidWireType {
                    field,
                    wire_type,
                    offset,
                })
            }
        };
        Ok(Some((field, value)))
    }
}

/// Decodes an `AggregatedRecord` body. Fields may come in any order (the
/// tables could follow the records), so records are resolved after a first
/// pass. As in protobuf, a known field number with an unexpected wire type
/// is treated as an unknown field and skipped.
fn decode_aggregate(body: &[u8], base: usize) -> Result<Vec<UserRecord<'_>>, KplError> {
    let mut partition_keys: Vec<&[u8]> = Vec::new();
    let mut hash_keys: Vec<&[u8]> = Vec::new();
    let mut raw_records: Vec<(&[u8], usize)> = Vec::new();
    let mut reader = Reader::new(body, base);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (AGG_PARTITION_KEY_TABLE, Value::Bytes { bytes, .. }) => partition_keys.push(bytes),
            (AGG_EXPLICIT_HASH_KEY_TABLE, Value::Bytes { bytes, .. }) => hash_keys.push(bytes),
            (AGG_RECORDS, Value::Bytes { bytes, offset }) => raw_records.push((bytes, offset)),
            _ => {}
        }
    }

    // UTF-8 is checked once per entry but only reported when an entry is
    // used, so an unused bad key does not reject the aggregate.
    let partition_keys: Vec<Option<&str>> = partition_keys
        .into_iter()
        .map(|b| std::str::from_utf8(b).ok())
        .collect();
    let hash_keys: Vec<Option<&str>> = hash_keys
        .into_iter()
        .map(|b| std::str::from_utf8(b).ok())
        .collect();

    raw_records
        .into_iter()
        .enumerate()
        .map(|(i, (bytes, offset))| {
            let sub_sequence_number = u32::try_from(i).map_err(|_| KplError::TooManyRecords)?;
            decode_record(
                bytes,
                offset,
                sub_sequence_number,
                &partition_keys,
                &hash_keys,
            )
        })
        .collect()
}

fn decode_record<'a>(
    bytes: &'a [u8],
    base: usize,
    record: u32,
    partition_keys: &[Option<&'a str>],
    hash_keys: &[Option<&'a str>],
) -> Result<UserRecord<'a>, KplError> {
    let mut partition_key_index = None;
    let mut hash_key_index = None;
    let mut data = None;
    let mut reader = Reader::new(bytes, base);
    // Repeated scalar fields: the last occurrence wins, as in protobuf.
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (REC_PARTITION_KEY_INDEX, Value::Varint(v)) => partition_key_index = Some(v),
            (REC_EXPLICIT_HASH_KEY_INDEX, Value::Varint(v)) => hash_key_index = Some(v),
            (REC_DATA, Value::Bytes { bytes, .. }) => data = Some(bytes),
            (REC_TAGS, Value::Bytes { bytes, offset }) => check_tag(bytes, offset, record)?,
            _ => {}
        }
    }
    let partition_key_index = partition_key_index.ok_or(KplError::MissingField {
        record,
        field: "partition_key_index",
    })?;
    let data = data.ok_or(KplError::MissingField {
        record,
        field: "data",
    })?;
    let partition_key = lookup(
        partition_keys,
        partition_key_index,
        record,
        "partition_key_table",
    )?;
    let explicit_hash_key = hash_key_index
        .map(|index| lookup(hash_keys, index, record, "explicit_hash_key_table"))
        .transpose()?;
    Ok(UserRecord {
        sub_sequence_number: record,
        partition_key,
        explicit_hash_key,
        data,
    })
}

/// Tags are not delivered, but are still parsed so that a malformed tag
/// rejects the aggregate as a protobuf library would.
fn check_tag(bytes: &[u8], base: usize, record: u32) -> Result<(), KplError> {
    let mut has_key = false;
    let mut reader = Reader::new(bytes, base);
    while let Some((field, value)) = reader.next_field()? {
        has_key |= field == TAG_KEY && matches!(value, Value::Bytes { .. });
    }
    if has_key {
        Ok(())
    } else {
        Err(KplError::MissingField {
            record,
            field: "tags.key",
        })
    }
}

fn lookup<'a>(
    table: &[Option<&'a str>],
    index: u64,
    record: u32,
    name: &'static str,
) -> Result<&'a str, KplError> {
    let entry = usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or(KplError::IndexOutOfRange {
            record,
            table: name,
            index,
            len: table.len(),
        })?;
    entry.ok_or(KplError::InvalidUtf8 { table: name, index })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames a hand-written protobuf body as an aggregate: magic, body, MD5.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    fn records_of<'a>(data: &'a [u8]) -> Vec<UserRecord<'a>> {
        match split(data) {
            Ok(Kpl::Aggregated(records)) => records,
            other => panic!("expected an aggregate, got {other:?}"),
        }
    }

    /// Number of entries in the partition key table of an aggregate.
    fn key_table_len(data: &[u8]) -> usize {
        let body = framed_body(data).expect("framed");
        let mut reader = Reader::new(body, MAGIC.len());
        let mut n = 0;
        while let Some((field, _)) = reader.next_field().unwrap() {
            n += usize::from(field == AGG_PARTITION_KEY_TABLE);
        }
        n
    }

    /// A `(partition key, data)` input to [`aggregate`].
    type Pair<'a> = (&'a str, &'a [u8]);

    fn check_round_trip(name: &str, input: &[(&str, &[u8])]) {
        let encoded = aggregate(input);
        let records = records_of(&encoded);
        assert_eq!(records.len(), input.len(), "{name}");
        for (i, (record, &(key, data))) in records.iter().zip(input).enumerate() {
            assert_eq!(record.sub_sequence_number as usize, i, "{name}");
            assert_eq!(record.partition_key, key, "{name} #{i}");
            assert_eq!(record.data, data, "{name} #{i}");
            assert_eq!(record.explicit_hash_key, None, "{name} #{i}");
        }
        let mut distinct: Vec<&str> = input.iter().map(|r| r.0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(key_table_len(&encoded), distinct.len(), "{name}: key table");
    }

    #[test]
    fn round_trips() {
        let thousand_keys: Vec<String> = (0..1000).map(|i| format!("key-{}", i % 7)).collect();
        let thousand_data: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let thousand: Vec<(&str, &[u8])> = thousand_keys
            .iter()
            .zip(&thousand_data)
            .map(|(k, d)| (k.as_str(), d.as_slice()))
            .collect();
        let big = vec![0x5Au8; 200_000];
        let cases: Vec<(&str, Vec<Pair>)> = vec![
            ("empty aggregate", vec![]),
            ("one record", vec![("pk", b"{\"a\":1}")]),
            (
                "three distinct keys",
                vec![("a", b"one"), ("b", b"two"), ("c", b"three")],
            ),
            (
                "three shared keys",
                vec![("same", b"one"), ("same", b"two"), ("same", b"three")],
            ),
            (
                "mixed keys",
                vec![("x", b"1"), ("y", b"2"), ("x", b"3"), ("y", b"4")],
            ),
            ("empty data", vec![("a", b""), ("b", b""), ("a", b"")]),
            ("empty partition key", vec![("", b"data")]),
            ("unicode key", vec![("clé-ü-✓", b"\x00\xff\x80")]),
            ("large record", vec![("big", &big)]),
            ("thousand records", thousand),
        ];
        for (name, input) in &cases {
            check_round_trip(name, input);
        }
    }

    #[test]
    fn plain_records() {
        let mut bad_digest = aggregate(&[("pk", b"data")]);
        let last = bad_digest.len() - 1;
        bad_digest[last] ^= 1;
        let mut bad_body = aggregate(&[("pk", b"data")]);
        bad_body[MAGIC.len() + 1] ^= 1;
        let mut magic_only = MAGIC.to_vec();
        magic_only.extend_from_slice(&[0; DIGEST_LEN - 1]); // one byte short
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("json", b"{\"a\":1}".to_vec()),
            ("partial magic", MAGIC[..3].to_vec()),
            ("magic alone", MAGIC.to_vec()),
            ("magic, 19 bytes", magic_only),
            ("magic, wrong digest", bad_digest),
            ("magic, body changed", bad_body),
            ("almost magic", {
                let mut v = frame(&[]);
                v[0] = 0xF2;
                v
            }),
        ];
        for (name, input) in &cases {
            assert_eq!(split(input), Ok(Kpl::Plain(input)), "{name}");
        }
    }

    #[test]
    fn hand_built_aggregate() {
        #[rustfmt::skip]
        let mut body: Vec<u8> = vec![
            // partition_key_table[0] = "alpha": tag (1 << 3) | 2, length 5.
            0x0A, 0x05, b'a', b'l', b'p', b'h', b'a',
            // partition_key_table[1] = "beta": tag 0x0A, length 4.
            0x0A, 0x04, b'b', b'e', b't', b'a',
            // explicit_hash_key_table[0] = "12345": tag (2 << 3) | 2, length 5.
            0x12, 0x05, b'1', b'2', b'3', b'4', b'5',
            // records[0]: tag (3 << 3) | 2, length 6.
            0x1A, 0x06,
            //   partition_key_index = 1: tag (1 << 3) | 0.
            0x08, 0x01,
            //   data = "hi": tag (3 << 3) | 2, length 2.
            0x1A, 0x02, b'h', b'i',
            // records[1]: length 2 + 2 + 2 + 8 = 14.
            0x1A, 0x0E,
            //   partition_key_index = 0.
            0x08, 0x00,
            //   explicit_hash_key_index = 0: tag (2 << 3) | 0.
            0x10, 0x00,
            //   data = "" (present but empty).
            0x1A, 0x00,
            //   tags[0] = {key "k", value "v"}: tag (4 << 3) | 2, length 6.
            0x22, 0x06, 0x0A, 0x01, b'k', 0x12, 0x01, b'v',
            // records[2]: length 2 + 1 + 2 + 130 = 135 = varint 0x87 0x01.
            0x1A, 0x87, 0x01,
            //   partition_key_index = 1.
            0x08, 0x01,
            //   data: 130 bytes of 0xAB, length varint 0x82 0x01.
            0x1A, 0x82, 0x01,
        ];
        body.extend_from_slice(&[0xAB; 130]);
        let input = frame(&body);
        let expected = vec![
            UserRecord {
                sub_sequence_number: 0,
                partition_key: "beta",
                explicit_hash_key: None,
                data: b"hi",
            },
            UserRecord {
                sub_sequence_number: 1,
                partition_key: "alpha",
                explicit_hash_key: Some("12345"),
                data: b"",
            },
            UserRecord {
                sub_sequence_number: 2,
                partition_key: "beta",
                explicit_hash_key: None,
                data: &[0xAB; 130],
            },
        ];
        assert_eq!(split(&input), Ok(Kpl::Aggregated(expected)));
    }

    #[test]
    fn decodes_valid_variants() {
        // Each body must decode to [("k", b"v")] (key table is just "k").
        const KEY: [u8; 3] = [0x0A, 0x01, b'k'];
        // records[0] = {partition_key_index 0, data "v"}.
        const REC: [u8; 7] = [0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'v'];
        let cat = |parts: &[&[u8]]| parts.concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plain", cat(&[&KEY, &REC])),
            ("records before table", cat(&[&REC, &KEY])),
            (
                "unknown top-level fields",
                cat(&[
                    &[0x78, 0x96, 0x01], // field 15, varint 150
                    &KEY,
                    &[0x4A, 0x03, b'x', b'y', b'z'], // field 9, length-delimited
                    &[0x55, 1, 2, 3, 4],             // field 10, fixed32
                    &[0x59, 1, 2, 3, 4, 5, 6, 7, 8], // field 11, fixed64
                    &[0xA0, 0x06, 0x2A],             // field 100 (two-byte tag), varint
                    &REC,
                ]),
            ),
            (
                "unknown record fields",
                cat(&[
                    &KEY,
                    &[0x1A, 0x0B], // records[0], length 11
                    &[0x78, 0x01], // field 15, varint 1
                    &[0x08, 0x00],
                    &[0x4A, 0x02, b'z', b'z'], // field 9, length-delimited
                    &[0x1A, 0x01, b'v'],
                ]),
            ),
            (
                "tags ignored",
                cat(&[
                    &KEY,
                    &[0x1A, 0x0F],                   // records[0], length 15
                    &[0x22, 0x03, 0x0A, 0x01, b't'], // tag {key "t"}
                    &[0x08, 0x00, 0x1A, 0x01, b'v'], // index 0, data "v"
                    &[0x22, 0x03, 0x0A, 0x01, b'u'], // tag {key "u"}
                ]),
            ),
            (
                "known field with other wire type is skipped",
                cat(&[
                    &KEY,
                    &[0x08, 0x05], // field 1 as varint: not a key table entry
                    &[0x1A, 0x07], // records[0], length 7
                    &[0x0A, 0x00], // field 1 as bytes: not the index
                    &[0x08, 0x00, 0x1A, 0x01, b'v'],
                ]),
            ),
            (
                "last scalar wins",
                cat(&[
                    &KEY,
                    &[0x1A, 0x0A], // records[0], length 10
                    &[0x08, 0x07, 0x1A, 0x01, b'x'],
                    &[0x08, 0x00, 0x1A, 0x01, b'v'],
                ]),
            ),
            (
                "unused invalid UTF-8 key",
                cat(&[&KEY, &[0x0A, 0x01, 0xFF], &REC]),
            ),
            (
                "non-minimal varint index",
                cat(&[&KEY, &[0x1A, 0x06, 0x08, 0x80, 0x00, 0x1A, 0x01, b'v']]),
            ),
        ];
        let expected = vec![UserRecord {
            sub_sequence_number: 0,
            partition_key: "k",
            explicit_hash_key: None,
            data: b"v",
        }];
        for (name, body) in &cases {
            assert_eq!(
                split(&frame(body)),
                Ok(Kpl::Aggregated(expected.clone())),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_aggregates() {
        use KplError::*;
        const KEY: [u8; 3] = [0x0A, 0x01, b'k'];
        let cat = |parts: &[&[u8]]| parts.concat();
        // Offsets count from the start of the Kinesis record: the body
        // starts at byte 4, after the magic.
        let cases: Vec<(&str, Vec<u8>, KplError)> = vec![
            (
                "garbage",
                b"hello, world".to_vec(),
                // 'h' = field 13 varint, 'e' its value, 'l' = field 13 group.
                GroupWireType {
                    field: 13,
                    wire_type: 4,
                    offset: 6,
                },
            ),
            (
                "truncated length varint",
                vec![0x0A, 0x85],
                TruncatedVarint { offset: 5 },
            ),
            (
                "truncated tag varint",
                vec![0x0A, 0x00, 0x80],
                TruncatedVarint { offset: 6 },
            ),
            (
                "truncated index varint",
                cat(&[&KEY, &[0x1A, 0x02, 0x08, 0x80]]),
                TruncatedVarint { offset: 10 },
            ),
            (
                "varint overflow",
                cat(&[&[0x08], &[0xFF; 9], &[0x02]]),
                VarintOverflow { offset: 5 },
            ),
            (
                "eleven-byte varint",
                cat(&[&[0x08], &[0x80; 10], &[0x00]]),
                VarintOverflow { offset: 5 },
            ),
            (
                "truncated string",
                vec![0x0A, 0x05, b'a'],
                TruncatedField {
                    field: 1,
                    offset: 6,
                    len: 5,
                    remaining: 1,
                },
            ),
            (
                "huge length",
                cat(&[&[0x0A], &[0xFF; 9], &[0x01]]),
                TruncatedField {
                    field: 1,
                    offset: 15,
                    len: u64::MAX,
                    remaining: 0,
                },
            ),
            (
                "truncated fixed64",
                vec![0x59, 1, 2, 3],
                TruncatedField {
                    field: 11,
                    offset: 5,
                    len: 8,
                    remaining: 3,
                },
            ),
            (
                "start group",
                vec![0x2B],
                GroupWireType {
                    field: 5,
                    wire_type: 3,
                    offset: 4,
                },
            ),
            (
                "wire type 6",
                cat(&[&KEY, &[0x0E]]),
                InvalidWireType {
                    field: 1,
                    wire_type: 6,
                    offset: 7,
                },
            ),
            (
                "field number 0",
                vec![0x02, 0x00],
                InvalidTag { tag: 2, offset: 4 },
            ),
            (
                "field number too large",
                vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
                InvalidTag {
                    tag: 1 << 32,
                    offset: 4,
                },
            ),
            (
                "partition key index out of range",
                cat(&[&KEY, &[0x1A, 0x05, 0x08, 0x01, 0x1A, 0x01, b'v']]),
                IndexOutOfRange {
                    record: 0,
                    table: "partition_key_table",
                    index: 1,
                    len: 1,
                },
            ),
            (
                "huge partition key index",
                cat(&[
                    &KEY,
                    &[0x1A, 0x0E, 0x08],
                    &[0xFF; 9],
                    &[0x01, 0x1A, 0x01, b'v'],
                ]),
                IndexOutOfRange {
                    record: 0,
                    table: "partition_key_table",
                    index: u64::MAX,
                    len: 1,
                },
            ),
            (
                "no partition key table",
                vec![0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'v'],
                IndexOutOfRange {
                    record: 0,
                    table: "partition_key_table",
                    index: 0,
                    len: 0,
                },
            ),
            (
                "explicit hash key index out of range",
                cat(&[
                    &KEY,
                    &[0x1A, 0x07, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x01, b'v'],
                ]),
                IndexOutOfRange {
                    record: 0,
                    table: "explicit_hash_key_table",
                    index: 0,
                    len: 0,
                },
            ),
            (
                "missing data",
                cat(&[&KEY, &[0x1A, 0x02, 0x08, 0x00]]),
                MissingField {
                    record: 0,
                    field: "data",
                },
            ),
            (
                "missing partition key index in second record",
                cat(&[
                    &KEY,
                    &[0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'v'],
                    &[0x1A, 0x03, 0x1A, 0x01, b'w'],
                ]),
                MissingField {
                    record: 1,
                    field: "partition_key_index",
                },
            ),
            (
                "tag without key",
                cat(&[
                    &KEY,
                    &[0x1A, 0x09, 0x08, 0x00, 0x1A, 0x01, b'v'],
                    &[0x22, 0x02, 0x12, 0x00], // tag {value ""}
                ]),
                MissingField {
                    record: 0,
                    field: "tags.key",
                },
            ),
            (
                "invalid UTF-8 partition key",
                cat(&[
                    &[0x0A, 0x02, 0xC3, 0x28],
                    &[0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'v'],
                ]),
                InvalidUtf8 {
                    table: "partition_key_table",
                    index: 0,
                },
            ),
            (
                "record truncated inside",
                cat(&[&KEY, &[0x1A, 0x03, 0x1A, 0x05, b'v']]),
                TruncatedField {
                    field: 3,
                    offset: 11,
                    len: 5,
                    remaining: 1,
                },
            ),
        ];
        for (name, body, expected) in cases {
            assert_eq!(split(&frame(&body)), Err(expected), "{name}");
        }
    }

    #[test]
    fn error_messages_are_readable() {
        let err = split(&frame(&[0x0A, 0x85])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed KPL aggregate: truncated varint at byte 5"
        );
        let err = KplError::IndexOutOfRange {
            record: 3,
            table: "partition_key_table",
            index: 9,
            len: 2,
        };
        assert_eq!(
            err.to_string(),
            "malformed KPL aggregate: record 3 has partition_key_table index 9 \
             but the table has 2 entries"
        );
    }

    #[test]
    fn varint_lengths_match_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(Reader::new(&out, 0).varint(), Ok(value), "{value}");
        }
    }

    /// xorshift64*: enough randomness for fuzzing without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Every record handed out must borrow from the input.
    fn assert_borrows(input: &[u8], result: &Result<Kpl<'_>, KplError>) {
        let range = input.as_ptr_range();
        if let Ok(Kpl::Aggregated(records)) = result {
            for r in records {
                let inside = |s: &[u8]| {
                    s.is_empty() || (range.start <= s.as_ptr() && s.as_ptr_range().end <= range.end)
                };
                assert!(inside(r.data) && inside(r.partition_key.as_bytes()));
            }
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seed = aggregate(&[("alpha", b"one"), ("beta", b""), ("alpha", b"three")]);
        let seed_body = framed_body(&seed).unwrap().to_vec();
        // Bytes that are likely protobuf tags of this schema, to get deep.
        const TOKENS: [u8; 12] = [
            0x0A, 0x12, 0x1A, 0x22, 0x08, 0x10, 0x00, 0x01, 0x02, 0x80, 0xFF, 0x7F,
        ];
        let mut outcomes = [0usize; 4];
        for round in 0..6000 {
            let input = match round % 4 {
                // Raw random bytes, sometimes behind the magic.
                0 => {
                    let mut v = if rng.below(2) == 0 {
                        MAGIC.to_vec()
                    } else {
                        Vec::new()
                    };
                    let len = rng.below(64);
                    v.extend(rng.bytes(len));
                    v
                }
                // Random body, correctly framed so it reaches the parser.
                1 => {
                    let len = rng.below(48);
                    frame(&rng.bytes(len))
                }
                // Body built from schema-like tokens.
                2 => {
                    let len = rng.below(48);
                    let body: Vec<u8> = (0..len).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
                    frame(&body)
                }
                // A valid aggregate, mutated then re-framed.
                _ => {
                    let mut body = seed_body.clone();
                    for _ in 0..=rng.below(4) {
                        match rng.below(3) {
                            0 => {
                                let i = rng.below(body.len());
                                body[i] = rng.next() as u8;
                            }
                            1 => {
                                let i = rng.below(body.len() + 1);
                                body.insert(i, rng.next() as u8);
                            }
                            _ => body.truncate(rng.below(body.len() + 1)),
                        }
                        if body.is_empty() {
                            break;
                        }
                    }
                    frame(&body)
                }
            };
            let result = split(&input);
            assert_borrows(&input, &result);
            match &result {
                Ok(Kpl::Plain(_)) => outcomes[0] += 1,
                Ok(Kpl::Aggregated(r)) if r.is_empty() => outcomes[1] += 1,
                Ok(Kpl::Aggregated(_)) => outcomes[2] += 1,
                Err(_) => outcomes[3] += 1,
            }
        }
        // Plain, empty aggregate, records, error: each path was exercised.
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }

    #[test]
    fn fuzz_round_trips() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        const KEYS: [&str; 6] = ["", "a", "shard-1", "shard-2", "ключ", "k"];
        for _ in 0..2000 {
            let count = rng.below(24);
            let owned: Vec<(String, Vec<u8>)> = (0..count)
                .map(|_| {
                    let key = if rng.below(4) == 0 {
                        format!("pk-{}", rng.next())
                    } else {
                        KEYS[rng.below(KEYS.len())].to_string()
                    };
                    let len = match rng.below(4) {
                        0 => 0,
                        1 => rng.below(300),
                        _ => rng.below(20),
                    };
                    (key, rng.bytes(len))
                })
                .collect();
            let input: Vec<(&str, &[u8])> = owned
                .iter()
                .map(|(k, d)| (k.as_str(), d.as_slice()))
                .collect();
            check_round_trip("random", &input);
        }
    }
}

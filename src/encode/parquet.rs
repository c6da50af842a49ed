//! Snappy Parquet objects. Rows accumulate in Arrow builders (columnar,
//! compact) and are encoded in one go when the buffer is flushed, on the
//! flush's worker thread. Keeping no Parquet writer open per partition keeps
//! the per-partition overhead to the builders themselves, which is what lets
//! hundreds of open partitions fit under the memory cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::arrow::BatchBuilder;
use crate::error::{Error, Result};
use crate::schema::TableSchema;
use crate::transform::mask::MaskKind;
use crate::transform::row::{Row, RowRef};

/// Rows per Parquet row group: large groups compress and scan best, and
/// Athena splits work by row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Assumed JSON-to-Parquet size ratio, used to decide the size flush
/// before the object is encoded (measured on the taxi events: about 8:1;
/// 4:1 errs towards flushing early).
const COMPRESSION_ESTIMATE: usize = 4;

/// Parquet writer settings of a table's objects: Snappy, dictionaries and
/// statistics everywhere, except no dictionary for the record id, whose
/// values are unique by definition, nor for `hash`-masked fields, which
/// hold identifiers (emails, account numbers) nearly unique within an
/// object: there a dictionary only costs time and bytes. Other columns
/// found not to repeat are left out later (see [`DictionaryAdvice`]).
pub fn writer_properties(t: &TableSchema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("lakehose {}", env!("CARGO_PKG_VERSION")));
    let hashed = t
        .ext
        .mask
        .iter()
        .filter(|(_, kind)| *kind == MaskKind::Hash)
        .map(|(path, _)| path);
    for field in t.ext.record_id.iter().chain(hashed) {
        let path: Vec<String> = field.split('.').map(str::to_lowercase).collect();
        b = b.set_column_dictionary_enabled(ColumnPath::new(path), false);
    }
    b.build()
}

/// Objects a table encodes without a column's dictionary before trying it
/// again, in case the column's values have started to repeat.
const DICTIONARY_RETRY: u32 = 16;

/// Which columns of a table still get a dictionary, learned from the
/// table's objects as they are encoded. A dictionary pays where values
/// repeat (vendor and location ids, flat fees, flags); on a column of
/// mostly distinct values (fares, millisecond timestamps, masked card
/// numbers) it costs a hash lookup per value and a dictionary page about
/// as large as the values,
/// for a larger object. Such a column is then written plain, as DuckDB's
/// and parquet-mr's writers fall back to plain too. Shared by a table's
/// buffers: objects encoded at once only see a decision one object late.
#[derive(Debug, Default)]
pub struct DictionaryAdvice {
    /// Columns written plain: how many objects since the dictionary was
    /// dropped.
    dropped: Mutex<HashMap<ColumnPath, u32>>,
}

impl DictionaryAdvice {
    /// The writer settings for the table's next object: `base` without the
    /// dictionaries that did not pay, except those due for another try.
    fn props(&self, base: &WriterProperties) -> WriterProperties {
        let mut dropped = self.dropped.lock().expect("dictionary advice");
        if dropped.is_empty() {
            return base.clone();
        }
        dropped.retain(|_, n| {
            *n += 1;
            *n <= DICTIONARY_RETRY
        });
        let mut b = base.clone().into_builder();
        for path in dropped.keys() {
            b = b.set_column_dictionary_enabled(path.clone(), false);
        }
        b.build()
    }

    /// Learn from an encoded row group: a column whose dictionary-encoded
    /// chunk is at least 3/4 the size of its plain values (more than about
    /// half the values distinct) is written plain from now on. A string
    /// column's plain size is its text (the chunk's unencoded byte-array
    /// bytes, which page statistics record) and a 4-byte length per value.
    fn learn(&self, group: &RowGroupMetaData) {
        let mut dropped = self.dropped.lock().expect("dictionary advice");
        for c in group.columns() {
            let plain = match c.column_type() {
                PhysicalType::INT32 | PhysicalType::FLOAT => c.num_values() * 4,
                PhysicalType::INT64 | PhysicalType::DOUBLE => c.num_values() * 8,
                PhysicalType::BYTE_ARRAY => match c.unencoded_byte_array_data_bytes() {
                    Some(text) => text + c.num_values() * 4,
                    None => continue,
                },
                _ => continue,
            };
            if c.dictionary_page_offset().is_some() && c.uncompressed_size() * 4 >= plain * 3 {
                dropped.insert(c.column_path().clone(), 0);
            }
        }
    }

    /// Whether the next object writes this column plain.
    #[cfg(test)]
    fn is_dropped(&self, path: &ColumnPath) -> bool {
        self.dropped
            .lock()
            .expect("dictionary advice")
            .contains_key(path)
    }
}

/// Rows per Arrow batch held by a buffer. The builders are finished into a
/// batch at this size, so they never grow into large reallocations: those
/// copy everything so far and fault in fresh pages, which cost about 8% of
/// the CPU when one builder held a whole partition.
const BATCH_ROWS: usize = 2048;

/// One Parquet object being built.
pub struct ParquetObject {
    table: String,
    props: WriterProperties,
    advice: Arc<DictionaryAdvice>,
    rows: BatchBuilder,
    /// Full batches of [`BATCH_ROWS`], oldest first.
    batches: Vec<RecordBatch>,
    /// Input bytes of the rows held: the memory accounting's measure (Arrow
    /// holds the same values without keys and punctuation, so this is an
    /// upper bound that also covers the builders' growth slack).
    input_bytes: usize,
    total_rows: u64,
}

impl ParquetObject {
    /// An empty object of table `t`, encoded by the table's `advice`.
    /// Infallible: it is made in the routing loop, which must not stop
    /// half-way through a chunk (see `Pipeline::process`).
    pub fn new(t: &TableSchema, advice: Arc<DictionaryAdvice>) -> Self {
        ParquetObject {
            table: t.name.clone(),
            props: writer_properties(t),
            advice,
            rows: BatchBuilder::new(t.arrow.clone(), &t.columns),
            batches: Vec::new(),
            input_bytes: 0,
            total_rows: 0,
        }
    }

    /// Append rows whose records took `input_bytes` in all.
    pub fn append_all(&mut self, rows: &[RowRef], input_bytes: usize) {
        let mut rest = rows;
        while !rest.is_empty() {
            let room = BATCH_ROWS - self.rows.rows();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.rows.append_all(now);
            if self.rows.rows() == BATCH_ROWS {
                self.batches.push(self.rows.finish());
            }
            rest = later;
        }
        self.input_bytes += input_bytes;
        self.total_rows += rows.len() as u64;
    }

    /// Append a row that holds one record.
    pub fn append(&mut self, record: &Row, input_bytes: usize) {
        self.append_all(&[RowRef::only(record)], input_bytes);
    }

    pub fn rows(&self) -> u64 {
        self.total_rows
    }

    /// See [`BatchBuilder::prefetch_tails`].
    pub fn prefetch(&self) {
        self.rows.prefetch_tails();
    }

    pub fn memory_bytes(&self) -> usize {
        self.input_bytes
    }

    /// Expected size of the finished object.
    pub fn encoded_bytes(&self) -> usize {
        self.input_bytes / COMPRESSION_ESTIMATE
    }

    /// Encode the rows and return the object's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let last = self.rows.finish();
        let what = || format!("parquet object for {}", self.table);
        // Room for the expected object up front: a growing output would
        // copy itself over and over.
        let out = Vec::with_capacity(self.encoded_bytes());
        let props = self.advice.props(&self.props);
        let mut writer = ArrowWriter::try_new(out, last.schema(), Some(props))
            .map_err(|e| Error::encode(what(), e))?;
        // One row group for all the batches (up to ROW_GROUP_ROWS); each
        // batch is freed as soon as it is encoded.
        for batch in std::mem::take(&mut self.batches).into_iter().chain([last]) {
            if batch.num_rows() > 0 {
                writer.write(&batch).map_err(|e| Error::encode(what(), e))?;
            }
        }
        writer.flush().map_err(|e| Error::encode(what(), e))?;
        for group in writer.flushed_row_groups() {
            self.advice.learn(group);
        }
        writer.into_inner().map_err(|e| Error::encode(what(), e))
    }
}

/// The values of one top-level string (or integer) column of a Parquet
/// object, e.g. the record ids a duplicate window is seeded with.
pub fn read_string_column(bytes: Vec<u8>, column: &str) -> Result<Vec<String>> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let fail = |e: &dyn std::fmt::Display| Error::encode(format!("reading column {column}"), e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| fail(&e))?;
    let Some(idx) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])
    else {
        return Ok(Vec::new());
    };
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [idx]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| fail(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(&e))?;
        let col = batch.column(0);
        for i in 0..col.len() {
            if col.is_null(i) {
                continue;
            }
            if let Some(s) = col.as_string_opt::<i32>() {
                out.push(s.value(i).to_owned());
            } else if let Some(n) = col.as_primitive_opt::<arrow_array::types::Int64Type>() {
                out.push(n.value(i).to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn dictionaries_everywhere_but_ids_and_hashes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let reg = crate::schema::Registry::load_dir(&dir).unwrap();
        let t = reg.get("taxi_trips").unwrap();
        let props = writer_properties(t);
        // (column path, dictionary?)
        let cases: &[(&[&str], bool)] = &[
            (&["event_id"], false),       // record_id
            (&["rider", "email"], false), // hash
            (&["rider", "phone"], true),  // redact: one value
            (&["card_number"], true),     // last4
            (&["store_and_fwd_flag"], true),
            (&["fare_amount"], true),
        ];
        for (path, want) in cases {
            let p = ColumnPath::new(path.iter().map(|s| s.to_string()).collect());
            assert_eq!(props.dictionary_enabled(&p), *want, "{path:?}");
            assert_eq!(props.compression(&p), Compression::SNAPPY);
        }
    }

    /// Encode rows of `x` (a float column) and `n` (an integer column)
    /// with `advice`; which of the two the object dictionary-encodes.
    fn encode_with(advice: &Arc<DictionaryAdvice>, xs: &[f64], ns: &[i64]) -> (bool, bool) {
        let s = json!({"type": "object", "properties": {
            "x": {"type": "number"}, "n": {"type": "integer"}, "s": {"type": "string"}
        }, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        let mut o = ParquetObject::new(&t, advice.clone());
        for (x, n) in xs.iter().zip(ns) {
            o.append(
                &Row::from_value(&t.columns, &json!({"x": x, "n": n, "s": "a"})),
                10,
            );
        }
        let r = SerializedFileReader::new(bytes::Bytes::from(o.finish().unwrap())).unwrap();
        let cols = r.metadata().row_group(0).columns();
        let dict = |name: &str| {
            cols.iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .dictionary_page_offset()
                .is_some()
        };
        assert!(dict("s"), "strings keep their dictionary");
        (dict("x"), dict("n"))
    }

    #[test]
    fn dictionaries_are_dropped_where_values_do_not_repeat_and_tried_again() {
        let advice = Arc::new(DictionaryAdvice::default());
        let x = ColumnPath::new(vec!["x".into()]);
        let n = ColumnPath::new(vec!["n".into()]);
        let distinct: Vec<f64> = (0..3000).map(|i| i as f64 * 0.37).collect();
        let repeating: Vec<f64> = (0..3000).map(|i| (i % 5) as f64).collect();
        let few: Vec<i64> = (0..3000).map(|i| i % 7).collect();
        // (x values, dictionaries expected for (x, n), x dropped after)
        let mut steps: Vec<(&[f64], (bool, bool), bool)> = vec![
            // first object: everything tried; x's values are distinct
            (&distinct, (true, true), true),
        ];
        // then x is written plain until its retry comes round
        for _ in 0..DICTIONARY_RETRY {
            steps.push((&distinct, (false, true), true));
        }
        steps.extend([
            // the retry: a dictionary again, still not paying
            (&distinct[..], (true, true), true),
            (&repeating[..], (false, true), true),
        ]);
        for _ in 0..DICTIONARY_RETRY - 1 {
            steps.push((&repeating, (false, true), true));
        }
        // the next retry finds x's values repeating now: it keeps it
        steps.push((&repeating, (true, true), false));
        steps.push((&repeating, (true, true), false));
        for (i, (xs, want, dropped_after)) in steps.into_iter().enumerate() {
            assert_eq!(encode_with(&advice, xs, &few), want, "object {i}");
            assert_eq!(advice.is_dropped(&x), dropped_after, "object {i}");
            assert!(!advice.is_dropped(&n), "object {i}");
        }
    }

    #[test]
    fn string_dictionaries_are_dropped_where_values_do_not_repeat() {
        let s =
            json!({"type": "object", "properties": {"s": {"type": "string"}}, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        let path = ColumnPath::new(vec!["s".into()]);
        /// (what, value of row i, dictionary kept)
        type Case = (&'static str, fn(usize) -> String, bool);
        let cases: &[Case] = &[
            ("distinct ids", |i| format!("id-{i:08}"), false),
            ("a flag", |i| ["Y", "N"][i % 2].to_string(), true),
            ("one tag", |_| "airport".to_string(), true),
            // last4 of random card numbers: mostly distinct in 3000 rows
            (
                "masked cards",
                |i| format!("************{:04}", i * 7919 % 10_000),
                false,
            ),
            // a few hundred distinct among 3000: the dictionary pays
            ("zones", |i| format!("zone-{}", i * 31 % 263), true),
        ];
        for (what, value, kept) in cases {
            let advice = Arc::new(DictionaryAdvice::default());
            let mut o = ParquetObject::new(&t, advice.clone());
            for i in 0..3000 {
                o.append(&Row::from_value(&t.columns, &json!({"s": value(i)})), 10);
            }
            let r = SerializedFileReader::new(bytes::Bytes::from(o.finish().unwrap())).unwrap();
            let c = r.metadata().row_group(0).column(0);
            assert!(c.dictionary_page_offset().is_some(), "{what}: tried first");
            assert_eq!(!advice.is_dropped(&path), *kept, "{what}");
        }
    }

    #[test]
    fn batches_of_any_size_make_one_row_group_in_order() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer"}, "s": {"type": "string"}
        }, "x-lakehose": {}});
        let t = TableSchema::from_value(s, "t", Path::new("t.json")).unwrap();
        // (appends of how many rows each) across and along batch edges
        let cases: &[&[usize]] = &[
            &[],
            &[1],
            &[BATCH_ROWS],
            &[BATCH_ROWS - 1, 2],
            &[3 * BATCH_ROWS + 5],
            &[10, BATCH_ROWS * 2, 7],
        ];
        for appends in cases {
            let mut o = ParquetObject::new(&t, Arc::default());
            let mut n = 0i64;
            for &k in *appends {
                // One Row holds them all, as a transform job's does.
                let mut rows = Row::default();
                let tops: Vec<u32> = (n..n + k as i64)
                    .map(|i| rows.push_value(&t.columns, &json!({"n": i, "s": i.to_string()})))
                    .collect();
                let refs: Vec<RowRef> =
                    tops.iter().map(|&top| RowRef { row: &rows, top }).collect();
                o.append_all(&refs, k * 10);
                n += k as i64;
            }
            assert_eq!(o.rows(), n as u64, "{appends:?}");
            assert_eq!(o.memory_bytes(), n as usize * 10);
            let bytes = bytes::Bytes::from(o.finish().unwrap());
            let r = SerializedFileReader::new(bytes.clone()).unwrap();
            let groups = r.metadata().num_row_groups();
            assert_eq!(groups, usize::from(n > 0), "{appends:?}");
            let got: Vec<String> = read_string_column(bytes.to_vec(), "s").unwrap();
            let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(got, want, "{appends:?}");
        }
    }
}

//! Snappy Parquet objects. Rows accumulate in Arrow builders (columnar,
//! compact) and are encoded in one go when the buffer is flushed, on the
//! flush's worker thread. Keeping no Parquet writer open per partition keeps
//! the per-partition overhead to the builders themselves, which is what lets
//! hundreds of open partitions fit under the memory cap.

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::arrow::BatchBuilder;
use crate::error::{Error, Result};
use crate::schema::TableSchema;
use crate::transform::row::Row;

/// Rows per Parquet row group: large groups compress and scan best, and
/// Athena splits work by row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Assumed JSON-to-Parquet size ratio, used to decide the size flush
/// before the object is encoded (measured on the taxi events: about 8:1;
/// 4:1 errs towards flushing early).
const COMPRESSION_ESTIMATE: usize = 4;

/// Parquet writer settings of a table's objects: Snappy, dictionaries and
/// statistics everywhere, except no dictionary for the record id, whose
/// values are unique by definition (a dictionary would only cost time and
/// bytes).
pub fn writer_properties(t: &TableSchema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("lakehose {}", env!("CARGO_PKG_VERSION")));
    if let Some(id) = &t.ext.record_id {
        let path: Vec<String> = id.split('.').map(str::to_lowercase).collect();
        b = b.set_column_dictionary_enabled(ColumnPath::new(path), false);
    }
    b.build()
}

/// One Parquet object being built.
pub struct ParquetObject {
    table: String,
    props: WriterProperties,
    rows: BatchBuilder,
    /// Input bytes of the rows held: the memory accounting's measure (Arrow
    /// holds the same values without keys and punctuation, so this is an
    /// upper bound that also covers the builders' growth slack).
    input_bytes: usize,
    total_rows: u64,
}

impl ParquetObject {
    pub fn new(t: &TableSchema) -> Result<Self> {
        Ok(ParquetObject {
            table: t.name.clone(),
            props: writer_properties(t),
            rows: BatchBuilder::new(t.arrow.clone(), &t.columns),
            input_bytes: 0,
            total_rows: 0,
        })
    }

    /// Append rows whose records took `input_bytes` in all.
    pub fn append_all(&mut self, rows: &[Row], input_bytes: usize) {
        self.rows.append_all(rows);
        self.input_bytes += input_bytes;
        self.total_rows += rows.len() as u64;
    }

    pub fn append(&mut self, record: &Row, input_bytes: usize) {
        self.append_all(std::slice::from_ref(record), input_bytes);
    }

    pub fn rows(&self) -> u64 {
        self.total_rows
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
        let batch = self.rows.finish();
        let what = || format!("parquet object for {}", self.table);
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(self.props.clone()))
            .map_err(|e| Error::encode(what(), e))?;
        writer.write(&batch).map_err(|e| Error::encode(what(), e))?;
        drop(batch);
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

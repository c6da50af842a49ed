//! Snappy Parquet objects built incrementally in memory: rows go into Arrow
//! builders, every `BATCH_ROWS` rows become a batch the Parquet writer
//! encodes and compresses at once, so a buffer holds compressed pages, not
//! raw records.

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use serde_json::Value;

use super::arrow::BatchBuilder;
use crate::error::{Error, Result};
use crate::schema::TableSchema;

/// Rows per Arrow batch handed to the Parquet writer: large enough to
/// amortise per-batch costs, small enough that raw rows stay a small part of
/// a buffer's memory.
const BATCH_ROWS: usize = 4096;

/// Parquet writer settings every object shares.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1024 * 1024))
        .set_created_by(format!("lakehose {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One Parquet object being built.
pub struct ParquetObject {
    rows: BatchBuilder,
    writer: ArrowWriter<Vec<u8>>,
    /// Input bytes of rows not yet handed to the writer (a proxy for their
    /// size in the Arrow builders).
    pending_bytes: usize,
    total_rows: u64,
}

impl ParquetObject {
    pub fn new(t: &TableSchema) -> Result<Self> {
        let writer = ArrowWriter::try_new(Vec::new(), t.arrow.clone(), Some(writer_properties()))
            .map_err(|e| Error::encode(format!("parquet writer for {}", t.name), e))?;
        Ok(ParquetObject {
            rows: BatchBuilder::new(t.arrow.clone(), &t.columns),
            writer,
            pending_bytes: 0,
            total_rows: 0,
        })
    }

    pub fn append(&mut self, record: &Value, input_bytes: usize) -> Result<()> {
        self.rows.append(record);
        self.pending_bytes += input_bytes;
        self.total_rows += 1;
        if self.rows.rows() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.rows.rows() == 0 {
            return Ok(());
        }
        let batch = self.rows.finish();
        self.pending_bytes = 0;
        self.writer
            .write(&batch)
            .map_err(|e| Error::encode("parquet batch", e))
    }

    pub fn rows(&self) -> u64 {
        self.total_rows
    }

    /// Memory held: pending rows plus the writer's buffered pages.
    pub fn memory_bytes(&self) -> usize {
        self.pending_bytes + self.writer.memory_size()
    }

    /// Approximate size of the finished object.
    pub fn encoded_bytes(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size() + self.pending_bytes / 4
    }

    /// Write the footer and return the object's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.write_pending()?;
        self.writer
            .into_inner()
            .map_err(|e| Error::encode("parquet footer", e))
    }
}

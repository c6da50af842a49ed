//! Encoding: Arrow arrays and Snappy Parquet for good records, gzip NDJSON
//! for error records.

pub mod arrow;
pub mod errors;
pub mod parquet;

//! lakehose: Kinesis / NDJSON events -> validated, masked, partitioned
//! Snappy Parquet in an S3-style lake, registered in a Glue-style catalog,
//! delivered exactly once.
//!
//! The modules follow the data flow:
//! [`source`] -> [`transform`] -> [`partition`] -> [`buffer`] -> [`encode`]
//! -> [`sink`] -> [`catalog`] -> [`checkpoint`], driven by [`pipeline`].

pub mod allocator;
pub mod aws;
pub mod buffer;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod encode;
pub mod error;
pub mod failpoint;
pub mod gen;
pub mod pages;
pub mod partition;
pub mod pipeline;
pub mod prefetch;
pub mod producer;
pub mod quarantine;
pub mod schema;
pub mod sink;
pub mod source;
pub mod summary;
pub mod transform;

pub use error::{Error, Result};

//! Record sources. Each runs on its own thread and hands the pipeline
//! chunks of records over a bounded channel, so a slow sink applies
//! backpressure to reading instead of growing memory.

pub mod file;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::checkpoint::{CheckpointState, Position};
use crate::error::Result;

/// A batch of records read together from one shard.
#[derive(Debug, Default)]
pub struct Chunk {
    pub shard: Arc<str>,
    /// The records' bytes, back to back.
    pub buf: Vec<u8>,
    /// (start, end) byte ranges into `buf`, and each record's position.
    pub records: Vec<(usize, usize, Position)>,
    /// Where reading this shard resumes after this chunk.
    pub next: Position,
    /// When the chunk was read, epoch milliseconds.
    pub arrival_ms: i64,
    /// Bytes of the source consumed by this chunk (blank lines included),
    /// for progress reporting.
    pub consumed: u64,
}

impl Chunk {
    pub fn record(&self, i: usize) -> &[u8] {
        let (a, b, _) = self.records[i];
        &self.buf[a..b]
    }
}

/// A source of records.
pub trait Source: Send {
    /// Stable identity for checkpoints (`file:/abs/path`, `kinesis:stream`).
    fn id(&self) -> &str;
    /// Value of the `source` column and of error records' `stream`.
    fn name(&self) -> &str;
    /// Whether positions are stable across runs, so checkpoints mean
    /// something (false for stdin).
    fn resumable(&self) -> bool;
    /// Total size if known, for progress bars.
    fn size_hint(&self) -> Option<u64>;
    /// Read from the checkpointed positions until the end of the input or
    /// until `stop` is set, sending chunks; returning closes the channel.
    fn run(
        self: Box<Self>,
        resume: &CheckpointState,
        tx: Sender<Result<Chunk>>,
        stop: Arc<AtomicBool>,
    ) -> Result<()>;
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

//! Record sources. Each runs on its own thread and hands the pipeline
//! chunks of records over a bounded channel, so a slow sink applies
//! backpressure to reading instead of growing memory.

pub mod file;
pub mod kinesis;
pub mod kpl;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

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
    /// When the chunk's records arrived, epoch milliseconds (the event time
    /// of tables that declare none, so it must be the same when a record is
    /// read again after a restart).
    pub arrival_ms: i64,
    /// Per record arrival times when they differ (a stream's
    /// ApproximateArrivalTimestamp); empty: every record has `arrival_ms`.
    pub arrivals: Vec<i64>,
    /// Bytes of the source consumed by this chunk (blank lines included),
    /// for progress reporting.
    pub consumed: u64,
    /// The shard is closed (resharding) and this chunk holds its last
    /// records: once they are durable the shard is finished, and its
    /// children may start.
    pub end_of_shard: bool,
    /// How far the shard's reader is behind the stream's tip (Kinesis's
    /// MillisBehindLatest), when the source knows.
    pub behind_ms: Option<i64>,
    /// Shards the stream no longer has (past retention): their checkpoints
    /// can go.
    pub retire: Vec<String>,
}

impl Chunk {
    pub fn record(&self, i: usize) -> &[u8] {
        let (a, b, _) = self.records[i];
        &self.buf[a..b]
    }

    /// When record `i` arrived.
    pub fn arrival(&self, i: usize) -> i64 {
        self.arrivals.get(i).copied().unwrap_or(self.arrival_ms)
    }
}

/// What a source is given to run: where to resume, when to stop, and which
/// shards the pipeline has made durable to their end.
pub struct SourceContext {
    pub resume: CheckpointState,
    pub stop: Arc<AtomicBool>,
    /// Shards read to their end and checkpointed as finished; the pipeline
    /// adds to it after every checkpoint save, and a Kinesis source starts a
    /// child shard only when its parents are in here (per-key order).
    pub finished: Arc<Mutex<BTreeSet<String>>>,
}

impl SourceContext {
    pub fn new(resume: CheckpointState, stop: Arc<AtomicBool>) -> Self {
        let finished = Arc::new(Mutex::new(resume.finished.clone()));
        SourceContext {
            resume,
            stop,
            finished,
        }
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
    /// Read from the checkpointed positions until the end of the input (or,
    /// for a stream, until caught up when asked to exit then) or until
    /// `ctx.stop` is set, sending chunks; returning closes the channel.
    fn run(self: Box<Self>, ctx: &SourceContext, tx: Sender<Result<Chunk>>) -> Result<()>;
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

//! Record sources. Each runs on its own thread and hands the pipeline
//! chunks of records over a bounded channel, so a slow sink applies
//! backpressure to reading instead of growing memory.

pub mod file;
pub mod kinesis;
pub mod kpl;
pub mod mapped;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::checkpoint::{CheckpointState, Position};
use crate::error::Result;

/// Records as (start, end) byte ranges into their chunk's bytes, each
/// with its position.
pub type Records = Vec<(usize, usize, Position)>;

/// A batch of records read together from one shard.
#[derive(Debug, Default)]
pub struct Chunk {
    pub shard: Arc<str>,
    /// The records' bytes, back to back (empty when `mapped` holds them).
    pub buf: Vec<u8>,
    /// The records' bytes in a mapped input file (see [`mapped`]).
    pub mapped: Option<mapped::MappedRange>,
    /// (start, end) byte ranges into the chunk's bytes ([`Chunk::bytes`]),
    /// and each record's position. Empty while `unsplit`.
    pub records: Records,
    /// Some(offset of the chunk's first byte in its shard) while the
    /// chunk's bytes are whole lines, each ending in a newline, not yet cut
    /// into `records`: the transform cuts them as it parses them (see
    /// `pipeline::transform_lines`). A record's position is the offset of
    /// its line.
    pub unsplit: Option<u64>,
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
    /// Where `buf` goes once the chunk is routed, for a source that reads
    /// into blocks of its own (see [`Recycler`]).
    pub recycle: Option<Recycler>,
}

impl Chunk {
    /// Cut an `unsplit` chunk's lines into `records` up front: what the
    /// transform's cut (`pipeline::transform_lines`) is tested against.
    #[cfg(test)]
    pub fn split_lines(&mut self) {
        if let Some(base) = self.unsplit.take() {
            let mut records = Vec::new();
            let bytes = self.bytes();
            file::for_each_line(bytes, 0, bytes.len(), |a, b, start| {
                records.push((a, b, Position::new(u128::from(base) + start as u128, 0)));
            });
            self.records = records;
        }
    }

    pub fn record(&self, i: usize) -> &[u8] {
        let (a, b, _) = self.records[i];
        &self.bytes()[a..b]
    }

    /// The records' bytes: `mapped`'s, or else `buf`.
    pub fn bytes(&self) -> &[u8] {
        self.mapped.as_ref().map_or(&self.buf, |m| m.bytes())
    }

    /// When record `i` arrived.
    pub fn arrival(&self, i: usize) -> i64 {
        self.arrivals.get(i).copied().unwrap_or(self.arrival_ms)
    }
}

/// Read blocks handed back by the pipeline once their chunk is routed, so
/// a source reads into memory it has used before instead of a fresh
/// multi-MiB allocation per chunk (with the reallocation for the carried
/// line, and the page faults when the allocator has returned it).
#[derive(Clone, Debug)]
pub struct Recycler {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
}

impl Recycler {
    /// Keeps at most `blocks` idle blocks; more are freed.
    pub fn new(blocks: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(blocks);
        Recycler { tx, rx }
    }

    /// An empty block, with the capacity of a returned one if there is one.
    pub fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_default()
    }

    /// Hand a block back.
    pub fn give(&self, mut block: Vec<u8>) {
        block.clear();
        let _ = self.tx.try_send(block);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_blocks_come_back_empty_with_their_capacity() {
        // (blocks given back, pool size, capacities expected from takes)
        let cases: &[(&[usize], usize, &[usize])] = &[
            (&[], 2, &[0]),
            (&[64], 2, &[64, 0]),
            (&[64, 128], 2, &[64, 128, 0]),
            // beyond the pool's size, blocks are freed, not kept
            (&[64, 128, 256], 2, &[64, 128, 0]),
        ];
        for (given, size, want) in cases {
            let r = Recycler::new(*size);
            for &cap in *given {
                let mut b = Vec::with_capacity(cap);
                b.extend(std::iter::repeat_n(7u8, cap / 2));
                r.give(b);
            }
            for &cap in *want {
                let b = r.take();
                assert!(b.is_empty(), "{given:?}");
                assert!(
                    b.capacity() >= cap && (cap > 0 || b.capacity() == 0),
                    "{given:?}: {} vs {cap}",
                    b.capacity()
                );
            }
        }
    }
}

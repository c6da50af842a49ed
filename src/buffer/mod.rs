//! Per-route buffers and the policy deciding when they become objects.
//!
//! A route is where a record goes: a table partition for good records, a
//! table and error category for failed ones. Each route has at most one open
//! buffer; it is flushed whole, which is what lets an intent describe an
//! object by its route and per-shard position range.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Position;
use crate::encode::errors::{ErrorObject, ErrorRecord};
use crate::encode::parquet::ParquetObject;
use crate::transform::row::{Row, RowRef};
use crate::transform::ErrorCategory;

/// What a buffer turns into.
pub enum Payload {
    Data(Box<ParquetObject>),
    Errors(ErrorObject),
}

/// What a buffered record is before it is encoded.
pub enum Pending {
    /// A good record: its row is the one at `top` in the chunk's `part`th
    /// [`Row`] (see [`Buffer::drain_pending`]).
    Row {
        part: u32,
        top: u32,
        input_bytes: usize,
    },
    Error(Box<ErrorRecord>),
}

/// Which object a route produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// Partition path of a table.
    Data { table: usize, partition: String },
    /// Error category of a table (None: unrouted).
    Errors {
        table: Option<usize>,
        category: ErrorCategory,
    },
}

pub struct Buffer {
    pub kind: RouteKind,
    pub payload: Payload,
    /// When the first record arrived (for the interval flush).
    pub opened: Instant,
    /// Wall-clock time of the first record, for error object paths.
    pub opened_ms: i64,
    /// shard -> first and last position of the records held.
    pub ranges: BTreeMap<Arc<str>, (Position, Position)>,
    /// Records waiting to be encoded by the parallel append step.
    pub pending: Vec<Pending>,
}

impl Buffer {
    pub fn new(kind: RouteKind, payload: Payload, opened_ms: i64) -> Self {
        Buffer {
            kind,
            payload,
            opened: Instant::now(),
            opened_ms,
            ranges: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    pub fn note_position(&mut self, shard: &Arc<str>, pos: Position) {
        // Looked up before `entry`, which would clone the Arc per record.
        match self.ranges.get_mut(shard) {
            Some(r) => {
                r.0 = r.0.min(pos);
                r.1 = r.1.max(pos);
            }
            None => {
                self.ranges.insert(shard.clone(), (pos, pos));
            }
        }
    }

    /// Encode the pending records; `parts` are the rows of the chunk they
    /// came in. Infallible: the buffer's ranges already cover them.
    pub fn drain_pending(&mut self, parts: &[Row]) {
        if let Payload::Data(o) = &mut self.payload {
            let mut bytes = 0;
            let rows: Vec<RowRef> = self
                .pending
                .drain(..)
                .map(|p| match p {
                    Pending::Row {
                        part,
                        top,
                        input_bytes,
                    } => {
                        bytes += input_bytes;
                        RowRef {
                            row: &parts[part as usize],
                            top,
                        }
                    }
                    // Routes are typed by kind, so a mismatch is a bug, not bad data.
                    Pending::Error(_) => unreachable!("an error record on a data route"),
                })
                .collect();
            o.append_all(&rows, bytes);
            return;
        }
        for p in self.pending.drain(..) {
            match (&mut self.payload, p) {
                (Payload::Errors(o), Pending::Error(rec)) => o.append(&rec),
                // Routes are typed by kind, so a mismatch is a bug, not bad data.
                _ => unreachable!("record kind does not match its route's payload"),
            }
        }
    }

    /// Ask for the memory the next [`drain_pending`](Self::drain_pending)
    /// writes to (see `BatchBuilder::prefetch_tails`).
    pub fn prefetch(&self) {
        if let Payload::Data(o) = &self.payload {
            o.prefetch();
        }
    }

    pub fn rows(&self) -> u64 {
        match &self.payload {
            Payload::Data(o) => o.rows(),
            Payload::Errors(o) => o.rows(),
        }
    }

    pub fn memory_bytes(&self) -> usize {
        match &self.payload {
            Payload::Data(o) => o.memory_bytes(),
            Payload::Errors(o) => o.memory_bytes(),
        }
    }

    pub fn encoded_bytes(&self) -> usize {
        match &self.payload {
            Payload::Data(o) => o.encoded_bytes(),
            Payload::Errors(o) => o.encoded_bytes(),
        }
    }
}

/// Why buffers are flushed (for logs and the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    Size,
    Interval,
    MemoryCap,
    Shutdown,
    /// A shard ended (resharding): its records are made durable at once so
    /// its children can start.
    ShardEnd,
}

/// The open buffers by route.
pub type Buffers = HashMap<String, Buffer, ahash::RandomState>;

/// Flush thresholds.
#[derive(Debug, Clone)]
pub struct Policy {
    pub size_bytes: usize,
    pub interval: Duration,
    pub memory_cap: usize,
}

/// Share of the memory cap buffers may hold; the rest is headroom for what
/// is in flight around them (chunks read ahead, a chunk's parsed records,
/// objects being encoded), so the whole process stays near the cap.
const BUFFER_SHARE_PERCENT: usize = 75;

/// The most the duplicate windows may hold together: half the buffers'
/// share of the cap. More, and the buffers' share shrinks until every chunk
/// flushes a crowd of tiny objects.
pub fn window_budget(memory_cap: usize) -> usize {
    memory_cap / 100 * BUFFER_SHARE_PERCENT / 2
}

/// Which routes to flush now, and why. Shutdown flushes are chosen by the
/// caller; this covers size, interval and the memory cap (largest first,
/// down to half the buffers' share so the next records do not trigger it
/// again at once). `reserved` is memory held outside the buffers that
/// counts against the cap too (the duplicate windows).
pub fn select(
    buffers: &Buffers,
    policy: &Policy,
    now: Instant,
    reserved: usize,
) -> Vec<(String, FlushReason)> {
    let buffer_cap = (policy.memory_cap / 100 * BUFFER_SHARE_PERCENT).saturating_sub(reserved);
    let mut out = Vec::new();
    let mut total = 0usize;
    for (route, b) in buffers {
        if b.encoded_bytes() >= policy.size_bytes {
            out.push((route.clone(), FlushReason::Size));
        } else if now.duration_since(b.opened) >= policy.interval {
            out.push((route.clone(), FlushReason::Interval));
        } else {
            total += b.memory_bytes();
        }
    }
    if total > buffer_cap {
        let mut rest: Vec<(&String, usize)> = buffers
            .iter()
            .filter(|(r, _)| !out.iter().any(|(o, _)| o == *r))
            .map(|(r, b)| (r, b.memory_bytes()))
            .collect();
        rest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (route, mem) in rest {
            if total <= buffer_cap / 2 {
                break;
            }
            total -= mem;
            out.push((route.clone(), FlushReason::MemoryCap));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_buffer(bytes: usize) -> Buffer {
        let mut o = ErrorObject::new();
        // incompressible text so encoded size tracks input
        let mut seed = bytes as u64 + 1;
        let msg: String = (0..bytes)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (b'a' + ((seed >> 33) % 26) as u8) as char
            })
            .collect();
        let rec = ErrorRecord {
            attempts_made: 1,
            arrival_timestamp: 0,
            error_code: "invalid_json".into(),
            error_message: msg,
            raw_data: String::new(),
            sequence_number: "0".into(),
            sub_sequence_number: 0,
            stream: "s".into(),
            shard_id: "f".into(),
            table: None,
            details: vec![],
            masked_fields: vec![],
        };
        o.append(&rec);
        Buffer::new(
            RouteKind::Errors {
                table: None,
                category: ErrorCategory::InvalidJson,
            },
            Payload::Errors(o),
            0,
        )
    }

    #[test]
    fn policy_table() {
        let now = Instant::now();
        let mut m = Buffers::default();
        m.insert("small".to_string(), err_buffer(10));
        m.insert("big".to_string(), err_buffer(200_000));
        let (max, hour) = (usize::MAX, Duration::from_secs(3600));
        let cases = [
            // (size limit, interval, cap, reserved, expected flushed routes)
            (max, hour, max, 0, vec![]),
            (50_000, hour, max, 0, vec!["big"]),
            // interval 0: everything is due
            (max, Duration::ZERO, max, 0, vec!["big", "small"]),
            // over the cap: the largest goes first, and that suffices
            (max, hour, 200_000, 0, vec!["big"]),
            // under the cap alone, over it with what the windows hold
            (max, hour, 1_000_000, 0, vec![]),
            (max, hour, 1_000_000, 700_000, vec!["big"]),
            // the windows alone over the cap: every buffer goes
            (max, hour, 1_000_000, 2_000_000, vec!["big", "small"]),
        ];
        for (size, interval, cap, reserved, want) in cases {
            let p = Policy {
                size_bytes: size,
                interval,
                memory_cap: cap,
            };
            let due = select(&m, &p, now, reserved);
            let mut got: Vec<String> = due.into_iter().map(|(r, _)| r).collect();
            got.sort();
            assert_eq!(
                got, want,
                "size {size} interval {interval:?} cap {cap} reserved {reserved}"
            );
        }
    }
}

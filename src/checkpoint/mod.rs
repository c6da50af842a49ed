//! Checkpoints and intents: what makes delivery exactly-once.
//!
//! Per shard, the checkpoint is the position below which every record is
//! durable in the lake (the low watermark over all open buffers). Before an
//! object is written, an *intent* is saved: the object's key, its route (a
//! pure function of the record: table + partition, or table + error
//! category) and, per shard, the first and last position of the records it
//! holds. After a crash, reading resumes at the checkpoint; records covered
//! by an intent whose object exists are skipped (they are in the lake), and
//! intents whose object is missing are dropped (their records are read
//! again).

pub mod local;
pub mod s3;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sink::ObjectStore;

/// A record's place in its shard: sequence number, then sub-sequence number
/// for de-aggregated records. For a file, the sequence number is the byte
/// offset of the line. Kinesis sequence numbers run to 56+ decimal digits,
/// beyond u128, so the number is kept as two base-10^38 limbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Digits above the lowest 38 (zero for files and most tests).
    pub seq_hi: u128,
    /// The lowest 38 decimal digits of the sequence number.
    pub seq: u128,
    pub sub: u32,
}

const LIMB: u128 = 100_000_000_000_000_000_000_000_000_000_000_000_000; // 10^38
const LIMB_DIGITS: usize = 38;

impl Position {
    pub fn new(seq: u128, sub: u32) -> Self {
        Position {
            seq_hi: seq / LIMB,
            seq: seq % LIMB,
            sub,
        }
    }

    /// Parse a decimal sequence number of any length up to 76 digits.
    pub fn parse_seq(text: &str, sub: u32) -> Option<Position> {
        if text.is_empty()
            || text.len() > 2 * LIMB_DIGITS
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let split = text.len().saturating_sub(LIMB_DIGITS);
        let hi = if split == 0 {
            0
        } else {
            text[..split].parse().ok()?
        };
        Some(Position {
            seq_hi: hi,
            seq: text[split..].parse().ok()?,
            sub,
        })
    }

    /// The sequence number as decimal text.
    pub fn seq_text(&self) -> String {
        if self.seq_hi == 0 {
            self.seq.to_string()
        } else {
            format!("{}{:038}", self.seq_hi, self.seq)
        }
    }
}

// Serialised as "seq" or "seq.sub": sequence numbers exceed what JSON
// numbers hold exactly.
impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.sub == 0 {
            s.serialize_str(&self.seq_text())
        } else {
            s.serialize_str(&format!("{}.{}", self.seq_text(), self.sub))
        }
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (a, b) = s.split_once('.').unwrap_or((&s, "0"));
        let sub = b.parse().map_err(serde::de::Error::custom)?;
        Position::parse_seq(a, sub)
            .ok_or_else(|| serde::de::Error::custom(format!("bad position {s:?}")))
    }
}

/// An object about to be (or already) written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub key: String,
    pub route: String,
    /// shard -> [first, last] positions of the records in the object.
    pub ranges: BTreeMap<String, (Position, Position)>,
}

/// What the checkpoint store holds for one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckpointState {
    pub version: u32,
    /// shard -> position to resume at (every record before it is durable).
    pub shards: BTreeMap<String, Position>,
    /// Intents that may cover records at or after a shard's checkpoint.
    pub intents: Vec<Intent>,
    /// When this application first started on the source (epoch ms): a
    /// stream read from `latest` resumes shards without a checkpoint from
    /// here, so a crash before their first checkpoint loses nothing.
    #[serde(default)]
    pub started_ms: Option<i64>,
    /// Shards read to their end (closed by resharding) with every record
    /// durable: never read again.
    #[serde(default)]
    pub finished: BTreeSet<String>,
    /// Partitions whose objects are in the lake but whose registration in
    /// the catalog failed (e.g. a Glue outage): retried at every flush and
    /// after a restart, so none is lost. Table -> partition paths.
    #[serde(default)]
    pub owed_partitions: BTreeMap<String, BTreeSet<String>>,
}

pub const STATE_VERSION: u32 = 1;

/// Durable storage of a source's [`CheckpointState`].
pub trait CheckpointStore: Send {
    fn load(&mut self) -> Result<Option<CheckpointState>>;
    fn save(&mut self, state: &CheckpointState) -> Result<()>;
    /// Where the state lives, for messages.
    fn location(&self) -> String;
}

/// Ranges already in the lake, recovered from intents at start: records they
/// cover are skipped.
#[derive(Debug, Default)]
pub struct Delivered {
    by_route: BTreeMap<String, Vec<(String, Position, Position)>>,
}

impl Delivered {
    pub fn is_empty(&self) -> bool {
        self.by_route.is_empty()
    }

    /// Whether the record at `pos` of `shard` routed to `route` is already
    /// in an object of the lake.
    pub fn covers(&self, route: &str, shard: &str, pos: Position) -> bool {
        self.by_route.get(route).is_some_and(|v| {
            v.iter()
                .any(|(s, first, last)| s == shard && *first <= pos && pos <= *last)
        })
    }
}

/// Load the state and sort its intents: those whose object exists become
/// [`Delivered`] ranges (and stay in the state until the checkpoint passes
/// them), the others are dropped along with any half-written object.
pub fn recover(
    store: &mut dyn CheckpointStore,
    objects: &dyn ObjectStore,
) -> Result<(CheckpointState, Delivered)> {
    let mut state = store.load()?.unwrap_or(CheckpointState {
        version: STATE_VERSION,
        ..Default::default()
    });
    let mut delivered = Delivered::default();
    let mut kept = Vec::new();
    for intent in std::mem::take(&mut state.intents) {
        if objects.exists(&intent.key)? || replayed(objects, &intent)? {
            for (shard, (first, last)) in &intent.ranges {
                delivered
                    .by_route
                    .entry(intent.route.clone())
                    .or_default()
                    .push((shard.clone(), *first, *last));
            }
            kept.push(intent);
        } else {
            objects.discard_partial(&intent.key)?;
        }
    }
    state.intents = kept;
    Ok((state, delivered))
}

/// Whether an error object of this intent was replayed (and maybe purged)
/// since: its records are delivered, in the lake or in newer error objects.
fn replayed(objects: &dyn ObjectStore, intent: &Intent) -> Result<bool> {
    if !intent.route.starts_with("errors/") {
        return Ok(false);
    }
    match intent.key.rfind(&format!("{}/", intent.route)) {
        Some(at) => objects.exists(&crate::quarantine::replay::marker_key(
            &intent.key[..at],
            &intent.key,
        )),
        None => Ok(false),
    }
}

impl CheckpointState {
    /// Drop intents every range of which lies before its shard's checkpoint
    /// or in a finished shard: reading never goes back there, so they cannot
    /// matter again.
    pub fn prune(&mut self) {
        let (shards, finished) = (&self.shards, &self.finished);
        self.intents.retain(|i| {
            i.ranges.iter().any(|(shard, (_, last))| {
                !finished.contains(shard) && shards.get(shard).is_none_or(|cp| *last >= *cp)
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::LocalStore;

    fn intent(key: &str, route: &str, shard: &str, a: u128, b: u128) -> Intent {
        Intent {
            key: key.into(),
            route: route.into(),
            ranges: [(
                shard.to_string(),
                (Position::new(a, 0), Position::new(b, 0)),
            )]
            .into(),
        }
    }

    #[test]
    fn position_serialises_as_text() {
        let cases = [
            (Position::new(42, 0), "\"42\""),
            // a real Kinesis sequence number: 56 digits
            (
                Position::parse_seq(
                    "49590338271490256608559692538361571095921575989136588898",
                    0,
                )
                .unwrap(),
                "\"49590338271490256608559692538361571095921575989136588898\"",
            ),
            (
                Position::new(LIMB, 0),
                "\"100000000000000000000000000000000000000\"",
            ),
            (Position::new(7, 3), "\"7.3\""),
        ];
        for (p, want) in cases {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(s, want);
            assert_eq!(serde_json::from_str::<Position>(&s).unwrap(), p);
        }
        // order is numeric across limb boundaries
        let a = Position::parse_seq("99999999999999999999999999999999999999", 0).unwrap();
        let b = Position::parse_seq("100000000000000000000000000000000000000", 0).unwrap();
        assert!(a < b);
        assert!(Position::parse_seq("12a", 0).is_none());
    }

    #[test]
    fn recover_keeps_intents_whose_object_exists() {
        let dir = tempfile::tempdir().unwrap();
        let objects = LocalStore::open(&dir.path().join("lake")).unwrap();
        objects.put("t/a.parquet", b"x").unwrap();
        let mut store = local::LocalCheckpointStore::new(dir.path().join("cp.json"));
        let state = CheckpointState {
            version: STATE_VERSION,
            shards: [("s".to_string(), Position::new(10, 0))].into(),
            intents: vec![
                intent("t/a.parquet", "t/p1", "s", 10, 20),
                intent("t/b.parquet", "t/p2", "s", 12, 30),
            ],
            ..Default::default()
        };
        store.save(&state).unwrap();
        let (st, delivered) = recover(&mut store, &objects).unwrap();
        assert_eq!(st.intents.len(), 1);
        let table = [
            ("t/p1", "s", 10, true),
            ("t/p1", "s", 20, true),
            ("t/p1", "s", 21, false),
            ("t/p1", "other", 15, false), // same range, other shard
            ("t/p2", "s", 15, false),     // its object never landed
        ];
        for (route, shard, pos, want) in table {
            assert_eq!(
                delivered.covers(route, shard, Position::new(pos, 0)),
                want,
                "{route} {shard} {pos}"
            );
        }
    }

    #[test]
    fn prune_drops_intents_behind_the_checkpoint() {
        let mut st = CheckpointState {
            version: STATE_VERSION,
            shards: [("s".to_string(), Position::new(25, 0))].into(),
            intents: vec![intent("a", "r", "s", 10, 20), intent("b", "r", "s", 21, 30)],
            ..Default::default()
        };
        st.prune();
        assert_eq!(
            st.intents
                .iter()
                .map(|i| i.key.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }
}

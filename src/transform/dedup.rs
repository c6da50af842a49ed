//! Dropping producer duplicates: producers retry PutRecords after partial
//! failures, so one event can reach the stream twice under two sequence
//! numbers. For a table whose schema names a `record_id`, a record whose id
//! was seen within the window (the last `max_ids` ids and `max_age`
//! milliseconds of arrival time) is dropped.
//!
//! Memory is bounded: ids are kept as 64-bit digests (about 40 bytes each
//! with the index), evicted oldest first. Two distinct ids collide with
//! probability about n²/2⁶⁵: one in 3.6·10⁷ for a window of a million.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Fixed keys: digests must not depend on the process (a window seeded
/// from what one run saw is compared with another run's records).
const K0: u64 = 0x6c61_6b65_686f_7365;
const K1: u64 = 0x6465_6475_7020_6964;

/// The most heap one remembered id can cost: a map bucket (digest, arrival,
/// control byte) at hashbrown's 7/8 load rounded up to a power of two, plus
/// a queue slot at up to twice its length (see [`DedupWindow::memory_bytes`]).
const WORST_BYTES_PER_ID: usize = 72;

#[derive(Debug)]
pub struct DedupWindow {
    max_ids: usize,
    max_age_ms: i64,
    /// digest -> arrival of its latest sighting.
    seen: HashMap<u64, i64, IdentityHash>,
    /// Sightings oldest first: (digest, arrival).
    order: VecDeque<(u64, i64)>,
}

impl DedupWindow {
    pub fn new(max_ids: usize, max_age_ms: i64) -> DedupWindow {
        DedupWindow {
            max_ids: max_ids.max(1),
            max_age_ms,
            seen: HashMap::with_hasher(IdentityHash),
            order: VecDeque::new(),
        }
    }

    pub fn digest(id: &str) -> u64 {
        let mut h = siphasher(K0, K1);
        h.write(id.as_bytes());
        h.finish()
    }

    /// Record a sighting of the id with this [`DedupWindow::digest`] at
    /// `arrival_ms`; true when it is a repeat of an id still in the window
    /// (the record is to be dropped).
    pub fn is_repeat(&mut self, d: u64, arrival_ms: i64) -> bool {
        self.evict(arrival_ms);
        match self.seen.entry(d) {
            std::collections::hash_map::Entry::Occupied(_) => return true,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(arrival_ms);
            }
        }
        self.order.push_back((d, arrival_ms));
        if self.order.len() > self.max_ids {
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        false
    }

    fn evict(&mut self, now_ms: i64) {
        while let Some(&(d, at)) = self.order.front() {
            if now_ms - at <= self.max_age_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&d);
        }
    }

    /// Heap bytes held: the map's buckets (a digest, an arrival and a
    /// control byte each, at hashbrown's 7/8 load) and the queue's slots.
    pub fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, i64)>();
        let buckets = (self.seen.capacity() * 8 / 7).next_power_of_two();
        buckets * (slot + 1) + self.order.capacity() * slot
    }

    /// The most ids each of `tables` windows may hold so that together,
    /// at their worst-case footprint, they take no more than
    /// `budget_bytes`; at least one.
    pub fn ids_within(budget_bytes: usize, tables: usize) -> usize {
        (budget_bytes / tables.max(1) / WORST_BYTES_PER_ID).max(1)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The keys are already SipHash digests: hashing them again is waste.
#[derive(Debug, Clone, Copy, Default)]
struct IdentityHash;

impl BuildHasher for IdentityHash {
    type Hasher = Identity;
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

#[derive(Debug, Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[allow(deprecated)]
fn siphasher(k0: u64, k1: u64) -> std::hash::SipHasher {
    // std's SipHash-2-4 with fixed keys: stable within a toolchain, which is
    // all a window that lives in memory needs.
    std::hash::SipHasher::new_with_keys(k0, k1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_by_count_and_by_age() {
        // (max ids, max age, sightings (id, at), expected repeats)
        type Case<'a> = (usize, i64, &'a [(&'a str, i64)], &'a [bool]);
        let cases: &[Case] = &[
            (
                10,
                1000,
                &[("a", 0), ("b", 1), ("a", 2)],
                &[false, false, true],
            ),
            // evicted by count: only the last 2 ids are remembered
            (
                2,
                1000,
                &[("a", 0), ("b", 1), ("c", 2), ("a", 3)],
                &[false, false, false, false],
            ),
            // evicted by age
            (
                10,
                100,
                &[("a", 0), ("a", 50), ("a", 151)],
                &[false, true, false],
            ),
            // a repeat does not extend its id's stay
            (
                10,
                100,
                &[("a", 0), ("a", 99), ("a", 101)],
                &[false, true, false],
            ),
        ];
        for (max, age, seq, want) in cases {
            let mut w = DedupWindow::new(*max, *age);
            let got: Vec<bool> = seq
                .iter()
                .map(|(id, at)| w.is_repeat(DedupWindow::digest(id), *at))
                .collect();
            assert_eq!(&got, want, "{seq:?}");
            assert!(w.len() <= *max);
        }
    }

    #[test]
    fn ids_within_budget() {
        // (budget bytes, tables, expected ids per table)
        let cases = [
            (72_000_000, 1, 1_000_000),
            (72_000_000, 2, 500_000),
            (72_000_000, 0, 1_000_000), // no table: as if one
            (10, 1, 1),                 // never zero
        ];
        for (budget, tables, want) in cases {
            assert_eq!(
                DedupWindow::ids_within(budget, tables),
                want,
                "{budget} {tables}"
            );
        }
        // The estimate holds: a full window stays within its budget.
        let ids = DedupWindow::ids_within(1_000_000, 1);
        let mut w = DedupWindow::new(ids, i64::MAX);
        for i in 0..(ids * 3) {
            w.is_repeat(DedupWindow::digest(&i.to_string()), i as i64);
        }
        assert!(w.memory_bytes() <= 1_000_000, "{}", w.memory_bytes());
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = DedupWindow::new(1000, i64::MAX);
        for i in 0..100_000 {
            assert!(!w.is_repeat(DedupWindow::digest(&i.to_string()), i));
        }
        assert_eq!(w.len(), 1000);
        // What the memory cap is charged: at least the ids' own bytes, and
        // no more than a few times that after heavy churn.
        let m = w.memory_bytes();
        assert!((1000 * 32..=1000 * 32 * 4).contains(&m), "{m}");
        assert!(w.is_repeat(DedupWindow::digest("99999"), 100_000));
        assert!(!w.is_repeat(DedupWindow::digest("5"), 100_001));
    }
}

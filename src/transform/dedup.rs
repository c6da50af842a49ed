//! Dropping producer duplicates: producers retry PutRecords after partial
//! failures, so one event can reach the stream twice under two sequence
//! numbers. For a table whose schema names a `record_id`, a record whose id
//! was seen within the window (the last `max_ids` ids and `max_age`
//! milliseconds of arrival time) is dropped.
//!
//! Memory is bounded: ids are kept as 64-bit digests (about 32 bytes each
//! with the order they arrived in), evicted oldest first. Two distinct ids
//! collide with probability about n²/2⁶⁵: one in 3.6·10⁷ for a window of a
//! million.
//!
//! The window is checked on one thread, in record order, for every record:
//! it is a serial stage of the pipeline. Its digests live in an open-
//! addressing table of their own (see [`DigestSet`]) rather than a general
//! map, so the caller can prefetch a digest's slot a few records ahead: a
//! million-id window is tens of MiB, and each check was a cache miss.

use std::collections::VecDeque;
use std::hash::Hasher;

/// Fixed keys: digests must not depend on the process (a window seeded
/// from what one run saw is compared with another run's records).
const K0: u64 = 0x6c61_6b65_686f_7365;
const K1: u64 = 0x6465_6475_7020_6964;

/// The most heap one remembered id can cost: the table is sized up front
/// to the power of two at least twice the ids, so up to 4 slots of 8
/// bytes, plus its queue slot (digest, arrival) of 16: 48 bytes (see
/// [`DedupWindow::new`]). 64 leaves the allocator's rounding its room.
const WORST_BYTES_PER_ID: usize = 64;

#[derive(Debug)]
pub struct DedupWindow {
    max_ids: usize,
    max_age_ms: i64,
    /// The digests in the window.
    seen: DigestSet,
    /// Sightings oldest first: (digest, arrival).
    order: VecDeque<(u64, i64)>,
}

impl DedupWindow {
    /// A window with room for `max_ids` from the start. Grown on demand,
    /// the table rehashed every digest at each doubling, on the pipeline's
    /// serial stage, and each doubling faulted in a fresh table: with a
    /// million ids, one page fault in six of a run's was the window's
    /// (`perf record -e page-faults`). The memory cap is charged the full
    /// window from the start, as it is sized for it anyway; the queue's
    /// pages are touched only as it fills.
    pub fn new(max_ids: usize, max_age_ms: i64) -> DedupWindow {
        let max_ids = max_ids.max(1);
        DedupWindow {
            max_ids,
            max_age_ms,
            // One over: an id is added before the oldest is evicted.
            seen: DigestSet::with_capacity(max_ids + 1),
            order: VecDeque::with_capacity(max_ids + 1),
        }
    }

    /// Never 0: the set marks free slots with 0 (a SipHash of 0 becomes 1,
    /// one more collision in 2⁶⁴).
    pub fn digest(id: &str) -> u64 {
        let mut h = siphasher(K0, K1);
        h.write(id.as_bytes());
        h.finish().max(1)
    }

    /// Record a sighting of the id with this [`DedupWindow::digest`] at
    /// `arrival_ms`; true when it is a repeat of an id still in the window
    /// (the record is to be dropped).
    pub fn is_repeat(&mut self, d: u64, arrival_ms: i64) -> bool {
        self.evict(arrival_ms);
        if !self.seen.insert(d) {
            return true;
        }
        self.order.push_back((d, arrival_ms));
        if self.order.len() > self.max_ids {
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(old);
            }
        }
        false
    }

    /// Ask for the cache lines that checking `d` will touch, and, when the
    /// window is full, those of the id evicted `ahead` checks from now:
    /// called `ahead` records before that record's [`DedupWindow::is_repeat`].
    pub fn prefetch(&self, d: u64, ahead: usize) {
        self.seen.prefetch(d);
        if self.order.len() >= self.max_ids {
            if let Some(&(old, _)) = self.order.get(ahead) {
                self.seen.prefetch(old);
            }
        }
    }

    fn evict(&mut self, now_ms: i64) {
        while let Some(&(d, at)) = self.order.front() {
            if now_ms - at <= self.max_age_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(d);
        }
    }

    /// Heap bytes held: the set's slots and the queue's.
    pub fn memory_bytes(&self) -> usize {
        self.seen.memory_bytes() + self.order.capacity() * std::mem::size_of::<(u64, i64)>()
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

/// A set of non-zero digests: linear probing in a power-of-two table at
/// most half full, 0 marking a free slot. The digests are SipHash output,
/// so their low bits are the slot: no hashing again.
#[derive(Debug)]
struct DigestSet {
    slots: Vec<u64>,
    len: usize,
    /// The thread populating a large table's pages (see
    /// [`DigestSet::with_capacity`]); joined before the table is freed.
    populating: Option<std::thread::JoinHandle<()>>,
}

/// Tables from this size have their pages populated in the background.
const POPULATE_MIN_BYTES: usize = 1 << 20;

impl DigestSet {
    /// Room for `n` digests without growing: at least twice as many slots.
    ///
    /// A large table's pages are populated on a thread of its own while
    /// the run starts. Left to fault in, each page was first read by a
    /// probe (mapped to the kernel's zero page), then written (copied out
    /// of it, with every core's TLB flushed): the first chunks' checks
    /// touch nearly every page of a million-id table, and `perf record`
    /// showed the serial stage faulting alone for about 80 ms of the run's
    /// first 160, both other threads waiting on it. The table is charged
    /// to the memory cap in full anyway (see [`DedupWindow::new`]).
    fn with_capacity(n: usize) -> DigestSet {
        let slots = vec![0u64; n.saturating_mul(2).next_power_of_two().max(16)];
        let bytes = slots.len() * std::mem::size_of::<u64>();
        let populating = (bytes >= POPULATE_MIN_BYTES)
            .then(|| {
                let start = slots.as_ptr() as usize;
                std::thread::Builder::new()
                    .name("lakehose-window".into())
                    .spawn(move || crate::pages::populate_for_writing(start, bytes))
                    .ok()
            })
            .flatten();
        DigestSet {
            slots,
            len: 0,
            populating,
        }
    }

    /// Wait for the populating thread, before the table it works on is
    /// freed.
    fn populated(&mut self) {
        if let Some(t) = self.populating.take() {
            let _ = t.join();
        }
    }

    fn home(&self, d: u64) -> usize {
        d as usize & (self.slots.len() - 1)
    }

    /// Insert `d`; false when it was there already.
    fn insert(&mut self, d: u64) -> bool {
        debug_assert_ne!(d, 0);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.find(d) {
            Ok(_) => false,
            Err(free) => {
                self.slots[free] = d;
                self.len += 1;
                true
            }
        }
    }

    /// Where `d` is (`Ok`), or the free slot that ends its run (`Err`).
    fn find(&self, d: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(d);
        loop {
            match self.slots[i] {
                0 => return Err(i),
                s if s == d => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Remove `d` if present. The entries after it in its run move back,
    /// so every entry stays reachable from its home slot without
    /// tombstones (Knuth's algorithm R).
    fn remove(&mut self, d: u64) {
        let Ok(mut i) = self.find(d) else { return };
        let mask = self.slots.len() - 1;
        self.len -= 1;
        let mut j = i;
        loop {
            self.slots[i] = 0;
            loop {
                j = (j + 1) & mask;
                let s = self.slots[j];
                if s == 0 {
                    return;
                }
                let k = self.home(s);
                // Stays when its home lies cyclically in (i, j].
                let stays = if i <= j {
                    i < k && k <= j
                } else {
                    i < k || k <= j
                };
                if !stays {
                    break;
                }
            }
            self.slots[i] = self.slots[j];
            i = j;
        }
    }

    fn grow(&mut self) {
        self.populated();
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for d in old.into_iter().filter(|&d| d != 0) {
            if let Err(free) = self.find(d) {
                self.slots[free] = d;
            }
        }
    }

    #[cfg(test)]
    fn contains(&self, d: u64) -> bool {
        self.find(d).is_ok()
    }

    fn prefetch(&self, d: u64) {
        let slot = &self.slots[self.home(d)];
        crate::prefetch::bytes((slot as *const u64).cast(), 8);
    }

    fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }
}

impl Drop for DigestSet {
    fn drop(&mut self) {
        self.populated();
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
    fn digest_set_matches_a_set_model() {
        use std::collections::HashSet;
        // (ops: (insert?, digest)) on a 16-slot table: digests sharing low
        // bits collide into runs, 15 and 31 wrap around the table's end,
        // and removals from the middle of a run must leave the rest found.
        type Ops<'a> = &'a [(bool, u64)];
        let cases: &[Ops] = &[
            &[(true, 1), (true, 17), (true, 33), (false, 17), (true, 49)],
            &[(true, 15), (true, 31), (true, 47), (false, 15), (true, 63)],
            &[(true, 14), (true, 15), (true, 30), (true, 31), (false, 14)],
            &[(true, 3), (true, 3), (false, 3), (false, 3), (true, 19)],
            &[(true, 2), (true, 18), (true, 3), (false, 2), (false, 18)],
        ];
        for ops in cases {
            let mut set = DigestSet::with_capacity(0);
            let mut model = HashSet::new();
            for &(insert, d) in *ops {
                if insert {
                    assert_eq!(set.insert(d), model.insert(d), "{ops:?} insert {d}");
                } else {
                    set.remove(d);
                    model.remove(&d);
                }
                assert_eq!(set.len, model.len(), "{ops:?}");
                for probe in 1..70 {
                    assert_eq!(
                        set.contains(probe),
                        model.contains(&probe),
                        "{ops:?}: {probe}"
                    );
                }
            }
        }
        // Long random runs through growth, with removals (a fixed LCG).
        let mut set = DigestSet::with_capacity(0);
        let mut model = HashSet::new();
        let mut x = 7u64;
        for _ in 0..50_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // a small range, so the same digests come back often
            let d = (x >> 40) % 4096 + 1;
            if x & 3 == 0 {
                set.remove(d);
                model.remove(&d);
            } else {
                assert_eq!(set.insert(d), model.insert(d));
            }
        }
        assert_eq!(set.len, model.len());
        assert!((1..=4096).all(|d| set.contains(d) == model.contains(&d)));
        assert!(set.slots.len() >= 2 * set.len);
    }

    /// A table large enough to be populated in the background holds what
    /// is written while the populating thread runs, and nothing else; a
    /// small one starts no thread.
    #[test]
    fn populated_table_keeps_its_digests() {
        // (digests to room for, whether a thread populates the table)
        for (n, populates) in [
            (16, false),
            (POPULATE_MIN_BYTES / 16, true),
            (1 << 20, true),
        ] {
            let mut set = DigestSet::with_capacity(n);
            assert_eq!(set.populating.is_some(), populates, "{n}");
            // Spread over the whole table at once, racing the thread.
            let step = u64::MAX / n as u64;
            let digests: Vec<u64> = (1..=n as u64).map(|i| (i * step) | 1).collect();
            for &d in &digests {
                assert!(set.insert(d), "{n}: {d}");
            }
            set.populated();
            assert!(digests.iter().all(|&d| set.contains(d)), "{n}");
            assert!(!set.contains(2) && !set.contains(step + 2), "{n}");
            assert_eq!(set.len, n);
        }
    }

    #[test]
    fn ids_within_budget() {
        // (budget bytes, tables, expected ids per table)
        let cases = [
            (64_000_000, 1, 1_000_000),
            (64_000_000, 2, 500_000),
            (64_000_000, 0, 1_000_000), // no table: as if one
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
    fn a_window_is_sized_once() {
        // (max ids, slots expected): at least twice the ids plus one, a power of two
        for (ids, slots) in [
            (1, 16),
            (7, 16),
            (8, 32),
            (1000, 2048),
            (1023, 2048),
            (1024, 4096),
        ] {
            let mut w = DedupWindow::new(ids, i64::MAX);
            assert_eq!(w.seen.slots.len(), slots, "{ids}");
            let queue = w.order.capacity();
            // Full, then churned through three times over: never regrown.
            for i in 0..(ids * 4) {
                w.is_repeat(DedupWindow::digest(&i.to_string()), i as i64);
            }
            assert_eq!(w.len(), ids);
            assert_eq!(w.seen.slots.len(), slots, "{ids}");
            assert_eq!(w.order.capacity(), queue, "{ids}");
        }
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

//! "Surely absent" answers for the writer's lookups of event ids and stream heads.
//!
//! Nearly every append carries a new first event id, and many start a new stream; both
//! lookups then miss the memtable and walk sled's tree only to find nothing (P1 and the
//! generator spent ~10 % of their CPU there). A [`Filter`] is a growing Bloom filter of
//! every key the index holds: when it says a key is absent, sled is not asked.
//!
//! Correctness rests on one rule: every key reaches the filter before it can be found in
//! the index. Keys added in this process pass through [`super::index::Index::add`],
//! which inserts them before the memtable shows them; keys already in sled at open are
//! inserted by a background scan, and until that scan is done the filter answers
//! "maybe" for everything (so open does not wait for it, and lookups stay exact).
//! False positives only cost the sled read they would have cost anyway.
//!
//! **Off by default** (`ORGLINE_STORE_FILTERS=1` turns it on): seeding the medium scale
//! took 26–28 s with it and 35–36 s without (CPU 34 s instead of 48 s), but the process's
//! RSS grew steadily to 6 GB instead of 0.9 GB. The filters themselves hold a few MB;
//! the growth looks like sled's garbage from the indexer's batches no longer being
//! reclaimed once the writer stops calling into sled — not yet understood, so not on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Bits per key a part is sized for: 10 bits and 7 probes give ~1 % false positives.
const BITS_PER_KEY: u64 = 10;
const PROBES: u64 = 7;
/// Keys the first part holds before a part twice as large is added.
pub(crate) const FIRST_PART_KEYS: u64 = 1 << 20;

struct Part {
    bits: Vec<AtomicU64>,
    /// Number of bits (a power of two), minus one.
    mask: u64,
    capacity: u64,
    count: AtomicU64,
}

impl Part {
    fn new(capacity: u64) -> Part {
        let nbits = (capacity * BITS_PER_KEY).next_power_of_two().max(64);
        Part {
            bits: (0..nbits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: nbits - 1,
            capacity,
            count: AtomicU64::new(0),
        }
    }

    fn probes(&self, h: (u64, u64)) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..PROBES).map(move |i| {
            let bit = h.0.wrapping_add(i.wrapping_mul(h.1)) & self.mask;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&self, h: (u64, u64)) {
        for (word, bit) in self.probes(h) {
            self.bits[word].fetch_or(bit, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn may_contain(&self, h: (u64, u64)) -> bool {
        self.probes(h)
            .all(|(word, bit)| self.bits[word].load(Ordering::Relaxed) & bit != 0)
    }
}

/// A Bloom filter that grows by adding parts; safe to share between threads.
pub(crate) struct Filter {
    /// Whether every key that was in sled at open has been inserted.
    complete: AtomicBool,
    parts: RwLock<Vec<Arc<Part>>>,
}

impl Filter {
    /// An empty filter sized for about `keys` keys, answering "maybe" until
    /// [`Filter::set_complete`].
    pub(crate) fn new(keys: u64) -> Filter {
        Filter {
            complete: AtomicBool::new(false),
            parts: RwLock::new(vec![Arc::new(Part::new(keys.max(FIRST_PART_KEYS)))]),
        }
    }

    pub(crate) fn set_complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    pub(crate) fn insert(&self, key: &[u8]) {
        let h = hash(key);
        let last = match self.parts.read() {
            Ok(parts) => parts.last().cloned(),
            Err(_) => None,
        };
        let Some(last) = last else { return };
        if last.count.load(Ordering::Relaxed) < last.capacity {
            last.insert(h);
            return;
        }
        // The last part is full: add one twice its size (the read lock is released).
        let Ok(mut parts) = self.parts.write() else {
            return;
        };
        let grown = match parts.last() {
            Some(p) if Arc::ptr_eq(p, &last) => {
                let p = Arc::new(Part::new(last.capacity * 2));
                parts.push(p.clone());
                p
            }
            Some(p) => p.clone(),
            None => return,
        };
        grown.insert(h);
    }

    /// `false` only when `key` was surely never inserted (and the filter is complete).
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        if !self.is_complete() {
            return true;
        }
        let h = hash(key);
        match self.parts.read() {
            Ok(parts) => parts.iter().any(|p| p.may_contain(h)),
            Err(_) => true,
        }
    }

    /// Bytes of bit arrays held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.parts
            .read()
            .map(|parts| parts.iter().map(|p| p.bits.len() as u64 * 8).sum())
            .unwrap_or(0)
    }
}

/// Two independent 64-bit hashes of `key` (FNV-1a, then mixed by splitmix64 steps).
fn hash(key: &[u8]) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let a = mix(h);
    let b = mix(a ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (a, b)
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_filter_answers_maybe() {
        let f = Filter::new(10);
        assert!(f.may_contain(b"never inserted"));
        f.set_complete();
        assert!(!f.may_contain(b"never inserted"));
    }

    #[test]
    fn no_inserted_key_is_ever_reported_absent_and_few_others_are_present() {
        let f = Filter::new(1_000);
        f.set_complete();
        let n = 3 * FIRST_PART_KEYS;
        for i in 0..n {
            f.insert(&i.to_le_bytes());
        }
        assert!((0..n).all(|i| f.may_contain(&i.to_le_bytes())));
        // Three parts (1M, 2M, then 4M keys): the false-positive rates add up.
        let tries = 200_000u64;
        let false_positives = (n..n + tries)
            .filter(|i| f.may_contain(&i.to_le_bytes()))
            .count() as u64;
        assert!(
            false_positives < tries / 20,
            "{false_positives} false positives in {tries}"
        );
        assert!(f.bytes() <= 7 * FIRST_PART_KEYS * 2);
    }
}

//! Posting lists: the ascending positions of the events that belong to a list (an
//! organization, an action in it, an actor in it…), stored a block at a time so an
//! event costs a fraction of a sled write, and read newest first for pages.
//!
//! # Layout (inside a projection's tree)
//! - `p` name `0x00` first position (u64 BE) → up to [`BLOCK`] positions (u64 LE each)
//! - `n` name → how many positions the list holds (u64 LE)

use crate::{ProjectionError, Tx};
use std::collections::HashMap;
use uuid::Uuid;

/// Positions per block (512-byte values). sled copies a leaf node on every write to
/// it, so large values make every write near them expensive: 4 KiB blocks made the
/// audit rebuild ~10x slower than the projections without lists.
pub const BLOCK: usize = 64;

/// Writes the list name `{tag}/{org}`, or `{tag}/{org}/{rest}`, into `k` (cleared
/// first). The one place the names' format lives: projections write lists and queries
/// read them through it, and a rebuild pushes several names per event, so it formats
/// without `fmt` or a new allocation.
pub fn name_into(k: &mut Vec<u8>, tag: u8, org: &Uuid, rest: Option<&[u8]>) {
    k.clear();
    k.push(tag);
    k.push(b'/');
    k.extend_from_slice(
        org.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    if let Some(rest) = rest {
        k.push(b'/');
        k.extend_from_slice(rest);
    }
}

/// [`name_into`] a fresh vector.
pub fn name(tag: u8, org: &Uuid, rest: Option<&[u8]>) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    name_into(&mut k, tag, org, rest);
    k
}

fn block_prefix(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 2);
    k.push(b'p');
    k.extend_from_slice(name);
    k.push(0);
    k
}

fn block_key(name: &[u8], first: u64) -> Vec<u8> {
    let mut k = block_prefix(name);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

fn count_key(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(b'n');
    k.extend_from_slice(name);
    k
}

fn decode(block: &[u8]) -> impl DoubleEndedIterator<Item = u64> + '_ {
    block
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
}

/// The committed end of a list, kept in memory between batches so a batch appends
/// without a reverse range scan or a count read.
#[derive(Clone)]
struct Head {
    /// Positions the list holds.
    count: u64,
    /// The first position of the last block (meaningful when `count % BLOCK != 0`).
    last_first: u64,
    /// The last block's value while it is not full (empty when it is full or absent).
    last: Vec<u8>,
}

/// Lists whose ends are remembered at most; past it the memory is dropped and lists are
/// read again from the tree (a cost per list, never a different result).
pub const HEADS_MAX: usize = 200_000;

/// Positions gathered during a batch, written once per list at commit.
///
/// The layout does not depend on how events were batched: blocks always hold positions
/// `BLOCK * i .. BLOCK * (i + 1)` of the list, so the same events give the same tree.
/// The ends of the lists are remembered between batches; a `Postings` must therefore
/// only write to one tree, through every committed batch of it (the runner makes a
/// fresh projection for a rebuild and stops on a failed commit).
#[derive(Default)]
pub struct Postings {
    // foldhash: a rebuild looks up several names per event; SipHash was a visible part
    // of the audit projection's profile. Still seeded at random per process.
    pending: HashMap<Vec<u8>, Vec<u64>, foldhash::fast::RandomState>,
    heads: HashMap<Vec<u8>, Head, foldhash::fast::RandomState>,
    scratch: Vec<u8>,
}

impl Postings {
    /// Adds `position` (greater than every position added before) to list `name`.
    pub fn push(&mut self, name: &[u8], position: u64) {
        match self.pending.get_mut(name) {
            Some(positions) => positions.push(position),
            None => {
                self.pending.insert(name.to_vec(), vec![position]);
            }
        }
    }

    /// [`push`](Self::push) to the list [`name_into`] names.
    pub fn push_named(&mut self, tag: u8, org: &Uuid, rest: Option<&[u8]>, position: u64) {
        let mut k = std::mem::take(&mut self.scratch);
        name_into(&mut k, tag, org, rest);
        self.push(&k, position);
        self.scratch = k;
    }

    fn head(tree: &sled::Tree, name: &[u8]) -> Result<Head, ProjectionError> {
        let count = count(tree, name)?;
        let mut head = Head {
            count,
            last_first: 0,
            last: Vec::new(),
        };
        if count % BLOCK as u64 != 0
            && let Some(last) = tree.scan_prefix(block_prefix(name)).next_back()
        {
            let (k, v) = last?;
            let prefix = name.len() + 2;
            head.last_first = u64::from_be_bytes(k[prefix..].try_into().unwrap_or([0; 8]));
            head.last = v.to_vec();
        }
        Ok(head)
    }

    /// Writes the gathered positions (call from `Projection::before_commit`).
    pub fn write(&mut self, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if self.heads.len() + self.pending.len() > HEADS_MAX {
            self.heads.clear();
        }
        for (name, positions) in self.pending.drain() {
            let head = match self.heads.get_mut(&name) {
                Some(h) => h,
                None => {
                    let h = Self::head(tx.committed(), &name)?;
                    self.heads.entry(name.clone()).or_insert(h)
                }
            };
            let mut rest = &positions[..];
            if !head.last.is_empty() {
                let room = BLOCK.saturating_sub(head.last.len() / 8).min(rest.len());
                for p in &rest[..room] {
                    head.last.extend_from_slice(&p.to_le_bytes());
                }
                rest = &rest[room..];
                tx.insert(block_key(&name, head.last_first), head.last.clone());
                if head.last.len() / 8 >= BLOCK {
                    head.last.clear();
                }
            }
            for chunk in rest.chunks(BLOCK) {
                let value: Vec<u8> = chunk.iter().flat_map(|p| p.to_le_bytes()).collect();
                tx.insert(block_key(&name, chunk[0]), value.clone());
                if chunk.len() < BLOCK {
                    head.last_first = chunk[0];
                    head.last = value;
                }
            }
            head.count += positions.len() as u64;
            tx.insert(count_key(&name), head.count.to_le_bytes().to_vec());
        }
        Ok(())
    }
}

/// How many positions list `name` holds.
pub fn count(tree: &sled::Tree, name: &[u8]) -> Result<u64, ProjectionError> {
    Ok(tree
        .get(count_key(name))?
        .map(|v| u64::from_le_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
        .unwrap_or(0))
}

/// How many positions list `name` holds below `before` (a time-travel bound): the
/// count, or a read of the blocks below `before` (a key per [`BLOCK`] positions).
pub fn count_below(tree: &sled::Tree, name: &[u8], before: u64) -> Result<u64, ProjectionError> {
    if before == u64::MAX {
        return count(tree, name);
    }
    let prefix = block_prefix(name);
    let mut end = prefix.clone();
    end.extend_from_slice(&before.to_be_bytes());
    let mut n = 0;
    for kv in tree.range(prefix..end) {
        let (_, v) = kv?;
        n += decode(&v).filter(|p| *p < before).count() as u64;
    }
    Ok(n)
}

/// The positions of list `name` below `before`, newest first, read a block at a time.
pub struct Descending {
    tree: sled::Tree,
    prefix: Vec<u8>,
    /// The next block to read has a first position below this.
    upper: u64,
    before: u64,
    buf: Vec<u64>,
    done: bool,
}

impl Descending {
    pub fn new(tree: &sled::Tree, name: &[u8], before: u64) -> Descending {
        Descending {
            tree: tree.clone(),
            prefix: block_prefix(name),
            upper: before,
            before,
            buf: Vec::new(),
            done: false,
        }
    }

    fn load(&mut self) -> Result<bool, ProjectionError> {
        let mut end = self.prefix.clone();
        end.extend_from_slice(&self.upper.to_be_bytes());
        let Some(kv) = self.tree.range(self.prefix.clone()..end).next_back() else {
            return Ok(false);
        };
        let (k, v) = kv?;
        let first = u64::from_be_bytes(k[self.prefix.len()..].try_into().unwrap_or([0; 8]));
        let before = self.before;
        self.buf = decode(&v).filter(|p| *p < before).collect();
        self.upper = first;
        Ok(true)
    }
}

impl Iterator for Descending {
    type Item = Result<u64, ProjectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if let Some(p) = self.buf.pop() {
                return Some(Ok(p));
            }
            match self.load() {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_format_stored_trees_were_built_with() {
        // Built trees hold these names: a change of format needs a version bump.
        let org = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        assert_eq!(name(b'o', &org, None), format!("o/{org}").into_bytes());
        assert_eq!(
            name(b'a', &org, Some(b"member.invited")),
            format!("a/{org}/member.invited").into_bytes()
        );
        let mut k = b"left over".to_vec();
        name_into(&mut k, b'u', &org, Some(b"x"));
        assert_eq!(k, format!("u/{org}/x").into_bytes());
    }

    #[test]
    fn lists_grow_across_batches_and_read_newest_first_from_any_point() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let mut all = Vec::new();
        let mut p = 0;
        for batch in 0..7 {
            let mut tx = Tx::new(&tree);
            let mut postings = Postings::default();
            for _ in 0..(300 + batch * 50) {
                p += 3;
                postings.push(b"x", p);
                all.push(p);
                if p % 2 == 0 {
                    postings.push(b"y", p);
                }
            }
            postings.write(&mut tx).expect("write");
            tree.apply_batch(tx.into_batch()).expect("commit");
        }
        assert_eq!(count(&tree, b"x").expect("count"), all.len() as u64);
        let got: Vec<u64> = Descending::new(&tree, b"x", u64::MAX)
            .map(|p| p.expect("p"))
            .collect();
        let mut want = all.clone();
        want.reverse();
        assert_eq!(got, want);
        let mid = all[1000];
        let got: Vec<u64> = Descending::new(&tree, b"x", mid)
            .take(5)
            .map(|p| p.expect("p"))
            .collect();
        assert_eq!(got, vec![all[999], all[998], all[997], all[996], all[995]]);
        assert!(Descending::new(&tree, b"zzz", u64::MAX).next().is_none());
        assert!(Descending::new(&tree, b"y", u64::MAX).all(|p| p.expect("p") % 2 == 0));
    }

    #[test]
    fn remembered_list_ends_write_the_tree_a_fresh_reader_would() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::open(dir.path()).expect("sled");
        let (kept, fresh) = (db.open_tree("a").expect("a"), db.open_tree("b").expect("b"));
        let mut long_lived = Postings::default();
        let mut p = 0;
        for batch in 0..40u64 {
            let (mut tx_a, mut tx_b) = (Tx::new(&kept), Tx::new(&fresh));
            let mut short_lived = Postings::default();
            for _ in 0..(batch * 7 % 150) {
                p += 1;
                for name in [b"x".as_slice(), if p % 3 == 0 { b"y" } else { b"z" }] {
                    long_lived.push(name, p);
                    short_lived.push(name, p);
                }
            }
            long_lived.write(&mut tx_a).expect("write");
            short_lived.write(&mut tx_b).expect("write");
            kept.apply_batch(tx_a.into_batch()).expect("commit");
            fresh.apply_batch(tx_b.into_batch()).expect("commit");
        }
        let dump = |t: &sled::Tree| -> Vec<(Vec<u8>, Vec<u8>)> {
            t.iter()
                .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("kv"))
                .collect()
        };
        assert_eq!(dump(&kept), dump(&fresh));
        assert_eq!(count(&kept, b"x").expect("count"), p);
    }
}

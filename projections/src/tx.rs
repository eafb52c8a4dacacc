//! The write side of one batch of a projection.

use crate::ProjectionError;
use std::collections::BTreeMap;

/// A view of a projection's tree plus the writes of the batch being applied: reads see
/// the batch's own writes first. The runner commits all of it, with the checkpoint, in
/// one atomic sled batch.
pub struct Tx<'a> {
    tree: &'a sled::Tree,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(tree: &'a sled::Tree) -> Tx<'a> {
        Tx {
            tree,
            pending: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), None);
    }

    /// Reads a JSON value.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, ProjectionError> {
        self.get(key)?
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| ProjectionError::Storage(format!("undecodable value: {e}")))
            })
            .transpose()
    }

    /// Writes a JSON value.
    pub fn put_json<T: serde::Serialize>(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: &T,
    ) -> Result<(), ProjectionError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| ProjectionError::Storage(e.to_string()))?;
        self.insert(key, bytes);
        Ok(())
    }

    /// The committed tree, without this batch's writes (for range scans).
    pub fn committed(&self) -> &sled::Tree {
        self.tree
    }

    pub(crate) fn writes(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn into_batch(self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        b
    }
}

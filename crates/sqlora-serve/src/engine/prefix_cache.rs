//! The prefix cache: the key/value cache of each (prefix, adapter)'s shared prompt prefix
//! (a database's system + schema prompt), stored compact and forked into a joining row.
//! It holds at most a configured number of bytes; the least recently used entries go first.

use std::collections::HashMap;

use crate::forward::RowKv;

/// What an entry is found by: the prefix's name and the adapter's ("" for the base model).
pub(super) type PrefixKey = (String, String);

struct PrefixEntry {
    tokens: Vec<u32>,
    kv: RowKv,
    last_used: u64,
}

/// Cached prefix key/value caches, bounded by bytes, least recently used evicted first.
pub(super) struct PrefixCache {
    entries: HashMap<PrefixKey, PrefixEntry>,
    bytes: usize,
    max_bytes: usize,
    clock: u64,
}

impl PrefixCache {
    /// An empty cache that holds at most `max_bytes` of keys and values.
    pub(super) fn new(max_bytes: usize) -> PrefixCache {
        PrefixCache {
            entries: HashMap::new(),
            bytes: 0,
            max_bytes,
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Bytes held now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The cache of `key` when it holds exactly `tokens` (and marks it used).
    pub(super) fn get(&mut self, key: &PrefixKey, tokens: &[u32]) -> Option<&RowKv> {
        let t = self.tick();
        let e = self.entries.get_mut(key).filter(|e| e.tokens == tokens)?;
        e.last_used = t;
        Some(&e.kv)
    }

    /// Stores `kv` (the cache of `tokens`) under `key`, replacing what was there and evicting
    /// least recently used entries until it fits. A cache larger than the whole budget is not
    /// stored.
    pub(super) fn insert(&mut self, key: PrefixKey, tokens: Vec<u32>, kv: RowKv) {
        let bytes = kv.bytes();
        if bytes > self.max_bytes {
            return;
        }
        let t = self.tick();
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.kv.bytes();
        }
        while self.bytes + bytes > self.max_bytes {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.bytes -= e.kv.bytes();
            }
        }
        self.bytes += bytes;
        self.entries.insert(
            key,
            PrefixEntry {
                tokens,
                kv,
                last_used: t,
            },
        );
    }

    /// Drops every entry computed with `adapter` (it was replaced, evicted or removed).
    pub(super) fn drop_adapter(&mut self, adapter: &str) {
        let stale: Vec<PrefixKey> = self
            .entries
            .keys()
            .filter(|(_, a)| a == adapter)
            .cloned()
            .collect();
        for k in stale {
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.kv.bytes();
            }
        }
    }
}

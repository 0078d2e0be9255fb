//! The adapters the engine knows: each is on disk (its folder) and maybe resident in the
//! [`AdapterSet`] the forward pass gathers from. At most `max_adapters` are resident; making
//! room evicts the least recently used one that no running row uses, and an evicted adapter
//! is reloaded from its folder when a request names it again.
//!
//! Evicting, replacing or removing an adapter makes the prefix caches computed with it stale:
//! every method that can do so appends the adapter's name to a `stale` list, which the caller
//! clears from the prefix cache (even when the method then fails).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use sqlora_model::llama::Model;
use sqlora_model::lora::{AdapterId, AdapterSet, LoraAdapter};

use super::{AdapterInfo, Shared};
use crate::error::{Result, ServeError};

/// An adapter the engine can use: on disk, maybe resident.
struct AdapterSlot {
    path: Option<PathBuf>,
    id: Option<AdapterId>,
    last_used: u64,
    info: AdapterInfo,
}

/// Known adapters, the resident ones among them, and least-recently-used eviction.
pub(super) struct Residency {
    set: AdapterSet,
    slots: HashMap<String, AdapterSlot>,
    max_adapters: usize,
    clock: u64,
    shared: Arc<Shared>,
}

impl Residency {
    /// No adapters yet; at most `max_adapters` (at least one) will be resident at once. The
    /// list of known adapters is published to `shared` on every change.
    pub(super) fn new(device: &Device, max_adapters: usize, shared: Arc<Shared>) -> Residency {
        Residency {
            set: AdapterSet::new(device),
            slots: HashMap::new(),
            max_adapters,
            clock: 0,
            shared,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn cap(&self) -> usize {
        self.max_adapters.max(1)
    }

    /// The resident adapters, for the forward pass.
    pub(super) fn set(&self) -> &AdapterSet {
        &self.set
    }

    /// Publishes the known adapters to the shared state and the resident count to metrics.
    fn publish(&self) {
        let snapshot: BTreeMap<String, AdapterInfo> = self
            .slots
            .iter()
            .map(|(k, s)| (k.clone(), s.info.clone()))
            .collect();
        *self
            .shared
            .adapters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.shared
            .metrics
            .set("sqlora_resident_adapters", &[], self.set.len() as f64);
    }

    /// Evicts least-recently-used resident adapters that `in_use` says no running row uses
    /// (and that can be reloaded from a folder) until there is room for one more.
    fn make_room(
        &mut self,
        in_use: &dyn Fn(AdapterId) -> bool,
        stale: &mut Vec<String>,
    ) -> Result<()> {
        while self.set.len() >= self.cap() {
            let victim = self
                .slots
                .iter()
                .filter(|(_, s)| s.id.is_some_and(|id| !in_use(id)) && s.path.is_some())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            let Some(name) = victim else {
                return Err(ServeError::Conflict(format!(
                    "all {} adapter slots are used by running requests; retry later",
                    self.max_adapters
                )));
            };
            self.evict(&name, stale)?;
            self.shared
                .metrics
                .inc("sqlora_adapter_evictions_total", &[]);
        }
        Ok(())
    }

    fn evict(&mut self, name: &str, stale: &mut Vec<String>) -> Result<()> {
        self.set.remove(name)?;
        if let Some(s) = self.slots.get_mut(name) {
            s.id = None;
            s.info.resident = false;
            s.info.resident_bytes = 0;
        }
        stale.push(name.to_string());
        Ok(())
    }

    /// Registers `adapter` under `name` (replacing one of that name unless running rows use
    /// it) and makes it resident when there is or can be made room; otherwise, when it has a
    /// folder, it stays on disk until first used.
    pub(super) fn add(
        &mut self,
        name: String,
        path: Option<PathBuf>,
        mut adapter: LoraAdapter,
        in_use: &dyn Fn(AdapterId) -> bool,
        stale: &mut Vec<String>,
    ) -> Result<AdapterInfo> {
        adapter.name = name.clone();
        let summary = adapter.summary();
        let replacing = self.set.id(&name);
        if let Some(id) = replacing {
            if in_use(id) {
                return Err(ServeError::Conflict(format!(
                    "adapter '{name}' is in use by running requests; retry later"
                )));
            }
        } else if let Err(e) = self.make_room(in_use, stale) {
            // Every slot is busy: register it on disk; it is loaded on first use.
            if path.is_none() {
                return Err(e);
            }
        }
        let id = if replacing.is_some() || self.set.len() < self.cap() {
            Some(self.set.insert(adapter)?)
        } else {
            None
        };
        stale.push(name.clone());
        let info = AdapterInfo {
            name: name.clone(),
            path: path.as_ref().map(|p| p.display().to_string()),
            rank: summary.rank,
            alpha: summary.alpha,
            targets: summary.targets.clone(),
            parameters: summary.parameters,
            resident_bytes: if id.is_some() {
                summary.tensor_bytes
            } else {
                0
            },
            resident: id.is_some(),
        };
        let t = self.tick();
        self.slots.insert(
            name,
            AdapterSlot {
                path,
                id,
                last_used: t,
                info: info.clone(),
            },
        );
        self.publish();
        Ok(info)
    }

    /// Unloads and forgets the adapter `name` (refused while running rows use it).
    pub(super) fn remove(
        &mut self,
        name: &str,
        in_use: &dyn Fn(AdapterId) -> bool,
        stale: &mut Vec<String>,
    ) -> Result<()> {
        let Some(slot) = self.slots.get(name) else {
            return Err(unknown(name));
        };
        if slot.id.is_some_and(in_use) {
            return Err(ServeError::Conflict(format!(
                "adapter '{name}' is in use by running requests; retry later"
            )));
        }
        if slot.id.is_some() {
            self.set.remove(name)?;
        }
        self.slots.remove(name);
        stale.push(name.to_string());
        self.publish();
        Ok(())
    }

    /// The slot of adapter `name` in the resident set, reloading it from its folder (and
    /// checking it against `model` again) when it was evicted.
    pub(super) fn resident(
        &mut self,
        name: &str,
        model: &Model,
        in_use: &dyn Fn(AdapterId) -> bool,
        stale: &mut Vec<String>,
    ) -> Result<AdapterId> {
        let t = self.tick();
        let Some(slot) = self.slots.get_mut(name) else {
            return Err(unknown(name));
        };
        slot.last_used = t;
        if let Some(id) = slot.id {
            return Ok(id);
        }
        let path = slot.path.clone().ok_or_else(|| {
            ServeError::Internal(format!("adapter '{name}' was evicted and has no folder"))
        })?;
        let adapter = sqlora_model::peft::load_adapter(&path, model)
            .map_err(|e| ServeError::adapter_refused(format!("reloading '{name}'"), e))?;
        self.add(name.to_string(), Some(path), adapter, in_use, stale)?;
        self.slots
            .get(name)
            .and_then(|s| s.id)
            .ok_or_else(|| ServeError::Internal(format!("adapter '{name}' did not load")))
    }
}

fn unknown(name: &str) -> ServeError {
    ServeError::not_found("unknown_adapter", format!("no adapter named '{name}'"))
}

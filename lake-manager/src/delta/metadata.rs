//! A table's metadata (schema, partition columns, configuration) per Delta version, cached so
//! that a catalog lookup does not reopen the Delta log on every call.
//!
//! An entry is served as is for `staleness` after it was last checked. Past that, the next
//! lookup asks the log for commits after the cached version (one listing; no snapshot is
//! rebuilt when there is none) and reloads only when the version moved. Only the metadata
//! and a handle on the log are kept, never a snapshot's file list. The plane drops an
//! entry itself when it changes a table's schema ([`MetadataCache::forget`]); a change made
//! by an outside writer or another replica therefore shows within `staleness`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use deltalake::logstore::LogStoreRef;
use tenancy::datatype::Field;

use super::tables::{self, version_i64};
use super::{DeltaError, DeltaSettings, schema};

/// What a catalog shows of a table at one Delta version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMetadata {
    /// The version read.
    pub version: i64,
    /// The schema's fields, nested types included.
    pub fields: Vec<Field>,
    /// Partition columns, in order.
    pub partition_by: Vec<String>,
    /// The table's configuration (`delta.*` properties and any other writer's).
    pub configuration: BTreeMap<String, String>,
}

struct Entry {
    /// The table's log, for the cheap "anything newer?" check. The snapshot itself is not
    /// kept: a table's file list can be large, and the catalog shows none of it.
    log: LogStoreRef,
    metadata: Arc<TableMetadata>,
    checked: Instant,
}

/// Cached [`TableMetadata`] by key (a table's id and root).
pub struct MetadataCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every [`MetadataCache::forget`]: a lookup that began before a forget must
    /// not put back what it read, which may predate the change.
    generation: std::sync::atomic::AtomicU64,
    staleness: Duration,
    max_entries: usize,
    /// Lookups answered from the cache without touching storage, and lookups that reloaded a
    /// snapshot (for metrics and tests).
    hits: std::sync::atomic::AtomicU64,
    loads: std::sync::atomic::AtomicU64,
}

impl MetadataCache {
    /// A cache serving entries up to `staleness` old, holding at most `max_entries` tables.
    pub fn new(staleness: Duration, max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
            staleness,
            max_entries: max_entries.max(1),
            hits: Default::default(),
            loads: Default::default(),
        }
    }

    /// The metadata of the table at `root`, at most `staleness` behind its log. `key` names
    /// the table for the cache: its id and root, so a new table of the same name, or a table
    /// whose tenant moved, is never answered from another's entry.
    pub async fn get(
        &self,
        settings: &DeltaSettings,
        key: &str,
        root: &str,
    ) -> Result<Arc<TableMetadata>, DeltaError> {
        use std::sync::atomic::Ordering::{Relaxed, SeqCst};
        let generation = self.generation.load(SeqCst);
        let cached = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.get(key).map(|e| {
                (
                    e.log.clone(),
                    e.metadata.clone(),
                    e.checked.elapsed() < self.staleness,
                )
            })
        };
        let (log, metadata) = match cached {
            Some((_, metadata, true)) => {
                self.hits.fetch_add(1, Relaxed);
                return Ok(metadata);
            }
            Some((log, metadata, false)) => {
                // One listing of the log after the cached version.
                let from = u64::try_from(metadata.version).unwrap_or(0);
                let latest = log
                    .get_latest_version(from)
                    .await
                    .map_err(|e| DeltaError::delta("check for commits", root, e))?;
                if version_i64(latest) == metadata.version {
                    (log, metadata)
                } else {
                    self.load(settings, root).await?
                }
            }
            None => self.load(settings, root).await?,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let newer_cached = entries
            .get(key)
            .is_some_and(|e| e.metadata.version > metadata.version);
        if self.generation.load(SeqCst) != generation || newer_cached {
            // A change was forgotten meanwhile, or a concurrent lookup stored a later
            // version: answer with what was read, but keep the cache as it is.
            return Ok(metadata);
        }
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            // The entry checked longest ago goes: the tables asked for least lately.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.checked)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key.to_owned(),
            Entry {
                log,
                metadata: metadata.clone(),
                checked: Instant::now(),
            },
        );
        Ok(metadata)
    }

    /// Reads the table's current metadata from its log.
    async fn load(
        &self,
        settings: &DeltaSettings,
        root: &str,
    ) -> Result<(LogStoreRef, Arc<TableMetadata>), DeltaError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = tables::open(settings, root).await?;
        Ok((table.log_store(), Arc::new(read(&table, root)?)))
    }

    /// Drops the entry under `key`: the plane changed the table's schema.
    pub fn forget(&self, key: &str) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// (lookups answered from memory, snapshots read) since start.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.loads.load(Relaxed))
    }
}

fn read(table: &DeltaTable, root: &str) -> Result<TableMetadata, DeltaError> {
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read snapshot", root, e))?;
    let metadata = state.metadata();
    Ok(TableMetadata {
        version: version_i64(state.version()),
        fields: schema::columns(&state.schema())?,
        partition_by: metadata.partition_columns().to_vec(),
        configuration: metadata
            .configuration()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

//! A bounded in-memory map whose entries lapse at a time given when they are inserted: the
//! short-lived caches of the request path (verified tokens, tenant rows, table lookups).
//!
//! Bounded without tracking recency: when full, lapsed entries are dropped, and if it is still
//! full it starts over. More distinct live keys than the capacity then cost what no cache
//! costs (a miss each), never memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};
use std::time::Instant;

/// Entries with their deadlines, and how many removals there were.
type Entries<K, V> = (HashMap<K, (V, Instant)>, u64);

/// Values by key, each until its own deadline, at most `capacity` of them.
pub struct ExpiringMap<K, V> {
    /// See [`ExpiringMap::insert_since`] for the removal count.
    entries: RwLock<Entries<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> ExpiringMap<K, V> {
    /// An empty map of at most `capacity` entries (0 keeps nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new((HashMap::new(), 0)),
            capacity,
        }
    }

    /// The value under `key`, unless it lapsed by `now`.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .0
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(value, _)| value.clone())
    }

    /// Keeps `value` under `key` until `until`; `now` is the clock `until` is on.
    pub fn insert(&self, key: K, value: V, until: Instant, now: Instant) {
        self.insert_since(None, key, value, until, now);
    }

    /// A count that [`ExpiringMap::remove`] advances: read it before loading a value, and
    /// insert with [`ExpiringMap::insert_since`], so a value read before a change is not kept
    /// after the change removed its entry.
    pub fn generation(&self) -> u64 {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).1
    }

    /// [`ExpiringMap::insert`], unless `generation` is given and an entry was removed since.
    pub fn insert_since(&self, generation: Option<u64>, key: K, value: V, until: Instant, now: Instant) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let (entries, removals) = &mut *guard;
        if generation.is_some_and(|g| g != *removals) {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, until));
    }

    /// Drops the entry under `key`: what it held changed.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        guard.0.remove(key);
        guard.1 += 1;
    }

    /// Entries held, lapsed or not.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_entry_lives_until_its_deadline_and_can_be_removed() {
        let map = ExpiringMap::new(4);
        let now = Instant::now();
        let at = |secs| now + Duration::from_secs(secs);
        map.insert("a", 1, at(10), now);
        map.insert("b", 2, at(10), now);
        map.insert("lapsed", 3, now, now);
        assert_eq!(map.get("a", at(9)), Some(1));
        assert_eq!(map.get("a", at(10)), None);
        assert_eq!(map.get("lapsed", now), None, "an entry already due is not kept");
        map.remove("b");
        assert_eq!(map.get("b", now), None);
        // A value read before a removal is not kept after it.
        let before = map.generation();
        map.remove("c");
        map.insert_since(Some(before), "c", 9, at(10), now);
        assert_eq!(map.get("c", now), None);
        map.insert_since(Some(map.generation()), "c", 9, at(10), now);
        assert_eq!(map.get("c", now), Some(9));
        let off = ExpiringMap::new(0);
        off.insert("a", 1, at(10), now);
        assert_eq!(off.get("a", now), None);
    }

    proptest! {
        /// Whatever is inserted, the map never exceeds its capacity, and the entry just
        /// inserted is always there.
        #[test]
        fn stays_bounded_and_keeps_the_newest(capacity in 1usize..8, keys in prop::collection::vec((0u8..32, 0u64..20), 1..200)) {
            let map = ExpiringMap::new(capacity);
            let now = Instant::now();
            for (step, (key, life)) in keys.into_iter().enumerate() {
                let at = now + Duration::from_secs(step as u64);
                map.insert(key, step, at + Duration::from_secs(life + 1), at);
                prop_assert!(map.len() <= capacity);
                prop_assert_eq!(map.get(&key, at), Some(step));
            }
        }
    }
}

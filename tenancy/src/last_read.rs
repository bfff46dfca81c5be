//! What the maintenance scheduler read of each table's Delta snapshot on an earlier pass, so
//! that a pass reads a snapshot again only when the table's log moved.
//!
//! A snapshot read replays the table's log into its file list: at tens of thousands of tables
//! that is the whole cost of a pass, while most tables have not changed since the last one.
//! Delta versions are immutable (a commit is a new log file, put if absent), so a table still
//! at the version read, under the same root, has the same files: the statistics read then
//! still hold. The scheduler learns the latest version cheaply (one listing of the log after
//! the remembered version) and asks [`LastReads::fresh`]. Time-based rules (vacuum,
//! retention) are not stored here: they are evaluated on every pass from the clock and the
//! last successful runs. Pure: the scheduler does the I/O.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

/// What the due rules need from a table's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotStats {
    /// The Delta version read.
    pub version: i64,
    /// Live data files.
    pub num_files: u64,
    /// Live data files below the small-file size.
    pub small_files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Where the table was read: a tenant that moved has its tables at a new root, with
    /// another log, whatever its version says.
    root: String,
    stats: SnapshotStats,
}

/// The last snapshot statistics read per table id.
#[derive(Debug, Clone, Default)]
pub struct LastReads {
    tables: HashMap<Uuid, Entry>,
}

impl LastReads {
    /// Nothing read yet: the first pass reads every table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The version read of `table` at `root`, from which to list the log for newer commits;
    /// `None` when the table must be read in full (never read, or read at another root).
    pub fn known_version(&self, table: Uuid, root: &str) -> Option<i64> {
        self.tables
            .get(&table)
            .filter(|e| e.root == root)
            .map(|e| e.stats.version)
    }

    /// The statistics read of `table` at `root` if its log's latest version is still the one
    /// read; `None` when a snapshot read is needed. A latest version below the one read (the
    /// log was replaced) needs a read as much as a newer one.
    pub fn fresh(&self, table: Uuid, root: &str, latest: i64) -> Option<SnapshotStats> {
        self.tables
            .get(&table)
            .filter(|e| e.root == root && e.stats.version == latest)
            .map(|e| e.stats)
    }

    /// Records what a snapshot read of `table` at `root` found.
    pub fn remember(&mut self, table: Uuid, root: &str, stats: SnapshotStats) {
        match self.tables.get_mut(&table) {
            // The root's text is kept when it is the same: no allocation per table per pass.
            Some(entry) if entry.root == root => entry.stats = stats,
            _ => {
                self.tables.insert(
                    table,
                    Entry {
                        root: root.to_owned(),
                        stats,
                    },
                );
            }
        }
    }

    /// Drops what was read of `table` (its read failed: the next pass reads it in full).
    pub fn forget(&mut self, table: Uuid) {
        self.tables.remove(&table);
    }

    /// Keeps only the tables in `live` (the active tables of this pass), so deleted tables do
    /// not accumulate.
    pub fn retain(&mut self, live: &HashSet<Uuid>) {
        self.tables.retain(|id, _| live.contains(id));
    }

    /// How many tables are remembered.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stats(version: i64, files: u64) -> SnapshotStats {
        SnapshotStats {
            version,
            num_files: files,
            small_files: files / 2,
        }
    }

    #[test]
    fn a_table_is_read_again_only_when_its_version_or_root_moved() {
        let table = Uuid::from_u128(1);
        let mut last = LastReads::new();
        assert_eq!(
            last.known_version(table, "s3://a/t/"),
            None,
            "never read: read it"
        );
        assert_eq!(last.fresh(table, "s3://a/t/", 0), None);

        last.remember(table, "s3://a/t/", stats(7, 20));
        assert_eq!(last.known_version(table, "s3://a/t/"), Some(7));
        assert_eq!(last.fresh(table, "s3://a/t/", 7), Some(stats(7, 20)), "unchanged");
        assert_eq!(last.fresh(table, "s3://a/t/", 8), None, "a new commit");
        assert_eq!(last.fresh(table, "s3://a/t/", 6), None, "a replaced log");
        assert_eq!(
            last.known_version(table, "s3://b/t/"),
            None,
            "the tenant moved: another log"
        );
        assert_eq!(last.fresh(table, "s3://b/t/", 7), None);
        assert_eq!(
            last.fresh(Uuid::from_u128(2), "s3://a/t/", 7),
            None,
            "another table"
        );

        last.remember(table, "s3://a/t/", stats(8, 3));
        assert_eq!(last.fresh(table, "s3://a/t/", 8), Some(stats(8, 3)));
        last.forget(table);
        assert_eq!(
            last.known_version(table, "s3://a/t/"),
            None,
            "a failed read forgets"
        );
    }

    #[test]
    fn deleted_tables_are_dropped() {
        let mut last = LastReads::new();
        for n in 0..4 {
            last.remember(Uuid::from_u128(n), "r", stats(1, 1));
        }
        last.retain(&[Uuid::from_u128(1), Uuid::from_u128(3)].into_iter().collect());
        assert_eq!(last.len(), 2);
        assert!(last.known_version(Uuid::from_u128(0), "r").is_none());
        assert_eq!(last.known_version(Uuid::from_u128(3), "r"), Some(1));
        last.retain(&HashSet::new());
        assert!(last.is_empty());
    }

    /// Storage as the scheduler sees it: per table, its root and the statistics of each
    /// version (a function of the version, as an immutable log makes them).
    fn truth(version: i64, table: u8) -> SnapshotStats {
        stats(
            version,
            u64::try_from(version).unwrap_or(0) * 3 + u64::from(table),
        )
    }

    proptest::proptest! {
        /// Over any sequence of passes in which tables commit, move root, fail to read, or
        /// are deleted, the statistics a pass uses are always those a full read would give,
        /// and a pass reads a snapshot exactly for the tables that are new, moved, failed
        /// last time, or have a version other than the one read.
        #[test]
        fn passes_use_what_a_full_read_gives_and_read_only_what_moved(
            passes in proptest::collection::vec(
                proptest::collection::vec((0u8..6, 0u8..5), 0..12),
                1..8,
            ),
        ) {
            // table -> (root, version, present)
            let mut storage: BTreeMap<u8, (u8, i64, bool)> = (0..6).map(|t| (t, (0, 0, true))).collect();
            let mut last = LastReads::new();
            // What the model expects to be remembered: table -> (root, version).
            let mut read_at: BTreeMap<u8, (u8, i64)> = BTreeMap::new();
            for events in passes {
                let mut failing = HashSet::new();
                for (table, event) in events {
                    let (root, version, present) = storage.get_mut(&table).expect("table");
                    match event {
                        0 | 1 => *version += 1,
                        2 => *root += 1,
                        3 => { failing.insert(table); }
                        _ => *present = !*present,
                    }
                }
                let live: HashSet<Uuid> = storage
                    .iter()
                    .filter(|(_, (_, _, present))| *present)
                    .map(|(t, _)| Uuid::from_u128(u128::from(*t)))
                    .collect();
                last.retain(&live);
                read_at.retain(|t, _| live.contains(&Uuid::from_u128(u128::from(*t))));
                for (table, (root, version, present)) in &storage {
                    if !present {
                        continue;
                    }
                    let id = Uuid::from_u128(u128::from(*table));
                    let root_text = format!("root-{root}");
                    let expect_read = read_at.get(table) != Some(&(*root, *version));
                    let cached = last
                        .known_version(id, &root_text)
                        .and_then(|_| last.fresh(id, &root_text, *version));
                    proptest::prop_assert_eq!(cached.is_none(), expect_read, "table {}", table);
                    let used = match cached {
                        Some(s) => s,
                        None if failing.contains(table) => {
                            last.forget(id);
                            read_at.remove(table);
                            continue;
                        }
                        None => {
                            let s = truth(*version, *table);
                            last.remember(id, &root_text, s);
                            read_at.insert(*table, (*root, *version));
                            s
                        }
                    };
                    proptest::prop_assert_eq!(used, truth(*version, *table));
                }
                proptest::prop_assert_eq!(last.len(), read_at.len());
            }
        }
    }
}

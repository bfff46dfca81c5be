//! What one Delta commit wrote, for the 30-day volumes that drive placement. Volume is the
//! bytes of data files a commit adds as new data: by the plane's ingestion (its commits carry
//! [`WRITER_KEY`] = `ingest`) or by an outside writer (an engine with vended credentials).
//! Rewrites are counted apart: the plane's maintenance commits (tagged `maintenance`) and any
//! `add` that the Delta protocol marks `dataChange: false` (compaction moves rows, it adds
//! none). Reading the log rather than counting at commit time makes the count exactly-once:
//! a commit is counted when the collector reads it, and the collector's watermark moves in the
//! same transaction as the counts.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use tenancy::volume::Written;

/// The commitInfo key under which the plane names which of its writers made a commit.
pub const WRITER_KEY: &str = "lakeplane.writer";
/// [`WRITER_KEY`] of ingestion commits (HTTP pushes and Kafka workers).
pub const INGEST: &str = "ingest";
/// [`WRITER_KEY`] of maintenance commits (compaction, z-order, retention, vacuum).
pub const MAINTENANCE: &str = "maintenance";

/// One commit's bytes and the UTC day it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitVolume {
    /// The day of the commit's timestamp (the commitInfo's, else `fallback`).
    pub day: NaiveDate,
    /// What it wrote.
    pub written: Written,
}

/// Reads one commit file (newline-delimited JSON actions). `fallback` dates a commit without
/// a commitInfo timestamp (the object's modification time, say). Lines that are not JSON
/// objects are skipped: a commit file is the table writer's, and a damaged line must not stop
/// the count of every other table.
pub fn read_commit(text: &str, fallback: DateTime<Utc>) -> CommitVolume {
    let mut writer = None;
    let mut timestamp = None;
    let mut adds: Vec<(u64, bool)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(action) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(info) = action.get("commitInfo") {
            timestamp = info.get("timestamp").and_then(Value::as_i64);
            writer = info.get(WRITER_KEY).and_then(Value::as_str).map(str::to_owned);
        } else if let Some(add) = action.get("add") {
            let size = add.get("size").and_then(Value::as_u64).unwrap_or(0);
            let data_change = add.get("dataChange").and_then(Value::as_bool).unwrap_or(true);
            adds.push((size, data_change));
        }
    }
    let mut written = Written::default();
    for (size, data_change) in adds {
        let slot = match writer.as_deref() {
            _ if !data_change => &mut written.rewritten,
            Some(MAINTENANCE) => &mut written.rewritten,
            Some(INGEST) => &mut written.ingest,
            _ => &mut written.outside,
        };
        *slot = slot.saturating_add(size);
    }
    let day = timestamp
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(fallback)
        .date_naive();
    CommitVolume { day, written }
}

/// Most commits of one table counted per pass, so one table with a long new history does not
/// hold the pass; the next pass continues from the watermark.
pub const COMMITS_PER_PASS: u64 = 2_000;

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Tables whose new commits were counted.
    pub tables: usize,
    /// Commits counted.
    pub commits: u64,
    /// Bytes counted, by writer.
    pub written: Written,
}

/// Counts the commits every table of a ready tenant made since its watermark, then refreshes
/// every tenant's 30-day volume. A table that cannot be read is skipped (and logged): its
/// commits are counted by a later pass. A commit file already removed by log cleanup is
/// skipped: its bytes can no longer be known.
pub async fn collect(
    catalog: &crate::catalog::Catalog,
    today: NaiveDate,
) -> Result<Collected, tenancy::store::StoreError> {
    use tenancy::store::TableStatus;
    use tenancy::tenant::TenantStatus;
    let store = catalog.store();
    let mut collected = Collected::default();
    // Each tenant is read once per pass, however many tables it has.
    let mut tenants = std::collections::HashMap::new();
    for record in store.all_active_tables().await? {
        if record.status != TableStatus::Active {
            continue;
        }
        if !tenants.contains_key(&record.tenant) {
            let found = store.get_tenant(&record.tenant).await?;
            tenants.insert(record.tenant.clone(), found);
        }
        // A migrating tenant's tables move: they are counted at their new place once ready.
        let Some(tenant) = tenants
            .get(&record.tenant)
            .and_then(Option::as_ref)
            .filter(|t| t.status == TenantStatus::Ready)
        else {
            continue;
        };
        let from = store.volume_watermark(record.id).await?;
        let root = catalog.table_root(tenant, record.spec.zone, record.spec.name.as_str());
        let counted = match count_table(catalog.delta(), &root, from).await {
            Ok(Some(counted)) => counted,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(table = %root, error = %tenancy::error_chain(&e), "cannot count the table's commits; a later pass does");
                continue;
            }
        };
        let (to, commits, days) = counted;
        if store.add_volume(&tenant.id, record.id, from, to, &days).await? {
            collected.tables += 1;
            collected.commits += commits;
            for (_, written) in &days {
                collected.written.add(*written);
            }
        }
    }
    store.refresh_volumes(today).await?;
    Ok(collected)
}

/// The commits of one table after `from`: the last version read, how many were read and their
/// bytes by day; `None` when there is nothing new.
async fn count_table(
    settings: &crate::delta::DeltaSettings,
    root: &str,
    from: Option<i64>,
) -> Result<Option<(i64, u64, Vec<(NaiveDate, Written)>)>, crate::delta::DeltaError> {
    use crate::delta::tables;
    let log = tables::log_store(settings, root)?;
    // One listing of the log after the watermark tells the latest version; the snapshot is
    // loaded only for a table never counted, or whose watermark's commit left the log.
    let listed = match from {
        Some(v) => tables::latest_version(&log, root, v).await.ok(),
        None => None,
    };
    let latest = match listed {
        Some(latest) => u64::try_from(latest).unwrap_or(0),
        None => match tables::open(settings, root).await?.version() {
            Some(latest) => latest,
            None => return Ok(None),
        },
    };
    // Watermarks are stored signed; a negative one never is.
    let first = from.map_or(0, |v| u64::try_from(v).map_or(0, |v| v + 1));
    if first > latest {
        return Ok(None);
    }
    let last = latest.min(first + COMMITS_PER_PASS - 1);
    let now = Utc::now();
    let mut counts = Vec::new();
    let mut commits = 0;
    for version in first..=last {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let Some(text) = tables::read_commit_text(&log, root, version).await? else {
            continue; // removed by log cleanup
        };
        let commit = read_commit(&text, now);
        counts.push((commit.day, commit.written));
        commits += 1;
    }
    let last = i64::try_from(last).unwrap_or(i64::MAX);
    Ok(Some((last, commits, tenancy::volume::by_day(counts))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{day}T12:00:00Z"))
            .expect("time")
            .with_timezone(&Utc)
    }

    fn date(day: &str) -> NaiveDate {
        at(day).date_naive()
    }

    fn commit(writer: Option<&str>, timestamp: i64, adds: &[(u64, bool)]) -> String {
        let mut info = serde_json::json!({"timestamp": timestamp, "operation": "WRITE"});
        if let Some(writer) = writer {
            info[WRITER_KEY] = Value::String(writer.to_owned());
        }
        let mut lines = vec![serde_json::json!({"commitInfo": info}).to_string()];
        for (i, (size, data_change)) in adds.iter().enumerate() {
            lines.push(
                serde_json::json!({"add": {"path": format!("part-{i}.parquet"), "size": size,
                    "dataChange": data_change, "partitionValues": {}, "modificationTime": 0}})
                .to_string(),
            );
        }
        lines.push(serde_json::json!({"remove": {"path": "old.parquet", "size": 999}}).to_string());
        lines.join("\n")
    }

    #[test]
    fn commits_count_by_their_writer_and_rewrites_apart() {
        let noon = at("2026-11-30").timestamp_millis();
        let ingest = read_commit(
            &commit(Some(INGEST), noon, &[(100, true), (50, true)]),
            at("2026-01-01"),
        );
        assert_eq!(
            ingest.written,
            Written {
                ingest: 150,
                outside: 0,
                rewritten: 0
            }
        );
        assert_eq!(
            ingest.day,
            date("2026-11-30"),
            "dated by the commit, not the fallback"
        );
        let outside = read_commit(&commit(None, noon, &[(70, true)]), at("2026-01-01"));
        assert_eq!(
            outside.written,
            Written {
                ingest: 0,
                outside: 70,
                rewritten: 0
            }
        );
        let compaction = read_commit(&commit(None, noon, &[(300, false)]), at("2026-01-01"));
        assert_eq!(
            compaction.written,
            Written {
                ingest: 0,
                outside: 0,
                rewritten: 300
            },
            "dataChange false is a rewrite, whoever wrote it"
        );
        let retention = read_commit(&commit(Some(MAINTENANCE), noon, &[(40, true)]), at("2026-01-01"));
        assert_eq!(
            retention.written,
            Written {
                ingest: 0,
                outside: 0,
                rewritten: 40
            }
        );
        assert_eq!(retention.written.volume(), 0);
        // Removes are not volume, and neither are damaged lines.
        let damaged = format!("{}\nnot json\n", commit(Some(INGEST), noon, &[(5, true)]));
        assert_eq!(read_commit(&damaged, at("2026-01-01")).written.ingest, 5);
        let undated = read_commit(r#"{"add": {"path": "a", "size": 9}}"#, at("2026-02-03"));
        assert_eq!(undated.day, date("2026-02-03"));
        assert_eq!(
            undated.written.outside, 9,
            "an add without dataChange is new data"
        );
    }
}

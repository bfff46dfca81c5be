//! A stream's ingest rate, read from its table's Delta log: the rows its commits of the last
//! [`WINDOW`] hold, per second. Ingestion commits name each stream's rows under
//! [`STREAM_ROWS_KEY`] (one HTTP group commit may hold several streams' pushes to one table),
//! so the rate counts what was committed, whichever replica or worker committed it, and
//! nothing that was refused or is still buffered.
//!
//! The log is read newest first and only as far back as the window. What was read is kept per
//! table, so a later reading lists the log once and reads only the commits made since. A burst
//! of more than [`MOST_COMMITS_READ`] commits since the last reading is read only in part: the
//! rate is then over the span those commits cover, and says so in its `window`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::logstore::LogStoreRef;
use futures_util::StreamExt;
use serde_json::Value;
use uuid::Uuid;

use crate::delta::{DeltaError, DeltaSettings, tables};

/// The commitInfo key holding `{stream id: rows}` for an ingestion commit.
pub const STREAM_ROWS_KEY: &str = "lakeplane.stream_rows";
/// How far back a rate looks.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most commit files one reading fetches.
pub const MOST_COMMITS_READ: u64 = 512;
/// Commit files fetched at once.
const CONCURRENT_READS: usize = 16;
/// A table not asked about for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// One commit, as far as rates go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRows {
    /// The commitInfo timestamp, milliseconds since the epoch.
    pub at_ms: Option<i64>,
    /// Rows per stream.
    pub streams: Vec<(Uuid, u64)>,
}

/// Reads one commit file. Lines that are not JSON, and stream ids that are not UUIDs, are
/// skipped: a commit file is the writer's, and one damaged entry must not hide the rest.
pub fn read_commit(text: &str) -> CommitRows {
    let mut found = CommitRows {
        at_ms: None,
        streams: Vec::new(),
    };
    for line in text.lines().filter(|l| l.contains("\"commitInfo\"")) {
        let Ok(action) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(info) = action.get("commitInfo") else {
            continue;
        };
        found.at_ms = info.get("timestamp").and_then(Value::as_i64);
        if let Some(Value::Object(rows)) = info.get(STREAM_ROWS_KEY) {
            found.streams = rows
                .iter()
                .filter_map(|(id, n)| Some((Uuid::parse_str(id).ok()?, n.as_u64()?)))
                .collect();
        }
    }
    found
}

/// A stream's rate over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Rows committed in the window.
    pub rows: u64,
    /// The window the rows were counted over: [`WINDOW`], or less when a burst was read only in
    /// part.
    pub window: Duration,
}

impl Rate {
    /// Rows per second.
    pub fn per_second(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 { self.rows as f64 / secs } else { 0.0 }
    }
}

/// What is known of one table's recent commits.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The newest version read.
    top: Option<i64>,
    /// Commits of the window, by version.
    commits: BTreeMap<i64, CommitRows>,
    /// Every commit at or after this time is in `commits` (none before the first reading).
    complete_since_ms: Option<i64>,
    /// When last asked about.
    used_ms: i64,
}

/// Where a reading of the log, newest first, stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// At a commit older than the window, at version 0, or at a commit cleaned up: nothing of
    /// the window is missing.
    Back,
    /// At the version after the one read last time: complete as far as that reading was.
    Known,
    /// At the read limit: the commits before the oldest one read are unknown.
    Cut,
}

impl Known {
    /// Adds what a reading found (`read` newest first) and how far back it went.
    fn add(&mut self, latest: i64, read: Vec<(i64, CommitRows)>, reach: Reach, now_ms: i64) {
        let start = now_ms - window_ms();
        let since = match reach {
            Reach::Back => start,
            Reach::Known => self.complete_since_ms.unwrap_or(now_ms),
            Reach::Cut => {
                self.commits.clear();
                read.last().and_then(|(_, c)| c.at_ms).unwrap_or(now_ms)
            }
        };
        self.complete_since_ms = Some(since.clamp(start, now_ms.max(start)));
        self.commits.extend(read);
        self.commits.retain(|_, c| c.at_ms.is_some_and(|at| at >= start));
        self.top = Some(latest);
        self.used_ms = now_ms;
    }

    /// Every stream's rows from what is known, over the span known to be complete: the
    /// window, or less after a reading cut short.
    fn rates(&self, now_ms: i64) -> TableRates {
        let since = self.complete_since_ms.unwrap_or(now_ms).max(now_ms - window_ms());
        let mut rows = HashMap::<Uuid, u64>::new();
        for commit in self.commits.values() {
            if commit.at_ms.is_some_and(|at| at >= since && at <= now_ms) {
                for (stream, n) in &commit.streams {
                    *rows.entry(*stream).or_default() += n;
                }
            }
        }
        TableRates {
            rows,
            window: Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0)),
        }
    }
}

fn window_ms() -> i64 {
    i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX)
}

/// The rates of tables' streams, with what was read of each table's log kept for next time.
#[derive(Debug, Default)]
pub struct IngestRates {
    known: Mutex<HashMap<Uuid, Known>>,
}

/// One table's streams' rows, and the window they cover.
#[derive(Debug, Clone)]
pub struct TableRates {
    rows: HashMap<Uuid, u64>,
    window: Duration,
}

impl TableRates {
    /// The stream's rate: zero rows over the window when it committed none.
    pub fn of(&self, stream: Uuid) -> Rate {
        Rate {
            rows: self.rows.get(&stream).copied().unwrap_or(0),
            window: self.window,
        }
    }
}

impl IngestRates {
    /// The rates of the streams writing to the table at `root` (`table` is its id), as of now.
    pub async fn table(
        &self,
        settings: &DeltaSettings,
        table: Uuid,
        root: &str,
    ) -> Result<TableRates, DeltaError> {
        let mut known = self.lock().get(&table).cloned().unwrap_or_default();
        let log = tables::log_store(settings, root)?;
        let latest = match known.top {
            Some(top) => match tables::latest_version(&log, root, top).await {
                Ok(latest) => latest,
                // The version read last left the log (cleanup), or the table was recreated.
                Err(_) => {
                    known = Known::default();
                    tables::latest_version_cold(&log, root).await?
                }
            },
            None => tables::latest_version_cold(&log, root).await?,
        };
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let floor = known.top.map_or(0, |top| top + 1);
        let (read, reach) = read_back(&log, root, latest, floor, now).await?;
        known.add(latest, read, reach, now_ms);
        let rates = known.rates(now_ms);
        let mut all = self.lock();
        all.retain(|_, k| now_ms - k.used_ms < i64::try_from(FORGET_AFTER.as_millis()).unwrap_or(i64::MAX));
        all.insert(table, known);
        Ok(rates)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads commits from `latest` down to `floor`, stopping past the first one older than the
/// window or at the read limit. Answers them newest first, and where the reading stopped.
async fn read_back(
    log: &LogStoreRef,
    root: &str,
    latest: i64,
    floor: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<(i64, CommitRows)>, Reach), DeltaError> {
    let start_ms = now.timestamp_millis() - window_ms();
    let lowest = floor
        .max(latest - i64::try_from(MOST_COMMITS_READ).unwrap_or(i64::MAX) + 1)
        .max(0);
    let mut read = Vec::new();
    let mut version = latest;
    while version >= lowest {
        let chunk: Vec<i64> = (lowest.max(version - CONCURRENT_READS as i64 + 1)..=version)
            .rev()
            .collect();
        version -= chunk.len() as i64;
        let fetched: Vec<_> = futures_util::stream::iter(chunk)
            .map(|v| async move { (v, tables::read_commit_text(log, root, v).await) })
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        for (v, text) in fetched {
            // A commit already removed by log cleanup is older than any window worth reading.
            let Some(text) = text? else {
                return Ok((read, Reach::Back));
            };
            let commit = read_commit(&text);
            let old = commit.at_ms.is_some_and(|at| at < start_ms);
            read.push((v, commit));
            if old {
                return Ok((read, Reach::Back));
            }
        }
    }
    let reach = if lowest == 0 {
        Reach::Back
    } else if lowest == floor {
        Reach::Known
    } else {
        Reach::Cut
    };
    Ok((read, reach))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(at_ms: i64, streams: &[(Uuid, u64)]) -> CommitRows {
        CommitRows {
            at_ms: Some(at_ms),
            streams: streams.to_vec(),
        }
    }

    #[test]
    fn a_commit_names_its_streams_rows_and_time() {
        let a = Uuid::now_v7();
        let text = format!(
            "{{\"add\":{{\"path\":\"x.parquet\",\"size\":10}}}}\n{{\"commitInfo\":{{\"timestamp\":1700000000123,\"{STREAM_ROWS_KEY}\":{{\"{a}\":42,\"not-a-uuid\":1}}}}}}\nnot json\n"
        );
        assert_eq!(
            read_commit(&text),
            CommitRows {
                at_ms: Some(1_700_000_000_123),
                streams: vec![(a, 42)],
            }
        );
        // An outside writer's commit names no stream.
        let outside = "{\"commitInfo\":{\"timestamp\":5,\"operation\":\"WRITE\"}}";
        assert_eq!(read_commit(outside).streams, vec![]);
    }

    #[test]
    fn rows_of_the_window_count_per_stream_over_the_whole_window() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let now = 1_000_000;
        let mut known = Known::default();
        // Newest first: two in the window, one before it; the reading reached back.
        let read = vec![
            (7, commit(now - 1_000, &[(a, 30), (b, 5)])),
            (6, commit(now - 59_000, &[(a, 30)])),
            (5, commit(now - 61_000, &[(a, 1_000)])),
        ];
        known.add(7, read, Reach::Back, now);
        let rates = known.rates(now);
        assert_eq!(
            rates.of(a),
            Rate {
                rows: 60,
                window: WINDOW
            }
        );
        assert_eq!(rates.of(a).per_second(), 1.0);
        assert_eq!(rates.of(b).rows, 5);
        assert_eq!(rates.of(Uuid::now_v7()).rows, 0, "a stream with no commit");
    }

    #[test]
    fn a_burst_read_in_part_is_a_rate_over_the_span_read() {
        let a = Uuid::now_v7();
        let now = 1_000_000;
        let mut known = Known::default();
        // Cut short by the read limit: the oldest commit read is 20 s old.
        let read = vec![
            (900, commit(now - 1_000, &[(a, 100)])),
            (899, commit(now - 20_000, &[(a, 100)])),
        ];
        known.add(900, read, Reach::Cut, now);
        let rate = known.rates(now).of(a);
        assert_eq!(rate.rows, 200);
        assert_eq!(rate.window, Duration::from_secs(20));
        assert_eq!(rate.per_second(), 10.0);
    }

    #[test]
    fn a_later_reading_adds_new_commits_and_drops_those_past_the_window() {
        let a = Uuid::now_v7();
        let t0 = 1_000_000;
        let mut known = Known::default();
        known.add(
            3,
            vec![
                (3, commit(t0 - 30_000, &[(a, 10)])),
                (2, commit(t0 - 70_000, &[(a, 1)])),
            ],
            Reach::Back,
            t0,
        );
        assert_eq!(known.rates(t0).of(a).rows, 10);
        // 40 s later: version 4 is new; version 3 is now 70 s old.
        let t1 = t0 + 40_000;
        known.add(4, vec![(4, commit(t1 - 5_000, &[(a, 7)]))], Reach::Known, t1);
        let rate = known.rates(t1).of(a);
        assert_eq!(
            rate,
            Rate {
                rows: 7,
                window: WINDOW
            }
        );
        assert_eq!(known.commits.len(), 1);
    }

    #[test]
    fn a_gap_between_readings_counts_only_what_was_read() {
        let a = Uuid::now_v7();
        let t0 = 1_000_000;
        let mut known = Known::default();
        known.add(3, vec![(3, commit(t0 - 1_000, &[(a, 10)]))], Reach::Back, t0);
        // Versions 4..=99 were not read (a burst past the limit): 100..=101 were.
        let t1 = t0 + 30_000;
        known.add(
            101,
            vec![
                (101, commit(t1 - 1_000, &[(a, 5)])),
                (100, commit(t1 - 10_000, &[(a, 5)])),
            ],
            Reach::Cut,
            t1,
        );
        let rate = known.rates(t1).of(a);
        assert_eq!(
            rate,
            Rate {
                rows: 10,
                window: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn no_commit_is_zero_rows_over_the_window() {
        let mut known = Known::default();
        known.add(0, vec![(0, commit(5, &[]))], Reach::Back, 1_000_000);
        let rates = known.rates(1_000_000);
        assert_eq!(
            rates.of(Uuid::now_v7()),
            Rate {
                rows: 0,
                window: WINDOW
            }
        );
    }
}

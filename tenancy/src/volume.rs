//! Written volume: the bytes a tenant writes as new data per day, which rank tenants for
//! dedicated placement. Rewrites (maintenance) are counted apart and are not volume.

use chrono::NaiveDate;

/// How many days of daily volumes are kept.
pub const KEEP_DAYS: u64 = 90;
/// How many days make the volume that placement ranks by.
pub const WINDOW_DAYS: u64 = 30;

/// Bytes written, by who wrote them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// New data from the plane's ingestion (HTTP pushes, Kafka workers).
    pub ingest: u64,
    /// New data from outside writers (engines with vended credentials).
    pub outside: u64,
    /// Data rewritten by maintenance: not volume.
    pub rewritten: u64,
}

impl Written {
    /// The bytes that count as volume.
    pub fn volume(&self) -> u64 {
        self.ingest.saturating_add(self.outside)
    }

    /// Adds another count.
    pub fn add(&mut self, other: Written) {
        self.ingest = self.ingest.saturating_add(other.ingest);
        self.outside = self.outside.saturating_add(other.outside);
        self.rewritten = self.rewritten.saturating_add(other.rewritten);
    }
}

/// The first day of the [`WINDOW_DAYS`] ending with `today`.
pub fn window_start(today: NaiveDate) -> NaiveDate {
    today - chrono::Days::new(WINDOW_DAYS - 1)
}

/// The first day still kept on `today`.
pub fn keep_from(today: NaiveDate) -> NaiveDate {
    today - chrono::Days::new(KEEP_DAYS - 1)
}

/// The volume of the [`WINDOW_DAYS`] up to and including `today`.
pub fn window_volume(days: &[(NaiveDate, Written)], today: NaiveDate) -> u64 {
    let first = window_start(today);
    days.iter()
        .filter(|(day, _)| *day >= first && *day <= today)
        .fold(0u64, |sum, (_, w)| sum.saturating_add(w.volume()))
}

/// Sums counts by day, days in order.
pub fn by_day(counts: impl IntoIterator<Item = (NaiveDate, Written)>) -> Vec<(NaiveDate, Written)> {
    let mut days = std::collections::BTreeMap::<NaiveDate, Written>::new();
    for (day, written) in counts {
        days.entry(day).or_default().add(written);
    }
    days.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(day: &str) -> NaiveDate {
        NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date")
    }

    fn written(ingest: u64) -> Written {
        Written {
            ingest,
            outside: 1,
            rewritten: 1_000,
        }
    }

    #[test]
    fn the_window_is_today_and_the_29_days_before() {
        let days = [
            (date("2026-11-05"), written(10)), // 30 days before the 5th of December: outside
            (date("2026-11-06"), written(20)),
            (date("2026-12-05"), written(30)),
            (date("2026-12-06"), written(40)), // after today
        ];
        assert_eq!(
            window_volume(&days, date("2026-12-05")),
            21 + 31,
            "rewrites never count"
        );
        assert_eq!(window_start(date("2026-12-05")), date("2026-11-06"));
        assert_eq!(keep_from(date("2026-12-05")), date("2026-09-07"));
    }

    #[test]
    fn counts_sum_by_day() {
        let summed = by_day([
            (date("2026-12-02"), written(1)),
            (date("2026-12-01"), written(2)),
            (date("2026-12-02"), written(3)),
        ]);
        assert_eq!(
            summed,
            [
                (date("2026-12-01"), written(2)),
                (
                    date("2026-12-02"),
                    Written {
                        ingest: 4,
                        outside: 2,
                        rewritten: 2_000
                    }
                )
            ]
        );
    }
}

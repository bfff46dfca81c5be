//! How numbers read on a page: bytes in binary units, counts with separators, money.

/// Bytes in the largest binary unit that keeps the number at least 1 (`1.5 GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An integer with thousands separators (`12,345`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows per second: whole above 100, else to a tenth, and `< 0.1` for a trickle.
pub fn per_second(rate: f64) -> String {
    if rate <= 0.0 {
        "0 rows/s".to_owned()
    } else if rate < 0.1 {
        "< 0.1 rows/s".to_owned()
    } else if rate >= 100.0 {
        format!("{} rows/s", count(rate.round() as u64))
    } else {
        format!("{rate:.1} rows/s")
    }
}

/// US dollars per month, to the cent, or to a tenth of a cent below one cent.
pub fn usd_month(amount: f64) -> String {
    if amount > 0.0 && amount < 0.0001 {
        "under $0.0001/month".to_owned()
    } else if amount > 0.0 && amount < 0.01 {
        format!("${amount:.4}/month")
    } else {
        format!("${amount:.2}/month")
    }
}

/// A timestamp as RFC 3339 text cut to the second (`2026-12-07 16:40:02Z`).
pub fn when(at: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        Err(_) => at.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MiB");
    }

    #[test]
    fn counts_and_money() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(usd_month(12.345), "$12.35/month");
        assert_eq!(usd_month(0.0021), "$0.0021/month");
        assert_eq!(usd_month(0.0), "$0.00/month");
        assert_eq!(usd_month(0.000_01), "under $0.0001/month");
        assert_eq!(when("2026-12-07T16:40:02.123+00:00"), "2026-12-07 16:40:02Z");
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(0.0), "0 rows/s");
        assert_eq!(per_second(0.05), "< 0.1 rows/s");
        assert_eq!(per_second(1.0 / 60.0 * 100.0), "1.7 rows/s");
        assert_eq!(per_second(12_345.4), "12,345 rows/s");
    }
}

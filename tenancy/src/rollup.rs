//! Requests no one answers for (no valid token, no route, or over a rate limit) are not worth
//! an audit row each: anyone on the network can send them by the thousand, and every row costs
//! a write that tenants' own audited changes queue behind. They are rolled up instead: one row
//! per source network, actor, action and time window, with a count. The number of rows a
//! window can produce is capped, so the audit store grows by a bounded amount whatever the
//! flood, and memory holds at most two windows' keys.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{AuditEvent, Outcome, cap_target};

/// The network a client address counts under: its /24 for IPv4, its /64 for IPv6 (one
/// subscriber's allocation, so rotating through its addresses changes nothing).
pub fn source_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            // An IPv4-mapped address is an IPv4 client.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return source_network(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{network}/64")
        }
    }
}

/// What one rolled-up row stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    network: String,
    actor: String,
    tenant: Option<String>,
    action: String,
    outcome: &'static str,
}

/// The key every request folds into once a window has used up its keys.
fn overflow_key() -> Key {
    Key {
        network: "*".to_owned(),
        actor: "*".to_owned(),
        tenant: None,
        action: "audit.overflow".to_owned(),
        outcome: Outcome::Rejected.as_str(),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    count: u64,
    first_at: DateTime<Utc>,
    outcome: Outcome,
    /// The first request's target, already capped: an example, not a list.
    target: String,
}

/// One request to roll up.
#[derive(Debug, Clone)]
pub struct Unattributed<'a> {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// The client address, when known.
    pub source: Option<IpAddr>,
    /// `anonymous`, or the subject of a throttled token.
    pub actor: &'a str,
    /// The caller's own tenant, for a throttled token bound to one; never the path's.
    pub tenant: Option<&'a str>,
    /// The action name (`auth.missing`, `http.post`, ...).
    pub action: &'a str,
    /// The request path.
    pub target: &'a str,
    /// How it ended.
    pub outcome: Outcome,
}

/// Counts unattributed requests per window until they are drained as audit rows.
#[derive(Debug)]
pub struct Rollup {
    window: TimeDelta,
    max_keys: usize,
    windows: BTreeMap<DateTime<Utc>, HashMap<Key, Entry>>,
}

impl Rollup {
    /// Windows of `window` (at least a second), each producing at most `max_keys + 1` rows.
    pub fn new(window: std::time::Duration, max_keys: usize) -> Self {
        let window = TimeDelta::from_std(window)
            .unwrap_or(TimeDelta::MAX)
            .max(TimeDelta::seconds(1));
        Self {
            window,
            max_keys: max_keys.max(1),
            windows: BTreeMap::new(),
        }
    }

    fn window_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let width = self.window.num_milliseconds().max(1);
        let ms = at.timestamp_millis();
        DateTime::from_timestamp_millis(ms - ms.rem_euclid(width)).unwrap_or(at)
    }

    /// Counts one request.
    pub fn record(&mut self, r: &Unattributed<'_>) {
        let start = self.window_start(r.at);
        let max_keys = self.max_keys;
        let entries = self.windows.entry(start).or_default();
        let mut key = Key {
            network: r.source.map_or_else(|| "unknown".to_owned(), source_network),
            actor: r.actor.to_owned(),
            tenant: r.tenant.map(str::to_owned),
            action: r.action.to_owned(),
            outcome: r.outcome.as_str(),
        };
        if !entries.contains_key(&key) && entries.len() >= max_keys {
            key = overflow_key();
        }
        let entry = entries.entry(key).or_insert_with(|| Entry {
            count: 0,
            first_at: r.at,
            outcome: r.outcome,
            target: cap_target(r.target),
        });
        entry.count += 1;
    }

    /// The rows of every window that ended at or before `now`, removed from the rollup.
    pub fn drain_closed(&mut self, now: DateTime<Utc>) -> Vec<AuditEvent> {
        let open = self.window_start(now);
        let still_open = self.windows.split_off(&open);
        let closed = std::mem::replace(&mut self.windows, still_open);
        Self::rows(closed)
    }

    /// Every row, open windows included (at shutdown).
    pub fn drain_all(&mut self) -> Vec<AuditEvent> {
        Self::rows(std::mem::take(&mut self.windows))
    }

    /// Requests counted and not yet drained.
    pub fn pending(&self) -> u64 {
        self.windows
            .values()
            .flat_map(HashMap::values)
            .map(|e| e.count)
            .sum()
    }

    fn rows(windows: BTreeMap<DateTime<Utc>, HashMap<Key, Entry>>) -> Vec<AuditEvent> {
        let mut rows: Vec<(Key, Entry)> = windows.into_values().flatten().collect();
        // Deterministic order, so rows land sorted by first sight.
        rows.sort_by(|a, b| a.1.first_at.cmp(&b.1.first_at).then_with(|| a.0.cmp(&b.0)));
        rows.into_iter()
            .map(|(key, entry)| {
                let mut event =
                    AuditEvent::system(&key.action, &entry.target, key.tenant.as_deref(), entry.outcome);
                event.at = entry.first_at;
                event.actor = key.actor;
                event.source = Some(key.network);
                event.occurrences = entry.count;
                event
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid time")
    }

    fn request<'a>(secs: i64, ip: &str, action: &'a str, target: &'a str) -> Unattributed<'a> {
        Unattributed {
            at: at(secs),
            source: Some(ip.parse().expect("ip")),
            actor: "anonymous",
            tenant: None,
            action,
            target,
            outcome: Outcome::Denied,
        }
    }

    #[test]
    fn networks_group_a_subscribers_addresses() {
        let net = |s: &str| source_network(s.parse().expect("ip"));
        assert_eq!(net("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:ffff::9"), net("2001:db8:1:2::1"));
        assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
        assert_eq!(net("::ffff:198.51.100.4"), "198.51.100.0/24");
    }

    #[test]
    fn one_row_per_network_action_and_window_with_the_count() {
        let mut rollup = Rollup::new(std::time::Duration::from_secs(60), 100);
        for i in 0..50 {
            rollup.record(&request(i, "2001:db8::1", "auth.missing", "/v1/tenants"));
            rollup.record(&request(i, &format!("2001:db8::{i:x}"), "auth.missing", "/v1/x"));
        }
        rollup.record(&request(5, "192.0.2.1", "http.post", "/nowhere"));
        // Still within the first window: nothing is due.
        assert!(rollup.drain_closed(at(59)).is_empty());
        let rows = rollup.drain_closed(at(60));
        assert_eq!(rows.len(), 2, "{rows:?}");
        let auth = rows
            .iter()
            .find(|r| r.action == "auth.missing")
            .expect("auth row");
        assert_eq!(auth.occurrences, 100);
        assert_eq!(auth.source.as_deref(), Some("2001:db8::/64"));
        assert_eq!(auth.actor, "anonymous");
        assert_eq!(auth.target, "/v1/tenants");
        assert_eq!(rollup.pending(), 0);
    }

    #[test]
    fn a_window_past_its_key_budget_folds_into_one_overflow_row() {
        let mut rollup = Rollup::new(std::time::Duration::from_secs(60), 3);
        for i in 0..10 {
            rollup.record(&request(1, &format!("10.0.{i}.1"), "auth.missing", "/v1"));
        }
        let rows = rollup.drain_all();
        assert_eq!(rows.len(), 4);
        let overflow = rows
            .iter()
            .find(|r| r.action == "audit.overflow")
            .expect("overflow row");
        assert_eq!(overflow.occurrences, 7);
        assert_eq!(rows.iter().map(|r| r.occurrences).sum::<u64>(), 10);
    }

    #[test]
    fn targets_are_capped() {
        let long = "/v1/".to_owned() + &"é".repeat(30_000);
        let mut rollup = Rollup::new(std::time::Duration::from_secs(60), 3);
        rollup.record(&request(1, "10.0.0.1", "auth.missing", &long));
        let rows = rollup.drain_all();
        assert!(
            rows[0].target.len() <= crate::audit::MAX_TARGET_BYTES,
            "{}",
            rows[0].target.len()
        );
        assert!(rows[0].target.starts_with("/v1/é"));
    }

    proptest! {
        /// Whatever arrives, nothing is lost or double counted, and no window yields more
        /// than its budget plus the overflow row.
        #[test]
        fn counts_are_kept_and_rows_bounded(
            requests in proptest::collection::vec((0i64..600, 0u8..=255, 0usize..3), 0..400),
            max_keys in 1usize..20,
        ) {
            let mut rollup = Rollup::new(std::time::Duration::from_secs(60), max_keys);
            let actions = ["auth.missing", "http.post", "rate_limited"];
            for (secs, host, action) in &requests {
                rollup.record(&request(*secs, &format!("10.{host}.0.1"), actions[*action], "/v1"));
            }
            let mut rows = rollup.drain_closed(at(300));
            let early = requests.iter().filter(|(s, _, _)| *s < 300).count() as u64;
            prop_assert_eq!(rows.iter().map(|r| r.occurrences).sum::<u64>(), early);
            rows.extend(rollup.drain_all());
            prop_assert_eq!(rows.iter().map(|r| r.occurrences).sum::<u64>(), requests.len() as u64);
            let mut per_window: HashMap<i64, usize> = HashMap::new();
            for row in &rows {
                *per_window.entry(row.at.timestamp().div_euclid(60)).or_default() += 1;
            }
            prop_assert!(per_window.values().all(|n| *n <= max_keys + 1), "{:?}", per_window);
        }
    }
}

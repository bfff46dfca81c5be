//! The hybrid placement policy, as pure functions: enterprise tenants and the top share of
//! tenants by 30-day volume get a dedicated bucket; everyone else shares a bucket shard.

use serde::{Deserialize, Serialize};

use crate::tenant::{Isolation, TenantId, Tier};

/// Policy knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementConfig {
    /// Share of tenants, by 30-day volume, promoted to dedicated buckets.
    pub dedicated_fraction: f64,
    /// A tenant promoted by volume is demoted only once it falls outside this share, so
    /// tenants near the edge do not flap.
    pub demote_fraction: f64,
    /// Tenants per shared bucket shard.
    pub shard_capacity: u32,
    /// How often the leader rebalances on its own, seconds; 0 turns the scheduled rebalance
    /// off (`POST /v1/admin/placement/rebalance` still works).
    pub rebalance_secs: u64,
    /// Most placement migrations under way at once; a rebalance starts the largest tenants
    /// first and leaves the rest for a later one.
    pub max_concurrent_migrations: u32,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            dedicated_fraction: 0.10,
            demote_fraction: 0.15,
            shard_capacity: 500,
            rebalance_secs: 86_400,
            max_concurrent_migrations: 2,
        }
    }
}

impl PlacementConfig {
    /// Checks the fractions are ordered and in range, naming the bad key.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(0.0..=1.0).contains(&self.dedicated_fraction) {
            return Err(("placement.dedicated_fraction", "must be between 0 and 1"));
        }
        if !(self.dedicated_fraction..=1.0).contains(&self.demote_fraction) {
            return Err((
                "placement.demote_fraction",
                "must be between placement.dedicated_fraction and 1",
            ));
        }
        if self.shard_capacity == 0 {
            return Err(("placement.shard_capacity", "must be at least 1"));
        }
        if !(0..=30 * 86_400).contains(&self.rebalance_secs) {
            return Err(("placement.rebalance_secs", "must be 0 (off) to 2592000 (30 days)"));
        }
        if !(1..=64).contains(&self.max_concurrent_migrations) {
            return Err(("placement.max_concurrent_migrations", "must be 1 to 64"));
        }
        Ok(())
    }
}

/// Dedicated bucket or shared shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementKind {
    /// The tenant's own bucket.
    Dedicated,
    /// A prefix in one shard of the shared buckets.
    Shared,
}

impl PlacementKind {
    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementKind::Dedicated => "dedicated",
            PlacementKind::Shared => "shared",
        }
    }

    /// Parses the stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "dedicated" => Some(PlacementKind::Dedicated),
            "shared" => Some(PlacementKind::Shared),
            _ => None,
        }
    }
}

/// Where a tenant's data lives, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// Dedicated or shared.
    pub kind: PlacementKind,
    /// The shared shard index; `None` when dedicated.
    pub shard: Option<u32>,
    /// Why, in words, e.g. "tier enterprise" or "top 10% by 30-day volume (rank 3 of 40)".
    pub reason: String,
}

/// What the policy knows about one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The tenant.
    pub id: TenantId,
    /// Its tier.
    pub tier: Tier,
    /// Its override.
    pub isolation: Isolation,
    /// Bytes written in the last 30 days.
    pub volume_30d_bytes: u64,
    /// Its current placement, if it has one.
    pub current: Option<Placement>,
}

/// Volume ranks of all tenants: 1 is the largest. Tenants with no volume have no rank,
/// so an empty platform never promotes anyone.
pub struct Ranking {
    ranked: Vec<(TenantId, u64)>,
    total: usize,
}

impl Ranking {
    /// Ranks the given tenants by volume, largest first, ties by id for determinism.
    pub fn new<'a>(tenants: impl IntoIterator<Item = (&'a TenantId, u64)>) -> Self {
        let mut total = 0;
        let mut ranked: Vec<(TenantId, u64)> = tenants
            .into_iter()
            .inspect(|_| total += 1)
            .filter(|(_, volume)| *volume > 0)
            .map(|(id, volume)| (id.clone(), volume))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self { ranked, total }
    }

    /// The tenant's 1-based rank, if it has any volume.
    pub fn rank(&self, id: &TenantId) -> Option<usize> {
        self.ranked.iter().position(|(t, _)| t == id).map(|p| p + 1)
    }

    /// How many tenants were ranked, including those with no volume.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// `ceil(fraction × n)`, the number of tenants a fraction covers.
pub fn share(fraction: f64, n: usize) -> usize {
    // n is at most a few million, well within f64's exact integer range.
    (fraction * n as f64).ceil() as usize
}

fn percent(fraction: f64) -> String {
    let value = fraction * 100.0;
    if value.fract() == 0.0 {
        format!("{value:.0}%")
    } else {
        format!("{value:.1}%")
    }
}

/// Decides dedicated or shared for one tenant, without choosing a shard.
pub fn decide_kind(
    candidate: &Candidate,
    ranking: &Ranking,
    config: &PlacementConfig,
) -> (PlacementKind, String) {
    match candidate.isolation {
        Isolation::Dedicated => {
            return (
                PlacementKind::Dedicated,
                "isolation override: dedicated".to_owned(),
            );
        }
        Isolation::Shared => return (PlacementKind::Shared, "isolation override: shared".to_owned()),
        Isolation::Auto => {}
    }
    if candidate.tier == Tier::Enterprise {
        return (PlacementKind::Dedicated, "tier enterprise".to_owned());
    }
    let n = ranking.total();
    let Some(rank) = ranking.rank(&candidate.id) else {
        return (
            PlacementKind::Shared,
            "standard tier, no data in the last 30 days".to_owned(),
        );
    };
    let written = human_bytes(candidate.volume_30d_bytes);
    if rank <= share(config.dedicated_fraction, n) {
        let top = percent(config.dedicated_fraction);
        return (
            PlacementKind::Dedicated,
            format!("top {top} by 30-day volume, {written} written (rank {rank} of {n})"),
        );
    }
    let currently_dedicated = candidate
        .current
        .as_ref()
        .is_some_and(|p| p.kind == PlacementKind::Dedicated);
    if currently_dedicated && rank <= share(config.demote_fraction, n) {
        let band = percent(config.demote_fraction);
        return (
            PlacementKind::Dedicated,
            format!(
                "kept dedicated: within top {band} by 30-day volume, {written} written (rank {rank} of {n})"
            ),
        );
    }
    let top = percent(config.dedicated_fraction);
    (
        PlacementKind::Shared,
        format!(
            "standard tier, outside the top {top} by 30-day volume, {written} written (rank {rank} of {n})"
        ),
    )
}

/// Bytes in decimal units with three significant digits at most: `950 B`, `1.2 kB`, `34 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// A placement reason as a tenant may read it: without the rank, whose "of n" would tell
/// every tenant how many tenants the platform has (platform-admins read the whole reason).
pub fn tenant_facing(reason: &str) -> &str {
    match reason.find(" (rank ") {
        Some(at) if reason.ends_with(')') => &reason[..at],
        _ => reason,
    }
}

/// Picks the least-full shard with room (lowest index on ties), or a new shard when all are full.
pub fn choose_shard(fill: &[u32], capacity: u32) -> u32 {
    let open = fill
        .iter()
        .enumerate()
        .filter(|(_, used)| **used < capacity)
        .min_by_key(|(i, used)| (**used, *i));
    match open {
        // Shard counts stay far below u32::MAX.
        Some((index, _)) => index as u32,
        None => fill.len() as u32,
    }
}

/// The full placement of one tenant. A tenant already in a shared shard keeps its shard.
pub fn place(candidate: &Candidate, ranking: &Ranking, fill: &[u32], config: &PlacementConfig) -> Placement {
    let (kind, reason) = decide_kind(candidate, ranking, config);
    let shard = match kind {
        PlacementKind::Dedicated => None,
        PlacementKind::Shared => Some(
            candidate
                .current
                .as_ref()
                .and_then(|p| p.shard.filter(|_| p.kind == PlacementKind::Shared))
                .unwrap_or_else(|| choose_shard(fill, config.shard_capacity)),
        ),
    };
    Placement { kind, shard, reason }
}

/// One tenant changing placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The tenant.
    pub tenant: TenantId,
    /// Where it is.
    pub from: Placement,
    /// Where it should be.
    pub to: Placement,
    /// Its 30-day volume, bytes: the larger moves first.
    pub volume_30d_bytes: u64,
}

/// The moves a rebalance would make.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rebalance {
    /// Shared to dedicated.
    pub promotions: Vec<Move>,
    /// Dedicated to shared.
    pub demotions: Vec<Move>,
}

impl Rebalance {
    /// Every move in the order a rebalance starts them: the largest 30-day volume first (ties
    /// by tenant id), promotions and demotions alike, so when only a few migrations may run
    /// at once the tenants that weigh most on their bucket move first.
    pub fn in_order(&self) -> Vec<&Move> {
        let mut moves: Vec<&Move> = self.promotions.iter().chain(&self.demotions).collect();
        moves.sort_by(|a, b| {
            b.volume_30d_bytes
                .cmp(&a.volume_30d_bytes)
                .then_with(|| a.tenant.cmp(&b.tenant))
        });
        moves
    }
}

/// Plans a rebalance over every tenant. Tenants without a current placement are skipped
/// (they are placed at creation). Demoted tenants fill shards as they go.
pub fn plan_rebalance(tenants: &[Candidate], fill: &[u32], config: &PlacementConfig) -> Rebalance {
    let ranking = Ranking::new(tenants.iter().map(|t| (&t.id, t.volume_30d_bytes)));
    let mut fill = fill.to_vec();
    let mut plan = Rebalance::default();
    for tenant in tenants {
        let Some(current) = &tenant.current else { continue };
        let target = place(tenant, &ranking, &fill, config);
        if target.kind == current.kind {
            continue;
        }
        match target.kind {
            PlacementKind::Dedicated => {
                if let Some(slot) = current.shard.and_then(|s| fill.get_mut(s as usize)) {
                    *slot = slot.saturating_sub(1);
                }
                plan.promotions.push(Move {
                    tenant: tenant.id.clone(),
                    from: current.clone(),
                    to: target,
                    volume_30d_bytes: tenant.volume_30d_bytes,
                });
            }
            PlacementKind::Shared => {
                if let Some(shard) = target.shard {
                    if fill.len() <= shard as usize {
                        fill.resize(shard as usize + 1, 0);
                    }
                    fill[shard as usize] += 1;
                }
                plan.demotions.push(Move {
                    tenant: tenant.id.clone(),
                    from: current.clone(),
                    to: target,
                    volume_30d_bytes: tenant.volume_30d_bytes,
                });
            }
        }
    }
    plan
}

/// The volume ranking as a curve to draw: at most `max_points` points spread evenly over the
/// ranks (the first, the last and the top share's last always among them), and where the top
/// share ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RankingCurve {
    /// Tenants ranked, those with no volume included (they rank last).
    pub tenants: usize,
    /// Tenants with any volume in the window.
    pub with_volume: usize,
    /// How many tenants the dedicated fraction covers among those with volume.
    pub top_count: usize,
    /// The smallest volume inside the top share, bytes (0 when the share is empty).
    pub cutoff_bytes: u64,
    /// `(rank, volume)` pairs, rank 1-based, largest volume first.
    pub points: Vec<(usize, u64)>,
}

/// The curve of `volumes` (any order) under `dedicated_fraction`, as [`decide_kind`] ranks.
pub fn ranking_curve(volumes: &[u64], dedicated_fraction: f64, max_points: usize) -> RankingCurve {
    let mut sorted = volumes.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let n = sorted.len();
    let with_volume = sorted.iter().take_while(|v| **v > 0).count();
    let top_count = share(dedicated_fraction, n).min(with_volume);
    let cutoff_bytes = top_count.checked_sub(1).map_or(0, |i| sorted[i]);
    let max_points = max_points.max(2);
    let mut ranks: Vec<usize> = if n <= max_points {
        (1..=n).collect()
    } else {
        (0..max_points)
            .map(|i| 1 + i * (n - 1) / (max_points - 1))
            .collect()
    };
    if top_count > 0 {
        ranks.push(top_count);
    }
    ranks.sort_unstable();
    ranks.dedup();
    RankingCurve {
        tenants: n,
        with_volume,
        top_count,
        cutoff_bytes,
        points: ranks.into_iter().map(|r| (r, sorted[r - 1])).collect(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(i: usize) -> TenantId {
        TenantId::parse(&format!("t{i:04}")).expect("valid id")
    }

    fn candidate(i: usize, tier: Tier, volume: u64, current: Option<PlacementKind>) -> Candidate {
        Candidate {
            id: id(i),
            tier,
            isolation: Isolation::Auto,
            volume_30d_bytes: volume,
            current: current.map(|kind| Placement {
                kind,
                shard: (kind == PlacementKind::Shared).then_some(0),
                reason: String::new(),
            }),
        }
    }

    /// Places everyone fresh, as at creation, and returns the kinds.
    fn place_all(tenants: &[Candidate], config: &PlacementConfig) -> Vec<Placement> {
        let ranking = Ranking::new(tenants.iter().map(|t| (&t.id, t.volume_30d_bytes)));
        tenants.iter().map(|t| place(t, &ranking, &[], config)).collect()
    }

    /// Applies a plan to the candidates, as executing the migrations would.
    fn apply(tenants: &mut [Candidate], plan: &Rebalance) {
        for m in plan.promotions.iter().chain(&plan.demotions) {
            if let Some(t) = tenants.iter_mut().find(|t| t.id == m.tenant) {
                t.current = Some(m.to.clone());
            }
        }
    }

    #[test]
    fn bytes_read_in_decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1.0 kB");
        assert_eq!(human_bytes(1_250_000), "1.2 MB");
        assert_eq!(human_bytes(34_000_000), "34 MB");
        assert_eq!(human_bytes(999_999_999_999), "1000 GB");
        assert_eq!(human_bytes(u64::MAX), "18 EB");
    }

    #[test]
    fn reasons_name_the_rule() {
        let config = PlacementConfig::default();
        let mut tenants: Vec<_> = (0..40)
            .map(|i| candidate(i, Tier::Standard, 1000 - i as u64, None))
            .collect();
        tenants.push(candidate(40, Tier::Enterprise, 0, None));
        tenants.push(Candidate {
            isolation: Isolation::Shared,
            ..candidate(41, Tier::Enterprise, 0, None)
        });
        let placed = place_all(&tenants, &config);
        assert_eq!(
            placed[2].reason,
            "top 10% by 30-day volume, 998 B written (rank 3 of 42)"
        );
        assert_eq!(placed[2].kind, PlacementKind::Dedicated);
        assert_eq!(placed[10].kind, PlacementKind::Shared);
        assert_eq!(
            placed[10].reason,
            "standard tier, outside the top 10% by 30-day volume, 990 B written (rank 11 of 42)"
        );
        assert_eq!(
            tenant_facing(&placed[10].reason),
            "standard tier, outside the top 10% by 30-day volume, 990 B written"
        );
        assert_eq!(placed[40].reason, "tier enterprise");
        assert_eq!(placed[41].reason, "isolation override: shared");
    }

    #[test]
    fn shards_fill_least_full_first_then_grow() {
        assert_eq!(choose_shard(&[], 10), 0);
        assert_eq!(choose_shard(&[3, 1, 1], 10), 1);
        assert_eq!(choose_shard(&[10, 10], 10), 2);
        assert_eq!(choose_shard(&[10, 9], 10), 1);
    }

    #[test]
    fn hysteresis_keeps_a_tenant_between_10_and_15_percent() {
        let config = PlacementConfig::default();
        // 100 tenants; tenant 0 is dedicated and now ranks 12th: inside 15%, so it stays.
        let mut tenants: Vec<_> = (0..100)
            .map(|i| candidate(i, Tier::Standard, 1000 - i as u64, Some(PlacementKind::Shared)))
            .collect();
        tenants[0] = candidate(0, Tier::Standard, 989, Some(PlacementKind::Dedicated));
        for t in tenants.iter_mut().take(12).skip(1) {
            t.volume_30d_bytes += 100;
        }
        let plan = plan_rebalance(&tenants, &[99], &config);
        assert!(plan.demotions.iter().all(|m| m.tenant != id(0)), "{plan:?}");
        // Falling to rank 16 demotes it.
        tenants[0].volume_30d_bytes = 1;
        let plan = plan_rebalance(&tenants, &[99], &config);
        assert!(plan.demotions.iter().any(|m| m.tenant == id(0)), "{plan:?}");
    }

    fn volumes() -> impl Strategy<Value = Vec<(u64, bool)>> {
        prop::collection::vec((0u64..1_000_000, prop::bool::weighted(0.05)), 1..200)
    }

    proptest! {
        #[test]
        fn at_most_the_fraction_is_dedicated_by_volume_plus_enterprise(tenants in volumes(), fraction in 0.0f64..0.5) {
            let config = PlacementConfig { dedicated_fraction: fraction, demote_fraction: fraction.max(0.15), shard_capacity: 50, ..PlacementConfig::default() };
            let candidates: Vec<_> = tenants.iter().enumerate()
                .map(|(i, (v, enterprise))| candidate(i, if *enterprise { Tier::Enterprise } else { Tier::Standard }, *v, None))
                .collect();
            let placed = place_all(&candidates, &config);
            let enterprise = candidates.iter().filter(|c| c.tier == Tier::Enterprise).count();
            let dedicated = placed.iter().filter(|p| p.kind == PlacementKind::Dedicated).count();
            prop_assert!(dedicated <= share(fraction, candidates.len()) + enterprise);
            for (c, p) in candidates.iter().zip(&placed) {
                if c.tier == Tier::Enterprise { prop_assert_eq!(p.kind, PlacementKind::Dedicated); }
                if c.volume_30d_bytes == 0 && c.tier == Tier::Standard { prop_assert_eq!(p.kind, PlacementKind::Shared); }
                prop_assert_eq!(p.shard.is_some(), p.kind == PlacementKind::Shared);
            }
        }

        #[test]
        fn moves_start_largest_first(tenants in volumes()) {
            let config = PlacementConfig::default();
            let placed: Vec<Candidate> = tenants
                .iter()
                .enumerate()
                .map(|(i, (volume, enterprise))| {
                    // Everyone starts shared: the plan promotes the top share and enterprise.
                    let tier = if *enterprise { Tier::Enterprise } else { Tier::Standard };
                    candidate(i, tier, *volume, Some(PlacementKind::Shared))
                })
                .collect();
            let plan = plan_rebalance(&placed, &[placed.len() as u32], &config);
            let order = plan.in_order();
            prop_assert_eq!(order.len(), plan.promotions.len() + plan.demotions.len());
            for pair in order.windows(2) {
                prop_assert!(pair[0].volume_30d_bytes >= pair[1].volume_30d_bytes);
            }
        }

        #[test]
        fn repeated_rebalances_settle_after_one(tenants in volumes(), jitter in prop::collection::vec(0u64..2000, 200)) {
            let config = PlacementConfig::default();
            let mut candidates: Vec<_> = tenants.iter().enumerate()
                .map(|(i, (v, _))| candidate(i, Tier::Standard, *v, Some(PlacementKind::Shared)))
                .collect();
            let first = plan_rebalance(&candidates, &[candidates.len() as u32], &config);
            apply(&mut candidates, &first);
            prop_assert_eq!(plan_rebalance(&candidates, &[0], &config), Rebalance::default(), "a second rebalance moves nobody");
            // Whatever the volumes do, hysteresis never keeps more than the demotion band dedicated.
            for round in 0..4 {
                for (c, j) in candidates.iter_mut().zip(&jitter) {
                    c.volume_30d_bytes = if round % 2 == 0 { c.volume_30d_bytes + j } else { c.volume_30d_bytes.saturating_sub(*j) };
                }
                let plan = plan_rebalance(&candidates, &[0], &config);
                apply(&mut candidates, &plan);
                prop_assert_eq!(plan_rebalance(&candidates, &[0], &config), Rebalance::default());
                let dedicated = candidates.iter().filter(|c| c.current.as_ref().is_some_and(|p| p.kind == PlacementKind::Dedicated)).count();
                prop_assert!(dedicated <= share(config.demote_fraction, candidates.len()));
            }
        }
    }

    proptest! {
        /// No reason a tenant reads carries a rank or the number of tenants, whatever the
        /// volumes; the kind-defining words stay.
        #[test]
        fn tenant_facing_reasons_never_count_tenants(volumes in proptest::collection::vec(0u64..1_000, 1..60)) {
            let config = PlacementConfig::default();
            let ids: Vec<TenantId> = (0..volumes.len()).map(id).collect();
            let ranking = Ranking::new(ids.iter().zip(volumes.iter().copied()));
            for (i, volume) in volumes.iter().enumerate() {
                let placed = place(&candidate(i, Tier::Standard, *volume, None), &ranking, &[], &config);
                let shown = tenant_facing(&placed.reason);
                prop_assert!(!shown.contains("rank") && !shown.contains(" of "), "{shown}");
                prop_assert!(placed.reason.starts_with(shown));
                prop_assert!(shown.contains("30-day volume") || shown.contains("no data"), "{shown}");
            }
        }
    }

    #[test]
    fn tenant_facing_keeps_reasons_without_a_rank() {
        assert_eq!(tenant_facing("tier enterprise"), "tier enterprise");
        assert_eq!(
            tenant_facing("isolation override: shared"),
            "isolation override: shared"
        );
        assert_eq!(
            tenant_facing("top 10% by 30-day volume (rank 3 of 42)"),
            "top 10% by 30-day volume"
        );
    }

    #[test]
    fn the_ranking_curve_marks_where_the_top_share_ends() {
        let volumes: Vec<u64> = (1..=100).chain([0, 0]).collect();
        let curve = ranking_curve(&volumes, 0.10, 1000);
        assert_eq!(curve.tenants, 102);
        assert_eq!(curve.with_volume, 100);
        // ceil(0.1 x 102) = 11 tenants: volumes 100 down to 90.
        assert_eq!(curve.top_count, 11);
        assert_eq!(curve.cutoff_bytes, 90);
        assert_eq!(curve.points.first(), Some(&(1, 100)));
        assert_eq!(curve.points.last(), Some(&(102, 0)));
        assert_eq!(curve.points.len(), 102);
        // Nobody with no volume is in the top share, however large the fraction.
        assert_eq!(ranking_curve(&[5, 0, 0], 1.0, 10).top_count, 1);
        assert_eq!(ranking_curve(&[], 0.1, 10).points, []);
    }

    proptest! {
        #[test]
        fn a_sampled_curve_keeps_its_ends_and_cut_off_and_stays_sorted(
            volumes in proptest::collection::vec(0u64..1_000_000, 0..3000),
            max_points in 2usize..200,
        ) {
            let curve = ranking_curve(&volumes, 0.1, max_points);
            prop_assert!(curve.points.len() <= max_points + 1);
            prop_assert!(curve.points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 >= w[1].1));
            if !volumes.is_empty() {
                prop_assert_eq!(curve.points.first().map(|p| p.0), Some(1));
                prop_assert_eq!(curve.points.last().map(|p| p.0), Some(volumes.len()));
            }
            if curve.top_count > 0 {
                prop_assert!(curve.points.contains(&(curve.top_count, curve.cutoff_bytes)));
                // Exactly top_count volumes are at or above the cut-off's position.
                let above = volumes.iter().filter(|v| **v > curve.cutoff_bytes).count();
                prop_assert!(above < curve.top_count);
            }
        }
    }
}

//! The rebalance plan at 10,000 tenants on the embedded database (SQLite), against the
//! same-run baseline of reading the tenant rows alone: read every tenant's placement inputs,
//! rank by 30-day volume, place each, and order the moves largest first.
//!
//! Run: `cargo bench -p tenancy --bench placement` (release build). Env: `TENANTS` (10000).

use std::time::{Duration, Instant};

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::placement::{Placement, PlacementConfig, PlacementKind, plan_rebalance};
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let tenants: usize = std::env::var("TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let db = tenancy::store::testing::TestDatabase::new(tenancy::store::Backend::Sqlite).await;
    let store = tenancy::store::connect(&db.url, &Default::default())
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let config = PlacementConfig::default();
    for i in 0..tenants {
        let now = tenancy::now();
        // Volumes spread over five orders of magnitude, every 9th tenant dedicated now and
        // every 50th enterprise, so the plan both promotes and demotes.
        let volume = (i as u64).wrapping_mul(2_654_435_761) % 100_000 * 1_000;
        let dedicated = i % 9 == 0;
        let tenant = Tenant {
            id: TenantId::parse(&format!("t{i:05}")).expect("id"),
            display_name: "Bench".into(),
            tier: if i % 50 == 0 {
                Tier::Enterprise
            } else {
                Tier::Standard
            },
            isolation: Isolation::Auto,
            status: TenantStatus::Ready,
            status_reason: None,
            placement: Placement {
                kind: if dedicated {
                    PlacementKind::Dedicated
                } else {
                    PlacementKind::Shared
                },
                shard: (!dedicated).then(|| u32::try_from(i / 500).unwrap_or(0)),
                reason: "bench".into(),
            },
            quotas: Quotas::default(),
            volume_30d_bytes: volume,
            erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
            credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEvent::system("bench", "bench", None, Outcome::Success);
        store.insert_tenant(&tenant, &audit).await.expect("tenant");
    }
    let mut read = Vec::new();
    let mut planned = Vec::new();
    let mut moves = 0;
    for _ in 0..7 {
        let started = Instant::now();
        let snapshot = store.placement_snapshot().await.expect("snapshot");
        read.push(started.elapsed());
        assert_eq!(snapshot.tenants.len(), tenants);
        let started = Instant::now();
        let snapshot = store.placement_snapshot().await.expect("snapshot");
        let plan = plan_rebalance(&snapshot.tenants, &snapshot.shard_fill, &config);
        moves = plan.in_order().len();
        planned.push(started.elapsed());
    }
    println!(
        "| tenants | moves planned | read the tenant rows (baseline), median of 7 | read + plan, median of 7 |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {tenants} | {moves} | {:.1} ms | {:.1} ms |",
        median(read).as_secs_f64() * 1e3,
        median(planned).as_secs_f64() * 1e3
    );
    store.close().await;
}

//! Metadata shared by the scale benches (`reconcile`, `scheduler`): a fresh migrated store on
//! either backend, and ready tenants as plain rows.

use std::sync::Arc;

use tenancy::placement::{Placement, PlacementKind};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{Backend, MetadataStore};
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};

/// A migrated store on a fresh database: a temporary SQLite file, or a new PostgreSQL
/// database from `LAKEPLANE_TEST_POSTGRES_URL` (drop it with [`TestDatabase::drop_database`]).
pub async fn fresh_store(backend: Backend) -> (Arc<dyn MetadataStore>, TestDatabase) {
    let database = TestDatabase::new(backend).await;
    let store = tenancy::store::connect(&database.url, &Default::default())
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    (store, database)
}

/// A ready standard tenant in shared shard `shard`, as a row (nothing provisioned).
pub fn ready_tenant(id: &str, shard: u32) -> Tenant {
    let now = tenancy::now();
    Tenant {
        id: TenantId::parse(id).expect("id"),
        display_name: "Bench".into(),
        tier: Tier::Standard,
        isolation: Isolation::Auto,
        status: TenantStatus::Ready,
        status_reason: None,
        placement: Placement {
            kind: PlacementKind::Shared,
            shard: Some(shard),
            reason: "bench".into(),
        },
        quotas: Quotas::default(),
        volume_30d_bytes: 0,
        erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
        credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
        created_at: now,
        updated_at: now,
    }
}

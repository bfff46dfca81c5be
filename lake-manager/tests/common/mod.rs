//! Helpers shared by the lake-manager test and bench binaries.

#![allow(dead_code)]

use std::sync::Arc;

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::placement::Placement;
use tenancy::store::MetadataStore;
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};

/// Stores a standard-tier tenant in `provisioning` with the given placement.
pub async fn add_tenant(store: &Arc<dyn MetadataStore>, id: &str, placement: Placement) -> Tenant {
    let now = tenancy::now();
    let tenant = Tenant {
        id: TenantId::parse(id).expect("valid tenant id"),
        display_name: id.to_owned(),
        tier: Tier::Standard,
        isolation: Isolation::Auto,
        status: TenantStatus::Provisioning,
        status_reason: None,
        placement,
        quotas: Quotas::default(),
        volume_30d_bytes: 0,
        erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
        credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: now,
        actor: "test".into(),
        role: None,
        tenant: Some(id.to_owned()),
        action: "tenant.create".into(),
        target: id.to_owned(),
        outcome: Outcome::Success,
        request_id: None,
        source: None,
        token_id: None,
        issuer: None,
        occurrences: 1,
        details: None,
    };
    store.insert_tenant(&tenant, &audit).await.expect("insert tenant");
    tenant
}

/// A dedicated placement.
pub fn dedicated() -> Placement {
    Placement {
        kind: tenancy::placement::PlacementKind::Dedicated,
        shard: None,
        reason: "test".into(),
    }
}

/// A placement in shared shard `shard`.
pub fn shared(shard: u32) -> Placement {
    Placement {
        kind: tenancy::placement::PlacementKind::Shared,
        shard: Some(shard),
        reason: "test".into(),
    }
}

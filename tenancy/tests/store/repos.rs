use chrono::{Duration, Utc};
use tenancy::audit::{AuditEvent, AuditFilter, Outcome};
use tenancy::both_backends;
use tenancy::placement::{Placement, PlacementKind};
use tenancy::role::Role;
use tenancy::store::{Backend, StoreError, TokenRecord};
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};
use uuid::Uuid;

fn id(raw: &str) -> TenantId {
    TenantId::parse(raw).expect("valid id")
}

fn tenant(raw: &str, shard: Option<u32>) -> Tenant {
    // Whole microseconds, the precision both backends keep.
    let now = tenancy::now();
    Tenant {
        id: id(raw),
        display_name: format!("Tenant {raw}"),
        tier: Tier::Standard,
        isolation: Isolation::Auto,
        status: TenantStatus::Provisioning,
        status_reason: None,
        placement: Placement {
            kind: if shard.is_some() {
                PlacementKind::Shared
            } else {
                PlacementKind::Dedicated
            },
            shard,
            reason: "test".into(),
        },
        quotas: Quotas::default(),
        volume_30d_bytes: 0,
        erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
        credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
        created_at: now,
        updated_at: now,
    }
}

fn ids(revocations: Vec<tenancy::store::Revocation>) -> Vec<Uuid> {
    revocations.into_iter().map(|r| r.id).collect()
}

fn event(action: &str, tenant: Option<&str>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: tenancy::now(),
        actor: "tester".into(),
        role: Some("platform-admin".into()),
        tenant: tenant.map(str::to_owned),
        action: action.into(),
        target: "/v1/test".into(),
        outcome: Outcome::Success,
        request_id: Some("req-1".into()),
        source: Some("127.0.0.1".into()),
        token_id: Some(Uuid::now_v7()),
        issuer: Some("https://issuer.example".into()),
        occurrences: 1,
        details: None,
    }
}

fn token(tenant: &str, expires_in: Duration) -> TokenRecord {
    let now = tenancy::now();
    TokenRecord {
        id: Uuid::now_v7(),
        tenant: Some(id(tenant)),
        subject: "alice".into(),
        role: Role::Engineer,
        issued_by: "admin".into(),
        issued_at: now,
        expires_at: now + expires_in,
        revoked_at: None,
        groups: vec!["finance".into()],
    }
}

async fn tenants_round_trip_conflict_and_paginate(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let acme = tenant("acme", Some(0));
    store
        .insert_tenant(&acme, &event("tenant.create", Some("acme")))
        .await
        .expect("insert");
    assert_eq!(store.get_tenant(&acme.id).await.expect("get"), Some(acme.clone()));
    let dup = store
        .insert_tenant(&acme, &event("tenant.create", Some("acme")))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(
        store
            .list_audit(&AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("audit")
            .len(),
        1,
        "a failed insert leaves no audit event behind"
    );

    for name in ["beta", "gamma", "delta"] {
        store
            .insert_tenant(&tenant(name, None), &event("tenant.create", Some(name)))
            .await
            .expect("insert");
    }
    let first = store.list_tenants(None, 2, None, None).await.expect("list");
    assert_eq!(
        first.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["acme", "beta"]
    );
    let next = store
        .list_tenants(Some("beta"), 10, None, None)
        .await
        .expect("list");
    assert_eq!(
        next.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["delta", "gamma"]
    );
    let only = store
        .list_tenants(None, 10, Some(&id("gamma")), None)
        .await
        .expect("list");
    assert_eq!(only.len(), 1);
    // Search: id or display name, any case, wildcards taken literally.
    let ids =
        |rows: Vec<tenancy::tenant::Tenant>| rows.into_iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
    let found = store
        .list_tenants(None, 10, None, Some("ELT"))
        .await
        .expect("search");
    assert_eq!(ids(found), ["delta"]);
    let found = store
        .list_tenants(None, 10, None, Some("TENANT G"))
        .await
        .expect("search");
    assert_eq!(ids(found), ["gamma"], "the display name is searched too");
    let found = store
        .list_tenants(None, 10, None, Some("a"))
        .await
        .expect("search");
    assert_eq!(ids(found), ["acme", "beta", "delta", "gamma"]);
    let found = store
        .list_tenants(Some("beta"), 1, None, Some("a"))
        .await
        .expect("search");
    assert_eq!(ids(found), ["delta"], "search pages by id too");
    for literal in ["%", "_", "\\"] {
        let found = store
            .list_tenants(None, 10, None, Some(literal))
            .await
            .expect("search");
        assert!(found.is_empty(), "{literal} is matched as itself");
    }

    let mut changed = acme.clone();
    changed.display_name = "Acme Corp".into();
    changed.quotas.max_tables = 7;
    assert!(
        store
            .update_tenant(&changed, &event("tenant.update", Some("acme")))
            .await
            .expect("update")
    );
    assert_eq!(
        store
            .get_tenant(&acme.id)
            .await
            .expect("get")
            .expect("exists")
            .quotas
            .max_tables,
        7
    );

    store.record_volume(&acme.id, 12345).await.expect("volume");
    let snapshot = store.placement_snapshot().await.expect("snapshot");
    assert_eq!(snapshot.tenants.len(), 4);
    assert_eq!(snapshot.shard_fill, vec![1], "one shared tenant in shard 0");
    assert_eq!(
        store.shard_fill().await.expect("fill"),
        vec![1],
        "one grouped query, the same fill"
    );
    let mut volumes = store.tenant_volumes().await.expect("volumes");
    volumes.sort_unstable();
    assert_eq!(
        volumes,
        [0, 0, 0, 12345],
        "every tenant's volume, acme's recorded"
    );
    assert_eq!(
        snapshot
            .tenants
            .iter()
            .find(|c| c.id == acme.id)
            .map(|c| c.volume_30d_bytes),
        Some(12345)
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(tenants_round_trip_conflict_and_paginate);

async fn tokens_revoke_and_survive_their_tenant(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant("acme", Some(0)), &event("tenant.create", Some("acme")))
        .await
        .expect("tenant");
    let live = token("acme", Duration::hours(1));
    let other = token("acme", Duration::hours(1));
    let expired = token("acme", Duration::seconds(-5));
    for t in [&live, &other, &expired] {
        store
            .insert_token(t, None, &event("token.create", Some("acme")))
            .await
            .expect("insert");
    }
    let page = store.list_tokens(&id("acme"), None, 2).await.expect("list");
    assert_eq!(
        page.iter().map(|t| t.id).collect::<Vec<_>>(),
        [expired.id, other.id],
        "newest first"
    );
    let rest = store
        .list_tokens(&id("acme"), Some(other.id), 10)
        .await
        .expect("list");
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [live.id]);

    let at = Utc::now();
    let revoked = store
        .revoke_token(&id("acme"), live.id, at, &event("token.revoke", Some("acme")))
        .await
        .expect("revoke");
    assert!(revoked.expect("found").revoked_at.is_some());
    assert!(
        store
            .revoke_token(&id("zeta"), other.id, at, &event("token.revoke", None))
            .await
            .expect("ok")
            .is_none(),
        "another tenant's token is not found"
    );
    store
        .revoke_token(&id("acme"), expired.id, at, &event("token.revoke", Some("acme")))
        .await
        .expect("revoke");
    assert_eq!(
        ids(store.revoked_tokens(Utc::now(), None).await.expect("ids")),
        vec![live.id],
        "expired tokens drop off the list"
    );

    let revoked_by_delete = store
        .delete_tenant(
            &id("acme"),
            Utc::now(),
            Utc::now(),
            &event("tenant.delete", Some("acme")),
        )
        .await
        .expect("delete");
    assert_eq!(revoked_by_delete, Some(1), "the one live token left is revoked");
    assert_eq!(store.get_tenant(&id("acme")).await.expect("get"), None);
    let mut still_revoked = ids(store.revoked_tokens(Utc::now(), None).await.expect("ids"));
    still_revoked.sort();
    let mut expected = vec![live.id, other.id];
    expected.sort();
    assert_eq!(still_revoked, expected, "tokens of a deleted tenant stay revoked");
    assert_eq!(
        store
            .delete_tenant(&id("acme"), Utc::now(), Utc::now(), &event("tenant.delete", None))
            .await
            .expect("again"),
        None
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(tokens_revoke_and_survive_their_tenant);

async fn audit_filters_paginates_and_is_append_only(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let base = event("tenant.create", Some("acme"));
    let old = AuditEvent {
        at: base.at - Duration::days(2),
        occurrences: 7,
        details: None,
        ..base
    };
    store.append_audit(&old).await.expect("append");
    let mut ids = vec![old.id];
    for (action, tenant) in [
        ("tenant.update", "acme"),
        ("token.create", "beta"),
        ("tenant.update", "acme"),
    ] {
        let e = event(action, Some(tenant));
        ids.push(e.id);
        store.append_audit(&e).await.expect("append");
    }
    let all = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(all.last(), Some(&old), "round-trips every field");
    let acme = AuditFilter {
        tenant: Some(id("acme")),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&acme).await.expect("list").len(), 3);
    let updates = AuditFilter {
        action: Some("tenant.update".into()),
        limit: 1,
        ..Default::default()
    };
    let page = store.list_audit(&updates).await.expect("list");
    assert_eq!(page.len(), 1);
    let after = AuditFilter {
        before: Some(page[0].id),
        ..updates.clone()
    };
    assert_eq!(store.list_audit(&after).await.expect("list")[0].id, ids[1]);
    // A path from the network is stored cut to a bounded length, whoever built the event.
    let long = AuditEvent {
        target: format!("/v1/{}", "x".repeat(60_000)),
        ..event("http.post", None)
    };
    store.append_audit(&long).await.expect("append");
    let stored = store
        .list_audit(&AuditFilter {
            action: Some("http.post".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(
        stored[0].target.len() <= tenancy::audit::MAX_TARGET_BYTES,
        "{}",
        stored[0].target.len()
    );
    assert!(stored[0].target.starts_with("/v1/xxx"));
    let recent = AuditFilter {
        since: Some(Utc::now() - Duration::hours(1)),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&recent).await.expect("list").len(), 4);

    let raw = crate::raw_execute(&db, "UPDATE audit_events SET actor = 'mallory'").await;
    assert!(
        raw.is_err_and(|e| e.contains("append-only")),
        "UPDATE is refused by the database"
    );
    let raw = crate::raw_execute(&db, "DELETE FROM audit_events").await;
    assert!(
        raw.is_err_and(|e| e.contains("append-only")),
        "DELETE is refused by the database"
    );
    assert_eq!(
        store
            .list_audit(&AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list")
            .len(),
        5
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(audit_filters_paginates_and_is_append_only);

/// Appends from concurrent requests share transactions (group commit): each is answered once
/// durable, and every one is stored exactly once.
async fn concurrent_audit_appends_each_land_once(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let events: Vec<AuditEvent> = (0..300)
        .map(|i| AuditEvent {
            target: format!("credentials {i}"),
            ..event("credentials.issue", Some("acme"))
        })
        .collect();
    let tasks: Vec<_> = events
        .iter()
        .cloned()
        .map(|e| {
            let store = store.clone();
            tokio::spawn(async move { store.append_audit(&e).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("append");
    }
    let mut stored = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_audit(&AuditFilter {
                action: Some("credentials.issue".into()),
                before,
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        stored.extend(page);
    }
    let mut expected = events;
    expected.sort_by_key(|e| e.id);
    stored.sort_by_key(|e| e.id);
    assert_eq!(stored, expected, "every event, every field, once");
    store.close().await;
    db.drop_database().await;
}
both_backends!(concurrent_audit_appends_each_land_once);

async fn provisioning_state_round_trips(backend: Backend) {
    use tenancy::role::Zone;
    use tenancy::store::BucketRecord;
    use tenancy::zone::{StorageClass, Transition, ZonePolicy};
    let (store, db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant("acme", Some(2)), &event("tenant.create", Some("acme")))
        .await
        .expect("tenant");
    store
        .insert_tenant(&tenant("solo", None), &event("tenant.create", Some("solo")))
        .await
        .expect("tenant");
    assert!(
        store
            .provisioning_steps(&id("acme"))
            .await
            .expect("steps")
            .is_empty()
    );
    store
        .record_step(&id("acme"), "bucket", "created")
        .await
        .expect("step");
    store
        .record_step(&id("acme"), "bucket", "again")
        .await
        .expect("idempotent");
    store
        .record_step(&id("acme"), "hardening", "done")
        .await
        .expect("step");
    assert_eq!(
        store.provisioning_steps(&id("acme")).await.expect("steps"),
        ["bucket", "hardening"]
    );

    store
        .set_tenant_status(&id("acme"), TenantStatus::Failed, Some("step iam failed"))
        .await
        .expect("status");
    let failed = store.get_tenant(&id("acme")).await.expect("get").expect("exists");
    assert_eq!(
        (failed.status, failed.status_reason.as_deref()),
        (TenantStatus::Failed, Some("step iam failed"))
    );
    assert_eq!(
        store
            .tenants_with_status(TenantStatus::Failed)
            .await
            .expect("list"),
        vec![id("acme")]
    );

    let policy = ZonePolicy {
        retention_days: 400,
        transitions: vec![Transition {
            after_days: 30,
            storage_class: StorageClass::GlacierIr,
        }],
    };
    store
        .put_zone_policy(
            &id("acme"),
            Zone::Silver,
            &policy,
            &event("zone.update", Some("acme")),
            None,
        )
        .await
        .expect("put");
    let changed = ZonePolicy {
        retention_days: 500,
        ..policy.clone()
    };
    store
        .put_zone_policy(
            &id("acme"),
            Zone::Silver,
            &changed,
            &event("zone.update", Some("acme")),
            None,
        )
        .await
        .expect("put");
    assert_eq!(
        store.zone_policies(&id("acme")).await.expect("get"),
        vec![(Zone::Silver, changed.clone())]
    );
    assert_eq!(
        store.shard_policies(2).await.expect("shard"),
        vec![(id("acme"), Zone::Silver, changed)]
    );
    assert!(store.shard_policies(0).await.expect("shard").is_empty());

    let bucket = BucketRecord {
        name: "lakeplane-shared-0002".into(),
        kind: PlacementKind::Shared,
        shard: Some(2),
        tenant: None,
        desired_lifecycle: Some("{}".into()),
        applied_lifecycle: None,
        lifecycle_enforced: false,
        created_at: tenancy::now(),
    };
    store.upsert_bucket(&bucket).await.expect("insert");
    let updated = BucketRecord {
        desired_lifecycle: Some("{\"Rules\":[]}".into()),
        ..bucket.clone()
    };
    store.upsert_bucket(&updated).await.expect("update");
    assert_eq!(
        store.get_bucket(&bucket.name).await.expect("get"),
        Some(updated.clone())
    );
    assert_eq!(store.list_buckets().await.expect("list"), vec![updated]);
    store.delete_bucket_record(&bucket.name).await.expect("delete");
    assert!(store.list_buckets().await.expect("list").is_empty());

    store
        .delete_tenant(
            &id("acme"),
            Utc::now(),
            Utc::now(),
            &event("tenant.delete", Some("acme")),
        )
        .await
        .expect("delete");
    assert!(
        store.zone_policies(&id("acme")).await.expect("get").is_empty(),
        "policies go with the tenant"
    );
    assert!(
        store
            .provisioning_steps(&id("acme"))
            .await
            .expect("get")
            .is_empty()
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(provisioning_state_round_trips);

fn actions_of(events: &[AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.action.clone()).collect()
}

/// A placement migration's life in the store: started (tenant `migrating`, one at a time),
/// switched (new placement, `ready`, cleanup phase), finished (forgotten).
async fn placement_migration_starts_switches_and_finishes(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let mut acme = tenant("acme", Some(3));
    acme.status = TenantStatus::Ready;
    store
        .insert_tenant(&acme, &event("tenant.create", Some("acme")))
        .await
        .expect("insert");
    let to = Placement {
        kind: PlacementKind::Dedicated,
        shard: None,
        reason: "top 10% by 30-day volume".into(),
    };
    let started_at = tenancy::now();
    let record = tenancy::store::MigrationRecord {
        tenant: acme.id.clone(),
        from: Placement {
            reason: String::new(),
            ..acme.placement.clone()
        },
        to: to.clone(),
        phase: tenancy::store::MigrationPhase::Copying,
        cleanup_after: None,
        started_at,
    };
    store
        .start_migration(&record, &event("tenant.migrate", Some("acme")))
        .await
        .expect("start");
    assert_eq!(store.migrations().await.expect("list"), vec![record.clone()]);
    let migrating = store.get_tenant(&acme.id).await.expect("get").expect("present");
    assert_eq!(migrating.status, TenantStatus::Migrating);
    assert_eq!(
        migrating.status_reason.as_deref(),
        Some("moving to dedicated storage")
    );
    assert_eq!(
        migrating.placement, acme.placement,
        "placement unchanged while copying"
    );

    let second = store
        .start_migration(&record, &event("tenant.migrate", Some("acme")))
        .await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    let audited = store
        .list_audit(&AuditFilter {
            tenant: Some(acme.id.clone()),
            action: Some("tenant.migrate".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        actions_of(&audited),
        ["tenant.migrate"],
        "the refused start left no event"
    );

    let before_switch = tenancy::now();
    let cleanup_after = before_switch + Duration::hours(1);
    store
        .switch_placement(&acme.id, &to, cleanup_after)
        .await
        .expect("switch");
    let switched = store.get_tenant(&acme.id).await.expect("get").expect("present");
    assert_eq!(switched.placement, to);
    assert_eq!(switched.status, TenantStatus::Ready);
    assert_eq!(switched.status_reason, None);
    assert!(
        switched.updated_at >= before_switch && switched.updated_at <= tenancy::now(),
        "updated_at is the switch time, not the cleanup time: {}",
        switched.updated_at
    );
    let cleanup = store.migrations().await.expect("list");
    assert_eq!(cleanup.len(), 1);
    assert_eq!(cleanup[0].phase, tenancy::store::MigrationPhase::Cleanup);
    assert_eq!(cleanup[0].cleanup_after, Some(cleanup_after));
    assert_eq!(cleanup[0].to, to);

    store.finish_migration(&acme.id).await.expect("finish");
    assert!(store.migrations().await.expect("list").is_empty());
    assert_eq!(
        store.get_tenant(&acme.id).await.expect("get"),
        Some(switched),
        "finishing touches only the migration"
    );
    // A new migration may start once the last one is finished.
    store
        .start_migration(&record, &event("tenant.migrate", Some("acme")))
        .await
        .expect("start again");
    store.close().await;
    db.drop_database().await;
}
both_backends!(placement_migration_starts_switches_and_finishes);

/// `revoke_any_token` reaches tokens of any tenant and platform tokens (no tenant), keeps
/// the first revocation time, and answers `None` for an unknown id.
async fn any_token_is_revoked_once_whatever_its_tenant(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let tenant_token = token("acme", Duration::hours(1));
    let mut platform_token = token("acme", Duration::hours(1));
    platform_token.tenant = None;
    platform_token.role = Role::PlatformAdmin;
    for t in [&tenant_token, &platform_token] {
        store
            .insert_token(t, None, &event("token.issue", None))
            .await
            .expect("insert");
    }
    let first = tenancy::now();
    for t in [&tenant_token, &platform_token] {
        let revoked = store
            .revoke_any_token(t.id, first, &event("token.revoke", None))
            .await
            .expect("revoke")
            .expect("found");
        assert_eq!(revoked.id, t.id);
        assert_eq!(revoked.tenant, t.tenant);
        assert_eq!(revoked.revoked_at, Some(first));
    }
    let again = store
        .revoke_any_token(
            platform_token.id,
            first + Duration::minutes(5),
            &event("token.revoke", None),
        )
        .await
        .expect("revoke again")
        .expect("found");
    assert_eq!(again.revoked_at, Some(first), "the first revocation time stays");
    let mut revoked = ids(store
        .revoked_tokens(first - Duration::minutes(1), None)
        .await
        .expect("revoked ids"));
    revoked.sort();
    let since = ids(store
        .revoked_tokens(first - Duration::minutes(1), Some(first + Duration::seconds(1)))
        .await
        .expect("revoked since"));
    assert!(
        since.is_empty(),
        "an incremental reload skips older revocations: {since:?}"
    );
    let mut expected = vec![tenant_token.id, platform_token.id];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(
        store
            .revoke_any_token(Uuid::now_v7(), first, &event("token.revoke", None))
            .await
            .expect("unknown"),
        None
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(any_token_is_revoked_once_whatever_its_tenant);

/// Buckets page by name: bytewise order, the cursor excludes what was seen, the last page is
/// short.
async fn buckets_page_by_name(backend: Backend) {
    use tenancy::store::BucketRecord;
    let (store, db) = crate::migrated(backend).await;
    let names = ["lp-b", "lp-a-z", "lp-shared-0001", "lp-shared-0000", "lp-ab"];
    for (i, name) in names.iter().enumerate() {
        let shared = name.contains("shared");
        store
            .upsert_bucket(&BucketRecord {
                name: (*name).to_owned(),
                kind: if shared {
                    PlacementKind::Shared
                } else {
                    PlacementKind::Dedicated
                },
                shard: shared.then_some(u32::try_from(i).expect("small")),
                tenant: None,
                desired_lifecycle: None,
                applied_lifecycle: None,
                lifecycle_enforced: false,
                created_at: tenancy::now(),
            })
            .await
            .expect("insert");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_buckets_page(after.as_deref(), 2).await.expect("page");
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|b| b.name.clone()));
        if page.len() < 2 {
            break;
        }
        after = page.last().map(|b| b.name.clone());
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every bucket once, '-' before letters");
    assert_eq!(seen[0], "lp-a-z");
    store.close().await;
    db.drop_database().await;
}
both_backends!(buckets_page_by_name);

/// The revocation list reads every revoked token once, then only what was revoked since (with
/// a short overlap), so a reload stays small however long the list grows; expired tokens
/// leave it.
async fn the_revocation_list_reloads_incrementally(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let long_ago = tenancy::now() - Duration::minutes(10);
    let mut old = Vec::new();
    for _ in 0..300 {
        let t = TokenRecord {
            tenant: None,
            revoked_at: Some(long_ago),
            groups: Vec::new(),
            ..token("acme", Duration::hours(1))
        };
        store
            .insert_token(&t, None, &event("token.issue", None))
            .await
            .expect("insert");
        old.push(t.id);
    }
    let list = tenancy::token::RevocationList::new(
        store.clone(),
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(5),
    );
    assert!(list.is_revoked(old[0]).await.expect("read"));
    assert_eq!(
        list.last_reload_rows().await,
        300,
        "the first load reads them all"
    );

    let fresh = TokenRecord {
        tenant: None,
        ..token("acme", Duration::hours(1))
    };
    store
        .insert_token(&fresh, None, &event("token.issue", None))
        .await
        .expect("insert");
    assert!(!list.is_revoked(fresh.id).await.expect("read"));
    assert_eq!(list.last_reload_rows().await, 0, "nothing revoked since");
    store
        .revoke_any_token(fresh.id, tenancy::now(), &event("token.revoke", None))
        .await
        .expect("revoke")
        .expect("found");
    assert!(
        list.is_revoked(fresh.id).await.expect("read"),
        "seen by the next reload"
    );
    assert_eq!(
        list.last_reload_rows().await,
        1,
        "only the new revocation is read"
    );
    assert!(
        list.is_revoked(old[299]).await.expect("read"),
        "older ones are kept"
    );
    assert_eq!(list.len().await, 301);

    // A revocation whose transaction committed late: stamped 30 s before the previous reload
    // started, written after it. It lies inside the overlap, so the next reload still reads
    // it; one stamped before the overlap waits for the next full reload.
    let late = TokenRecord {
        tenant: None,
        ..token("acme", Duration::hours(1))
    };
    store
        .insert_token(&late, None, &event("token.issue", None))
        .await
        .expect("insert");
    assert!(!list.is_revoked(late.id).await.expect("read"));
    store
        .revoke_any_token(
            late.id,
            tenancy::now() - Duration::seconds(30),
            &event("token.revoke", None),
        )
        .await
        .expect("revoke")
        .expect("found");
    assert!(
        list.is_revoked(late.id).await.expect("read"),
        "a revocation stamped inside the overlap is seen by the next incremental reload"
    );
    assert!(
        list.last_reload_rows().await < 10,
        "still an incremental reload: {}",
        list.last_reload_rows().await
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(the_revocation_list_reloads_incrementally);

/// A deleted tenant's id is reserved until every token and credential that could name it has
/// expired; re-created after that, the id's new tenant sees none of its predecessor's tokens
/// or audit events, which stay in the store (the log is append-only).
async fn a_deleted_tenants_id_is_reserved_then_starts_clean(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant("acme", Some(0)), &event("tenant.create", Some("acme")))
        .await
        .expect("tenant");
    let old_token = token("acme", Duration::hours(1));
    store
        .insert_token(&old_token, None, &event("token.create", Some("acme")))
        .await
        .expect("token");
    store
        .append_audit(&AuditEvent {
            actor: "old-admin".into(),
            ..event("table.create", Some("acme"))
        })
        .await
        .expect("audit");
    let deleted_at = Utc::now();
    let reusable_at = deleted_at + Duration::days(31);
    store
        .delete_tenant(
            &id("acme"),
            deleted_at,
            reusable_at,
            &event("tenant.delete", Some("acme")),
        )
        .await
        .expect("delete")
        .expect("deleted");

    let refused = store
        .insert_tenant(&tenant("acme", Some(0)), &event("tenant.create", Some("acme")))
        .await
        .expect_err("the id is reserved");
    assert!(
        matches!(&refused, StoreError::Reserved(why) if why.contains("reserved until")),
        "{refused:?}"
    );
    assert_eq!(
        store.get_tenant(&id("acme")).await.expect("get"),
        None,
        "nothing stored"
    );

    // Once the reservation has passed (a tenant created after it), the id is free again.
    let successor = Tenant {
        created_at: reusable_at + Duration::seconds(1),
        ..tenant("acme", Some(0))
    };
    store
        .insert_tenant(&successor, &event("tenant.create", Some("acme")))
        .await
        .expect("re-created");
    let new_token = TokenRecord {
        issued_at: Utc::now() + Duration::seconds(1),
        ..token("acme", Duration::hours(2))
    };
    store
        .insert_token(&new_token, None, &event("token.create", Some("acme")))
        .await
        .expect("token");
    let tokens = store.list_tokens(&id("acme"), None, 100).await.expect("list");
    assert_eq!(
        tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![new_token.id],
        "the predecessor's token is not listed"
    );
    let log = store
        .list_audit(&AuditFilter {
            tenant: Some(id("acme")),
            limit: 100,
            current_tenant_only: true,
            ..Default::default()
        })
        .await
        .expect("log");
    assert!(
        log.iter().all(|e| e.actor != "old-admin" && e.at > deleted_at),
        "the predecessor's events are not the new tenant's: {log:#?}"
    );
    assert!(!log.is_empty(), "the new tenant's own events are");
    let everything = store
        .list_audit(&AuditFilter {
            tenant: Some(id("acme")),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("log");
    assert!(
        everything.iter().any(|e| e.actor == "old-admin"),
        "they stay in the append-only log, for platform-admins"
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(a_deleted_tenants_id_is_reserved_then_starts_clean);

/// The write fence: an intent taken while the tenant is ready reads it ready and stays live
/// until it ends; once a migration marked the tenant migrating, a new intent reads that; an
/// expired intent no longer counts; a gone tenant gives no intent.
async fn write_intents_meet_the_migration_fence(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let mut acme = tenant("acme", Some(0));
    acme.status = TenantStatus::Ready;
    store
        .insert_tenant(&acme, &event("tenant.create", Some("acme")))
        .await
        .expect("insert");
    let soon = tenancy::now() + Duration::seconds(60);
    let first = Uuid::now_v7();
    let seen = store
        .begin_write(&acme.id, "test", first, soon)
        .await
        .expect("begin")
        .expect("tenant");
    assert_eq!(seen.status, TenantStatus::Ready);
    assert_eq!(
        store.live_writes(&acme.id, tenancy::now()).await.expect("count"),
        1
    );
    let record = tenancy::store::MigrationRecord {
        tenant: acme.id.clone(),
        from: acme.placement.clone(),
        to: Placement {
            kind: PlacementKind::Dedicated,
            shard: None,
            reason: "test".into(),
        },
        phase: tenancy::store::MigrationPhase::Copying,
        cleanup_after: None,
        started_at: tenancy::now(),
    };
    store
        .start_migration(&record, &event("tenant.migrate", Some("acme")))
        .await
        .expect("start");
    let late = Uuid::now_v7();
    let seen = store
        .begin_write(&acme.id, "test", late, soon)
        .await
        .expect("begin")
        .expect("tenant");
    assert_eq!(seen.status, TenantStatus::Migrating, "the fence is seen");
    store.end_write(late).await.expect("end");
    assert_eq!(
        store.live_writes(&acme.id, tenancy::now()).await.expect("count"),
        1,
        "the commit under way before the fence still holds it"
    );
    store.end_write(first).await.expect("end");
    assert_eq!(
        store.live_writes(&acme.id, tenancy::now()).await.expect("count"),
        0
    );
    let expired = Uuid::now_v7();
    store
        .begin_write(
            &acme.id,
            "dead writer",
            expired,
            tenancy::now() - Duration::seconds(1),
        )
        .await
        .expect("begin");
    assert_eq!(
        store.live_writes(&acme.id, tenancy::now()).await.expect("count"),
        0,
        "an expired intent holds nothing back"
    );
    let gone = TenantId::parse("gone").expect("id");
    assert!(
        store
            .begin_write(&gone, "test", Uuid::now_v7(), soon)
            .await
            .expect("begin")
            .is_none()
    );
    assert_eq!(store.live_writes(&gone, tenancy::now()).await.expect("count"), 0);
    store.close().await;
    db.drop_database().await;
}
both_backends!(write_intents_meet_the_migration_fence);

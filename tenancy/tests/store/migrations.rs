use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend, PoolSettings, latest_known_version};

use tenancy::both_backends;

async fn first_migration_applies_everything_then_nothing(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    assert_eq!(store.schema_version().await.expect("version"), None);

    let first = store.migrate().await.expect("first migrate");
    let latest = latest_known_version(backend);
    assert!(latest.is_some());
    assert_eq!(first.current, latest);
    assert_eq!(first.applied.last().copied(), latest);

    let second = store.migrate().await.expect("second migrate");
    assert!(second.applied.is_empty(), "nothing left to apply: {second:?}");
    assert_eq!(store.schema_version().await.expect("version"), latest);
    store.close().await;
    db.drop_database().await;
}
both_backends!(first_migration_applies_everything_then_nothing);

/// Simulates replicas starting at once: separate pools on one database, migrating together.
async fn concurrent_migrations_apply_each_version_once(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            store::connect(&db.url, &PoolSettings::default())
                .await
                .expect("connect"),
        );
    }
    let runs = stores.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move { s.migrate().await })
    });
    let mut applied_total = Vec::new();
    for run in runs {
        let report = run
            .await
            .expect("join")
            .expect("every concurrent migrate succeeds");
        assert_eq!(report.current, latest_known_version(backend));
        applied_total.extend(report.applied);
    }
    applied_total.sort_unstable();
    let expected: Vec<i64> = (1..=latest_known_version(backend).expect("has migrations")).collect();
    assert_eq!(
        applied_total, expected,
        "each version applied by exactly one process"
    );
    for s in &stores {
        s.close().await;
    }
    db.drop_database().await;
}
both_backends!(concurrent_migrations_apply_each_version_once);

async fn ping_and_pool_stats(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    store.ping().await.expect("ping");
    let stats = store.pool_stats();
    assert_eq!(stats.max, PoolSettings::default().max_connections);
    assert!(stats.open >= 1 && stats.idle <= stats.open, "{stats:?}");
    store.close().await;
    assert!(store.ping().await.expect_err("closed pool").is_unavailable());
    db.drop_database().await;
}
both_backends!(ping_and_pool_stats);

/// Holds the migration lock the way a second process would.
enum LockHolder {
    File(std::fs::File),
    Session(sqlx::PgConnection),
}

async fn take_migration_lock(db: &TestDatabase) -> LockHolder {
    match db.url.backend() {
        Backend::Sqlite => {
            let path = format!(
                "{}{}",
                db.url.expose().trim_start_matches("sqlite://"),
                store::SQLITE_MIGRATION_LOCK_SUFFIX
            );
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .expect("open");
            file.lock().expect("lock");
            LockHolder::File(file)
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(db.url.expose())
                .await
                .expect("connect");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(store::MIGRATION_LOCK_KEY)
                .execute(&mut conn)
                .await
                .expect("lock");
            LockHolder::Session(conn)
        }
    }
}

/// The contract that makes concurrent starts safe: a migration waits while another process
/// holds the lock, and proceeds as soon as it is released.
async fn migrate_waits_while_another_process_migrates(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    let holder = take_migration_lock(&db).await;
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.migrate().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "migrate must wait for the lock holder");
    assert_eq!(
        store.schema_version().await.expect("version"),
        None,
        "nothing applied meanwhile"
    );
    match holder {
        LockHolder::File(file) => drop(file),
        LockHolder::Session(conn) => {
            use sqlx::Connection;
            conn.close().await.expect("close");
        }
    }
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("proceeds once the lock is free")
        .expect("join")
        .expect("migrate");
    assert_eq!(report.current, latest_known_version(backend));
    store.close().await;
    db.drop_database().await;
}
both_backends!(migrate_waits_while_another_process_migrates);

/// A database created by an older release (schema 0004, before tables existed) with rows in
/// it upgrades in place: every row reads back through the store, ids sort bytewise, and on
/// PostgreSQL the old columns now have the types and collation of the later ones.
async fn upgrade_from_0004_keeps_rows_and_aligns_columns(backend: Backend) {
    use tenancy::placement::PlacementKind;
    use tenancy::tenant::TenantId;

    let db = TestDatabase::new(backend).await;
    store::testing::migrate_up_to(&db.url, 4)
        .await
        .expect("migrate to 0004");
    // 2026-01-01T00:00:00Z, as each backend stored it then.
    let at = match backend {
        Backend::Sqlite => "1767225600000000",
        Backend::Postgres => "'2026-01-01T00:00:00Z'",
    };
    let token_id = uuid::Uuid::now_v7();
    let audit_id = uuid::Uuid::now_v7();
    let rows = [
        format!(
            "INSERT INTO tenants (id, display_name, tier, isolation, status, placement_kind, placement_shard, \
             placement_reason, quota_max_tables, quota_max_streams, quota_max_storage_gb, \
             quota_ingest_events_per_sec, volume_30d_bytes, created_at, updated_at, status_reason) VALUES \
             ('abc', 'ABC', 'standard', 'auto', 'migrating', 'shared', 2, 'fill', 10, 5, 100, 1000, 4096, {at}, {at}, 'moving'), \
             ('ab-z', 'AB-Z', 'enterprise', 'auto', 'ready', 'dedicated', NULL, 'tier', 50, 20, 500, 5000, 0, {at}, {at}, NULL)"
        ),
        format!(
            "INSERT INTO api_tokens (id, tenant_id, subject, role, issued_by, issued_at, expires_at, revoked_at) \
             VALUES ('{token_id}', 'abc', 'alice', 'engineer', 'admin', {at}, {at}, NULL)"
        ),
        format!(
            "INSERT INTO audit_events (id, at, actor, role, tenant_id, action, target, outcome, request_id, source) \
             VALUES ('{audit_id}', {at}, 'admin', 'platform-admin', 'abc', 'tenant.create', '/v1/tenants', 'success', NULL, NULL)"
        ),
        format!(
            "INSERT INTO provisioning_steps (tenant_id, step, done_at, detail) VALUES ('abc', 'bucket', {at}, 'shard 2')"
        ),
        format!(
            "INSERT INTO zone_policies (tenant_id, zone, retention_days, transitions, updated_at) \
             VALUES ('abc', 'bronze', 30, '[]', {at})"
        ),
        format!(
            "INSERT INTO buckets (name, kind, shard, tenant_id, desired_lifecycle, applied_lifecycle, lifecycle_enforced, created_at) \
             VALUES ('lake-shard-002', 'shared', 2, NULL, '{{}}', NULL, TRUE, {at})"
        ),
        format!(
            "INSERT INTO tenant_migrations (tenant_id, from_kind, from_shard, to_kind, to_shard, to_reason, phase, cleanup_after, started_at) \
             VALUES ('abc', 'shared', 2, 'dedicated', NULL, 'top 10%', 'copying', NULL, {at})"
        ),
    ];
    for sql in &rows {
        crate::raw_execute(&db, sql).await.expect("row of the old schema");
    }

    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    let report = store.migrate().await.expect("upgrade");
    let latest = latest_known_version(backend).expect("has migrations");
    assert_eq!(report.applied, (5..=latest).collect::<Vec<_>>());

    let stamp = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .to_utc();
    let ab = TenantId::parse("abc").expect("id");
    let tenant = store.get_tenant(&ab).await.expect("read").expect("kept");
    assert_eq!(tenant.placement.kind, PlacementKind::Shared);
    assert_eq!(tenant.placement.shard, Some(2));
    assert_eq!(tenant.quotas.ingest_events_per_sec, 1000);
    assert_eq!(tenant.volume_30d_bytes, 4096);
    assert_eq!(tenant.created_at, stamp);
    assert_eq!(tenant.status_reason.as_deref(), Some("moving"));
    let ids: Vec<String> = store
        .list_tenants(None, 10, None, None)
        .await
        .expect("list")
        .iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(ids, ["ab-z", "abc"], "bytewise order: '-' sorts before 'c'");
    let after: Vec<String> = store
        .list_tenants(Some("ab-z"), 10, None, None)
        .await
        .expect("page")
        .iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(after, ["abc"]);
    let tokens = store.list_tokens(&ab, None, 10).await.expect("tokens");
    assert_eq!(tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [token_id]);
    assert_eq!(tokens[0].issued_at, stamp);
    let audit = store
        .list_audit(&tenancy::audit::AuditFilter {
            tenant: Some(ab.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(audit.iter().map(|e| e.id).collect::<Vec<_>>(), [audit_id]);
    assert_eq!(store.provisioning_steps(&ab).await.expect("steps"), ["bucket"]);
    let policies = store.zone_policies(&ab).await.expect("policies");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].1.retention_days, 30);
    assert_eq!(store.shard_policies(2).await.expect("shard policies").len(), 1);
    let buckets = store.list_buckets().await.expect("buckets");
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0].shard, Some(2));
    assert!(buckets[0].lifecycle_enforced);
    let migrations = store.migrations().await.expect("migrations");
    assert_eq!(migrations.len(), 1);
    assert_eq!(migrations[0].from.shard, Some(2));
    assert_eq!(migrations[0].started_at, stamp);

    if backend == Backend::Postgres {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url.expose())
            .await
            .expect("connect");
        let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text, collation_name::text \
             FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name IN ('tenants', 'api_tokens', 'audit_events', 'provisioning_steps', \
             'zone_policies', 'buckets', 'tenant_migrations', 'lake_tables')",
        )
        .fetch_all(&mut conn)
        .await
        .expect("columns");
        let find = |table: &str, column: &str| {
            columns
                .iter()
                .find(|c| c.0 == table && c.1 == column)
                .unwrap_or_else(|| panic!("{table}.{column} exists"))
                .clone()
        };
        for (table, column) in [
            ("tenants", "placement_shard"),
            ("zone_policies", "retention_days"),
            ("buckets", "shard"),
            ("tenant_migrations", "from_shard"),
            ("tenant_migrations", "to_shard"),
        ] {
            assert_eq!(find(table, column).2, "bigint", "{table}.{column}");
        }
        let integers: Vec<_> = columns.iter().filter(|c| c.2 == "integer").collect();
        assert!(integers.is_empty(), "no INTEGER columns remain: {integers:?}");
        for (table, column) in [
            ("tenants", "id"),
            ("api_tokens", "tenant_id"),
            ("audit_events", "tenant_id"),
            ("audit_events", "action"),
            ("provisioning_steps", "tenant_id"),
            ("provisioning_steps", "step"),
            ("zone_policies", "tenant_id"),
            ("zone_policies", "zone"),
            ("buckets", "name"),
            ("buckets", "tenant_id"),
            ("tenant_migrations", "tenant_id"),
            ("lake_tables", "zone"),
        ] {
            assert_eq!(
                find(table, column).3.as_deref(),
                Some("C"),
                "{table}.{column} collation"
            );
        }
    }
    store.close().await;
    db.drop_database().await;
}
both_backends!(upgrade_from_0004_keeps_rows_and_aligns_columns);

/// A database of the release before grants (schema 0022) with tenants in it upgrades to
/// grants that reproduce the role table exactly: every role reads and writes the zones it did,
/// and nothing more.
async fn upgrade_to_grants_keeps_every_roles_access(backend: Backend) {
    use std::collections::BTreeSet;

    use tenancy::grants::{Identity, Privilege, TenantGrants, role_defaults};
    use tenancy::role::{Access, Role, Zone};
    use tenancy::tenant::TenantId;

    let db = TestDatabase::new(backend).await;
    store::testing::migrate_up_to(&db.url, 22)
        .await
        .expect("migrate to 0022");
    let at = match backend {
        Backend::Sqlite => "1767225600000000",
        Backend::Postgres => "'2026-01-01T00:00:00Z'",
    };
    let insert = format!(
        "INSERT INTO tenants (id, display_name, tier, isolation, status, placement_kind, placement_shard, \
         placement_reason, quota_max_tables, quota_max_streams, quota_max_storage_gb, \
         quota_ingest_events_per_sec, volume_30d_bytes, created_at, updated_at, status_reason, \
         erasure_deadline_days) VALUES \
         ('acme', 'Acme', 'standard', 'auto', 'ready', 'shared', 0, 'fill', 10, 5, 100, 1000, 0, {at}, {at}, NULL, 30), \
         ('beta', 'Beta', 'enterprise', 'auto', 'ready', 'dedicated', NULL, 'tier', 10, 5, 100, 1000, 0, {at}, {at}, NULL, 30)"
    );
    crate::raw_execute(&db, &insert)
        .await
        .expect("tenants of the old schema");
    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    let report = store.migrate().await.expect("upgrade");
    assert!(report.applied.contains(&23), "{report:?}");

    let expected: BTreeSet<_> = role_defaults().into_iter().collect();
    for id in ["acme", "beta"] {
        let grants = store
            .list_grants(&TenantId::parse(id).expect("id"))
            .await
            .expect("grants");
        assert_eq!(grants.iter().cloned().collect::<BTreeSet<_>>(), expected, "{id}");
        let grants = TenantGrants::new(grants);
        for role in Role::TENANT_ROLES {
            let who = Identity {
                subject: "someone",
                role,
                groups: &[],
            };
            for zone in Zone::ALL {
                let access = role.zone_access(zone);
                assert_eq!(
                    grants.sees_table(&who, zone, "any"),
                    access >= Access::Read,
                    "{id}: {role} reads {zone:?}"
                );
                assert_eq!(
                    grants.check_table(&who, zone, "any", Privilege::Modify).is_ok(),
                    access == Access::ReadWrite,
                    "{id}: {role} writes {zone:?}"
                );
            }
        }
    }
    store.close().await;
    db.drop_database().await;
}
both_backends!(upgrade_to_grants_keeps_every_roles_access);

//! Workers' observed state on both backends: round trip, replacement, filters and pages,
//! heartbeats owned by one process, deletion.

use tenancy::both_backends;
use tenancy::maintenance::Operation;
use tenancy::store::{Backend, WorkerRecord};
use tenancy::tenant::TenantId;
use tenancy::worker::{WorkerKind, WorkerSpec, WorkerState, WorkerTarget};

fn record(tenant: &str, kind: WorkerKind, n: u128, state: WorkerState) -> WorkerRecord {
    let spec = WorkerSpec {
        kind,
        tenant: TenantId::parse(tenant).expect("id"),
        target: WorkerTarget::Table(uuid::Uuid::from_u128(n)),
        operations: vec![Operation::Compact, Operation::Checkpoint],
        run: Some(uuid::Uuid::from_u128(n + 100)),
    };
    WorkerRecord {
        state,
        ..WorkerRecord::pending(spec, tenancy::now())
    }
}

async fn workers_round_trip_filter_and_heartbeat(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let mut compact = record("acme", WorkerKind::Compact, 1, WorkerState::Pending);
    let id = compact.spec.id();
    store.put_worker(&compact).await.expect("put");
    assert_eq!(
        store.get_worker(&id).await.expect("get"),
        Some(compact.clone()),
        "round trip"
    );
    compact.state = WorkerState::Failed;
    compact.failures = 3;
    compact.restarts = 2;
    compact.last_error = Some("broker unreachable".into());
    compact.failed_at = Some(tenancy::now());
    store.put_worker(&compact).await.expect("replace");
    assert_eq!(store.get_worker(&id).await.expect("get"), Some(compact.clone()));
    for (tenant, n, state) in [
        ("acme", 2, WorkerState::Running),
        ("globex", 3, WorkerState::Running),
        ("globex", 4, WorkerState::Failed),
    ] {
        store
            .put_worker(&record(tenant, WorkerKind::Retention, n, state))
            .await
            .expect("put");
    }
    let acme = TenantId::parse("acme").expect("id");
    assert_eq!(
        store
            .list_workers(Some(&acme), None, None, 10)
            .await
            .expect("list")
            .len(),
        2
    );
    let failed = store
        .list_workers(None, Some(WorkerState::Failed), None, 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|w| w.state == WorkerState::Failed));
    let first = store.list_workers(None, None, None, 3).await.expect("page");
    let rest = store
        .list_workers(None, None, Some(&first[2].spec.id()), 10)
        .await
        .expect("page");
    assert_eq!((first.len(), rest.len()), (3, 1), "pages by id");
    assert!(first.windows(2).all(|w| w[0].spec.id() < w[1].spec.id()));

    let at = tenancy::now();
    assert!(
        !store.claim_worker(&id, "process-a", at).await.expect("claim"),
        "a failed worker is not claimable: the reconciler must make it pending first"
    );
    compact.state = WorkerState::Pending;
    compact.owner = None;
    store.put_worker(&compact).await.expect("pending again");
    assert!(
        !store.heartbeat(&id, "process-a", at, None).await.expect("beat"),
        "no heartbeat before the claim"
    );
    assert!(store.claim_worker(&id, "process-a", at).await.expect("claim"));
    assert!(
        !store.claim_worker(&id, "process-b", at).await.expect("claim"),
        "claimed once"
    );
    assert!(
        store
            .heartbeat(&id, "process-a", at, Some(r#"{"lag":{"0":5}}"#))
            .await
            .expect("beat")
    );
    assert!(
        !store.heartbeat(&id, "process-b", at, None).await.expect("beat"),
        "another process does not own it"
    );
    let beat = store.get_worker(&id).await.expect("get").expect("worker");
    assert_eq!(
        (
            beat.state,
            beat.last_heartbeat,
            beat.owner.as_deref(),
            beat.progress.as_deref()
        ),
        (
            WorkerState::Running,
            Some(at),
            Some("process-a"),
            Some(r#"{"lag":{"0":5}}"#)
        )
    );
    assert!(
        store.heartbeat(&id, "process-a", at, None).await.expect("beat"),
        "a heartbeat without news keeps the last progress"
    );
    assert!(
        !store.mark_recovered(&id, "process-b").await.expect("recover"),
        "only the owner"
    );
    assert!(
        !store
            .finish_worker(&id, "process-b", WorkerState::Failed, Some("x"), at)
            .await
            .expect("finish"),
        "only the owner records the end"
    );
    assert!(
        store
            .finish_worker(&id, "process-a", WorkerState::Failed, Some("broker down"), at)
            .await
            .expect("finish")
    );
    let ended = store.get_worker(&id).await.expect("get").expect("worker");
    assert_eq!(
        (
            ended.state,
            ended.failures,
            ended.last_error.as_deref(),
            ended.failed_at,
            ended.progress.as_deref()
        ),
        (
            WorkerState::Failed,
            4,
            Some("broker down"),
            Some(at),
            Some(r#"{"lag":{"0":5}}"#)
        ),
        "a failure counts on top of the three before"
    );
    assert!(
        !store.heartbeat(&id, "process-a", at, None).await.expect("beat"),
        "a finished worker does not heartbeat"
    );
    let mut again = ended.clone();
    again.state = WorkerState::Pending;
    again.owner = None;
    store.put_worker(&again).await.expect("pending");
    assert!(store.claim_worker(&id, "process-c", at).await.expect("claim"));
    assert!(
        store
            .finish_worker(&id, "process-c", WorkerState::Succeeded, None, at)
            .await
            .expect("finish")
    );
    let ok = store.get_worker(&id).await.expect("get").expect("worker");
    assert_eq!(
        (ok.state, ok.failures, ok.last_error),
        (WorkerState::Succeeded, 0, None)
    );
    assert!(store.delete_worker(&id).await.expect("delete"));
    assert!(!store.delete_worker(&id).await.expect("delete"), "gone");
    assert!(
        !store.heartbeat(&id, "process-a", at, None).await.expect("beat"),
        "no heartbeat for a gone worker"
    );
    let globex = TenantId::parse("globex").expect("id");
    let audit = tenancy::audit::AuditEvent::system(
        "tenant.delete",
        "globex",
        Some("globex"),
        tenancy::audit::Outcome::Success,
    );
    let tenant = tenancy::tenant::Tenant {
        id: globex.clone(),
        ..crate::tables::tenant()
    };
    store.insert_tenant(&tenant, &audit).await.expect("tenant");
    let audit = tenancy::audit::AuditEvent {
        id: uuid::Uuid::now_v7(),
        ..audit
    };
    store
        .delete_tenant(&globex, tenancy::now(), tenancy::now(), &audit)
        .await
        .expect("delete tenant");
    assert!(
        store
            .list_workers(Some(&globex), None, None, 10)
            .await
            .expect("list")
            .is_empty(),
        "a tenant's deletion removes its workers"
    );
}
both_backends!(workers_round_trip_filter_and_heartbeat);

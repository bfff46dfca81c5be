//! Pipelines and runs on both backends: round trip, names unique per tenant and counted
//! against the cap, pages by name, changes written only over what was read, a second run
//! request while one waits returns the waiting run, runs newest first, a running run counted
//! by the migration fence while its lease is live, and removal with the pipeline and with the
//! tenant.

use tenancy::both_backends;
use tenancy::pipeline::{PipelineRequest, PipelineState, RunStatus};
use tenancy::store::{Backend, PipelineRecord, PipelineRunRecord, StoreError};

use crate::tables::{audit, tenant};

fn pipeline(name: &str) -> PipelineRecord {
    let spec: PipelineRequest = serde_json::from_value(serde_json::json!({
        "name": name,
        "source": {"zone": "bronze", "table": "clicks"},
        "target": {"zone": "silver", "table": name.replace('-', "_")},
        "expectations": [{"name": "positive", "expr": "amount >= 0", "on_violation": "quarantine"}],
        "trigger": {"type": "interval", "seconds": 60}
    }))
    .expect("shape");
    let now = tenancy::now();
    PipelineRecord {
        id: uuid::Uuid::now_v7(),
        tenant: tenant().id,
        name: tenancy::pipeline::PipelineName::parse(name).expect("name"),
        spec: spec.validate().expect("valid"),
        source_table_id: uuid::Uuid::now_v7(),
        target_table_id: uuid::Uuid::now_v7(),
        state: PipelineState::Active,
        failure: None,
        created_by: "alice".into(),
        owner_role: tenancy::role::Role::Engineer,
        owner_groups: vec!["data".into()],
        created_at: now,
        updated_at: now,
    }
}

async fn pipelines_round_trip_stay_unique_and_go_with_their_tenant(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let id = tenant().id;
    let first = pipeline("clean-clicks");
    let second = pipeline("bots");
    for p in [&first, &second] {
        store
            .insert_pipeline(p, 2, &audit("pipeline.create"))
            .await
            .expect("insert");
    }
    assert_eq!(
        store.get_pipeline(&id, "clean-clicks").await.expect("get"),
        Some(first.clone()),
        "round trip"
    );
    assert_eq!(
        store.get_pipeline_by_id(second.id).await.expect("get"),
        Some(second.clone())
    );
    let other = tenancy::tenant::TenantId::parse("other").expect("id");
    assert_eq!(
        store.get_pipeline(&other, "clean-clicks").await.expect("get"),
        None
    );

    let again = pipeline("clean-clicks");
    assert!(matches!(
        store.insert_pipeline(&again, 10, &audit("pipeline.create")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .insert_pipeline(&pipeline("third"), 2, &audit("pipeline.create"))
            .await,
        Err(StoreError::Quota(_))
    ));
    assert_eq!(
        store.list_pipelines(&id, None, 1).await.expect("page"),
        vec![second.clone()],
        "by name"
    );
    assert_eq!(
        store.list_pipelines(&id, Some("bots"), 10).await.expect("page"),
        vec![first.clone()]
    );

    // Changes land only over the version read.
    let mut paused = first.clone();
    paused.state = PipelineState::Paused;
    paused.updated_at = first.updated_at + chrono::Duration::seconds(1);
    assert!(
        store
            .update_pipeline(&paused, &first, Some(&audit("pipeline.update")))
            .await
            .expect("update")
    );
    let mut failed = first.clone();
    failed.state = PipelineState::Failed;
    failed.failure = Some("stale".into());
    failed.updated_at = first.updated_at + chrono::Duration::seconds(2);
    assert!(
        !store
            .update_pipeline(&failed, &first, None)
            .await
            .expect("update"),
        "written over a state that moved"
    );
    assert_eq!(
        store.get_pipeline(&id, "clean-clicks").await.expect("get"),
        Some(paused.clone())
    );

    assert_eq!(
        store.active_pipelines().await.expect("active"),
        vec![second.clone()],
        "a paused pipeline is not scheduled"
    );

    // Runs: a second request while one waits is the same run.
    let at = tenancy::now();
    let run = PipelineRunRecord::queued(&paused, false, "alice", at);
    assert_eq!(
        store
            .queue_pipeline_run(&run, Some(&audit("pipeline.run")))
            .await
            .expect("queue"),
        Some(run.id)
    );
    let twice = PipelineRunRecord::queued(&paused, false, "bob", at);
    assert_eq!(
        store.queue_pipeline_run(&twice, None).await.expect("queue"),
        Some(run.id),
        "the waiting run answers"
    );
    let refresh = PipelineRunRecord::queued(&paused, true, "bob", at);
    assert_eq!(
        store.queue_pipeline_run(&refresh, None).await.expect("queue"),
        Some(refresh.id),
        "a full refresh is another request"
    );
    assert_eq!(
        store.unfinished_pipeline_runs().await.expect("unfinished"),
        vec![
            (run.tenant.clone(), run.pipeline_id, run.id),
            (refresh.tenant.clone(), refresh.pipeline_id, refresh.id)
        ]
    );
    let started = tenancy::now();
    let mut running = run.clone();
    running.status = RunStatus::Running;
    running.started_at = Some(started);
    running.lease_expires_at = Some(started + chrono::Duration::seconds(10));
    assert!(
        store
            .take_pipeline_run(run.id, "first", started + chrono::Duration::seconds(10), started)
            .await
            .expect("take")
    );
    let later = tenancy::now() + chrono::Duration::seconds(20);
    assert!(
        store
            .renew_pipeline_run(run.id, "first", later)
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew_pipeline_run(run.id, "second", later)
            .await
            .expect("renew"),
        "only the holder renews"
    );
    assert_eq!(
        store
            .get_pipeline_run(paused.id, run.id)
            .await
            .expect("get")
            .and_then(|r| r.lease_expires_at),
        Some(later)
    );
    assert!(
        !store
            .renew_pipeline_run(refresh.id, "first", later)
            .await
            .expect("renew"),
        "a queued run has no lease to renew"
    );
    running.lease_expires_at = Some(later);
    assert!(
        !store
            .take_pipeline_run(run.id, "second", later, tenancy::now())
            .await
            .expect("take"),
        "not taken while the lease is live"
    );
    // The migration fence counts a running run while its lease is live, and not after.
    let tenant_id = tenant().id;
    assert_eq!(
        store.live_writes(&tenant_id, tenancy::now()).await.expect("live"),
        1,
        "a running run holds a migration back"
    );
    assert_eq!(
        store
            .live_writes(&tenant_id, later + chrono::Duration::seconds(1))
            .await
            .expect("live"),
        0,
        "a lapsed lease does not"
    );
    let mut done = running.clone();
    done.status = RunStatus::Succeeded;
    done.source_from = Some(1);
    done.source_to = Some(4);
    done.rows_in = 1_000;
    done.rows_written = 990;
    done.rows_quarantined = 10;
    done.expectations.insert("positive".into(), 10);
    done.target_version = Some(2);
    done.finished_at = Some(tenancy::now());
    done.lease_expires_at = None;
    assert!(
        !store.end_pipeline_run(&done, "second").await.expect("finish"),
        "only the holder records the end"
    );
    // Once the lease lapsed, another attempt takes the run over, and the first one can no
    // longer renew it nor record its end.
    let lapsed = later + chrono::Duration::seconds(1);
    assert!(
        store
            .take_pipeline_run(run.id, "second", lapsed + chrono::Duration::seconds(10), lapsed)
            .await
            .expect("take over")
    );
    assert!(
        !store
            .renew_pipeline_run(run.id, "first", lapsed)
            .await
            .expect("renew")
    );
    assert!(!store.end_pipeline_run(&done, "first").await.expect("finish"));
    done.started_at = Some(lapsed);
    assert!(store.end_pipeline_run(&done, "second").await.expect("finish"));
    assert_eq!(
        store.get_pipeline_run(paused.id, run.id).await.expect("get"),
        Some(done.clone())
    );
    assert_eq!(
        store.live_writes(&tenant_id, tenancy::now()).await.expect("live"),
        0,
        "an ended run holds nothing back"
    );
    assert_eq!(
        store.get_pipeline_run(second.id, run.id).await.expect("get"),
        None,
        "runs answer under their own pipeline only"
    );
    let next = PipelineRunRecord::queued(&paused, false, "alice", tenancy::now());
    assert_eq!(
        store.queue_pipeline_run(&next, None).await.expect("queue"),
        Some(next.id),
        "a new run once the last one left the queue"
    );
    assert_eq!(
        store.list_pipeline_runs(paused.id, None, 2).await.expect("page"),
        vec![next.clone(), refresh.clone()],
        "newest first"
    );
    assert_eq!(
        store
            .list_pipeline_runs(paused.id, Some(refresh.id), 10)
            .await
            .expect("page"),
        vec![done.clone()]
    );

    assert!(
        store
            .delete_pipeline(paused.id, &audit("pipeline.delete"))
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_pipeline(paused.id, &audit("pipeline.delete"))
            .await
            .expect("delete")
    );
    assert_eq!(
        store.get_pipeline_run(paused.id, done.id).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .queue_pipeline_run(&PipelineRunRecord::queued(&paused, false, "a", at), None)
            .await
            .expect("queue"),
        None,
        "no runs for a deleted pipeline"
    );

    let now = tenancy::now();
    store
        .delete_tenant(&id, now, now, &audit("tenant.purge"))
        .await
        .expect("purge");
    assert!(
        store
            .list_pipelines(&id, None, 10)
            .await
            .expect("page")
            .is_empty()
    );
}
both_backends!(pipelines_round_trip_stay_unique_and_go_with_their_tenant);

/// Takes a queued run and records `done` as its end, as a run's attempt does.
async fn end(store: &dyn tenancy::store::MetadataStore, done: &PipelineRunRecord) {
    let now = tenancy::now();
    let until = now + chrono::Duration::seconds(10);
    assert!(
        store
            .take_pipeline_run(done.id, "w", until, now)
            .await
            .expect("take")
    );
    assert!(store.end_pipeline_run(done, "w").await.expect("end"));
}

/// Old finished runs go, the newest `keep` runs and every unfinished run stay, and another
/// pipeline's runs are untouched.
async fn old_finished_runs_are_pruned(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let (mine, other) = (pipeline("clean-clicks"), pipeline("bots"));
    for p in [&mine, &other] {
        store
            .insert_pipeline(p, 10, &audit("pipeline.create"))
            .await
            .expect("insert");
    }
    let mut ids = Vec::new();
    for i in 0..6 {
        let at = tenancy::now();
        let run = PipelineRunRecord::queued(&mine, i == 1, "bob", at);
        store.queue_pipeline_run(&run, None).await.expect("queue");
        // The second run stays queued (unfinished, and old); the others end.
        if i != 1 {
            let mut done = run.clone();
            done.status = if i % 2 == 0 {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            };
            done.finished_at = Some(at);
            end(store.as_ref(), &done).await;
        }
        ids.push(run.id);
    }
    let theirs = PipelineRunRecord::queued(&other, false, "bob", tenancy::now());
    store.queue_pipeline_run(&theirs, None).await.expect("queue");
    let mut finished = theirs.clone();
    finished.status = RunStatus::Succeeded;
    end(store.as_ref(), &finished).await;

    assert_eq!(store.prune_pipeline_runs(mine.id, 3).await.expect("prune"), 2);
    let left: Vec<uuid::Uuid> = store
        .list_pipeline_runs(mine.id, None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    // Newest first: the three newest, then the old unfinished one.
    assert_eq!(left, [ids[5], ids[4], ids[3], ids[1]]);
    assert_eq!(
        store.prune_pipeline_runs(mine.id, 3).await.expect("prune"),
        0,
        "idempotent"
    );
    assert_eq!(
        store
            .list_pipeline_runs(other.id, None, 10)
            .await
            .expect("list")
            .len(),
        1,
        "another pipeline's runs stay"
    );
}
both_backends!(old_finished_runs_are_pruned);

//! Idempotency keys of pushes on both backends: one claim wins, a held key shows its holder,
//! marks only reach attempts that still hold their keys, outcomes are kept, freed keys and
//! expired ones can be claimed again, and a stream's keys go with it.

use chrono::Duration;
use tenancy::both_backends;
use tenancy::store::{Backend, KeyClaim, PushKeyRecord, PushKeyState};
use tenancy::tenant::TenantId;
use uuid::Uuid;

fn attempt(stream_id: Uuid, key: &str, owner: &str) -> PushKeyRecord {
    let now = tenancy::now();
    PushKeyRecord {
        tenant: TenantId::parse("acme").expect("id"),
        stream_id,
        key: key.into(),
        fingerprint: "sha256:aa".into(),
        attempt: Uuid::now_v7(),
        owner: owner.into(),
        state: PushKeyState::Pending,
        mark: None,
        outcome: None,
        created_at: now,
        updated_at: now,
        expires_at: now + Duration::hours(24),
    }
}

fn held(claim: KeyClaim) -> PushKeyRecord {
    match claim {
        KeyClaim::Held(record) => *record,
        KeyClaim::Claimed => panic!("the key was free"),
    }
}

async fn keys_claim_mark_finish_release_expire(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let stream = Uuid::now_v7();
    let now = tenancy::now();
    let first = attempt(stream, "k1", "p1");
    assert_eq!(
        store.claim_push_key(&first, now).await.expect("claim"),
        KeyClaim::Claimed
    );
    // A retry finds the first attempt holding the key, as stored.
    let retry = attempt(stream, "k1", "p2");
    let found = held(store.claim_push_key(&retry, now).await.expect("claim"));
    assert_eq!(
        (found.attempt, found.owner.as_str(), found.state),
        (first.attempt, "p1", PushKeyState::Pending)
    );
    assert_eq!(found.mark, None);
    // Another stream's key of the same name is another key.
    let elsewhere = attempt(Uuid::now_v7(), "k1", "p1");
    assert_eq!(
        store.claim_push_key(&elsewhere, now).await.expect("claim"),
        KeyClaim::Claimed
    );

    // The mark reaches the holder only.
    let marked = store
        .mark_push_keys(
            &[(first.attempt, "{\"n\":1}".into()), (retry.attempt, "{}".into())],
            "app-1",
            7,
            now,
        )
        .await
        .expect("mark");
    assert_eq!(marked, vec![first.attempt]);
    let found = held(store.claim_push_key(&retry, now).await.expect("claim"));
    assert_eq!(found.mark, Some(("app-1".to_owned(), 7)));
    assert_eq!(found.outcome.as_deref(), Some("{\"n\":1}"));

    // A takeover decided on a read from before the mark fails: the attempt marked meanwhile.
    let mut stale = found.clone();
    stale.updated_at -= Duration::seconds(1);
    stale.mark = None;
    assert!(!store.take_over_push_key(&stale, &retry).await.expect("take over"));
    // Taken over from the holder as read: the mark is cleared and the first attempt can no
    // longer mark.
    assert!(store.take_over_push_key(&found, &retry).await.expect("take over"));
    assert!(
        !store.take_over_push_key(&found, &retry).await.expect("take over"),
        "only once"
    );
    let found = held(store.claim_push_key(&first, now).await.expect("claim"));
    assert_eq!(
        (found.attempt, found.mark.clone(), found.outcome.clone()),
        (retry.attempt, None, None)
    );
    assert!(
        store
            .mark_push_keys(&[(first.attempt, "{}".into())], "app-1", 8, now)
            .await
            .expect("mark")
            .is_empty()
    );

    // Done: kept with its outcome, never freed or taken over.
    store
        .finish_push_keys(&[(retry.attempt, "{\"version\":3}".into())], now)
        .await
        .expect("finish");
    store.release_push_keys(&[retry.attempt]).await.expect("release");
    let done = held(store.claim_push_key(&first, now).await.expect("claim"));
    assert_eq!(
        (done.state, done.outcome.as_deref()),
        (PushKeyState::Done, Some("{\"version\":3}"))
    );
    assert!(!store.take_over_push_key(&done, &first).await.expect("take over"));

    // A pending key freed by its attempt is claimed afresh.
    let other = attempt(stream, "k2", "p1");
    assert_eq!(
        store.claim_push_key(&other, now).await.expect("claim"),
        KeyClaim::Claimed
    );
    store.release_push_keys(&[other.attempt]).await.expect("release");
    assert_eq!(
        store
            .claim_push_key(&attempt(stream, "k2", "p3"), now)
            .await
            .expect("claim"),
        KeyClaim::Claimed
    );

    // Past the window: a claim replaces the expired row, and the sweep forgets the rest.
    let later = now + Duration::hours(25);
    let mut fresh = attempt(stream, "k1", "p4");
    fresh.expires_at = later + Duration::hours(24);
    assert_eq!(
        store.claim_push_key(&fresh, later).await.expect("claim"),
        KeyClaim::Claimed
    );
    let forgotten = store.expire_push_keys(later).await.expect("expire");
    assert_eq!(forgotten, 2, "k2 and the other stream's k1");
}
both_backends!(keys_claim_mark_finish_release_expire);

/// Concurrent claims of one key: exactly one wins.
async fn one_claim_wins(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let stream = Uuid::now_v7();
    let mut claims = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        let record = attempt(stream, "race", &format!("p{i}"));
        claims.spawn(async move { store.claim_push_key(&record, tenancy::now()).await });
    }
    let mut won = 0;
    while let Some(claim) = claims.join_next().await {
        if claim.expect("task").expect("claim") == KeyClaim::Claimed {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
both_backends!(one_claim_wins);

//! Streams on both backends: round trip, name conflicts, the quota, pagination, deletion.

use tenancy::both_backends;
use tenancy::store::{Backend, StoreError, StreamRecord};
use tenancy::stream::{StreamRequest, StreamSource};

use crate::tables::{audit, table, tenant};

pub(crate) fn stream(name: &str, table_id: uuid::Uuid, source: serde_json::Value) -> StreamRecord {
    let spec: StreamRequest = serde_json::from_value(serde_json::json!({
        "name": name, "table": {"zone": "bronze", "name": "events"}, "source": source, "on_error": "dlq",
    }))
    .expect("shape");
    let spec = spec.validate().expect("valid");
    StreamRecord {
        id: uuid::Uuid::now_v7(),
        tenant: tenant().id,
        name: spec.name,
        table_id,
        table_name: spec.table.to_string(),
        source: spec.source,
        on_error: spec.on_error,
        created_at: tenancy::now(),
    }
}

async fn streams_quota_pagination_and_delete(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let events = table("bronze", "events");
    store
        .insert_table(&events, 10, &audit("table.create"))
        .await
        .expect("table");
    let kafka = stream(
        "orders",
        events.id,
        serde_json::json!({"type": "kafka", "bootstrap_servers": "127.0.0.1:9092", "topic": "orders"}),
    );
    store
        .insert_stream(&kafka, 2, &audit("stream.create"))
        .await
        .expect("insert");
    let read = store.get_stream(&kafka.tenant, "orders").await.expect("get");
    assert_eq!(read, Some(kafka.clone()), "round trip, source included");
    assert!(matches!(read.map(|s| s.source), Some(StreamSource::Kafka(_))));
    assert!(matches!(
        store
            .insert_stream(
                &stream("orders", events.id, serde_json::json!({"type": "http"})),
                2,
                &audit("stream.create")
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let http = stream("clicks", events.id, serde_json::json!({"type": "http"}));
    store
        .insert_stream(&http, 2, &audit("stream.create"))
        .await
        .expect("second");
    assert!(matches!(
        store
            .insert_stream(
                &stream("third", events.id, serde_json::json!({"type": "http"})),
                2,
                &audit("stream.create")
            )
            .await,
        Err(StoreError::Quota(_))
    ));
    let first = store.list_streams(&kafka.tenant, None, 1).await.expect("list");
    assert_eq!(
        first.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["clicks"]
    );
    let rest = store
        .list_streams(&kafka.tenant, Some("clicks"), 10)
        .await
        .expect("list");
    assert_eq!(
        rest.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["orders"]
    );
    assert_eq!(store.streams_on_table(events.id).await.expect("count"), 2);
    assert_eq!(store.all_streams().await.expect("all").len(), 2);

    assert!(
        store
            .delete_stream(http.id, &audit("stream.delete"))
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_stream(http.id, &audit("stream.delete"))
            .await
            .expect("gone"),
        "second delete is a no-op"
    );
    assert_eq!(store.streams_on_table(events.id).await.expect("count"), 1);
    store
        .insert_stream(
            &stream("third", events.id, serde_json::json!({"type": "http"})),
            2,
            &audit("stream.create"),
        )
        .await
        .expect("a deleted stream frees its quota slot");
    let deleted = store
        .list_audit(&tenancy::audit::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        deleted.iter().filter(|e| e.action == "stream.delete").count(),
        1,
        "one event per real deletion"
    );

    store
        .delete_tenant(
            &kafka.tenant,
            tenancy::now(),
            tenancy::now(),
            &audit("tenant.delete"),
        )
        .await
        .expect("tenant gone");
    assert!(
        store.all_streams().await.expect("all").is_empty(),
        "a tenant's deletion removes its streams"
    );
}
both_backends!(streams_quota_pagination_and_delete);

/// A stream by id: found with its source, and gone once deleted.
async fn stream_by_id(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let events = crate::tables::acme_with_table(store.as_ref(), "bronze", "events").await;
    let kafka = stream(
        "orders",
        events.id,
        serde_json::json!({"type": "kafka", "bootstrap_servers": "127.0.0.1:9092", "topic": "orders"}),
    );
    let http = stream("clicks", events.id, serde_json::json!({"type": "http"}));
    for s in [&kafka, &http] {
        store
            .insert_stream(s, 5, &audit("stream.create"))
            .await
            .expect("insert");
    }
    assert_eq!(
        store.get_stream_by_id(kafka.id).await.expect("by id"),
        Some(kafka.clone())
    );
    assert_eq!(
        store.get_stream_by_id(http.id).await.expect("by id"),
        Some(http.clone())
    );
    assert_eq!(
        store
            .get_stream_by_id(uuid::Uuid::now_v7())
            .await
            .expect("unknown"),
        None
    );
    assert!(
        store
            .delete_stream(kafka.id, &audit("stream.delete"))
            .await
            .expect("delete")
    );
    assert_eq!(store.get_stream_by_id(kafka.id).await.expect("deleted"), None);
    assert_eq!(store.get_stream_by_id(http.id).await.expect("other"), Some(http));
}
both_backends!(stream_by_id);

//! Repository tests. Every test runs against both backends: a fresh SQLite file and a fresh
//! PostgreSQL database on the local server.

mod instance;
mod migrations;

use tenancy::store::Backend;

/// Opens a migrated store on a fresh database.
pub async fn migrated(
    backend: Backend,
) -> (
    std::sync::Arc<dyn tenancy::store::MetadataStore>,
    tenancy::store::testing::TestDatabase,
) {
    let db = tenancy::store::testing::TestDatabase::new(backend).await;
    let store = tenancy::store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

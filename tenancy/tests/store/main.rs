//! Repository tests. Every test runs against both backends: a fresh SQLite file and a fresh
//! PostgreSQL database on the local server.

mod erasures;
mod grants;
mod instance;
mod leader;
mod migrations;
mod pipelines;
mod push_keys;
mod reconcile_reads;
mod repos;
mod shares;
mod streams;
mod tables;
mod wal;
mod workers;

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

/// Runs SQL behind the store's back, as an operator with database access could.
pub async fn raw_execute(db: &tenancy::store::testing::TestDatabase, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    match db.url.backend() {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(db.url.expose())
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(db.url.expose())
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

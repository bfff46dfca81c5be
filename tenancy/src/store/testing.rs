//! Fresh, isolated databases for tests, so suites run in parallel on both backends.
//!
//! PostgreSQL comes from `LAKEPLANE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets a new database named
//! `lptest_<uuid>`, dropped by [`TestDatabase::drop_database`]. `scripts/test` sweeps any
//! left behind by a failed run.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use super::{Backend, DatabaseUrl};

/// Where the admin connection for creating test databases points.
pub fn postgres_admin_url() -> String {
    std::env::var("LAKEPLANE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists only for one test.
pub struct TestDatabase {
    /// The URL to hand to the code under test.
    pub url: DatabaseUrl,
    /// The PostgreSQL database name, when the backend is PostgreSQL.
    pg_name: Option<String>,
    /// Keeps the SQLite directory alive until the test ends.
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates an empty database on the given backend.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create temp dir for SQLite test database");
                let path: PathBuf = dir.path().join("lakeplane.db");
                let url =
                    DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("valid sqlite url");
                Self {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("lptest_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let mut conn = PgConnectOptions::from_str(&admin)
                    .expect("LAKEPLANE_TEST_POSTGRES_URL is a valid postgres URL")
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL for tests is not reachable at {admin}: {e}"));
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let mut url = url::Url::parse(&admin).expect("admin url parses");
                url.set_path(&name);
                let url = DatabaseUrl::parse(url.as_str()).expect("valid postgres url");
                Self {
                    url,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Drops the PostgreSQL database (SQLite files go with the temp dir).
    pub async fn drop_database(self) {
        let Some(name) = &self.pg_name else { return };
        let Ok(options) = PgConnectOptions::from_str(&postgres_admin_url()) else {
            return;
        };
        // Best effort: scripts/test sweeps anything left behind.
        if let Ok(mut conn) = options.connect().await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
            let _ = conn.close().await;
        }
    }
}

/// Records a maintenance run of `operations` on the table that succeeded at `finished_at`,
/// through the store's own calls (start, then finish), as an executor would have left it.
pub async fn record_success(
    store: &dyn super::MetadataStore,
    table: &super::TableRecord,
    operations: &[crate::maintenance::Operation],
    finished_at: chrono::DateTime<chrono::Utc>,
) {
    let now = crate::now();
    let mut run = super::MaintenanceRun {
        id: uuid::Uuid::now_v7(),
        table_id: table.id,
        tenant: table.tenant.clone(),
        zone: table.spec.zone,
        table_name: table.spec.name.to_string(),
        operations: operations.to_vec(),
        options: Default::default(),
        status: crate::maintenance::RunStatus::Running,
        metrics: None,
        error: None,
        requested_by: "test".into(),
        lease_owner: "test".into(),
        lease_expires_at: now + chrono::Duration::minutes(10),
        created_at: now,
        finished_at: None,
    };
    let audit = crate::audit::AuditEvent::system(
        "table.maintenance.start",
        "test",
        Some(table.tenant.as_str()),
        crate::audit::Outcome::Success,
    );
    store.start_run(&run, &audit).await.expect("start a run");
    run.status = crate::maintenance::RunStatus::Succeeded;
    run.finished_at = Some(finished_at);
    assert!(
        store.update_run(&run).await.expect("finish a run"),
        "the run ends"
    );
}

/// Applies the backend's migrations up to and including `version` only, as an installation
/// of an older release would have left the database (for upgrade tests).
pub async fn migrate_up_to(url: &DatabaseUrl, version: i64) -> Result<(), sqlx::Error> {
    let migrator = match url.backend() {
        Backend::Sqlite => &super::sqlite::MIGRATOR,
        Backend::Postgres => &super::postgres::MIGRATOR,
    };
    let older = sqlx::migrate::Migrator::new(UpTo(migrator, version)).await?;
    match url.backend() {
        Backend::Sqlite => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url.expose())?
                .create_if_missing(true)
                .connect()
                .await?;
            older.run_direct(&mut conn).await?;
            conn.close().await
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url.expose()).await?;
            older.run_direct(&mut conn).await?;
            conn.close().await
        }
    }
}

/// The embedded migrations up to a version: the same files, so their checksums match when
/// the full migrator later takes over.
#[derive(Debug)]
struct UpTo(&'static sqlx::migrate::Migrator, i64);

impl sqlx::migrate::MigrationSource<'static> for UpTo {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>>
                + Send,
        >,
    > {
        let UpTo(migrator, version) = self;
        let chosen = migrator
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect();
        Box::pin(async move { Ok(chosen) })
    }
}

/// Declares `name::sqlite` and `name::postgres` tokio tests from one `async fn(Backend)`, so
/// every store-backed test runs on both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::store::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::store::Backend::Postgres).await;
            }
        }
    };
}

/// Tables whose rows belong to the tenant named by their `id`.
const KEYED_BY_ID: [&str; 2] = ["tenants", "tenant_tombstones"];

/// Every stored row that belongs to `tenant`, table by table, each row as its columns' text,
/// sorted: the tenant's record and tombstone, and every table with a `tenant_id` column
/// (tokens, audit events, tables, runs, streams, workers, shares, recipients, zones,
/// provisioning, ...).
/// Tables are found in the schema, so one added later is covered without editing this.
/// Isolation tests compare it before and after another tenant's calls, row by row.
pub async fn tenant_rows(
    url: &DatabaseUrl,
    tenant: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, sqlx::Error> {
    use sqlx::Row;
    let mut rows = std::collections::BTreeMap::new();
    match url.backend() {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url.expose()).await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await?;
            let keyed = tables
                .into_iter()
                .map(|t| (t, "tenant_id"))
                .chain(KEYED_BY_ID.map(|t| (t.to_owned(), "id")));
            for (table, column) in keyed {
                // Table names come from the catalog, not from input.
                let sql =
                    format!("SELECT row_to_json(t)::text FROM {table} t WHERE {column} = $1 ORDER BY 1");
                let found: Vec<String> = sqlx::query_scalar(&sql).bind(tenant).fetch_all(&mut conn).await?;
                rows.insert(table, found);
            }
            conn.close().await?;
        }
        Backend::Sqlite => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url.expose())?
                .read_only(true)
                .connect()
                .await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await?;
            for table in tables {
                let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
                    .fetch_all(&mut conn)
                    .await?
                    .iter()
                    .map(|r| r.get::<String, _>("name"))
                    .collect();
                let key = if columns.iter().any(|c| c == "tenant_id") {
                    "tenant_id"
                } else if KEYED_BY_ID.contains(&table.as_str()) {
                    "id"
                } else {
                    continue;
                };
                let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', quote(\"{c}\")")).collect();
                let sql = format!(
                    "SELECT json_object({}) FROM {table} WHERE {key} = ?1 ORDER BY 1",
                    pairs.join(", ")
                );
                let found: Vec<String> = sqlx::query_scalar(&sql).bind(tenant).fetch_all(&mut conn).await?;
                rows.insert(table, found);
            }
            conn.close().await?;
        }
    }
    Ok(rows)
}

use tenancy::store::testing::TestDatabase;
use tenancy::store::{Backend, latest_known_version};

use crate::helpers::lakeplane;

/// Several `lakeplane migrate` processes at once on one fresh database: all succeed and
/// each version is applied by exactly one of them.
async fn concurrent_migrate_processes(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let cwd = tempfile::tempdir().expect("cwd");
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let mut command = lakeplane(cwd.path());
            command.args(["--database-url", db.url.expose(), "migrate"]);
            tokio::spawn(async move { command.output().await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        let output = run.await.expect("join").expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "migrate failed: {stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON report on stdout");
        assert_eq!(
            report["current"],
            latest_known_version(backend).expect("has migrations")
        );
        applied.extend(
            report["applied"]
                .as_array()
                .expect("applied")
                .iter()
                .filter_map(|v| v.as_i64()),
        );
    }
    applied.sort_unstable();
    let expected: Vec<i64> = (1..=latest_known_version(backend).expect("has migrations")).collect();
    assert_eq!(applied, expected);
    db.drop_database().await;
}

mod concurrent_migrate {
    #[tokio::test]
    async fn sqlite() {
        super::concurrent_migrate_processes(tenancy::store::Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::concurrent_migrate_processes(tenancy::store::Backend::Postgres).await;
    }
}

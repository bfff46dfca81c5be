//! `lakeplane-bench console`: the console's fleet page at 10,000 tenants.
//!
//! For each backend, a fresh database gets `TENANTS` (10,000) ready tenants as rows, with 30-day
//! volumes spread over five orders of magnitude, 20 to a shared shard; then `lakeplane serve`
//! runs on it. A platform-admin signs in to the console, and the fleet page (the volume
//! ranking chart over every tenant, the first page of tenants, buckets and failed workers,
//! each one `/v1` list call and one query) is loaded open loop at `RATE` (20/s) for `SECONDS`
//! (10); then a later page (`?cursor=`) and a search (`?q=`). In the same run and at the same
//! rate, the API calls the page stands on are measured alone as its baselines:
//! `GET /v1/tenants?limit=50` and `GET /v1/admin/placement/ranking`.

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::store::Backend;

use bench::{open_loop, serve};

use crate::env_or;
use crate::fixture::{fresh_store, ready_tenant};

pub async fn console() {
    let tenants = env_or("TENANTS", 10_000) as usize;
    let rate = env_or("RATE", 20);
    let seconds = env_or("SECONDS", 10);
    println!("| backend | tenants | request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (store, database) = fresh_store(backend).await;
        let audit = || AuditEvent::system("bench", "bench", None, Outcome::Success);
        for i in 0..tenants {
            let mut tenant = ready_tenant(&format!("t{i:05}"), u32::try_from(i / 20).unwrap_or(0));
            tenant.display_name = format!("Bench tenant {i}");
            // 1 KiB to 100 GiB, a different volume for every tenant.
            tenant.volume_30d_bytes = 1024 * 10u64.pow(u32::try_from(i % 8).unwrap_or(0)) + i as u64;
            store.insert_tenant(&tenant, &audit()).await.expect("tenant");
        }
        store.close().await;
        let dir = tempfile::tempdir().expect("dir");
        let bin = serve::lakeplane_bin();
        let url = database.url.expose().to_owned();
        let env = [
            ("LAKEPLANE__DATABASE__URL", url.as_str()),
            // The limiters run on every request but never refuse one.
            ("LAKEPLANE__RATE_LIMIT__PER_SECOND", "1000000"),
            ("LAKEPLANE__RATE_LIMIT__BURST", "1000000"),
        ];
        let admin = serve::token_with(&bin, dir.path(), "bench", &env);
        let (server, base) = serve::serve(&bin, dir.path(), &env).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let signed_in = client
            .post(format!("{base}/console/sign-in"))
            .header("origin", &base)
            .form(&[("token", admin.as_str())])
            .send()
            .await
            .expect("sign in");
        assert_eq!(signed_in.status(), 303, "sign-in");
        let cookie = signed_in
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let first: serde_json::Value = client
            .get(format!("{base}/v1/tenants?limit=50"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
        let check = client
            .get(format!("{base}/console/fleet"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("fleet");
        assert_eq!(check.status(), 200);
        let html = check.text().await.expect("html");
        assert!(
            html.contains(&format!("{} tenants", tenants_label(tenants))),
            "the ranking counts every tenant"
        );
        let name = backend.as_str();
        let only: Option<String> = std::env::var("ONLY").ok();
        let runs = [
            ("console `/console/fleet`", "/console/fleet".to_owned(), true),
            (
                "console `/console/fleet?cursor=` (page 2)",
                format!("/console/fleet?cursor={cursor}"),
                true,
            ),
            (
                "console `/console/fleet?q=tenant 99`",
                "/console/fleet?q=tenant%2099".to_owned(),
                true,
            ),
            (
                "API `GET /v1/tenants?limit=50` (baseline)",
                "/v1/tenants?limit=50".to_owned(),
                false,
            ),
            (
                "API `GET /v1/admin/placement/ranking` (baseline)",
                "/v1/admin/placement/ranking?points=300".to_owned(),
                false,
            ),
            (
                "API `GET /v1/admin/buckets?limit=50` (baseline)",
                "/v1/admin/buckets?limit=50".to_owned(),
                false,
            ),
            (
                "API `GET /v1/admin/workers?state=failed&limit=20` (baseline)",
                "/v1/admin/workers?state=failed&limit=20".to_owned(),
                false,
            ),
        ];
        for (what, path, console) in runs {
            if only.as_deref().is_some_and(|o| !what.contains(o)) {
                continue;
            }
            let (client, cookie, admin, url) = (
                client.clone(),
                cookie.clone(),
                admin.clone(),
                format!("{base}{path}"),
            );
            let report = open_loop::drive(rate, seconds, move |_| {
                let request = client.get(&url);
                if console {
                    request.header("cookie", &cookie)
                } else {
                    request.bearer_auth(&admin)
                }
            })
            .await;
            println!(
                "| {name} | {tenants} | {}",
                report.row(what, rate).trim_start_matches("| ")
            );
        }
        drop(server);
        database.drop_database().await;
    }
}

/// `10,000` as the page writes it.
fn tenants_label(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

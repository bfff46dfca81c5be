//! The "done when", as a new user runs it: start the server, bootstrap a
//! platform-admin with the CLI, create two tenants, give each a tenant-admin, and check that
//! each admin sees only its own tenant, the audit log shows every step, and revocation bites.

use serde_json::{Value, json};

use crate::helpers::{Server, call, cli_token, lakeplane};

#[tokio::test]
async fn bootstrap_two_tenants_and_their_admins() {
    use reqwest::Method;
    let cwd = tempfile::tempdir().expect("cwd");
    // Uses of a revoked token are rolled up in the audit log: a 1 s window writes them soon.
    let mut command = lakeplane(cwd.path());
    command.env("LAKEPLANE__AUDIT__ROLLUP_WINDOW_SECS", "1");
    let server = Server::start(command).await;
    let root = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;

    let mut admins = Vec::new();
    for id in ["acme", "globex"] {
        let body = json!({"id": id, "display_name": id.to_uppercase(), "tier": "standard"});
        assert_eq!(
            call(&server, &root, Method::POST, "/v1/tenants", Some(body))
                .await
                .status(),
            201
        );
        let body = json!({"subject": format!("{id}-admin"), "role": "tenant-admin", "ttl_seconds": 3600});
        let issued = call(
            &server,
            &root,
            Method::POST,
            &format!("/v1/tenants/{id}/tokens"),
            Some(body),
        )
        .await;
        assert_eq!(issued.status(), 201);
        let issued: Value = issued.json().await.expect("json");
        admins.push((
            id,
            issued["token"].as_str().expect("token").to_owned(),
            issued["token_id"].as_str().expect("id").to_owned(),
        ));
    }
    for (own, token, _) in &admins {
        let list: Value = call(&server, token, Method::GET, "/v1/tenants", None)
            .await
            .json()
            .await
            .expect("json");
        let ids: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        assert_eq!(ids, [*own]);
        for (other, _, _) in &admins {
            let status = call(&server, token, Method::GET, &format!("/v1/tenants/{other}"), None)
                .await
                .status();
            assert_eq!(status.as_u16(), if other == own { 200 } else { 404 });
        }
    }

    // A tenant token from the CLI too, for a tenant that exists; one for a missing tenant fails.
    let viewer = cli_token(
        cwd.path(),
        &[],
        &["--role", "viewer", "--tenant", "acme", "--subject", "v"],
    )
    .await;
    assert_eq!(
        call(&server, &viewer, Method::GET, "/v1/tenants/acme", None)
            .await
            .status(),
        403
    );
    let missing = lakeplane(cwd.path())
        .args(["token", "create", "--role", "viewer", "--tenant", "nope-co"])
        .output()
        .await
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("--tenant"),
        "names the argument"
    );
    let no_tenant = lakeplane(cwd.path())
        .args(["token", "create", "--role", "engineer"])
        .output()
        .await
        .expect("run");
    assert_eq!(no_tenant.status.code(), Some(2));

    let (_, acme_token, acme_id) = &admins[0];
    let revoke = call(
        &server,
        &root,
        Method::DELETE,
        &format!("/v1/tenants/acme/tokens/{acme_id}"),
        None,
    )
    .await;
    assert_eq!(revoke.status(), 204);
    assert_eq!(
        call(&server, acme_token, Method::GET, "/v1/tenants/acme", None)
            .await
            .status(),
        401
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let steps = loop {
        let audit: Value = call(&server, &root, Method::GET, "/v1/audit?limit=100", None)
            .await
            .json()
            .await
            .expect("json");
        let steps: Vec<(String, String)> = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or("").to_owned(),
                    e["outcome"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        // The revoked token's use arrives once its roll-up window has ended.
        if steps.iter().any(|(a, _)| a == "auth.revoked") || std::time::Instant::now() > deadline {
            break steps;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for expected in [
        ("token.create", "success"),
        ("tenant.create", "success"),
        ("token.revoke", "success"),
        ("auth.revoked", "denied"),
        ("tenant.read", "denied"),
    ] {
        assert!(
            steps.iter().any(|(a, o)| (a.as_str(), o.as_str()) == expected),
            "{expected:?} missing from {steps:?}"
        );
    }
    let creates = steps
        .iter()
        .filter(|(a, o)| a == "tenant.create" && o == "success")
        .count();
    assert_eq!(creates, 2);
    let (status, _) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
}

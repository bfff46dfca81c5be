//! Token abuse and the tokens API: every refused token is a 401 with an audit event.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, problem};

/// A fresh Ed25519 key as PKCS#8 PEM.
pub fn new_ed25519_pem() -> String {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pem")
        .to_string()
}

fn claims(iss: &str, aud: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": "mallory", "role": "platform-admin", "iat": now, "exp": now + exp_offset,
        "jti": uuid::Uuid::now_v7().to_string(), "iss": iss, "aud": aud,
    })
}

/// Requests by this action's refusals so far, over the rolled-up rows of the audit log.
async fn refusals(app: &TestApp, admin: &str, code: &str) -> u64 {
    let audit: Value = app
        .get_as(admin, &format!("/v1/audit?action=auth.{code}&limit=500"))
        .await
        .json()
        .await
        .expect("json");
    let items = audit["items"].as_array().expect("items");
    for event in items {
        // No valid token: no one to name, so one row per network and window with a count.
        assert_eq!(event["outcome"], "denied");
        assert_eq!(event["actor"], "anonymous");
        assert_eq!(event["source"], "127.0.0.0/24");
    }
    items
        .iter()
        .map(|e| e["occurrences"].as_u64().expect("occurrences"))
        .sum()
}

async fn refused(app: &TestApp, token: &str, code: &str) {
    let admin = app.token(Role::PlatformAdmin, None).await;
    let before = refusals(app, &admin, code).await;
    let response = app.get_as(token, "/v1/tenants").await;
    assert!(response.headers().contains_key("www-authenticate"));
    problem(response, 401).await;
    // The roll-up writes a window's row when the window (1 s here) ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = refusals(app, &admin, code).await;
        if now == before + 1 {
            break;
        }
        assert!(
            now == before && std::time::Instant::now() < deadline,
            "the refusal is audited once ({code}): {before} then {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_401_and_audited() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.audit.rollup_window_secs = 1,
        axum::Router::new(),
    )
    .await;
    let good = app.token(Role::PlatformAdmin, None).await;
    assert_eq!(app.get_as(&good, "/v1/tenants").await.status(), 200);

    let expired = app
        .token_for("old", Role::PlatformAdmin, None, chrono::Duration::seconds(-120))
        .await;
    refused(&app, &expired, "expired").await;

    // Flip a byte of the signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).expect("b64");
    signature[0] ^= 0x01;
    parts[2] = URL_SAFE_NO_PAD.encode(signature);
    refused(&app, &parts.join("."), "bad_signature").await;

    // Upgrade the claims without re-signing.
    let payload = URL_SAFE_NO_PAD.encode(claims("lakeplane", "lakeplane-api", 3600).to_string());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    refused(&app, &tampered, "bad_signature").await;

    // alg: none, unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{payload}.");
    refused(&app, &unsigned, "malformed").await;

    // HS256 "signed" with the server's public key as the HMAC secret (key confusion).
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("b64");
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("lakeplane", "lakeplane-api", 3600),
        &EncodingKey::from_secret(&public),
    )
    .expect("sign");
    refused(&app, &confused, "wrong_algorithm").await;

    // A well-formed token from a key and issuer nobody configured.
    let stranger = EncodingKey::from_ed_pem(new_ed25519_pem().as_bytes()).expect("key");
    let foreign = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims("https://evil.example", "lakeplane-api", 3600),
        &stranger,
    )
    .expect("sign");
    refused(&app, &foreign, "untrusted_issuer").await;

    // Our issuer name, but someone else's key.
    let impostor = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims("lakeplane", "lakeplane-api", 3600),
        &stranger,
    )
    .expect("sign");
    refused(&app, &impostor, "bad_signature").await;

    // Our key and issuer, but minted for another audience.
    let settings = app.state.config.auth.token_settings();
    let now = tenancy::now();
    let mut other_audience = tenancy::token::Claims::new(
        "mallory",
        Role::PlatformAdmin,
        None,
        uuid::Uuid::now_v7(),
        now,
        now + chrono::Duration::hours(1),
        &settings,
    );
    other_audience.aud = "some-other-api".into();
    let other_audience = app.state.signer.sign(&other_audience).expect("sign");
    refused(&app, &other_audience, "wrong_audience").await;

    refused(&app, "not-a-jwt", "malformed").await;
    let missing = app.get("/v1/tenants").await;
    problem(missing, 401).await;
    app.shutdown().await;
}

#[tokio::test]
async fn jwks_publishes_the_key_that_verifies_our_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token(Role::Viewer, Some("acme")).await;
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["lakeplane-api"]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies");
    assert_eq!(data.claims["tenant"], "acme");
    assert_eq!(data.claims["role"], "viewer");
    for claim in ["sub", "iat", "exp", "jti", "iss", "aud"] {
        assert!(!data.claims[claim].is_null(), "{claim}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn issue_list_and_revoke_with_immediate_effect() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        |c| c.audit.rollup_window_secs = 1,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let create = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(create))
            .await
            .status(),
        201
    );
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;

    let body = json!({"subject": "alice", "role": "engineer", "ttl_seconds": 3600});
    let issued = app
        .send_as(&tenant_admin, Method::POST, "/v1/tenants/acme/tokens", Some(body))
        .await;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.expect("json");
    let alice = issued["token"].as_str().expect("token").to_owned();
    let alice_id = issued["token_id"].as_str().expect("id").to_owned();
    // An engineer may not read the tenant, but is authenticated: 403, not 401.
    assert_eq!(app.get_as(&alice, "/v1/tenants/acme").await.status(), 403);

    let escalate = json!({"subject": "eve", "role": "platform-admin", "ttl_seconds": 3600});
    let refused = app
        .send_as(
            &tenant_admin,
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(escalate),
        )
        .await;
    assert_eq!(refused.status(), 403, "a token may not mint a more powerful one");
    let by_engineer = json!({"subject": "eve", "role": "viewer", "ttl_seconds": 3600});
    assert_eq!(
        app.send_as(&alice, Method::POST, "/v1/tenants/acme/tokens", Some(by_engineer))
            .await
            .status(),
        403
    );
    for (bad, field) in [
        (
            json!({"subject": "x", "role": "viewer", "ttl_seconds": 5}),
            "ttl_seconds",
        ),
        (
            json!({"subject": "has space", "role": "viewer", "ttl_seconds": 600}),
            "subject",
        ),
        (
            json!({"subject": "x", "role": "root", "ttl_seconds": 600}),
            "role",
        ),
    ] {
        let response = app
            .send_as(&tenant_admin, Method::POST, "/v1/tenants/acme/tokens", Some(bad))
            .await;
        assert_eq!(problem(response, 422).await["errors"][0]["field"], field);
    }

    let listed: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/tokens")
        .await
        .json()
        .await
        .expect("json");
    let text = listed.to_string();
    assert!(!text.contains(&alice), "lists never include the token itself");
    assert_eq!(listed["items"][0]["token_id"], alice_id.as_str());
    assert_eq!(listed["items"][0]["status"], "active");

    let url = format!("/v1/tenants/acme/tokens/{alice_id}");
    assert_eq!(
        app.send_as(&tenant_admin, Method::DELETE, &url, None)
            .await
            .status(),
        204
    );
    problem(app.get_as(&alice, "/v1/tenants").await, 401).await;
    assert_eq!(
        app.send_as(&tenant_admin, Method::DELETE, &url, None)
            .await
            .status(),
        204,
        "idempotent"
    );
    let listed: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/tokens")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"][0]["status"], "revoked");
    // A revoked token can be replayed by the thousand: its uses are rolled up (one row per
    // window, written when the window, 1 s here, ends) under its subject and tenant.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let audit = loop {
        let audit: Value = app
            .get_as(&admin, "/v1/audit?action=auth.revoked")
            .await
            .json()
            .await
            .expect("json");
        if audit["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break audit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked use was never audited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        audit["items"][0]["actor"], "alice",
        "a revoked token's use is audited under its subject"
    );
    assert_eq!(audit["items"][0]["tenant"], "acme");
    assert_eq!(audit["items"][0]["occurrences"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_revocation_reaches_another_replica_within_the_cache_ttl() {
    let first = TestApp::spawn_with(
        Backend::Postgres,
        |c| c.auth.revocation_cache_ttl_ms = 300,
        axum::Router::new(),
    )
    .await;
    let second = first.replica(|c| c.auth.revocation_cache_ttl_ms = 300).await;
    let admin = first.token(Role::PlatformAdmin, None).await;
    let create = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        first
            .send_as(&admin, Method::POST, "/v1/tenants", Some(create))
            .await
            .status(),
        201
    );
    let issued: Value = first
        .send_as(
            &admin,
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"subject": "a", "role": "tenant-admin", "ttl_seconds": 600})),
        )
        .await
        .json()
        .await
        .expect("json");
    let token = issued["token"].as_str().expect("token");
    assert_eq!(
        second.get_as(token, "/v1/tenants/acme").await.status(),
        200,
        "the replica accepts it"
    );
    let url = format!(
        "/v1/tenants/acme/tokens/{}",
        issued["token_id"].as_str().expect("id")
    );
    assert_eq!(
        first.send_as(&admin, Method::DELETE, &url, None).await.status(),
        204
    );
    assert_eq!(
        first.get_as(token, "/v1/tenants/acme").await.status(),
        401,
        "at once where it was revoked"
    );
    let started = std::time::Instant::now();
    loop {
        if second.get_as(token, "/v1/tenants/acme").await.status() == 401 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the replica never noticed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "within the TTL: {:?}",
        started.elapsed()
    );
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn platform_admin_tokens_can_be_revoked_by_another_platform_admin() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ops = app
        .token_for("ops", Role::PlatformAdmin, None, chrono::Duration::hours(1))
        .await;
    let leaked = app
        .token_for("leaked", Role::PlatformAdmin, None, chrono::Duration::hours(1))
        .await;
    assert_eq!(app.get_as(&leaked, "/v1/tenants").await.status(), 200);
    let payload = leaked.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    let id = claims["jti"].as_str().expect("jti");
    let url = format!("/v1/admin/tokens/{id}");
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    assert_eq!(
        app.send_as(&tenant_admin, Method::DELETE, &url, None)
            .await
            .status(),
        403
    );
    assert_eq!(app.send_as(&ops, Method::DELETE, &url, None).await.status(), 204);
    problem(app.get_as(&leaked, "/v1/tenants").await, 401).await;
    let unknown = format!("/v1/admin/tokens/{}", uuid::Uuid::now_v7());
    problem(app.send_as(&ops, Method::DELETE, &unknown, None).await, 404).await;
    app.shutdown().await;
}

/// Each token has a rate budget of its own, so a tenant holds at most
/// `auth.max_live_tokens_per_tenant` live ones: past it minting is 409 and records nothing,
/// another tenant can still mint, and revoking one frees its slot.
#[tokio::test]
async fn a_tenants_live_tokens_are_capped() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.auth.max_live_tokens_per_tenant = 3,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "globex").await;
    let mint = |tenant: &'static str| {
        let admin = admin.clone();
        let app = &app;
        async move {
            app.send_as(
                &admin,
                Method::POST,
                &format!("/v1/tenants/{tenant}/tokens"),
                Some(json!({"subject": "bot", "role": "viewer", "ttl_seconds": 600})),
            )
            .await
        }
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let issued = mint("acme").await;
        assert_eq!(issued.status(), 201);
        let body: Value = issued.json().await.expect("json");
        ids.push(body["token_id"].as_str().expect("id").to_owned());
    }
    let refused = problem(mint("acme").await, 409).await;
    assert!(
        refused["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("quota-exceeded")
            && refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("3 live tokens"),
        "{refused}"
    );
    let listed = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/tokens", None, 200)
        .await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "nothing recorded"
    );
    assert_eq!(
        mint("globex").await.status(),
        201,
        "another tenant's quota is its own"
    );
    app.expect(
        &admin,
        Method::DELETE,
        &format!("/v1/tenants/acme/tokens/{}", ids[0]),
        None,
        204,
    )
    .await;
    assert_eq!(mint("acme").await.status(), 201, "a revoked token frees its slot");
    app.shutdown().await;
}

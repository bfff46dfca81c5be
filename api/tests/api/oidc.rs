//! Tokens from a trusted external OIDC issuer, whose JWKS this test serves itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;
use tenancy::token::OidcIssuer;
use tokio::sync::RwLock;

use crate::helpers::{TestApp, problem};
use crate::tokens::new_ed25519_pem;

const ISSUER: &str = "https://idp.example.test/";

/// A signing key of the test identity provider.
struct IdpKey {
    kid: String,
    pem: String,
}

impl IdpKey {
    fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pem: new_ed25519_pem(),
        }
    }

    fn jwk(&self) -> Value {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&self.pem).expect("pem");
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())})
    }

    fn token(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_pem(self.pem.as_bytes()).expect("key"),
        )
        .expect("sign")
    }
}

/// Serves `/jwks` from a key list the test can change, counting fetches.
async fn serve_jwks(keys: Arc<RwLock<Vec<Value>>>, fetches: Arc<AtomicUsize>) -> String {
    let router = axum::Router::new().route(
        "/jwks",
        get(move || {
            let keys = keys.clone();
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"keys": *keys.read().await}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/jwks")
}

fn idp_claims(org: &str, group: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "carol@example.test", "org": org, "groups": group, "iat": now, "exp": now + 600,
           "iss": ISSUER, "aud": "lakeplane"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tokens_map_claims_and_follow_key_rotation() {
    let first = IdpKey::new("k1");
    let keys = Arc::new(RwLock::new(vec![first.jwk()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks_url = serve_jwks(keys.clone(), fetches.clone()).await;
    let issuer: OidcIssuer = serde_json::from_value(json!({
        "issuer": ISSUER,
        "jwks_url": jwks_url,
        "audience": "lakeplane",
        "tenant_claim": "org",
        "role_claim": "groups",
        "role_map": {"lake-admins": "tenant-admin", "lake-readers": "viewer"},
        "algorithms": ["EdDSA"],
        "min_refresh_secs": 0,
    }))
    .expect("issuer config");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| c.auth.oidc = vec![issuer],
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

    let carol = first.token(idp_claims("acme", "lake-admins"));
    assert_eq!(
        app.get_as(&carol, "/v1/tenants/acme").await.status(),
        200,
        "mapped to tenant-admin of acme"
    );
    assert_eq!(app.get_as(&carol, "/v1/tenants/acme").await.status(), 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");
    let reader = first.token(idp_claims("acme", "lake-readers"));
    assert_eq!(
        app.get_as(&reader, "/v1/tenants/acme").await.status(),
        403,
        "mapped to viewer"
    );
    assert_eq!(
        app.get_as(&carol, "/v1/tenants/other-co").await.status(),
        404,
        "only its own tenant"
    );
    let unmapped = first.token(idp_claims("acme", "everyone"));
    problem(app.get_as(&unmapped, "/v1/tenants/acme").await, 401).await;

    // The IdP rotates: a token with a new kid makes the plane refetch once.
    let second = IdpKey::new("k2");
    keys.write().await.push(second.jwk());
    let rotated = second.token(idp_claims("acme", "lake-admins"));
    assert_eq!(app.get_as(&rotated, "/v1/tenants/acme").await.status(), 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "refreshed on the unknown kid");

    // A kid the IdP never published stays refused.
    let rogue = IdpKey::new("k9").token(idp_claims("acme", "lake-admins"));
    problem(app.get_as(&rogue, "/v1/tenants/acme").await, 401).await;
    // Right kid, wrong key: the signature fails.
    let forged = IdpKey {
        kid: "k1".into(),
        pem: new_ed25519_pem(),
    }
    .token(idp_claims("acme", "lake-admins"));
    problem(app.get_as(&forged, "/v1/tenants/acme").await, 401).await;
    let mut wrong_aud = idp_claims("acme", "lake-admins");
    wrong_aud["aud"] = json!("someone-else");
    problem(app.get_as(&first.token(wrong_aud), "/v1/tenants/acme").await, 401).await;
    app.shutdown().await;
}

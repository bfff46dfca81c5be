//! Tokens from a trusted external OIDC issuer, whose JWKS this test serves itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;
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

/// Serves `/jwks` from a key list the test can change, counting fetches; 503 while `down`.
async fn serve_jwks(
    keys: Arc<RwLock<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
) -> String {
    let router = axum::Router::new().route(
        "/jwks",
        get(move || {
            let keys = keys.clone();
            let fetches = fetches.clone();
            let down = down.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                if down.load(Ordering::SeqCst) {
                    return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                }
                Ok(axum::Json(json!({"keys": *keys.read().await})))
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
    let jwks_url = serve_jwks(keys.clone(), fetches.clone(), Arc::default()).await;
    let issuer: OidcIssuer = serde_json::from_value(json!({
        "issuer": ISSUER,
        "jwks_url": jwks_url,
        "allow_http_jwks": true,
        "tenants": ["acme"],
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
    // Its `groups` claim is the token's groups, for grants to `group:NAME`.
    let mine = app
        .expect(
            &carol,
            Method::GET,
            "/v1/tenants/acme/effective-grants",
            None,
            200,
        )
        .await;
    assert_eq!(mine["groups"], json!(["lake-admins"]), "{mine}");
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

/// An issuer acts only in the tenants it is trusted for, with tokens of bounded lifetime, and
/// stops being trusted when its keys cannot be refreshed past the staleness it allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_is_held_to_its_tenants_lifetimes_and_fresh_keys() {
    let key = IdpKey::new("k1");
    let keys = Arc::new(RwLock::new(vec![key.jwk()]));
    let down = Arc::new(AtomicBool::new(false));
    let jwks_url = serve_jwks(keys.clone(), Arc::default(), down.clone()).await;
    let config = json!({
        "issuer": ISSUER,
        "jwks_url": jwks_url,
        "allow_http_jwks": true,
        "tenants": ["acme"],
        "audience": "lakeplane",
        "tenant_claim": "org",
        "role_claim": "groups",
        "role_map": {"lake-admins": "tenant-admin"},
        "algorithms": ["EdDSA"],
        "min_refresh_secs": 0,
        "max_token_lifetime_secs": 3600,
        "max_key_staleness_secs": 4,
    });
    // Without the http opt-in, an http JWKS URL is refused; so is an issuer without tenants.
    let mut plain: OidcIssuer = serde_json::from_value(config.clone()).expect("issuer");
    plain.allow_http_jwks = false;
    assert_eq!(plain.validate().map_err(|e| e.0), Err("jwks_url"));
    let mut anywhere: OidcIssuer = serde_json::from_value(config.clone()).expect("issuer");
    anywhere.tenants.clear();
    assert_eq!(anywhere.validate().map_err(|e| e.0), Err("tenants"));

    let issuer: OidcIssuer = serde_json::from_value(config).expect("issuer");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| c.auth.oidc = vec![issuer],
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    // bravo exists and holds a table: what a token naming it must not reach.
    app.ready_tenant(&admin, "bravo").await;
    let table = json!({"zone": "gold", "name": "secret", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/bravo/tables", Some(table), 201)
        .await;

    let good = key.token(idp_claims("acme", "lake-admins"));
    assert_eq!(app.get_as(&good, "/v1/tenants/acme").await.status(), 200);
    let elsewhere = key.token(idp_claims("bravo", "lake-admins"));
    problem(app.get_as(&elsewhere, "/v1/tenants/bravo/tables").await, 401).await;
    let mut long = idp_claims("acme", "lake-admins");
    long["exp"] = json!(chrono::Utc::now().timestamp() + 7200);
    problem(app.get_as(&key.token(long), "/v1/tenants/acme").await, 401).await;

    // The IdP goes away: known keys keep working for the staleness allowed (4 s), then stop.
    down.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut served_meanwhile = 0;
    loop {
        let answer = app.get_as(&good, "/v1/tenants/acme").await;
        if answer.status() == 401 {
            let refused = problem(answer, 401).await;
            assert!(
                refused["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("refreshed"),
                "{refused}"
            );
            break;
        }
        assert_eq!(answer.status(), 200);
        served_meanwhile += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "stale keys were still trusted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        served_meanwhile > 0,
        "known keys served through the start of the outage"
    );
    // Back up: the next request refetches and is let in.
    down.store(false, Ordering::SeqCst);
    assert_eq!(app.get_as(&good, "/v1/tenants/acme").await.status(), 200);
    app.shutdown().await;
}

/// What the test IdP's `/authorize` was asked for, keyed by the code it issued.
#[derive(Clone, Default)]
struct Authorizations(Arc<std::sync::Mutex<std::collections::HashMap<String, (String, String)>>>);

/// An IdP with the authorization-code flow: `/authorize` sends the browser straight back with
/// a code (the user "signs in" at once), `/token` exchanges a code for an ID token only with
/// the verifier whose S256 challenge `/authorize` was given, and `/jwks`.
async fn serve_idp(key: Arc<IdpKey>, claims: Value) -> String {
    use axum::extract::{Form, Query};
    use std::collections::HashMap;
    let issued = Authorizations::default();
    let (for_authorize, for_token) = (issued.clone(), issued);
    let jwk = key.jwk();
    let router = axum::Router::new()
        .route(
            "/jwks",
            get(move || async move { axum::Json(json!({"keys": [jwk]})) }),
        )
        .route(
            "/authorize",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
                assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
                assert_eq!(q.get("client_id").map(String::as_str), Some("lakeplane-console"));
                let code = format!("code-{}", uuid::Uuid::now_v7());
                let redirect = q["redirect_uri"].clone();
                for_authorize
                    .0
                    .lock()
                    .expect("lock")
                    .insert(code.clone(), (q["code_challenge"].clone(), redirect.clone()));
                let state = q["state"].clone();
                axum::response::Redirect::to(&format!("{redirect}?code={code}&state={state}"))
            }),
        )
        .route(
            "/token",
            axum::routing::post(move |Form(f): Form<HashMap<String, String>>| async move {
                // A code is good once, with the verifier of its challenge and its redirect.
                let known = for_token.0.lock().expect("lock").remove(&f["code"]);
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
                match known {
                    Some((expected, redirect))
                        if expected == challenge && Some(&redirect) == f.get("redirect_uri") =>
                    {
                        Ok(axum::Json(
                            json!({"id_token": key.token(claims.clone()), "token_type": "Bearer"}),
                        ))
                    }
                    _ => Err((
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_grant"})),
                    )),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A GET from the browser carrying one cookie.
async fn with_cookie(
    browser: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    cookie: &str,
) -> reqwest::Response {
    browser
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("a response")
}

fn cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")) && !v.starts_with(&format!("{name}=;")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_through_the_idp_with_pkce() {
    let key = Arc::new(IdpKey::new("k1"));
    let idp = serve_idp(key.clone(), idp_claims("acme", "lake-admins")).await;
    let issuer: OidcIssuer = serde_json::from_value(json!({
        "issuer": ISSUER, "jwks_url": format!("{idp}/jwks"), "allow_http_jwks": true,
        "tenants": ["acme"], "audience": "lakeplane", "tenant_claim": "org", "role_claim": "groups",
        "role_map": {"lake-admins": "tenant-admin"}, "algorithms": ["EdDSA"], "min_refresh_secs": 0,
        "console": {"client_id": "lakeplane-console", "authorization_endpoint": format!("{idp}/authorize"),
                    "token_endpoint": format!("{idp}/token"), "label": "Example IdP"},
    }))
    .expect("issuer config");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| c.auth.oidc = vec![issuer],
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = browser
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .expect("page");
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("Sign in with Example IdP")
    );

    // Out to the IdP with a challenge; back with a code; the console exchanges it.
    let start = browser
        .get(app.url("/console/sign-in/oidc/0"))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 303);
    let flow = cookie_named(&start, "lakeplane_console_oidc").expect("a flow cookie");
    let to_idp = start.headers()["location"].to_str().expect("location").to_owned();
    assert!(to_idp.starts_with(&format!("{idp}/authorize?")), "{to_idp}");
    let back = browser.get(&to_idp).send().await.expect("idp");
    let callback = back.headers()["location"].to_str().expect("location").to_owned();
    assert!(
        callback.starts_with(&app.url("/console/oidc/callback?code=")),
        "{callback}"
    );

    // A state that is not this browser's is refused before any exchange.
    let forged = callback.replace("state=", "state=0");
    let refused = with_cookie(&browser, &forged, &flow).await;
    assert_eq!(refused.status(), 400);
    assert!(cookie_named(&refused, "lakeplane_console").is_none());
    let no_flow = browser.get(&callback).send().await.expect("no cookie");
    assert_eq!(
        no_flow.status(),
        400,
        "a callback this browser did not start is refused"
    );

    let done = with_cookie(&browser, &callback, &flow).await;
    assert_eq!(done.status(), 200);
    let session = cookie_named(&done, "lakeplane_console").expect("a session");
    assert!(
        done.text()
            .await
            .expect("html")
            .contains("Signed in as <strong>carol@example.test</strong>")
    );
    let home = with_cookie(&browser, app.url("/console"), &session).await;
    assert_eq!(home.headers()["location"], "/console/tenants/acme");
    let tenant = with_cookie(&browser, app.url("/console/tenants/acme/tokens"), &session).await;
    assert_eq!(
        tenant.status(),
        200,
        "carol is acme's tenant-admin through the IdP's groups"
    );

    // The code was good once: replaying the callback fails at the IdP, and no session starts.
    let replay = with_cookie(&browser, &callback, &flow).await;
    assert_eq!(replay.status(), 400);
    assert!(cookie_named(&replay, "lakeplane_console").is_none());
    app.shutdown().await;
}

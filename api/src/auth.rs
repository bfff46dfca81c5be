//! Authentication and authorization for `/v1`: a middleware that verifies the bearer token,
//! and extractors that hand handlers a typed, already-authorized caller.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenancy::policy::{Action, Principal, authorize};
use tenancy::tenant::TenantId;
use tenancy::token::AuthError;
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

use crate::error::ApiError;
use crate::http::X_REQUEST_ID;
use crate::state::AppState;

/// The outcome of checking a request's bearer token, kept in request and response extensions.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// A valid, unrevoked token.
    Authenticated(Principal),
    /// Why the token was refused.
    Failed(AuthError),
    /// A valid token that was revoked; kept so the refusal is audited under its subject.
    Revoked(Principal),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies the token, if any, and records the result. It does not reject: rejection is the
/// extractors' job, so the rate limiter in between can key anonymous floods by address.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let outcome = match bearer(request.headers()) {
        None => Authentication::Failed(AuthError::Missing),
        Some(token) => match check_token(&state, token).await {
            Ok(outcome) => outcome,
            Err(e) => return e.into_response(),
        },
    };
    request.extensions_mut().insert(outcome.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(outcome);
    response
}

/// Verifies a bearer token and checks it against the revocation list: the one check behind
/// `/v1` and the console's sign-in. Errors only when the revocation list cannot be read.
pub async fn check_token(state: &AppState, token: &str) -> Result<Authentication, ApiError> {
    Ok(match state.verifier.verify(token).await {
        Err(e) => Authentication::Failed(e),
        Ok(principal) => match principal
            .token_id
            .filter(|_| principal.issuer == state.config.auth.issuer)
        {
            None => Authentication::Authenticated(principal),
            Some(id) => match state.revocations.is_revoked(id).await {
                Ok(true) => Authentication::Revoked(principal),
                Ok(false) => Authentication::Authenticated(principal),
                // Fail closed: an unreadable revocation list must not let tokens through.
                Err(e) => return Err(ApiError::Store(e)),
            },
        },
    })
}

/// Rate-limit key: the verified principal, or the client address for everyone else.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalKey;

impl KeyExtractor for PrincipalKey {
    type Key = String;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        if let Some(Authentication::Authenticated(p) | Authentication::Revoked(p)) =
            request.extensions().get::<Authentication>()
        {
            // Tenant in the key: a tenant-admin chooses its tokens' subjects, and must not be
            // able to exhaust another tenant's (or a platform-admin's) budget by reusing a name.
            let tenant = p.tenant.as_ref().map(TenantId::as_str).unwrap_or("-");
            return Ok(format!("principal:{}|{tenant}|{}", p.issuer, p.subject));
        }
        // By network, not address: an IPv6 client has a /64 of addresses to rotate through.
        let network = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| tenancy::rollup::source_network(c.0.ip()));
        Ok(format!(
            "address:{}",
            network.unwrap_or_else(|| "unknown".to_owned())
        ))
    }
}

/// The authenticated caller and the request facts audit events need.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// The request id.
    pub request_id: Option<String>,
    /// The client address.
    pub source: Option<String>,
}

impl Caller {
    /// The caller as audit events name it.
    pub fn actor(&self) -> tenancy::audit::Actor {
        tenancy::audit::Actor {
            subject: self.principal.subject.clone(),
            role: Some(self.principal.role.as_str().to_owned()),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            token_id: self.principal.token_id,
            issuer: Some(self.principal.issuer.clone()),
        }
    }

    /// Applies the single policy function.
    pub fn authorize(&self, action: Action<'_>) -> Result<(), ApiError> {
        authorize(&self.principal, action).map_err(ApiError::Denied)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = match parts.extensions.get::<Authentication>() {
            Some(Authentication::Authenticated(p)) => p.clone(),
            Some(Authentication::Failed(e)) => return Err(ApiError::Unauthorized(e.clone())),
            Some(Authentication::Revoked(_)) => return Err(ApiError::Unauthorized(AuthError::Revoked)),
            None => return Err(ApiError::Unauthorized(AuthError::Missing)),
        };
        Ok(Caller {
            principal,
            request_id: parts
                .headers
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            source: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        })
    }
}

/// A permission checked before the handler runs (and so before its body is parsed).
pub trait Permission {
    /// The action, given the `{tenant}` path parameter; `None` if the route lacks one it needs.
    fn action(tenant: Option<&TenantId>) -> Option<Action<'_>>;
}

/// A caller already authorized for `P`, with the route's tenant when it has one.
pub struct Authorized<P> {
    /// The caller.
    pub caller: Caller,
    /// The `{tenant}` path parameter, validated.
    pub tenant: Option<TenantId>,
    _permission: PhantomData<P>,
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        // A path that does not decode (e.g. `%FF`) cannot name an existing resource.
        let params = match Path::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(params) => params.0,
            Err(axum::extract::rejection::PathRejection::MissingPathParams(_)) => HashMap::new(),
            Err(_) => return Err(ApiError::NotFound("no such resource".to_owned())),
        };
        let tenant = match params.get("tenant") {
            // A malformed id cannot name an existing tenant; answer as for any unknown one.
            Some(raw) => {
                Some(TenantId::parse(raw).map_err(|_| ApiError::NotFound("no such tenant".to_owned()))?)
            }
            None => None,
        };
        let action = P::action(tenant.as_ref()).ok_or_else(|| {
            ApiError::Internal("route lacks the {tenant} parameter its permission needs".to_owned())
        })?;
        caller.authorize(action)?;
        Ok(Self {
            caller,
            tenant,
            _permission: PhantomData,
        })
    }
}

impl<P> Authorized<P> {
    /// The route's tenant; only call on routes with a `{tenant}` parameter.
    pub fn tenant(&self) -> Result<&TenantId, ApiError> {
        self.tenant
            .as_ref()
            .ok_or_else(|| ApiError::Internal("route has no {tenant} parameter".to_owned()))
    }
}

/// Marker types naming each route's permission.
pub mod perm {
    use tenancy::policy::{Action, TenantChange};
    use tenancy::tenant::TenantId;

    use super::Permission;

    macro_rules! permission {
        ($(#[$doc:meta] $name:ident => |$t:ident| $action:expr;)+) => {$(
            #[$doc]
            pub struct $name;
            impl Permission for $name {
                fn action($t: Option<&TenantId>) -> Option<Action<'_>> {
                    $action
                }
            }
        )+};
    }

    permission! {
        /// Installation details.
        ReadPlatform => |_t| Some(Action::ReadPlatform);
        /// Create tenants.
        CreateTenant => |_t| Some(Action::CreateTenant);
        /// List tenants.
        ListTenants => |_t| Some(Action::ListTenants);
        /// Read the route's tenant.
        ReadTenant => |t| t.map(Action::ReadTenant);
        /// Change the route's tenant; which fields is checked once the body is read.
        UpdateTenant => |t| t.map(|t| Action::UpdateTenant(t, TenantChange::default()));
        /// Delete the route's tenant.
        DeleteTenant => |t| t.map(Action::DeleteTenant);
        /// Manage the route's tenant's tokens; issuing checks the role once the body is read.
        ManageTokens => |t| t.map(Action::ManageTokens);
        /// Plan or run a rebalance.
        Rebalance => |_t| Some(Action::Rebalance);
        /// Read or tune the route's tenant's zones, lifecycle and usage.
        ManageStorage => |t| t.map(Action::ManageStorage);
        /// Inspect or repair platform storage.
        AdminStorage => |_t| Some(Action::AdminStorage);
        /// Revoke any token.
        AdminTokens => |_t| Some(Action::AdminTokens);
        /// List every worker, retry a failed one.
        AdminWorkers => |_t| Some(Action::AdminWorkers);
        /// Manage the route's tenant's shares; each table's zone is checked once it is known.
        ManageShares => |t| t.map(Action::ManageShares);
        /// Read or change the route's tenant's grants.
        ManageGrants => |t| t.map(Action::ManageGrants);
        /// Ask for or read the route's tenant's data subject erasures.
        EraseSubjects => |t| t.map(Action::EraseSubjects);
        /// Any role of the route's tenant; the zone's access is checked once the zone is known.
        TenantData => |t| t.map(|t| Action::Zone(t, tenancy::role::Zone::Gold, tenancy::role::Access::None));
    }
}

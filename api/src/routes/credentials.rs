//! Temporary AWS credentials for analysts (S3 with IAM): STS sessions of the tenant's data
//! role, narrowed by a session policy to one zone, some tables and read or write.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use chrono::{DateTime, Utc};
use lake_manager::credentials::CredentialsError;
use lake_manager::storage::StorageKind;
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::credentials::{CredentialAccess, CredentialScope, MAX_TTL_SECS, MIN_TTL_SECS, Requester};
use tenancy::policy::Action;
use tenancy::role::Zone;
use tenancy::table::TableName;
use tenancy::validation::{Violation, Violations};
use utoipa::ToSchema;

use super::tenants::load;
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::config::Config;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

/// Credentials to vend.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateCredentials {
    /// The zone they reach.
    pub zone: Zone,
    /// Tables of that zone to narrow to, each once; omit for the whole zone.
    #[schema(min_items = 1, value_type = Option<Vec<String>>)]
    pub tables: Option<Vec<String>>,
    /// `read` (GetObject, ListBucket under the covered prefixes) or `write` (also PutObject
    /// with multipart uploads, DeleteObject, AbortMultipartUpload). The caller's role must
    /// hold that access to the zone itself.
    pub access: CredentialAccess,
    /// Lifetime, 900 to 3600 seconds.
    #[schema(minimum = 900, maximum = 3600)]
    #[serde(deserialize_with = "crate::extract::integral::u64")]
    pub ttl_seconds: u64,
}

crate::objects_only!(CreateCredentials);

/// Temporary AWS credentials, shown only here. Until `expiration` they reach `locations` only.
#[derive(Debug, Serialize, ToSchema)]
pub struct AwsCredentials {
    /// Always `aws_sts`.
    #[schema(example = "aws_sts")]
    pub kind: &'static str,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: String,
    /// When they stop working. A cached answer has at least half its lifetime left.
    pub expiration: DateTime<Utc>,
    /// The S3 region.
    pub region: String,
    /// The S3 endpoint, when the installation uses a custom one (MinIO, moto).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The `s3://` URIs they cover: each table's root, or the tenant's zone prefix.
    pub locations: Vec<String>,
}

/// Who asks for credentials, as the STS session's source identity names them.
pub(crate) fn requester(caller: &crate::auth::Caller) -> Requester {
    let principal = &caller.principal;
    Requester {
        issuer: principal.issuer.clone(),
        tenant: principal.tenant.as_ref().map(|t| t.to_string()),
        subject: principal.subject.clone(),
        token_id: principal.token_id,
    }
}

/// Why this installation has no credentials to vend, and what to use instead.
pub(crate) fn unavailable(config: &Config) -> String {
    let why = if config.storage.kind == StorageKind::Local {
        "this installation keeps its lake on local storage, which has no AWS identity"
    } else {
        "IAM is disabled on this installation (storage.s3.iam.enabled = false)"
    };
    format!(
        "{why}; to share tables with analysts, use a Delta Sharing share and recipient \
         (POST /v1/tenants/{{tenant}}/shares)"
    )
}

fn validate(body: CreateCredentials) -> Result<CredentialScope, Vec<Violation>> {
    let mut violations = Violations::default();
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&body.ttl_seconds) {
        violations.push(Violation::new(
            "ttl_seconds",
            format!("must be {MIN_TTL_SECS} to {MAX_TTL_SECS}"),
        ));
    }
    // `[]` would read as "no table" yet, as an empty filter, mean the whole zone.
    if body.tables.as_ref().is_some_and(Vec::is_empty) {
        violations.push(Violation::new(
            "tables",
            "must name at least one table; omit it for the whole zone",
        ));
    }
    let tables = body.tables.unwrap_or_default();
    let mut seen = HashSet::new();
    for (index, table) in tables.iter().enumerate() {
        let field = format!("tables[{index}]");
        if let Err(why) = TableName::parse(table) {
            violations.push(Violation::new(field, why));
        } else if !seen.insert(table.as_str()) {
            violations.push(Violation::new(field, format!("{table} is listed twice")));
        }
    }
    let ttl_seconds = u32::try_from(body.ttl_seconds).unwrap_or(u32::MAX);
    violations.finish(|| CredentialScope {
        zone: body.zone,
        tables,
        access: body.access,
        ttl_seconds,
    })
}

/// Vends temporary AWS credentials on the tenant's data: an STS session of its dedicated
/// role, or of its shard's ABAC role tagged `tenant=<id>`, with `SourceIdentity` =
/// `<tenant>.<token id>.<subject>` and a session policy narrowed to the zone, tables and access
/// asked. The lifetime is rounded down to a multiple of 900 s. Cached per tenant, role, scope
/// and caller for half their lifetime; each tenant makes at most
/// `storage.s3.iam.sts_calls_per_minute_per_tenant` uncached calls a minute (429 `sts-quota`
/// with `Retry-After` beyond). 422 on local storage or without IAM: use Delta Sharing there.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/credentials", tag = "credentials", request_body = CreateCredentials,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Credentials", body = AwsCredentials),
        (status = 409, description = "The tenant is not ready (provisioning, migrating, deleting)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_credentials(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiJson(body): ApiJson<CreateCredentials>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    // A token hands out only the access it holds itself.
    auth.caller
        .authorize(Action::Zone(&tenant_id, body.zone, body.access.zone_access()))?;
    let Some(vendor) = state.credentials.as_ref() else {
        return Err(CredentialsError::NotAvailable(unavailable(&state.config)).into());
    };
    let mut scope = validate(body)?;
    let grants = auth.caller.grants(&state, &tenant_id).await?;
    auth.caller.scope_credentials(&grants, &mut scope)?;
    let tenant = load(&state, &tenant_id).await?;
    // The tenant's own cap, which its admins may set below the platform's.
    if scope.ttl_seconds > tenant.credential_max_ttl_secs {
        return Err(Violation::new(
            "ttl_seconds",
            format!(
                "tenant {tenant_id} allows credentials of at most {} s (its credential_max_ttl_secs)",
                tenant.credential_max_ttl_secs
            ),
        )
        .into());
    }
    let vended = vendor.vend(&tenant, &requester(&auth.caller), &scope).await?;
    // Never the secret key or the session token: the access key id is what CloudTrail shows.
    let target = format!(
        "{} {} {} as {} source-identity {} key {} ({})",
        vended.locations.join(","),
        scope.access.as_str(),
        scope.ttl_seconds,
        vended.role_arn,
        vended.source_identity,
        vended.credentials.access_key_id,
        if vended.cached { "cached" } else { "issued" }
    );
    let audit = event(
        &auth.caller,
        "credentials.issue",
        &target,
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    // Unaudited credentials are never handed out: a failed write fails the request.
    state.store.append_audit(&audit).await?;
    let s3 = &state.config.storage.s3;
    let body = AwsCredentials {
        kind: "aws_sts",
        access_key_id: vended.credentials.access_key_id.clone(),
        secret_access_key: vended.credentials.secret_access_key.clone(),
        session_token: vended.credentials.session_token.clone(),
        expiration: vended.credentials.expiration,
        region: s3.region.clone().unwrap_or_default(),
        endpoint: s3
            .endpoint
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
        locations: vended.locations,
    };
    Ok(audited(([(header::CACHE_CONTROL, "no-store")], Json(body))))
}

//! The OpenAPI document, generated from the handlers' own annotations.

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{FieldError, PROBLEM_JSON, Problem};
use crate::routes::{
    admin, audit, credentials, erasures, grants, info, ops, pipelines, shares, storage, streams, tables,
    tenants, tokens, workers,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lakeplane",
        description = "Multi-tenant data-lake control plane. Errors are RFC 9457 problem documents."
    ),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "platform", description = "The installation itself"),
        (name = "tenants", description = "Tenants and their placement"),
        (name = "tokens", description = "A tenant's API tokens"),
        (name = "audit", description = "The append-only audit log"),
        (name = "admin", description = "Platform administration"),
        (name = "storage", description = "Zones, lifecycle, usage and provisioning"),
        (name = "workers", description = "The workers the reconciler keeps running"),
        (name = "sharing", description = "Delta Sharing shares and recipients (the protocol itself is served under /delta-sharing)"),
        (name = "erasures", description = "Data subject erasure (GDPR Art. 17, CCPA) across a tenant's tables"),
        (name = "grants", description = "Table grants: USE CATALOG, USE SCHEMA, SELECT and MODIFY on the tenant, a zone or a table, for users, groups and roles; the role stays the ceiling"),
        (name = "pipelines", description = "Incremental bronze-to-silver and silver-to-gold transformations: expectations, deduplication, aggregates"),
        (name = "credentials", description = "Temporary AWS credentials for analysts (S3 with IAM)"),
        (name = "delta-sharing", description = "The Delta Sharing protocol for recipients, authenticated by a recipient's bearer token, and the signed file URLs it hands out on local storage. Errors are `{\"errorCode\", \"message\"}` as the protocol defines them, except those raised before a handler runs (an unknown route, 405, 413, the request timeout), which are problem documents."),
    ),
    components(schemas(Problem, FieldError, crate::routes::sharing::SharingError))
)]
struct ApiDoc;

/// Unauthenticated operations routes.
pub fn ops_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::jwks))
}

/// The authenticated `/v1` API. The app and the spec are both built from this list.
pub fn v1_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(info::get_info))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::revoke_any_token))
        .routes(routes!(audit::list_audit))
        .routes(routes!(admin::rebalance))
        .routes(routes!(admin::ranking))
        .routes(routes!(storage::get_zones))
        .routes(routes!(storage::put_zone))
        .routes(routes!(storage::get_lifecycle))
        .routes(routes!(storage::get_usage))
        .routes(routes!(storage::list_buckets))
        .routes(routes!(storage::retry_provisioning))
        .routes(routes!(tables::create_table, tables::list_tables))
        .routes(routes!(
            tables::get_table,
            tables::patch_table,
            tables::delete_table
        ))
        .routes(routes!(tables::table_history))
        .routes(routes!(tables::start_maintenance, tables::list_maintenance))
        .routes(routes!(tables::get_maintenance))
        .routes(routes!(streams::create_stream, streams::list_streams))
        .routes(routes!(streams::get_stream, streams::delete_stream))
        .routes(routes!(streams::push_events))
        .routes(routes!(workers::list_tenant_workers))
        .routes(routes!(workers::list_workers))
        .routes(routes!(workers::retry_worker))
        .routes(routes!(shares::create_share, shares::list_shares))
        .routes(routes!(shares::get_share, shares::delete_share))
        .routes(routes!(shares::create_recipient, shares::list_recipients))
        .routes(routes!(shares::revoke_recipient))
        .routes(routes!(credentials::create_credentials))
        .routes(routes!(erasures::create_erasure, erasures::list_erasures))
        .routes(routes!(erasures::get_erasure))
        .routes(routes!(erasures::get_receipt))
        .routes(routes!(grants::get_tenant_grants, grants::patch_tenant_grants))
        .routes(routes!(grants::get_zone_grants, grants::patch_zone_grants))
        .routes(routes!(grants::get_table_grants, grants::patch_table_grants))
        .routes(routes!(grants::effective_grants))
        .routes(routes!(pipelines::create_pipeline, pipelines::list_pipelines))
        .routes(routes!(
            pipelines::get_pipeline,
            pipelines::patch_pipeline,
            pipelines::delete_pipeline
        ))
        .routes(routes!(pipelines::create_run, pipelines::list_runs))
        .routes(routes!(pipelines::get_run))
}

/// The finished spec, as served at `/openapi.json` and committed in `openapi/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, spec) = ops_router()
        .merge(v1_router())
        .merge(crate::routes::sharing::router())
        .merge(crate::routes::unity::router())
        .split_for_parts();
    finish(spec)
}

/// The spec as pretty JSON with a trailing newline, the committed file's exact form.
pub fn spec_json() -> String {
    let mut text = spec()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// Documents what the shared middleware adds to operations: bearer auth and its 401, 403,
/// 404 and 429 on `/v1`; body errors where there is a body; 500 and 503 everywhere.
pub fn finish(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        "recipient",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A Delta Sharing recipient's bearer token, from its profile"))
                .build(),
        ),
    );
    let files = <crate::routes::sharing::FilesDoc as OpenApi>::openapi();
    spec.paths.paths.extend(files.paths.paths);
    for (path, item) in spec.paths.paths.iter_mut() {
        let authenticated = path.starts_with("/v1/");
        let protocol = path.starts_with("/delta-sharing/");
        let unity = path.starts_with(crate::routes::unity::BASE);
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            if unity {
                // Every error of these routes is Unity Catalog's `{error_code, message,
                // details}`, the shared layers' included.
                operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                for (status, description) in [
                    (
                        "400",
                        "A malformed parameter or body (`INVALID_ARGUMENT`, naming it)",
                    ),
                    ("401", "No valid bearer token (`UNAUTHENTICATED`)"),
                    (
                        "403",
                        "The caller's role may not read (or write) the zone (`PERMISSION_DENIED`)",
                    ),
                    (
                        "404",
                        "Not found, or another tenant's (`NOT_FOUND`, never revealed)",
                    ),
                    (
                        "429",
                        "Rate limit exceeded (`RESOURCE_EXHAUSTED`); see Retry-After",
                    ),
                    (
                        "500",
                        "Internal error (`INTERNAL`); details are in the server log",
                    ),
                    (
                        "503",
                        "Timed out, or a dependency is unavailable (`UNAVAILABLE`); retry later",
                    ),
                ] {
                    add_foreign_error(operation, status, description, "UcError");
                }
                continue;
            }
            if authenticated {
                operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                add_problem(
                    operation,
                    "401",
                    "No valid bearer token: missing, malformed, expired or revoked",
                );
                add_problem(operation, "403", "The caller's role may not do this");
                add_problem(
                    operation,
                    "404",
                    "Not found, or another tenant's (never revealed)",
                );
                add_problem(
                    operation,
                    "422",
                    "Invalid parameters or body; `errors` names each field",
                );
                add_problem(operation, "429", "Rate limit exceeded; see Retry-After");
            } else if protocol {
                add_sharing_error(
                    operation,
                    "400",
                    "A parameter or body the server cannot honour, or a feature it does not offer",
                );
                add_sharing_error(
                    operation,
                    "401",
                    "No, unknown, expired or revoked recipient token",
                );
                add_sharing_error(operation, "404", "Not in the recipient's share, or gone");
            } else if operation.security.is_none() {
                operation.security = Some(vec![SecurityRequirement::default()]);
            }
            if operation.request_body.is_some() {
                add_problem(operation, "400", "Malformed JSON");
                add_problem(operation, "413", "Body too large");
                add_problem(operation, "415", "Content type is not application/json");
            }
            add_problem(
                operation,
                "500",
                "Internal error; details are in the server log under the request id",
            );
            add_problem(
                operation,
                "503",
                "Timed out, or a dependency is unavailable; retry after Retry-After",
            );
            if protocol {
                // A protocol handler's own failures use the protocol's shape; a panic or the
                // request timeout around it are problems (documented above).
                add_sharing_error(operation, "500", "");
                add_sharing_error(operation, "503", "");
            }
        }
    }
    spec
}

/// Documents a protocol error (`{"errorCode", "message"}`) for `status`, beside any problem
/// document already documented for it.
fn add_sharing_error(operation: &mut Operation, status: &str, description: &str) {
    add_foreign_error(operation, status, description, "SharingError");
}

/// Documents an error body of another protocol (`schema`, as `application/json`) for
/// `status`, beside whatever is already documented for it.
fn add_foreign_error(operation: &mut Operation, status: &str, description: &str, schema: &str) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build();
    match operation.responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            response.content.insert("application/json".to_owned(), content);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            operation.responses.responses.insert(
                status.to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", content)
                        .build(),
                ),
            );
        }
    }
}

fn add_problem(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        });
}

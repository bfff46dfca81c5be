//! The OpenAPI document, generated from the handlers' own annotations.

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{FieldError, PROBLEM_JSON, Problem};
use crate::routes::{info, ops};
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
    ),
    components(schemas(Problem, FieldError))
)]
struct ApiDoc;

/// Every documented route, with its handler; the app and the spec are both built from this.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(info::get_info))
}

/// The finished spec, as served at `/openapi.json` and committed in `openapi/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, spec) = router().split_for_parts();
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

/// Documents the failures any operation can produce from the shared middleware: a panic
/// caught as 500, and a timeout or unavailable dependency as 503.
pub fn finish(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in spec.paths.paths.values_mut() {
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
        }
    }
    spec
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

//! A tenant's tokens: the list, issuing one (its secret shown once), revoking one.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::views::{Issued, Page, Token};
use crate::console::client::{Problem, seg, with_query};
use crate::console::format;
use crate::console::layout::{self, Frame, csrf, field_errors, invalid};
use crate::console::{Failure, Signed};

/// Roles a tenant token may carry.
const ROLES: [&str; 5] = ["tenant-admin", "engineer", "scientist", "analyst", "viewer"];

/// The list's query.
#[derive(Debug, Default, Deserialize)]
pub struct TokensQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// What the page shows beside the list after a form.
enum Outcome {
    None,
    Issued(Issued),
    Rejected(Problem, HashMap<String, String>),
}

/// The tokens page.
pub async fn show(
    signed: Signed,
    Path(tenant): Path<String>,
    Query(query): Query<TokensQuery>,
) -> Result<Response, Failure> {
    render(&signed, &tenant, &query, Outcome::None).await
}

async fn render(
    signed: &Signed,
    tenant: &str,
    query: &TokensQuery,
    outcome: Outcome,
) -> Result<Response, Failure> {
    let path = with_query(
        &format!("/v1/tenants/{}/tokens", seg(tenant)),
        &[("limit", Some("50")), ("cursor", query.cursor.as_deref())],
    );
    let tokens: Page<Token> = signed.api.get(&path).await?;
    let (problem, form) = match &outcome {
        Outcome::Rejected(p, f) => (Some(p), Some(f)),
        _ => (None, None),
    };
    let kept = |key: &str, default: &str| -> String {
        form.and_then(|f| f.get(key).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let page_base = format!("/console/tenants/{}/tokens", seg(tenant));
    let body = html! {
        (super::tenant_tabs(tenant, "Tokens"))
        @if query.done.as_deref() == Some("revoked") { (layout::notice("Token revoked: it is refused from the next request on.")) }
        @if let Outcome::Issued(issued) = &outcome {
            section.card role="status" aria-labelledby="issued-title" {
                h2 id="issued-title" { "New token" }
                p { "Copy it now: it is shown only this once. It expires " (format::when(&issued.expires_at)) "." }
                p.secret.mono id="issued-token" { (issued.token) }
                p.muted { "Token id " span.mono { (issued.token_id) } }
            }
        }
        h2 { "Issue a token" }
        form.card method="post" action=(page_base) novalidate {
            (csrf(&signed.viewer.csrf))
            (layout::problem_notice(problem, &["subject", "role", "ttl_seconds", "groups"]))
            div.row {
                div {
                    label for="subject" { "Subject" }
                    input id="subject" name="subject" required value=(kept("subject", ""))
                        aria-invalid=(invalid(problem, "subject")) aria-describedby="subject-error";
                    (field_errors(problem, "subject", "subject"))
                }
                div {
                    label for="role" { "Role" }
                    @let chosen = kept("role", "analyst");
                    select id="role" name="role" aria-invalid=(invalid(problem, "role")) aria-describedby="role-error" {
                        @for role in ROLES { option value=(role) selected[chosen == role] { (role) } }
                    }
                    (field_errors(problem, "role", "role"))
                }
                div {
                    label for="ttl_seconds" { "Lifetime (seconds)" }
                    input id="ttl_seconds" name="ttl_seconds" inputmode="numeric" value=(kept("ttl_seconds", "86400"))
                        aria-invalid=(invalid(problem, "ttl_seconds")) aria-describedby="ttl_seconds-error";
                    (field_errors(problem, "ttl_seconds", "ttl_seconds"))
                }
                div {
                    label for="groups" { "Groups (comma-separated)" }
                    input id="groups" name="groups" value=(kept("groups", ""))
                        aria-invalid=(invalid(problem, "groups")) aria-describedby="groups-error";
                    (field_errors(problem, "groups", "groups"))
                }
            }
            p { button type="submit" { "Issue token" } }
        }
        h2 { "Tokens" }
        @if tokens.items.is_empty() {
            p.empty { "No tokens issued for this tenant yet." }
        } @else {
            table {
                thead { tr { th { "Subject" } th { "Role" } th { "Groups" } th { "Status" } th { "Issued" } th { "Expires" } th { "Issued by" } th {} } }
                tbody {
                    @for t in &tokens.items {
                        tr {
                            td { (t.subject) }
                            td { (t.role) }
                            td { (t.groups.join(", ")) }
                            td { span.pill { (t.status) } }
                            td { (format::when(&t.issued_at)) }
                            td { (format::when(&t.expires_at)) }
                            td { (t.issued_by) }
                            td {
                                @if t.status == "active" {
                                    form.inline method="post" action={(page_base) "/" (seg(&t.token_id)) "/revoke"} {
                                        (csrf(&signed.viewer.csrf))
                                        button.quiet type="submit" aria-label={"Revoke the token of " (t.subject)} { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(&with_query(&page_base, &[("cursor", tokens.next_cursor.as_deref())]), tokens.next_cursor.is_some()))
    };
    let frame = Frame {
        title: "Tokens".into(),
        crumbs: vec![
            layout::fleet_crumb(&signed.viewer),
            (
                tenant.to_owned(),
                Some(format!("/console/tenants/{}", seg(tenant))),
            ),
            ("Tokens".into(), None),
        ],
        api: vec![path],
        viewer: Some(&signed.viewer),
    };
    let status = match outcome {
        Outcome::Rejected(..) => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Issued(_) => StatusCode::CREATED,
        Outcome::None => StatusCode::OK,
    };
    Ok((status, super::html(layout::page(frame, body))).into_response())
}

/// The `POST .../tokens` body the form stands for; a lifetime that is not a number is sent as
/// text, for `/v1` to name.
pub fn token_body(form: &HashMap<String, String>) -> serde_json::Value {
    let text = |k: &str| form.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let ttl = text("ttl_seconds");
    let groups: Vec<String> = text("groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    serde_json::json!({
        "subject": text("subject"),
        "role": text("role"),
        "ttl_seconds": ttl.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::from(ttl)),
        "groups": groups,
    })
}

/// Issues a token through `POST /v1/tenants/{tenant}/tokens` and shows its secret once.
pub async fn issue(
    signed: Signed,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let path = format!("/v1/tenants/{}/tokens", seg(&tenant));
    let outcome = match signed
        .api
        .call::<Issued>(Method::POST, &path, Some(token_body(&form)))
        .await
    {
        Ok(issued) => Outcome::Issued(issued),
        Err(p) if matches!(p.status, 400 | 409 | 422) => Outcome::Rejected(p, form),
        Err(p) => return Err(p.into()),
    };
    render(&signed, &tenant, &TokensQuery::default(), outcome).await
}

/// Revokes a token through `DELETE /v1/tenants/{tenant}/tokens/{id}`.
pub async fn revoke(
    signed: Signed,
    Path((tenant, token_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let path = format!("/v1/tenants/{}/tokens/{}", seg(&tenant), seg(&token_id));
    let _: serde_json::Value = signed.api.call(Method::DELETE, &path, None).await?;
    Ok(Redirect::to(&format!("/console/tenants/{}/tokens?done=revoked", seg(&tenant))).into_response())
}

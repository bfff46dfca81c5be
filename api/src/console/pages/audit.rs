//! A tenant's audit log, with the filters `/v1/audit` takes.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::views::{AuditEvent, Page};
use crate::console::client::{seg, with_query};
use crate::console::format;
use crate::console::layout::{self, Frame, field_errors, invalid};
use crate::console::{Failure, Signed};

/// The filters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

/// The audit log page. A filter `/v1` refuses shows its message beside the field.
pub async fn show(
    signed: Signed,
    Path(tenant): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, Failure> {
    let filters = [
        ("action", query.action.as_deref()),
        ("since", query.since.as_deref()),
    ];
    let mut pairs = vec![("tenant", Some(tenant.as_str())), ("limit", Some("50"))];
    pairs.extend(filters);
    pairs.push(("cursor", query.cursor.as_deref()));
    let path = with_query("/v1/audit", &pairs);
    let (events, problem) = match signed.api.get::<Page<AuditEvent>>(&path).await {
        Ok(page) => (Some(page), None),
        Err(p) if p.status == 422 => (None, Some(p)),
        Err(p) => return Err(p.into()),
    };
    let page_base = format!("/console/tenants/{}/audit", seg(&tenant));
    let body = html! {
        (super::tenant_tabs(&tenant, "Audit log"))
        form.card method="get" action=(page_base) novalidate {
            (layout::problem_notice(problem.as_ref(), &["action", "since"]))
            div.row {
                div {
                    label for="action" { "Action" }
                    input id="action" name="action" placeholder="token.issue" value=(query.action.as_deref().unwrap_or(""))
                        aria-invalid=(invalid(problem.as_ref(), "action")) aria-describedby="action-error";
                    (field_errors(problem.as_ref(), "action", "action"))
                }
                div {
                    label for="since" { "Since (RFC 3339)" }
                    input id="since" name="since" placeholder="2026-12-01T00:00:00Z" value=(query.since.as_deref().unwrap_or(""))
                        aria-invalid=(invalid(problem.as_ref(), "since")) aria-describedby="since-error";
                    (field_errors(problem.as_ref(), "since", "since"))
                }
                div { button type="submit" { "Filter" } }
            }
        }
        @if let Some(events) = &events {
            @if events.items.is_empty() {
                p.empty { "No events match." }
            } @else {
                table {
                    thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Outcome" } th.num { "Times" } } }
                    tbody {
                        @for e in &events.items {
                            tr {
                                td { (format::when(&e.at)) }
                                td { (e.actor) @if let Some(r) = &e.role { " " span.muted { "(" (r) ")" } } }
                                td.mono { (e.action) }
                                td.mono { (e.target) }
                                td { span.pill { (e.outcome) } }
                                td.num { (e.occurrences) }
                            }
                        }
                    }
                }
            }
            @let next = [filters[0], filters[1], ("cursor", events.next_cursor.as_deref())];
            (layout::pager(&with_query(&page_base, &next), events.next_cursor.is_some()))
        }
    };
    let frame = Frame {
        title: "Audit log".into(),
        crumbs: vec![
            layout::fleet_crumb(&signed.viewer),
            (tenant.clone(), Some(format!("/console/tenants/{}", seg(&tenant)))),
            ("Audit log".into(), None),
        ],
        api: vec![path],
        viewer: Some(&signed.viewer),
    };
    Ok(super::html(layout::page(frame, body)))
}

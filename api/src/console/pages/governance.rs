//! A tenant's sharing and governance: Delta Sharing shares and their recipients (a new
//! recipient's profile is downloaded as a `.share` file), grants, erasures and pipelines with
//! their latest runs. Each section shows only when the role reads it through `/v1`.

use std::collections::HashMap;

use axum::Form;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use maud::{Markup, html};
use serde::Deserialize;

use super::tenant::optional;
use super::views::Page;
use crate::console::client::{Problem, seg};
use crate::console::format;
use crate::console::layout::{self, Frame, csrf, field_errors, invalid};
use crate::console::{Failure, Signed};

/// `ShareView`.
#[derive(Debug, Deserialize)]
struct Share {
    name: String,
    tables: Vec<ShareTable>,
    created_at: String,
    created_by: String,
}

#[derive(Debug, Deserialize)]
struct ShareTable {
    zone: String,
    name: String,
}

/// `RecipientView`.
#[derive(Debug, Deserialize)]
struct Recipient {
    name: String,
    status: String,
    expires_at: String,
}

/// `GrantsView`.
#[derive(Debug, Deserialize)]
struct Grants {
    privilege_assignments: Vec<Assignment>,
}

#[derive(Debug, Deserialize)]
struct Assignment {
    principal: String,
    privileges: Vec<String>,
}

/// `ErasureView`.
#[derive(Debug, Deserialize)]
struct Erasure {
    id: String,
    status: String,
    subjects: u64,
    deadline: String,
    created_at: String,
    #[serde(default)]
    completed_at: Option<String>,
}

/// `PipelineView`.
#[derive(Debug, Deserialize)]
struct Pipeline {
    name: String,
    source: TableRef,
    target: TableRef,
    state: String,
    #[serde(default)]
    failure: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TableRef {
    zone: String,
    table: String,
}

/// `PipelineRunView`.
#[derive(Debug, Deserialize)]
struct PipelineRun {
    status: String,
    created_at: String,
    rows: RowCounts,
    #[serde(default)]
    expectations: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    target_version: Option<i64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RowCounts {
    #[serde(rename = "in")]
    read: u64,
    written: u64,
    dropped: u64,
    quarantined: u64,
}

/// `IssuedRecipient`.
#[derive(Debug, Deserialize)]
struct IssuedRecipient {
    name: String,
    profile: serde_json::Value,
}

/// A recipient form sent back with what was wrong.
struct Rejected {
    share: String,
    problem: Problem,
    form: HashMap<String, String>,
}

/// The page.
pub async fn show(signed: Signed, Path(tenant): Path<String>) -> Result<Response, Failure> {
    render(&signed, &tenant, None).await
}

async fn render(signed: &Signed, tenant: &str, rejected: Option<Rejected>) -> Result<Response, Failure> {
    let base = format!("/v1/tenants/{}", seg(tenant));
    let api = &signed.api;
    let shares_path = format!("{base}/shares?limit=50");
    let grants_paths: Vec<String> = std::iter::once(format!("{base}/grants/tenant"))
        .chain(["bronze", "silver", "gold"].map(|z| format!("{base}/grants/zones/{z}")))
        .collect();
    let erasures_path = format!("{base}/erasures?limit=20");
    let pipelines_path = format!("{base}/pipelines?limit=50");
    let (shares, grants, erasures, pipelines) = tokio::join!(
        api.get::<Page<Share>>(&shares_path),
        join_all(grants_paths.iter().map(|p| api.get::<Grants>(p))),
        api.get::<Page<Erasure>>(&erasures_path),
        api.get::<Page<Pipeline>>(&pipelines_path),
    );
    let shares = optional(shares)?;
    let erasures = optional(erasures)?;
    let pipelines = optional(pipelines)?;
    let mut grants_shown = Vec::new();
    for (path, answer) in grants_paths.iter().zip(grants) {
        if let Some(g) = optional(answer)? {
            grants_shown.push((path.rsplit("/grants/").next().unwrap_or("").to_owned(), g));
        }
    }
    let recipients: Vec<Option<Page<Recipient>>> = match &shares {
        Some(shares) => {
            let paths: Vec<String> = shares
                .items
                .iter()
                .map(|s| format!("{base}/shares/{}/recipients?limit=20", seg(&s.name)))
                .collect();
            let answers = join_all(paths.iter().map(|p| api.get::<Page<Recipient>>(p))).await;
            answers.into_iter().map(optional).collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    let runs: Vec<Option<Page<PipelineRun>>> = match &pipelines {
        Some(pipelines) => {
            let paths: Vec<String> = pipelines
                .items
                .iter()
                .map(|p| format!("{base}/pipelines/{}/runs?limit=1", seg(&p.name)))
                .collect();
            let answers = join_all(paths.iter().map(|p| api.get::<Page<PipelineRun>>(p))).await;
            answers.into_iter().map(optional).collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    let body = html! {
        (super::tenant_tabs(tenant, "Sharing and governance"))
        @if let Some(shares) = &shares {
            h2 id="shares" { "Delta Sharing" }
            @if shares.items.is_empty() {
                p.empty { "No shares. Make one with " code { "POST /v1/tenants/" (tenant) "/shares" } "." }
            }
            @for (share, recipients) in shares.items.iter().zip(&recipients) {
                (share_section(signed, tenant, share, recipients.as_ref(), rejected.as_ref().filter(|r| r.share == share.name)))
            }
        }
        @if !grants_shown.is_empty() {
            h2 id="grants" { "Grants" }
            table {
                thead { tr { th { "On" } th { "Principal" } th { "Privileges" } } }
                tbody {
                    @for (on, g) in &grants_shown {
                        @for a in &g.privilege_assignments {
                            tr { td.mono { (on) } td.mono { (a.principal) } td { (a.privileges.join(", ")) } }
                        }
                    }
                }
            }
        }
        @if let Some(erasures) = &erasures {
            h2 id="erasures" { "Erasures" }
            @if erasures.items.is_empty() {
                p.empty { "No erasure requests." }
            } @else {
                table {
                    thead { tr { th { "Request" } th { "Status" } th.num { "Subjects" } th { "Asked" } th { "Deadline" } th { "Completed" } } }
                    tbody {
                        @for e in &erasures.items {
                            tr {
                                td.mono { (e.id) }
                                td { span.pill { (e.status) } }
                                td.num { (e.subjects) }
                                td { (format::when(&e.created_at)) }
                                td { (format::when(&e.deadline)) }
                                td { (e.completed_at.as_deref().map(format::when).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(pipelines) = &pipelines {
            h2 id="pipelines" { "Pipelines" }
            @if pipelines.items.is_empty() {
                p.empty { "No pipelines. Make one with " code { "POST /v1/tenants/" (tenant) "/pipelines" } "." }
            } @else {
                table {
                    thead { tr {
                        th { "Pipeline" } th { "From → to" } th { "State" } th { "Last run" }
                        th.num { "Read" } th.num { "Written" } th.num { "Dropped" } th.num { "Quarantined" } th { "Expectations" }
                    } }
                    tbody {
                        @for (p, runs) in pipelines.items.iter().zip(&runs) {
                            @let last = runs.as_ref().and_then(|r| r.items.first());
                            tr {
                                td.mono { (p.name) }
                                td.mono { (p.source.zone) "." (p.source.table) " → " (p.target.zone) "." (p.target.table) }
                                td { span.pill { (p.state) } @if let Some(f) = &p.failure { " " span.bad { (f) } } }
                                @match last {
                                    Some(run) => {
                                        td {
                                            span.pill { (run.status) } " " (format::when(&run.created_at))
                                            @if let Some(v) = run.target_version { " · v" (v) }
                                            @if let Some(e) = &run.error { " " span.bad { (e) } }
                                        }
                                        td.num { (format::count(run.rows.read)) }
                                        td.num { (format::count(run.rows.written)) }
                                        td.num { (format::count(run.rows.dropped)) }
                                        td.num { (format::count(run.rows.quarantined)) }
                                        td.mono { (expectations_summary(&run.expectations)) }
                                    },
                                    None => { td.empty { "no run yet" } td {} td {} td {} td {} td {} },
                                }
                            }
                        }
                    }
                }
            }
        }
        @if shares.is_none() && grants_shown.is_empty() && erasures.is_none() && pipelines.is_none() {
            p.empty { "Your role reads none of this tenant's sharing or governance." }
        }
    };
    let frame = Frame {
        title: "Sharing and governance".into(),
        crumbs: vec![
            layout::fleet_crumb(&signed.viewer),
            (
                tenant.to_owned(),
                Some(format!("/console/tenants/{}", seg(tenant))),
            ),
            ("Sharing and governance".into(), None),
        ],
        api: [shares_path, erasures_path, pipelines_path]
            .into_iter()
            .chain(grants_paths)
            .collect(),
        viewer: Some(&signed.viewer),
    };
    Ok(super::page(rejected.is_some(), frame, body))
}

fn share_section(
    signed: &Signed,
    tenant: &str,
    share: &Share,
    recipients: Option<&Page<Recipient>>,
    rejected: Option<&Rejected>,
) -> Markup {
    let problem = rejected.map(|r| &r.problem);
    let kept = |key: &str, default: &str| -> String {
        rejected
            .and_then(|r| r.form.get(key).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let id = |field: &str| format!("{}-{field}", share.name);
    html! {
        h3 id={"share-" (share.name)} { "Share " span.mono { (share.name) } }
        p.muted {
            "Tables: "
            @for (i, t) in share.tables.iter().enumerate() { @if i > 0 { ", " } span.mono { (t.zone) "." (t.name) } }
            " · made " (format::when(&share.created_at)) " by " (share.created_by)
        }
        @if let Some(recipients) = recipients {
            @if recipients.items.is_empty() {
                p.empty { "No recipients yet." }
            } @else {
                table {
                    thead { tr { th { "Recipient" } th { "Status" } th { "Expires" } } }
                    tbody {
                        @for r in &recipients.items {
                            tr { td { (r.name) } td { span.pill { (r.status) } } td { (format::when(&r.expires_at)) } }
                        }
                    }
                }
            }
        }
        form.card method="post" action={"/console/tenants/" (seg(tenant)) "/shares/" (seg(&share.name)) "/recipients"} novalidate {
            (csrf(&signed.viewer.csrf))
            (layout::problem_notice(problem, &["name", "ttl_seconds"]))
            div.row {
                div {
                    label for=(id("name")) { "New recipient" }
                    input id=(id("name")) name="name" value=(kept("name", "")) aria-invalid=(invalid(problem, "name"))
                        aria-describedby={(id("name")) "-error"};
                    (field_errors(problem, "name", &id("name")))
                }
                div {
                    label for=(id("ttl")) { "Lifetime (seconds)" }
                    input id=(id("ttl")) name="ttl_seconds" inputmode="numeric" value=(kept("ttl_seconds", "604800"))
                        aria-invalid=(invalid(problem, "ttl_seconds")) aria-describedby={(id("ttl")) "-error"};
                    (field_errors(problem, "ttl_seconds", &id("ttl")))
                }
                div { button type="submit" { "Create and download profile" } }
            }
        }
    }
}

/// Each expectation's violations, `name=count`.
fn expectations_summary(expectations: &serde_json::Map<String, serde_json::Value>) -> String {
    expectations
        .iter()
        .map(|(name, v)| {
            let count = v
                .get("violations")
                .and_then(serde_json::Value::as_u64)
                .or_else(|| v.as_u64())
                .map_or_else(|| v.to_string(), |n| n.to_string());
            format!("{name}={count}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates a recipient through `POST .../shares/{share}/recipients` and answers its profile as
/// a `.share` file to save; the profile's token is in that file only.
pub async fn create_recipient(
    signed: Signed,
    Path((tenant, share)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let text = |k: &str| form.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let ttl = text("ttl_seconds");
    let body = serde_json::json!({
        "name": text("name"),
        "ttl_seconds": ttl.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::from(ttl)),
    });
    let path = format!("/v1/tenants/{}/shares/{}/recipients", seg(&tenant), seg(&share));
    match signed
        .api
        .call::<IssuedRecipient>(Method::POST, &path, Some(body))
        .await
    {
        Ok(issued) => {
            let file: String = format!("{share}-{}.share", issued.name)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            Ok((
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                issued.profile.to_string(),
            )
                .into_response())
        }
        Err(problem) if matches!(problem.status, 400 | 409 | 422) => {
            render(&signed, &tenant, Some(Rejected { share, problem, form })).await
        }
        Err(problem) => Err(problem.into()),
    }
}

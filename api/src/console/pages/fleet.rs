//! The fleet (platform-admin): tenants, buckets and shards, a rebalance plan, workers.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::views::{Bucket, Page, Ranking, Rebalance, Tenant, Worker};
use crate::console::chart;
use crate::console::client::{seg, with_query};
use crate::console::format;
use crate::console::layout::{self, Frame, csrf};
use crate::console::{Failure, Signed};

/// Rows per list page.
const PAGE: &str = "50";

/// S3's limit of lifecycle rules per bucket: a shared bucket's rules must stay under it.
const RULE_BUDGET: u64 = 1000;

/// The fleet page's query.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    q: Option<String>,
    cursor: Option<String>,
    buckets_cursor: Option<String>,
    worker_state: Option<String>,
    workers_cursor: Option<String>,
    done: Option<String>,
}

/// The fleet page.
pub async fn show(signed: Signed, Query(query): Query<FleetQuery>) -> Result<Response, Failure> {
    render(&signed, &query, None).await
}

async fn render(signed: &Signed, query: &FleetQuery, plan: Option<Rebalance>) -> Result<Response, Failure> {
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let tenants_path = with_query(
        "/v1/tenants",
        &[
            ("limit", Some(PAGE)),
            ("q", search),
            ("cursor", query.cursor.as_deref()),
        ],
    );
    let ranking_path = "/v1/admin/placement/ranking?points=300".to_owned();
    let buckets_path = with_query(
        "/v1/admin/buckets",
        &[("limit", Some(PAGE)), ("cursor", query.buckets_cursor.as_deref())],
    );
    let worker_state = query.worker_state.as_deref().unwrap_or("failed");
    let workers_path = with_query(
        "/v1/admin/workers",
        &[
            ("limit", Some("20")),
            ("state", Some(worker_state).filter(|s| *s != "all")),
            ("cursor", query.workers_cursor.as_deref()),
        ],
    );
    let (tenants, buckets, workers, ranking) = tokio::join!(
        signed.api.get::<Page<Tenant>>(&tenants_path),
        signed.api.get::<Page<Bucket>>(&buckets_path),
        signed.api.get::<Page<Worker>>(&workers_path),
        signed.api.get::<Ranking>(&ranking_path),
    );
    let (buckets, workers, ranking) = (buckets?, workers?, ranking?);
    // A search the API refuses shows its message beside the search field.
    let (tenants, search_problem) = match tenants {
        Ok(page) => (page, None),
        Err(p) if p.status == 422 => (
            Page {
                items: Vec::new(),
                next_cursor: None,
            },
            Some(p),
        ),
        Err(p) => return Err(p.into()),
    };
    let here = |pairs: &[(&str, Option<&str>)]| with_query("/console/fleet", pairs);
    let body = html! {
        @if let Some(done) = query.done.as_deref() {
            (layout::notice(match done {
                "retried" => "The worker was queued to run again.",
                "rebalanced" => "The rebalance started; tenants move as migrations allow.",
                _ => "Done.",
            }))
        }
        h2 id="ranking" { "Volume ranking" }
        p.muted {
            (format::count(ranking.tenants)) " tenants, " (format::count(ranking.with_volume)) " with writes in 30 days; the top "
            (format!("{:.0}%", ranking.dedicated_fraction * 100.0)) " (" (format::count(ranking.top_count)) " tenants, from "
            (format::bytes(ranking.cutoff_bytes)) ") get dedicated buckets."
        }
        (chart::ranking(
            "Tenants by 30-day volume, with the dedicated-bucket cut-off",
            ranking.tenants,
            &ranking.points.iter().map(|p| (p.rank, p.volume_30d_bytes)).collect::<Vec<_>>(),
            ranking.top_count,
            ranking.cutoff_bytes,
            ranking.dedicated_fraction,
        ))
        h2 id="tenants" { "Tenants" }
        form method="get" action="/console/fleet" class="row" role="search" {
            div {
                label for="q" { "Search by id or name" }
                input id="q" name="q" type="search" value=(search.unwrap_or(""))
                    aria-invalid=(layout::invalid(search_problem.as_ref(), "q")) aria-describedby="q-error";
                (layout::field_errors(search_problem.as_ref(), "q", "q"))
            }
            div { button type="submit" { "Search" } }
        }
        (tenant_table(&tenants.items))
        (layout::pager(&here(&[("q", search), ("cursor", tenants.next_cursor.as_deref())]), tenants.next_cursor.is_some()))
        h2 id="buckets" { "Buckets and shards" }
        (bucket_table(&buckets.items))
        (layout::pager(&here(&[("buckets_cursor", buckets.next_cursor.as_deref())]), buckets.next_cursor.is_some()))
        h2 id="rebalance" { "Placement rebalance" }
        (rebalance_section(signed, plan.as_ref()))
        h2 id="workers" { "Workers" }
        form method="get" action="/console/fleet" class="row" {
            div {
                label for="worker_state" { "State" }
                select id="worker_state" name="worker_state" {
                    @for state in ["failed", "pending", "running", "succeeded", "all"] {
                        option value=(state) selected[state == worker_state] { (state) }
                    }
                }
            }
            div { button type="submit" { "Show" } }
        }
        (worker_table(signed, &workers.items))
        (layout::pager(
            &here(&[("worker_state", Some(worker_state)), ("workers_cursor", workers.next_cursor.as_deref())]),
            workers.next_cursor.is_some(),
        ))
    };
    let frame = Frame {
        title: "Fleet".into(),
        crumbs: vec![("Fleet".into(), None)],
        api: vec![ranking_path, tenants_path, buckets_path, workers_path],
        viewer: Some(&signed.viewer),
    };
    Ok(super::html(layout::page(frame, body)))
}

fn tenant_table(tenants: &[Tenant]) -> Markup {
    html! {
        @if tenants.is_empty() {
            p.empty { "No tenants yet. Create one with " code { "POST /v1/tenants" } "." }
        } @else {
            table {
                thead { tr { th { "Tenant" } th { "Name" } th { "Tier" } th { "Status" } th { "Placement" } th { "Why" } } }
                tbody {
                    @for t in tenants {
                        tr {
                            td.mono { a href={"/console/tenants/" (seg(&t.id))} { (t.id) } }
                            td { (t.display_name) }
                            td { (t.tier) }
                            td { span.pill { (t.status) } }
                            td { (t.placement.kind) @if let Some(s) = t.placement.shard { " · shard " (s) } }
                            td.muted { (t.placement.reason) }
                        }
                    }
                }
            }
        }
    }
}

fn bucket_table(buckets: &[Bucket]) -> Markup {
    html! {
        @if buckets.is_empty() {
            p.empty { "No buckets yet: they are made when the first tenant is provisioned." }
        } @else {
            table {
                thead { tr {
                    th { "Bucket" } th { "Kind" } th.num { "Tenants" } th.num { "Fill" }
                    th.num { "Lifecycle rules" } th { "Lifecycle" }
                } }
                tbody {
                    @for b in buckets {
                        tr {
                            td.mono { (b.name) }
                            td { (b.kind) @if let Some(s) = b.shard { " · shard " (s) } @if let Some(t) = &b.tenant { " · " span.mono { (t) } } }
                            td.num { (format::count(b.tenants)) }
                            td.num {
                                @match b.capacity {
                                    Some(c) if c > 0 => { (format!("{:.0}%", b.tenants as f64 * 100.0 / c as f64)) " of " (format::count(c)) },
                                    _ => "—",
                                }
                            }
                            td.num { (format::count(b.lifecycle_rules)) " / " (format::count(RULE_BUDGET)) }
                            td {
                                @if !b.enforced { span.muted { "not enforced" } }
                                @else if b.drift { span.bad { "drifted" } }
                                @else { span.good { "in sync" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rebalance_section(signed: &Signed, plan: Option<&Rebalance>) -> Markup {
    html! {
        p.muted { "The leader rebalances on its own schedule. A dry run shows what it would do now; nothing changes until you confirm." }
        form.card method="post" action="/console/fleet/rebalance" {
            (csrf(&signed.viewer.csrf))
            input type="hidden" name="mode" value="plan";
            button type="submit" { "Plan a rebalance (dry run)" }
        }
        @if let Some(plan) = plan {
            @if plan.promotions.is_empty() && plan.demotions.is_empty() {
                p.empty { "Nothing to move: every tenant is where the placement policy wants it." }
            } @else {
                table {
                    thead { tr { th { "Tenant" } th { "Move" } th.num { "30-day volume" } th { "Why" } } }
                    tbody {
                        @for (direction, m) in plan.promotions.iter().map(|m| ("promote to dedicated", m)).chain(plan.demotions.iter().map(|m| ("demote to shared", m))) {
                            tr {
                                td.mono { (m.tenant) }
                                td { (direction) }
                                td.num { (format::bytes(m.volume_30d_bytes)) }
                                td.muted { (m.to.reason) }
                            }
                        }
                    }
                }
                @if !plan.skipped.is_empty() {
                    h3 { "Left as they are" }
                    ul { @for s in &plan.skipped { li { span.mono { (s.tenant) } ": " (s.reason) } } }
                }
                @if plan.dry_run {
                    form.card method="post" action="/console/fleet/rebalance" {
                        (csrf(&signed.viewer.csrf))
                        input type="hidden" name="mode" value="run";
                        label { input type="checkbox" name="confirm" value="yes" required; " I confirm: start these moves now" }
                        button type="submit" { "Start the rebalance" }
                    }
                }
            }
        }
    }
}

fn worker_table(signed: &Signed, workers: &[Worker]) -> Markup {
    html! {
        @if workers.is_empty() {
            p.empty { "No workers in this state." }
        } @else {
            table {
                thead { tr { th { "Worker" } th { "Tenant" } th { "Kind" } th { "State" } th.num { "Failures" } th { "Last error" } th { "Updated" } th {} } }
                tbody {
                    @for w in workers {
                        tr {
                            td.mono { (w.id) }
                            td.mono { a href={"/console/tenants/" (seg(&w.tenant))} { (w.tenant) } }
                            td { (w.kind) }
                            td { span.pill { (w.state) } }
                            td.num { (w.failures) }
                            td.muted { (w.last_error.as_deref().unwrap_or("")) }
                            td { (format::when(&w.updated_at)) }
                            td {
                                @if w.state == "failed" {
                                    form.inline method="post" action={"/console/fleet/workers/" (seg(&w.id)) "/retry"} {
                                        (csrf(&signed.viewer.csrf))
                                        button type="submit" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Plans (`mode=plan`) or, confirmed, starts (`mode=run`) a rebalance.
pub async fn rebalance(
    signed: Signed,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let run = form.get("mode").map(String::as_str) == Some("run");
    if run && form.get("confirm").map(String::as_str) != Some("yes") {
        return Err(Failure::Refused("A rebalance starts only when confirmed.".into()));
    }
    let path = if run {
        "/v1/admin/placement/rebalance?dry_run=false"
    } else {
        "/v1/admin/placement/rebalance?dry_run=true"
    };
    let plan: Rebalance = signed.api.call(Method::POST, path, None).await?;
    if run {
        return Ok(Redirect::to("/console/fleet?done=rebalanced").into_response());
    }
    render(&signed, &FleetQuery::default(), Some(plan)).await
}

/// Queues a failed worker again.
pub async fn retry_worker(
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let _: serde_json::Value = signed
        .api
        .call(
            Method::POST,
            &format!("/v1/admin/workers/{}/retry", seg(&id)),
            None,
        )
        .await?;
    Ok(Redirect::to("/console/fleet?done=retried#workers").into_response())
}
